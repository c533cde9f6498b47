//! Exactness: every call is either recorded or counted as dropped, and every failure is counted.
//!
//! Worker threads are spawned in waves and live for a random number of events, so rings are
//! registered, filled, abandoned and freed while others are still busy. Each worker records
//! into four operations through every hot-path API (guard with `fail()`, `time()` including
//! closures that panic, `time_result()` returning `Err`, `record*`/`record_error*`), keeping a
//! ledger of what it issued; some workers die by an uncaught panic inside `op.time`. After every
//! thread is joined and the engine is shut down, for every operation
//! `count + unsampled + dropped == issued` and `errors == failures issued` must hold exactly,
//! also with per-operation sampling that a reloader thread keeps changing during the run.
//!
//! Randomness comes from an inline xorshift generator with fixed seeds, so each variant issues
//! the same calls on every run; only their interleaving varies.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Once};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ringmeter::{Engine, Op};

/// Events issued per variant (at least; a worker that dies adds its fatal call).
const EVENTS: u64 = 10_000_000;
/// Workers alive at once; a new wave refills to this when half of them have exited.
const MAX_LIVE: usize = 6;
/// Bounds of a worker's lifetime, in events.
const MIN_LIFE: u64 = 20_000;
const MAX_LIFE: u64 = 1_500_000;
/// One worker in `DEATH_ODDS` dies by an uncaught panic after its last event.
const DEATH_ODDS: u64 = 4;

const GUARD: usize = 0;
const CLOSURE: usize = 1;
const RESULT: usize = 2;
const EXTERNAL: usize = 3;
const NAMES: [&str; 4] = [
    "exact.guard",
    "exact.closure",
    "exact.result",
    "exact.external",
];

/// Payload of the panics this test injects (silenced in the panic hook).
struct Injected;

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators").
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // The state must not be zero.
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the workers issued, per operation.
#[derive(Default)]
struct Ledger {
    issued: [AtomicU64; 4],
    failed: [AtomicU64; 4],
}

impl Ledger {
    fn add(&self, op: usize, issued: u64, failed: u64) {
        self.issued[op].fetch_add(issued, Ordering::Relaxed);
        self.failed[op].fetch_add(failed, Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        self.issued.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }
}

/// A worker's own counts, added to the ledger once when it ends.
#[derive(Default)]
struct Tally {
    issued: [u64; 4],
    failed: [u64; 4],
}

impl Tally {
    fn note(&mut self, op: usize, failed: bool) {
        self.issued[op] += 1;
        self.failed[op] += u64::from(failed);
    }

    fn post(&self, ledger: &Ledger) {
        for op in 0..4 {
            ledger.add(op, self.issued[op], self.failed[op]);
        }
    }
}

/// Hides the messages of injected panics; other panics are reported as usual.
fn silence_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Injected>().is_none() {
                default(info);
            }
        }));
    });
}

/// Issues one call through one of the APIs; returns the operation and whether it failed.
fn one_call(ops: &[Op; 4], rng: &mut XorShift) -> (usize, bool) {
    let r = rng.next();
    let which = (r % 4) as usize;
    let roll = (r >> 8) % 10_000;
    let ns = (r >> 32) % 2_000_000;
    let failed = match which {
        GUARD => {
            let mut t = ops[GUARD].start();
            let fail = roll < 1_000;
            if fail {
                t.fail();
            }
            if roll.is_multiple_of(2) {
                t.stop();
            } else {
                drop(t);
            }
            fail
        }
        CLOSURE => {
            if roll < 2 {
                // A call that panics inside `time`: recorded as an error, and the panic goes on
                // (caught here so the worker continues).
                let r = panic::catch_unwind(AssertUnwindSafe(|| {
                    ops[CLOSURE].time(|| panic::panic_any(Injected))
                }));
                assert!(r.is_err());
                true
            } else {
                let v = ops[CLOSURE].time(|| std::hint::black_box(r).rotate_left(7));
                std::hint::black_box(v);
                false
            }
        }
        RESULT => {
            let fail = roll < 1_250;
            let res = ops[RESULT].time_result(|| if fail { Err(roll) } else { Ok(ns) });
            assert_eq!(res.is_err(), fail);
            fail
        }
        _ => match roll {
            0..600 => {
                ops[EXTERNAL].record_error_ns(ns);
                true
            }
            600..1_200 => {
                ops[EXTERNAL].record_error(Duration::from_nanos(ns));
                true
            }
            _ if roll.is_multiple_of(2) => {
                ops[EXTERNAL].record_ns(ns);
                false
            }
            _ => {
                ops[EXTERNAL].record(Duration::from_nanos(ns));
                false
            }
        },
    };
    (which, failed)
}

/// A worker: `life` calls, then (if `dies`) one more call that panics out of the thread.
fn worker(ops: [Op; 4], seed: u64, life: u64, dies: bool, ledger: &Ledger) {
    let mut rng = XorShift::new(seed);
    let mut tally = Tally::default();
    for _ in 0..life {
        let (op, failed) = one_call(&ops, &mut rng);
        tally.note(op, failed);
    }
    if dies {
        tally.note(CLOSURE, true);
    }
    tally.post(ledger);
    if dies {
        ops[CLOSURE].time(|| panic::panic_any(Injected))
    }
}

struct Run {
    threads: usize,
    died: usize,
}

/// Runs waves of workers until `EVENTS` calls are issued and every worker has exited.
fn run_workers(ops: [Op; 4], seed: u64, ledger: &Arc<Ledger>) -> Run {
    let mut rng = XorShift::new(seed);
    let mut remaining = EVENTS;
    let mut live: Vec<(JoinHandle<()>, bool)> = Vec::new();
    let mut run = Run {
        threads: 0,
        died: 0,
    };
    while remaining > 0 || !live.is_empty() {
        if remaining > 0 && live.len() <= MAX_LIVE / 2 {
            while live.len() < MAX_LIVE && remaining > 0 {
                let life = (MIN_LIFE + rng.below(MAX_LIFE - MIN_LIFE)).min(remaining);
                remaining -= life;
                let dies = rng.below(DEATH_ODDS) == 0;
                let wseed = rng.next();
                let ledger = Arc::clone(ledger);
                let handle = thread::Builder::new()
                    .name(format!("worker-{}", run.threads))
                    .spawn(move || worker(ops, wseed, life, dies, &ledger))
                    .expect("spawn a worker");
                live.push((handle, dies));
                run.threads += 1;
            }
        }
        let mut i = 0;
        while i < live.len() {
            if live[i].0.is_finished() {
                let (handle, dies) = live.swap_remove(i);
                match handle.join() {
                    Ok(()) => assert!(!dies, "a worker meant to die returned"),
                    Err(payload) => {
                        assert!(dies, "a worker panicked unexpectedly");
                        assert!(is_injected(&*payload), "a worker died of a real panic");
                        run.died += 1;
                    }
                }
            } else {
                i += 1;
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    run
}

fn is_injected(payload: &(dyn Any + Send)) -> bool {
    payload.downcast_ref::<Injected>().is_some()
}

/// Shuts `engine` down and checks every operation against the ledger.
fn check(engine: &Engine, ledger: &Ledger, label: &str) {
    engine.shutdown().expect("shutdown");
    let snap = engine.snapshot();
    let (mut all_calls, mut all_dropped) = (0u64, 0u64);
    for (op, name) in NAMES.iter().enumerate() {
        let stats = snap.totals(name).expect("the operation saw calls");
        let issued = ledger.issued[op].load(Ordering::Relaxed);
        let failed = ledger.failed[op].load(Ordering::Relaxed);
        println!(
            "{label}: {name}: issued {issued}, recorded {}, unsampled {}, dropped {} ({:.3}%), errors {} of {failed} failures",
            stats.count,
            stats.unsampled,
            stats.dropped,
            100.0 * stats.dropped as f64 / issued as f64,
            stats.errors,
        );
        assert_eq!(
            stats.count + stats.unsampled + stats.dropped,
            issued,
            "{label}: {name}: recorded + unsampled + dropped"
        );
        assert_eq!(stats.errors, failed, "{label}: {name}: errors");
        all_calls += issued;
        all_dropped += stats.dropped;
    }
    assert!(
        snap.totals(ringmeter::OVERFLOW_OP).is_none(),
        "{label}: nothing may land in the overflow operation"
    );
    println!(
        "{label}: {all_calls} calls, drop fraction {:.3}%, {} windows",
        100.0 * all_dropped as f64 / all_calls as f64,
        snap.windows_closed,
    );
}

/// Default configuration (2^14-event rings, 1 s windows).
#[test]
fn default_ring_every_call_accounted_for() {
    silence_injected_panics();
    let started = Instant::now();
    let engine = Engine::builder().start().expect("start");
    let ops = NAMES.map(|n| engine.op(n).expect("valid name"));
    let ledger = Arc::new(Ledger::default());

    let run = run_workers(ops, 0x5EED_0001, &ledger);

    assert!(run.threads >= 8, "only {} workers", run.threads);
    assert!(ledger.total() >= EVENTS);
    println!(
        "default ring: {} workers ({} died by panic), {} calls issued in {:.1?}",
        run.threads,
        run.died,
        ledger.total(),
        started.elapsed()
    );
    check(&engine, &ledger, "default ring");
}

/// A 1024-event ring and short windows, so drops happen and totals span many windows.
///
/// To make drops certain rather than likely, the first closed window's callback holds the
/// aggregator while one thread records four rings' worth of calls; the test then asserts that
/// those drops were counted.
#[test]
fn small_ring_every_call_and_every_drop_accounted_for() {
    const CAPACITY: usize = 1024;
    const BURST: u64 = 4 * CAPACITY as u64;
    silence_injected_panics();
    let started = Instant::now();

    let (paused_tx, paused_rx) = mpsc::sync_channel::<()>(1);
    let (resume_tx, resume_rx) = mpsc::sync_channel::<()>(1);
    let mut first = true;
    let engine = Engine::builder()
        .ring_capacity(CAPACITY)
        .window(Duration::from_millis(100))
        .grace(Duration::from_millis(10))
        .on_window(move |_| {
            if std::mem::take(&mut first) {
                let _ = paused_tx.send(());
                let _ = resume_rx.recv_timeout(Duration::from_secs(60));
            }
        })
        .start()
        .expect("start");
    let ops = NAMES.map(|n| engine.op(n).expect("valid name"));
    let ledger = Arc::new(Ledger::default());

    // The aggregator is now parked in the callback: nothing drains the burst's ring.
    paused_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the first window closes");
    let external = ops[EXTERNAL];
    thread::spawn(move || {
        for i in 0..BURST {
            external.record_ns(i);
        }
    })
    .join()
    .expect("burst thread");
    ledger.add(EXTERNAL, BURST, 0);
    resume_tx.send(()).expect("resume the aggregator");

    let run = run_workers(ops, 0x5EED_0002, &ledger);

    assert!(run.threads >= 8, "only {} workers", run.threads);
    assert!(ledger.total() >= EVENTS);
    println!(
        "small ring: {} workers ({} died by panic), {} calls issued in {:.1?}",
        run.threads,
        run.died,
        ledger.total(),
        started.elapsed()
    );
    check(&engine, &ledger, "small ring");
    let external = engine.snapshot().totals(NAMES[EXTERNAL]).unwrap().clone();
    assert!(
        external.dropped >= BURST - CAPACITY as u64,
        "the burst into a held ring must drop at least {} calls, got {}",
        BURST - CAPACITY as u64,
        external.dropped
    );
}

#[test]
fn sampled_and_reloaded_every_call_and_every_failure_accounted_for() {
    use ringmeter::{Rule, Rules, Sampling};
    silence_injected_panics();
    let started = Instant::now();
    let rules = |flip: bool| {
        let (a, b) = if flip {
            (Sampling::CountOnly, Sampling::Every(3))
        } else {
            (Sampling::Every(7), Sampling::Probability(0.3))
        };
        Rules::new()
            .rule("exact.guard", Rule::new().sampling(a))
            .rule("exact.closure", Rule::new().sampling(b))
            .rule("exact.result", Rule::new().sampling(Sampling::CountOnly))
            .rule("exact.ext*", Rule::new().sampling(Sampling::Every(2)))
    };
    let engine = Engine::builder()
        .ring_capacity(4096)
        .rules(rules(false))
        .start()
        .expect("start");
    let ops = NAMES.map(|n| engine.op(n).expect("valid name"));
    let ledger = Arc::new(Ledger::default());
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let reloader = {
        let engine = engine.clone();
        thread::spawn(move || {
            let mut flip = false;
            let mut reloads = 0u32;
            while stop_rx.recv_timeout(Duration::from_millis(2)).is_err() {
                flip = !flip;
                engine.set_rules(rules(flip)).expect("valid rules");
                reloads += 1;
            }
            reloads
        })
    };

    let run = run_workers(ops, 0x5EED_0003, &ledger);
    stop_tx.send(()).unwrap();
    let reloads = reloader.join().unwrap();

    assert!(run.threads >= 8, "only {} workers", run.threads);
    assert!(reloads >= 10, "only {reloads} reloads during the run");
    println!(
        "sampled: {} workers, {reloads} reloads, {} calls issued in {:.1?}",
        run.threads,
        ledger.total(),
        started.elapsed()
    );
    check(&engine, &ledger, "sampled");
    let snap = engine.snapshot();
    let result = snap.totals("exact.result").unwrap();
    assert_eq!(result.count, 0, "count-only calls are never timed");
    assert!(snap.totals("exact.guard").unwrap().unsampled > 0);
}

/// A guard started on one thread and dropped on another is recorded exactly once, into the
/// ring of the thread that drops it: timed or unsampled, failed or not, dropped normally or
/// while that thread unwinds. The dropping thread has used another engine first, so the drop
/// finds another engine in its cache, and it has no ring yet for the guard's engine.
#[test]
fn a_guard_dropped_on_another_thread_is_counted_once() {
    use ringmeter::{Rule, Sampling};
    silence_injected_panics();
    let engine = Engine::builder()
        .rule(
            "moved.count_only",
            Rule::new().sampling(Sampling::CountOnly),
        )
        .start_manual()
        .expect("start");
    let other = Engine::builder().start_manual().expect("start");
    let timed = engine.op("moved.timed").expect("valid name");
    let count_only = engine.op("moved.count_only").expect("valid name");
    let elsewhere = other.op("moved.elsewhere").expect("valid name");

    for op in [timed, count_only] {
        timed.record_ns(1); // this thread has a ring for the engine and caches it
        let plain = op.start();
        let mut failed = op.start();
        failed.fail();
        let unwinding = op.start();
        thread::spawn(move || {
            elsewhere.record_ns(1);
            drop(plain);
            drop(failed);
            let died = panic::catch_unwind(AssertUnwindSafe(move || {
                let _dropped_while_unwinding = unwinding;
                panic::panic_any(Injected);
            }));
            assert!(died.is_err());
        })
        .join()
        .expect("dropping thread");
    }
    engine.flush().expect("flush");
    let snap = engine.snapshot();
    let timed = snap.totals("moved.timed").expect("timed").clone();
    assert_eq!(
        (timed.count, timed.unsampled, timed.errors, timed.dropped),
        (3 + 2, 0, 2, 0)
    );
    let count_only = snap.totals("moved.count_only").expect("count-only").clone();
    assert_eq!(
        (
            count_only.count,
            count_only.unsampled,
            count_only.errors,
            count_only.dropped
        ),
        (0, 3, 2, 0)
    );
}
