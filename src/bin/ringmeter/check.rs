//! `ringmeter check`: integrity report.

use std::process::ExitCode;

use anyhow::{Context, Result};
use ringmeter::log::{Reader, Verdict};

use crate::cli::CheckArgs;

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
    println!(
        "{}: {} segment(s), {} valid record(s)",
        dir.display(),
        integrity.segments,
        integrity.records
    );
    for d in &integrity.torn_tails {
        println!(
            "torn tail: {} at byte {} ({} bytes): {}",
            d.segment.display(),
            d.offset,
            d.len,
            d.reason
        );
    }
    for d in &integrity.missing {
        println!(
            "records missing: {} at byte {} ({} bytes): {}",
            d.segment.display(),
            d.offset,
            d.len,
            d.reason
        );
    }
    for p in &integrity.unsealed {
        println!("unsealed: {}", p.display());
    }
    for d in &integrity.corrupt {
        println!(
            "corrupt: {} bytes {}..{}: {}",
            d.segment.display(),
            d.offset,
            d.offset.saturating_add(d.len),
            d.reason
        );
    }
    Ok(match integrity.verdict() {
        Verdict::Clean => {
            println!("clean: every segment sealed, every committed record read");
            ExitCode::SUCCESS
        }
        Verdict::Unsealed => {
            println!(
                "intact but unsealed: every committed record read; a writer is running or was \
                 killed"
            );
            ExitCode::SUCCESS
        }
        Verdict::TornTail => {
            println!("torn tail only: expected after a crash; every committed record is intact");
            ExitCode::from(EXIT_TORN_TAIL)
        }
        Verdict::RecordsMissing => {
            println!("records missing: committed records are not in the log (ranges above)");
            ExitCode::from(EXIT_MISSING)
        }
        _ => {
            println!("corrupt records found: the ranges above were skipped");
            ExitCode::from(EXIT_CORRUPT)
        }
    })
}
