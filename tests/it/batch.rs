//! `Op::record_ns_many`: a batch of pre-measured durations is the same as `record_ns` of each
//! value in turn, under every kind of rule, when the ring fills and across engines; every
//! value is recorded, counted unsampled, or counted dropped.

use ringmeter::{Clock, Engine, OpStats, Rule, Sampling};

fn manual(ring: usize) -> Engine {
    Engine::builder()
        .clock(Clock::mock().0)
        .ring_capacity(ring)
        .rule("b.count_only", Rule::new().sampling(Sampling::CountOnly))
        .rule("b.every4", Rule::new().sampling(Sampling::Every(4)))
        .start_manual()
        .expect("valid settings")
}

fn totals(engine: &Engine, name: &str) -> OpStats {
    engine.flush().unwrap();
    engine.snapshot().totals(name).cloned().unwrap_or_default()
}

/// Durations from 1 µs to about 66 µs, so the histogram sees many buckets.
fn values(n: usize) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            1_000 + (x & 0xFFFF)
        })
        .collect()
}

#[test]
fn a_batch_records_what_one_call_per_value_would() {
    let engine = manual(1 << 14);
    let batched = engine.op("b.batched").unwrap();
    let single = engine.op("b.single").unwrap();
    let v = values(5_000);
    // In pieces of every size, the ring wrapping in between.
    let mut rest = &v[..];
    let mut size = 0;
    while !rest.is_empty() {
        let (piece, after) = rest.split_at(size.min(rest.len()));
        batched.record_ns_many(piece);
        rest = after;
        size += 1;
    }
    for &ns in &v {
        single.record_ns(ns);
    }
    let (b, s) = (totals(&engine, "b.batched"), totals(&engine, "b.single"));
    assert_eq!((b.count, b.dropped, b.unsampled), (5_000, 0, 0));
    assert_eq!(
        (b.min_ns, b.max_ns, b.p50_ns, b.p99_ns, b.mean_ns),
        (s.min_ns, s.max_ns, s.p50_ns, s.p99_ns, s.mean_ns)
    );
    batched.record_ns_many(&[]);
    assert_eq!(totals(&engine, "b.batched").count, 5_000);
}

#[test]
fn a_batch_larger_than_the_free_ring_counts_the_rest_as_dropped() {
    // A manual engine's ring is drained only by `flush`.
    let engine = manual(64);
    let op = engine.op("b.timed").unwrap();
    op.record_ns(1); // registers the ring
    engine.flush().unwrap();
    op.record_ns_many(&values(1_000));
    let t = totals(&engine, "b.timed");
    assert_eq!((t.count, t.dropped), (1 + 64, 936));
    // The ring was emptied by the flush: the next batch fits again.
    op.record_ns_many(&values(64));
    let t = totals(&engine, "b.timed");
    assert_eq!((t.count, t.dropped), (1 + 64 + 64, 936));
}

#[test]
fn a_batch_follows_the_operations_rule() {
    let engine = manual(1 << 12);
    let count_only = engine.op("b.count_only").unwrap();
    let every4 = engine.op("b.every4").unwrap();
    count_only.record_ns_many(&values(1_000));
    every4.record_ns_many(&values(1_000));
    let c = totals(&engine, "b.count_only");
    assert_eq!((c.count, c.unsampled, c.dropped), (0, 1_000, 0));
    let e = totals(&engine, "b.every4");
    assert_eq!((e.count, e.unsampled, e.dropped), (250, 750, 0));

    // A rule changed between batches applies to the next one.
    engine
        .set_rule("b.count_only", Rule::new().sampling(Sampling::All))
        .unwrap();
    count_only.record_ns_many(&values(10));
    let c = totals(&engine, "b.count_only");
    assert_eq!((c.count, c.unsampled), (10, 1_000));
}

#[test]
fn batches_into_two_engines_in_turn_are_each_counted_once() {
    let (a, b) = (manual(1 << 12), manual(1 << 12));
    let (op_a, op_b) = (a.op("b.x").unwrap(), b.op("b.x").unwrap());
    for round in 0..50 {
        // Each batch misses the thread's one-entry cache, which holds the other engine.
        op_a.record_ns_many(&values(round));
        op_b.record_ns_many(&values(2 * round));
    }
    let n: u64 = (0..50).sum();
    assert_eq!(totals(&a, "b.x").count, n);
    assert_eq!(totals(&b, "b.x").count, 2 * n);
}

#[test]
fn batches_from_threads_that_exit_are_all_counted() {
    let engine = Engine::builder()
        .ring_capacity(1 << 10)
        .rule("b.every4", Rule::new().sampling(Sampling::Every(4)))
        .start()
        .unwrap();
    let timed = engine.op("b.timed").unwrap();
    let every4 = engine.op("b.every4").unwrap();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let v = values(1_000);
                for _ in 0..20 {
                    timed.record_ns_many(&v);
                    every4.record_ns_many(&v[..100]);
                }
            });
        }
    });
    let t = totals(&engine, "b.timed");
    assert_eq!(t.count + t.dropped, 3 * 20 * 1_000);
    let e = totals(&engine, "b.every4");
    assert_eq!(e.count + e.unsampled + e.dropped, 3 * 20 * 100);
}
