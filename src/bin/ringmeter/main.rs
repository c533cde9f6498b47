//! `ringmeter`: the command-line tool for window logs. See `ringmeter --help` and
//! `docs/cli.md`.

use std::process::ExitCode;

use clap::Parser;

mod check;
mod cli;
mod demo;
mod dump;
mod out;
mod progress;
mod report;
mod rows;
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
    // Every `Out` is dropped, and so flushed, by the time `run` returns.
    let result = run();
    // A failed write decides the outcome, whatever error it surfaced as on its way up.
    if let Some(failure) = out::failure() {
        if failure.is_closed_stdout() {
            // The reader has all it wanted (`| head`): stop quietly, as after SIGPIPE but
            // with status 0, so `set -o pipefail` scripts do not fail; a command that ran to
            // its end anyway (`check`) keeps its own exit code.
            return result.unwrap_or(ExitCode::SUCCESS);
        }
        out::warn(format_args!("ringmeter: {failure}"));
        return ExitCode::from(EXIT_ERROR);
    }
    match result {
        // Damage a read went past (stats, dump, tail) fails the command after its output.
        Ok(code) if code == ExitCode::SUCCESS && select::damage_exit() != 0 => {
            ExitCode::from(select::damage_exit())
        }
        Ok(code) => code,
        Err(e) => {
            out::warn(format_args!("ringmeter: {}", message(&e)));
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_ERROR)
            }
        }
    }
}

/// The error and its causes, joined by `: `, each said once: the log's and the exports'
/// errors already include their OS error in their own text, and also return it as their
/// source.
fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(a) => demo::run(&a),
        Command::Stats(a) => stats::run(&a),
        Command::Dump(a) => dump::run(&a),
        Command::Check(a) => check::run(&a),
        Command::Tail(a) => tail::run(&a),
        Command::Report(a) => report::run(&a),
    }
}
