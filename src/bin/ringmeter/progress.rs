//! The progress spinner of the commands that read a whole log (`dump`, `report`).

use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A progress spinner on stderr, shown only when stderr is a terminal and the dump has run
/// for more than a second.
pub struct Progress {
    started: Instant,
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A spinner not shown yet.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            enabled: io::stderr().is_terminal(),
            bar: None,
        }
    }

    /// Shows that `n` records were read.
    pub fn records(&mut self, n: u64) {
        if !self.enabled || self.started.elapsed() < Duration::from_secs(1) {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {pos} records read ({per_sec})")
            {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        bar.set_position(n);
    }

    /// Clears the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
