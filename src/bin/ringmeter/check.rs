//! `ringmeter check`: integrity report.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ringmeter::log::{Health, Reader};

use crate::cli::CheckArgs;
use crate::out::{outln, Out};

/// Exit code when only torn tails were found (expected after a crash; recoverable).
pub const EXIT_TORN_TAIL: u8 = 3;
/// Exit code when records are corrupt (valid records follow damaged bytes).
pub const EXIT_CORRUPT: u8 = 4;

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
    for d in &integrity.torn_tails {
        outln!(
            out,
            "torn tail: {} at byte {} ({} bytes): {}",
            d.segment.display(),
            d.offset,
            d.len,
            d.reason
        );
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
    let code = match integrity.health() {
        Health::Clean => {
            outln!(out, "clean");
            ExitCode::SUCCESS
        }
        Health::TornTail => {
            outln!(
                out,
                "torn tail only: expected after a crash; every record before it is intact"
            );
            ExitCode::from(EXIT_TORN_TAIL)
        }
        Health::Corrupt => {
            outln!(out, "corrupt records found: the ranges above were skipped");
            ExitCode::from(EXIT_CORRUPT)
        }
    };
    out.flush()?;
    Ok(code)
}
