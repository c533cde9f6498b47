//! The evaluator's state machine, driven window by window on a mock time line (window `i`
//! covers `[i * LEN, (i + 1) * LEN)`), and once through a real engine on a mock clock.

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use proptest::prelude::*;

use super::{Alert, AlertRule, AlertState, Condition, Evaluator, OpSample, Signal};
use crate::{Clock, Engine, Error, OpStats};

/// Window length: one second.
const LEN: u64 = 1_000_000_000;
const SEC: Duration = Duration::from_secs(1);

/// One operation's window, built by hand.
struct TestOp {
    id: u32,
    name: Arc<str>,
    stats: OpStats,
    hist: Histogram<u64>,
}

impl OpSample for TestOp {
    fn op_id(&self) -> u32 {
        self.id
    }
    fn op_name(&self) -> &Arc<str> {
        &self.name
    }
    fn calls(&self) -> u64 {
        self.stats.calls()
    }
    fn errors(&self) -> u64 {
        self.stats.errors
    }
    fn recorded(&self) -> u64 {
        self.stats.count
    }
    fn slow(&self) -> u64 {
        self.stats.slow
    }
    fn min_ns(&self) -> u64 {
        self.stats.min_ns
    }
    fn max_ns(&self) -> u64 {
        self.stats.max_ns
    }
    fn value_at_quantile(&self, quantile: f64) -> u64 {
        self.hist.value_at_quantile(quantile)
    }
    fn timed_weight(&self) -> u64 {
        self.hist.len()
    }
    fn weight_above(&self, limit_ns: u64) -> u64 {
        if self.stats.max_ns <= limit_ns {
            return 0;
        }
        self.hist
            .iter_recorded()
            .filter(|v| self.hist.lowest_equivalent(v.value_iterated_to()) > limit_ns)
            .map(|v| v.count_at_value())
            .sum()
    }
}

fn new_op(id: u32, name: &str, stats: OpStats) -> TestOp {
    TestOp {
        id,
        name: Arc::from(name),
        stats,
        hist: Histogram::new(3).unwrap(),
    }
}

/// `calls` calls, `errors` of them failed.
fn errs(id: u32, name: &str, calls: u64, errors: u64) -> TestOp {
    new_op(
        id,
        name,
        OpStats {
            count: calls,
            errors,
            ..OpStats::default()
        },
    )
}

/// Ten calls, `slow` of them slow.
fn slow(id: u32, name: &str, slow: u64) -> TestOp {
    new_op(
        id,
        name,
        OpStats {
            count: 10.max(slow),
            slow,
            ..OpStats::default()
        },
    )
}

/// Calls with these durations.
fn lat(id: u32, name: &str, durations_ns: &[u64]) -> TestOp {
    let mut op = new_op(
        id,
        name,
        OpStats {
            count: durations_ns.len() as u64,
            min_ns: durations_ns.iter().copied().min().unwrap_or(0),
            max_ns: durations_ns.iter().copied().max().unwrap_or(0),
            ..OpStats::default()
        },
    );
    for &d in durations_ns {
        op.hist.record(d).unwrap();
    }
    op
}

/// An evaluator and the index of the next window.
struct Timeline {
    ev: Evaluator,
    next: u64,
}

impl Timeline {
    fn new(rules: Vec<AlertRule>) -> Self {
        Self {
            ev: Evaluator::new(rules).expect("valid rules"),
            next: 0,
        }
    }

    /// Evaluates the next window.
    fn window(&mut self, ops: &[TestOp]) -> Vec<Alert> {
        let out = self.ev.evaluate_ops(self.next * LEN, LEN, ops);
        self.next += 1;
        out
    }

    /// Evaluates the next `n` windows with the same operations; returns every notice.
    fn windows(&mut self, n: u64, ops: &[TestOp]) -> Vec<Alert> {
        (0..n).flat_map(|_| self.window(ops)).collect()
    }
}

/// (state, rule, operation) of each notice.
fn brief(alerts: &[Alert]) -> Vec<(AlertState, &str, &str)> {
    alerts
        .iter()
        .map(|a| (a.state, &*a.rule, &*a.operation))
        .collect()
}

use AlertState::{Firing, Resolved};

#[test]
fn a_pending_run_that_ends_sends_nothing() {
    let mut t = Timeline::new(vec![AlertRule::slow_calls("s", "db.*", 0).for_windows(3)]);
    let hot = [slow(0, "db.q", 1)];
    let cool = [slow(0, "db.q", 0)];
    for _ in 0..5 {
        assert!(t.windows(2, &hot).is_empty());
        assert_eq!(t.ev.tracked(), 1, "pending");
        assert!(t.window(&cool).is_empty());
        assert_eq!(t.ev.tracked(), 0, "a cleared pending run leaves no state");
    }
    assert!(t.ev.active().is_empty());
}

#[test]
fn fires_after_exactly_for_windows_breaching_windows() {
    let mut t = Timeline::new(vec![AlertRule::error_rate("e", "db.q", 0.1).for_windows(3)]);
    assert!(t.window(&[errs(0, "db.q", 10, 0)]).is_empty());
    let hot = [errs(0, "db.q", 10, 5)];
    assert!(t.window(&hot).is_empty()); // window 1: run 1
    assert!(t.window(&hot).is_empty()); // window 2: run 2
    let fired = t.window(&hot); // window 3: run 3
    assert_eq!(
        fired,
        vec![Alert {
            rule: Arc::from("e"),
            operation: Arc::from("db.q"),
            state: Firing,
            condition: Condition::ErrorRate { above: 0.1 },
            value: Some(0.5),
            calls: 10,
            window_start_unix_ns: 3 * LEN,
            window_end_unix_ns: 4 * LEN,
            since_unix_ns: LEN,
            windows_breached: 3,
        }]
    );
    // Exactly at the threshold does not breach.
    assert_eq!(
        brief(&t.window(&[errs(0, "db.q", 10, 1)])),
        [(Resolved, "e", "db.q")]
    );
}

#[test]
fn a_long_breach_fires_once_and_stays_active() {
    let mut t = Timeline::new(vec![AlertRule::slow_calls("s", "*", 2).for_windows(2)]);
    let hot = [slow(7, "x", 3)];
    let all = t.windows(50, &hot);
    assert_eq!(brief(&all), [(Firing, "s", "x")]);
    assert_eq!(all[0].window_start_unix_ns, LEN);
    let active = t.ev.active();
    assert_eq!(brief(&active), [(Firing, "s", "x")]);
    assert_eq!(active[0].windows_breached, 50);
    assert_eq!(active[0].since_unix_ns, 0);
    assert_eq!(active[0].window_start_unix_ns, 49 * LEN);
    assert_eq!(active[0].value, Some(3.0));
    assert_eq!(t.ev.tracked(), 1);
}

#[test]
fn a_resolved_notice_reports_the_run_that_ended() {
    let mut t = Timeline::new(vec![AlertRule::slow_calls("s", "x", 0)]);
    assert!(t.window(&[slow(0, "x", 0)]).is_empty());
    assert_eq!(t.windows(4, &[slow(0, "x", 2)]).len(), 1);
    let resolved = t.window(&[slow(0, "x", 0)]);
    assert_eq!(
        resolved,
        vec![Alert {
            rule: Arc::from("s"),
            operation: Arc::from("x"),
            state: Resolved,
            condition: Condition::SlowCalls { above: 0 },
            value: Some(0.0),
            calls: 10,
            window_start_unix_ns: 5 * LEN,
            window_end_unix_ns: 6 * LEN,
            since_unix_ns: LEN,
            windows_breached: 4,
        }]
    );
    assert!(t.windows(3, &[slow(0, "x", 0)]).is_empty());
    assert!(t.ev.active().is_empty());
    assert_eq!(t.ev.tracked(), 0, "no cooldown: nothing to remember");
    // Without a cooldown it fires again at once.
    assert_eq!(brief(&t.window(&[slow(0, "x", 1)])), [(Firing, "s", "x")]);
}

#[test]
fn cooldown_holds_back_a_refire_and_releases_it_if_still_breaching() {
    let rule = AlertRule::slow_calls("s", "x", 0).cooldown(3 * SEC);
    let mut t = Timeline::new(vec![rule]);
    let hot = [slow(0, "x", 1)];
    let cool = [slow(0, "x", 0)];
    assert_eq!(brief(&t.window(&hot)), [(Firing, "s", "x")]); // window 0
    let r = t.window(&cool); // window 1 ends at 2 s: cooldown until 5 s
    assert_eq!((r[0].state, r[0].window_end_unix_ns), (Resolved, 2 * LEN));
    assert!(t.window(&hot).is_empty(), "window 2 ends at 3 s: held");
    assert!(t.window(&hot).is_empty(), "window 3 ends at 4 s: held");
    assert!(t.ev.active().is_empty(), "held back, so not active");
    let f = t.window(&hot); // window 4 ends at 5 s: released
    assert_eq!(brief(&f), [(Firing, "s", "x")]);
    assert_eq!(
        (f[0].since_unix_ns, f[0].windows_breached),
        (2 * LEN, 3),
        "the run counted through the cooldown"
    );

    // A breach that clears before the cooldown ends sends nothing.
    assert_eq!(t.window(&cool)[0].state, Resolved); // window 5 ends at 6 s: until 9 s
    assert!(t.window(&hot).is_empty()); // window 6
    assert!(t.window(&cool).is_empty()); // window 7
    assert_eq!(t.ev.tracked(), 1, "still cooling down");
    // The first breach once the cooldown is over fires (window 8 ends at 9 s).
    assert_eq!(brief(&t.window(&hot)), [(Firing, "s", "x")]);
    assert_eq!(t.window(&cool)[0].state, Resolved); // window 9 ends at 10 s: until 13 s
    assert!(t.windows(2, &cool).is_empty()); // windows 10, 11 end at 11 s, 12 s
    assert_eq!(t.ev.tracked(), 1);
    assert!(t.window(&cool).is_empty()); // window 12 ends at 13 s: cooldown over
    assert_eq!(t.ev.tracked(), 0, "cooldown over: state dropped");
}

#[test]
fn cooldown_and_for_windows_together() {
    // A re-fire needs both: the run of for_windows and the cooldown over.
    let rule = AlertRule::slow_calls("s", "x", 0)
        .for_windows(2)
        .cooldown(SEC);
    let mut t = Timeline::new(vec![rule]);
    let hot = [slow(0, "x", 1)];
    let cool = [slow(0, "x", 0)];
    assert_eq!(t.windows(2, &hot).len(), 1);
    assert_eq!(t.window(&cool)[0].state, Resolved); // window 2 ends at 3 s: until 4 s
    assert!(t.window(&hot).is_empty(), "cooldown over but run 1 < 2");
    assert_eq!(brief(&t.window(&hot)), [(Firing, "s", "x")]);
}

#[test]
fn windows_with_fewer_than_min_calls_do_not_breach() {
    let rule = AlertRule::error_rate("e", "x", 0.1).min_calls(10);
    let mut t = Timeline::new(vec![rule]);
    assert!(t.window(&[errs(0, "x", 9, 9)]).is_empty(), "9 calls");
    assert_eq!(t.ev.tracked(), 0);
    assert_eq!(
        brief(&t.window(&[errs(0, "x", 10, 2)])),
        [(Firing, "e", "x")]
    );
    let r = t.window(&[errs(0, "x", 5, 5)]);
    assert_eq!(brief(&r), [(Resolved, "e", "x")]);
    assert_eq!((r[0].value, r[0].calls), (Some(1.0), 5));
    // Dropped and unsampled calls count as calls, both for min_calls and the rate.
    let mixed = new_op(
        0,
        "x",
        OpStats {
            count: 2,
            dropped: 4,
            unsampled: 4,
            errors: 2,
            ..OpStats::default()
        },
    );
    let f = t.window(&[mixed]);
    assert_eq!(
        (f[0].state, f[0].value, f[0].calls),
        (Firing, Some(0.2), 10)
    );
}

#[test]
fn percentiles_come_from_the_histogram_within_exact_bounds() {
    let ms = 1_000_000;
    let rule = AlertRule::percentile("p", "x", 0.5, Duration::from_millis(10));
    let mut t = Timeline::new(vec![rule]);
    assert!(t.window(&[lat(0, "x", &[ms, 2 * ms, 30 * ms])]).is_empty());
    let f = t.window(&[lat(0, "x", &[ms, 20 * ms, 30 * ms])]);
    assert_eq!(f[0].state, Firing);
    let v = f[0].value.unwrap();
    assert!((v - 20e6).abs() <= 20e6 * 1e-3, "p50 {v}");

    // q = 1: the histogram's bucket top is clamped to the exact maximum.
    let max = 123_456_789;
    let rule = AlertRule::percentile("max", "x", 1.0, Duration::from_nanos(max - 1));
    let mut t = Timeline::new(vec![rule]);
    let f = t.window(&[lat(0, "x", &[5, max])]);
    assert_eq!(f[0].value, Some(max as f64));
    // A window with calls but none timed (all dropped) has no latency: no breach.
    let dropped = new_op(
        0,
        "x",
        OpStats {
            dropped: 100,
            ..OpStats::default()
        },
    );
    let r = t.window(&[dropped]);
    assert_eq!((r[0].state, r[0].value, r[0].calls), (Resolved, None, 100));
}

#[test]
fn one_pattern_on_several_operations_gives_ordered_groups() {
    let rules = vec![
        AlertRule::slow_calls("z-first", "db.*", 0),
        AlertRule::slow_calls("a-second", "*", 0).for_windows(2),
    ];
    let mut t = Timeline::new(rules);
    // Ids are not in name order.
    let hot = [
        slow(0, "db.zeta", 1),
        slow(1, "api.get", 1),
        slow(2, "db.alpha", 1),
    ];
    assert_eq!(
        brief(&t.window(&hot)),
        [
            (Firing, "z-first", "db.alpha"),
            (Firing, "z-first", "db.zeta")
        ]
    );
    assert_eq!(
        brief(&t.window(&hot)),
        [
            (Firing, "a-second", "api.get"),
            (Firing, "a-second", "db.alpha"),
            (Firing, "a-second", "db.zeta"),
        ]
    );
    // Everything clears at once: one group, same order.
    assert_eq!(
        brief(&t.window(&[])),
        [
            (Resolved, "z-first", "db.alpha"),
            (Resolved, "z-first", "db.zeta"),
            (Resolved, "a-second", "api.get"),
            (Resolved, "a-second", "db.alpha"),
            (Resolved, "a-second", "db.zeta"),
        ]
    );
}

#[test]
fn an_operation_that_disappears_resolves() {
    let mut t = Timeline::new(vec![AlertRule::error_rate("e", "*", 0.0)]);
    assert_eq!(t.window(&[errs(3, "x", 1, 1), errs(4, "y", 1, 0)]).len(), 1);
    let r = t.window(&[errs(4, "y", 1, 0)]); // x saw no call
    assert_eq!(brief(&r), [(Resolved, "e", "x")]);
    assert_eq!(
        (r[0].value, r[0].calls, r[0].windows_breached),
        (None, 0, 1)
    );
    assert_eq!(t.ev.tracked(), 0);
}

#[test]
fn skipped_windows_end_runs_and_resolve() {
    let mut t = Timeline::new(vec![AlertRule::slow_calls("s", "x", 0).for_windows(2)]);
    let hot = [slow(0, "x", 1)];
    assert_eq!(t.windows(2, &hot).len(), 1); // windows 0, 1: firing
    t.next = 5; // windows 2 to 4 had no event and were not reported
    let out = t.window(&hot);
    assert_eq!(brief(&out), [(Resolved, "s", "x")]);
    assert_eq!(
        (out[0].window_start_unix_ns, out[0].window_end_unix_ns),
        (2 * LEN, 5 * LEN)
    );
    assert_eq!(t.ev.tracked(), 1, "window 5 starts a new run: pending");
    t.next = 9;
    assert!(
        t.window(&hot).is_empty(),
        "the gap ended that run: pending again"
    );
    assert_eq!(brief(&t.window(&hot)), [(Firing, "s", "x")]);

    // With for_windows 1 a gap gives resolved then firing, in time order, in one group.
    let mut t = Timeline::new(vec![AlertRule::slow_calls("s", "x", 0)]);
    assert_eq!(t.window(&hot).len(), 1);
    t.next = 3;
    assert_eq!(
        brief(&t.window(&hot)),
        [(Resolved, "s", "x"), (Firing, "s", "x")]
    );
}

#[test]
fn set_rules_keeps_unchanged_rules_and_resolves_dropped_ones() {
    let keep = AlertRule::slow_calls("keep", "x", 0);
    let pending = AlertRule::slow_calls("pending", "x", 0).for_windows(3);
    let changed = AlertRule::slow_calls("changed", "x", 0);
    let removed = AlertRule::slow_calls("removed", "*", 0);
    let mut t = Timeline::new(vec![
        keep.clone(),
        pending.clone(),
        changed.clone(),
        removed.clone(),
    ]);
    let hot = [slow(0, "x", 1), slow(1, "y", 1)];
    assert_eq!(t.windows(2, &hot).len(), 4); // keep, changed, removed x and y
    assert_eq!(t.ev.tracked(), 5);

    // A bad list changes nothing.
    let bad = vec![keep.clone(), AlertRule::slow_calls("keep", "y", 0)];
    assert!(matches!(
        t.ev.set_rules(bad),
        Err(Error::InvalidConfig { .. })
    ));
    assert_eq!(t.ev.tracked(), 5);

    let out =
        t.ev.set_rules(vec![
            changed.clone().for_windows(2),
            keep.clone(),
            pending.clone(),
            AlertRule::slow_calls("new", "y", 0),
        ])
        .unwrap();
    assert_eq!(
        brief(&out),
        [
            (Resolved, "changed", "x"),
            (Resolved, "removed", "x"),
            (Resolved, "removed", "y"),
        ]
    );
    assert!(out
        .iter()
        .all(|a| a.value.is_none() && a.window_start_unix_ns == LEN && a.windows_breached == 2));
    let names: Vec<&str> = t.ev.rules().map(AlertRule::name).collect();
    assert_eq!(names, ["changed", "keep", "pending", "new"]);
    assert_eq!(t.ev.tracked(), 2, "keep (firing) and pending (run 2)");

    // keep stays firing (no repeat); pending reaches its third window; changed starts over.
    assert_eq!(
        brief(&t.window(&hot)),
        [(Firing, "pending", "x"), (Firing, "new", "y")]
    );
    assert_eq!(brief(&t.window(&hot)), [(Firing, "changed", "x")]);
    assert_eq!(t.ev.active().len(), 4);
    // Removing every rule resolves every firing alert.
    assert_eq!(t.ev.set_rules(Vec::new()).unwrap().len(), 4);
    assert_eq!(t.ev.tracked(), 0);
    assert!(t.ev.is_empty());
}

#[test]
fn evaluator_and_notices_cross_threads() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Evaluator>();
    send_sync::<Alert>();
    send_sync::<AlertRule>();
}

#[test]
fn new_rejects_bad_rules() {
    let e = Evaluator::new(vec![AlertRule::error_rate("e", "x", -1.0)]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid value -1 for alert.\"e\".above: an error rate from 0 to 1"
    );
}

#[test]
fn state_stays_bounded_to_active_pairs() {
    let mut t = Timeline::new(vec![
        AlertRule::error_rate("e", "*", 0.5),
        AlertRule::slow_calls("s", "hot.*", 0).cooldown(2 * SEC),
    ]);
    let mut ops: Vec<TestOp> = (0..1000)
        .map(|i| errs(i, &format!("op.{i}"), 10, 0))
        .collect();
    assert!(t.windows(20, &ops).is_empty());
    assert_eq!(t.ev.tracked(), 0);
    assert!(t.ev.cached() <= 1000);
    ops.push(slow(1000, "hot.one", 1));
    assert_eq!(t.window(&ops).len(), 1);
    assert_eq!(t.ev.tracked(), 1);
    ops.pop();
    assert_eq!(t.window(&ops).len(), 1); // resolved; cooling down until 2 s later
    assert_eq!(t.ev.tracked(), 1);
    assert!(t.windows(2, &ops).is_empty());
    assert_eq!(t.ev.tracked(), 0);
    // Ids beyond the cache are matched each time, with the same results.
    let far = [slow(u32::MAX, "hot.far", 1)];
    assert_eq!(brief(&t.window(&far)), [(Firing, "s", "hot.far")]);
    assert!(t.ev.cached() <= 1001);
}

#[test]
fn a_recycled_id_is_matched_again() {
    let mut t = Timeline::new(vec![AlertRule::slow_calls("s", "db.*", 0)]);
    assert!(t.window(&[slow(0, "api.x", 1)]).is_empty());
    assert_eq!(t.window(&[slow(0, "db.x", 1)]).len(), 1);
}

/// The whole path: a manual engine on a mock clock closes real windows, the evaluator reads
/// their reports.
#[test]
fn real_windows_from_a_mock_clock_engine() {
    let (clock, mock) = Clock::mock();
    let engine = Engine::builder()
        .clock(clock)
        .window(SEC)
        .start_manual()
        .unwrap();
    let windows = engine.subscribe(64);
    let query = engine.op("db.query").unwrap();
    let other = engine.op("db.other").unwrap();
    let mut ev = Evaluator::new(vec![
        AlertRule::error_rate("db-errors", "db.*", 0.1).for_windows(2),
        AlertRule::percentile("db-p90", "db.query", 0.9, Duration::from_millis(50)),
    ])
    .unwrap();
    // Window i: ten calls of each operation; query fails half of them in windows 1 to 3 and
    // is slow in window 4.
    let mut notices: Vec<(u64, Alert)> = Vec::new();
    let mut feed = |ev: &mut Evaluator| {
        while let Some(w) = windows.try_recv() {
            let length_ns = w.length_ns;
            for a in ev.evaluate_ops(w.start_unix_ns, length_ns, &w.ops) {
                notices.push((w.index, a));
            }
        }
    };
    for i in 0..7u64 {
        mock.advance_ns((i * LEN + LEN / 5).saturating_sub(mock.now_ns()));
        engine.flush().unwrap(); // closes window i - 1
        feed(&mut ev);
        for j in 0..10 {
            let mut t = query.start();
            mock.advance(if i == 4 {
                Duration::from_millis(60)
            } else {
                Duration::from_millis(1)
            });
            if (1..=3).contains(&i) && j % 2 == 0 {
                t.fail();
            }
            drop(t);
            let t = other.start();
            mock.advance(Duration::from_millis(1));
            drop(t);
        }
    }
    engine.shutdown().unwrap();
    feed(&mut ev);
    let got: Vec<(u64, AlertState, &str)> = notices
        .iter()
        .map(|(i, a)| (*i, a.state, &*a.rule))
        .collect();
    assert_eq!(
        got,
        [
            (2, Firing, "db-errors"),
            (4, Resolved, "db-errors"),
            (4, Firing, "db-p90"),
            (5, Resolved, "db-p90"),
        ]
    );
    assert!(notices.iter().all(|(_, a)| &*a.operation == "db.query"));
    assert_eq!(notices[0].1.since_unix_ns, LEN);
    assert_eq!(notices[0].1.value, Some(0.5));
    let p90 = notices[2].1.value.unwrap();
    assert!((p90 - 60e6).abs() < 60e6 * 1e-3, "p90 {p90}");
    assert!(ev.active().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Against a model

/// What one operation does in one window.
#[derive(Clone, Copy, Debug)]
enum Seen {
    Absent,
    Calm,
    Breach,
}

fn seen() -> impl Strategy<Value = Seen> {
    prop_oneof![Just(Seen::Absent), Just(Seen::Calm), Just(Seen::Breach)]
}

/// The windows (index, state) in which notices go out for one operation, by the rule's
/// definition.
fn model(seq: &[Seen], for_windows: u32, cooldown_windows: u64) -> Vec<(u64, AlertState)> {
    let mut out = Vec::new();
    let mut run = 0u32;
    let mut firing = false;
    let mut resolved_end: Option<u64> = None;
    for (i, s) in seq.iter().enumerate() {
        let i = i as u64;
        let end = (i + 1) * LEN;
        if matches!(s, Seen::Breach) {
            run += 1;
            let cooled = resolved_end.is_none_or(|r| end >= r + cooldown_windows * LEN);
            if !firing && run >= for_windows && cooled {
                firing = true;
                out.push((i, Firing));
            }
        } else {
            if firing {
                firing = false;
                resolved_end = Some(end);
                out.push((i, Resolved));
            }
            run = 0;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn notices_follow_the_model(
        seqs in prop::collection::vec(prop::collection::vec(seen(), 1..40), 1..5),
        for_windows in 1u32..5,
        cooldown_windows in 0u64..5,
    ) {
        let rule = AlertRule::slow_calls("r", "op.*", 0)
            .for_windows(for_windows)
            .cooldown(SEC * cooldown_windows as u32);
        let mut t = Timeline::new(vec![rule]);
        let windows = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut got: Vec<Vec<(u64, AlertState)>> = vec![Vec::new(); seqs.len()];
        for i in 0..windows {
            let ops: Vec<TestOp> = seqs
                .iter()
                .enumerate()
                .filter_map(|(k, seq)| {
                    let name = format!("op.{k}");
                    match seq.get(i).copied().unwrap_or(Seen::Absent) {
                        Seen::Absent => None,
                        Seen::Calm => Some(slow(k as u32, &name, 0)),
                        Seen::Breach => Some(slow(k as u32, &name, 1)),
                    }
                })
                .collect();
            let out = t.window(&ops);
            // One group, in operation-name order.
            prop_assert!(out.windows(2).all(|p| p[0].operation <= p[1].operation));
            for a in out {
                prop_assert_eq!(a.window_start_unix_ns, i as u64 * LEN);
                if a.state == Firing {
                    prop_assert!(a.windows_breached >= for_windows);
                }
                let k: usize = a.operation["op.".len()..].parse().unwrap();
                got[k].push((i as u64, a.state));
            }
        }
        for (k, seq) in seqs.iter().enumerate() {
            // Alternating, starting with Firing.
            for (n, (_, state)) in got[k].iter().enumerate() {
                prop_assert_eq!(*state, if n % 2 == 0 { Firing } else { Resolved });
            }
            let mut padded = seq.clone();
            padded.resize(windows, Seen::Absent);
            prop_assert_eq!(&got[k], &model(&padded, for_windows, cooldown_windows));
        }
        let firing = got.iter().filter(|g| g.len() % 2 == 1).count();
        prop_assert_eq!(t.ev.active().len(), firing);
    }
}

// ---------------------------------------------------------------------------------------------
// Anomaly rules

const MS: u64 = 1_000_000;

/// One window of one call of `ns`: its latency at every quantile is exactly `ns`.
fn one(ns: u64) -> [TestOp; 1] {
    [lat(0, "x", &[ns])]
}

/// An anomaly rule on the p99 of `x` with no floors, so only the MAD scales it.
fn p99_anomaly(k: f64) -> AlertRule {
    AlertRule::anomaly("a", "x", Signal::Latency { quantile: 0.99 }, k)
        .min_deviation(0.0)
        .min_relative_deviation(0.0)
}

/// Noise around 10 ms: a fixed pattern of 9.5 to 10.5 ms (MAD 0.25 ms).
fn noisy(i: u64) -> u64 {
    const STEPS: [u64; 8] = [0, 4, 1, 3, 2, 4, 0, 2];
    9_500_000 + STEPS[(i % 8) as usize] * 250_000
}

#[test]
fn a_step_change_fires_after_for_windows_and_resolves_when_the_level_returns() {
    let mut t = Timeline::new(vec![p99_anomaly(3.0).for_windows(3)]);
    for i in 0..20 {
        assert!(t.window(&one(noisy(i))).is_empty(), "window {i}");
    }
    // A step to 30 ms: windows 20 and 21 pending, 22 fires.
    assert!(t.windows(2, &one(30 * MS)).is_empty());
    let f = t.window(&one(30 * MS));
    assert_eq!(brief(&f), [(Firing, "a", "x")]);
    assert_eq!((f[0].since_unix_ns, f[0].windows_breached), (20 * LEN, 3));
    let score = f[0].value.unwrap();
    assert!(score > 3.0 && score.is_finite(), "score {score}");
    assert_eq!(
        f[0].condition,
        Condition::Anomaly {
            signal: Signal::Latency { quantile: 0.99 },
            k: 3.0
        }
    );
    // Still breaching: no repeat while the step is shorter than half the baseline.
    assert!(t.windows(5, &one(30 * MS)).is_empty());
    // Back to the old level: resolved at once.
    let r = t.window(&one(noisy(0)));
    assert_eq!(brief(&r), [(Resolved, "a", "x")]);
    assert_eq!(r[0].windows_breached, 8);
    assert!(t.windows(10, &one(10 * MS)).is_empty());
}

#[test]
fn a_step_longer_than_half_the_baseline_becomes_the_new_level() {
    let mut t = Timeline::new(vec![p99_anomaly(3.0).baseline_windows(10)]);
    for i in 0..10 {
        assert!(t.window(&one(noisy(i))).is_empty());
    }
    let mut notices = Vec::new();
    for _ in 0..10 {
        notices.extend(t.window(&one(noisy(3) + 20 * MS)));
    }
    // Fires at once; once the ring holds more new values than old ones the median moves and
    // the rise is no longer a departure (the sixth window of the step: five new of ten).
    assert_eq!(brief(&notices), [(Firing, "a", "x"), (Resolved, "a", "x")]);
    assert_eq!(notices[1].windows_breached, 5);
}

#[test]
fn noise_of_the_baselines_own_spread_and_short_spikes_do_not_fire() {
    let mut t = Timeline::new(vec![p99_anomaly(3.0).for_windows(3)]);
    for i in 0..200 {
        assert!(t.window(&one(noisy(i))).is_empty(), "window {i}");
        // A spike every 20 windows, two windows long: shorter than for_windows.
        if i % 20 == 10 {
            assert!(t.windows(2, &one(50 * MS)).is_empty());
            assert_eq!(t.ev.tracked(), 1, "pending");
        }
    }
    assert!(t.ev.active().is_empty());
}

#[test]
fn a_flat_baseline_needs_the_floor_to_stay_quiet() {
    // MAD 0 and no floor: any rise is infinitely many deviations.
    let mut t = Timeline::new(vec![p99_anomaly(3.0)]);
    assert!(t.windows(10, &one(10 * MS)).is_empty());
    let f = t.window(&one(10 * MS + 100_000));
    assert_eq!((f[0].state, f[0].value), (Firing, Some(f64::INFINITY)));

    // The default floors: 10% of the median (1 ms here), so a rise of 3 ms is needed.
    let rule = AlertRule::anomaly("a", "x", Signal::Latency { quantile: 0.99 }, 3.0);
    assert_eq!(
        (rule.deviation_floor(), rule.relative_deviation_floor()),
        (1_000.0, 0.1)
    );
    let mut t = Timeline::new(vec![rule]);
    assert!(t.windows(10, &one(10 * MS)).is_empty());
    assert!(t.window(&one(12 * MS)).is_empty(), "2 deviations");
    let f = t.window(&one(13 * MS + 1_000));
    assert_eq!(f[0].state, Firing);
    assert!((f[0].value.unwrap() - 3.001).abs() < 1e-9);

    // An absolute floor: 1 ms whatever the median.
    let rule = p99_anomaly(2.0).min_deviation(MS as f64);
    let mut t = Timeline::new(vec![rule]);
    assert!(t.windows(10, &one(100_000)).is_empty());
    assert!(t.window(&one(2 * MS)).is_empty(), "1.9 deviations");
    assert_eq!(t.window(&one(3 * MS))[0].state, Firing);
}

#[test]
fn nothing_fires_during_the_warm_up() {
    let rule = p99_anomaly(3.0).baseline_windows(8).warmup_windows(5);
    let mut t = Timeline::new(vec![rule]);
    assert!(t.windows(3, &one(10 * MS)).is_empty());
    // The fourth window: 3 windows in the baseline, fewer than 5, however high it is.
    assert!(t.window(&one(1_000 * MS)).is_empty());
    assert!(t.window(&one(10 * MS)).is_empty());
    assert_eq!(t.ev.tracked(), 0, "no score, no breach");
    // The baseline holds 5 (one of them the spike; the median ignores it).
    assert_eq!(brief(&t.window(&one(1_000 * MS))), [(Firing, "a", "x")]);
    // The default warm-up is 10, or the baseline's length when shorter.
    let r = p99_anomaly(3.0);
    assert_eq!((r.baseline_len(), r.warmup_len()), (30, 10));
    assert_eq!(p99_anomaly(3.0).baseline_windows(4).warmup_len(), 4);
}

#[test]
fn windows_without_enough_calls_stay_out_of_the_baseline() {
    let rule = AlertRule::anomaly("e", "x", Signal::ErrorRate, 3.0)
        .warmup_windows(3)
        .min_calls(10);
    let mut t = Timeline::new(vec![rule]);
    // Flat at 0 errors: the absolute floor of 0.01 makes 3 deviations a rate of 0.03.
    assert!(t.windows(2, &[errs(0, "x", 100, 0)]).is_empty());
    // Few calls, all failing: neither a breach nor part of the baseline.
    assert!(t.window(&[errs(0, "x", 5, 5)]).is_empty());
    assert!(t.window(&[errs(0, "x", 100, 0)]).is_empty());
    assert!(
        t.window(&[errs(0, "x", 100, 3)]).is_empty(),
        "exactly 3 deviations"
    );
    let f = t.window(&[errs(0, "x", 100, 20)]);
    assert_eq!(brief(&f), [(Firing, "e", "x")]);
    assert!((f[0].value.unwrap() - 20.0).abs() < 1e-9);
    // An operation without a call in the window resolves, as for every rule.
    assert_eq!(brief(&t.window(&[])), [(Resolved, "e", "x")]);
}

#[test]
fn baselines_are_per_operation_bounded_and_restart_for_a_recycled_id() {
    let rule = AlertRule::anomaly("a", "*", Signal::Latency { quantile: 0.5 }, 3.0)
        .baseline_windows(5)
        .warmup_windows(3);
    let mut t = Timeline::new(vec![rule]);
    // Two operations at very different levels do not share a baseline.
    for _ in 0..5 {
        assert!(t
            .window(&[lat(0, "fast", &[MS]), lat(1, "slow", &[100 * MS])])
            .is_empty());
    }
    assert_eq!(t.ev.tracks(), 2);
    // Id 0 now names another operation: a new baseline, in warm-up again.
    assert!(t.windows(3, &[lat(0, "other", &[100 * MS])]).is_empty());
    assert_eq!(
        brief(&t.window(&[lat(0, "other", &[300 * MS])])),
        [(Firing, "a", "other")]
    );
    assert_eq!(t.ev.tracks(), 2);
}

// ---------------------------------------------------------------------------------------------
// Budgets

/// `fast` calls of 1 ms and `slow` calls of 50 ms.
fn mix(fast: usize, slow: usize) -> [TestOp; 1] {
    let mut d = vec![MS; fast];
    d.resize(fast + slow, 50 * MS);
    [lat(0, "x", &d)]
}

#[test]
fn budget_burn_is_exact_on_a_known_sequence() {
    // p75 at most 10 ms over 4 windows: a quarter of the calls may be slower.
    let rule = AlertRule::budget("b", "x", 0.75, Duration::from_millis(10), 4 * SEC);
    let mut t = Timeline::new(vec![rule]);
    let burns = |t: &Timeline| -> Vec<(u64, u64, f64)> {
        t.ev.budgets()
            .iter()
            .map(|b| (b.calls, b.over, b.burn))
            .collect()
    };
    // (fast, slow) per window, and the period's sums after it.
    let seq: [((usize, usize), (u64, u64)); 7] = [
        ((10, 0), (10, 0)),
        ((8, 2), (20, 2)),
        ((6, 4), (30, 6)),
        ((5, 5), (40, 11)),  // burn 11/40 × 4 = 1.1: breach
        ((10, 0), (40, 11)), // the first window leaves: 0 slow with it
        ((10, 0), (40, 9)),
        ((10, 0), (40, 5)),
    ];
    let mut notices = Vec::new();
    for (i, ((fast, slow), (calls, over))) in seq.into_iter().enumerate() {
        notices.extend(t.window(&mix(fast, slow)).into_iter().map(|a| (i, a)));
        let want = over as f64 / calls as f64 * 4.0;
        assert_eq!(burns(&t), [(calls, over, want)], "window {i}");
    }
    let got: Vec<(usize, AlertState)> = notices.iter().map(|(i, a)| (*i, a.state)).collect();
    assert_eq!(got, [(3, Firing), (5, Resolved)]);
    assert_eq!(notices[0].1.value, Some(11.0 / 40.0 * 4.0));
    let b = &t.ev.budgets()[0];
    assert_eq!(
        (
            &*b.rule,
            &*b.operation,
            b.quantile,
            b.limit_ns,
            b.period_windows
        ),
        ("b", "x", 0.75, 10 * MS, 4)
    );

    // Windows without calls still move the period: its sums empty, the track goes.
    t.next += 3;
    assert!(t.window(&[]).is_empty());
    assert!(t.ev.budgets().is_empty());
    assert_eq!(t.ev.tracks(), 0);
}

#[test]
fn budget_calls_count_by_histogram_bucket_and_burn_level_is_configurable() {
    let rule = AlertRule::budget("b", "*", 0.5, Duration::from_millis(10), 2 * SEC).burn_above(1.5);
    let mut t = Timeline::new(vec![rule]);
    // Exactly at the limit is not over; the bucket above it is.
    let at = [lat(0, "x", &[10 * MS, 10 * MS, 10 * MS, 10 * MS + 20_000])];
    assert!(t.window(&at).is_empty());
    assert_eq!(t.ev.budgets()[0].over, 1);
    assert_eq!(t.ev.budgets()[0].burn, 0.5);
    // 3 of 4 over in the next window: 4 of 8 over both, burn 1.
    assert!(t
        .window(&[lat(0, "x", &[MS, 20 * MS, 20 * MS, 20 * MS])])
        .is_empty());
    assert_eq!(t.ev.budgets()[0].burn, 1.0);
    let f = t.window(&[lat(0, "x", &[20 * MS; 4])]);
    assert_eq!((f[0].state, f[0].value), (Firing, Some(1.75)));
    // Calls that were not timed (all dropped) add nothing.
    let dropped = new_op(
        0,
        "x",
        OpStats {
            dropped: 10,
            ..OpStats::default()
        },
    );
    assert!(t.window(&[dropped]).is_empty(), "the period still burns 2");
    assert_eq!((t.ev.budgets()[0].calls, t.ev.budgets()[0].burn), (4, 2.0));
    // A window without the operation resolves, as for every rule.
    assert_eq!(t.window(&[])[0].state, Resolved);
    assert!(t.ev.budgets().is_empty(), "no call left in the period");
}

#[test]
fn tracks_survive_an_unchanged_rule_set() {
    let budget = AlertRule::budget("b", "x", 0.5, Duration::from_millis(10), 10 * SEC);
    let anomaly = p99_anomaly(3.0).warmup_windows(3);
    let mut t = Timeline::new(vec![budget.clone(), anomaly.clone()]);
    assert!(t.windows(3, &mix(1, 1)).is_empty());
    t.ev.set_rules(vec![anomaly.clone(), budget.clone()])
        .unwrap();
    assert_eq!(t.ev.tracks(), 2);
    assert_eq!(t.ev.budgets()[0].calls, 6);
    // The anomaly's baseline kept its 3 windows: a rise fires at once.
    let notices = t.window(&[lat(0, "x", &[MS, 500 * MS])]);
    assert_eq!(brief(&notices), [(Firing, "a", "x")]);
    t.ev.set_rules(vec![budget.burn_above(2.0)]).unwrap();
    assert_eq!(t.ev.tracks(), 0, "a changed rule starts over");
}

// ---------------------------------------------------------------------------------------------
// Anomaly rules against a naive model

/// Median of a copy, sorted: the middle value or the mean of the two middle ones.
fn naive_median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        v[n / 2 - 1] / 2.0 + v[n / 2] / 2.0
    }
}

/// Whether each window breaches, by the definition: the window's value against the median
/// and MAD of the last `len` values before it (windows with a value only), once there are
/// `warmup` of them.
fn anomaly_model(
    values: &[Option<u64>],
    len: usize,
    warmup: usize,
    k: f64,
    floor: f64,
    relative: f64,
) -> Vec<Seen> {
    let mut history: Vec<f64> = Vec::new();
    values
        .iter()
        .map(|v| {
            let Some(v) = v.map(|v| v as f64) else {
                return Seen::Absent;
            };
            let base = &history[history.len().saturating_sub(len)..];
            let mut breach = false;
            if base.len() >= warmup {
                let median = naive_median(base);
                let deviations: Vec<f64> = base.iter().map(|x| (x - median).abs()).collect();
                let mad = naive_median(&deviations);
                let deviation = (1.4826 * mad).max(floor).max(relative * median.abs());
                breach = v > median && (deviation == 0.0 || (v - median) / deviation > k);
            }
            history.push(v);
            if breach {
                Seen::Breach
            } else {
                Seen::Calm
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn anomaly_notices_follow_a_naive_median_and_mad(
        seqs in prop::collection::vec(
            prop::collection::vec(prop::option::weighted(0.9, 1u64..40), 1..60),
            1..4,
        ),
        len in 3usize..9,
        warmup in 3usize..9,
        k in prop_oneof![Just(0.5), Just(1.0), Just(3.0)],
        floor in prop_oneof![Just(0.0), Just(2.0)],
        relative in prop_oneof![Just(0.0), Just(0.25)],
        for_windows in 1u32..4,
    ) {
        let warmup = warmup.min(len);
        let rule = AlertRule::anomaly("a", "op.*", Signal::Latency { quantile: 0.99 }, k)
            .baseline_windows(len as u32)
            .warmup_windows(warmup as u32)
            .min_deviation(floor)
            .min_relative_deviation(relative)
            .for_windows(for_windows);
        let mut t = Timeline::new(vec![rule]);
        let windows = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut got: Vec<Vec<(u64, AlertState)>> = vec![Vec::new(); seqs.len()];
        for i in 0..windows {
            let ops: Vec<TestOp> = seqs
                .iter()
                .enumerate()
                .filter_map(|(n, seq)| {
                    let v = seq.get(i).copied().flatten()?;
                    Some(lat(n as u32, &format!("op.{n}"), &[v]))
                })
                .collect();
            for a in t.window(&ops) {
                let n: usize = a.operation["op.".len()..].parse().unwrap();
                got[n].push((i as u64, a.state));
            }
        }
        for (n, seq) in seqs.iter().enumerate() {
            let mut padded = seq.clone();
            padded.resize(windows, None);
            let seen = anomaly_model(&padded, len, warmup, k, floor, relative);
            prop_assert_eq!(&got[n], &model(&seen, for_windows, 0), "op.{}", n);
        }
    }
}

#[test]
fn budget_counts_sampled_calls_with_their_weight() {
    // One timed call standing for 9 (sampling every 9th) over the limit, 3 unweighted within.
    let rule = AlertRule::budget("b", "x", 0.5, Duration::from_millis(10), 2 * SEC);
    let mut t = Timeline::new(vec![rule]);
    let mut op = lat(0, "x", &[MS, MS, MS]);
    op.hist.record_n(20 * MS, 9).unwrap();
    op.stats.max_ns = 20 * MS;
    assert_eq!(brief(&t.window(&[op])), [(Firing, "b", "x")]);
    let b = &t.ev.budgets()[0];
    assert_eq!((b.calls, b.over, b.burn), (12, 9, 9.0 / 12.0 / 0.5));
}
