//! Hot-path costs of ringmeter, all in one run so that ratios are comparable:
//!
//! | group | scenario |
//! |---|---|
//! | `floor` | a raw `_rdtsc()` pair (the floor for timing one call); the engine clock's raw pair; a bare slot write plus `Release` store (the floor for a ring push), with the ring's address re-derived at every call or kept in a register; a bare counter increment |
//! | `timed_op` | `op.start()` + drop: with an aggregator thread and rings of the default size (2^14), 2^16 and 2^20; on a manual engine flushed between timed chunks (never full) |
//! | `record` | `op.record_ns(v)` into a ring that never fills, through the `Op` and through the thread's `op.local()` handle; `op.record_ns_many` in batches of 64 (per value); `op.record_ns(v)` into a full ring (drop path) |
//! | `threads` | per-thread cost of timed ops with 1 and 2 recording threads, flushed between chunks (no drops) and with the aggregator thread |
//! | `drain` | the aggregator's drain rate on one core: `flush()` of 10^6 queued events, `record_ns` and guard events of one operation, and `record_ns` of four operations interleaved call by call |
//!
//! Every scenario checks that events are accounted for before it is timed, and the ones that
//! run with an aggregator thread report how many events were dropped because the ring was
//! full (`ringmeter-bench:` lines on stdout): a figure that mostly times the drop path would
//! be wrong.
//!
//! Times are the measuring thread's CPU time by default (`RINGMETER_BENCH_CLOCK=wall` for wall
//! time): on a shared machine, wall time also counts the time other processes held the core.
//!
//! Run: `cargo bench --bench hot_path` (see `scripts/bench.sh` and `docs/performance.md`).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use ringmeter::{Engine, Op};

/// Events timed between two flushes of a manual engine (its ring holds twice as many).
const CHUNK: u64 = 4096;
/// Ring of the manual engines flushed every `CHUNK` events.
const CHUNK_RING: usize = 2 * CHUNK as usize;
/// Events timed between two flushes in the two-thread manual scenario (per thread).
const THREAD_CHUNK: u64 = 16_384;
/// Ring large enough for the aggregator thread to keep up in most passes.
const BIG_RING: usize = 1 << 20;
/// Events queued before each timed drain.
const DRAIN_EVENTS: u64 = 1_000_000;
/// A pre-measured duration.
const PRE_MEASURED_NS: u64 = 1_250;

/// What a scenario's time is: the measuring thread's CPU time (default), so that other
/// processes on a shared machine do not inflate it, or wall time
/// (`RINGMETER_BENCH_CLOCK=wall`). The cost of reading the clock, calibrated once, is
/// subtracted from every timed interval.
struct Meter {
    cpu: bool,
    origin: Instant,
    overhead: Duration,
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    // From the C library std links on Linux; no dependency needed.
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

/// Linux `CLOCK_THREAD_CPUTIME_ID`.
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

fn thread_cpu_time() -> Duration {
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `struct timespec` (two 64-bit fields on x86_64 Linux).
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn meter() -> &'static Meter {
    static METER: OnceLock<Meter> = OnceLock::new();
    METER.get_or_init(|| {
        let cpu = match std::env::var("RINGMETER_BENCH_CLOCK").as_deref() {
            Ok("wall") => false,
            Ok("cpu") | Err(_) => true,
            Ok(other) => panic!("RINGMETER_BENCH_CLOCK={other}: expected cpu or wall"),
        };
        let mut m = Meter {
            cpu,
            origin: Instant::now(),
            overhead: Duration::ZERO,
        };
        let mut empty: Vec<Duration> = (0..1001)
            .map(|_| {
                let t0 = m.stamp();
                m.stamp() - t0
            })
            .collect();
        empty.sort_unstable();
        m.overhead = empty[empty.len() / 2];
        println!(
            "ringmeter-bench: clock {}, reading overhead {:?} (subtracted from every timed interval)",
            if cpu { "thread-cpu" } else { "wall" },
            m.overhead
        );
        m
    })
}

impl Meter {
    fn stamp(&self) -> Duration {
        if self.cpu {
            thread_cpu_time()
        } else {
            self.origin.elapsed()
        }
    }
}

/// Starts a timed interval on the calling thread.
fn begin() -> Duration {
    meter().stamp()
}

/// Time since `t0` (from [`begin`] on the same thread), less the clock's own cost.
fn since(t0: Duration) -> Duration {
    let m = meter();
    m.stamp().saturating_sub(t0).saturating_sub(m.overhead)
}

fn totals(engine: &Engine, name: &str) -> (u64, u64) {
    engine.flush().expect("flush");
    let snap = engine.snapshot();
    snap.totals(name).map_or((0, 0), |s| (s.count, s.dropped))
}

/// Records `n` events with `f`, flushes, and asserts that all of them were aggregated
/// (`exact`: recorded, none dropped) or at least accounted for (recorded + dropped).
fn check(engine: &Engine, name: &str, n: u64, exact: bool, mut f: impl FnMut()) {
    let (c0, d0) = totals(engine, name);
    for _ in 0..n {
        f();
    }
    let (c1, d1) = totals(engine, name);
    if exact {
        assert_eq!((c1 - c0, d1 - d0), (n, 0), "{name}: events lost or dropped");
    } else {
        assert_eq!(c1 - c0 + d1 - d0, n, "{name}: events not accounted for");
    }
}

/// After a scenario: every issued event must be recorded or dropped; print the dropped share.
fn report(engine: &Engine, name: &str, label: &str, issued: u64) {
    let (count, dropped) = totals(engine, name);
    assert_eq!(count + dropped, issued, "{label}: events not accounted for");
    if issued > 0 {
        println!(
            "ringmeter-bench: {label}: issued {issued}, recorded {count}, dropped {dropped} ({:.2}%)",
            100.0 * dropped as f64 / issued as f64
        );
    }
}

fn manual(ring: usize) -> Engine {
    Engine::builder()
        .ring_capacity(ring)
        .start_manual()
        .expect("manual engine")
}

fn threaded(ring: usize) -> Engine {
    Engine::builder()
        .ring_capacity(ring)
        .start()
        .expect("engine")
}

#[inline(always)]
fn timed_op(op: Op) {
    let t = op.start();
    drop(t);
}

/// Runs `iters` calls of `f` in chunks of `chunk`, timing only the calls and flushing
/// between chunks, so the ring never fills and the flush is not timed.
fn chunked(engine: &Engine, iters: u64, chunk: u64, mut f: impl FnMut()) -> Duration {
    let mut left = iters;
    let mut spent = Duration::ZERO;
    while left > 0 {
        let n = left.min(chunk);
        let t0 = begin();
        for _ in 0..n {
            f();
        }
        spent += since(t0);
        engine.flush().expect("flush");
        left -= n;
    }
    spent
}

/// The least a per-call ring push can do, as a floor for `record_ns`: write one 16-byte event
/// into the next slot of 8192 and publish the new index with one `Release` store. No
/// thread-local lookup, no full-ring check, no drop counting. The bench re-derives the pointer
/// to it on every call (through `black_box`), as the hot path re-reads its thread-local, so
/// the index lives in memory between calls as it does in a real ring.
struct BareRing {
    slots: Vec<[u64; 2]>,
    tail: usize,
    published: AtomicU64,
}

impl BareRing {
    fn new() -> Self {
        Self {
            slots: vec![[0; 2]; 8192],
            tail: 0,
            published: AtomicU64::new(0),
        }
    }

    #[inline(always)]
    fn push(&mut self, ns: u64) {
        let i = self.tail & (self.slots.len() - 1);
        self.slots[i] = [ns, (7 << 32) | (4 << 48)];
        self.tail += 1;
        // Release: as a real ring's producer publishes its slot write.
        self.published.store(self.tail as u64, Ordering::Release);
    }
}

fn floor(c: &mut Criterion) {
    meter();
    let mut g = c.benchmark_group("floor");
    g.bench_function("rdtsc_pair", |b| {
        b.iter_custom(|iters| {
            let t0 = begin();
            for _ in 0..iters {
                // SAFETY: `rdtsc` is available on every x86_64 CPU and has no preconditions.
                let a = unsafe { core::arch::x86_64::_rdtsc() };
                // SAFETY: as above.
                let z = unsafe { core::arch::x86_64::_rdtsc() };
                black_box(a);
                black_box(z);
            }
            since(t0)
        });
    });
    g.bench_function("bare_slot_write", |b| {
        let mut ring = BareRing::new();
        let ring: *mut BareRing = &mut ring;
        b.iter_custom(|iters| {
            let t0 = begin();
            for _ in 0..iters {
                // SAFETY: `ring` points to the live local above and no other reference to it
                // exists; `black_box` only hides the pointer's origin from the optimiser.
                let r = unsafe { &mut *black_box(ring) };
                r.push(black_box(PRE_MEASURED_NS));
            }
            since(t0)
        });
    });
    // The same slot write with the ring's address kept in one register across calls, as a
    // loop over `op.local()` keeps its entry's: the index still goes through memory (volatile
    // accesses), but every load of it uses the base register the previous store used.
    g.bench_function("bare_slot_write_fixed_base", |b| {
        let mut ring = BareRing::new();
        let ring: *mut BareRing = &mut ring;
        b.iter_custom(|iters| {
            // SAFETY: as above.
            let r = unsafe { &mut *black_box(ring) };
            let mask = r.slots.len() - 1;
            let t0 = begin();
            for _ in 0..iters {
                // SAFETY: `r.tail` is a live, aligned field of the ring above.
                let tail = unsafe { core::ptr::read_volatile(&r.tail) };
                r.slots[tail & mask] = [black_box(PRE_MEASURED_NS), (7 << 32) | (4 << 48)];
                // SAFETY: as above.
                unsafe { core::ptr::write_volatile(&mut r.tail, tail + 1) };
                // Release: as a real ring's producer publishes its slot write.
                r.published.store(tail as u64 + 1, Ordering::Release);
            }
            since(t0)
        });
    });
    // The least an exact per-call count can cost: one counter in memory, loaded, incremented
    // and stored by every call, as an unsampled call does with its tally. The pointer is
    // re-derived through `black_box` each call, so the count stays in memory between calls.
    g.bench_function("bare_counter_increment", |b| {
        let counter = AtomicU64::new(0);
        let counter: *const AtomicU64 = &counter;
        b.iter_custom(|iters| {
            let t0 = begin();
            for _ in 0..iters {
                // SAFETY: `counter` points to the live local above; only this thread uses it.
                let c = unsafe { &*black_box(counter) };
                c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            }
            since(t0)
        });
    });
    let engine = manual(CHUNK_RING);
    let clock = engine.clock().clone();
    assert!(!clock.is_mock());
    g.bench_function("clock_raw_pair", |b| {
        b.iter_custom(|iters| {
            let t0 = begin();
            for _ in 0..iters {
                black_box(clock.raw());
                black_box(clock.raw());
            }
            since(t0)
        });
    });
    g.finish();
}

fn timed(c: &mut Criterion) {
    let mut g = c.benchmark_group("timed_op");

    // The default builder (ring of 2^14), then rings of 2^16 and 2^20; an aggregator thread
    // drains concurrently in all three.
    for (id, ring) in [
        ("guard_ring_default_agg", None),
        ("guard_ring2p16_agg", Some(1 << 16)),
        ("guard_ring2p20_agg", Some(BIG_RING)),
    ] {
        let engine = match ring {
            None => Engine::builder().start().expect("engine"),
            Some(ring) => threaded(ring),
        };
        let op = engine.op("bench.timed").expect("op");
        check(&engine, "bench.timed", 1000, false, || timed_op(op));
        let issued = AtomicU64::new(0);
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                issued.fetch_add(iters, Ordering::Relaxed);
                let t0 = begin();
                for _ in 0..iters {
                    timed_op(op);
                }
                since(t0)
            });
        });
        report(
            &engine,
            "bench.timed",
            &format!("timed_op/{id}"),
            1000 + issued.load(Ordering::Relaxed),
        );
    }

    // No aggregator thread: flushed (untimed) every CHUNK events, so the ring never fills.
    let engine = manual(CHUNK_RING);
    let op = engine.op("bench.timed").expect("op");
    check(&engine, "bench.timed", 1000, true, || timed_op(op));
    g.bench_function("guard_manual_flushed", |b| {
        b.iter_custom(|iters| chunked(&engine, iters, CHUNK, || timed_op(op)));
    });
    let (_, dropped) = totals(&engine, "bench.timed");
    assert_eq!(dropped, 0);
    g.finish();
}

fn record(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");

    let engine = manual(CHUNK_RING);
    let op = engine.op("bench.record").expect("op");
    check(&engine, "bench.record", 1000, true, || {
        op.record_ns(PRE_MEASURED_NS)
    });
    g.bench_function("record_ns_manual_flushed", |b| {
        b.iter_custom(|iters| {
            chunked(&engine, iters, CHUNK, || {
                op.record_ns(black_box(PRE_MEASURED_NS))
            })
        });
    });
    let (c0, _) = totals(&engine, "bench.record");
    let local = op.local();
    for _ in 0..1000 {
        local.record_ns(PRE_MEASURED_NS);
    }
    drop(local);
    assert_eq!(totals(&engine, "bench.record"), (c0 + 1000, 0));
    g.bench_function("record_ns_local_manual_flushed", |b| {
        b.iter_custom(|iters| {
            let local = op.local();
            chunked(&engine, iters, CHUNK, || {
                local.record_ns(black_box(PRE_MEASURED_NS))
            })
        });
    });
    let (_, dropped) = totals(&engine, "bench.record");
    assert_eq!(dropped, 0);

    // `record_ns_many` in batches of `BATCH`; the figure is per value.
    const BATCH: usize = 64;
    let batch = [PRE_MEASURED_NS; BATCH];
    let many = |op: Op, n: u64| {
        let mut left = n;
        while left > 0 {
            let k = left.min(BATCH as u64);
            op.record_ns_many(black_box(&batch[..k as usize]));
            left -= k;
        }
    };
    let (c0, _) = totals(&engine, "bench.record");
    many(op, 1000);
    assert_eq!(totals(&engine, "bench.record"), (c0 + 1000, 0));
    g.bench_function("record_ns_many_64_manual_flushed", |b| {
        b.iter_custom(|iters| {
            let mut left = iters;
            let mut spent = Duration::ZERO;
            while left > 0 {
                let n = left.min(CHUNK);
                let t0 = begin();
                many(op, n);
                spent += since(t0);
                engine.flush().expect("flush");
                left -= n;
            }
            spent
        });
    });
    let (_, dropped) = totals(&engine, "bench.record");
    assert_eq!(dropped, 0);

    // The drop path: a full ring of 2 that nobody drains.
    let engine = manual(2);
    let op = engine.op("bench.full").expect("op");
    check(&engine, "bench.full", 2, true, || op.record_ns(1));
    op.record_ns(1);
    op.record_ns(1); // the ring is full from here on
    let issued = AtomicU64::new(0);
    g.bench_function("record_ns_full_ring_drop", |b| {
        b.iter_custom(|iters| {
            issued.fetch_add(iters, Ordering::Relaxed);
            let t0 = begin();
            for _ in 0..iters {
                op.record_ns(black_box(PRE_MEASURED_NS));
            }
            since(t0)
        });
    });
    // Recorded: the 2 checked and the 2 that filled the ring; every timed call was dropped.
    let issued = issued.load(Ordering::Relaxed);
    assert_eq!(totals(&engine, "bench.full"), (4, issued));
    g.finish();
}

/// Calls that sampling skips: counted, never timed, nothing pushed.
fn sampling(c: &mut Criterion) {
    use ringmeter::{Rule, Sampling};
    let mut g = c.benchmark_group("sampling");
    let engine = Engine::builder()
        .ring_capacity(CHUNK_RING)
        .rule(
            "bench.count_only",
            Rule::new().sampling(Sampling::CountOnly),
        )
        .rule("bench.every16", Rule::new().sampling(Sampling::Every(16)))
        .start_manual()
        .expect("manual engine");
    let calls = |name: &str| {
        engine.flush().expect("flush");
        engine
            .snapshot()
            .totals(name)
            .map_or(0, |s| s.count + s.unsampled + s.dropped)
    };
    let count_only = engine.op("bench.count_only").expect("op");
    let every16 = engine.op("bench.every16").expect("op");
    assert!(!count_only.start().is_sampled());
    let issued = AtomicU64::new(1);
    g.bench_function("unsampled_guard_count_only", |b| {
        b.iter_custom(|iters| {
            issued.fetch_add(iters, Ordering::Relaxed);
            let t0 = begin();
            for _ in 0..iters {
                timed_op(count_only);
            }
            since(t0)
        });
    });
    g.bench_function("unsampled_record_ns_count_only", |b| {
        b.iter_custom(|iters| {
            issued.fetch_add(iters, Ordering::Relaxed);
            let t0 = begin();
            for _ in 0..iters {
                count_only.record_ns(black_box(PRE_MEASURED_NS));
            }
            since(t0)
        });
    });
    // The same through the thread's handle, made once per sample (untimed).
    g.bench_function("unsampled_record_ns_count_only_local", |b| {
        b.iter_custom(|iters| {
            issued.fetch_add(iters, Ordering::Relaxed);
            let local = count_only.local();
            let t0 = begin();
            for _ in 0..iters {
                local.record_ns(black_box(PRE_MEASURED_NS));
            }
            since(t0)
        });
    });
    assert_eq!(calls("bench.count_only"), issued.load(Ordering::Relaxed));
    // One call in 16 timed and pushed: flushed (untimed) between chunks like the others.
    let before = calls("bench.every16");
    let issued = AtomicU64::new(0);
    g.bench_function("guard_every16_manual_flushed", |b| {
        b.iter_custom(|iters| {
            issued.fetch_add(iters, Ordering::Relaxed);
            chunked(&engine, iters, CHUNK, || timed_op(every16))
        });
    });
    assert_eq!(
        calls("bench.every16") - before,
        issued.load(Ordering::Relaxed)
    );
    g.finish();
}

/// Persistent recording threads, so that thread start-up and ring registration (and the page
/// faults of a fresh ring) stay out of the timings.
struct Workers {
    jobs: Vec<mpsc::Sender<u64>>,
    done: mpsc::Receiver<Duration>,
    handles: Vec<JoinHandle<()>>,
}

impl Workers {
    /// `n` threads; each runs `job(index, iters, barrier)` per request and returns the time it
    /// measured. Every thread first runs the job once with `warm` iterations (untimed).
    fn new(
        n: usize,
        warm: u64,
        job: impl Fn(usize, u64, &Barrier) -> Duration + Send + Sync + 'static,
    ) -> Self {
        let job = Arc::new(job);
        let barrier = Arc::new(Barrier::new(n));
        let (done_tx, done) = mpsc::channel();
        let mut jobs = Vec::new();
        let mut handles = Vec::new();
        for i in 0..n {
            let (tx, rx) = mpsc::channel::<u64>();
            let (job, barrier, done_tx) = (Arc::clone(&job), Arc::clone(&barrier), done_tx.clone());
            handles.push(std::thread::spawn(move || {
                job(i, warm, &barrier);
                for iters in rx {
                    let spent = job(i, iters, &barrier);
                    if done_tx.send(spent).is_err() {
                        break;
                    }
                }
            }));
            jobs.push(tx);
        }
        Self {
            jobs,
            done,
            handles,
        }
    }

    /// Every thread runs `iters` calls; the slowest thread's time.
    fn run(&self, iters: u64) -> Duration {
        for tx in &self.jobs {
            tx.send(iters).expect("worker alive");
        }
        (0..self.jobs.len())
            .map(|_| self.done.recv().expect("worker result"))
            .max()
            .unwrap_or_default()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.jobs.clear();
        for h in self.handles.drain(..) {
            h.join().expect("worker panicked");
        }
    }
}

fn threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("threads");
    for n in [1usize, 2] {
        // Manual engine: the threads start each chunk together at a barrier, time their own
        // chunk, meet again, and thread 0 flushes both rings (untimed) before the next chunk.
        let engine = manual(2 * THREAD_CHUNK as usize);
        let op = engine.op("bench.threads").expect("op");
        let issued = Arc::new(AtomicU64::new(0));
        let workers = {
            let (engine, issued) = (engine.clone(), Arc::clone(&issued));
            Workers::new(n, 1000, move |i, iters, barrier| {
                issued.fetch_add(iters, Ordering::Relaxed);
                let mut left = iters;
                let mut spent = Duration::ZERO;
                while left > 0 {
                    let k = left.min(THREAD_CHUNK);
                    barrier.wait();
                    let t0 = begin();
                    for _ in 0..k {
                        timed_op(op);
                    }
                    spent += since(t0);
                    barrier.wait();
                    if i == 0 {
                        engine.flush().expect("flush");
                    }
                    left -= k;
                }
                spent
            })
        };
        let _ = workers.run(1000);
        let (count, dropped) = totals(&engine, "bench.threads");
        assert_eq!((count, dropped), (issued.load(Ordering::Relaxed), 0));
        g.bench_function(format!("guard_{n}t_manual_flushed"), |b| {
            b.iter_custom(|iters| workers.run(iters));
        });
        drop(workers);
        let (count, dropped) = totals(&engine, "bench.threads");
        assert_eq!((count, dropped), (issued.load(Ordering::Relaxed), 0));
    }
    for n in [1usize, 2] {
        // Aggregator thread draining concurrently (it shares the 2 cores with the recorders).
        let engine = threaded(BIG_RING);
        let op = engine.op("bench.threads").expect("op");
        let issued = Arc::new(AtomicU64::new(0));
        let workers = {
            let issued = Arc::clone(&issued);
            Workers::new(n, 1000, move |_, iters, barrier| {
                issued.fetch_add(iters, Ordering::Relaxed);
                barrier.wait();
                let t0 = begin();
                for _ in 0..iters {
                    timed_op(op);
                }
                since(t0)
            })
        };
        let _ = workers.run(1000);
        g.bench_function(format!("guard_{n}t_ring2p20_agg"), |b| {
            b.iter_custom(|iters| workers.run(iters));
        });
        drop(workers);
        report(
            &engine,
            "bench.threads",
            &format!("threads/guard_{n}t_ring2p20_agg"),
            issued.load(Ordering::Relaxed),
        );
    }
    g.finish();
}

/// A cheap spread of durations (200 ns to ~65 µs) so the histogram sees many buckets.
struct Spread(u64);

impl Spread {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        200 + (self.0 & 0xFFFF)
    }
}

fn drain(c: &mut Criterion) {
    let mut g = c.benchmark_group("drain");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(DRAIN_EVENTS));

    let engine = manual(BIG_RING);
    let values = engine.op("bench.drain_ns").expect("op");
    let guard = engine.op("bench.drain_guard").expect("op");
    let mut spread = Spread(0x9E37_79B9_7F4A_7C15);

    // Each iteration queues DRAIN_EVENTS events (untimed), times the flush that drains them,
    // and checks through the snapshot that the flush aggregated exactly those events.
    let timed_flush = |name: &str, iters: u64, fill: &mut dyn FnMut()| {
        let mut spent = Duration::ZERO;
        for _ in 0..iters {
            let (c0, d0) = totals(&engine, name);
            for _ in 0..DRAIN_EVENTS {
                fill();
            }
            let t0 = begin();
            engine.flush().expect("flush");
            spent += since(t0);
            let s = engine.snapshot();
            let t = s.totals(name).expect("totals");
            assert_eq!((t.count - c0, t.dropped - d0), (DRAIN_EVENTS, 0), "{name}");
        }
        spent
    };
    g.bench_function("record_ns_1e6", |b| {
        b.iter_custom(|iters| {
            timed_flush("bench.drain_ns", iters, &mut || {
                values.record_ns(spread.next())
            })
        });
    });
    g.bench_function("guard_1e6", |b| {
        b.iter_custom(|iters| timed_flush("bench.drain_guard", iters, &mut || timed_op(guard)));
    });
    // The worst case for runs: four operations interleaved call by call, so every run is one
    // event long. The check counts the first operation's share (a quarter).
    let mixed: Vec<Op> = (0..4)
        .map(|i| engine.op(&format!("bench.drain_mixed{i}")).expect("op"))
        .collect();
    let mut turn = 0usize;
    g.bench_function("record_ns_4ops_interleaved_1e6", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let (c0, _) = totals(&engine, "bench.drain_mixed0");
                for _ in 0..DRAIN_EVENTS {
                    mixed[turn % 4].record_ns(spread.next());
                    turn += 1;
                }
                let t0 = begin();
                engine.flush().expect("flush");
                spent += since(t0);
                let (c1, d1) = totals(&engine, "bench.drain_mixed0");
                assert_eq!((c1 - c0, d1), (DRAIN_EVENTS / 4, 0));
            }
            spent
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = floor, timed, record, sampling, threads, drain
}
criterion_main!(benches);
