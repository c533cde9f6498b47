//! Helpers shared by the window-log tests.
#![allow(clippy::needless_update)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ringmeter::hdrhistogram::Histogram;
use ringmeter::log::{
    DictEntry, EngineEvent, EngineEventKind, Exemplar, Record, SamplingMode, WindowRecord,
};
use ringmeter::OpStats;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ringmeter-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A window record with `values` in its histogram and stats derived from `seed`.
pub fn window(op_id: u32, index: u64, seed: u64, values: &[u64]) -> WindowRecord {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    for &v in values {
        histogram.saturating_record(v);
    }
    WindowRecord {
        op_id,
        op: Arc::from(""),
        index,
        start_unix_ns: index * 1_000_000_000,
        length_ns: 1_000_000_000,
        stats: {
            let mut st = OpStats::default();
            st.count = values.len() as u64;
            st.errors = seed % 7;
            st.slow = seed % 5;
            st.dropped = seed % 3;
            st.late = seed % 2;
            st.min_ns = values.iter().copied().min().unwrap_or(0);
            st.max_ns = values.iter().copied().max().unwrap_or(0);
            st.mean_ns = seed as f64 / 3.0;
            st.stddev_ns = seed as f64 / 7.0;
            st.p50_ns = histogram.value_at_quantile(0.5);
            st.p90_ns = histogram.value_at_quantile(0.9);
            st.p95_ns = histogram.value_at_quantile(0.95);
            st.p99_ns = histogram.value_at_quantile(0.99);
            st.p999_ns = histogram.value_at_quantile(0.999);
            st
        },
        // Zero: once `OpStats` carries `unsampled`, decoding fills both from one field.
        unsampled: 0,
        sampling: match seed % 4 {
            0 => SamplingMode::All,
            1 => SamplingMode::Every((seed % 1000) as u32 + 1),
            2 => SamplingMode::Probability((seed % 100) as f64 / 100.0),
            _ => SamplingMode::CountOnly,
        },
        slow_threshold_ns: seed.wrapping_mul(31),
        slowest: (0..seed % 4)
            .map(|i| Exemplar::new(seed + i, seed * 2 + i, i))
            .collect(),
        error_kinds: (0..seed % 3)
            .map(|i| (Arc::from(format!("kind{i}")), seed + i))
            .collect(),
        histogram,
        stored_histogram: None,
    }
}

/// A varied sequence of records: dictionary, start event, windows, an unknown kind.
pub fn sample_records(n: usize) -> Vec<Record> {
    let mut out = vec![
        Record::Dictionary(vec![
            DictEntry {
                id: 1,
                name: Arc::from("db.query"),
            },
            DictEntry {
                id: 2,
                name: Arc::from("http.get"),
            },
        ]),
        Record::Event(EngineEvent {
            kind: EngineEventKind::Start,
            unix_ns: 5,
            detail: "window_ns=1000000000".into(),
        }),
    ];
    for i in 0..n as u64 {
        let values: Vec<u64> = (0..(i % 20)).map(|k| 1000 + k * 37 + i).collect();
        out.push(Record::Window(Box::new(window(
            1 + (i % 2) as u32,
            i,
            i,
            &values,
        ))));
        if i % 7 == 3 {
            out.push(Record::Unknown {
                kind: 200,
                payload: vec![i as u8; (i % 13) as usize],
            });
        }
    }
    out
}
