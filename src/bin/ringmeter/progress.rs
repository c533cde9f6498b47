//! The progress bar of the commands that read a whole log (`stats`, `dump`, `report`).

use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::select::Position;

/// A progress bar on stderr over the bytes of the log's segments, shown only when stderr is
/// a terminal and the read has run for more than a second; a spinner when the size is
/// unknown.
pub struct Progress {
    started: Instant,
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar not shown yet.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            enabled: io::stderr().is_terminal(),
            bar: None,
        }
    }

    /// Shows how far the read has come.
    pub fn at(&mut self, pos: Position) {
        if !self.enabled || self.started.elapsed() < Duration::from_secs(1) {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let (bar, template) = if pos.total_bytes > 0 {
                (
                    ProgressBar::new(pos.total_bytes),
                    "{wide_bar} {bytes}/{total_bytes} ({eta} left) {msg}",
                )
            } else {
                (ProgressBar::new_spinner(), "{spinner} {msg}")
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        bar.set_position(pos.bytes);
        bar.set_message(format!("{} records", pos.records));
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
