//! ringmeter against the crates one would otherwise pick, all in one run so that ratios are
//! comparable (scenarios 1–4 of `docs/performance.md`):
//!
//! | group | scenario |
//! |---|---|
//! | `floor` | a raw `_rdtsc()` pair, quanta's raw pair with `delta_as_nanos`, ringmeter's clock pair, a `std::time::Instant` pair |
//! | `timed` | clock pair around an empty body plus the record, one thread (peers without a timer of their own use quanta's raw pair, the same TSC reads as ringmeter) |
//! | `record` | record of a pre-measured value, one thread |
//! | `unsampled` | ringmeter calls that the operation's rule does not sample (`Sampling::CountOnly`: `time`, a guard, `record_ns`), and a guard on an operation sampled one call in 64 |
//! | `threads` | per-thread cost with 1 and 2 threads recording at once (`record_1t/…`, `record_2t/…`); peers that share one metric share it |
//! | `span` | one span through `tracing` (`info_span!("compare.span").in_scope(\|\| ())`, the subscriber the thread's default): the registry alone, ringmeter's `TracingLayer` (wall and busy time), tracing-timing's layer; fastrace's own `LocalSpan` and ringmeter's guard for reference |
//!
//! Every scenario checks before timing that its calls arrive, and after timing that every
//! timed call was aggregated (ringmeter: recorded, none dropped). Calls are timed in chunks
//! of 4096 with the crate's drain (ringmeter `flush`, `run_upkeep`, bucket `clear_with`,
//! span collection) untimed between chunks, so no figure times a full buffer.
//!
//! Times are the measuring thread's CPU time (`RINGMETER_BENCH_CLOCK=wall` for wall time).
//! Run: `cargo bench --manifest-path benches/compare/Cargo.toml --bench compare`, or the
//! whole set with `scripts/bench.sh`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use ringmeter::facade::tracing::Timing;
use ringmeter::{Engine, Op, Rule, Sampling};
use ringmeter_compare::{
    begin, check, chunked, meter, quanta_clock, since, Bucket, Call, Facade, Fastrace, HdrMutex,
    HdrOwned, HdrSync, Metriken, Peer, PromLocal, PromShared, Ringmeter, TracingSpans, Workers,
    CHUNK, PRE_MEASURED_NS,
};

/// Ring of the manual engines (twice a chunk, so it never fills).
const RING: usize = 2 * CHUNK as usize;

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
    let clock = quanta_clock();
    g.bench_function("quanta_raw_pair", |b| {
        b.iter_custom(|iters| {
            let t0 = begin();
            for _ in 0..iters {
                let a = clock.raw();
                let z = clock.raw();
                black_box(clock.delta_as_nanos(a, z));
            }
            since(t0)
        });
    });
    let engine = Ringmeter::manual(RING, "floor.clock");
    let clock = engine.engine.clock().clone();
    assert!(!clock.is_mock());
    g.bench_function("ringmeter_clock_raw_pair", |b| {
        b.iter_custom(|iters| {
            let t0 = begin();
            for _ in 0..iters {
                black_box(clock.raw());
                black_box(clock.raw());
            }
            since(t0)
        });
    });
    g.bench_function("instant_pair", |b| {
        b.iter_custom(|iters| {
            let t0 = begin();
            for _ in 0..iters {
                let a = Instant::now();
                black_box(a.elapsed());
            }
            since(t0)
        });
    });
    g.finish();
}

/// Benches `what` through one thread's handle on `peer`: checked before, every call counted after.
fn one<P: Peer>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str, peer: P, what: Call) {
    if (what == Call::Record && !P::RECORDS) || (what == Call::Timed && !P::TIMES) {
        return;
    }
    check(&peer, id, what, 1000);
    let c0 = peer.count();
    let mut l = peer.local();
    let mut issued = 0;
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            issued += iters;
            chunked(&peer, &mut l, what, iters)
        });
    });
    drop(l);
    peer.drain();
    assert_eq!(peer.count() - c0, issued, "{id}: timed calls lost");
}

/// Every peer, `what` on one thread.
fn peers(g: &mut BenchmarkGroup<'_, WallTime>, what: Call, tag: &str) {
    one(
        g,
        "ringmeter",
        Ringmeter::manual(RING, &format!("{tag}.ringmeter")),
        what,
    );
    one(
        g,
        "metrics_facade_prometheus",
        Facade::new(&format!("{tag}_facade")),
        what,
    );
    one(g, "metrics_util_atomic_bucket", Bucket::default(), what);
    one(
        g,
        "prometheus_shared",
        PromShared::new(&format!("{tag}_prom_shared")),
        what,
    );
    one(
        g,
        "prometheus_local",
        PromLocal::new(&format!("{tag}_prom_local")),
        what,
    );
    one(g, "metriken_atomic_histogram", Metriken::default(), what);
    one(g, "hdrhistogram_owned", HdrOwned::default(), what);
    one(g, "hdrhistogram_mutex", HdrMutex::default(), what);
    one(g, "hdrhistogram_sync_recorder", HdrSync::default(), what);
    one(g, "fastrace_local_span", Fastrace::default(), what);
}

fn timed(c: &mut Criterion) {
    let mut g = c.benchmark_group("timed");
    peers(&mut g, Call::Timed, "timed");
    g.finish();
}

fn record(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    peers(&mut g, Call::Record, "record");
    g.finish();
}

/// (recorded, unsampled, dropped) of `name` after a flush.
fn calls(engine: &Engine, name: &str) -> (u64, u64, u64) {
    engine.flush().expect("flush");
    let snap = engine.snapshot();
    snap.totals(name)
        .map_or((0, 0, 0), |s| (s.count, s.unsampled, s.dropped))
}

/// ringmeter calls that the operation's rule does not time (`Sampling::CountOnly`: no clock
/// read, the call is only counted), and a guard on an operation sampled one call in 64.
fn unsampled(c: &mut Criterion) {
    let mut g = c.benchmark_group("unsampled");
    let engine = Engine::builder()
        .ring_capacity(RING)
        .rule("bench.unsampled", Rule::new().sampling(Sampling::CountOnly))
        .rule("bench.every64", Rule::new().sampling(Sampling::Every(64)))
        .start_manual()
        .expect("engine");
    let count_only = engine.op("bench.unsampled").expect("op");
    let every64 = engine.op("bench.every64").expect("op");
    type Call = fn(Op);
    let cases: [(&str, Op, Call); 4] = [
        ("time_count_only", count_only, |op| {
            op.time(|| black_box(()))
        }),
        ("guard_count_only", count_only, |op| drop(op.start())),
        ("record_ns_count_only", count_only, |op| {
            op.record_ns(black_box(PRE_MEASURED_NS))
        }),
        ("guard_sampled_every64", every64, |op| drop(op.start())),
    ];
    for (id, op, f) in cases {
        let name = engine.op_name(op).expect("name");
        let (r0, u0, d0) = calls(&engine, &name);
        for _ in 0..1000 {
            f(op);
        }
        let (r1, u1, d1) = calls(&engine, &name);
        assert_eq!(r1 - r0 + u1 - u0, 1000, "{id}: calls lost");
        assert_eq!(d1 - d0, 0, "{id}: dropped");
        if op == count_only {
            assert_eq!(u1 - u0, 1000, "{id}: a count-only call was timed");
        }
        let mut issued = 0;
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                issued += iters;
                let mut left = iters;
                let mut spent = Duration::ZERO;
                while left > 0 {
                    let n = left.min(CHUNK);
                    let t0 = begin();
                    for _ in 0..n {
                        f(op);
                    }
                    spent += since(t0);
                    engine.flush().expect("flush");
                    left -= n;
                }
                spent
            });
        });
        let (r2, u2, d2) = calls(&engine, &name);
        assert_eq!(r2 - r1 + u2 - u1, issued, "{id}: timed calls lost");
        assert_eq!(d2 - d1, 0, "{id}: dropped");
    }
    g.finish();
}

/// `n` threads; per-thread cost of `what`, checked after.
fn threaded<P: Peer>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    peer: P,
    what: Call,
    n: usize,
) {
    if (what == Call::Record && !P::RECORDS) || (what == Call::Timed && !P::TIMES) {
        return;
    }
    let prefix = match what {
        Call::Timed => "timed",
        Call::Record => "record",
    };
    let peer = Arc::new(peer);
    let c0 = peer.count();
    let workers = Workers::new(Arc::clone(&peer), n, what);
    let _ = workers.run(1000);
    g.bench_function(format!("{prefix}_{n}t/{id}"), |b| {
        b.iter_custom(|iters| workers.run(iters));
    });
    let issued = workers.finish();
    peer.drain();
    assert_eq!(peer.count() - c0, issued, "{id}: {n} threads: calls lost");
}

fn threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("threads");
    for n in [1usize, 2] {
        let what = Call::Record;
        let tag = format!("threads{n}");
        threaded(
            &mut g,
            "ringmeter",
            Ringmeter::manual(RING, &format!("{tag}.ringmeter")),
            what,
            n,
        );
        threaded(
            &mut g,
            "metrics_facade_prometheus",
            Facade::new(&format!("{tag}_facade")),
            what,
            n,
        );
        threaded(
            &mut g,
            "metrics_util_atomic_bucket",
            Bucket::default(),
            what,
            n,
        );
        threaded(
            &mut g,
            "prometheus_shared",
            PromShared::new(&format!("{tag}_prom_shared")),
            what,
            n,
        );
        threaded(
            &mut g,
            "prometheus_local",
            PromLocal::new(&format!("{tag}_prom_local")),
            what,
            n,
        );
        threaded(
            &mut g,
            "metriken_atomic_histogram",
            Metriken::default(),
            what,
            n,
        );
        threaded(&mut g, "hdrhistogram_owned", HdrOwned::default(), what, n);
        threaded(&mut g, "hdrhistogram_mutex", HdrMutex::default(), what, n);
        threaded(
            &mut g,
            "hdrhistogram_sync_recorder",
            HdrSync::default(),
            what,
            n,
        );
        // Timed calls: ringmeter (the clock pair dominates) and the span peer, which only times.
        threaded(
            &mut g,
            "ringmeter",
            Ringmeter::manual(RING, &format!("{tag}.ringmeter_timed")),
            Call::Timed,
            n,
        );
        threaded(
            &mut g,
            "fastrace_local_span",
            Fastrace::default(),
            Call::Timed,
            n,
        );
    }
    g.finish();
}

/// One span per call through `tracing`, each subscriber installed as the thread's default;
/// fastrace's local span and ringmeter's own guard (no `tracing`) for reference.
fn span(c: &mut Criterion) {
    let mut g = c.benchmark_group("span");
    let what = Call::Timed;
    one(
        &mut g,
        "tracing_registry_only",
        TracingSpans::registry(),
        what,
    );
    let wall = TracingSpans::ringmeter(RING, Timing::Wall);
    one(&mut g, "ringmeter_layer", wall, what);
    let busy = TracingSpans::ringmeter(RING, Timing::Busy);
    one(&mut g, "ringmeter_layer_busy", busy, what);
    one(
        &mut g,
        "tracing_timing_layer",
        TracingSpans::tracing_timing(),
        what,
    );
    one(&mut g, "fastrace_local_span", Fastrace::default(), what);
    one(
        &mut g,
        "ringmeter_guard",
        Ringmeter::manual(RING, "span.guard"),
        what,
    );
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1000));
    targets = floor, timed, record, unsampled, threads, span
}
criterion_main!(benches);
