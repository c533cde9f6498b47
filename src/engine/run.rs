//! The aggregator thread: its loop, and how it stops.

use std::thread;
use std::time::Duration;

use super::Inner;
use crate::aggregator::Pass;
use crate::loom::Ordering;

/// How long the aggregator thread pauses between passes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pauses {
    /// After a pass that found events.
    pub(super) drain: Duration,
    /// The longest pause while nothing arrives.
    pub(super) idle: Duration,
}

/// The aggregator thread's loop.
///
/// After a pass that found a ring at least a quarter full it goes straight on (yielding the
/// core once), so a burst is drained at full speed; otherwise it parks for `drain`, doubling
/// the pause up to `idle` while nothing arrives, and never past the next window's close.
pub(super) fn run(inner: &Inner, pauses: Pauses) {
    let Pauses { drain, idle } = pauses;
    let busy_at = inner.hub.ring_capacity() / 4;
    let mut pause = drain;
    // Relaxed: `stop` carries no data; `join` orders everything after the loop.
    while !inner.stop.load(Ordering::Relaxed) {
        let (drained, until_close) = {
            let Ok(mut agg) = inner.agg.lock() else {
                return;
            };
            let drained = inner.pass(&mut agg, Pass::Tick);
            (drained, agg.until_next_close())
        };
        if drained.fullest >= busy_at.max(1) {
            pause = drain;
            thread::yield_now();
            continue;
        }
        pause = if drained.events > 0 {
            drain
        } else {
            (pause * 2).min(idle)
        };
        thread::park_timeout(pause.min(until_close.max(Duration::from_micros(50))));
    }
    // Relaxed: written by this thread (see `Handle::drop`).
    if inner.exit_alone.load(Ordering::Relaxed) {
        if let Ok(mut agg) = inner.agg.lock() {
            inner.pass(&mut agg, Pass::Final);
        }
    }
}
