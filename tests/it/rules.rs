//! Per-operation configuration: sampling, slow thresholds, error kinds, exemplars, reloads,
//! the precedence of API, environment and file, and every kind of bad input.
//!
//! Deterministic tests use [`Clock::mock`] with [`Builder::start_manual`]; the environment is
//! passed through [`Builder::from_env_with`] so tests do not touch the process environment.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use ringmeter::{env, Builder, Clock, Engine, Error, MockClock, OpStats, Rule, Rules, Sampling};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn manual(builder: Builder) -> (Engine, MockClock) {
    let (clock, mock) = Clock::mock();
    let engine = builder.clock(clock).start_manual().expect("valid settings");
    (engine, mock)
}

fn totals(engine: &Engine, name: &str) -> OpStats {
    engine.flush().unwrap();
    engine.snapshot().totals(name).cloned().unwrap_or_default()
}

/// Closes window 0. Calls without a timestamp of their own (unsampled calls, durations
/// recorded with `record*`) count in the window open when the aggregator reads them, so they
/// are read (flushed) while the clock is still in window 0.
fn close_window_zero(engine: &Engine, mock: &MockClock) {
    engine.flush().unwrap();
    mock.advance(2 * SEC);
    engine.flush().unwrap();
}

/// A fresh file in the target directory with `text` in it.
fn config_file(tag: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringmeter-sampling-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{tag}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn an_unsampled_call_reads_no_clock_and_is_counted_with_its_failure() {
    let (engine, mock) =
        manual(Engine::builder().rule("quiet", Rule::new().sampling(Sampling::CountOnly)));
    let op = engine.op("quiet").unwrap();
    let t = op.start();
    assert!(!t.is_sampled());
    mock.advance(5 * SEC); // would be a 5 s call if it were timed
    drop(t);
    let mut t = op.start();
    t.fail();
    drop(t);
    op.record_error_ns(10);
    op.record_ns(10);
    let r = std::panic::catch_unwind(|| op.time(|| panic!("boom")));
    assert!(r.is_err());
    let s = totals(&engine, "quiet");
    assert_eq!((s.count, s.unsampled, s.errors, s.slow), (0, 5, 3, 0));
    assert_eq!(s.calls(), 5);
    assert!((s.error_rate() - 0.6).abs() < 1e-9);
}

/// Every way to fail an unsampled call, each right after a call that leaves the thread's cache
/// on the same engine, on another engine, or behind a rule change, all on one thread: every
/// call is counted once (as unsampled) and every failure once, with its kind.
#[test]
fn unsampled_failures_after_any_other_call_are_counted_exactly() {
    let (engine, mock) =
        manual(Engine::builder().rule("db.*", Rule::new().sampling(Sampling::CountOnly)));
    let (other, _other_mock) = manual(Engine::builder());
    let elsewhere = other.op("elsewhere").unwrap();
    let web = engine.op("web.x").unwrap();
    let timeout = engine.error_kind("timeout").unwrap();
    let op = |name: &str| engine.op(name).unwrap();
    let (a, b, c, d, e, f, g, h) = (
        op("db.a"),
        op("db.b"),
        op("db.c"),
        op("db.d"),
        op("db.e"),
        op("db.f"),
        op("db.g"),
        op("db.h"),
    );
    let failures: [&dyn Fn(); 7] = [
        &|| b.record_error_ns(1),
        &|| c.record_error(MS),
        &|| {
            let mut t = d.start();
            t.fail();
        },
        &|| e.start().fail_with(timeout),
        &|| assert_eq!(f.time_result(|| Err::<(), _>("refused")), Err("refused")),
        &|| g.record_error_kind_ns(1, timeout),
        &|| {
            let r = std::panic::catch_unwind(|| h.time(|| panic!("boom")));
            assert!(r.is_err());
        },
    ];
    let windows = engine.subscribe(4);
    for round in 0..3 {
        for (i, fail) in (2..).zip(failures) {
            match round {
                // The cache holds this engine's entry (the first round ends each first gap).
                0 => a.record_ns(1),
                // The cache holds the other engine's.
                1 => elsewhere.record_ns(1),
                // The engine's rules changed since the thread last read them.
                _ => engine
                    .set_rule("web.*", Rule::new().sampling(Sampling::Every(i)))
                    .unwrap(),
            }
            fail();
        }
    }
    web.record_ns(1);

    let a_stats = totals(&engine, "db.a");
    assert_eq!(
        (a_stats.count, a_stats.unsampled, a_stats.errors),
        (0, 7, 0)
    );
    for name in ["db.b", "db.c", "db.d", "db.e", "db.f", "db.g", "db.h"] {
        let s = totals(&engine, name);
        assert_eq!(
            (s.count, s.unsampled, s.errors, s.dropped),
            (0, 3, 3, 0),
            "{name}"
        );
    }
    let (w, x) = (totals(&engine, "web.x"), totals(&other, "elsewhere"));
    assert_eq!((w.count, w.unsampled, w.errors), (1, 0, 0));
    assert_eq!((x.count, x.errors), (7, 0));
    close_window_zero(&engine, &mock);
    let w = windows.try_recv().expect("window 0");
    for name in ["db.e", "db.g"] {
        let kinds: Vec<(&str, u64)> = w
            .op(name)
            .unwrap()
            .error_kinds
            .iter()
            .map(|(k, n)| (&**k, *n))
            .collect();
        assert_eq!(kinds, [("timeout", 3)], "{name}");
    }
    assert!(w.op("db.b").unwrap().error_kinds.is_empty());
}

#[test]
fn every_nth_call_is_timed_and_stands_for_its_gap() {
    let (engine, mock) =
        manual(Engine::builder().rule("db.*", Rule::new().sampling(Sampling::Every(4))));
    let windows = engine.subscribe(4);
    let op = engine.op("db.query").unwrap();
    for _ in 0..40 {
        let t = op.start();
        mock.advance_ns(1_000);
        drop(t);
    }
    close_window_zero(&engine, &mock);
    let w = windows.try_recv().expect("window 0");
    let o = w.op("db.query").unwrap();
    assert_eq!((o.stats.count, o.stats.unsampled), (10, 30));
    assert_eq!(o.sampling, Sampling::Every(4));
    // The first call stands for itself, each later one for the 4 calls of its gap.
    assert_eq!(o.histogram.len(), 1 + 9 * 4);
    assert_eq!(o.stats.min_ns, 1_000);
}

#[test]
fn a_reload_is_seen_by_the_next_call_of_every_thread() {
    let (engine, _mock) = manual(Engine::builder());
    let op = engine.op("hot").unwrap();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (seen_tx, seen_rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        seen_tx.send(op.start().is_sampled()).unwrap();
        go_rx.recv().unwrap();
        seen_tx.send(op.start().is_sampled()).unwrap();
    });
    assert!(seen_rx.recv().unwrap(), "timed before the reload");
    engine
        .set_rule("hot", Rule::new().sampling(Sampling::CountOnly))
        .unwrap();
    go_tx.send(()).unwrap();
    assert!(
        !seen_rx.recv().unwrap(),
        "the next call after the reload is not timed"
    );
    worker.join().unwrap();
    assert!(!op.start().is_sampled());
    engine.set_rules(Rules::new()).unwrap();
    assert!(op.start().is_sampled(), "back to every call");
}

#[test]
fn slow_thresholds_follow_the_rules_and_reloads() {
    let (engine, mock) = manual(
        Engine::builder()
            .slow_threshold(10 * MS)
            .rule("fast.*", Rule::new().slow_threshold(MS)),
    );
    let fast = engine.op("fast.path").unwrap();
    let other = engine.op("other").unwrap();
    for (op, ms) in [(fast, 2), (fast, 0), (other, 2), (other, 20)] {
        let t = op.start();
        mock.advance(ms * MS);
        drop(t);
    }
    assert_eq!(totals(&engine, "fast.path").slow, 1);
    assert_eq!(totals(&engine, "other").slow, 1);
    engine
        .set_rule("other", Rule::new().slow_threshold(MS))
        .unwrap();
    other.record(2 * MS);
    assert_eq!(totals(&engine, "other").slow, 2);
    assert_eq!(
        engine.rule_of(other).unwrap().slow_threshold,
        MS,
        "the exact rule beats the defaults"
    );
}

#[test]
fn error_kinds_are_counted_per_window_even_when_unsampled() {
    let (engine, mock) =
        manual(Engine::builder().rule("rpc.bulk", Rule::new().sampling(Sampling::CountOnly)));
    let windows = engine.subscribe(4);
    let timeout = engine.error_kind("timeout").unwrap();
    let refused = engine.error_kind("refused").unwrap();
    assert_eq!(engine.error_kind("timeout").unwrap(), timeout);
    assert!(engine.error_kind("not valid").is_err());
    let call = engine.op("rpc.call").unwrap();
    let bulk = engine.op("rpc.bulk").unwrap();
    call.start().fail_with(timeout);
    call.start().fail_with(timeout);
    call.record_error_kind_ns(5, refused);
    let mut t = call.start();
    t.fail(); // no kind
    drop(t);
    bulk.start().fail_with(refused);
    close_window_zero(&engine, &mock);
    let w = windows.try_recv().unwrap();
    let c = w.op("rpc.call").unwrap();
    assert_eq!(c.stats.errors, 4);
    let kinds: Vec<(&str, u64)> = c.error_kinds.iter().map(|(k, n)| (&**k, *n)).collect();
    assert_eq!(kinds, [("timeout", 2), ("refused", 1)]);
    let b = w.op("rpc.bulk").unwrap();
    assert_eq!((b.stats.unsampled, b.stats.errors), (1, 1));
    assert_eq!(&*b.error_kinds[0].0, "refused");
}

#[test]
fn each_window_keeps_its_slowest_calls_with_their_thread() {
    let (engine, mock) = manual(Engine::builder().rule("q", Rule::new().exemplars(3)));
    let windows = engine.subscribe(4);
    let op = engine.op("q").unwrap();
    let me = ringmeter::thread_number();
    for ms in [5u32, 1, 9, 3, 7, 2, 8] {
        let t = op.start();
        mock.advance(ms * MS);
        drop(t);
    }
    let worker_number = thread::Builder::new()
        .name("slow-worker".into())
        .spawn(move || {
            op.record(50 * MS);
            ringmeter::thread_number()
        })
        .unwrap()
        .join()
        .unwrap();
    close_window_zero(&engine, &mock);
    let w = windows.try_recv().unwrap();
    let o = w.op("q").unwrap();
    let slowest: Vec<(u64, u64)> = o
        .slowest
        .iter()
        .map(|e| (e.duration_ns / 1_000_000, e.thread))
        .collect();
    assert_eq!(slowest, [(50, worker_number), (9, me), (8, me)]);
    assert_eq!(o.slowest[0].thread_name.as_deref(), Some("slow-worker"));
    // The 9 ms call ended 5 + 1 + 9 ms after the start of the mock clock.
    assert_eq!(o.slowest[1].end_unix_ns, 15_000_000);
}

#[test]
fn error_rate_threshold_flags_windows() {
    let (engine, mock) = manual(
        Engine::builder()
            .defaults(Rule::new().error_rate_threshold(0.25))
            .rule("lenient", Rule::new().error_rate_threshold(0.9)),
    );
    let windows = engine.subscribe(4);
    for name in ["strict", "lenient"] {
        let op = engine.op(name).unwrap();
        for i in 0..10 {
            let mut t = op.start();
            t.set_failed(i < 5);
        }
    }
    close_window_zero(&engine, &mock);
    let w = windows.try_recv().unwrap();
    assert!(w.op("strict").unwrap().error_rate_exceeded);
    assert!(!w.op("lenient").unwrap().error_rate_exceeded);
    assert_eq!(w.op("strict").unwrap().error_rate_threshold, 0.25);
}

#[test]
fn a_disabled_operation_is_only_counted() {
    let (engine, mock) = manual(Engine::builder().rule("off", Rule::new().enabled(false)));
    let windows = engine.subscribe(4);
    let op = engine.op("off").unwrap();
    for _ in 0..3 {
        op.time(|| ());
        op.record_ns(5);
    }
    close_window_zero(&engine, &mock);
    let w = windows.try_recv().unwrap();
    let o = w.op("off").unwrap();
    assert!(!o.enabled);
    assert_eq!((o.stats.count, o.stats.unsampled), (0, 6));
}

#[test]
fn precedence_is_api_over_env_over_file_over_defaults() {
    let file = config_file(
        "precedence",
        r#"
window_secs = 2
ring_capacity = 1024
slow_threshold_ms = 10
sample_every = 2
error_rate_threshold = 0.3
[rules."a"]
sample_every = 5
[rules."b.*"]
exemplars = 1
"#,
    );
    let path = file.to_str().unwrap();
    // File only.
    let e = Builder::from_env_with(env(&[(env::CONFIG, path)]))
        .unwrap()
        .start_manual()
        .unwrap();
    assert_eq!(e.window(), 2 * SEC);
    assert_eq!(e.ring_capacity(), 1024);
    let b = e.rule_of(e.op("b.x").unwrap()).unwrap();
    assert_eq!(b.sampling, Sampling::Every(2));
    assert_eq!(b.slow_threshold, 10 * MS);
    assert_eq!(b.error_rate_threshold, 0.3);
    assert_eq!(b.exemplars, 1);
    // Environment over file.
    let vars = [
        (env::CONFIG, path),
        (env::WINDOW_SECS, "3"),
        (env::SAMPLE_EVERY, "3"),
        (env::SLOW_THRESHOLD_MS, "20"),
        (env::RING_CAPACITY, "2048"),
        (env::ERROR_RATE_THRESHOLD, "0.4"),
    ];
    let e = Builder::from_env_with(env(&vars))
        .unwrap()
        .start_manual()
        .unwrap();
    assert_eq!((e.window(), e.ring_capacity()), (3 * SEC, 2048));
    let b = e.rule_of(e.op("b.x").unwrap()).unwrap();
    assert_eq!(
        (b.sampling, b.slow_threshold, b.error_rate_threshold),
        (Sampling::Every(3), 20 * MS, 0.4)
    );
    // A more specific rule of a lower layer still beats a higher layer's defaults.
    let a = e.rule_of(e.op("a").unwrap()).unwrap();
    assert_eq!(a.sampling, Sampling::Every(5));
    // API over environment.
    let e = Builder::from_env_with(env(&vars))
        .unwrap()
        .window(4 * SEC)
        .ring_capacity(4096)
        .slow_threshold(30 * MS)
        .rule("a", Rule::new().sampling(Sampling::Every(7)))
        .start_manual()
        .unwrap();
    assert_eq!((e.window(), e.ring_capacity()), (4 * SEC, 4096));
    assert_eq!(
        e.rule_of(e.op("a").unwrap()).unwrap().sampling,
        Sampling::Every(7)
    );
    assert_eq!(
        e.rule_of(e.op("b.y").unwrap()).unwrap().slow_threshold,
        30 * MS
    );
    // Defaults when nothing is set.
    let e = Builder::from_env_with(env(&[]))
        .unwrap()
        .start_manual()
        .unwrap();
    let default_ring = ringmeter::limits::DEFAULT_RING_CAPACITY;
    assert_eq!((e.window(), e.ring_capacity()), (SEC, default_ring));
    let d = e.rule_of(e.op("x").unwrap()).unwrap();
    assert_eq!(d, ringmeter::EffectiveRule::default());
    assert_eq!(d.sampling, Sampling::All);
    assert_eq!(d.slow_threshold, SEC);
}

#[test]
fn reload_config_applies_the_file_and_a_bad_file_keeps_the_rules_in_force() {
    let path = config_file("reload", "[rules.\"db.*\"]\nsample_every = 10\n");
    let (engine, _mock) = manual(Engine::builder().config_file(&path));
    let op = engine.op("db.query").unwrap();
    assert_eq!(engine.rule_of(op).unwrap().sampling, Sampling::Every(10));

    std::fs::write(&path, "[rules.\"db.*\"]\nsample = \"count-only\"\n").unwrap();
    engine.reload_config().unwrap();
    assert_eq!(engine.rule_of(op).unwrap().sampling, Sampling::CountOnly);
    assert!(!op.start().is_sampled());

    for (bad, expect) in [
        ("[rules.\"db.*\"]\nsample_every = -1\n", "sample_every"),
        ("[rules.\"db.*\"\nsample_every = 1\n", "TOML"),
        ("window_secs = 5\n", "window"),
        ("ring_capacity = 64\n", "ring_capacity"),
        ("log_durability = \"window\"\n", "log_durability"),
        ("[rules.\"db.*\"]\nspeed = 1\n", "speed"),
    ] {
        std::fs::write(&path, bad).unwrap();
        let err = engine.reload_config().expect_err(bad);
        let msg = err.to_string();
        assert!(
            msg.contains(expect) || (expect == "TOML" && matches!(err, Error::ConfigFile { .. })),
            "{bad}: {msg}"
        );
        assert_eq!(
            engine.rule_of(op).unwrap().sampling,
            Sampling::CountOnly,
            "{bad}: the rules in force stay"
        );
    }
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        engine.reload_config(),
        Err(Error::ConfigFile { .. })
    ));
    let (plain, _) = manual(Engine::builder());
    assert!(plain.reload_config().is_err(), "no file to reload");
}

#[test]
fn bad_configuration_stops_start_up_with_a_typed_error() {
    let cases: Vec<(Builder, &str)> = vec![
        (
            Engine::builder().rule("x", Rule::new().sampling(Sampling::Probability(f64::NAN))),
            "NaN",
        ),
        (
            Engine::builder().rule("x", Rule::new().sampling(Sampling::Probability(0.0))),
            "sampling",
        ),
        (
            Engine::builder().rule("x", Rule::new().sampling(Sampling::Every(0))),
            "sampling",
        ),
        (
            Engine::builder().defaults(Rule::new().error_rate_threshold(-1.0)),
            "error_rate_threshold",
        ),
        (Engine::builder().rule("db query", Rule::new()), "db query"),
        (
            Engine::builder().config_file("/nonexistent/ringmeter.toml"),
            "nonexistent",
        ),
        (
            Engine::builder().config_file(config_file("unknown", "colour = \"red\"\n")),
            "colour",
        ),
    ];
    for (builder, expect) in cases {
        let err = builder.start_manual().expect_err(expect);
        assert!(err.to_string().contains(expect), "{expect}: {err}");
    }
    for (var, value) in [
        (env::SAMPLE_EVERY, "often"),
        (env::WINDOW_SECS, "-1"),
        (env::ERROR_RATE_THRESHOLD, "NaN"),
        (env::RING_CAPACITY, "100"),
        (env::SLOW_THRESHOLD_MS, ""),
    ] {
        let err = Builder::from_env_with(env(&[(var, value)])).expect_err(var);
        let msg = err.to_string();
        assert!(msg.contains(var), "{msg}");
        assert!(matches!(err, Error::InvalidConfig { .. }), "{msg}");
    }
    // A bad rule set at runtime keeps the rules in force.
    let (engine, _) = manual(Engine::builder().rule("x", Rule::new().sampling(Sampling::Every(2))));
    let x = engine.op("x").unwrap();
    let bad = Rules::new().rule("x", Rule::new().exemplars(1_000));
    assert!(engine.set_rules(bad).is_err());
    assert_eq!(engine.rule_of(x).unwrap().sampling, Sampling::Every(2));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Weighted histogram totals estimate every call. With `Every(n)` the estimate misses at
    /// most the unsampled tail after the last sampled call (`< n` calls); with a probability
    /// `p` the tail is geometric, and the test allows 25 / p (exceeded with probability
    /// e^-25). The weighted median of uniform durations stays within 5% of the range.
    #[test]
    fn weighted_histograms_estimate_every_call(
        every in prop::option::of(2u32..200),
        p in 0.01f64..0.9,
        calls in 5_000u64..40_000,
        seed in any::<u64>(),
    ) {
        let sampling = every.map_or(Sampling::Probability(p), Sampling::Every);
        let (engine, mock) = manual(
            Engine::builder()
                .ring_capacity(1 << 16) // holds every event: no drops
                .rule("s", Rule::new().sampling(sampling)),
        );
        let windows = engine.subscribe(4);
        let op = engine.op("s").unwrap();
        let mut x = seed | 1;
        for _ in 0..calls {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            op.record_ns(1_000 + x % 1_000);
        }
        close_window_zero(&engine, &mock);
        let w = windows.try_recv().unwrap();
        let o = w.op("s").unwrap();
        prop_assert_eq!(o.stats.dropped, 0);
        prop_assert_eq!(o.stats.count + o.stats.unsampled, calls);
        let estimate = o.histogram.len();
        prop_assert!(estimate <= calls);
        let tail = calls - estimate;
        match every {
            Some(n) => prop_assert!(tail < u64::from(n), "tail {} for every {}", tail, n),
            None => prop_assert!((tail as f64) < 25.0 / p, "tail {} for p {}", tail, p),
        }
        if o.stats.count >= 200 {
            let median = o.histogram.value_at_quantile(0.5) as f64;
            prop_assert!((median - 1_500.0).abs() < 50.0 + 1_000.0 * 3.0 / (o.stats.count as f64).sqrt(),
                "median {} from {} samples", median, o.stats.count);
        }
    }
}

#[test]
fn the_largest_operation_table_registers_with_rules_on_every_operation() {
    let (engine, _mock) = manual(
        Engine::builder()
            .max_operations(ringmeter::MAX_OPERATIONS)
            .rule("op.*", Rule::new().sampling(Sampling::Every(2))),
    );
    let ops: Vec<_> = (0..ringmeter::MAX_OPERATIONS)
        .map(|i| engine.op(&format!("op.n{i}")).unwrap())
        .collect();
    let last = ringmeter::MAX_OPERATIONS - 1;
    for op in [ops[0], ops[40_000], ops[last]] {
        for _ in 0..4 {
            op.record_ns(10);
        }
    }
    engine.flush().unwrap();
    for name in [
        "op.n0".to_owned(),
        "op.n40000".to_owned(),
        format!("op.n{last}"),
    ] {
        let s = engine.snapshot().totals(&name).cloned().unwrap();
        assert_eq!((s.count, s.unsampled), (2, 2), "{name}");
    }
}

#[test]
fn the_window_log_keeps_sampling_exemplars_error_kinds_and_config_changes() {
    use ringmeter::log::{EngineEventKind, Reader, Record};
    let dir = std::env::temp_dir().join(format!("ringmeter-sampling-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (engine, mock) = manual(
        Engine::builder()
            .log_dir(&dir)
            .rule("q", Rule::new().sampling(Sampling::Every(4)).exemplars(2)),
    );
    let timeout = engine.error_kind("timeout").unwrap();
    let q = engine.op("q").unwrap();
    for i in 0..40u64 {
        let t = q.start();
        mock.advance_ns(1_000 + i);
        if i == 5 {
            t.fail_with(timeout);
        } else {
            drop(t);
        }
    }
    engine
        .set_rule("q", Rule::new().slow_threshold(MS))
        .unwrap();
    close_window_zero(&engine, &mock);
    engine.shutdown().unwrap();

    let (records, integrity) = Reader::read_all(&dir).unwrap();
    assert!(integrity.is_clean(), "{integrity:?}");
    let w = records
        .iter()
        .find_map(|r| match r {
            Record::Window(w) if &*w.op == "q" && w.index == 0 => Some(w),
            _ => None,
        })
        .expect("window 0 of q");
    assert_eq!(w.sampling, Sampling::Every(4));
    assert_eq!(
        (w.stats.count, w.unsampled, w.stats.unsampled),
        (10, 30, 30)
    );
    assert_eq!(w.stats.errors, 1);
    assert_eq!(w.slow_threshold_ns, 1_000_000);
    assert_eq!(w.slowest.len(), 2);
    assert_eq!(w.slowest[0].thread, ringmeter::thread_number());
    assert_eq!(w.error_kinds, vec![(std::sync::Arc::from("timeout"), 1)]);
    let change = records.iter().find_map(|r| match r {
        Record::Event(e) if e.kind == EngineEventKind::ConfigChange => Some(e),
        _ => None,
    });
    let change = change.expect("a configuration change event");
    assert!(
        change
            .detail
            .contains("rules.\"q\".slow_threshold_ns=1000000"),
        "{}",
        change.detail
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
