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
use crate::progress::Progress;
use crate::select::{read, require_windows, Filter, ProcessRange};
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
    let mut totals = BatchTotals::new();
    // Histograms as stored: `Totals` reads their non-zero counts straight from the bytes.
    let mut progress = Progress::new();
    let summary = read(dir, filter, false, |p| progress.at(p), |i| totals.add(i))?;
    let totals = totals.finish()?;
    progress.finish();
    let (start, end) = require_windows(dir, &summary)?;
    outln!(
        out,
        "{} from {} to {} in {}",
        Plural(summary.selected, "window"),
        format_rfc3339(start),
        format_rfc3339(end),
        dir.display()
    );
    print_table(out, &totals)?;
    if let Some(p) = &summary.process {
        outln!(out, "{}", process_line(p));
    }
    Ok(())
}

/// The process line: the latest figures of the range, the CPU time spent over it, and the
/// growth flag (`docs/cli.md`).
pub fn process_line(p: &ProcessRange) -> String {
    let s = &p.last.sample;
    let mut parts = Vec::new();
    if let Some(rss) = s.resident_bytes {
        let max = p.max_resident.unwrap_or(rss);
        parts.push(format!("resident {} (max {})", Bytes(rss), Bytes(max)));
    }
    if let Some(heap) = s.heap_bytes {
        parts.push(format!("heap {}", Bytes(heap)));
    }
    let first = &p.first.sample;
    if let (true, Some(u1), Some(k1), Some(u0), Some(k0)) = (
        p.samples > 1,
        s.cpu_user_ns,
        s.cpu_system_ns,
        first.cpu_user_ns,
        first.cpu_system_ns,
    ) {
        parts.push(format!(
            "cpu {} user + {} system over the range",
            Ns(u1.saturating_sub(u0)),
            Ns(k1.saturating_sub(k0))
        ));
    }
    if let Some(t) = s.threads {
        parts.push(Plural(t, "thread").to_string());
    }
    match (s.open_fds, s.max_fds) {
        (Some(open), Some(max)) => parts.push(format!("{open}/{max} fds")),
        (Some(open), None) => parts.push(Plural(open, "fd").to_string()),
        _ => {}
    }
    if parts.is_empty() {
        parts.push("no figures".to_owned());
    }
    let mut line = format!("process: {}", parts.join(", "));
    if p.growing > 0 {
        line.push_str(&format!(
            "; resident memory growing in {} of {}{}",
            p.growing,
            Plural(p.samples, "window"),
            if p.last.rss_growing {
                format!(", still at the end ({})", Plural(p.last.rss_rises, "rise"))
            } else {
                String::new()
            }
        ));
    }
    line
}

/// A count and its noun, plural unless the count is 1 ("1 thread", "2 threads").
pub struct Plural<N>(pub N, pub &'static str);

impl<N: std::fmt::Display + PartialEq + From<u8>> std::fmt::Display for Plural<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.0 == N::from(1) { "" } else { "s" };
        write!(f, "{} {}{s}", self.0, self.1)
    }
}

/// Bytes, shown in KiB, MiB or GiB with one decimal.
struct Bytes(u64);

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0 as f64;
        let (v, unit) = if b >= (1u64 << 30) as f64 {
            (b / (1u64 << 30) as f64, "GiB")
        } else if b >= (1u64 << 20) as f64 {
            (b / (1u64 << 20) as f64, "MiB")
        } else {
            (b / 1024.0, "KiB")
        };
        write!(f, "{v:.1} {unit}")
    }
}

/// Intervals handed to [`Totals::add_all`] at a time.
const BATCH: usize = 4096;

/// [`Totals`] fed in batches, so that the stored histograms of a batch are read (decoded to
/// their non-zero counts) on every core before they are merged in order: the same totals as adding one by one.
pub struct BatchTotals {
    totals: Totals,
    batch: Vec<Interval>,
    threads: usize,
}

impl BatchTotals {
    /// Reading on one thread for now: on the 2-vCPU machine the merge bench runs on
    /// (`cargo bench --bench merge`, `totals_threads/stored`), a second reader thread cost a
    /// quarter more CPU per record and gained no wall time, since no core was idle. Raise
    /// `threads` once a machine with free cores shows a gain.
    pub fn new() -> Self {
        BatchTotals {
            totals: Totals::new(),
            batch: Vec::with_capacity(BATCH),
            threads: 1,
        }
    }

    /// Adds an interval (merged when its batch is full).
    ///
    /// # Errors
    /// A histogram that cannot be merged.
    pub fn add(&mut self, i: Interval) -> Result<()> {
        self.batch.push(i);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.totals.add_all(batch, self.threads)?;
        Ok(())
    }

    /// One interval per operation, in name order, with percentiles.
    ///
    /// # Errors
    /// A histogram that cannot be merged.
    pub fn finish(mut self) -> Result<Vec<Interval>> {
        self.flush()?;
        Ok(self.totals.finish())
    }
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
