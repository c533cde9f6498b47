//! `ringmeter stats`: a table per operation over a time range.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use ringmeter::export::time::format_rfc3339;
use ringmeter::export::{Interval, Totals};

use crate::cli::StatsArgs;
use crate::select::{read, Filter};
use crate::show::{Ns, Pct};

pub fn run(args: &StatsArgs) -> Result<ExitCode> {
    let filter = Filter::new(&args.select)?;
    print_stats(&args.dir, &filter)?;
    Ok(ExitCode::SUCCESS)
}

/// Reads the selected windows of `dir`, merges them per operation and prints the table.
pub fn print_stats(dir: &Path, filter: &Filter) -> Result<()> {
    let mut totals = Totals::new();
    let summary = read(dir, filter, true, |_| {}, |i| Ok(totals.add(i)?))?;
    let Some((start, end)) = summary.span else {
        bail!(
            "no window of {} is in the selected range{}",
            dir.display(),
            if summary.ops.is_empty() {
                " (the log holds no window yet)"
            } else {
                ""
            }
        );
    };
    println!(
        "{} windows from {} to {} in {}",
        summary.selected,
        format_rfc3339(start),
        format_rfc3339(end),
        dir.display()
    );
    print_table(&totals.finish());
    Ok(())
}

/// Prints one row per interval.
pub fn print_table<'a>(rows: impl IntoIterator<Item = &'a Interval>) {
    let rows: Vec<&Interval> = rows.into_iter().collect();
    let w = rows.iter().map(|r| r.op.len()).max().unwrap_or(2).max(2);
    println!(
        "{:<w$} {:>10} {:>10} {:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "op", "count", "unsampled", "err%", "slow", "p50", "p99", "p99.9", "max", "dropped"
    );
    for r in rows {
        let s = &r.stats;
        println!(
            "{:<w$} {:>10} {:>10} {:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}",
            r.op,
            s.count,
            s.unsampled,
            Pct(s.error_rate()),
            s.slow,
            Ns(s.p50_ns),
            Ns(s.p99_ns),
            Ns(s.p999_ns),
            Ns(s.max_ns),
            s.dropped
        );
    }
}
