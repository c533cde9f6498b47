//! Instruction counts per call, for `valgrind --tool=callgrind` (reproducible on a VM without
//! hardware counters). Each scenario is one `#[inline(never)]` function that makes `N` calls,
//! so callgrind's inclusive count of that function divided by `N` is the cost of one call
//! plus its share of the loop:
//!
//! ```sh
//! cargo build --release --example callgrind --manifest-path benches/compare/Cargo.toml
//! valgrind --tool=callgrind --callgrind-out-file=cg.out $CARGO_TARGET_DIR/release/examples/callgrind
//! callgrind_annotate --inclusive=yes cg.out | grep per_call_
//! ```

use std::hint::black_box;

use ringmeter::facade::tracing::Timing;
use ringmeter::{Engine, Op, Rule, Sampling};
use ringmeter_compare::{Local, Metriken, Peer, TracingSpans, PRE_MEASURED_NS};

/// Calls per scenario (the ring holds them all, so none is dropped).
const N: u64 = 1 << 20;

#[inline(never)]
fn per_call_ringmeter_record_ns(op: Op) {
    for _ in 0..N {
        op.record_ns(black_box(PRE_MEASURED_NS));
    }
}

/// Values per `record_ns_many` batch in `per_call_ringmeter_record_ns_many`.
const BATCH: usize = 64;

/// Per value, in batches of [`BATCH`].
#[inline(never)]
fn per_call_ringmeter_record_ns_many(op: Op) {
    let batch = [PRE_MEASURED_NS; BATCH];
    for _ in 0..N / BATCH as u64 {
        op.record_ns_many(black_box(&batch));
    }
}

#[inline(never)]
fn per_call_ringmeter_timed(op: Op) {
    for _ in 0..N {
        drop(op.start());
    }
}

#[inline(never)]
fn per_call_ringmeter_time_count_only(op: Op) {
    for _ in 0..N {
        op.time(|| black_box(()));
    }
}

#[inline(never)]
fn per_call_ringmeter_guard_count_only(op: Op) {
    for _ in 0..N {
        drop(op.start());
        // An empty barrier that emits no instruction, so that the linker does not fold this
        // loop into `per_call_ringmeter_timed`.
        black_box(());
    }
}

#[inline(never)]
fn per_call_ringmeter_record_ns_count_only(op: Op) {
    // A different value, so that the linker does not fold this loop into the one above.
    for _ in 0..N {
        op.record_ns(black_box(PRE_MEASURED_NS + 1));
    }
}

/// Two of the calls above through the thread's handle (`op.local()`, made once per loop).
/// (Each loop passes its own value through `black_box`, so that the linker folds none.)
#[inline(never)]
fn per_call_ringmeter_local_record_ns(op: Op) {
    let local = op.local();
    for _ in 0..N {
        local.record_ns(black_box(PRE_MEASURED_NS + 2));
    }
}

#[inline(never)]
fn per_call_ringmeter_local_record_ns_count_only(op: Op) {
    let local = op.local();
    for _ in 0..N {
        local.record_ns(black_box(PRE_MEASURED_NS + 3));
    }
}

#[inline(never)]
fn per_call_metriken_record<L: Local>(l: &mut L) {
    for _ in 0..N {
        l.record(black_box(PRE_MEASURED_NS));
    }
}

#[inline(never)]
fn per_call_rdtsc_pair() {
    for _ in 0..N {
        // SAFETY: `rdtsc` is available on every x86_64 CPU and has no preconditions.
        black_box(unsafe { core::arch::x86_64::_rdtsc() });
        // SAFETY: as above.
        black_box(unsafe { core::arch::x86_64::_rdtsc() });
    }
}

/// One span per call through `tracing` (`info_span!(..).in_scope(|| ())`), the peer's
/// subscriber the thread's default. (Each loop passes its own value through `black_box`, so
/// that the linker does not fold the two into one.)
#[inline(never)]
fn per_call_span_registry_only(peer: &TracingSpans) {
    let mut l = peer.local();
    for _ in 0..N {
        l.timed();
        black_box(1);
    }
}

#[inline(never)]
fn per_call_span_ringmeter_layer(peer: &TracingSpans) {
    let mut l = peer.local();
    for _ in 0..N {
        l.timed();
        black_box(2);
    }
}

#[inline(never)]
fn per_call_ringmeter_drain(engine: &Engine) {
    engine.flush().expect("flush");
}

/// Queues `N` pre-measured durations spread from 200 ns to ~65 µs (so the histogram sees
/// many buckets, as `hot_path`'s drain bench does); not a scenario itself.
#[inline(never)]
fn queue_spread_record_ns(op: Op) {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    for _ in 0..N {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        op.record_ns(200 + (x & 0xFFFF));
    }
}

#[inline(never)]
fn per_call_ringmeter_drain_record_ns(engine: &Engine) {
    engine.flush().expect("flush");
}

fn main() {
    let engine = Engine::builder()
        .ring_capacity(N as usize)
        .rule("cg.count_only", Rule::new().sampling(Sampling::CountOnly))
        .start_manual()
        .expect("engine");
    let rec = engine.op("cg.record").expect("op");
    let timed = engine.op("cg.timed").expect("op");
    let count_only = engine.op("cg.count_only").expect("op");
    rec.record_ns(1); // registers the thread's ring
    engine.flush().expect("flush");

    per_call_ringmeter_record_ns(rec);
    engine.flush().expect("flush");
    per_call_ringmeter_record_ns_many(rec);
    engine.flush().expect("flush");
    queue_spread_record_ns(rec);
    per_call_ringmeter_drain_record_ns(&engine); // drains N pre-measured events
    per_call_ringmeter_timed(timed);
    per_call_ringmeter_drain(&engine); // drains N timed events
    per_call_ringmeter_time_count_only(count_only);
    per_call_ringmeter_guard_count_only(count_only);
    per_call_ringmeter_record_ns_count_only(count_only);
    engine.flush().expect("flush");
    per_call_ringmeter_local_record_ns(rec);
    engine.flush().expect("flush");
    per_call_ringmeter_local_record_ns_count_only(count_only);
    engine.flush().expect("flush");
    per_call_rdtsc_pair();

    let metriken = Metriken::default();
    let mut l = metriken.local();
    l.record(1);
    per_call_metriken_record(&mut l);

    let registry = TracingSpans::registry();
    per_call_span_registry_only(&registry);
    let layer = TracingSpans::ringmeter(N as usize, Timing::Wall);
    per_call_span_ringmeter_layer(&layer);

    let snap = engine.snapshot();
    let get = |n: &str| snap.totals(n).map(|s| (s.count, s.unsampled, s.dropped));
    println!(
        "record {:?} timed {:?} count_only {:?} metriken {} spans {} {}",
        get("cg.record"),
        get("cg.timed"),
        get("cg.count_only"),
        metriken.count(),
        registry.count(),
        layer.count()
    );
}
