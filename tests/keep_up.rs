//! Keeping up: a thread recording in bursts, at a rate far below what the aggregator drains,
//! loses nothing, however long the aggregator's timed pauses are.
//!
//! The promises checked here:
//!
//! - **One thread timing calls at up to 500 k calls/s, in bursts of 40 ms after 10 ms pauses,
//!   into the default ring (2^14 events), has none dropped.**
//! - **One thread that issues 10,000 calls back to back after a 10 ms hold-up (what a thread
//!   paced at 1 M calls/s owes after one), between spans of 40 ms paced at 500 k calls/s,
//!   into the default ring, has none dropped**, even when only the ring's doorbell wakes the
//!   aggregator: the burst, what the ring may hold while the aggregator sleeps (a sleeping
//!   aggregator is rung before its ring holds three eighths, 6,143 events) and the chunk the
//!   aggregator may be reading (1/128 of the ring, 128 events, unavailable to the producer
//!   until it is read) fit in the ring without any drain (16,271 of 16,384).
//!
//! In the first, the pauses let the aggregator back off to sleep before each burst. A ring
//! wakes a sleeping aggregator before it holds three eighths of its capacity
//! (`limits::RING_HIGH_WATER`), so at that rate the aggregator has 20 ms to wake and drain
//! before the ring could fill; it drains on the order of 100 M events/s. With drain and idle
//! intervals of 100 ms and 1 s the timed wake-ups cannot help: only the ring's doorbell can.
//! The same load goes through an engine with the default intervals too. (At 1 M calls/s the
//! margin would be 10 ms, which a loaded shared machine sometimes takes to schedule a woken
//! thread; these tests keep a margin such a machine does not exhaust.)
//!
//! In the second, the aggregator, woken by the doorbell during a paced span, likewise has
//! 20 ms to get a core before the ring could fill; the burst itself needs no drain. With the
//! former default of 8192 events the burst alone overflows the ring unless the aggregator
//! drains while it runs.
//!
//! Nothing here asserts a speed: the rates are ceilings, and the only check is that nothing
//! was dropped.
//!
//! Its own test binary, so that no other test's threads compete with it for the cores, and
//! its tests take turns ([`one_at_a_time`]) for the same reason.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ringmeter::Engine;

/// Calls per millisecond, at most: 500 k calls/s.
const CALLS_PER_MS: u64 = 500;
/// Length of a burst, in milliseconds: 20,000 calls, more than the ring holds.
const BURST_MS: u64 = 40;
/// Quiet time before each burst.
const PAUSE: Duration = Duration::from_millis(10);
const BURSTS: u64 = 10;

/// The paced rate between the hold-up test's bursts: one call per 2 µs, 500 k calls/s.
const PACE: Duration = Duration::from_micros(2);
/// The hold-up, after which the thread issues the calls it owes at once.
const HOLDUP: Duration = Duration::from_millis(10);
/// The calls owed for a hold-up at the pace: 10 ms at 1 M calls/s.
const BURST: u64 = 10_000;
/// Time paced at the rate between two hold-ups.
const PACED_SPAN: Duration = Duration::from_millis(40);
const HOLDUPS: u64 = 8;

/// Holds the cores for one test: the test harness runs tests on parallel threads, and two
/// recording threads and two aggregators on two cores would leave no margin to check.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Times calls of `name` in bursts; returns how many were issued.
fn bursts(engine: &Engine, name: &str) -> u64 {
    let op = engine.op(name).expect("op");
    let mut issued = 0;
    for _ in 0..BURSTS {
        std::thread::sleep(PAUSE);
        for _ in 0..BURST_MS {
            // A millisecond's calls back to back, then a wait for the rest of the
            // millisecond: never more than CALLS_PER_MS in any such slice, and a thread that
            // lost its core resumes at the rate instead of catching up.
            let slice = Instant::now();
            for _ in 0..CALLS_PER_MS {
                let _t = op.start();
            }
            issued += CALLS_PER_MS;
            while slice.elapsed() < Duration::from_millis(1) {
                std::hint::spin_loop();
            }
        }
    }
    issued
}

/// Times calls of `name`: after each `HOLDUP`, the `BURST` calls owed for it back to back,
/// then paced at `PACE` for `PACED_SPAN` (a thread the scheduler held up resumes at the pace
/// instead of catching up, so no other burst is larger); returns how many were issued.
fn holdups(engine: &Engine, name: &str) -> u64 {
    let op = engine.op(name).expect("op");
    let mut issued = 0u64;
    let pace = PACE.as_nanos() as u64;
    for _ in 0..HOLDUPS {
        std::thread::sleep(HOLDUP);
        for _ in 0..BURST {
            let _t = op.start();
        }
        issued += BURST;
        let start = Instant::now();
        let mut due = 0u64;
        loop {
            let now = start.elapsed();
            if now >= PACED_SPAN {
                break;
            }
            let now = now.as_nanos() as u64;
            if now < due {
                std::hint::spin_loop();
                continue;
            }
            let _t = op.start();
            issued += 1;
            due = if now - due > 100 * pace {
                now + pace
            } else {
                due + pace
            };
        }
    }
    issued
}

/// Runs the bursts against `engine` and checks that every call was recorded.
fn check(engine: &Engine, label: &str) {
    let name = "keep_up.burst";
    let issued = bursts(engine, name);
    engine.shutdown().expect("shutdown");
    let snap = engine.snapshot();
    let t = snap.totals(name).expect("totals");
    assert_eq!(
        t.count + t.dropped,
        issued,
        "{label}: calls not accounted for"
    );
    assert_eq!(
        t.dropped, 0,
        "{label}: {} of {issued} calls dropped at 500 k calls/s in bursts",
        t.dropped
    );
}

#[test]
fn bursts_at_500k_calls_per_second_lose_nothing() {
    let _turn = one_at_a_time();
    // Timed wake-ups far apart: only the doorbell wakes the aggregator in time.
    let slow_timer = Engine::builder()
        .drain_interval(Duration::from_millis(100))
        .idle_interval(Duration::from_secs(1))
        .start()
        .expect("engine");
    check(&slow_timer, "drain interval 100 ms, idle interval 1 s");

    let defaults = Engine::builder().start().expect("engine");
    check(&defaults, "default builder");
}

#[test]
fn a_burst_after_a_10ms_holdup_at_1m_calls_per_second_loses_nothing() {
    let _turn = one_at_a_time();
    // Timed wake-ups far apart: only the doorbell wakes the aggregator.
    let engine = Engine::builder()
        .drain_interval(Duration::from_millis(100))
        .idle_interval(Duration::from_secs(1))
        .start()
        .expect("engine");
    let name = "keep_up.holdup";
    let issued = holdups(&engine, name);
    engine.shutdown().expect("shutdown");
    let t = engine.snapshot().totals(name).cloned().expect("totals");
    assert_eq!(t.count + t.dropped, issued, "calls not accounted for");
    assert!(issued >= HOLDUPS * BURST, "{issued} calls issued");
    assert_eq!(
        t.dropped, 0,
        "{} of {issued} calls dropped in bursts of 10,000 after 10 ms hold-ups",
        t.dropped
    );
}
