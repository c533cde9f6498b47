//! `ringmeter dump`: export windows as JSON lines, CSV, an HdrHistogram interval log,
//! Prometheus text or OTLP/JSON lines.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use ringmeter::export::hlog::HlogWriter;
#[cfg(feature = "otlp")]
use ringmeter::export::otlp::{
    interval_request, proto::resource::v1::Resource, to_json, OtlpConfig,
};
use ringmeter::export::prom::{
    cumulative_buckets, write_with_process, Format as PromFormat, PromHistogram, PromOp,
    PromProcess,
};
use ringmeter::export::{ExportError, Interval, Rollup};
use ringmeter::DEFAULT_BUCKETS_NS;

use crate::cli::{DumpArgs, Format};
use crate::out::Out;
use crate::progress::Progress;
use crate::rows::{CsvRows, JsonRows};
use crate::select::{parse_duration, read, require_windows, Filter, NoWindows};
use crate::stats::BatchTotals;
use crate::usage;

/// The writer of one format.
enum Sink<W: Write> {
    Json(JsonRows<W>),
    Csv(Box<CsvRows<W>>),
    Hlog(HlogWriter<W>),
    /// One OTLP/JSON request per interval, with this resource.
    #[cfg(feature = "otlp")]
    OtlpJson(W, Resource),
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
            #[cfg(feature = "otlp")]
            Sink::OtlpJson(out, resource) => {
                let req = interval_request(resource, i, &DEFAULT_BUCKETS_NS);
                writeln!(out, "{}", to_json(&req))?;
            }
        }
        Ok(())
    }

    /// Writes what a format writes at its end, flushes, and returns the output.
    fn finish(self) -> io::Result<W> {
        match self {
            Sink::Json(w) => w.finish(),
            Sink::Csv(w) => w.finish(),
            Sink::Hlog(w) => w.finish(),
            #[cfg(feature = "otlp")]
            Sink::OtlpJson(mut out, _) => {
                out.flush()?;
                Ok(out)
            }
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
            Some(ns) => {
                let mut r = Rollup::new(ns);
                // JSON and CSV write statistics only: no period needs its full histogram.
                r.decode_histograms(!matches!(args.format, Format::Json | Format::Csv));
                Some(BatchRollup::new(r))
            }
            None => usage!("bad rollup period {p:?}: use 1m, 5m, 1h or N followed by s, m or h"),
        },
    };
    if args.untagged && args.format != Format::Hlog {
        usage!("--untagged applies to --format hlog only");
    }
    let mut out = match &args.output {
        Some(path) => {
            refuse_inside_log(path, &args.dir)?;
            Out::create(path)?
        }
        None => Out::stdout(),
    };
    if let Err(e) = dump(args, &filter, rollup, &mut out) {
        if e.downcast_ref::<NoWindows>().is_some() {
            // Nothing selected: not a header or preamble alone either; `stats` fails alike.
            out.discard();
        }
        return Err(e);
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Fails when `output` would be written inside the log directory `log` (or onto the segment
/// file `log`), where it could replace a segment being read or be taken for one later. Both
/// are compared canonicalized (symbolic links, `..`), and an existing output file also by
/// its identity, so a hard link to a segment is refused too.
pub fn refuse_inside_log(output: &Path, log: &Path) -> Result<()> {
    let Ok(log) = fs::canonicalize(log) else {
        // Reading it will fail with the reader's own message.
        return Ok(());
    };
    let log_dir = if log.is_dir() {
        log.clone()
    } else {
        log.parent().map_or_else(|| log.clone(), Path::to_path_buf)
    };
    let target =
        canonical_target(output).with_context(|| format!("cannot create {}", output.display()))?;
    let inside = target.starts_with(&log_dir) || same_file_as_a_segment(output, &log_dir);
    if inside {
        usage!(
            "-o {} is inside the log directory {}: write the output elsewhere",
            output.display(),
            log_dir.display()
        );
    }
    Ok(())
}

/// Where `path` would be created: its canonical form if it exists, else its canonical
/// parent joined with its file name.
fn canonical_target(path: &Path) -> io::Result<PathBuf> {
    match fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let name = path.file_name().ok_or(e)?;
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            Ok(fs::canonicalize(parent)?.join(name))
        }
        Err(e) => Err(e),
    }
}

/// Whether the existing file `path` is one of the files of `dir` under another name.
#[cfg(unix)]
fn same_file_as_a_segment(path: &Path, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.metadata()
            .is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
    })
}

#[cfg(not(unix))]
fn same_file_as_a_segment(_path: &Path, _dir: &Path) -> bool {
    false
}

/// Writes the selected windows to `out`; fails with [`NoWindows`] when none is selected.
fn dump<W: Write>(
    args: &DumpArgs,
    filter: &Filter,
    mut rollup: Option<BatchRollup>,
    mut out: W,
) -> Result<()> {
    let mut progress = Progress::new();
    if args.format == Format::Prom {
        let mut totals = BatchTotals::new();
        let summary = read(
            &args.dir,
            filter,
            false,
            |p| progress.at(p),
            |i| totals.add(i),
        )?;
        let totals = totals.finish()?;
        progress.finish();
        require_windows(&args.dir, &summary)?;
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
        // The latest process figures of the range, stamped with their time.
        let process = summary.process.as_ref().map(|p| PromProcess {
            stats: &p.last,
            timestamp_ms: Some(i64::try_from(p.last.unix_ns / 1_000_000).unwrap_or(i64::MAX)),
        });
        write_with_process(&mut out, PromFormat::Text, &ops, counters, gauges, process)?;
        return Ok(());
    }
    let mut sink = match args.format {
        Format::Json => Sink::Json(JsonRows::new(out)),
        Format::Csv => Sink::Csv(Box::new(CsvRows::new(out))),
        Format::Hlog if args.untagged => Sink::Hlog(HlogWriter::untagged(out)),
        // The resource from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
        #[cfg(feature = "otlp")]
        Format::OtlpJson => match OtlpConfig::new().resolve() {
            Ok(r) => Sink::OtlpJson(out, r.resource()),
            Err(e) => usage!("{e}"),
        },
        _ => Sink::Hlog(HlogWriter::new(out)),
    };
    // JSON and CSV write the records' own statistics, and hlog the histograms as stored; a
    // rollup reads the stored histograms' non-zero counts itself. Only OTLP's buckets need
    // decoded histograms.
    #[cfg(feature = "otlp")]
    let histograms = matches!(sink, Sink::OtlpJson(..));
    #[cfg(not(feature = "otlp"))]
    let histograms = false;
    let mut done = Vec::new();
    let summary = read(
        &args.dir,
        filter,
        histograms,
        |p| progress.at(p),
        |i| match &mut rollup {
            None => sink.write(&i),
            Some(r) => {
                let pushed = r.push(i, &mut done);
                // The periods ended before a failing interval are written, as one by one.
                done.drain(..).try_for_each(|p| sink.write(&p))?;
                pushed.map_err(rollup_error)
            }
        },
    )?;
    if let Some(r) = rollup {
        let finished = r.finish(&mut done);
        done.drain(..).try_for_each(|p| sink.write(&p))?;
        finished.map_err(rollup_error)?;
    }
    progress.finish();
    require_windows(&args.dir, &summary)?;
    sink.finish()?;
    Ok(())
}

/// A rollup error as the CLI reports it: a period that does not fit the windows is a usage
/// error.
fn rollup_error(e: ExportError) -> anyhow::Error {
    match e {
        e @ ExportError::RollupPeriod { .. } => {
            anyhow::Error::new(crate::UsageError(format!("bad rollup: {e}")))
        }
        e => e.into(),
    }
}

/// Intervals handed to [`Rollup::push_all`] at a time.
const BATCH: usize = 4096;

/// A [`Rollup`] fed in batches ([`Rollup::push_all`]), so that each period's stored
/// histograms are added together while its counts are in cache: the same periods, in the
/// same order, as pushing one by one.
pub struct BatchRollup {
    rollup: Rollup,
    batch: Vec<Interval>,
}

impl BatchRollup {
    pub fn new(rollup: Rollup) -> Self {
        BatchRollup {
            rollup,
            batch: Vec::with_capacity(BATCH),
        }
    }

    /// Adds an interval; the periods ended so far are appended to `done` (when a batch is
    /// pushed).
    ///
    /// # Errors
    /// As [`Rollup::push`].
    pub fn push(&mut self, i: Interval, done: &mut Vec<Interval>) -> Result<(), ExportError> {
        self.batch.push(i);
        if self.batch.len() >= BATCH {
            self.flush(done)?;
        }
        Ok(())
    }

    fn flush(&mut self, done: &mut Vec<Interval>) -> Result<(), ExportError> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.rollup.push_all(batch, done)
    }

    /// Pushes the last batch and appends every period left to `done`.
    ///
    /// # Errors
    /// As [`Rollup::push`].
    pub fn finish(mut self, done: &mut Vec<Interval>) -> Result<(), ExportError> {
        self.flush(done)?;
        done.extend(self.rollup.finish());
        Ok(())
    }
}
