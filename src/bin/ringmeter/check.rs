//! `ringmeter check`: integrity report.

use std::process::ExitCode;

use anyhow::{Context, Result};
use ringmeter::log::{Health, Reader};

use crate::cli::CheckArgs;

/// Exit code when only torn tails were found (expected after a crash; recoverable).
pub const EXIT_TORN_TAIL: u8 = 3;
/// Exit code when records are corrupt (valid records follow damaged bytes).
pub const EXIT_CORRUPT: u8 = 4;

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
    for d in &integrity.corrupt {
        println!(
            "corrupt: {} bytes {}..{}: {}",
            d.segment.display(),
            d.offset,
            d.offset.saturating_add(d.len),
            d.reason
        );
    }
    Ok(match integrity.health() {
        Health::Clean => {
            println!("clean");
            ExitCode::SUCCESS
        }
        Health::TornTail => {
            println!("torn tail only: expected after a crash; every record before it is intact");
            ExitCode::from(EXIT_TORN_TAIL)
        }
        Health::Corrupt => {
            println!("corrupt records found: the ranges above were skipped");
            ExitCode::from(EXIT_CORRUPT)
        }
    })
}
