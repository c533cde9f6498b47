//! Anomaly and budget rules in a running engine on the mock clock: a step in latency fires
//! after `for_windows` and resolves; a budget's burn in the snapshot, the Prometheus
//! exposition (checked by `promtool` when installed) and as an alert; both from the
//! configuration file, whose bad values are refused with their key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringmeter::alert::{Alert, AlertRule, AlertState, Condition, Signal};
use ringmeter::export::prom::Format;
use ringmeter::log::{Reader, Record};
use ringmeter::{Clock, Engine, MockClock, Op};

use crate::util::tools::promtool_accepts;

const SEC: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;

/// An engine with 1-second windows on a mock clock, and the notices it sent.
struct Rig {
    engine: Engine,
    mock: MockClock,
    seen: Arc<Mutex<Vec<Alert>>>,
    /// Index of the window the next calls go into.
    next: u64,
}

impl Rig {
    fn new(builder: ringmeter::Builder) -> Rig {
        let (clock, mock) = Clock::mock();
        mock.advance_ns(SEC / 2);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let engine = builder
            .clock(clock)
            .window(Duration::from_secs(1))
            .on_alert(move |n| sink.lock().unwrap().extend_from_slice(n))
            .start_manual()
            .unwrap();
        Rig {
            engine,
            mock,
            seen,
            next: 0,
        }
    }

    /// One window: a call of each duration, the first `failures` of them failing; then the
    /// clock moves to the middle of the next window and the window closes.
    fn window(&mut self, op: Op, durations: &[u64], failures: usize) {
        for (i, &ns) in durations.iter().enumerate() {
            let _ = op.time_result(|| {
                self.mock.advance_ns(ns);
                if i < failures {
                    Err("failed")
                } else {
                    Ok(())
                }
            });
        }
        self.next += 1;
        let mid = self.next * SEC + SEC / 2;
        self.mock.advance_ns(mid - self.mock.now_ns());
        self.engine.flush().unwrap();
    }

    /// (state, rule) of the notices since the last call.
    fn take(&self) -> Vec<(AlertState, String)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
            .into_iter()
            .map(|a| (a.state, a.rule.to_string()))
            .collect()
    }
}

/// Twenty calls around `ms` milliseconds, a few microseconds apart.
fn calls(ms: u64, jitter: u64) -> Vec<u64> {
    (0..20)
        .map(|i| ms * MS + (i + jitter) % 4 * 10_000)
        .collect()
}

#[test]
fn a_latency_step_fires_after_for_windows_and_resolves() {
    let dir = std::env::temp_dir().join(format!("ringmeter-anomaly-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rule = AlertRule::anomaly("p99-step", "db.*", Signal::Latency { quantile: 0.99 }, 3.0)
        .warmup_windows(5)
        .for_windows(2);
    let mut rig = Rig::new(Engine::builder().alert(rule.clone()).log_dir(&dir));
    let db = rig.engine.op("db.query").unwrap();
    for i in 0..8 {
        rig.window(db, &calls(1, i), 0);
    }
    assert!(rig.take().is_empty(), "a steady level does not fire");
    rig.window(db, &calls(10, 0), 0);
    assert!(rig.take().is_empty(), "pending");
    rig.window(db, &calls(10, 1), 0);
    assert_eq!(rig.take(), [(AlertState::Firing, "p99-step".to_owned())]);
    let active = rig.engine.snapshot().alerts.clone();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].condition, rule.condition());
    assert!(active[0].value.unwrap() > 3.0);
    rig.window(db, &calls(10, 2), 0);
    assert!(rig.take().is_empty(), "deduplicated");
    rig.window(db, &calls(1, 0), 0);
    assert_eq!(rig.take(), [(AlertState::Resolved, "p99-step".to_owned())]);
    assert!(rig.engine.snapshot().alerts.is_empty());
    rig.engine.shutdown().unwrap();

    let logged: Vec<Alert> = Reader::open(&dir)
        .unwrap()
        .filter_map(|r| match r.unwrap() {
            Record::Alert(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[0].condition, rule.condition());
    assert_eq!(logged[0].windows_breached, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_error_rate_jump_fires_and_the_baseline_ignores_thin_windows() {
    let rule = AlertRule::anomaly("errors", "*", Signal::ErrorRate, 3.0)
        .warmup_windows(3)
        .min_calls(10);
    let mut rig = Rig::new(Engine::builder().alert(rule));
    let op = rig.engine.op("rpc.call").unwrap();
    for _ in 0..4 {
        rig.window(op, &[MS; 20], 1); // 5% errors
    }
    rig.window(op, &[MS; 2], 2); // 100%, but 2 calls: no breach, not in the baseline
    rig.window(op, &[MS; 20], 1);
    assert!(rig.take().is_empty());
    rig.window(op, &[MS; 20], 8); // 40%
    assert_eq!(rig.take(), [(AlertState::Firing, "errors".to_owned())]);
}

#[test]
fn a_budget_from_the_file_burns_in_the_snapshot_the_exposition_and_alerts() {
    let dir = std::env::temp_dir().join(format!("ringmeter-budget-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ringmeter.toml");
    let rules = r#"
        [[alert]]
        name = "get-p75"
        op = "http.*"
        budget_quantile = 0.75
        budget_ms = 10
        period_secs = 3
    "#;
    std::fs::write(&file, rules).unwrap();
    let mut rig = Rig::new(Engine::builder().config_file(&file));
    let get = rig.engine.op("http.get").unwrap();
    // `fast` calls of 1 ms, `slow` of 20 ms (at most 20 in all: they fit in half a window).
    let mix = |fast: usize, slow: usize| {
        let mut d = vec![MS; fast];
        d.resize(fast + slow, 20 * MS);
        d
    };
    rig.window(get, &mix(9, 1), 0);
    let snap = rig.engine.snapshot();
    assert_eq!(snap.budgets.len(), 1);
    let b = &snap.budgets[0];
    assert_eq!(
        (&*b.rule, &*b.operation, b.calls, b.over, b.period_windows),
        ("get-p75", "http.get", 10, 1, 3)
    );
    assert_eq!(b.burn, 1.0 / 10.0 / 0.25);
    assert!(rig.take().is_empty());

    rig.window(get, &mix(5, 5), 0); // 6 of 20 over: burn 1.2
    assert_eq!(rig.take(), [(AlertState::Firing, "get-p75".to_owned())]);
    let snap = rig.engine.snapshot();
    let burn = 6.0 / 20.0 / 0.25;
    assert_eq!(snap.budgets[0].burn, burn);
    assert!(matches!(
        snap.alerts[0].condition,
        Condition::BudgetBurn { burn_above, period_ns, .. } if burn_above == 1.0 && period_ns == 3 * SEC
    ));
    let text = rig.engine.render_metrics(Format::Text);
    let line = format!("ringmeter_budget_burn{{budget=\"get-p75\",op=\"http.get\"}} {burn}\n");
    assert!(String::from_utf8_lossy(&text).contains(&line), "{line}");
    promtool_accepts(std::str::from_utf8(&text).unwrap());
    let open = String::from_utf8(rig.engine.render_metrics(Format::OpenMetrics)).unwrap();
    assert!(open.contains(&line) && open.ends_with("# EOF\n"));

    // Fast windows push the slow ones out of the 3-window period.
    rig.window(get, &mix(20, 0), 0); // 6 of 40: 0.6
    assert_eq!(rig.take(), [(AlertState::Resolved, "get-p75".to_owned())]);
    rig.window(get, &mix(20, 0), 0);
    rig.window(get, &mix(20, 0), 0);
    assert_eq!(rig.engine.snapshot().budgets[0].over, 0);

    // A bad value is refused with its key, and the budget stays.
    std::fs::write(&file, rules.replace("period_secs = 3", "period_secs = 0")).unwrap();
    let err = rig.engine.reload_config().unwrap_err().to_string();
    assert!(err.contains("alert[0].period_secs"), "{err}");
    rig.window(get, &mix(0, 20), 0);
    assert_eq!(rig.take(), [(AlertState::Firing, "get-p75".to_owned())]);
    // Without budgets there is no burn family.
    std::fs::write(&file, "").unwrap();
    rig.engine.reload_config().unwrap();
    rig.window(get, &mix(1, 0), 0);
    assert!(rig.engine.snapshot().budgets.is_empty());
    let text = String::from_utf8(rig.engine.render_metrics(Format::Text)).unwrap();
    assert!(!text.contains("ringmeter_budget_burn"));
    let _ = std::fs::remove_dir_all(&dir);
}
