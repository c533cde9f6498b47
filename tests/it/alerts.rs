//! Alert rules in a running engine, driven window by window by the mock clock: pending,
//! firing once, resolved, cooldown; callbacks, the snapshot, the window log and the
//! configuration file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringmeter::alert::{Alert, AlertRule, AlertState};
use ringmeter::log::{Reader, Record};
use ringmeter::{Clock, Engine, MockClock, Op};

struct Rig {
    engine: Engine,
    mock: MockClock,
    seen: Arc<Mutex<Vec<Vec<Alert>>>>,
}

impl Rig {
    fn new(builder: ringmeter::Builder) -> Rig {
        let (clock, mock) = Clock::mock();
        mock.advance(Duration::from_millis(500));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let engine = builder
            .clock(clock)
            .on_alert(move |n| sink.lock().unwrap().push(n.to_vec()))
            .start_manual()
            .unwrap();
        Rig { engine, mock, seen }
    }

    /// One window of `calls` calls of `ns` each, `failures` of them failing; then closes it.
    fn window(&self, op: Op, calls: u32, failures: u32, ns: u64) {
        for i in 0..calls {
            let _ = op.time_result(|| {
                self.mock.advance_ns(ns);
                if i < failures {
                    Err("failed")
                } else {
                    Ok(())
                }
            });
        }
        self.mock.advance(Duration::from_secs(1));
        self.mock.advance_ns(0);
        self.engine.flush().unwrap();
    }

    /// The notices delivered since the last call, as (state, op) per group.
    fn take(&self) -> Vec<Vec<(AlertState, String)>> {
        std::mem::take(&mut *self.seen.lock().unwrap())
            .into_iter()
            .map(|g| {
                g.into_iter()
                    .map(|a| (a.state, a.operation.to_string()))
                    .collect()
            })
            .collect()
    }
}

#[test]
fn error_rate_pending_firing_once_resolved_and_cooldown() {
    let dir = std::env::temp_dir().join(format!("ringmeter-alerts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rule = AlertRule::error_rate("db-errors", "db.*", 0.1)
        .for_windows(2)
        .cooldown(Duration::from_secs(3));
    let rig = Rig::new(Engine::builder().alert(rule).log_dir(&dir));
    let db = rig.engine.op("db.query").unwrap();
    let fire = || vec![vec![(AlertState::Firing, "db.query".to_owned())]];
    let resolve = || vec![vec![(AlertState::Resolved, "db.query".to_owned())]];

    rig.window(db, 10, 5, 1_000); // breach 1: pending
    assert!(rig.take().is_empty());
    rig.window(db, 10, 0, 1_000); // clears: a pending run ends silently
    rig.window(db, 10, 5, 1_000); // breach 1
    rig.window(db, 10, 5, 1_000); // breach 2: firing
    assert_eq!(rig.take(), fire());
    assert_eq!(rig.engine.snapshot().alerts.len(), 1);
    for _ in 0..5 {
        rig.window(db, 10, 9, 1_000); // still firing: deduplicated
    }
    assert!(rig.take().is_empty());
    rig.window(db, 10, 1, 1_000); // 0.1 is not above 0.1: resolved
    assert_eq!(rig.take(), resolve());
    assert!(rig.engine.snapshot().alerts.is_empty());
    // Breaching again within the 3 s cooldown: held back, released when it ends.
    rig.window(db, 10, 5, 1_000);
    rig.window(db, 10, 5, 1_000);
    assert!(rig.take().is_empty(), "cooldown holds the re-fire");
    rig.window(db, 10, 5, 1_000);
    assert_eq!(rig.take(), fire());
    // Shutdown closes the open window, which saw no call: the alert resolves.
    rig.engine.shutdown().unwrap();
    assert_eq!(rig.take(), resolve());

    // The notices are in the window log too, in order.
    let logged: Vec<Alert> = Reader::open(&dir)
        .unwrap()
        .filter_map(|r| match r.unwrap() {
            Record::Alert(a) => Some(a),
            _ => None,
        })
        .collect();
    let states: Vec<AlertState> = logged.iter().map(|a| a.state).collect();
    use AlertState::{Firing, Resolved};
    assert_eq!(states, [Firing, Resolved, Firing, Resolved]);
    assert_eq!(logged[0].value, Some(0.5));
    assert_eq!(logged[0].windows_breached, 2);
    assert_eq!(&*logged[0].rule, "db-errors");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn percentile_and_slow_call_rules_group_their_notices() {
    let rig = Rig::new(
        Engine::builder()
            .slow_threshold(Duration::from_millis(1))
            .alert(AlertRule::percentile(
                "p95-budget",
                "*",
                0.95,
                Duration::from_millis(2),
            ))
            .alert(AlertRule::slow_calls("slow", "http.*", 3)),
    );
    let a = rig.engine.op("http.get").unwrap();
    let b = rig.engine.op("http.put").unwrap();
    // Both operations slow in one window: p95 of 5 ms, 10 slow calls each.
    for op in [a, b] {
        for _ in 0..10 {
            op.time(|| rig.mock.advance(Duration::from_millis(5)));
        }
    }
    rig.window(a, 0, 0, 0);
    let groups = rig.take();
    assert_eq!(groups.len(), 1, "one group per window close");
    let firing = |op: &str| (AlertState::Firing, op.to_owned());
    assert_eq!(
        groups[0],
        [
            firing("http.get"),
            firing("http.put"),
            firing("http.get"),
            firing("http.put")
        ]
    );
    // A quiet window resolves all four.
    rig.window(a, 1, 0, 1_000);
    let groups = rig.take();
    assert_eq!(groups[0].len(), 4);
    assert!(groups[0].iter().all(|(s, _)| *s == AlertState::Resolved));
}

#[test]
fn rules_change_at_runtime_and_bad_rules_keep_the_old_ones() {
    let rig = Rig::new(Engine::builder().alert(AlertRule::slow_calls("slow", "db.*", 0)));
    let db = rig.engine.op("db.query").unwrap();
    let e = &rig.engine;
    for bad in [
        AlertRule::error_rate("x", "db.*", f64::NAN),
        AlertRule::error_rate("x", "db.*", 1.5),
        AlertRule::error_rate("x", "db-*", 0.1),
        AlertRule::error_rate("", "db.*", 0.1),
        AlertRule::percentile("x", "db.*", 0.0, Duration::from_millis(1)),
        AlertRule::slow_calls("x", "db.*", 1).for_windows(0),
    ] {
        let err = e.set_alert_rules(vec![bad.clone()]).unwrap_err();
        assert!(err.to_string().contains("alert"), "{bad:?}: {err}");
    }
    let twice = vec![
        AlertRule::slow_calls("x", "db.*", 1),
        AlertRule::slow_calls("x", "db.*", 2),
    ];
    assert!(e.set_alert_rules(twice).is_err());
    assert!(Engine::builder()
        .alert(AlertRule::error_rate("x", "*", -1.0))
        .start_manual()
        .is_err());
    // The rule in force still fires on a slow call (threshold 0 slow calls; default slow
    // threshold 1 s).
    db.time(|| rig.mock.advance(Duration::from_secs(2)));
    rig.window(db, 0, 0, 0);
    assert_eq!(rig.take().len(), 1);
    // Removing a firing rule resolves it.
    e.set_alert_rules(Vec::new()).unwrap();
    assert_eq!(
        rig.take(),
        vec![vec![(AlertState::Resolved, "db.query".to_owned())]]
    );
}

#[test]
fn the_configuration_file_defines_and_reloads_alerts() {
    let dir = std::env::temp_dir().join(format!("ringmeter-alert-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ringmeter.toml");
    let rules = "[[alert]]\nname = \"db-errors\"\nop = \"db.*\"\nerror_rate_above = 0.2\n";
    std::fs::write(&file, rules).unwrap();
    let rig = Rig::new(Engine::builder().config_file(&file));
    let db = rig.engine.op("db.query").unwrap();
    rig.window(db, 10, 5, 1_000);
    assert_eq!(rig.take().len(), 1);
    // A bad file is refused and the rules stay.
    std::fs::write(&file, "[[alert]]\nname = \"x\"\nop = \"db.*\"\n").unwrap();
    let err = rig.engine.reload_config().unwrap_err().to_string();
    assert!(err.contains("alert[0]"), "{err}");
    // Reloading without the rule resolves the alert.
    std::fs::write(&file, "").unwrap();
    rig.engine.reload_config().unwrap();
    assert_eq!(
        rig.take(),
        vec![vec![(AlertState::Resolved, "db.query".to_owned())]]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
