//! `ringmeter`: the command-line tool for window logs. See `ringmeter --help` and
//! `docs/cli.md`.

use std::process::ExitCode;

use clap::Parser;

mod check;
mod cli;
mod demo;
mod dump;
mod select;
mod show;
mod stats;
mod tail;
mod workload;

use cli::{Cli, Command};

/// Exit code of an error.
const EXIT_ERROR: u8 = 1;
/// Exit code of bad usage: options, times, ranges, patterns, rollups.
const EXIT_USAGE: u8 = 2;

/// Bad usage found after option parsing (a time, range, pattern or rollup): exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns a [`UsageError`] from the enclosing function.
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::UsageError(format!($($arg)*))))
    };
}
pub(crate) use usage;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringmeter: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_ERROR)
            }
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(a) => demo::run(&a),
        Command::Stats(a) => stats::run(&a),
        Command::Dump(a) => dump::run(&a),
        Command::Check(a) => check::run(&a),
        Command::Tail(a) => tail::run(&a),
    }
}
