//! A live tour of ringmeter: worker threads serve fake requests while the main thread prints
//! every window the aggregator closes, then the cumulative totals and an exactness check.
//!
//! ```text
//! cargo run --release --example demo                    # 5 s, 500 ms windows, 3 threads
//! cargo run --release --example demo -- --seconds 3 --window-ms 250
//! cargo run --release --example demo -- --ring 16      # tiny rings: watch `dropped` move
//! ```
//!
//! The operations:
//!
//! | operation     | how it is timed                     | latency            | errors           |
//! |---------------|-------------------------------------|--------------------|------------------|
//! | `http.handle` | `time_result` around the whole call | sum of the below   | `Err` results    |
//! | `cache.get`   | `start()` guard, `set_failed(miss)` | well under 1 µs    | misses (~25%)    |
//! | `db.query`    | `time_result`, on cache misses      | ~50–200 µs (spin)  | ~2% `Err`        |
//! | `batch.flush` | `record_ns`, timed by `Instant`     | a sleep, ~0.1–1 ms | ~1%, `record_error_ns` |
//!
//! Every call is also counted by the demo itself, so that after shutdown it can check, per
//! operation, that recorded + dropped = issued and that the error counts agree.

// The workload and the number formats of `ringmeter demo`: the CLI's own files, compiled into
// this example too.
#[path = "../src/bin/ringmeter/show.rs"]
mod show;
#[path = "../src/bin/ringmeter/workload.rs"]
mod workload;

use std::collections::HashMap;
use std::fmt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ringmeter::{OpStats, WindowReport};

use show::{Ns, Pct};
use workload::{work, Issued, Ops, NAMES, SLOW};

const USAGE: &str = "\
usage: demo [--seconds N] [--window-ms N] [--threads N] [--ring N]

  --seconds N     how long the workload runs (1 to 3600; default 5)
  --window-ms N   window length in milliseconds (10 to 60000; default 500)
  --threads N     worker threads (1 to 64; default 3)
  --ring N        events per thread ring, a power of two (2 to 16777216; default 8192);
                  a small ring (e.g. 16) makes drops visible
  -h, --help      print this help";

/// Command-line options.
#[derive(Debug)]
struct Options {
    seconds: u64,
    window_ms: u64,
    threads: usize,
    ring: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seconds: 5,
            window_ms: 500,
            threads: 3,
            ring: 8192,
        }
    }
}

/// What parsing the command line asks for.
enum Command {
    Run(Options),
    Help,
}

/// Parses `--name value` and `--name=value` options with the standard library only.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut opts = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let known = ["--seconds", "--window-ms", "--threads", "--ring"];
        if !known.contains(&name.as_str()) {
            return Err(format!("unknown argument {arg:?}"));
        }
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        let number = |lo: u64, hi: u64| -> Result<u64, String> {
            match value.parse::<u64>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(n),
                _ => Err(format!(
                    "{name} takes a whole number from {lo} to {hi}, not {value:?}"
                )),
            }
        };
        match name.as_str() {
            "--seconds" => opts.seconds = number(1, 3600)?,
            "--window-ms" => opts.window_ms = number(10, 60_000)?,
            "--threads" => opts.threads = number(1, 64)? as usize,
            _ => {
                let n = number(2, 1 << 24)?;
                if !n.is_power_of_two() {
                    return Err(format!("--ring takes a power of two, not {n}"));
                }
                opts.ring = n as usize;
            }
        }
    }
    Ok(Command::Run(opts))
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Run(opts)) => match run(&opts) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("demo: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("demo: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Runs the demo; `Ok(false)` when the exactness check fails.
fn run(opts: &Options) -> Result<bool, ringmeter::Error> {
    let window = Duration::from_millis(opts.window_ms);
    // The grace period may not exceed the window: a fifth of it, at most the default 100 ms.
    let grace = (window / 5).min(Duration::from_millis(100));
    // Per-operation rules from the environment (RINGMETER_CONFIG, RINGMETER_SAMPLE_EVERY, ...)
    // apply; the options above override what they also set.
    let engine = ringmeter::Builder::from_env()?
        .window(window)
        .grace(grace)
        .ring_capacity(opts.ring)
        .slow_threshold(SLOW)
        .start()?;
    let ops = Ops::register(&engine)?;
    let names = NAMES;

    println!(
        "ringmeter demo: {} worker threads for {} s, {} windows (grace {}), rings of {} events",
        opts.threads,
        opts.seconds,
        Ns(nanos(window)),
        Ns(nanos(grace)),
        opts.ring
    );
    println!("each window is printed when it closes, `grace` after its end\n");

    // Subscribe before any work so that no window is missed.
    let windows = engine.subscribe(64);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..opts.threads)
        .map(|i| {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || work(ops, i as u64, &stop))
                .expect("spawn a worker thread")
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(opts.seconds);
    let mut first_index = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(report) = windows.recv_timeout(left.min(Duration::from_millis(100))) {
            let note = if first_index.is_none() {
                " (partial: the demo started inside it)"
            } else {
                ""
            };
            print_window(&report, *first_index.get_or_insert(report.index), note);
        }
    }

    // Stop the workload first, so that shutdown sees every call the demo counted.
    stop.store(true, Ordering::Relaxed);
    let mut issued: HashMap<&str, Issued> = HashMap::new();
    for w in workers {
        let t = w.join().expect("a worker thread panicked");
        for (name, i) in names.iter().zip(t.in_order()) {
            let e = issued.entry(name).or_default();
            e.calls += i.calls;
            e.errors += i.errors;
        }
    }
    engine.shutdown()?;
    // Shutdown closed the windows still open: the one in its grace period, if any, and the
    // current, partial one.
    let closing: Vec<_> = std::iter::from_fn(|| windows.try_recv()).collect();
    for (i, report) in closing.iter().enumerate() {
        let first = *first_index.get_or_insert(report.index);
        let note = if i + 1 == closing.len() {
            " (closed by shutdown; partial)"
        } else {
            " (closed by shutdown)"
        };
        print_window(report, first, note);
    }
    if windows.missed() > 0 {
        println!("(this reader missed {} windows)", windows.missed());
    }

    let snap = engine.snapshot();
    println!(
        "\ntotals since start ({} windows closed; slow = longer than {})",
        snap.windows_closed,
        Ns(nanos(SLOW))
    );
    println!(
        "{:<12} {:>9} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6}",
        "op", "count", "err%", "slow", "mean", "p50", "p99", "max", "dropped", "late"
    );
    for name in names {
        let s = snap.totals(name).cloned().unwrap_or_default();
        println!(
            "{:<12} {:>9} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6}",
            name,
            s.count,
            Pct(s.error_rate()),
            s.slow,
            Ns(s.mean_ns.round() as u64),
            Ns(s.p50_ns),
            Ns(s.p99_ns),
            Ns(s.max_ns),
            s.dropped,
            s.late
        );
    }

    println!("\nexactness: recorded + dropped = issued, per operation");
    let mut exact = true;
    for name in names {
        let s: OpStats = snap.totals(name).cloned().unwrap_or_default();
        let i = issued[name];
        let ok = s.count + s.dropped == i.calls && s.errors == i.errors;
        exact &= ok;
        println!(
            "  {:<12} {} + {} = {} issued; errors {} of {} issued  {}",
            name,
            s.count,
            s.dropped,
            i.calls,
            s.errors,
            i.errors,
            if ok { "ok" } else { "MISMATCH" }
        );
    }
    if !exact {
        println!("exactness check FAILED");
    }
    Ok(exact)
}

/// Prints one closed window as a table.
fn print_window(report: &WindowReport, first_index: u64, note: &str) {
    let n = report.index.saturating_sub(first_index);
    println!(
        "window {n} (#{}, starts {} UTC, {}){note}",
        report.index,
        TimeOfDay(report.start_unix_ns),
        Ns(report.length_ns),
    );
    if report.ops.is_empty() {
        println!("  (no calls)\n");
        return;
    }
    println!(
        "  {:<12} {:>8} {:>7} {:>9} {:>9} {:>9} {:>8}",
        "op", "count", "err%", "p50", "p99", "max", "dropped"
    );
    for o in &report.ops {
        let s = &o.stats;
        println!(
            "  {:<12} {:>8} {:>7} {:>9} {:>9} {:>9} {:>8}",
            o.name,
            s.count,
            Pct(s.error_rate()),
            Ns(s.p50_ns),
            Ns(s.p99_ns),
            Ns(s.max_ns),
            s.dropped
        );
    }
    println!();
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Time of day (UTC) of a Unix timestamp in nanoseconds, to the millisecond.
struct TimeOfDay(u64);

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 / 1_000_000;
        let s = ms / 1000;
        write!(
            f,
            "{:02}:{:02}:{:02}.{:03}",
            s / 3600 % 24,
            s / 60 % 60,
            s % 60,
            ms % 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_both_forms_and_rejects_bad_input() {
        let Ok(Command::Run(o)) = parse_args(args(&["--seconds", "3", "--window-ms=250"])) else {
            panic!("valid arguments rejected");
        };
        assert_eq!(
            (o.seconds, o.window_ms, o.threads, o.ring),
            (3, 250, 3, 8192)
        );
        assert!(matches!(parse_args(args(&["-h"])), Ok(Command::Help)));
        for bad in [
            &["--bogus"][..],
            &["--seconds"],
            &["--seconds", "0"],
            &["--seconds", "x"],
            &["--ring", "100"],
            &["--window-ms=5"],
        ] {
            assert!(parse_args(args(bad)).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn durations_read_naturally() {
        let shown: Vec<String> = [0, 950, 1_234, 56_780, 999_999, 2_500_000, 3_000_000_000]
            .into_iter()
            .map(|ns| Ns(ns).to_string())
            .collect();
        assert_eq!(
            shown,
            ["0 ns", "950 ns", "1.23 µs", "56.8 µs", "1.00 ms", "2.50 ms", "3.00 s"]
        );
    }
}
