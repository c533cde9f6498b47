//! The published data model: per-operation statistics, closed windows and snapshots.
//!
//! The aggregator produces these; the window log, the alert evaluator, the exports and every
//! reader of [`Engine::snapshot`](crate::Engine::snapshot) consume them. They sit below the
//! aggregator, the log and the exports and import none of them: only the values they carry
//! (the sampling mode, alert notices, counter and gauge values, pooled histograms).
//!
//! One unit convention: every duration and instant in these types is a whole number of
//! nanoseconds in a `u64` whose name ends in `_ns` (`_unix_ns` for instants since the Unix
//! epoch), exact and ready for arithmetic and export; the settings a program passes in
//! ([`Builder`](crate::Builder), [`Rule`](crate::Rule)) are [`std::time::Duration`]s.
//!
//! With the `serde` feature every type here implements `serde::Serialize` (field names as
//! written here; the forms of the contained values are in `docs/dashboard.md`, "The
//! snapshot as JSON"): what `GET /api/snapshot` of the [`http`](crate::http) endpoint sends.

use std::path::PathBuf;
use std::sync::Arc;

use crate::alert::{Alert, BudgetBurn};
use crate::config::Sampling;
use crate::hist::PooledHistogram;
use crate::metric::{CounterValue, GaugeValue};
#[cfg(feature = "serde")]
use serde::Serialize;
use crate::process::ProcessStats;

/// Statistics of one operation over one window, or since the engine started.
///
/// Durations are in nanoseconds. `count`, `errors`, `slow`, `dropped`, `unsampled`, `late`,
/// `min_ns` and `max_ns` are exact. Without sampling, `mean_ns` is exact and `stddev_ns`
/// computed from exact sums; with sampling both are weighted by the calls each sample stands
/// for, like the histogram. The percentiles come from the HdrHistogram and are within its
/// configured precision ([`Builder::significant_digits`](crate::Builder::significant_digits)).
#[cfg_attr(feature = "serde", derive(Serialize))]
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct OpStats {
    /// Calls recorded (timed; their durations are in the histogram).
    pub count: u64,
    /// Failed calls: marked failed, `Err` results, or dropped while panicking. Includes
    /// failures among dropped and unsampled calls, so it is exact even when the ring
    /// overflowed or sampling skipped the call.
    pub errors: u64,
    /// Recorded calls longer than the slow threshold.
    pub slow: u64,
    /// Calls lost to a full ring (or recorded where no ring could be had).
    pub dropped: u64,
    /// Calls counted but not timed, because the operation's [`Sampling`](crate::Sampling)
    /// skipped them (or the operation is disabled).
    pub unsampled: u64,
    /// Recorded calls that arrived after their own window had closed; they are counted in the
    /// window that was open when they arrived.
    pub late: u64,
    /// Shortest recorded duration (0 when `count == 0`).
    pub min_ns: u64,
    /// Longest recorded duration (exact even above the histogram's highest trackable value).
    pub max_ns: u64,
    /// Mean recorded duration.
    pub mean_ns: f64,
    /// Population standard deviation of the recorded durations.
    pub stddev_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 95th percentile.
    pub p95_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
}

impl OpStats {
    /// Calls issued: recorded, unsampled and dropped (saturating at `u64::MAX`).
    pub fn calls(&self) -> u64 {
        self.count
            .saturating_add(self.unsampled)
            .saturating_add(self.dropped)
    }

    /// `errors / calls`, or 0 when there were no calls.
    pub fn error_rate(&self) -> f64 {
        let calls = self.calls();
        if calls == 0 {
            0.0
        } else {
            self.errors as f64 / calls as f64
        }
    }
}

/// One of the slowest calls of a window: something to look up in the program's own logs.
#[cfg_attr(feature = "serde", derive(Serialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exemplar {
    /// The call's duration.
    pub duration_ns: u64,
    /// When it ended, in nanoseconds since the Unix epoch (for a call recorded with a duration
    /// only: when the aggregator read it).
    pub end_unix_ns: u64,
    /// The recording thread's number: ringmeter numbers threads from 1 in the order they first
    /// record (see [`thread_number`](crate::thread_number)).
    pub thread: u64,
    /// The recording thread's name, if it has one.
    pub thread_name: Option<Arc<str>>,
}

impl Exemplar {
    /// A call of `duration_ns` that ended at `end_unix_ns` on thread number `thread`, whose
    /// name is not known.
    ///
    /// # Examples
    /// ```
    /// let e = ringmeter::Exemplar::new(1_500, 1_700_000_000_000_000_000, 3)
    ///     .with_thread_name("worker-3");
    /// assert_eq!((e.duration_ns, e.thread, e.thread_name.as_deref()), (1_500, 3, Some("worker-3")));
    /// ```
    pub fn new(duration_ns: u64, end_unix_ns: u64, thread: u64) -> Self {
        Self {
            duration_ns,
            end_unix_ns,
            thread,
            thread_name: None,
        }
    }

    /// The same call, made by a thread called `name`.
    pub fn with_thread_name(mut self, name: &str) -> Self {
        self.thread_name = Some(Arc::from(name));
        self
    }
}

/// One operation's share of a closed window.
#[cfg_attr(feature = "serde", derive(Serialize))]
#[derive(Debug)]
#[non_exhaustive]
pub struct OpWindow {
    /// Operation id inside its engine.
    pub id: u32,
    /// Operation name.
    pub name: Arc<str>,
    /// The window's statistics.
    pub stats: OpStats,
    /// The window's latency histogram in nanoseconds (empty when only drops were seen): a
    /// [`CompactHistogram`](crate::CompactHistogram) (its non-zero counts, in HdrHistogram's
    /// bucket layout; [`to_hdrhistogram`](crate::CompactHistogram::to_hdrhistogram) gives an
    /// `hdrhistogram::Histogram`). With sampling each recorded duration counts with its weight,
    /// so `histogram.len()` estimates `stats.count + stats.unsampled`.
    #[cfg_attr(feature = "serde", serde(serialize_with = "ser::histogram"))]
    pub histogram: PooledHistogram,
    /// The operation's sampling when the window closed.
    #[cfg_attr(feature = "serde", serde(serialize_with = "ser::sampling"))]
    pub sampling: Sampling,
    /// Whether the operation was enabled when the window closed.
    pub enabled: bool,
    /// The slow threshold in force when the window closed, in nanoseconds.
    pub slow_threshold_ns: u64,
    /// The error-rate threshold in force when the window closed.
    pub error_rate_threshold: f64,
    /// Whether `stats.error_rate()` exceeded `error_rate_threshold`.
    pub error_rate_exceeded: bool,
    /// The slowest calls of the window, slowest first (as many as the rule's `exemplars`).
    pub slowest: Vec<Exemplar>,
    /// Failures per error kind, by kind name, in code order. Failures of calls lost to a full
    /// ring are counted in `stats.errors` but not here (their kind is not known).
    pub error_kinds: Vec<(Arc<str>, u64)>,
}

/// A closed window: every operation that saw a call (or a drop) in it.
#[cfg_attr(feature = "serde", derive(Serialize))]
#[derive(Debug)]
#[non_exhaustive]
pub struct WindowReport {
    /// Window number: `start_unix_ns / length`.
    pub index: u64,
    /// Start, in nanoseconds since the Unix epoch (for a mock clock: on the mock's scale).
    pub start_unix_ns: u64,
    /// Window length in nanoseconds.
    pub length_ns: u64,
    /// Operations, in id order.
    pub ops: Vec<OpWindow>,
    /// The process's resources, sampled when the window closed; `None` when the engine
    /// samples none ([`Builder::process_gauges`](crate::Builder::process_gauges)). Not in
    /// the JSON form of a window: the snapshot carries the latest one at its top level.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub process: Option<ProcessStats>,
}

impl WindowReport {
    /// The entry for operation `name`, if it saw any call in this window.
    pub fn op(&self, name: &str) -> Option<&OpWindow> {
        self.ops.iter().find(|o| &*o.name == name)
    }
}

/// Cumulative statistics of one operation since the engine started.
#[cfg_attr(feature = "serde", derive(Serialize))]
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OpTotals {
    /// Operation id inside its engine.
    pub id: u32,
    /// Operation name.
    pub name: Arc<str>,
    /// Statistics over every window so far.
    pub stats: OpStats,
    /// Exact sum of the recorded durations in nanoseconds, each weighted by the calls it
    /// stands for (its own duration once without sampling): a Prometheus histogram's `_sum`.
    pub sum_ns: u128,
    /// Calls the recorded durations stand for: `stats.count` without sampling, an estimate of
    /// `count + unsampled` with it; the histogram's `_count`.
    pub weight: u64,
    /// Cumulative calls at or below each of [`Snapshot::bucket_bounds_ns`], then all of them
    /// (the `+Inf` bucket, equal to `weight`); `bucket_bounds_ns.len() + 1` entries.
    pub buckets: Vec<u64>,
}

/// An immutable view published by the aggregator and loaded by readers without locks.
///
/// # Examples
/// ```
/// let engine = ringmeter::Engine::builder().start()?;
/// let op = engine.op("demo.step")?;
/// op.record_ns(1_500);
/// engine.flush()?;
/// let snap = engine.snapshot();
/// assert_eq!(snap.totals("demo.step").unwrap().count, 1);
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[cfg_attr(feature = "serde", derive(Serialize))]
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Snapshot {
    /// The most recently closed window.
    pub last_window: Option<Arc<WindowReport>>,
    /// Per operation with any call so far: totals since start, in id order. After
    /// [`Engine::flush`](crate::Engine::flush) and at shutdown they include the open windows;
    /// otherwise they run to the end of `last_window`.
    pub totals: Vec<OpTotals>,
    /// Windows closed so far.
    pub windows_closed: u64,
    /// Publication counter, starting at 1 for the first published snapshot.
    pub sequence: u64,
    /// State of the window log ([`Builder::log_dir`](crate::Builder::log_dir)), `None`
    /// when the engine writes none.
    pub log: Option<Arc<LogStatus>>,
    /// Upper bounds of [`OpTotals::buckets`] in nanoseconds, ascending
    /// ([`Builder::prometheus_buckets`](crate::Builder::prometheus_buckets)).
    pub bucket_bounds_ns: Arc<[u64]>,
    /// Every counter ([`Engine::counter`](crate::Engine::counter)) as read at publication,
    /// sorted by name and labels.
    #[cfg_attr(feature = "serde", serde(serialize_with = "ser::counters"))]
    pub counters: Vec<CounterValue>,
    /// Every gauge ([`Engine::gauge`](crate::Engine::gauge)) as read at publication, sorted
    /// by name and labels.
    #[cfg_attr(feature = "serde", serde(serialize_with = "ser::gauges"))]
    pub gauges: Vec<GaugeValue>,
    /// Alerts firing as of the latest window close, as their firing notices said
    /// ([`Builder::alert`](crate::Builder::alert)).
    #[cfg_attr(feature = "serde", serde(serialize_with = "ser::alerts"))]
    pub alerts: Vec<Alert>,
    /// The process's resources as sampled at the latest window close (the same as
    /// `last_window`'s); `None` before the first close or when the engine samples none
    /// ([`Builder::process_gauges`](crate::Builder::process_gauges)). Left out of the JSON
    /// form when `None`.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub process: Option<ProcessStats>,
    /// The burn of every performance budget ([`AlertRule::budget`](crate::alert::AlertRule::budget))
    /// on every operation with a recorded call in the budget's period, as of the latest
    /// window close: in rule order, then operation id (as `totals`).
    #[cfg_attr(feature = "serde", serde(serialize_with = "ser::budgets"))]
    pub budgets: Vec<BudgetBurn>,
}

impl Snapshot {
    /// Totals of operation `name`.
    pub fn totals(&self, name: &str) -> Option<&OpStats> {
        self.totals
            .iter()
            .find(|t| &*t.name == name)
            .map(|t| &t.stats)
    }
}

/// The state of an engine's window log, published in every [`Snapshot`]
/// ([`Builder::log_dir`](crate::Builder::log_dir); see [`log`](crate::log)).
#[cfg_attr(feature = "serde", derive(Serialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogStatus {
    /// The log directory.
    #[cfg_attr(feature = "serde", serde(serialize_with = "ser::path"))]
    pub dir: PathBuf,
    /// Whether the log is being written (false after a fault, until a retry succeeds).
    pub writing: bool,
    /// The last error, kept after recovery for diagnosis.
    pub last_error: Option<String>,
    /// Faults so far.
    pub faults: u64,
    /// Closed windows written to the log.
    pub windows_written: u64,
    /// Closed windows waiting in memory for the log to recover.
    pub windows_pending: u64,
    /// Closed windows that will never be in the log (dropped while waiting, or half written
    /// when a fault struck).
    pub windows_lost: u64,
}

/// The JSON forms of the values the report types contain but do not own (their types
/// belong to other layers and keep no serde code of their own).
#[cfg(feature = "serde")]
mod ser {
    use std::path::Path;

    use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct, Serializer};

    use crate::alert::{Alert, BudgetBurn};
    use crate::config::Sampling;
    use crate::hist::PooledHistogram;
    use crate::metric::{CounterValue, GaugeValue, Labels};

    /// The non-zero buckets, lowest first, each `[lowest_ns, highest_ns, count]`: exact,
    /// and a few dozen entries for a typical window (percentiles are in `stats`).
    pub(super) fn histogram<S: Serializer>(h: &PooledHistogram, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(h.buckets_recorded()))?;
        for b in h.iter_recorded() {
            seq.serialize_element(&[b.lowest(), b.highest(), b.count()])?;
        }
        seq.end()
    }

    /// `{"mode": "all" | "every" | "probability" | "count_only"}`, with `n` for `every` and
    /// `p` for `probability`.
    pub(super) fn sampling<S: Serializer>(v: &Sampling, s: S) -> Result<S::Ok, S::Error> {
        let fields = match v {
            Sampling::Every(_) | Sampling::Probability(_) => 2,
            Sampling::All | Sampling::CountOnly => 1,
        };
        let mut st = s.serialize_struct("Sampling", fields)?;
        match *v {
            Sampling::All => st.serialize_field("mode", "all")?,
            Sampling::Every(n) => {
                st.serialize_field("mode", "every")?;
                st.serialize_field("n", &n)?;
            }
            Sampling::Probability(p) => {
                st.serialize_field("mode", "probability")?;
                st.serialize_field("p", &p)?;
            }
            Sampling::CountOnly => st.serialize_field("mode", "count_only")?,
        }
        st.end()
    }

    /// Labels as an object, in label-name order.
    struct LabelMap<'a>(&'a Labels);

    impl serde::Serialize for LabelMap<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in self.0.iter() {
                map.serialize_entry(&**k, &**v)?;
            }
            map.end()
        }
    }

    /// `[{"name", "labels": {..}, "help", "value"}]`.
    pub(super) fn counters<S: Serializer>(v: &[CounterValue], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for c in v {
            seq.serialize_element(&Series {
                name: &c.name,
                labels: LabelMap(&c.labels),
                help: c.help.as_deref(),
                value: c.value,
            })?;
        }
        seq.end()
    }

    /// As `counters`, with a number value (`null` for NaN).
    pub(super) fn gauges<S: Serializer>(v: &[GaugeValue], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for g in v {
            seq.serialize_element(&Series {
                name: &g.name,
                labels: LabelMap(&g.labels),
                help: g.help.as_deref(),
                value: g.value,
            })?;
        }
        seq.end()
    }

    #[derive(serde::Serialize)]
    struct Series<'a, V> {
        name: &'a str,
        labels: LabelMap<'a>,
        help: Option<&'a str>,
        value: V,
    }

    /// Each alert with its state and condition as text (`"firing"`, the condition as its
    /// `Display` writes it) and its threshold as a number.
    pub(super) fn budgets<S: Serializer>(v: &[BudgetBurn], s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct B<'a> {
            rule: &'a str,
            operation: &'a str,
            quantile: f64,
            limit_ns: u64,
            period_windows: u64,
            calls: u64,
            over: u64,
            burn: f64,
        }
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(&B {
                rule: &b.rule,
                operation: &b.operation,
                quantile: b.quantile,
                limit_ns: b.limit_ns,
                period_windows: b.period_windows,
                calls: b.calls,
                over: b.over,
                burn: b.burn,
            })?;
        }
        seq.end()
    }

    pub(super) fn alerts<S: Serializer>(v: &[Alert], s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct A<'a> {
            rule: &'a str,
            operation: &'a str,
            state: String,
            condition: String,
            threshold: f64,
            value: Option<f64>,
            calls: u64,
            window_start_unix_ns: u64,
            window_end_unix_ns: u64,
            since_unix_ns: u64,
            windows_breached: u32,
        }
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for a in v {
            seq.serialize_element(&A {
                rule: &a.rule,
                operation: &a.operation,
                state: a.state.to_string().to_ascii_lowercase(),
                condition: a.condition.to_string(),
                threshold: a.threshold(),
                value: a.value,
                calls: a.calls,
                window_start_unix_ns: a.window_start_unix_ns,
                window_end_unix_ns: a.window_end_unix_ns,
                since_unix_ns: a.since_unix_ns,
                windows_breached: a.windows_breached,
            })?;
        }
        seq.end()
    }

    /// A path as text (bytes that are not UTF-8 as U+FFFD), so a log directory never fails
    /// serialization.
    pub(super) fn path<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.to_string_lossy())
    }
}

#[cfg(test)]
mod tests {
    use super::OpStats;

    #[test]
    fn calls_saturate_instead_of_overflowing() {
        let s = OpStats {
            count: u64::MAX - 1,
            unsampled: 1,
            dropped: 5,
            errors: 7,
            ..OpStats::default()
        };
        assert_eq!(s.calls(), u64::MAX);
        assert!(s.error_rate() > 0.0 && s.error_rate() < 1e-15);
    }
}
