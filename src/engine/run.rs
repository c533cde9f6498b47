//! The aggregator thread: its loop, and how it stops.

use std::thread;
use std::time::Duration;

use super::{waits, Inner};
use crate::aggregator::Pass;
use crate::limits::RING_LOW_WATER;
use crate::loom::Ordering;

/// How long the aggregator thread pauses between passes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pauses {
    /// After a pass that found events.
    pub(super) drain: Duration,
    /// The longest pause while nothing arrives.
    pub(super) idle: Duration,
}

/// Shortest park: a window close due sooner than this is waited for this long.
const MIN_PARK: Duration = Duration::from_micros(50);

/// Spin steps after a busy pass before the thread parks: 1, 2, 4, … 64 spins (a few
/// microseconds in all), with a pass after each. There is no `yield` step between the spins
/// and the park (crossbeam's `Backoff` has four): on a kernel with the EEVDF scheduler (Linux
/// 6.6 on) each `sched_yield` pushes the yielding thread's deadline back by a time slice. On
/// two busy shared cores, an aggregator that yielded after its bursts while a thread timed
/// calls back to back got 4-13% of a core and lost 80-90% of the calls; spinning, then
/// parking, it got 30-55% and lost 2-5%.
const SPIN_STEPS: u32 = 7;

/// The back-off after a busy pass: [`SPIN_STEPS`] spins, then the thread parks.
struct Backoff {
    step: u32,
}

impl Backoff {
    fn new() -> Self {
        Self { step: 0 }
    }

    fn is_completed(&self) -> bool {
        self.step >= SPIN_STEPS
    }

    fn spin(&mut self) {
        for _ in 0..1u32 << self.step {
            std::hint::spin_loop();
        }
        self.step += 1;
    }
}

/// What the thread does after a pass.
enum Next {
    /// A ring was past the low-water mark: pass again at once.
    Drain,
    /// Every ring was near empty shortly after a busy pass: spin, then pass again.
    Spin,
    /// Every ring is near empty, and the thread is announced as sleeping: park for at most
    /// the given time (the next window close).
    Park(Duration),
}

/// The aggregator thread's loop.
///
/// While any ring holds at least an eighth of its capacity (the low-water mark) the thread
/// passes again at once, so a thread recording back to back is drained continuously. When
/// all rings are below it, the thread backs off: after a busy pass it spins a few
/// microseconds, with a pass after each step ([`SPIN_STEPS`]); then it parks for `drain`,
/// doubling the pause up to `idle` while nothing arrives, and never past the next window's
/// close.
///
/// Before parking it announces itself on the hub's doorbell and looks at every ring once
/// more; a ring that a producer fills to a quarter of its capacity meanwhile rings the
/// doorbell and unparks it (see `crate::doorbell` for why no wake-up is lost).
pub(super) fn run(inner: &Inner, pauses: Pauses) {
    let Pauses { drain, idle } = pauses;
    let low = (inner.hub.ring_capacity() / RING_LOW_WATER).max(1);
    let mut pause = drain;
    // Steps of the back-off since the last busy pass; `None` when the thread last parked.
    let mut backoff: Option<Backoff> = None;
    // Whether any pass since the last park drained an event.
    let mut drained_any = false;
    // Relaxed: `stop` carries no data; `join` orders everything after the loop.
    while !inner.stop.load(Ordering::Relaxed) {
        let next = {
            // Through the wait-for graph, so that callbacks of other engines can see which
            // thread holds this lock; it never refuses here (this thread holds no other).
            let Ok(mut agg) = waits::lock(&inner.agg, &inner.holder) else {
                return;
            };
            let drained = inner.pass(&mut agg, Pass::Tick);
            drained_any |= drained.events > 0;
            if drained.fullest >= low {
                Next::Drain
            } else if backoff.as_ref().is_some_and(|b| !b.is_completed()) {
                Next::Spin
            } else {
                let until_close = agg.until_next_close();
                match inner.hub.doorbell() {
                    Some(bell) => {
                        bell.prepare_sleep();
                        // The re-check after the announcement: a producer that published
                        // before it is seen here, one that publishes after it sees the flag.
                        if agg.fullest_ring(&inner.hub) >= low {
                            bell.awake();
                            Next::Drain
                        } else {
                            Next::Park(until_close)
                        }
                    }
                    // The engine installs it right after starting this thread, so only the
                    // first passes can find none (and no ring yet). A park nobody can cut
                    // short stays short: a ring registered meanwhile gets the doorbell, but
                    // this thread would only see it after the park.
                    None => Next::Park(until_close.min(MIN_PARK)),
                }
            }
        };
        match next {
            Next::Drain => {
                backoff = Some(Backoff::new());
            }
            Next::Spin => {
                if let Some(b) = &mut backoff {
                    b.spin();
                }
            }
            Next::Park(until_close) => {
                backoff = None;
                pause = if drained_any {
                    drain
                } else {
                    (pause * 2).min(idle)
                };
                drained_any = false;
                thread::park_timeout(pause.min(until_close.max(MIN_PARK)));
                if let Some(bell) = inner.hub.doorbell() {
                    bell.awake();
                }
            }
        }
    }
    // Relaxed: written by this thread (see `Handle::drop`).
    if inner.exit_alone.load(Ordering::Relaxed) {
        if let Ok(mut agg) = waits::lock(&inner.agg, &inner.holder) {
            inner.pass(&mut agg, Pass::Final);
        }
    }
}
