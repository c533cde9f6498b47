//! Heap per active operation: live heap bytes (a counting global allocator, every thread)
//! that operations with a few hundred calls per window hold at steady state, divided by the
//! number of operations.
//!
//! ```sh
//! cargo bench --bench memory
//! ```
//!
//! The engine runs its aggregator thread with 100 ms windows (rings of 2^20 events, so that a
//! loaded machine's aggregator catches up rather than dropping); one thread records
//! `CALLS_PER_WINDOW` pre-measured calls per operation and window, paced over the window,
//! with durations spread log-uniformly from 20 µs to 1.28 ms (six doublings, the spread of a
//! typical service call). The baseline is the live heap once the engine, its operations and
//! the recording thread's ring exist and empty windows have closed; the figures are the live
//! heap above it after each of the last windows (open windows, the published last window,
//! totals and pools all included), per operation. Each result is printed as a
//! `compare-json:` line (kind `memory`) for `scripts/bench_report.py`.

use std::thread::sleep;
use std::time::{Duration, Instant};

use ringmeter::{Engine, Op};

#[path = "../tests/support/live_heap.rs"]
mod live_heap;

use live_heap::{live, Spread};

const WINDOW: Duration = Duration::from_millis(100);
/// Calls per operation and window.
const CALLS_PER_WINDOW: u64 = 300;
/// Slices a window's calls are recorded in, paced.
const SLICES: u64 = 10;
/// Windows recorded; the figures are taken after each of the last `MEASURED`.
const WINDOWS: u32 = 12;
const MEASURED: u32 = 6;

fn emit(kind: &str, id: &str, fields: &[(&str, String)]) {
    let mut s = format!("{{\"kind\":\"{kind}\",\"id\":\"{id}\"");
    for (k, v) in fields {
        s.push_str(&format!(",\"{k}\":{v}"));
    }
    s.push('}');
    println!("compare-json: {s}");
}

fn run(ops: usize, windows: u32, measured: u32) {
    let engine = Engine::builder()
        .window(WINDOW)
        .grace(Duration::from_millis(10))
        .ring_capacity(1 << 20)
        .start()
        .expect("engine");
    let handles: Vec<Op> = (0..ops)
        .map(|i| engine.op(&format!("memory.op{i}")).expect("op"))
        .collect();
    // The ring, the names and empty windows exist before the baseline.
    handles[0].record_ns(1);
    engine.flush().expect("flush");
    sleep(WINDOW * 3);
    let base = live();

    let mut spread = Spread(0x9E37_79B9_7F4A_7C15);
    let slice = WINDOW / SLICES as u32;
    let mut levels = Vec::new();
    let t0 = Instant::now();
    let mut next = t0;
    for w in 0..windows {
        for _ in 0..SLICES {
            for op in &handles {
                for _ in 0..CALLS_PER_WINDOW / SLICES {
                    op.record_ns(spread.next());
                }
            }
            next += slice;
            sleep(next.saturating_duration_since(Instant::now()));
        }
        if w >= windows - measured {
            levels.push(live() - base);
        }
    }
    // Totals that include the open windows.
    engine.flush().expect("flush");
    let snap = engine.snapshot();
    let (mut count, mut dropped) = (0, 0);
    for t in &snap.totals {
        count += t.stats.count;
        dropped += t.stats.dropped;
    }
    levels.sort_unstable();
    let median = levels[levels.len() / 2];
    let max = *levels.last().expect("levels");
    let per_op = |b: i64| b as f64 / ops as f64 / 1024.0;
    println!(
        "memory: {ops} operations, {CALLS_PER_WINDOW} calls per window each: {:.1} KiB per \
         operation (median after each of the last {measured} windows; max {:.1} KiB), \
         {:.1} MiB in all; {count} calls recorded, {dropped} dropped",
        per_op(median),
        per_op(max),
        median as f64 / 1048576.0
    );
    emit(
        "memory",
        &format!("ops_{ops}"),
        &[
            ("ops", ops.to_string()),
            ("calls_per_window", CALLS_PER_WINDOW.to_string()),
            ("window_ms", WINDOW.as_millis().to_string()),
            ("bytes_per_op", format!("{:.0}", median as f64 / ops as f64)),
            (
                "bytes_per_op_max",
                format!("{:.0}", max as f64 / ops as f64),
            ),
            ("heap_bytes", median.to_string()),
            ("recorded", count.to_string()),
            ("dropped", dropped.to_string()),
        ],
    );
    drop(snap);
    engine.shutdown().expect("shutdown");
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) one short run checks
    // that the bench works. A filter argument selects the runs whose id it is in.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        run(20, 3, 1);
        return;
    }
    let filter = args.iter().find(|a| !a.starts_with('-'));
    for ops in [500, 1000] {
        let id = format!("ops_{ops}");
        if filter.is_none_or(|f| id.contains(f.as_str())) {
            run(ops, WINDOWS, MEASURED);
        }
    }
}
