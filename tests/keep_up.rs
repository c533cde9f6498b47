//! Keeping up: a thread recording in bursts, at a rate far below what the aggregator drains,
//! loses nothing, however long the aggregator's timed pauses are.
//!
//! The promise checked here: **one thread timing calls at up to 500 k calls/s, in bursts of
//! 40 ms after 10 ms pauses, into the default ring (8192 events), has none dropped.** The
//! pauses let the aggregator back off to sleep before each burst. A ring wakes a sleeping
//! aggregator before it holds three eighths of its capacity (`limits::RING_HIGH_WATER`), so
//! at that rate the aggregator has at least 10 ms to wake and drain before the ring could
//! fill; it drains on the order of 100 M events/s. With drain and idle intervals of 100 ms
//! and 1 s the timed wake-ups cannot help: only the ring's doorbell can (without it, every
//! burst overflows the ring). The same load goes through an engine with the default
//! intervals too.
//!
//! At 1 M calls/s the margin is 5 ms, which a loaded shared machine sometimes takes to
//! schedule a woken thread; this test keeps a margin such a machine does not exhaust.
//! Nothing here asserts a speed: the rate is a ceiling (a thread held up does not catch up
//! in a burst), and the only check is that nothing was dropped.
//!
//! Its own test binary, so that no other test's threads compete with it for the cores.

use std::time::{Duration, Instant};

use ringmeter::Engine;

/// Calls per millisecond, at most: 500 k calls/s.
const CALLS_PER_MS: u64 = 500;
/// Length of a burst, in milliseconds: 20,000 calls, more than twice the ring.
const BURST_MS: u64 = 40;
/// Quiet time before each burst.
const PAUSE: Duration = Duration::from_millis(10);
const BURSTS: u64 = 10;

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
