//! `ringmeter dump`: export windows as JSON lines, CSV, an HdrHistogram interval log or
//! Prometheus text.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ringmeter::export::csv::CsvWriter;
use ringmeter::export::hlog::HlogWriter;
use ringmeter::export::json::JsonWriter;
use ringmeter::export::prom::{
    cumulative_buckets, write, Format as PromFormat, PromHistogram, PromOp,
};
use ringmeter::export::{ExportError, Interval, Rollup, Totals};
use ringmeter::DEFAULT_BUCKETS_NS;

use crate::cli::{DumpArgs, Format};
use crate::select::{parse_duration, read, Filter};
use crate::usage;

/// A progress spinner on stderr, shown only when stderr is a terminal and the dump has run
/// for more than a second.
struct Progress {
    started: Instant,
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            enabled: io::stderr().is_terminal(),
            bar: None,
        }
    }

    fn records(&mut self, n: u64) {
        if !self.enabled || self.started.elapsed() < Duration::from_secs(1) {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {pos} records read ({per_sec})")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        bar.set_position(n);
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The writer of one format.
enum Sink<W: Write> {
    Json(JsonWriter<W>),
    Csv(CsvWriter<W>),
    Hlog(HlogWriter<W>),
}

impl<W: Write> Sink<W> {
    fn write(&mut self, i: &Interval) -> Result<()> {
        match self {
            Sink::Json(w) => w.write(i)?,
            Sink::Csv(w) => w.write(i)?,
            Sink::Hlog(w) => w.write(i).map_err(|e| match e {
                ExportError::BadName(op) => anyhow::Error::new(crate::UsageError(format!(
                    "an untagged interval log holds one operation, and the selection has \
                     more (at least {op:?}); choose one with --op NAME or drop --untagged"
                ))),
                e => e.into(),
            })?,
        }
        Ok(())
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Sink::Json(w) => w.finish().map(drop),
            Sink::Csv(w) => w.finish().map(drop),
            Sink::Hlog(w) => w.finish().map(drop),
        }
    }
}

pub fn run(args: &DumpArgs) -> Result<ExitCode> {
    let filter = Filter::new(&args.select)?;
    let rollup = match &args.rollup {
        None => None,
        Some(_) if args.format == Format::Prom => usage!(
            "--rollup does not apply to --format prom, which is one exposition of the totals \
             over the selected range"
        ),
        Some(p) => match parse_duration(p) {
            Some(ns) => Some(Rollup::new(ns)),
            None => usage!("bad rollup period {p:?}: use 1m, 5m, 1h or N followed by s, m or h"),
        },
    };
    if args.untagged && args.format != Format::Hlog {
        usage!("--untagged applies to --format hlog only");
    }
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let out = BufWriter::with_capacity(1 << 16, out);
    match dump(args, &filter, rollup, out) {
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e),
        Ok(()) => Ok(ExitCode::SUCCESS),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || matches!(c.downcast_ref::<ExportError>(), Some(ExportError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn dump<W: Write>(
    args: &DumpArgs,
    filter: &Filter,
    mut rollup: Option<Rollup>,
    mut out: W,
) -> Result<()> {
    let mut progress = Progress::new();
    if args.format == Format::Prom {
        let mut totals = Totals::new();
        let summary = read(
            &args.dir,
            filter,
            true,
            |n| progress.records(n),
            |i| Ok(totals.add(i)?),
        )?;
        let totals = totals.finish();
        progress.finish();
        let ts = summary.span.map(|(_, end)| (end / 1_000_000) as i64);
        let buckets: Vec<(Vec<u64>, f64)> = totals
            .iter()
            .map(|i| {
                let h = &i.histogram;
                let sum = if i.stats.mean_ns.is_finite() {
                    i.stats.mean_ns * h.len() as f64
                } else {
                    0.0
                };
                (cumulative_buckets(&DEFAULT_BUCKETS_NS, h), sum)
            })
            .collect();
        let ops: Vec<PromOp<'_>> = totals
            .iter()
            .zip(&buckets)
            .map(|(i, (cumulative, sum_ns))| PromOp {
                name: &i.op,
                stats: &i.stats,
                histogram: Some(PromHistogram {
                    bounds_ns: &DEFAULT_BUCKETS_NS,
                    cumulative,
                    sum_ns: *sum_ns,
                }),
                recent: Some(&i.stats),
                timestamp_ms: ts,
            })
            .collect();
        let (counters, gauges) = summary
            .series
            .as_ref()
            .map_or((&[][..], &[][..]), |r| (&r.counters[..], &r.gauges[..]));
        write(&mut out, PromFormat::Text, &ops, counters, gauges)?;
        out.flush()?;
        return Ok(());
    }
    let mut sink = match args.format {
        Format::Json => Sink::Json(JsonWriter::new(out)),
        Format::Csv => Sink::Csv(CsvWriter::new(out)),
        Format::Hlog if args.untagged => Sink::Hlog(HlogWriter::untagged(out)),
        _ => Sink::Hlog(HlogWriter::new(out)),
    };
    // JSON and CSV write the records' own statistics, and hlog the histograms as stored:
    // unless they are rolled up, the histograms need not be decoded, which makes reading
    // several times faster.
    let histograms = rollup.is_some();
    read(
        &args.dir,
        filter,
        histograms,
        |n| progress.records(n),
        |i| match &mut rollup {
            None => sink.write(&i),
            Some(r) => {
                let done = r.push(i).map_err(|e| match e {
                    e @ ExportError::RollupPeriod { .. } => {
                        anyhow::Error::new(crate::UsageError(format!("bad rollup: {e}")))
                    }
                    e => e.into(),
                })?;
                done.iter().try_for_each(|p| sink.write(p))
            }
        },
    )?;
    if let Some(r) = rollup {
        for p in r.finish() {
            sink.write(&p)?;
        }
    }
    progress.finish();
    sink.finish()?;
    Ok(())
}
