//! A bad environment value: `Builder::from_env` names it, and the lazily started global engine
//! (which cannot return an error) reports it and starts with the defaults. The only test in its
//! binary, because it sets a process environment variable before the global engine's first use.

use std::time::Duration;

use ringmeter::{env, Builder, Error, Sampling};

#[test]
fn a_bad_value_is_an_error_and_the_lazy_global_engine_falls_back_to_defaults() {
    // Nothing else runs in this process yet: setting the environment cannot race.
    std::env::set_var(env::SAMPLE_EVERY, "sometimes");
    match Builder::from_env() {
        Err(Error::InvalidConfig { key, value, .. }) => {
            assert_eq!(key, env::SAMPLE_EVERY);
            assert_eq!(value, "sometimes");
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    let engine = ringmeter::global();
    assert_eq!(engine.window(), Duration::from_secs(1));
    let op = ringmeter::op!("global.op");
    assert_eq!(engine.rule_of(op).unwrap().sampling, Sampling::All);
    op.time(|| ());
    engine.shutdown().unwrap();
    assert_eq!(engine.snapshot().totals("global.op").unwrap().count, 1);
}
