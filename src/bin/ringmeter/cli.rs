//! Command-line options (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Offline and live views of ringmeter window logs.
///
/// Times (--since, --until) are RFC 3339 (2026-11-23T12:00:00Z, 2026-11-23 13:00:00+01:00),
/// relative to now (-10m, -2h, -30s, -1d), `now`, or @UNIX_SECONDS. A window is selected
/// when its start lies in [since, until).
///
/// Exit codes: 0 success (also when the reader of standard output goes away, as with
/// `| head`); 1 error (missing directory, not a ringmeter log, newer format, I/O, output
/// not writable, no window in the selected range); 2 bad usage (bad option, time, time
/// range, pattern or rollup, `-o` inside the log directory); `check` also returns 3 when
/// only a torn tail was found, 4 when records are corrupt and 5 when committed records are
/// missing; `stats`, `dump` and `tail` return 4 and 5 too, after their output, when they
/// read past corrupt or missing records. A log that no writer holds is read as finished.
#[derive(Debug, Parser)]
#[command(name = "ringmeter", version, about, long_about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the instrumented demo workload, writing its window log, then print its stats.
    Demo(DemoArgs),
    /// A table per operation over a time range: count, err%, slow, p50, p99, p99.9, max, dropped.
    Stats(StatsArgs),
    /// Export windows as JSON lines, CSV, an HdrHistogram interval log or Prometheus text.
    Dump(DumpArgs),
    /// Check a log's integrity: exit 0 clean or intact but unsealed, 3 torn tail only, 4 corrupt
    /// records, 5 committed records missing.
    Check(CheckArgs),
    /// Follow a live log, printing windows as they close.
    Tail(TailArgs),
    /// Write one self-contained HTML page of charts: latency percentiles, calls, errors and
    /// slow calls over time per operation, and the latency-by-percentile plot of the range.
    Report(ReportArgs),
}

/// Which windows to read.
#[derive(Debug, clap::Args)]
pub struct Selection {
    /// Operations to include: a name or a glob (`*` any run of characters, `?` one).
    #[arg(long, value_name = "PATTERN")]
    pub op: Option<String>,
    /// First window start to include.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Windows starting at or after this time are left out.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
}

/// `ringmeter demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where to write the log (created if missing) [default: ringmeter-demo in the
    /// system's temporary directory].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// How long the workload runs [default: 5, or 600 with --serve].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: Option<u64>,
    /// Window length in milliseconds [default: RINGMETER_WINDOW_SECS, else 500].
    #[arg(long, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub window_ms: Option<u64>,
    /// Worker threads.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub threads: u64,
    /// Serve the live dashboard (and /metrics, /api/snapshot) on this address while the
    /// workload runs, e.g. 127.0.0.1:9464; beyond loopback a random bearer token is made and
    /// printed.
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<String>,
}

/// `ringmeter stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// The log directory (or one segment file).
    pub dir: PathBuf,
    /// Which windows.
    #[command(flatten)]
    pub select: Selection,
}

/// Output formats of `dump`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line (schema in docs/cli.md).
    Json,
    /// CSV with a header row.
    Csv,
    /// HdrHistogram interval log, lines tagged with the operation name.
    Hlog,
    /// Prometheus text format 0.0.4: totals over the range, one sample per operation.
    Prom,
    /// OTLP/JSON: one `ExportMetricsServiceRequest` per line, per window record (feature
    /// `otlp`).
    #[cfg(feature = "otlp")]
    OtlpJson,
}

/// `ringmeter dump`.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// The log directory (or one segment file).
    pub dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Which windows.
    #[command(flatten)]
    pub select: Selection,
    /// Merge windows into periods: 1m, 5m, 1h or <N>s / <N>m / <N>h (a whole number of
    /// windows; not with prom, which always totals the range).
    #[arg(long, value_name = "PERIOD")]
    pub rollup: Option<String>,
    /// hlog only: write untagged lines (read by HdrHistogram tools without -tag); the
    /// selection must then hold a single operation.
    #[arg(long)]
    pub untagged: bool,
    /// Write to this file instead of standard output (not inside the log directory).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `ringmeter check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The log directory (or one segment file).
    pub dir: PathBuf,
}

/// `ringmeter tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// The log directory.
    pub dir: PathBuf,
    /// Operations to show: a name or a glob.
    #[arg(long, value_name = "PATTERN")]
    pub op: Option<String>,
    /// Print the windows already in the log first.
    #[arg(long)]
    pub all: bool,
    /// Exit after printing this many windows.
    #[arg(long, short = 'n', value_name = "N")]
    pub windows: Option<u64>,
    /// How often to look for new records, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub poll_ms: u64,
}

/// `ringmeter report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The log directory (or one segment file).
    pub dir: PathBuf,
    /// Which windows.
    #[command(flatten)]
    pub select: Selection,
    /// Write to this file instead of standard output (not inside the log directory).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}
