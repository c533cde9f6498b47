//! The global engine starts with the settings of the environment. The only test in its binary,
//! because it sets process environment variables before the global engine's first use.

use std::time::Duration;

use ringmeter::{env, Sampling};

#[test]
fn the_global_engine_reads_the_environment_and_its_file() {
    let dir = std::env::temp_dir().join(format!("ringmeter-global-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("global.toml");
    std::fs::write(&file, "[rules.\"global.quiet\"]\nsample = \"count-only\"\n").unwrap();
    // Nothing else runs in this process yet: setting the environment cannot race.
    std::env::set_var(env::SAMPLE_EVERY, "4");
    std::env::set_var(env::WINDOW_SECS, "2");
    std::env::set_var(env::CONFIG, &file);

    let engine = ringmeter::global();
    assert_eq!(engine.window(), Duration::from_secs(2));
    let busy = ringmeter::op!("global.busy");
    let quiet = ringmeter::op!("global.quiet");
    assert_eq!(engine.rule_of(busy).unwrap().sampling, Sampling::Every(4));
    assert_eq!(engine.rule_of(quiet).unwrap().sampling, Sampling::CountOnly);
    for _ in 0..8 {
        busy.time(|| ());
        quiet.time(|| ());
    }
    engine.shutdown().unwrap();
    let snap = engine.snapshot();
    let b = snap.totals("global.busy").unwrap();
    assert_eq!((b.count, b.unsampled), (2, 6));
    assert_eq!(snap.totals("global.quiet").unwrap().unsampled, 8);
    std::fs::remove_dir_all(&dir).unwrap();
}
