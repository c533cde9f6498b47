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
//!
//! A sample carries the operation's timestamp (milliseconds since the epoch) when one is
//! given. Label values are escaped (`\\`, `\"`, `\n`).

use std::fmt::Write as _;
use std::io::{self, Write};

use super::QUANTILES;
use crate::OpStats;

/// A counter family: name, help text, value.
type Counter = (&'static str, &'static str, fn(&OpStats) -> u64);

/// One operation's input to the exposition.
#[derive(Clone, Copy, Debug)]
pub struct PromOp<'a> {
    /// Operation name (the `op` label's value).
    pub name: &'a str,
    /// Its statistics (cumulative for counters to mean what Prometheus expects).
    pub stats: &'a OpStats,
    /// Timestamp of the samples in milliseconds since the Unix epoch, or none.
    pub timestamp_ms: Option<i64>,
}

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
            if !(q > 0.0) {
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

/// Writes one exposition of `ops`.
///
/// # Errors
/// The output's I/O error.
///
/// # Examples
/// ```
/// use ringmeter::export::prom::{write_text, PromOp};
/// use ringmeter::OpStats;
///
/// let stats = OpStats { count: 3, errors: 1, p50_ns: 1_500, ..OpStats::default() };
/// let mut out = Vec::new();
/// write_text(&mut out, &[PromOp { name: "db.query", stats: &stats, timestamp_ms: None }])?;
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.contains("ringmeter_errors_total{op=\"db.query\"} 1\n"));
/// assert!(text.contains("ringmeter_latency_seconds{op=\"db.query\",quantile=\"0.5\"} 0.0000015\n"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_text(out: &mut impl Write, ops: &[PromOp<'_>]) -> io::Result<()> {
    let mut text = String::new();
    let counters: [Counter; 5] = [
        (
            "ringmeter_calls_total",
            "Calls issued: recorded plus dropped.",
            OpStats::calls,
        ),
        (
            "ringmeter_errors_total",
            "Failed calls, including failures among dropped calls.",
            |s| s.errors,
        ),
        (
            "ringmeter_slow_calls_total",
            "Recorded calls longer than the slow threshold.",
            |s| s.slow,
        ),
        (
            "ringmeter_dropped_calls_total",
            "Calls lost to a full ring.",
            |s| s.dropped,
        ),
        (
            "ringmeter_late_calls_total",
            "Calls counted after their own window had closed.",
            |s| s.late,
        ),
    ];
    for (name, help, value) in counters {
        header(&mut text, name, help, "counter");
        for op in ops {
            sample(&mut text, name, op, None, &value(op.stats).to_string());
        }
    }
    let name = "ringmeter_latency_seconds";
    header(&mut text, name, "Latency of recorded calls.", "summary");
    for op in ops {
        let s = op.stats;
        let values = [s.p50_ns, s.p90_ns, s.p95_ns, s.p99_ns, s.p999_ns];
        for (q, v) in QUANTILES.iter().zip(values) {
            sample(&mut text, name, op, Some(*q), &seconds(v as f64));
        }
        let sum = if s.mean_ns.is_finite() {
            s.mean_ns * s.count as f64
        } else {
            0.0
        };
        sample(
            &mut text,
            "ringmeter_latency_seconds_sum",
            op,
            None,
            &seconds(sum),
        );
        sample(
            &mut text,
            "ringmeter_latency_seconds_count",
            op,
            None,
            &s.count.to_string(),
        );
    }
    let name = "ringmeter_latency_max_seconds";
    header(&mut text, name, "Longest recorded call.", "gauge");
    for op in ops {
        sample(&mut text, name, op, None, &seconds(op.stats.max_ns as f64));
    }
    out.write_all(text.as_bytes())
}

/// The exposition of a live snapshot (see [`Engine::render_metrics`](crate::Engine::render_metrics)).
pub fn render(snapshot: &crate::Snapshot, format: Format) -> Vec<u8> {
    let _ = format;
    let ops: Vec<PromOp<'_>> = snapshot
        .totals
        .iter()
        .map(|t| PromOp {
            name: &t.name,
            stats: &t.stats,
            timestamp_ms: None,
        })
        .collect();
    let mut out = Vec::new();
    let _ = write_text(&mut out, &ops);
    out
}

fn header(text: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(text: &mut String, name: &str, op: &PromOp<'_>, quantile: Option<f64>, value: &str) {
    let _ = write!(text, "{name}{{op=\"");
    for c in op.name.chars() {
        match c {
            '\\' => text.push_str("\\\\"),
            '"' => text.push_str("\\\""),
            '\n' => text.push_str("\\n"),
            c => text.push(c),
        }
    }
    text.push('"');
    if let Some(q) = quantile {
        let _ = write!(text, ",quantile=\"{q}\"");
    }
    let _ = write!(text, "}} {value}");
    if let Some(ts) = op.timestamp_ms {
        let _ = write!(text, " {ts}");
    }
    text.push('\n');
}

/// Nanoseconds as seconds, in the shortest form that reads back exactly.
fn seconds(ns: f64) -> String {
    format!("{}", ns / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_grouped_and_labels_escaped() {
        let a = OpStats {
            count: 2,
            mean_ns: 500.0,
            max_ns: 900,
            ..OpStats::default()
        };
        let b = OpStats::default();
        let mut out = Vec::new();
        write_text(
            &mut out,
            &[
                PromOp {
                    name: "a",
                    stats: &a,
                    timestamp_ms: Some(7),
                },
                PromOp {
                    name: "q\"\\\n",
                    stats: &b,
                    timestamp_ms: None,
                },
            ],
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("ringmeter_latency_seconds_sum{op=\"a\"} 0.000001 7\n"));
        assert!(text.contains("ringmeter_latency_max_seconds{op=\"a\"} 0.0000009 7\n"));
        assert!(text.contains("ringmeter_calls_total{op=\"q\\\"\\\\\\n\"} 0\n"));
        // Each TYPE line once, before its samples.
        assert_eq!(text.matches("# TYPE").count(), 7);
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        assert_eq!(types.len(), 7);
    }
}
