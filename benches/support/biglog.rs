//! A large window log for the reading benches (`benches/merge.rs`, `benches/hlog.rs`):
//! 1-second windows of [`OPS`] operations, each with a few hundred calls spread over three
//! decades of latency (so the log stores them plain), written with `log::Writer` into the
//! system temp directory, and read back.
#![allow(dead_code)] // each bench uses its own part

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringmeter::export::Interval;
use ringmeter::hdrhistogram::Histogram;
use ringmeter::log::{DictEntry, LogConfig, Reader, Record, SamplingMode, WindowRecord, Writer};
use ringmeter::OpStats;

/// `cargo bench` passes `--bench`; `cargo test --benches` runs a small version.
pub fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

pub const OPS: u32 = 100;
pub const S: u64 = 1_000_000_000;
/// 2026-01-01T00:00:00Z.
pub const T0: u64 = 1_767_225_600 * S;

/// A small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One operation's window: `calls` durations, log-uniform over 20 µs × 1..1000.
pub fn window(op: u32, second: u64, rng: &mut Rng) -> WindowRecord {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60 * S, 3).unwrap();
    let calls = 100 + rng.next() % 400;
    let (mut min, mut max, mut sum) = (u64::MAX, 0, 0u128);
    for _ in 0..calls {
        let exp = (rng.next() % 3000) as f64 / 1000.0;
        let ns = (20_000.0 * 10f64.powf(exp)) as u64 + rng.next() % 1000;
        h.saturating_record(ns);
        (min, max, sum) = (min.min(ns), max.max(ns), sum + u128::from(ns));
    }
    let mut stats = OpStats::default();
    stats.count = calls;
    stats.errors = rng.next() % 3;
    stats.min_ns = min;
    stats.max_ns = max;
    stats.mean_ns = sum as f64 / calls as f64;
    stats.stddev_ns = h.stdev();
    [
        stats.p50_ns,
        stats.p90_ns,
        stats.p95_ns,
        stats.p99_ns,
        stats.p999_ns,
    ] = [
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.95),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
    ];
    WindowRecord {
        op_id: op,
        op: Arc::from(""),
        index: T0 / S + second,
        start_unix_ns: T0 + second * S,
        length_ns: S,
        stats,
        unsampled: 0,
        sampling: SamplingMode::All,
        slow_threshold_ns: 1_000_000,
        slowest: Vec::new(),
        error_kinds: Vec::new(),
        histogram: h,
        stored_histogram: None,
    }
}

/// Writes `seconds` 1-second windows of [`OPS`] operations into a fresh log; returns its
/// directory and the number of window records.
pub fn generate(name: &str, seconds: u64) -> (PathBuf, u64) {
    let dir = std::env::temp_dir().join(format!("ringmeter-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = LogConfig::new(&dir);
    config.segment_size = 64 << 20;
    let mut w = Writer::open(config).unwrap();
    let names = (1..=OPS)
        .map(|id| DictEntry {
            id,
            name: Arc::from(format!("svc.op{id:03}")),
        })
        .collect();
    w.append(&Record::Dictionary(names)).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // A few distinct windows per operation, repeated: generating is slower than reading.
    let pool: Vec<Vec<WindowRecord>> = (1..=OPS)
        .map(|op| (0..8).map(|k| window(op, k, &mut rng)).collect())
        .collect();
    for second in 0..seconds {
        for op in 0..OPS as usize {
            let mut rec = pool[op][(second as usize + op) % 8].clone();
            rec.index = T0 / S + second;
            rec.start_unix_ns = T0 + second * S;
            w.append(&Record::Window(Box::new(rec))).unwrap();
        }
    }
    w.seal().unwrap();
    (dir, seconds * u64::from(OPS))
}

/// Reads every window record of `dir` and hands it to `each`; returns the records read.
pub fn read(dir: &Path, decode: bool, mut each: impl FnMut(Interval)) -> u64 {
    let mut reader = Reader::open(dir).unwrap();
    reader.decode_histograms(decode);
    let mut n = 0;
    for rec in reader.by_ref() {
        if let Record::Window(w) = rec.unwrap() {
            n += 1;
            each(Interval::from_record(*w));
        }
    }
    n
}
