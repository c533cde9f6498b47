//! Recycling of the buffers of published window histograms.
//!
//! A closed window hands its histograms to readers inside a [`WindowReport`](crate::WindowReport).
//! When the last reader drops the report, each histogram's buffers go back to the
//! aggregator's pool through a channel, so at steady state no buffer is allocated per window.

use core::fmt;
use core::ops::Deref;

use crossbeam_channel::{Receiver, Sender};

use super::compact::CompactHistogram;

/// Buffers of a compact histogram: its indices and its counts.
type Buffers = (Vec<u32>, Vec<u64>);

/// The aggregator's stock of spare histogram buffers.
pub(crate) struct HistPool {
    home: Sender<Buffers>,
    spare: Receiver<Buffers>,
}

impl HistPool {
    pub(crate) fn new() -> Self {
        let (home, spare) = crossbeam_channel::unbounded();
        Self { home, spare }
    }

    /// Buffers for a histogram: returned ones, or new (empty) ones.
    pub(crate) fn buffers(&self) -> Buffers {
        self.spare.try_recv().unwrap_or_default()
    }

    /// Wraps `hist` so that its buffers come back here when dropped.
    pub(crate) fn lend(&self, hist: CompactHistogram) -> PooledHistogram {
        PooledHistogram {
            hist: Some(hist),
            home: self.home.clone(),
        }
    }
}

/// A window's latency histogram (nanoseconds). Dereferences to [`CompactHistogram`]; see
/// [`CompactHistogram::to_hdrhistogram`] for an [`hdrhistogram::Histogram`].
///
/// Its buffers return to its engine's pool when it is dropped, so keep it only as long as
/// you need it and clone the histogram (`(*h).clone()`) to keep it longer.
pub struct PooledHistogram {
    /// Always `Some` until drop.
    hist: Option<CompactHistogram>,
    home: Sender<Buffers>,
}

impl Deref for PooledHistogram {
    type Target = CompactHistogram;

    fn deref(&self) -> &CompactHistogram {
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
            // If the engine is gone the buffers are simply freed.
            let _ = self.home.send(h.into_buffers());
        }
    }
}
