//! The heap an active operation costs: a few hundred calls per window, several windows
//! closed, measured by a counting global allocator (this test binary only). Memory is
//! deterministic, so the bound is asserted; `benches/memory.rs` measures the same with the
//! aggregator thread running.
//!
//! The engine is manual (no aggregator thread) and every call, flush and window close runs
//! on the test's thread, so the live heap counted is the engine's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ringmeter::{Clock, Engine, Op};

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is `System`'s; the counting touches only an atomic and never
// allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees (`layout` has a non-zero size).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees about `ptr`, `layout` and `new_size`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Durations log-uniform over 20 µs–1.28 ms, as in `benches/memory.rs`.
struct Spread(u64);

impl Spread {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let doubling = (self.0 >> 40) % 6;
        let base = 20_000_u64 << doubling;
        base + (self.0 & 0xFFFF_FFFF) % base
    }
}

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
    let base = LIVE.load(Ordering::Relaxed);

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
        levels.push(LIVE.load(Ordering::Relaxed) - base);
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
