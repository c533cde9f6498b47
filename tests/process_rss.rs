//! The resident memory the engine samples at a window close moves with the program's memory:
//! 64 MiB allocated and touched show up in the next window, and leave when freed.
//!
//! A binary of its own so no other test allocates or frees memory between the samples. The
//! figures are compared with a tolerance (the allocator, the test harness and the kernel
//! move a few MiB on their own), never with a timing. Linux only: elsewhere the engine
//! reads no resident figure.
#![cfg(target_os = "linux")]

use std::time::Duration;

use ringmeter::{Clock, Engine, MockClock};

const MIB: u64 = 1 << 20;
/// What the test allocates.
const SIZE: u64 = 64 * MIB;
/// How far the sampled change may fall short of `SIZE`.
const TOLERANCE: u64 = 16 * MIB;

/// Closes the open window and returns the resident memory sampled at its close.
fn close_window(engine: &Engine, mock: &MockClock) -> u64 {
    engine.op("step").unwrap().record_ns(1);
    mock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    let snap = engine.snapshot();
    let p = snap.process.expect("process gauges are on by default");
    assert_eq!(
        Some(p),
        snap.last_window.as_ref().unwrap().process,
        "the snapshot carries the latest window's sample"
    );
    p.sample
        .resident_bytes
        .expect("resident memory is read on Linux")
}

#[test]
fn resident_memory_rises_with_an_allocation_and_falls_when_it_is_freed() {
    let (clock, mock) = Clock::mock();
    mock.advance(Duration::from_millis(500));
    let engine = Engine::builder()
        .clock(clock)
        .window(Duration::from_secs(1))
        .start_manual()
        .unwrap();
    let before = close_window(&engine, &mock);

    // One allocation of 64 MiB: above glibc's mmap threshold, so it is mapped on its own and
    // given back to the kernel when freed. Every page is written, so every page is resident.
    let mut block = vec![0u8; SIZE as usize];
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(&mut block);
    let peak = close_window(&engine, &mock);
    assert!(
        peak >= before + SIZE - TOLERANCE,
        "resident {} MiB before, {} MiB with 64 MiB touched",
        before / MIB,
        peak / MIB
    );

    drop(block);
    let after = close_window(&engine, &mock);
    assert!(
        after + SIZE - TOLERANCE <= peak,
        "resident {} MiB with 64 MiB touched, {} MiB after freeing it",
        peak / MIB,
        after / MIB
    );
    // The rise and the fall are in the growth state too: one rise, then a fall resets it.
    assert_eq!(engine.snapshot().process.unwrap().rss_rises, 0);
}
