//! Cost of the process gauges on the aggregator thread:
//!
//! | group | scenario |
//! |---|---|
//! | `process_read` | one [`ProcessReader::read`]: on Linux, `/proc/self/stat`, `/proc/self/limits` and the count of `/proc/self/fd` |
//! | `process_window` | closing one window of one operation (one call) on a manual engine, with the process gauges on and off: the difference is one sample per window |
//!
//! Each scenario checks its result before it is timed. Run: `cargo bench --bench process`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ringmeter::{Clock, Engine, MockClock, Op, ProcessReader};

fn read(c: &mut Criterion) {
    let mut reader = ProcessReader::new();
    let s = reader.read();
    if cfg!(target_os = "linux") {
        assert!(s.resident_bytes.is_some() && s.open_fds.is_some() && s.max_fds.is_some());
    }
    c.bench_function("process_read", |b| b.iter(|| black_box(reader.read())));
}

fn engine(gauges: bool) -> (Engine, MockClock, Op) {
    let (clock, mock) = Clock::mock();
    // Mid-window, so that a second later the window is past its grace.
    mock.advance(Duration::from_millis(500));
    let engine = Engine::builder()
        .clock(clock)
        .process_gauges(gauges)
        .start_manual()
        .unwrap();
    let op = engine.op("svc.step").unwrap();
    (engine, mock, op)
}

/// One call, then the clock past the window's grace and a pass that closes it.
fn close_one(engine: &Engine, mock: &MockClock, op: Op) {
    op.record_ns(1_000);
    mock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
}

fn window(c: &mut Criterion) {
    let mut g = c.benchmark_group("process_window");
    for gauges in [false, true] {
        let (engine, mock, op) = engine(gauges);
        close_one(&engine, &mock, op);
        close_one(&engine, &mock, op);
        let snap = engine.snapshot();
        assert_eq!(snap.windows_closed, 2);
        assert_eq!(snap.process.is_some(), gauges);
        g.bench_function(if gauges { "on" } else { "off" }, |b| {
            b.iter(|| close_one(&engine, &mock, op))
        });
    }
    g.finish();
}

criterion_group!(benches, read, window);
criterion_main!(benches);
