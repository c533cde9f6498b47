//! `Op::local`: a handle bound to its thread records exactly what the same calls through the
//! `Op` would, sees rule changes at the next call, mixes with plain calls on the same thread,
//! and stays usable past its engine and during the thread's exit.

use std::cell::RefCell;
use std::thread;
use std::time::Duration;

use ringmeter::{Clock, Engine, LocalOp, MockClock, OpStats, Rule, Sampling};

fn manual() -> (Engine, MockClock) {
    let (clock, mock) = Clock::mock();
    let engine = Engine::builder()
        .clock(clock)
        .ring_capacity(1 << 12)
        .start_manual()
        .expect("engine");
    (engine, mock)
}

fn totals(engine: &Engine, name: &str) -> OpStats {
    engine.flush().expect("flush");
    engine.snapshot().totals(name).cloned().unwrap_or_default()
}

/// Each kind of call through the handle, beside the same through the `Op`, interleaved on one
/// thread: the two operations end with the same counts.
#[test]
fn a_handle_records_what_the_op_records() {
    let (engine, mock) = manual();
    let via_op = engine.op("same.op").unwrap();
    let via_local = engine.op("same.local").unwrap();
    let local = via_local.local();
    assert_eq!(local.op(), via_local);
    for i in 0..100u64 {
        via_op.record_ns(1_000 + i);
        local.record_ns(1_000 + i);
        if i % 10 == 0 {
            via_op.record_error_ns(5);
            local.record_error_ns(5);
            via_op.record(Duration::from_micros(3));
            local.record(Duration::from_micros(3));
            via_op.record_error(Duration::from_micros(4));
            local.record_error(Duration::from_micros(4));
        }
        let t = via_op.start();
        let u = local.start();
        assert!(u.is_sampled());
        mock.advance_ns(50);
        drop((t, u));
        let r: Result<(), ()> = via_op.time_result(|| Err(()));
        assert!(r.is_err());
        let r: Result<(), ()> = local.time_result(|| Err(()));
        assert!(r.is_err());
        assert_eq!(local.time(|| i), i);
        via_op.time(|| ());
    }
    let (a, b) = (totals(&engine, "same.op"), totals(&engine, "same.local"));
    assert_eq!((a.count, a.errors, a.dropped), (430, 120, 0));
    assert_eq!(
        (b.count, b.errors, b.dropped, b.unsampled),
        (a.count, a.errors, a.dropped, a.unsampled)
    );
    assert_eq!((b.min_ns, b.max_ns), (a.min_ns, a.max_ns));
}

/// A rule set while the handle lives applies from its next call: timed, count-only, one in
/// four, timed again; every call is timed or counted once.
#[test]
fn a_handle_reads_its_operations_rule_at_every_call() {
    let (engine, _mock) = manual();
    let op = engine.op("rule.switch").unwrap();
    let local = op.local();
    for _ in 0..10 {
        local.record_ns(100);
    }
    engine
        .set_rule("rule.switch", Rule::new().sampling(Sampling::CountOnly))
        .unwrap();
    for _ in 0..10 {
        local.record_ns(100);
        assert!(!local.start().is_sampled());
    }
    local.record_error_ns(100);
    let s = totals(&engine, "rule.switch");
    assert_eq!((s.count, s.unsampled, s.errors), (10, 21, 1));

    engine
        .set_rule("rule.switch", Rule::new().sampling(Sampling::Every(4)))
        .unwrap();
    for _ in 0..8 {
        local.record_ns(100);
    }
    let s = totals(&engine, "rule.switch");
    assert_eq!(s.calls(), 10 + 21 + 8);
    assert_eq!(s.count, 10 + 2, "one in four of the eight timed");

    engine
        .set_rule("rule.switch", Rule::new().sampling(Sampling::All))
        .unwrap();
    for _ in 0..5 {
        drop(local.start());
    }
    let s = totals(&engine, "rule.switch");
    assert_eq!(s.count, 12 + 5);
    assert_eq!(s.calls(), 10 + 21 + 8 + 5);
}

/// Handles of several operations and engines, plain calls in between (which move the thread's
/// cache to the other engine and back), and a handle made after the ring filled: every call
/// is recorded or counted as dropped.
#[test]
fn handles_and_plain_calls_share_the_threads_ring_exactly() {
    let (one, _m1) = manual();
    let (two, _m2) = manual();
    let a = one.op("mix.a").unwrap();
    let b = two.op("mix.b").unwrap();
    let (la, lb) = (a.local(), b.local());
    for i in 0..1_000u64 {
        la.record_ns(i);
        b.record_ns(i);
        lb.record_ns(i);
        a.record_ns(i);
    }
    let (sa, sb) = (totals(&one, "mix.a"), totals(&two, "mix.b"));
    assert_eq!((sa.count, sa.dropped), (2_000, 0));
    assert_eq!((sb.count, sb.dropped), (2_000, 0));

    // Fill the ring (4096 slots), then overflow it through both paths.
    for _ in 0..4_096 {
        la.record_ns(1);
    }
    la.record_ns(1);
    a.record_ns(1);
    let again = a.local();
    again.record_ns(1);
    let sa = totals(&one, "mix.a");
    assert_eq!((sa.count, sa.dropped), (2_000 + 4_096, 3));
}

/// A handle that outlives its engine keeps recording into its ring (nobody reads it), and a
/// later engine on the same thread works; dropping the handle then lets the ring go.
#[test]
fn a_handle_outlives_its_engine() {
    let (engine, _mock) = manual();
    let local = engine.op("gone.op").unwrap().local();
    local.record_ns(1);
    drop(engine);
    for _ in 0..10_000 {
        local.record_ns(1);
        drop(local.start());
    }
    let (next, _mock) = manual();
    let op = next.op("next.op").unwrap();
    op.record_ns(1);
    drop(local);
    op.record_ns(1);
    let (third, _mock) = manual();
    third.op("third.op").unwrap().record_ns(1);
    assert_eq!(totals(&next, "next.op").count, 2);
    assert_eq!(totals(&third, "third.op").count, 1);
}

thread_local! {
    /// A handle kept in a thread-local, used and dropped by its destructor, which may run
    /// after the engine's thread state is gone.
    static KEPT: RefCell<Option<Kept>> = const { RefCell::new(None) };
}

struct Kept(LocalOp);

impl Drop for Kept {
    fn drop(&mut self) {
        self.0.record_ns(7);
        drop(self.0.start());
    }
}

/// A handle held by a thread-local is used at the thread's exit, in whatever order the
/// thread-locals are destroyed: its calls are recorded (or counted) and its ring is freed
/// when it goes.
#[test]
fn a_handle_in_a_thread_local_is_used_at_thread_exit() {
    let (engine, _mock) = manual();
    let op = engine.op("exit.op").unwrap();
    thread::spawn(move || {
        let local = op.local();
        local.record_ns(1);
        KEPT.with(|k| *k.borrow_mut() = Some(Kept(local)));
        // A plain call registers nothing new; its ring is the handle's.
        op.record_ns(2);
    })
    .join()
    .unwrap();
    let s = totals(&engine, "exit.op");
    assert_eq!(s.calls(), 4, "{s:?}");
}

/// Handles on several threads at once, with a rule change in the middle: per thread, every
/// call is timed or counted once.
#[test]
fn handles_on_several_threads_count_exactly() {
    let engine = Engine::builder()
        .ring_capacity(1 << 16)
        .start()
        .expect("engine");
    let op = engine.op("threads.op").unwrap();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            thread::spawn(move || {
                let local = op.local();
                for i in 0..20_000u64 {
                    local.record_ns(i);
                    drop(local.start());
                }
            })
        })
        .collect();
    engine
        .set_rule("threads.op", Rule::new().sampling(Sampling::Every(3)))
        .unwrap();
    for w in workers {
        w.join().unwrap();
    }
    let s = totals(&engine, "threads.op");
    assert_eq!(s.calls(), 3 * 40_000, "{s:?}");
}
