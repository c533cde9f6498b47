//! The Prometheus text exposition format, version 0.0.4.
//!
//! The input is neutral — one [`PromOp`] per operation: a name and its [`OpStats`] — so the
//! same code serves an offline dump (totals over a range of windows) and a live endpoint
//! (the snapshot's totals). Every operation is a label value of the same metric families:
//!
//! ```text
//! # HELP ringmeter_calls_total Calls issued: recorded plus dropped.
//! # TYPE ringmeter_calls_total counter
//! ringmeter_calls_total{op="db.query"} 1042
//! ...
//! # HELP ringmeter_latency_seconds Latency of recorded calls.
//! # TYPE ringmeter_latency_seconds summary
//! ringmeter_latency_seconds{op="db.query",quantile="0.5"} 0.000112
//! ringmeter_latency_seconds{op="db.query",quantile="0.999"} 0.000201
//! ringmeter_latency_seconds_sum{op="db.query"} 0.118
//! ringmeter_latency_seconds_count{op="db.query"} 1040
//! ```
//!
//! | family | type | value |
//! |---|---|---|
//! | `ringmeter_calls_total` | counter | [`OpStats::calls`] |
//! | `ringmeter_errors_total` | counter | `errors` |
//! | `ringmeter_slow_calls_total` | counter | `slow` |
//! | `ringmeter_dropped_calls_total` | counter | `dropped` |
//! | `ringmeter_late_calls_total` | counter | `late` |
//! | `ringmeter_latency_seconds` | summary | quantiles 0.5, 0.9, 0.95, 0.99, 0.999; `_sum`, `_count` = `count` |
//! | `ringmeter_latency_max_seconds` | gauge | `max_ns` |
//! | `ringmeter_budget_burn` | gauge | a live snapshot's [`BudgetBurn::burn`], labelled `budget` (the rule) and `op` |
//!
//! Then the process's figures ([`ProcessStats`], when the engine samples them), under the
//! names Prometheus's client libraries give them, each only when the figure is known:
//!
//! | family | type | value |
//! |---|---|---|
//! | `process_resident_memory_bytes` | gauge | `resident_bytes` |
//! | `process_virtual_memory_bytes` | gauge | `virtual_bytes` |
//! | `process_heap_bytes` | gauge | `heap_bytes` |
//! | `process_cpu_seconds_total` | counter | user + system CPU time |
//! | `ringmeter_process_cpu_seconds_total{mode="user"\|"system"}` | counter | each CPU time |
//! | `process_threads` | gauge | `threads` |
//! | `process_open_fds`, `process_max_fds` | gauge | `open_fds`, `max_fds` |
//! | `process_start_time_seconds` | gauge | `start_unix_ns` |
//! | `ringmeter_process_rss_rises` | gauge | [`ProcessStats::rss_rises`] |
//! | `ringmeter_process_rss_growing` | gauge | 1 while [`ProcessStats::rss_growing`], else 0 |
//!
//! A sample carries the operation's timestamp (milliseconds since the epoch) when one is
//! given. Label values are escaped (`\\`, `\"`, `\n`).

use std::fmt::Write as _;
use std::io::{self, Write};

use std::sync::Arc;

use hdrhistogram::Histogram;

use super::QUANTILES;
use crate::alert::BudgetBurn;
use crate::hist::buckets;
use crate::metric::{CounterValue, GaugeValue};
use crate::process::ProcessStats;
use crate::report::{OpStats, Snapshot};

/// The content type of the text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The content type of OpenMetrics 1.0.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An exposition format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4.
    #[default]
    Text,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => CONTENT_TYPE,
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// The format an HTTP `Accept` header asks for: the supported media type with the
    /// highest `q` (OpenMetrics on a tie, as Prometheus lists it first), the text format
    /// when there is no header or nothing in it is supported.
    ///
    /// # Examples
    /// ```
    /// use ringmeter::export::prom::Format;
    /// let prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    /// assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
    /// assert_eq!(Format::negotiate(None), Format::Text);
    /// ```
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut best: Option<(f64, Format)> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = 1.0;
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = v.trim().parse::<f64>().unwrap_or(0.0);
                    }
                }
            }
            if q.is_nan() || q <= 0.0 {
                continue;
            }
            let format = match media.as_str() {
                "application/openmetrics-text" => Format::OpenMetrics,
                "text/plain" | "text/*" | "*/*" => Format::Text,
                _ => continue,
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Text, |(_, f)| f)
    }
}

/// One operation's input to the exposition.
#[derive(Clone, Copy, Debug)]
pub struct PromOp<'a> {
    /// Operation name (the `op` label's value).
    pub name: &'a str,
    /// Its cumulative statistics: the counters.
    pub stats: &'a OpStats,
    /// The histogram family's buckets and sum; without it the operation has no histogram
    /// samples.
    pub histogram: Option<PromHistogram<'a>>,
    /// Statistics of the latest window, for the summary's quantiles and the maximum; `None`
    /// when the operation saw no call in it (quantiles are then `NaN`, the maximum left out).
    pub recent: Option<&'a OpStats>,
    /// Timestamp of the samples in milliseconds since the Unix epoch, or none.
    pub timestamp_ms: Option<i64>,
}

/// A histogram's data at fixed bucket bounds.
#[derive(Clone, Copy, Debug)]
pub struct PromHistogram<'a> {
    /// Upper bounds in nanoseconds, ascending.
    pub bounds_ns: &'a [u64],
    /// Cumulative counts at each bound, then the total (`bounds_ns.len() + 1` entries).
    pub cumulative: &'a [u64],
    /// Sum of the observations in nanoseconds.
    pub sum_ns: f64,
}

/// The process's figures as input to the exposition.
#[derive(Clone, Copy, Debug)]
pub struct PromProcess<'a> {
    /// The figures.
    pub stats: &'a ProcessStats,
    /// Timestamp of the samples in milliseconds since the Unix epoch, or none.
    pub timestamp_ms: Option<i64>,
}

/// A counter or gauge that is not an operation (see [`CounterValue`], [`GaugeValue`]).
#[derive(Clone, Copy, Debug)]
struct Series<'a> {
    name: &'a str,
    help: Option<&'a str>,
    labels: &'a [(Arc<str>, Arc<str>)],
    value: f64,
}

/// Writes one exposition of `ops` in the text format 0.0.4.
///
/// # Errors
/// The output's I/O error.
///
/// # Examples
/// ```
/// use ringmeter::export::prom::{write_text, PromOp};
/// use ringmeter::OpStats;
///
/// let mut stats = OpStats::default();
/// (stats.count, stats.errors, stats.p50_ns) = (3, 1, 1_500);
/// let mut out = Vec::new();
/// let op = PromOp { name: "db.query", stats: &stats, histogram: None, recent: Some(&stats), timestamp_ms: None };
/// write_text(&mut out, &[op])?;
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.contains("ringmeter_errors_total{op=\"db.query\"} 1\n"));
/// assert!(text.contains("ringmeter_recent_latency_seconds{op=\"db.query\",quantile=\"0.5\"} 0.0000015\n"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_text(out: &mut impl Write, ops: &[PromOp<'_>]) -> io::Result<()> {
    write(out, Format::Text, ops, &[], &[])
}

/// Writes one exposition of `ops`, then of `counters` and `gauges`, in `format`.
///
/// # Errors
/// The output's I/O error.
pub fn write(
    out: &mut impl Write,
    format: Format,
    ops: &[PromOp<'_>],
    counters: &[CounterValue],
    gauges: &[GaugeValue],
) -> io::Result<()> {
    write_with_process(out, format, ops, counters, gauges, None)
}

/// [`write()`], with the process's families (see the [module docs](self)) after the gauges.
///
/// # Errors
/// The output's I/O error.
///
/// # Examples
/// ```
/// use ringmeter::export::prom::{write_with_process, Format, PromProcess};
/// use ringmeter::{ProcessSample, ProcessStats};
///
/// let sample = ProcessSample::default().with_resident_bytes(1 << 20).with_cpu_ns(1_500_000_000, 500_000_000);
/// let stats = ProcessStats::new(0, sample, 0, false);
/// let mut out = Vec::new();
/// let process = PromProcess { stats: &stats, timestamp_ms: None };
/// write_with_process(&mut out, Format::Text, &[], &[], &[], Some(process))?;
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.contains("process_resident_memory_bytes 1048576\n"));
/// assert!(text.contains("process_cpu_seconds_total 2\n"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_with_process(
    out: &mut impl Write,
    format: Format,
    ops: &[PromOp<'_>],
    counters: &[CounterValue],
    gauges: &[GaugeValue],
    process: Option<PromProcess<'_>>,
) -> io::Result<()> {
    let mut w = Writer {
        text: String::new(),
        format,
    };
    type Counter = (&'static str, &'static str, fn(&OpStats) -> u64);
    let families: [Counter; 6] = [
        (
            "ringmeter_calls",
            "Calls issued: recorded, unsampled and dropped.",
            OpStats::calls,
        ),
        (
            "ringmeter_errors",
            "Failed calls, including failures among unsampled and dropped calls.",
            |s| s.errors,
        ),
        (
            "ringmeter_slow_calls",
            "Recorded calls longer than the slow threshold.",
            |s| s.slow,
        ),
        (
            "ringmeter_unsampled_calls",
            "Calls counted but not timed, as the operation's sampling says.",
            |s| s.unsampled,
        ),
        (
            "ringmeter_dropped_calls",
            "Calls lost to a full ring.",
            |s| s.dropped,
        ),
        (
            "ringmeter_late_calls",
            "Calls counted after their own window had closed.",
            |s| s.late,
        ),
    ];
    for (family, help, value) in families {
        w.header(family, help, "counter");
        let sample = format!("{family}_total");
        for op in ops {
            w.op_sample(&sample, op, None, &value(op.stats).to_string());
        }
    }
    if ops.iter().any(|o| o.histogram.is_some()) {
        let family = "ringmeter_latency_seconds";
        w.header(
            family,
            "Latency of recorded calls (each sampled call counted with the calls it stands for).",
            "histogram",
        );
        for op in ops {
            let Some(h) = op.histogram else { continue };
            for (i, count) in h.cumulative.iter().enumerate() {
                let le = match h.bounds_ns.get(i) {
                    Some(&b) => seconds(b as f64),
                    None => "+Inf".to_owned(),
                };
                w.op_sample_le(&format!("{family}_bucket"), op, &le, &count.to_string());
            }
            let total = h.cumulative.last().copied().unwrap_or(0);
            w.op_sample(&format!("{family}_count"), op, None, &total.to_string());
            w.op_sample(&format!("{family}_sum"), op, None, &seconds(h.sum_ns));
        }
    }
    let family = "ringmeter_recent_latency_seconds";
    w.header(
        family,
        "Latency quantiles of the latest closed window; sum and count since start.",
        "summary",
    );
    for op in ops {
        let s = op.stats;
        let values = op
            .recent
            .map(|r| [r.p50_ns, r.p90_ns, r.p95_ns, r.p99_ns, r.p999_ns]);
        for (i, q) in QUANTILES.iter().enumerate() {
            let v = values.map_or_else(|| "NaN".to_owned(), |v| seconds(v[i] as f64));
            w.op_sample(family, op, Some(*q), &v);
        }
        let (count, sum) = match op.histogram {
            Some(h) => (h.cumulative.last().copied().unwrap_or(0), h.sum_ns),
            None if s.mean_ns.is_finite() => (s.count, s.mean_ns * s.count as f64),
            None => (s.count, 0.0),
        };
        w.op_sample(&format!("{family}_count"), op, None, &count.to_string());
        w.op_sample(&format!("{family}_sum"), op, None, &seconds(sum));
    }
    let family = "ringmeter_latency_max_seconds";
    w.header(
        family,
        "Longest recorded call of the latest closed window.",
        "gauge",
    );
    for op in ops {
        if let Some(r) = op.recent.filter(|r| r.count > 0) {
            w.op_sample(family, op, None, &seconds(r.max_ns as f64));
        }
    }
    let counters: Vec<Series<'_>> = counters
        .iter()
        .map(|c| Series {
            name: &c.name,
            help: c.help.as_deref(),
            labels: &c.labels,
            value: c.value as f64,
        })
        .collect();
    w.series(&counters, "counter");
    let gauges: Vec<Series<'_>> = gauges
        .iter()
        .map(|g| Series {
            name: &g.name,
            help: g.help.as_deref(),
            labels: &g.labels,
            value: g.value,
        })
        .collect();
    w.series(&gauges, "gauge");
    if let Some(p) = process {
        w.process(&p);
    }
    if format == Format::OpenMetrics {
        w.text.push_str("# EOF\n");
    }
    out.write_all(w.text.as_bytes())
}

/// The exposition of a live snapshot (see [`Engine::render_metrics`](crate::Engine::render_metrics)):
/// counters and the histogram since start, the summary's quantiles and the maximum of the
/// latest closed window, no timestamps.
pub fn render(snapshot: &Snapshot, format: Format) -> Vec<u8> {
    let sums: Vec<f64> = snapshot.totals.iter().map(|t| t.sum_ns as f64).collect();
    let ops: Vec<PromOp<'_>> = snapshot
        .totals
        .iter()
        .zip(&sums)
        .map(|(t, &sum_ns)| PromOp {
            name: &t.name,
            stats: &t.stats,
            histogram: Some(PromHistogram {
                bounds_ns: &snapshot.bucket_bounds_ns,
                cumulative: &t.buckets,
                sum_ns,
            }),
            recent: snapshot
                .last_window
                .as_ref()
                .and_then(|w| w.ops.iter().find(|o| o.id == t.id))
                .map(|o| &o.stats),
            timestamp_ms: None,
        })
        .collect();
    let gauges: Vec<GaugeValue>;
    let gauges = if snapshot.budgets.is_empty() {
        &snapshot.gauges
    } else {
        gauges = snapshot
            .gauges
            .iter()
            .cloned()
            .chain(snapshot.budgets.iter().map(budget_gauge))
            .collect();
        &gauges
    };
    let mut out = Vec::new();
    let process = snapshot.process.as_ref().map(|stats| PromProcess {
        stats,
        timestamp_ms: None,
    });
    // Writing into a Vec cannot fail.
    let _ = write_with_process(
        &mut out,
        format,
        &ops,
        &snapshot.counters,
        gauges,
        process,
    );
    out
}

/// A budget's burn as the gauge `ringmeter_budget_burn{budget, op}`.
fn budget_gauge(b: &BudgetBurn) -> GaugeValue {
    GaugeValue {
        name: Arc::from("ringmeter_budget_burn"),
        labels: Arc::from([
            (Arc::from("budget"), Arc::clone(&b.rule)),
            (Arc::from("op"), Arc::clone(&b.operation)),
        ]),
        help: Some(Arc::from(
            "Performance budget burn: the share of the period's calls slower than the limit over the share the budget allows (1: used up).",
        )),
        value: b.burn,
    }
}

/// Cumulative counts of `histogram` at `bounds_ns` then its total, as
/// [`PromHistogram::cumulative`] wants them. A value counts under the first bound at or
/// above its HdrHistogram bucket's lowest equivalent value.
///
/// # Examples
/// ```
/// use ringmeter::export::prom::cumulative_buckets;
/// use ringmeter::hdrhistogram::Histogram;
/// let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3)?;
/// for v in [100, 1_000, 5_000] {
///     h.record(v)?;
/// }
/// assert_eq!(cumulative_buckets(&[1_000, 2_000], &h), vec![2, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn cumulative_buckets(bounds_ns: &[u64], histogram: &Histogram<u64>) -> Vec<u64> {
    let mut counts = vec![0; bounds_ns.len() + 1];
    buckets::add(bounds_ns, histogram, &mut counts);
    buckets::cumulative(&counts)
}

/// A metric name made valid: every byte outside `[A-Za-z0-9_:]` becomes `_`, and a name that
/// does not start with a letter, `_` or `:` gets a leading `_`.
///
/// # Examples
/// ```
/// use ringmeter::export::prom::sanitize_metric_name;
/// assert_eq!(sanitize_metric_name("http.requests-total"), "http_requests_total");
/// assert_eq!(sanitize_metric_name("2xx"), "_2xx");
/// assert_eq!(sanitize_metric_name(""), "_");
/// ```
pub fn sanitize_metric_name(name: &str) -> String {
    sanitize(name, true)
}

/// A label name made valid: every byte outside `[A-Za-z0-9_]` becomes `_`, and a name that
/// does not start with a letter or `_` gets a leading `_`.
///
/// # Examples
/// ```
/// use ringmeter::export::prom::sanitize_label_name;
/// assert_eq!(sanitize_label_name("http.method"), "http_method");
/// ```
pub fn sanitize_label_name(name: &str) -> String {
    sanitize(name, false)
}

fn sanitize(name: &str, colon: bool) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':');
    let mut s = String::with_capacity(name.len() + 1);
    if !name
        .chars()
        .next()
        .is_some_and(|c| ok(c) && !c.is_ascii_digit())
    {
        s.push('_');
    }
    s.extend(name.chars().map(|c| if ok(c) { c } else { '_' }));
    s
}

struct Writer {
    text: String,
    format: Format,
}

impl Writer {
    /// HELP and TYPE of `family` (its name without `_total` for a counter).
    fn header(&mut self, family: &str, help: &str, kind: &str) {
        // The text format names a counter family by its sample name; OpenMetrics without
        // the `_total` suffix.
        let name = match (self.format, kind) {
            (Format::Text, "counter") => format!("{family}_total"),
            _ => family.to_owned(),
        };
        let _ = write!(self.text, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => self.text.push_str("\\\\"),
                '\n' => self.text.push_str("\\n"),
                '"' if self.format == Format::OpenMetrics => self.text.push_str("\\\""),
                c => self.text.push(c),
            }
        }
        let _ = writeln!(self.text, "\n# TYPE {name} {kind}");
    }

    fn op_sample(&mut self, name: &str, op: &PromOp<'_>, quantile: Option<f64>, value: &str) {
        let q = quantile.map(|q| q.to_string());
        let extra = q.as_deref().map(|q| ("quantile", q));
        self.sample(name, &[("op", op.name)], extra, value, op.timestamp_ms);
    }

    fn op_sample_le(&mut self, name: &str, op: &PromOp<'_>, le: &str, value: &str) {
        self.sample(
            name,
            &[("op", op.name)],
            Some(("le", le)),
            value,
            op.timestamp_ms,
        );
    }

    fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        extra: Option<(&str, &str)>,
        value: &str,
        timestamp_ms: Option<i64>,
    ) {
        self.text.push_str(name);
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(extra) {
            self.text.push(if first { '{' } else { ',' });
            first = false;
            let _ = write!(self.text, "{k}=\"");
            escape_label(&mut self.text, v);
            self.text.push('"');
        }
        if !first {
            self.text.push('}');
        }
        let _ = write!(self.text, " {value}");
        if let Some(ts) = timestamp_ms {
            match self.format {
                Format::Text => {
                    let _ = write!(self.text, " {ts}");
                }
                // OpenMetrics timestamps are seconds.
                Format::OpenMetrics => {
                    let _ = write!(self.text, " {}", ts as f64 / 1e3);
                }
            }
        }
        self.text.push('\n');
    }

    /// Counters or gauges sorted by name: one family per name.
    fn series(&mut self, all: &[Series<'_>], kind: &str) {
        let mut i = 0;
        while i < all.len() {
            let name = all[i].name;
            let n = all[i..].iter().take_while(|s| s.name == name).count();
            let base = match kind {
                "counter" => name.strip_suffix("_total").unwrap_or(name),
                _ => name,
            };
            let help = all[i..i + n].iter().find_map(|s| s.help).unwrap_or(name);
            self.header(base, help, kind);
            let sample_name = match kind {
                "counter" => format!("{base}_total"),
                _ => base.to_owned(),
            };
            for s in &all[i..i + n] {
                let labels: Vec<(&str, &str)> =
                    s.labels.iter().map(|(k, v)| (&**k, &**v)).collect();
                let value = if s.value.is_finite() {
                    s.value.to_string()
                } else if s.value.is_nan() {
                    "NaN".to_owned()
                } else if s.value > 0.0 {
                    "+Inf".to_owned()
                } else {
                    "-Inf".to_owned()
                };
                self.sample(&sample_name, &labels, None, &value, None);
            }
            i += n;
        }
    }
}

impl Writer {
    /// The process's families, each when its figure is known.
    fn process(&mut self, p: &PromProcess<'_>) {
        let s = &p.stats.sample;
        let ts = p.timestamp_ms;
        let gauge = |w: &mut Self, family: &str, help: &str, value: Option<String>| {
            if let Some(v) = value {
                w.header(family, help, "gauge");
                w.sample(family, &[], None, &v, ts);
            }
        };
        let secs = |ns: Option<u64>| ns.map(|ns| seconds(ns as f64));
        let int = |v: Option<u64>| v.map(|v| v.to_string());
        gauge(
            self,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            int(s.resident_bytes),
        );
        gauge(
            self,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            int(s.virtual_bytes),
        );
        gauge(
            self,
            "process_heap_bytes",
            "Heap in use in bytes, as the program's allocator reports it.",
            int(s.heap_bytes),
        );
        if let Some(cpu) = s.cpu_ns() {
            let family = "process_cpu_seconds";
            self.header(
                family,
                "Total user and system CPU time spent in seconds.",
                "counter",
            );
            self.sample(
                &format!("{family}_total"),
                &[],
                None,
                &seconds(cpu as f64),
                ts,
            );
            let family = "ringmeter_process_cpu_seconds";
            self.header(family, "CPU time spent in seconds, by mode.", "counter");
            let name = format!("{family}_total");
            for (mode, ns) in [("user", s.cpu_user_ns), ("system", s.cpu_system_ns)] {
                let v = seconds(ns.unwrap_or(0) as f64);
                self.sample(&name, &[("mode", mode)], None, &v, ts);
            }
        }
        gauge(
            self,
            "process_threads",
            "Number of OS threads in the process.",
            int(s.threads),
        );
        gauge(
            self,
            "process_open_fds",
            "Number of open file descriptors.",
            int(s.open_fds),
        );
        gauge(
            self,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            int(s.max_fds),
        );
        gauge(
            self,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            secs(s.start_unix_ns),
        );
        gauge(
            self,
            "ringmeter_process_rss_rises",
            "Rises of resident memory from window to window since the last fall.",
            Some(p.stats.rss_rises.to_string()),
        );
        gauge(
            self,
            "ringmeter_process_rss_growing",
            "1 while resident memory has risen over the configured number of windows.",
            Some(u8::from(p.stats.rss_growing).to_string()),
        );
    }
}

/// Nanoseconds as seconds, in the shortest form that reads back exactly.
fn seconds(ns: f64) -> String {
    format!("{}", ns / 1e9)
}

fn escape_label(text: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => text.push_str("\\\\"),
            '"' => text.push_str("\\\""),
            '\n' => text.push_str("\\n"),
            c => text.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_ops(format: Format) -> String {
        let a = OpStats {
            count: 2,
            mean_ns: 500.0,
            max_ns: 900,
            p50_ns: 100,
            ..OpStats::default()
        };
        let b = OpStats::default();
        let bounds = [100, 1_000];
        let mut out = Vec::new();
        write(
            &mut out,
            format,
            &[
                PromOp {
                    name: "a",
                    stats: &a,
                    histogram: Some(PromHistogram {
                        bounds_ns: &bounds,
                        cumulative: &[1, 2, 2],
                        sum_ns: 1_000.0,
                    }),
                    recent: Some(&a),
                    timestamp_ms: Some(7),
                },
                PromOp {
                    name: "q\"\\\n",
                    stats: &b,
                    histogram: None,
                    recent: None,
                    timestamp_ms: None,
                },
            ],
            &[CounterValue {
                name: "jobs".into(),
                labels: vec![("k".into(), "v\"".into())].into(),
                help: Some("Jobs\ndone.".into()),
                value: 3,
            }],
            &[GaugeValue {
                name: "depth".into(),
                labels: Vec::new().into(),
                help: None,
                value: f64::NAN,
            }],
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_families_are_grouped_and_labels_escaped() {
        let text = two_ops(Format::Text);
        assert!(text.contains("ringmeter_latency_seconds_sum{op=\"a\"} 0.000001 7\n"));
        assert!(text.contains("ringmeter_latency_seconds_bucket{op=\"a\",le=\"0.0000001\"} 1 7\n"));
        assert!(text.contains("ringmeter_latency_seconds_bucket{op=\"a\",le=\"+Inf\"} 2 7\n"));
        assert!(text.contains("ringmeter_latency_max_seconds{op=\"a\"} 0.0000009 7\n"));
        assert!(text.contains("ringmeter_calls_total{op=\"q\\\"\\\\\\n\"} 0\n"));
        assert!(text.contains(
            "ringmeter_recent_latency_seconds{op=\"q\\\"\\\\\\n\",quantile=\"0.5\"} NaN\n"
        ));
        assert!(text.contains("# HELP jobs_total Jobs\\ndone.\n# TYPE jobs_total counter\njobs_total{k=\"v\\\"\"} 3\n"));
        assert!(text.contains("# TYPE depth gauge\ndepth NaN\n"));
        // No maximum for an operation without a recent window.
        assert!(!text.contains("ringmeter_latency_max_seconds{op=\"q"));
        // Each family's TYPE line once, before its samples: 6 counters, histogram, summary,
        // gauge, and the two series.
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        assert_eq!(types.len(), 11);
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let text = two_ops(Format::OpenMetrics);
        assert!(text
            .contains("# TYPE ringmeter_calls counter\nringmeter_calls_total{op=\"a\"} 2 0.007\n"));
        assert!(text.contains("# TYPE jobs counter\n"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_metric_name("a:b.c"), "a:b_c");
        assert_eq!(sanitize_label_name("a:b"), "a_b");
        assert_eq!(sanitize_label_name("1"), "_1");
    }
}
