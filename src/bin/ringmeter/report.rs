//! `ringmeter report`: one self-contained HTML page of charts over a time range.
//!
//! The page holds, per selected operation, the latency percentiles (p50, p90, p99, p99.9) and
//! the maximum over time, calls, errors and the error rate over time, slow calls over time,
//! and the latency-by-percentile plot of the operation's histogram merged over the range
//! (HdrHistogram's plot: x is 1/(1−p) on a log axis). The charts are drawn by uPlot, embedded
//! (script and stylesheet, `assets/uplot/`) with the data as JSON, so the page needs no
//! network when viewed.
//!
//! The log is read once for the merged totals and the points of the charts; an operation with
//! more than [`MAX_POINTS`] windows in the range is drawn from a rollup instead (read in a
//! second pass), so the page stays small and fast to draw for a day of 1-second windows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use ringmeter::export::time::format_rfc3339;
use ringmeter::export::{Interval, Rollup};
use serde::Serialize;

use crate::cli::ReportArgs;
use crate::dump::{refuse_inside_log, BatchRollup};
use crate::out::Out;
use crate::progress::Progress;
use crate::rows::Row;
use crate::select::{read, require_windows, Filter, NoWindows};
use crate::stats::BatchTotals;

/// The most points a chart draws per operation; beyond, windows are rolled up.
pub const MAX_POINTS: usize = 2_000;

/// uPlot, written inline into the page.
const UPLOT_JS: &str = include_str!("../../../assets/uplot/uPlot.iife.min.js");
/// uPlot's stylesheet.
const UPLOT_CSS: &str = include_str!("../../../assets/uplot/uPlot.min.css");
/// The script that draws the charts from the embedded data.
const REPORT_JS: &str = include_str!("report.js");

/// One operation's charts and totals, as the page's JSON carries them.
#[derive(Debug, Default, Serialize)]
struct OpData {
    /// The totals over the range (the schema of `dump --format json`).
    total: Option<RowOwned>,
    /// Point starts, seconds since the Unix epoch.
    t: Vec<f64>,
    p50: Vec<u64>,
    p90: Vec<u64>,
    p99: Vec<u64>,
    p999: Vec<u64>,
    max: Vec<u64>,
    /// Calls: timed, unsampled and dropped.
    calls: Vec<u64>,
    errors: Vec<u64>,
    /// Errors over calls, in percent.
    error_rate: Vec<f64>,
    slow: Vec<u64>,
    /// Length of each point in seconds (the window's, or the rollup period's).
    point_s: f64,
    /// The latency-by-percentile plot: 1/(1−p) and the value at p, in nanoseconds.
    pct_x: Vec<f64>,
    pct_v: Vec<u64>,
}

impl OpData {
    fn push(&mut self, i: &Interval) {
        let s = &i.stats;
        let calls = s.calls();
        self.t.push(i.start_unix_ns as f64 / 1e9);
        self.p50.push(s.p50_ns);
        self.p90.push(s.p90_ns);
        self.p99.push(s.p99_ns);
        self.p999.push(s.p999_ns);
        self.max.push(s.max_ns);
        self.calls.push(calls);
        self.errors.push(s.errors);
        self.error_rate.push(if calls == 0 {
            0.0
        } else {
            100.0 * s.errors as f64 / calls as f64
        });
        self.slow.push(s.slow);
        self.point_s = i.length_ns as f64 / 1e9;
    }

    fn clear_points(&mut self) {
        let total = self.total.take();
        let (pct_x, pct_v) = (
            std::mem::take(&mut self.pct_x),
            std::mem::take(&mut self.pct_v),
        );
        *self = OpData {
            total,
            pct_x,
            pct_v,
            ..OpData::default()
        };
    }
}

/// A [`Row`] serialized once, kept as its JSON value.
#[derive(Debug)]
struct RowOwned(serde_json::Value);

impl Serialize for RowOwned {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// The page's data.
#[derive(Debug, Serialize)]
struct Data<'a> {
    ops: Vec<(&'a str, &'a OpData)>,
}

pub fn run(args: &ReportArgs) -> Result<ExitCode> {
    let filter = Filter::new(&args.select)?;
    let mut out = match &args.output {
        Some(path) => {
            refuse_inside_log(path, &args.dir)?;
            Out::create(path)?
        }
        None => Out::stdout(),
    };
    if let Err(e) = report(&args.dir, &filter, &mut out) {
        if e.downcast_ref::<NoWindows>().is_some() {
            out.discard();
        }
        return Err(e);
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Reads the selection and writes the page to `out`.
fn report(dir: &Path, filter: &Filter, out: &mut Out) -> Result<()> {
    let mut progress = Progress::new();
    let mut totals = BatchTotals::new();
    let mut ops: BTreeMap<Arc<str>, OpData> = BTreeMap::new();
    let mut longest_window = 0;
    let summary = read(
        dir,
        filter,
        false,
        |p| progress.at(p),
        |i| {
            longest_window = longest_window.max(i.length_ns);
            let data = ops.entry(Arc::clone(&i.op)).or_default();
            if data.t.len() <= MAX_POINTS {
                data.push(&i);
            }
            totals.add(i)
        },
    )?;
    let (start, end) = require_windows(dir, &summary)?;
    let windows = ops.values().map(|d| d.t.len()).max().unwrap_or(0);
    if windows > MAX_POINTS {
        // Too many windows to draw one point each: roll them up into periods of whole
        // windows, so that the range fits in MAX_POINTS points.
        let span = end.saturating_sub(start);
        let per_point = span
            .div_ceil(longest_window.max(1))
            .div_ceil(MAX_POINTS as u64);
        let mut periods = Rollup::new(per_point.max(1) * longest_window);
        // The points are statistics only.
        periods.decode_histograms(false);
        let mut rollup = BatchRollup::new(periods);
        ops.values_mut().for_each(OpData::clear_points);
        let mut done = Vec::new();
        let mut add = |rolled: &mut Vec<Interval>| {
            for p in rolled.drain(..) {
                if let Some(d) = ops.get_mut(&p.op) {
                    d.push(&p);
                }
            }
        };
        read(
            dir,
            filter,
            false,
            |p| progress.at(p),
            |i| {
                rollup.push(i, &mut done)?;
                add(&mut done);
                Ok(())
            },
        )?;
        rollup.finish(&mut done)?;
        add(&mut done);
    }
    progress.finish();
    for total in totals.finish()? {
        let Some(d) = ops.get_mut(&total.op) else {
            continue;
        };
        d.total = Some(RowOwned(serde_json::to_value(Row::new(&total))?));
        // HdrHistogram's percentile distribution: five steps per halving of 1 − p.
        for v in total.histogram.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            if q >= 1.0 {
                continue;
            }
            let x = 1.0 / (1.0 - q);
            if d.pct_x.last().is_some_and(|&last| x <= last) {
                continue;
            }
            d.pct_x.push(x);
            d.pct_v.push(v.value_iterated_to().min(total.stats.max_ns));
        }
    }
    let data = Data {
        ops: ops.iter().map(|(k, v)| (&**k, v)).collect(),
    };
    let title = format!(
        "ringmeter report: {} ({} to {})",
        dir.display(),
        format_rfc3339(start),
        format_rfc3339(end)
    );
    write_page(out, &title, filter, summary.selected, &data)
}

/// Writes the HTML page.
fn write_page(
    out: &mut Out,
    title: &str,
    filter: &Filter,
    windows: u64,
    data: &Data<'_>,
) -> Result<()> {
    // `</` cannot end the script element early: JSON allows `\/` for `/`.
    let json = serde_json::to_string(data)?.replace("</", "<\\/");
    let mut table = String::new();
    for (op, d) in &data.ops {
        let Some(RowOwned(t)) = &d.total else {
            continue;
        };
        let n = |k: &str| t.get(k).map_or_else(String::new, ToString::to_string);
        let _ = write!(
            table,
            "<tr><td><a href=\"#op-{op}\">{op}</a></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            n("count"),
            n("errors"),
            n("slow"),
            n("p50_ns"),
            n("p90_ns"),
            n("p99_ns"),
            n("p999_ns"),
            n("max_ns"),
            n("dropped"),
            op = html(op),
        );
    }
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title>\n<style>{UPLOT_CSS}</style>\n<style>{STYLE}</style>\n\
         </head><body>\n<h1>{title}</h1>\n<p>{windows} window records; operations: {pattern}. \
         Latencies in nanoseconds in the table.</p>\n\
         <table id=\"totals\"><thead><tr><th>op</th><th>count</th><th>errors</th><th>slow</th>\
         <th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>dropped</th></tr>\
         </thead><tbody>{table}</tbody></table>\n<div id=\"ops\"></div>\n\
         <script id=\"report-data\" type=\"application/json\">{json}</script>\n\
         <script>{UPLOT_JS}</script>\n<script>{REPORT_JS}</script>\n</body></html>\n",
        title = html(title),
        pattern = html(filter.pattern().unwrap_or("all")),
    )?;
    Ok(())
}

/// The page's own style.
const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1em 2em;color:#222}\
    table{border-collapse:collapse}td,th{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}\
    td:first-child,th:first-child{text-align:left}section{margin-top:2em}\
    .charts{display:flex;flex-wrap:wrap;gap:1em}.chart{min-height:260px}";

/// `s` with the characters HTML gives a meaning escaped.
fn html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
