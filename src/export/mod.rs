//! Offline export of closed windows into the formats other tools read.
//!
//! The formatters work on [`Interval`]s: one operation's statistics and histogram over one
//! span of time. An interval comes from a live [`WindowReport`] ([`Interval::from_report`]),
//! from a window record read back from the log ([`Interval::from_record`]), or from a [`Rollup`] of either, which merges
//! windows exactly: histograms added, counts summed, minimum and maximum combined.
//!
//! | module | format |
//! |---|---|
//! | [`json`] | line-delimited JSON, one object per interval ([schema](json)) |
//! | [`csv`] | CSV with a header row, one row per interval |
//! | [`hlog`] | HdrHistogram interval log, readable by HdrHistogram's own tools |
//! | [`prom`] | Prometheus text exposition format 0.0.4 |
//! | `otlp` | OpenTelemetry `ExportMetricsServiceRequest`s, and a thread pushing them over OTLP/HTTP (feature `otlp`) |
//!
//! # Examples
//! ```
//! use ringmeter::export::{json::JsonWriter, Interval};
//! use ringmeter::hdrhistogram::Histogram;
//!
//! let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
//! for ns in [1_000, 2_000, 3_000] {
//!     histogram.record(ns)?;
//! }
//! let interval = Interval::from_histogram("db.query", 1_700_000_000_000_000_000, 1_000_000_000, histogram);
//! let mut out = Vec::new();
//! let mut writer = JsonWriter::new(&mut out);
//! writer.write(&interval)?;
//! let line = String::from_utf8(out).unwrap();
//! assert!(line.starts_with(r#"{"op":"db.query","start_unix_ns":1700000000000000000,"#));
//! assert!(line.contains(r#""count":3,"#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::hist::percentiles;
use crate::log::WindowRecord;
use crate::report::{OpStats, WindowReport};

pub mod csv;
pub mod hlog;
pub mod json;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod prom;
mod rollup;
pub mod time;

pub use crate::hist::QUANTILES;
pub use rollup::{merge, Rollup, Totals};

/// One operation over one span of time: the unit every formatter writes.
#[derive(Clone, Debug)]
pub struct Interval {
    /// Operation name.
    pub op: Arc<str>,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_ns: u64,
    /// Length in nanoseconds.
    pub length_ns: u64,
    /// Statistics over the interval (percentiles from `histogram`).
    pub stats: OpStats,
    /// Latency histogram in nanoseconds. Empty when the interval was read from the log
    /// without decoding histograms: merges and percentiles then need a decoded one.
    pub histogram: Histogram<u64>,
    /// The histogram as the log stored it (HdrHistogram V2, plain or deflated: see
    /// `docs/log-format.md`), when it was read without decoding; [`hlog`] writes deflated
    /// bytes as they are and compresses plain ones.
    pub stored_histogram: Option<Vec<u8>>,
}

/// The numeric members of an exported interval, in the order the CSV columns and the JSON
/// members share (after `op`).
pub(crate) const COLUMNS: [&str; 17] = [
    "start_unix_ns",
    "length_ns",
    "count",
    "errors",
    "slow",
    "dropped",
    "late",
    "unsampled",
    "min_ns",
    "max_ns",
    "mean_ns",
    "stddev_ns",
    "p50_ns",
    "p90_ns",
    "p95_ns",
    "p99_ns",
    "p999_ns",
];

/// One value of [`COLUMNS`]: an integer, or a float written without an exponent (0 when it is
/// not finite), as both text formats want it.
pub(crate) enum Value {
    Int(u64),
    Float(f64),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Int(v) => write!(f, "{v}"),
            // Rust prints floats without an exponent and with a round-tripping precision.
            Self::Float(v) if v.is_finite() => write!(f, "{v}"),
            Self::Float(_) => f.write_str("0"),
        }
    }
}

impl Interval {
    /// One interval per operation of a closed window.
    pub fn from_report(report: &WindowReport) -> Vec<Interval> {
        let length_ns = report.length_ns;
        report
            .ops
            .iter()
            .map(|o| Interval {
                op: Arc::clone(&o.name),
                start_unix_ns: report.start_unix_ns,
                length_ns,
                stats: o.stats.clone(),
                histogram: o.histogram.to_hdrhistogram(),
                stored_histogram: None,
            })
            .collect()
    }

    /// An interval whose statistics are all derived from `histogram`: no errors, slow calls,
    /// drops or late calls; minimum, maximum, mean and standard deviation at histogram
    /// precision. Meant for tests and examples.
    pub fn from_histogram(
        op: &str,
        start_unix_ns: u64,
        length_ns: u64,
        histogram: Histogram<u64>,
    ) -> Interval {
        let mut stats = OpStats {
            count: histogram.len(),
            ..OpStats::default()
        };
        if !histogram.is_empty() {
            stats.min_ns = histogram.min();
            stats.max_ns = histogram.max();
            stats.mean_ns = histogram.mean();
            stats.stddev_ns = histogram.stdev();
        }
        set_percentiles(&mut stats, &histogram);
        Interval {
            op: op.into(),
            start_unix_ns,
            length_ns,
            stats,
            histogram,
            stored_histogram: None,
        }
    }

    /// The interval of a window record read from the log. It takes the record's histogram
    /// rather than copy it: a histogram is large (216 KiB at the defaults), and a copy per
    /// record made `dump` an order of magnitude slower.
    pub fn from_record(record: WindowRecord) -> Interval {
        let length_ns = record.length_ns;
        Interval {
            op: record.op,
            start_unix_ns: record.start_unix_ns,
            length_ns,
            stats: record.stats,
            histogram: record.histogram,
            stored_histogram: record.stored_histogram,
        }
    }

    /// The values of [`COLUMNS`].
    pub(crate) fn columns(&self) -> [Value; 17] {
        use Value::{Float, Int};
        let s = &self.stats;
        [
            Int(self.start_unix_ns),
            Int(self.length_ns),
            Int(s.count),
            Int(s.errors),
            Int(s.slow),
            Int(s.dropped),
            Int(s.late),
            Int(s.unsampled),
            Int(s.min_ns),
            Int(s.max_ns),
            Float(s.mean_ns),
            Float(s.stddev_ns),
            Int(s.p50_ns),
            Int(s.p90_ns),
            Int(s.p95_ns),
            Int(s.p99_ns),
            Int(s.p999_ns),
        ]
    }

    /// End of the interval, in nanoseconds since the Unix epoch.
    pub fn end_unix_ns(&self) -> u64 {
        self.start_unix_ns.saturating_add(self.length_ns)
    }
}

/// Sets the percentiles of `stats` from `histogram` the way the engine does: each value is
/// clamped to the exact `[min_ns, max_ns]`, since a bucket's highest equivalent value can lie
/// beyond the true extremes. All zero when the histogram or the count is empty.
pub fn set_percentiles(stats: &mut OpStats, histogram: &Histogram<u64>) {
    let q = percentiles(Some(histogram), stats.count, stats.min_ns, stats.max_ns);
    [
        stats.p50_ns,
        stats.p90_ns,
        stats.p95_ns,
        stats.p99_ns,
        stats.p999_ns,
    ] = q;
}

/// Why an export failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExportError {
    /// Writing the output failed.
    Io(io::Error),
    /// Two histograms could not be added (their ranges are incompatible).
    Merge {
        /// The operation whose windows were being merged.
        op: Arc<str>,
        /// What the histogram library said.
        reason: String,
    },
    /// A histogram could not be serialized for the HdrHistogram interval log.
    Serialize {
        /// The operation whose histogram failed.
        op: Arc<str>,
        /// What the histogram library said.
        reason: String,
    },
    /// A rollup period shorter than a window, or not a whole number of windows.
    RollupPeriod {
        /// The rollup period asked for, in nanoseconds.
        period_ns: u64,
        /// The length of the window that does not fit it, in nanoseconds.
        window_ns: u64,
    },
    /// An operation name that the format cannot carry (e.g. an interval-log tag with a comma).
    BadName(Arc<str>),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "writing the export failed: {e}"),
            Self::Merge { op, reason } => {
                write!(f, "cannot merge the histograms of {op:?}: {reason}")
            }
            Self::Serialize { op, reason } => {
                write!(f, "cannot serialize the histogram of {op:?}: {reason}")
            }
            Self::RollupPeriod {
                period_ns,
                window_ns,
            } => write!(
                f,
                "a rollup of {} s is not a whole number of {} s windows",
                *period_ns as f64 / 1e9,
                *window_ns as f64 / 1e9
            ),
            Self::BadName(op) => write!(f, "the operation name {op:?} cannot be exported"),
        }
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ExportError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}
