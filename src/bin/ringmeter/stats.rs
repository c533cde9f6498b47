//! `ringmeter stats`: a table per operation over a time range.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use ringmeter::export::time::format_rfc3339;
use ringmeter::export::{Interval, Totals};
use ringmeter::OpStats;

use crate::cli::StatsArgs;
use crate::out::{outln, Out};
use crate::select::{read, require_windows, Filter};
use crate::show::{Ns, Pct};

pub fn run(args: &StatsArgs) -> Result<ExitCode> {
    let filter = Filter::new(&args.select)?;
    let out = &mut Out::stdout();
    print_stats(out, &args.dir, &filter)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Reads the selected windows of `dir`, merges them per operation and prints the table.
///
/// # Errors
/// No window selected (see [`require_windows`]), the log's errors, the output's.
pub fn print_stats(out: &mut Out, dir: &Path, filter: &Filter) -> Result<()> {
    let mut totals = Totals::new();
    // Histograms as stored: `Totals` reads their non-zero counts straight from the bytes.
    let summary = read(dir, filter, false, |_| {}, |i| Ok(totals.add(i)?))?;
    let (start, end) = require_windows(dir, &summary)?;
    outln!(
        out,
        "{} windows from {} to {} in {}",
        summary.selected,
        format_rfc3339(start),
        format_rfc3339(end),
        dir.display()
    );
    print_table(out, &totals.finish())?;
    Ok(())
}

/// Prints one row per interval.
pub fn print_table<'a>(out: &mut Out, rows: impl IntoIterator<Item = &'a Interval>) -> Result<()> {
    let rows: Vec<&Interval> = rows.into_iter().collect();
    let w = rows.iter().map(|r| r.op.len()).max().unwrap_or(2).max(2);
    outln!(
        out,
        "{:<w$} {:>10} {:>10} {:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "op",
        "count",
        "unsampled",
        "err%",
        "slow",
        "p50",
        "p99",
        "p99.9",
        "max",
        "dropped"
    );
    for r in rows {
        let s = &r.stats;
        outln!(
            out,
            "{:<w$} {:>10} {:>10} {:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}",
            r.op,
            s.count,
            s.unsampled,
            Pct(error_rate(s)),
            s.slow,
            Ns(s.p50_ns),
            Ns(s.p99_ns),
            Ns(s.p999_ns),
            Ns(s.max_ns),
            s.dropped
        );
    }
    Ok(())
}

/// Calls of a row: timed, unsampled and dropped, saturating at `u64::MAX` (counts read from a
/// log can be anything up to it).
pub fn calls(s: &OpStats) -> u64 {
    s.count
        .saturating_add(s.unsampled)
        .saturating_add(s.dropped)
}

/// Failed calls over all calls (0 without calls), from the saturating [`calls`].
pub fn error_rate(s: &OpStats) -> f64 {
    match calls(s) {
        0 => 0.0,
        n => s.errors as f64 / n as f64,
    }
}
