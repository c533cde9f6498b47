//! Recycling of window histograms.
//!
//! A closed window hands its histograms to readers inside a [`WindowReport`](crate::WindowReport).
//! When the last reader drops the report, each histogram goes back to the aggregator's pool
//! through a channel, so at steady state no histogram is allocated per window.

use core::fmt;
use core::ops::Deref;

use crossbeam_channel::{Receiver, Sender};
use hdrhistogram::Histogram;

/// The aggregator's stock of spare histograms, all with one configuration.
pub(crate) struct HistPool {
    home: Sender<Histogram<u64>>,
    spare: Receiver<Histogram<u64>>,
    template: Histogram<u64>,
}

impl HistPool {
    pub(crate) fn new(template: Histogram<u64>) -> Self {
        let (home, spare) = crossbeam_channel::unbounded();
        Self {
            home,
            spare,
            template,
        }
    }

    /// An empty histogram: a returned one, reset, or a new one.
    pub(crate) fn take(&self) -> Histogram<u64> {
        match self.spare.try_recv() {
            Ok(mut h) => {
                h.reset();
                h
            }
            Err(_) => Histogram::new_from(&self.template),
        }
    }

    /// Wraps `hist` so that it comes back here when dropped.
    pub(crate) fn lend(&self, hist: Histogram<u64>) -> PooledHistogram {
        PooledHistogram {
            hist: Some(hist),
            home: self.home.clone(),
        }
    }
}

/// A window's latency histogram (nanoseconds). Dereferences to [`hdrhistogram::Histogram`].
///
/// It returns to its engine's pool when dropped, so keep it only as long as you need it and
/// clone the histogram (`(*h).clone()`) to keep it longer.
pub struct PooledHistogram {
    /// Always `Some` until drop.
    hist: Option<Histogram<u64>>,
    home: Sender<Histogram<u64>>,
}

impl Deref for PooledHistogram {
    type Target = Histogram<u64>;

    fn deref(&self) -> &Histogram<u64> {
        self.hist.as_ref().expect("present until drop")
    }
}

impl fmt::Debug for PooledHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledHistogram")
            .field("len", &self.len())
            .finish()
    }
}

impl Drop for PooledHistogram {
    fn drop(&mut self) {
        if let Some(h) = self.hist.take() {
            // If the engine is gone the histogram is simply freed.
            let _ = self.home.send(h);
        }
    }
}
