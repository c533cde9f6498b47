//! The evaluator's state machine, driven window by window on a mock time line (window `i`
//! covers `[i * LEN, (i + 1) * LEN)`), and once through a real engine on a mock clock.

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use proptest::prelude::*;

use super::{Alert, AlertRule, AlertState, Condition, Evaluator, OpSample};
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
