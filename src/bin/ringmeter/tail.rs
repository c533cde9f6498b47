//! `ringmeter tail`: follows a live log, printing windows as they close.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use ringmeter::export::time::format_rfc3339;
use ringmeter::log::Record;

use crate::cli::TailArgs;
use crate::out::{outln, Out};
use crate::select::{expect_writer_if_live, open, warn_damage, Filter, Reported};
use crate::show::{Ns, Pct};
use crate::stats::error_rate;

pub fn run(args: &TailArgs) -> Result<ExitCode> {
    let filter = Filter::from_parts(args.op.as_deref(), None, None)?;
    let mut reader = open(&args.dir)?;
    // Only the statistics are printed.
    reader.decode_histograms(false);
    let context = || format!("cannot read the log {}", args.dir.display());
    // Looked at again each time the reader reaches the end: writers come and go.
    let mut state = expect_writer_if_live(&mut reader);
    let mut reported = Reported::following();
    if !args.all {
        while reader.next_entry().with_context(context)?.is_some() {}
        warn_damage(&args.dir, &reader, state, &mut reported);
    }
    let out = &mut Out::stdout();
    let mut printed = 0u64;
    if args.windows == Some(0) {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        let Some(entry) = reader.next_entry().with_context(context)? else {
            warn_damage(&args.dir, &reader, state, &mut reported);
            std::thread::sleep(Duration::from_millis(args.poll_ms));
            state = expect_writer_if_live(&mut reader);
            continue;
        };
        let Record::Window(w) = entry.record else {
            continue;
        };
        if !filter.op_matches(&w.op) {
            continue;
        }
        let s = &w.stats;
        outln!(
            out,
            "{} {:>8} {:<20} count {:>8}  err {:>6}  slow {:>6}  p50 {:>9}  p99 {:>9}  max {:>9}  dropped {}",
            format_rfc3339(w.start_unix_ns),
            Ns(w.length_ns).to_string(),
            w.op,
            s.count,
            Pct(error_rate(s)),
            s.slow,
            Ns(s.p50_ns),
            Ns(s.p99_ns),
            Ns(s.max_ns),
            s.dropped
        );
        // Each line as it comes; a closed pipe ends the command here (see `crate::out`).
        out.flush()?;
        printed += 1;
        if args.windows.is_some_and(|n| printed >= n) {
            return Ok(ExitCode::SUCCESS);
        }
    }
}
