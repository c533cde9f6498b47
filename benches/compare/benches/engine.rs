//! Scenarios 5–7 of `docs/performance.md`, which are not per-call timings: each prints one
//! `compare-json: {...}` line per result for `scripts/bench.sh`.
//!
//! - `sustained`: an aggregator thread running; with the default builder, one thread timing
//!   calls back to back, one thread calling `record_ns` back to back and two threads timing
//!   back to back for a few seconds; one thread timing back to back with rings of 8192, 2^14,
//!   2^16 and 2^20, and two threads with 2^20; paced at 1 M calls/s per thread (without and
//!   with catch-up bursts after the scheduler's hold-ups), and paced with a 10 ms hold-up
//!   every 100 ms followed by a catch-up burst of the 10,000 calls owed (default ring and
//!   8192). Every figure carries the dropped fraction beside it, and the aggregator thread's
//!   share of a CPU, its share of the run spent runnable but waiting for a CPU
//!   (`aggregator_wait_fraction`, from `/proc/.../schedstat`), its wake-ups and its
//!   preemptions per second: drops follow the time a woken aggregator waits for a core.
//! - `memory`: resident memory per thread of 1000 threads (default builder, aggregator
//!   running): registered with the engine but idle since (one call each), and busy (each
//!   has written its whole ring through).
//! - `idle`: the CPU time and wake-ups of an idle engine's aggregator thread (nothing
//!   recording) over ten seconds.
//! - `heap`: live heap growth per 10 M records with nothing draining (a counting global
//!   allocator), for ringmeter (manual engine; and with the aggregator thread at steady
//!   state) and every peer.
//! - `drain`: the aggregator's drain rate on one core (`flush` of 10^6 queued events, CPU
//!   time) beside the Prometheus recorder's `run_upkeep` of 10^6 queued values; and the
//!   latency from an event to its window being published (`subscribe`).
//!
//! `cargo bench --bench engine` runs everything at full size; `cargo test --benches` runs
//! the same code at a tiny size, so CI keeps it compiling and working. A filter picks
//! scenarios by `kind/id` (`cargo bench --bench engine -- backtoback idle`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringmeter::Engine;
use ringmeter_compare::{
    begin, heap, meter, quanta_clock, since, Bucket, Counting, Facade, Fastrace, HdrMutex,
    HdrOwned, HdrSync, Local, Metriken, Peer, PromLocal, PromShared, Ringmeter,
};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Sizes: full with `--bench`, tiny in test mode.
struct Size {
    /// Seconds of each sustained run.
    secs: f64,
    /// Seconds an idle engine is watched.
    idle_secs: f64,
    /// Records per heap scenario.
    heap_records: u64,
    /// Events per timed drain, and repetitions.
    drain_events: u64,
    drain_reps: usize,
    /// Windows observed for the publication latency.
    windows: usize,
    /// Threads of the memory scenario.
    memory_threads: usize,
}

fn emit(kind: &str, id: &str, fields: &[(&str, String)]) {
    let mut s = format!("{{\"kind\":\"{kind}\",\"id\":\"{id}\"");
    for (k, v) in fields {
        s.push_str(&format!(",\"{k}\":{v}"));
    }
    s.push('}');
    println!("compare-json: {s}");
}

fn totals(engine: &Engine, name: &str) -> (u64, u64) {
    engine.flush().expect("flush");
    engine
        .snapshot()
        .totals(name)
        .map_or((0, 0), |s| (s.count, s.dropped))
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_nanos() as u64
}

/// The load of a sustained run.
#[derive(Clone, Copy, Debug)]
struct Load {
    threads: usize,
    call: Call,
    /// Nanoseconds between calls per thread; 0: back to back.
    pace_ns: u64,
    /// Whether a paced thread that was held up issues the calls it owes at once.
    catch_up: bool,
    /// A hold-up of this many milliseconds every 100 ms (the thread sleeps), 0 for none.
    holdup_ms: u64,
}

impl Load {
    fn back_to_back(threads: usize, call: Call) -> Self {
        Self {
            threads,
            call,
            pace_ns: 0,
            catch_up: false,
            holdup_ms: 0,
        }
    }

    fn paced(threads: usize, pace_ns: u64, catch_up: bool, holdup_ms: u64) -> Self {
        Self {
            threads,
            call: Call::Timed,
            pace_ns,
            catch_up,
            holdup_ms,
        }
    }
}

/// What a sustained run's threads call.
#[derive(Clone, Copy, Debug)]
enum Call {
    /// A guard: `op.start()` dropped at once (two clock reads).
    Timed,
    /// `op.record_ns` of a pre-measured duration (no clock read).
    RecordNs,
}

/// Calls on `threads` threads for `secs` seconds, back to back (`pace_ns` = 0) or one
/// every `pace_ns` nanoseconds per thread, with the aggregator thread running. With
/// `catch_up`, a paced thread that was held up issues the calls it owes at once (a backlog
/// burst), so it issues exactly one call per interval on average; without, a thread held up
/// more than 100 intervals (it lost its core, so it did no work meanwhile) goes on one
/// interval after its late call. With `holdup_ms`, a paced thread sleeps that long every
/// 100 ms (a hold-up of its own). `max_pacing_lag_ns` says how late the latest call was.
fn sustained(id: &str, ring: Option<usize>, load: Load, secs: f64) {
    let Load {
        threads,
        call,
        pace_ns,
        catch_up,
        holdup_ms,
    } = load;
    let mut b = Engine::builder();
    if let Some(ring) = ring {
        b = b.ring_capacity(ring);
    }
    let engine = b.start().expect("engine");
    let capacity = engine.ring_capacity();
    aggregator_task(); // named and running before the clock starts
    let name = "bench.sustained";
    let op = engine.op(name).expect("op");
    let barrier = Arc::new(Barrier::new(threads + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (barrier, stop) = (Arc::clone(&barrier), Arc::clone(&stop));
            std::thread::spawn(move || {
                let clock = quanta_clock();
                op.record_ns(1); // registers the ring before the clock starts
                barrier.wait();
                let start = clock.raw();
                let mut issued = 1u64;
                let mut max_lag_ns = 0u64;
                let mut due = 0u64;
                let holdup = Duration::from_millis(holdup_ms);
                let mut next_holdup = 100_000_000u64;
                let deadline = (secs * 1e9) as u64;
                loop {
                    let elapsed = clock.delta_as_nanos(start, clock.raw());
                    if elapsed >= deadline || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if pace_ns == 0 {
                        match call {
                            Call::Timed => {
                                for _ in 0..256 {
                                    let t = op.start();
                                    drop(t);
                                }
                            }
                            Call::RecordNs => {
                                for i in 0..256 {
                                    op.record_ns(std::hint::black_box(200 + i));
                                }
                            }
                        }
                        issued += 256;
                    } else {
                        if holdup_ms > 0 && elapsed >= next_holdup {
                            std::thread::sleep(holdup);
                            next_holdup += 100_000_000;
                            continue;
                        }
                        if elapsed < due {
                            std::hint::spin_loop();
                            continue;
                        }
                        max_lag_ns = max_lag_ns.max(elapsed - due);
                        match call {
                            Call::Timed => drop(op.start()),
                            Call::RecordNs => op.record_ns(std::hint::black_box(200)),
                        }
                        issued += 1;
                        // Slightly late calls catch up (at most 100 in a burst); after a longer
                        // hold-up (the thread lost its core, so it did no work meanwhile) the
                        // next call is due one interval after this one, without a burst.
                        due = if !catch_up && elapsed - due > 100 * pace_ns {
                            elapsed + pace_ns
                        } else {
                            due + pace_ns
                        };
                    }
                }
                (issued, clock.delta_as_nanos(start, clock.raw()), max_lag_ns)
            })
        })
        .collect();
    barrier.wait();
    let s0 = aggregator_sched();
    let results: Vec<(u64, u64, u64)> = handles
        .into_iter()
        .map(|h| h.join().expect("producer"))
        .collect();
    let s1 = aggregator_sched();
    stop.store(true, Ordering::Relaxed);
    let issued: u64 = results.iter().map(|r| r.0).sum();
    let wall_ns = results.iter().map(|r| r.1).max().unwrap_or(1).max(1);
    let max_lag = results.iter().map(|r| r.2).max().unwrap_or(0);
    let (count, dropped) = totals(&engine, name);
    assert_eq!(count + dropped, issued, "{id}: calls not accounted for");
    engine.shutdown().expect("shutdown");
    let rate = issued as f64 / (wall_ns as f64 / 1e9);
    emit(
        "sustained",
        id,
        &[
            ("threads", threads.to_string()),
            ("call", format!("\"{call:?}\"")),
            ("ring", capacity.to_string()),
            ("default_ring", ring.is_none().to_string()),
            ("pace_ns", pace_ns.to_string()),
            ("catch_up", catch_up.to_string()),
            ("holdup_ms", holdup_ms.to_string()),
            ("issued", issued.to_string()),
            ("recorded", count.to_string()),
            ("dropped", dropped.to_string()),
            (
                "dropped_fraction",
                format!("{:.6}", dropped as f64 / issued as f64),
            ),
            ("calls_per_s", format!("{rate:.0}")),
            (
                "calls_per_s_per_thread",
                format!("{:.0}", rate / threads as f64),
            ),
            (
                "recorded_per_s",
                format!("{:.0}", count as f64 / (wall_ns as f64 / 1e9)),
            ),
            ("max_pacing_lag_ns", max_lag.to_string()),
            (
                "aggregator_cpu_fraction",
                format!("{:.3}", (s1.cpu_ns - s0.cpu_ns) as f64 / wall_ns as f64),
            ),
            // Why a woken aggregator falls behind: its time waiting for a CPU (after its
            // wake-ups and after being preempted), its wake-ups and its preemptions.
            (
                "aggregator_wait_fraction",
                format!("{:.3}", (s1.wait_ns - s0.wait_ns) as f64 / wall_ns as f64),
            ),
            (
                "aggregator_wakeups_per_s",
                format!(
                    "{:.0}",
                    (s1.voluntary - s0.voluntary) as f64 / secs_of(wall_ns)
                ),
            ),
            (
                "aggregator_preempted_per_s",
                format!(
                    "{:.0}",
                    (s1.involuntary - s0.involuntary) as f64 / secs_of(wall_ns)
                ),
            ),
            ("load1", load1()),
        ],
    );
}

/// The `/proc` directory of the one running engine's aggregator thread. A new thread names
/// itself when it first runs, which on a busy machine can be a while after the engine
/// started: this waits for it (up to 5 s).
fn aggregator_task() -> std::path::PathBuf {
    let t0 = Instant::now();
    loop {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
            let Ok(task) = task else { continue };
            let dir = task.path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            // Linux keeps the first 15 bytes of a thread's name.
            let comm = comm.trim_end();
            if !comm.is_empty() && "ringmeter-aggregator".starts_with(comm) {
                found.push(dir);
            }
        }
        assert!(found.len() <= 1, "one engine running at a time");
        if let Some(dir) = found.pop() {
            return dir;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the aggregator thread never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// What the scheduler says of the aggregator thread: its time on a CPU and its time waiting
/// for one, in nanoseconds, and its context switches.
#[derive(Clone, Copy, Debug, Default)]
struct Sched {
    /// Time on a CPU (the scheduler's statistics, or user + system time where those are
    /// missing).
    cpu_ns: u64,
    /// Time runnable but waiting for a CPU: after a wake-up before it runs, and after being
    /// preempted (0 where the scheduler's statistics are missing).
    wait_ns: u64,
    /// Voluntary context switches: one per park that blocked (so one per wake-up).
    voluntary: u64,
    /// Involuntary context switches: preempted while it had work.
    involuntary: u64,
}

/// The aggregator thread of the one running engine, as the scheduler sees it.
fn aggregator_sched() -> Sched {
    let dir = &aggregator_task();
    // `schedstat`: time on a CPU, time waiting on a run queue (ns), time slices.
    let schedstat: Vec<u64> = std::fs::read_to_string(dir.join("schedstat"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let cpu_ns = schedstat.first().copied().unwrap_or_else(|| {
        // Fields 14 and 15 of `stat` (after the parenthesised name): user and system time in
        // clock ticks of 10 ms.
        let stat = std::fs::read_to_string(dir.join("stat")).expect("stat");
        let rest = &stat[stat.rfind(')').expect("stat name") + 2..];
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        (f[11] + f[12]) * 10_000_000
    });
    let status = std::fs::read_to_string(dir.join("status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Sched {
        cpu_ns,
        wait_ns: schedstat.get(1).copied().unwrap_or(0),
        voluntary: field("voluntary_ctxt_switches:"),
        involuntary: field("nonvoluntary_ctxt_switches:"),
    }
}

/// The aggregator thread's time on a CPU in nanoseconds and its voluntary context switches
/// (see [`aggregator_sched`]).
fn aggregator_cpu() -> (u64, u64) {
    let s = aggregator_sched();
    (s.cpu_ns, s.voluntary)
}

/// Resident memory of this process, in bytes (`/proc/self/statm`).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// Memory per thread: `threads` threads wait on a barrier between phases while the resident
/// set and the live heap are read: started (no call yet), registered (one call each, idle
/// since) and busy (each has written its whole ring through, twice its capacity of calls,
/// the aggregator draining meanwhile). Default builder.
fn memory_per_thread(threads: usize) {
    let engine = Engine::builder().start().expect("engine");
    let op = engine.op("bench.memory").expect("op");
    let capacity = engine.ring_capacity();
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || {
                    barrier.wait(); // started
                    barrier.wait();
                    op.record_ns(1);
                    barrier.wait(); // registered
                    barrier.wait();
                    for i in 0..2 * capacity as u64 {
                        op.record_ns(std::hint::black_box(200 + (i & 0xff)));
                        if i % 1024 == 0 {
                            std::thread::yield_now(); // let the aggregator keep up
                        }
                    }
                    barrier.wait(); // busy
                    barrier.wait();
                })
                .expect("thread")
        })
        .collect();
    let phase = || {
        barrier.wait();
        // Let the aggregator adopt and drain what the threads did.
        std::thread::sleep(Duration::from_millis(200));
        engine.flush().expect("flush");
        let r = (rss(), heap().0 as u64);
        barrier.wait();
        r
    };
    let started = phase();
    let registered = phase();
    let busy = phase();
    for h in handles {
        h.join().expect("thread");
    }
    let (count, dropped) = totals(&engine, "bench.memory");
    assert_eq!(count + dropped, threads as u64 * (1 + 2 * capacity as u64));
    engine.shutdown().expect("shutdown");
    let per = |a: u64, b: u64| format!("{:.1}", (b as f64 - a as f64) / threads as f64 / 1024.0);
    emit(
        "memory",
        &format!("threads_{threads}"),
        &[
            ("threads", threads.to_string()),
            ("ring", capacity.to_string()),
            ("idle_rss_kib_per_thread", per(started.0, registered.0)),
            ("busy_rss_kib_per_thread", per(started.0, busy.0)),
            ("idle_heap_kib_per_thread", per(started.1, registered.1)),
            ("busy_heap_kib_per_thread", per(started.1, busy.1)),
            ("dropped", dropped.to_string()),
            ("load1", load1()),
        ],
    );
}

/// An idle engine (default builder, nothing recording): its aggregator thread's CPU time and
/// wake-ups over `secs` seconds, after a second to settle.
fn idle_cost(secs: f64) {
    let engine = Engine::builder().start().expect("engine");
    std::thread::sleep(Duration::from_secs_f64(secs.min(1.0)));
    let (cpu0, sw0) = aggregator_cpu();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (cpu1, sw1) = aggregator_cpu();
    let wall = t0.elapsed().as_secs_f64();
    engine.shutdown().expect("shutdown");
    let cpu_ms = (cpu1 - cpu0) as f64 / 1e6;
    emit(
        "idle",
        "aggregator_idle",
        &[
            ("secs", format!("{wall:.2}")),
            ("cpu_ms", format!("{cpu_ms:.3}")),
            ("cpu_fraction", format!("{:.6}", cpu_ms / 1e3 / wall)),
            ("wakeups_per_s", format!("{:.1}", (sw1 - sw0) as f64 / wall)),
        ],
    );
}

fn secs_of(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The 1-minute load average, as the machine's business while a scenario ran.
fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "null".into())
}

/// Live heap growth over `n` records (or timed calls for a peer that only times) through
/// one handle, with nothing draining: no flush, upkeep, refresh or collection.
fn heap_growth<P: Peer>(id: &str, peer: P, n: u64) {
    let mut l = peer.local();
    // The first call may set up per-thread state (ring registration, lazy histogram).
    if P::RECORDS {
        l.record(1_250);
    } else {
        l.timed();
    }
    let (live0, allocs0) = heap();
    let t0 = Instant::now();
    if P::RECORDS {
        for i in 0..n {
            l.record(200 + (i & 0xFFFF));
        }
    } else {
        for _ in 0..n {
            l.timed();
        }
    }
    let elapsed = t0.elapsed();
    let (live1, allocs1) = heap();
    let grown = live1 as i64 - live0 as i64;
    emit(
        "heap",
        id,
        &[
            ("records", n.to_string()),
            ("heap_growth_bytes", grown.to_string()),
            (
                "bytes_per_record",
                format!("{:.3}", grown as f64 / n as f64),
            ),
            ("allocations", (allocs1 - allocs0).to_string()),
            ("secs", format!("{:.2}", elapsed.as_secs_f64())),
        ],
    );
    drop(l);
    drop(peer);
}

/// ringmeter at steady state with its aggregator thread and 100 ms windows closing, at
/// 5 M calls/s (which the aggregator keeps up with): a warm-up pass fills the pool of
/// histograms, then two passes of `n` calls each; the figure is the second pass's growth (the
/// first's is reported beside it), so one-off growth as windows and pools settle is told
/// apart from growth per record.
fn heap_steady(n: u64) {
    let engine = Engine::builder()
        .ring_capacity(1 << 16)
        .window(Duration::from_millis(100))
        .grace(Duration::from_millis(10))
        .start()
        .expect("engine");
    let op = engine.op("bench.heap_steady").expect("op");
    let clock = quanta_clock();
    let pass = |n: u64| {
        let start = clock.raw();
        for i in 0..n {
            op.record_ns(200 + (i & 0xFFFF));
            if i % 1024 == 0 {
                while clock.delta_as_nanos(start, clock.raw()) < i * 200 {
                    std::hint::spin_loop();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
        engine.flush().expect("flush");
        heap()
    };
    pass(n / 4);
    let (live0, allocs0) = heap();
    let (live1, allocs1) = pass(n);
    let (live2, allocs2) = pass(n);
    let (count, dropped) = totals(&engine, "bench.heap_steady");
    let grown = live2 as i64 - live1 as i64;
    emit(
        "heap",
        "ringmeter_aggregator_steady_state",
        &[
            ("records", n.to_string()),
            ("heap_growth_bytes", grown.to_string()),
            (
                "bytes_per_record",
                format!("{:.3}", grown as f64 / n as f64),
            ),
            ("allocations", (allocs2 - allocs1).to_string()),
            (
                "first_pass_growth_bytes",
                (live1 as i64 - live0 as i64).to_string(),
            ),
            ("first_pass_allocations", (allocs1 - allocs0).to_string()),
            ("recorded", count.to_string()),
            ("dropped", dropped.to_string()),
            (
                "windows_closed",
                engine.snapshot().windows_closed.to_string(),
            ),
        ],
    );
    engine.shutdown().expect("shutdown");
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

fn summary(mut v: Vec<f64>) -> Vec<(&'static str, String)> {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    vec![
        ("n", v.len().to_string()),
        ("min", format!("{:.3}", v[0])),
        ("p50", format!("{:.3}", q(0.5))),
        ("p90", format!("{:.3}", q(0.9))),
        ("p99", format!("{:.3}", q(0.99))),
        ("max", format!("{:.3}", v[v.len() - 1])),
    ]
}

/// The drain rate on one core: `flush` of `events` queued events, CPU time of the flushing
/// thread; beside it, the Prometheus recorder's `run_upkeep` of as many queued values.
fn drain_rate(size: &Size) {
    let engine = Engine::builder()
        .ring_capacity((size.drain_events as usize).next_power_of_two())
        .start_manual()
        .expect("engine");
    for (id, timed) in [
        ("ringmeter_flush_record_ns", false),
        ("ringmeter_flush_timed", true),
    ] {
        let name = format!("bench.drain.{id}");
        let op = engine.op(&name).expect("op");
        let mut spread = Spread(0x9E37_79B9_7F4A_7C15);
        let mut rates = Vec::new();
        for _ in 0..size.drain_reps {
            let (c0, _) = totals(&engine, &name);
            for _ in 0..size.drain_events {
                if timed {
                    let t = op.start();
                    drop(t);
                } else {
                    op.record_ns(spread.next());
                }
            }
            let t0 = begin();
            engine.flush().expect("flush");
            let spent = since(t0);
            let (c1, d1) = totals(&engine, &name);
            assert_eq!((c1 - c0, d1), (size.drain_events, 0), "{id}");
            rates.push(size.drain_events as f64 / spent.as_secs_f64() / 1e6);
        }
        emit("drain", id, &summary_fields(rates, size.drain_events));
    }
    let facade = Facade::new("drain_facade");
    let mut l = facade.local();
    let mut spread = Spread(0x9E37_79B9_7F4A_7C15);
    let mut rates = Vec::new();
    let mut issued = 0;
    for _ in 0..size.drain_reps {
        for _ in 0..size.drain_events {
            l.record(spread.next());
        }
        issued += size.drain_events;
        let t0 = begin();
        facade.drain();
        let spent = since(t0);
        rates.push(size.drain_events as f64 / spent.as_secs_f64() / 1e6);
    }
    assert_eq!(facade.count(), issued, "facade drain");
    emit(
        "drain",
        "metrics_exporter_prometheus_run_upkeep",
        &summary_fields(rates, size.drain_events),
    );
}

fn summary_fields(rates: Vec<f64>, events: u64) -> Vec<(&'static str, String)> {
    let mut f = summary(rates);
    f.push(("unit", "\"M events/s\"".into()));
    f.push(("events", events.to_string()));
    f
}

/// Latency from an event to the publication of its window, with the aggregator thread and
/// windows of 10 ms, grace 1 ms and the default drain interval: one event per window at a
/// varying offset; `event_to_publish_ms` is from the event's end to the window's arrival
/// at a subscriber, `after_close_ms` from the window's close (end + grace) to its arrival.
fn publish_latency(size: &Size) {
    let window = Duration::from_millis(10);
    let grace = Duration::from_millis(1);
    let engine = Engine::builder()
        .window(window)
        .grace(grace)
        .start()
        .expect("engine");
    let name = "bench.latency";
    let op = engine.op(name).expect("op");
    let sub = engine.subscribe(1024);
    let mut spread = Spread(0x2545_F491_4F6C_DD1D);
    let mut to_publish = Vec::new();
    let mut after_close = Vec::new();
    for _ in 0..size.windows {
        // A varying offset into the window.
        std::thread::sleep(Duration::from_micros(spread.next() % 10_000));
        let t = op.start();
        drop(t);
        let ev = unix_ns();
        loop {
            let w = sub.recv_timeout(Duration::from_secs(2)).expect("a window");
            let got = unix_ns();
            if w.op(name).is_some_and(|o| o.stats.count > 0) {
                let close = w.start_unix_ns + w.length_ns + grace.as_nanos() as u64;
                to_publish.push(got.saturating_sub(ev) as f64 / 1e6);
                after_close.push((got as f64 - close as f64) / 1e6);
                break;
            }
        }
    }
    assert_eq!(sub.missed(), 0, "windows missed");
    let mut f = summary(to_publish);
    f.push(("unit", "\"ms\"".into()));
    f.push(("window_ms", window.as_millis().to_string()));
    f.push(("grace_ms", grace.as_millis().to_string()));
    emit("latency", "event_to_publish", &f);
    let mut f = summary(after_close);
    f.push(("unit", "\"ms\"".into()));
    emit("latency", "window_close_to_publish", &f);
    engine.shutdown().expect("shutdown");
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |s: &str| filter.is_empty() || filter.iter().any(|f| s.contains(f.as_str()));
    let size = if full {
        Size {
            secs: 3.0,
            idle_secs: 10.0,
            heap_records: 10_000_000,
            drain_events: 1_000_000,
            drain_reps: 10,
            windows: 200,
            memory_threads: 1000,
        }
    } else {
        Size {
            secs: 0.05,
            idle_secs: 0.1,
            heap_records: 10_000,
            drain_events: 10_000,
            drain_reps: 2,
            windows: 3,
            memory_threads: 8,
        }
    };
    meter();
    let s = size.secs;
    let run = |id: &str, ring: Option<usize>, load: Load| {
        if want(&format!("sustained/{id}")) {
            sustained(id, ring, load, s);
        }
    };
    // The default builder.
    run(
        "backtoback_1t_default",
        None,
        Load::back_to_back(1, Call::Timed),
    );
    let record_ns = Load::back_to_back(1, Call::RecordNs);
    run("backtoback_record_ns_1t_default", None, record_ns);
    run(
        "backtoback_2t_default",
        None,
        Load::back_to_back(2, Call::Timed),
    );
    // Ring sizes.
    for (id, ring) in [
        ("backtoback_1t_ring8192", 8192),
        ("backtoback_1t_ring2p14", 1 << 14),
        ("backtoback_1t_ring2p16", 1 << 16),
        ("backtoback_1t_ring2p20", 1 << 20),
    ] {
        run(id, Some(ring), Load::back_to_back(1, Call::Timed));
    }
    run(
        "backtoback_2t_ring2p20",
        Some(1 << 20),
        Load::back_to_back(2, Call::Timed),
    );
    run(
        "paced_1m_per_s_1t_default",
        None,
        Load::paced(1, 1000, false, 0),
    );
    run(
        "paced_1m_per_s_2t_default",
        None,
        Load::paced(2, 1000, false, 0),
    );
    let catch_up = Load::paced(1, 1000, true, 0);
    run("paced_1m_per_s_catchup_1t_default", None, catch_up);
    let catch_up = Load::paced(2, 1000, true, 0);
    run("paced_1m_per_s_catchup_2t_default", None, catch_up);
    let holdup = Load::paced(1, 1000, true, 10);
    run("paced_1m_per_s_holdup10ms_1t_default", None, holdup);
    run("paced_1m_per_s_holdup10ms_1t_ring8192", Some(8192), holdup);
    if want("memory/threads") {
        memory_per_thread(size.memory_threads);
    }
    if want("idle/aggregator_idle") {
        idle_cost(size.idle_secs);
    }
    if want("heap") {
        let n = size.heap_records;
        heap_growth(
            "ringmeter_manual_undrained",
            Ringmeter::manual(8192, "bench.heap"),
            n,
        );
        heap_steady(n);
        heap_growth("metrics_facade_prometheus", Facade::new("heap_facade"), n);
        heap_growth("metrics_util_atomic_bucket", Bucket::default(), n);
        heap_growth("prometheus_shared", PromShared::new("heap_prom_shared"), n);
        heap_growth("prometheus_local", PromLocal::new("heap_prom_local"), n);
        heap_growth("metriken_atomic_histogram", Metriken::default(), n);
        heap_growth("hdrhistogram_owned", HdrOwned::default(), n);
        heap_growth("hdrhistogram_mutex", HdrMutex::default(), n);
        heap_growth("hdrhistogram_sync_recorder", HdrSync::default(), n);
        heap_growth("fastrace_local_span", Fastrace::default(), n);
    }
    if want("drain") {
        drain_rate(&size);
    }
    if want("latency") {
        publish_latency(&size);
    }
}
