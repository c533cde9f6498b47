//! Window aggregation against a naive recomputation over random event streams.
//!
//! Each case drives a manual engine on a mock clock with timed calls of a few operations whose
//! start and end times are chosen at random (overlapping calls hold several timers open at
//! once), with `flush()` calls at random instants in between. Every closed window is then
//! compared, per operation, with statistics recomputed from the calls whose end falls in it:
//! counts, errors, slow, min and max exactly, the mean to 1e-6, the percentiles to the
//! histogram's precision (3 significant digits: relative error at most 1e-3 against the exact
//! value at HdrHistogram's rank, `ceil(q * n)` clamped to at least 1). The cumulative totals
//! must equal the sums over the windows.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use ringmeter::alert::{Alert, AlertRule, AlertState};
use ringmeter::{Clock, Engine, OpStats, Timer, WindowReport};

/// Window length: 10 ms.
const WINDOW_NS: u64 = 10_000_000;
/// Grace after a window's end before it closes.
const GRACE_NS: u64 = 2_000_000;
/// Calls longer than this are slow.
const SLOW_NS: u64 = 5_000_000;
/// Calls start within this many nanoseconds of 0 (eight windows).
const HORIZON_NS: u64 = 8 * WINDOW_NS;
/// The operations calls are spread over.
const OPS: [&str; 3] = ["prop.alpha", "prop.beta", "prop.gamma"];
/// Reads one percentile of an `OpStats`.
type Field = fn(&OpStats) -> u64;
/// Percentiles checked, with their `OpStats` fields.
const QUANTILES: [(f64, Field); 4] = [
    (0.5, |s| s.p50_ns),
    (0.9, |s| s.p90_ns),
    (0.99, |s| s.p99_ns),
    (0.999, |s| s.p999_ns),
];

/// One timed call.
#[derive(Clone, Debug)]
struct Call {
    op: usize,
    start: u64,
    duration: u64,
    failed: bool,
}

impl Call {
    fn end(&self) -> u64 {
        self.start + self.duration
    }
}

/// Durations over several orders of magnitude: exact histogram buckets (below 2048 ns), wider
/// ones, repeated values, and calls long enough to be slow and to span windows.
fn duration() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..2_048,
        3 => 2_048u64..1_000_000,
        1 => Just(123_456u64),
        2 => 1_000_000u64..3 * WINDOW_NS,
    ]
}

fn call() -> impl Strategy<Value = Call> {
    (0..OPS.len(), 0..HORIZON_NS, duration(), any::<bool>()).prop_map(
        |(op, start, duration, failed)| Call {
            op,
            start,
            duration,
            failed,
        },
    )
}

/// What happens at one instant of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    /// Start call `i` (ordered first, so a zero-length call starts before it ends).
    Start(usize),
    End(usize),
    Flush,
}

/// Exact statistics of the calls of one operation in one window (or in all windows).
#[derive(Default)]
struct Naive {
    durations: Vec<u64>,
    errors: u64,
}

impl Naive {
    fn add(&mut self, call: &Call) {
        self.durations.push(call.duration);
        self.errors += u64::from(call.failed);
    }

    /// Checks `got` against these calls.
    fn check(&mut self, what: &str, got: &OpStats) -> Result<(), TestCaseError> {
        let d = &mut self.durations;
        d.sort_unstable();
        let n = d.len() as u64;
        prop_assert!(n > 0);
        prop_assert_eq!(got.count, n, "{}: count", what);
        prop_assert_eq!(got.errors, self.errors, "{}: errors", what);
        let slow = d.iter().filter(|&&v| v > SLOW_NS).count() as u64;
        prop_assert_eq!(got.slow, slow, "{}: slow", what);
        prop_assert_eq!((got.dropped, got.late), (0, 0), "{}: dropped, late", what);
        prop_assert_eq!(got.min_ns, d[0], "{}: min", what);
        prop_assert_eq!(got.max_ns, d[d.len() - 1], "{}: max", what);

        let sum: u128 = d.iter().map(|&v| u128::from(v)).sum();
        let sum_sq: u128 = d.iter().map(|&v| u128::from(v) * u128::from(v)).sum();
        let mean = sum as f64 / n as f64;
        prop_assert!(
            (got.mean_ns - mean).abs() <= 1e-6 * mean.max(1.0),
            "{}: mean {} vs {}",
            what,
            got.mean_ns,
            mean
        );
        // Population variance from exact integer sums; the engine computes it in f64, which
        // loses up to a few ulps of the mean square.
        let var = (u128::from(n) * sum_sq - sum * sum) as f64 / (n as f64 * n as f64);
        let rms = (sum_sq as f64 / n as f64).sqrt();
        prop_assert!(
            (got.stddev_ns - var.sqrt()).abs() <= 1e-6 * rms.max(1.0),
            "{}: stddev {} vs {}",
            what,
            got.stddev_ns,
            var.sqrt()
        );

        for (q, field) in QUANTILES {
            let rank = ((q * n as f64).ceil() as usize).max(1);
            let exact = d[rank - 1];
            let reported = field(got);
            prop_assert!(
                reported.abs_diff(exact) as f64 <= 1e-3 * exact as f64,
                "{}: p{} is {} but the value at rank {} of {} is {}",
                what,
                q * 100.0,
                reported,
                rank,
                n,
                exact
            );
        }
        Ok(())
    }
}

/// Every window an engine reported, in order, the engine, and the alert notices it sent.
type Driven = (Vec<Arc<WindowReport>>, Engine, Vec<Alert>);

/// Runs `calls` (with `flush()` at the `flushes` instants) through a manual engine with the
/// alert rule [`slow_rule`] and returns what it reported.
fn drive(calls: &[Call], flushes: &[u64]) -> Driven {
    let (clock, mock) = Clock::mock();
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&notices);
    let engine = Engine::builder()
        .clock(clock)
        .window(Duration::from_nanos(WINDOW_NS))
        .grace(Duration::from_nanos(GRACE_NS))
        .slow_threshold(Duration::from_nanos(SLOW_NS))
        .alert(slow_rule())
        .on_alert(move |n| sink.lock().unwrap().extend_from_slice(n))
        .start_manual()
        .unwrap();
    let windows = engine.subscribe(1 << 12);
    let ops: Vec<_> = OPS.iter().map(|name| engine.op(name).unwrap()).collect();

    let mut timeline: Vec<(u64, Action)> = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        timeline.push((c.start, Action::Start(i)));
        timeline.push((c.end(), Action::End(i)));
    }
    timeline.extend(flushes.iter().map(|&t| (t, Action::Flush)));
    timeline.sort_unstable();

    let mut timers: Vec<Option<Timer>> = calls.iter().map(|_| None).collect();
    for (at, action) in timeline {
        mock.advance_ns(at - mock.now_ns());
        match action {
            Action::Start(i) => timers[i] = Some(ops[calls[i].op].start()),
            Action::End(i) => {
                let mut t = timers[i].take().expect("started before it ends");
                t.set_failed(calls[i].failed);
                drop(t);
            }
            Action::Flush => engine.flush().unwrap(),
        }
    }

    // Past the last window's end plus grace: every window with a call closes on this flush;
    // shutdown then closes the (empty) current one.
    let last_end = calls.iter().map(Call::end).max().unwrap_or(0);
    let close_all = (last_end / WINDOW_NS + 1) * WINDOW_NS + GRACE_NS;
    mock.advance_ns(close_all.saturating_sub(mock.now_ns()));
    engine.flush().unwrap();
    engine.shutdown().unwrap();

    let reports: Vec<_> = windows.receiver().try_iter().collect();
    assert_eq!(windows.missed(), 0);
    let notices = std::mem::take(&mut *notices.lock().unwrap());
    (reports, engine, notices)
}

/// The alert rule every run carries: a window with a slow call fires it for that operation,
/// the next window without one (or a gap of skipped windows) resolves it.
fn slow_rule() -> AlertRule {
    AlertRule::slow_calls("any.slow", "prop.*", 0)
}

/// The notices [`slow_rule`] must send for `reports`, recomputed from the windows' slow
/// counts: (window start, operation, firing), sorted.
fn expected_notices(reports: &[Arc<WindowReport>]) -> Vec<(u64, String, bool)> {
    let mut firing: BTreeMap<&str, bool> = OPS.iter().map(|&o| (o, false)).collect();
    let mut out = Vec::new();
    let mut last: Option<u64> = None;
    for w in reports {
        if last.is_some_and(|l| w.index > l + 1) {
            // Skipped windows: one window without calls, resolving what fires.
            let gap_start = (last.unwrap_or(0) + 1) * WINDOW_NS;
            for (op, on) in firing.iter_mut().filter(|(_, on)| **on) {
                *on = false;
                out.push((gap_start, (*op).to_owned(), false));
            }
        }
        last = Some(w.index);
        for (op, on) in firing.iter_mut() {
            let breached = w
                .op(op)
                .is_some_and(|o| o.stats.calls() >= 1 && o.stats.slow > 0);
            if breached != *on {
                *on = breached;
                out.push((w.start_unix_ns, (*op).to_owned(), breached));
            }
        }
    }
    out.sort();
    out
}

fn check(calls: &[Call], flushes: &[u64]) -> Result<(), TestCaseError> {
    let (reports, engine, notices) = drive(calls, flushes);

    // Alert notices (kind 4 in the log): exactly the transitions of the slow-call rule.
    let mut got: Vec<(u64, String, bool)> = notices
        .iter()
        .map(|a| {
            (
                a.window_start_unix_ns,
                a.operation.to_string(),
                a.state == AlertState::Firing,
            )
        })
        .collect();
    got.sort();
    prop_assert_eq!(got, expected_notices(&reports), "alert notices");

    // The naive recomputation: per (window, op), from the end timestamps.
    let mut expected: BTreeMap<(u64, usize), Naive> = BTreeMap::new();
    let mut totals: BTreeMap<usize, Naive> = BTreeMap::new();
    for c in calls {
        expected
            .entry((c.end() / WINDOW_NS, c.op))
            .or_default()
            .add(c);
        totals.entry(c.op).or_default().add(c);
    }

    // Every window reported once, in order, each with exactly the operations that had calls.
    let mut summed: BTreeMap<usize, OpStats> = BTreeMap::new();
    let mut last_index = None;
    for w in &reports {
        prop_assert!(last_index < Some(w.index), "windows in order, each once");
        last_index = Some(w.index);
        prop_assert_eq!(w.start_unix_ns, w.index * WINDOW_NS);
        prop_assert_eq!(w.length_ns, WINDOW_NS);
        for o in &w.ops {
            let op = OPS.iter().position(|n| **n == *o.name).expect("a known op");
            let what = format!("window {} op {}", w.index, o.name);
            let Some(naive) = expected.get_mut(&(w.index, op)) else {
                return Err(TestCaseError::fail(format!(
                    "{what}: reported, but had no call"
                )));
            };
            naive.check(&what, &o.stats)?;
            prop_assert_eq!(o.histogram.len(), o.stats.count, "{}: histogram", what);
            let s = summed.entry(op).or_insert_with(|| {
                let mut st = OpStats::default();
                st.min_ns = u64::MAX;
                st
            });
            s.count += o.stats.count;
            s.errors += o.stats.errors;
            s.slow += o.stats.slow;
            s.dropped += o.stats.dropped;
            s.late += o.stats.late;
            s.min_ns = s.min_ns.min(o.stats.min_ns);
            s.max_ns = s.max_ns.max(o.stats.max_ns);
            s.mean_ns += o.stats.mean_ns * o.stats.count as f64;
        }
    }
    for &(index, op) in expected.keys() {
        let found = reports
            .iter()
            .find(|w| w.index == index)
            .and_then(|w| w.op(OPS[op]));
        prop_assert!(found.is_some(), "window {} op {}: missing", index, OPS[op]);
    }

    // Totals: the sums over the windows, and the naive statistics over all calls.
    let snap = engine.snapshot();
    prop_assert_eq!(snap.windows_closed, reports.len() as u64);
    for (op, name) in OPS.iter().enumerate() {
        let got = snap.totals(name);
        let Some(naive) = totals.get_mut(&op) else {
            prop_assert!(got.is_none(), "{}: totals without calls", name);
            continue;
        };
        let got = got.expect("totals of an op with calls");
        let s = &summed[&op];
        prop_assert_eq!(
            (got.count, got.errors, got.slow, got.dropped, got.late),
            (s.count, s.errors, s.slow, s.dropped, s.late),
            "{}: totals are the sums over windows",
            name
        );
        prop_assert_eq!((got.min_ns, got.max_ns), (s.min_ns, s.max_ns), "{}", name);
        let mean = s.mean_ns / s.count as f64;
        prop_assert!((got.mean_ns - mean).abs() <= 1e-6 * mean.max(1.0));
        naive.check(&format!("totals {name}"), got)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn windows_match_naive_recomputation(
        calls in prop::collection::vec(call(), 1..150),
        flushes in prop::collection::vec(0..HORIZON_NS + 3 * WINDOW_NS, 0..6),
    ) {
        check(&calls, &flushes)?;
    }
}

/// A fixed stream across a window boundary, to pin the window rule: a call belongs to the
/// window its end falls in, wherever it started.
#[test]
fn call_spanning_a_boundary_counts_where_it_ends() {
    let calls = [
        Call {
            op: 0,
            start: WINDOW_NS - 10,
            duration: 20,
            failed: true,
        },
        Call {
            op: 0,
            start: WINDOW_NS - 30,
            duration: 10,
            failed: false,
        },
        Call {
            op: 1,
            start: 0,
            duration: 2 * WINDOW_NS,
            failed: false,
        },
    ];
    check(&calls, &[WINDOW_NS + GRACE_NS]).unwrap();
    let (reports, _, _) = drive(&calls, &[]);
    let count = |index: u64, name: &str| {
        reports
            .iter()
            .find(|w| w.index == index)
            .and_then(|w| w.op(name))
            .map(|o| (o.stats.count, o.stats.errors))
    };
    assert_eq!(count(0, OPS[0]), Some((1, 0)));
    assert_eq!(count(1, OPS[0]), Some((1, 1)));
    assert_eq!(count(2, OPS[1]), Some((1, 0)));
}

/// One call of a mixed stream: timed or measured elsewhere, failed or not.
#[derive(Clone, Debug)]
struct Mixed {
    op: usize,
    /// `true`: `record_ns`/`record_error_ns`; `false`: a guard on the mock clock.
    pre_measured: bool,
    duration: u64,
    failed: bool,
}

fn mixed() -> impl Strategy<Value = Mixed> {
    (0..OPS.len(), any::<bool>(), duration(), any::<bool>()).prop_map(
        |(op, pre_measured, duration, failed)| Mixed {
            op,
            pre_measured,
            duration,
            failed,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Streams longer than one drained chunk, where runs of one operation and one kind of event
    /// are cut by other operations, by the other kind and by chunk ends: every count and extreme
    /// of the totals is exact.
    #[test]
    fn mixed_runs_are_counted_exactly(calls in prop::collection::vec(mixed(), 1..400)) {
        let (clock, mock) = Clock::mock();
        let engine = Engine::builder()
            .window(Duration::from_secs(3600))
            .slow_threshold(Duration::from_nanos(SLOW_NS))
            .ring_capacity(1024)
            .clock(clock)
            .start_manual()
            .unwrap();
        let ops: Vec<_> = OPS.iter().map(|n| engine.op(n).unwrap()).collect();
        let mut naive: Vec<Naive> = OPS.iter().map(|_| Naive::default()).collect();
        for c in &calls {
            let op = ops[c.op];
            match (c.pre_measured, c.failed) {
                (true, false) => op.record_ns(c.duration),
                (true, true) => op.record_error_ns(c.duration),
                (false, failed) => {
                    let mut t: Timer = op.start();
                    t.set_failed(failed);
                    mock.advance_ns(c.duration);
                    drop(t);
                }
            }
            naive[c.op].add(&Call { op: c.op, start: 0, duration: c.duration, failed: c.failed });
        }
        engine.flush().unwrap();
        let snapshot = engine.snapshot();
        for (name, n) in OPS.iter().zip(&mut naive) {
            match snapshot.totals(name) {
                None => prop_assert!(n.durations.is_empty()),
                Some(got) => {
                    prop_assert_eq!(got.dropped, 0);
                    n.check(&format!("totals {name}"), got)?;
                }
            }
        }
    }
}
