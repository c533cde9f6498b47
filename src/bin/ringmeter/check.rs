//! `ringmeter check`: integrity report.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ringmeter::log::{writer_state, Reader, Verdict, WriterState};

use crate::cli::CheckArgs;
use crate::out::{outln, Out};
use crate::stats::Plural;

/// Exit code when only torn tails were found (expected after a crash; recoverable).
pub const EXIT_TORN_TAIL: u8 = 3;
/// Exit code when records are corrupt (damaged bytes in committed frames or headers).
pub const EXIT_CORRUPT: u8 = 4;
/// Exit code when committed records are missing (zeroed, truncated, or a segment missing).
pub const EXIT_MISSING: u8 = 5;

pub fn run(args: &CheckArgs) -> Result<ExitCode> {
    let dir = &args.dir;
    let integrity =
        Reader::check(dir).with_context(|| format!("cannot read the log {}", dir.display()))?;
    // Its exit code is the verdict: it stays the verdict when the reader of the report goes
    // away (`check DIR | head -1`).
    let out = &mut Out::stdout_to_the_end();
    outln!(
        out,
        "{}: {} segment(s), {} valid record(s)",
        dir.display(),
        integrity.segments,
        integrity.records
    );
    for (what, found) in [
        ("torn tail", &integrity.torn_tails),
        ("records missing", &integrity.missing),
    ] {
        for d in found {
            outln!(
                out,
                "{what}: {} at byte {} ({}): {}",
                d.segment.display(),
                d.offset,
                Plural(d.len, "byte"),
                d.reason
            );
        }
    }
    for p in &integrity.unsealed {
        outln!(out, "unsealed: {}", p.display());
    }
    for d in &integrity.corrupt {
        outln!(
            out,
            "corrupt: {} bytes {}..{}: {}",
            d.segment.display(),
            d.offset,
            d.offset.saturating_add(d.len),
            d.reason
        );
    }
    let code = match integrity.verdict() {
        Verdict::Clean => {
            outln!(
                out,
                "clean: every segment sealed, every committed record read"
            );
            ExitCode::SUCCESS
        }
        Verdict::Unsealed => {
            let dir_of_log = if dir.is_dir() {
                dir.as_path()
            } else {
                dir.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
            };
            match writer_state(dir_of_log) {
                WriterState::Closed => outln!(
                    out,
                    "intact but unsealed: every committed record read; no writer holds the log, \
                     so its writer was killed (or is of format version 1) and the windows it had \
                     not yet written are missing"
                ),
                WriterState::Live { pid: Some(pid) } => outln!(
                    out,
                    "intact but unsealed: every committed record read; a writer (process {pid}) \
                     is running"
                ),
                _ => outln!(
                    out,
                    "intact but unsealed: every committed record read; a writer is running or \
                     was killed"
                ),
            }
            ExitCode::SUCCESS
        }
        Verdict::TornTail => {
            outln!(
                out,
                "torn tail only: expected after a crash; every committed record is intact"
            );
            ExitCode::from(EXIT_TORN_TAIL)
        }
        Verdict::RecordsMissing => {
            outln!(
                out,
                "records missing: committed records are not in the log (ranges above)"
            );
            ExitCode::from(EXIT_MISSING)
        }
        _ => {
            outln!(out, "corrupt records found: the ranges above were skipped");
            ExitCode::from(EXIT_CORRUPT)
        }
    };
    out.flush()?;
    Ok(code)
}
