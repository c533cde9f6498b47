//! The heap an active operation costs: a few hundred calls per window, several windows
//! closed, measured by a counting global allocator (this test binary only). Memory is
//! deterministic, so the bound is asserted; `benches/memory.rs` measures the same with the
//! aggregator thread running.
//!
//! The engine is manual (no aggregator thread) and every call, flush and window close runs
//! on the test's thread, so the live heap counted is the engine's.

use std::time::Duration;

use ringmeter::{Clock, Engine, Op};

#[path = "support/live_heap.rs"]
mod live_heap;

use live_heap::{live, Spread};

#[test]
fn an_active_operation_costs_at_most_64_kib() {
    const OPS: usize = 200;
    const CALLS: u64 = 300;
    const WINDOWS: u32 = 6;
    let (clock, mock) = Clock::mock();
    let engine = Engine::builder()
        .clock(clock)
        .ring_capacity(1 << 16)
        .start_manual()
        .expect("engine");
    let ops: Vec<Op> = (0..OPS)
        .map(|i| engine.op(&format!("memory.op{i}")).expect("op"))
        .collect();
    ops[0].record_ns(1);
    engine.flush().expect("flush");
    mock.advance(Duration::from_secs(2));
    engine.flush().expect("flush");
    let base = live();

    let mut spread = Spread(0x9E37_79B9_7F4A_7C15);
    let mut levels = Vec::new();
    for _ in 0..WINDOWS {
        for op in &ops {
            for _ in 0..CALLS {
                op.record_ns(spread.next());
            }
        }
        // Past the window's end and grace: this flush drains and closes it.
        mock.advance(Duration::from_millis(1_100));
        engine.flush().expect("flush");
        levels.push(live() - base);
    }
    let per_op: Vec<i64> = levels.iter().map(|b| b / OPS as i64).collect();
    println!("live heap per operation after each window (bytes): {per_op:?}");
    let snap = engine.snapshot();
    let count: u64 = snap.totals.iter().map(|t| t.stats.count).sum();
    assert_eq!(count, 1 + OPS as u64 * CALLS * u64::from(WINDOWS));
    // A full HdrHistogram counts array at these bounds is 216 KiB; each window, the published
    // window and the totals used to hold one.
    assert!(
        per_op.iter().all(|&b| b <= 64 * 1024),
        "more than 64 KiB per operation: {per_op:?}"
    );
}
