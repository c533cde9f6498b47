//! Costs of the window log:
//!
//! | group | scenario |
//! |---|---|
//! | `log_window` | closing one window of 1000 operations on a manual engine (100 calls each), without a log and with one: the difference is the log's cost per window on the aggregator thread |
//! | `log_read` | reading a log of 20 000 window records (one operation per record, 100 calls each) with `Reader` |
//! | `log_write` | appending one 1 KiB record with `Writer`, through the mapping and through `pwrite`, under OS write-back and with a sync per append, in the system temp directory |
//!
//! Each scenario checks its result before it is timed. Run: `cargo bench --bench log`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringmeter::log::{Durability, LogConfig, Reader, Record, WriteMode, Writer};
use ringmeter::{Clock, Engine, MockClock, Op};

/// `cargo bench` passes `--bench`; `cargo test --benches` (CI) runs a small version.
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Calls per operation and window.
fn calls() -> u64 {
    if full() {
        100
    } else {
        5
    }
}

fn tmp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ringmeter-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn engine(log: Option<&PathBuf>) -> (Engine, MockClock, Vec<Op>) {
    let (clock, mock) = Clock::mock();
    let ring = if full() { 1 << 20 } else { 1 << 14 };
    let mut b = Engine::builder().clock(clock).ring_capacity(ring);
    if let Some(dir) = log {
        b = b.log_dir(dir).log_segment_size(64 << 20);
    }
    let engine = b.start_manual().unwrap();
    let n_ops = if full() { 1000 } else { 50 };
    let ops = (0..n_ops)
        .map(|i| engine.op(&format!("svc.op{i}")).unwrap())
        .collect();
    (engine, mock, ops)
}

fn fill(ops: &[Op], round: u64) {
    for (i, op) in ops.iter().enumerate() {
        for k in 0..calls() {
            op.record_ns(1_000 + (k * 7919 + i as u64 * 104_729 + round) % 5_000_000);
        }
    }
}

fn log_window(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_window");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for with_log in [false, true] {
        let dir = tmp("window");
        let (engine, mock, ops) = engine(with_log.then_some(&dir));
        // Check: one window of every operation reaches the log.
        // (A window closes once the clock is `grace` past its end: a second step closes it.)
        fill(&ops, 0);
        for _ in 0..2 {
            mock.advance(Duration::from_secs(1));
            engine.flush().unwrap();
        }
        if with_log {
            let s = engine.snapshot().log.clone().unwrap();
            assert!(s.writing && s.windows_written >= 1, "{s:?}");
        }
        let mut round = 1;
        g.bench_function(if with_log { "with_log" } else { "no_log" }, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    fill(&ops, round);
                    round += 1;
                    engine.flush().unwrap(); // aggregate (untimed)
                    mock.advance(Duration::from_secs(1));
                    let t = Instant::now();
                    engine.flush().unwrap(); // closes the window (and logs it)
                    total += t.elapsed();
                }
                total
            })
        });
        engine.shutdown().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
    g.finish();
}

fn log_read(c: &mut Criterion) {
    let dir = tmp("read");
    let (engine, mock, ops) = engine(Some(&dir));
    let (n_ops, rounds) = if full() { (200, 100) } else { (20, 5) };
    let ops = &ops[..n_ops];
    for round in 0..rounds {
        fill(ops, round);
        mock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
    }
    engine.shutdown().unwrap();
    let count = |dir: &PathBuf| {
        Reader::open(dir)
            .unwrap()
            .filter(|r| matches!(r, Ok(Record::Window(_))))
            .count()
    };
    let n = count(&dir);
    assert_eq!(n, n_ops * rounds as usize);
    let mut g = c.benchmark_group("log_read");
    g.sample_size(10).throughput(Throughput::Elements(n as u64));
    g.bench_function("window_records", |b| b.iter(|| black_box(count(&dir))));
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn log_write(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_write");
    g.sample_size(10).throughput(Throughput::Elements(1));
    let record = Record::Unknown {
        kind: 200,
        payload: vec![0x5a; 1000],
    };
    for (mode, mode_name) in [(WriteMode::Map, "mmap"), (WriteMode::Pwrite, "pwrite")] {
        for (durability, d_name) in [
            (Durability::OsWriteBack, "os"),
            (Durability::EachWindow, "sync_each"),
        ] {
            let dir = tmp("write");
            let mut cfg = LogConfig::new(&dir);
            cfg.segment_size = 64 << 20;
            cfg.write_mode = mode;
            cfg.durability = durability;
            let mut w = Writer::open(cfg).unwrap();
            assert_eq!(w.is_mapped(), mode == WriteMode::Map);
            w.append(&record).unwrap();
            g.bench_function(format!("{mode_name}_{d_name}"), |b| {
                b.iter(|| w.append(black_box(&record)).unwrap())
            });
            drop(w);
            let integrity = Reader::check(&dir).unwrap();
            assert!(integrity.is_clean(), "{integrity:?}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    g.finish();
}

criterion_group!(benches, log_window, log_read, log_write);
criterion_main!(benches);
