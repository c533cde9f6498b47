//! The hot path allocates nothing after a thread's first event, and steady-state aggregation
//! does not grow the heap per event.
//!
//! A counting global allocator (this test binary only) wraps the system allocator and counts
//! every allocation and every byte allocated and freed by the test's own thread (the test
//! harness's threads, which print results while another test runs, are not counted). The
//! engines are manual (no aggregator thread) and the tests run one at a time, so what the
//! counters show between two recording calls is what the recording calls did.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ringmeter::{Clock, Engine, Op};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES_ALLOCATED: AtomicU64 = AtomicU64::new(0);
static BYTES_FREED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread's allocations are counted (set by the tests on their own thread).
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Counts this thread's allocations until dropped. Declared after the `SERIAL` guard, so it
/// stops counting before the lock is released: the test harness's own work on this thread
/// after the test function returns (reporting, freeing captured output) must not land in the
/// next test's counts.
struct Counted;

impl Counted {
    fn on() -> Self {
        COUNTED.with(|c| c.set(true));
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        COUNTED.with(|c| c.set(false));
    }
}

fn counted() -> bool {
    COUNTED.try_with(|c| c.get()).unwrap_or(false)
}

fn count_alloc(size: usize) {
    if !counted() {
        return;
    }
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    BYTES_ALLOCATED.fetch_add(size as u64, Ordering::Relaxed);
}

fn count_free(size: usize) {
    if !counted() {
        return;
    }
    BYTES_FREED.fetch_add(size as u64, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is `System`'s; the counting touches only atomics and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees (`layout` has a non-zero size).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count_free(layout.size());
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees about `ptr`, `layout` and `new_size`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count_free(layout.size());
            count_alloc(new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counters only mean something while one test runs at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// `(allocations, bytes allocated)` so far.
fn allocated() -> (u64, u64) {
    (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES_ALLOCATED.load(Ordering::Relaxed),
    )
}

/// Bytes currently live on the heap (allocated and not yet freed).
fn live_bytes() -> i64 {
    BYTES_ALLOCATED.load(Ordering::Relaxed) as i64 - BYTES_FREED.load(Ordering::Relaxed) as i64
}

/// One call of every recording kind; each records exactly one event. Returns how many of
/// them count as errors (the failed guard, the `Err` result, the two error records).
fn record_each_kind(op: Op, i: u64) -> u64 {
    drop(op.start());
    let mut t = op.start();
    t.fail();
    t.stop();
    op.time(|| i.wrapping_mul(3));
    let r: Result<u64, u64> = op.time_result(|| if i.is_multiple_of(2) { Ok(i) } else { Err(i) });
    op.record_ns(1_000 + i % 50_000);
    op.record(Duration::from_nanos(i % 7_000));
    op.record_error_ns(i % 1_000);
    op.record_error(Duration::from_micros(i % 100));
    3 + u64::from(r.is_err())
}

/// Events `record_each_kind` records per call.
const KINDS: u64 = 8;

#[test]
fn recording_allocates_nothing_after_the_first_event() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _counted = Counted::on();
    let engine = Engine::builder()
        .ring_capacity(8192)
        .start_manual()
        .expect("engine");
    let op = engine.op("heap.record").expect("op");

    // Warm-up: the thread's first event registers its ring; the flush opens the window and
    // takes the histogram.
    let mut errors = record_each_kind(op, 0);
    engine.flush().expect("flush");

    // 10^6 events (125_000 calls of 8 kinds), flushed (uncounted) every 4000 events so the ring
    // of 8192 never fills.
    const EVENTS: u64 = 1_000_000;
    const PER_FLUSH: u64 = 4000;
    let (mut hot_allocations, mut hot_bytes) = (0, 0);
    let mut i = 1;
    let mut recorded = 0;
    while recorded < EVENTS {
        let (a0, b0) = allocated();
        for _ in 0..PER_FLUSH / KINDS {
            errors += record_each_kind(op, i);
            i += 1;
        }
        let (a1, b1) = allocated();
        hot_allocations += a1 - a0;
        hot_bytes += b1 - b0;
        recorded += PER_FLUSH;
        engine.flush().expect("flush");
    }
    assert_eq!(
        (hot_allocations, hot_bytes),
        (0, 0),
        "recording calls allocated after the thread's first event"
    );

    let snap = engine.snapshot();
    let stats = snap.totals("heap.record").expect("totals");
    assert_eq!(stats.count, EVENTS + KINDS, "every event recorded");
    assert_eq!(stats.dropped, 0, "the ring never filled");
    assert_eq!(stats.errors, errors);
}

#[test]
fn steady_state_flushing_does_not_grow_the_heap() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _counted = Counted::on();
    let (clock, mock) = Clock::mock();
    let engine = Engine::builder()
        .clock(clock)
        .ring_capacity(8192)
        .start_manual()
        .expect("engine");
    let ops = [
        engine.op("heap.steady.a").expect("op"),
        engine.op("heap.steady.b").expect("op"),
    ];

    // One cycle: 10^5 events flushed every 4000, then the clock moves past the window's end
    // and grace, so the flush closes it (reports it, folds it into the totals, recycles its
    // histograms).
    let mut i = 0u64;
    let mut cycle = || {
        for _ in 0..100_000 / 4000 {
            for _ in 0..4000 / KINDS {
                record_each_kind(ops[(i % 2) as usize], i);
                mock.advance_ns(1 + i % 1_000);
                i += 1;
            }
            engine.flush().expect("flush");
        }
        mock.advance(Duration::from_millis(1_100));
        engine.flush().expect("flush");
    };

    // The first cycle takes one histogram per operation for the open window. The second one
    // takes a second set: the first window's report (and its histograms) stays readable in the
    // published snapshot until the next window replaces it, then its histograms go back to the
    // pool. From then on every window reuses pooled histograms.
    let mut levels = Vec::with_capacity(10); // allocated before the baseline is taken
    cycle();
    let after_first = live_bytes();
    cycle();
    let after_second = live_bytes();
    for _ in 0..10 {
        cycle();
        levels.push(live_bytes() - after_second);
    }
    println!(
        "live heap: after the first cycle {after_first} B, after the second {after_second} B, \
         then relative to it: {levels:?}"
    );

    // 10^6 more events; a leak of even one byte per event would show as ~1 MB. The bound
    // leaves room for transient blocks of the channel that brings histograms back to the pool.
    const BOUND: i64 = 16 * 1024;
    assert!(
        levels.iter().all(|&d| d <= BOUND),
        "live heap grew beyond {BOUND} bytes over 10 cycles of 10^5 events: {levels:?}"
    );

    let snap = engine.snapshot();
    let calls: u64 = ["heap.steady.a", "heap.steady.b"]
        .iter()
        .map(|n| snap.totals(n).expect("totals").count)
        .sum();
    assert_eq!(calls, 12 * (100_000 / 4000) * (4000 / KINDS) * KINDS);
    assert!(snap.windows_closed >= 12);
}
