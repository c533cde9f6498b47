//! The side path of trace and span ids: the `tracing` layer leaves here the ids of the spans
//! it times, the aggregator gives them to the exemplars they belong to when a window closes.
//!
//! A call travels the ring as a 16-byte event that has no room for 24 bytes of ids, and the
//! plain [`Op`](crate::Op) API must not pay for them. So the ids go beside the ring, and only
//! for calls that can become exemplars: the layer offers a span's ids when it ends the span's
//! call (only spans that carry ids), with the call's thread number and its start and end
//! readings of the engine's clock, exactly as the event carries them. The table keeps, per
//! operation, the [`MAX_EXEMPLARS`] longest calls offered (no window keeps more exemplars), so
//! it is bounded whatever the span rate. At a window close the aggregator looks each
//! exemplar up by operation, thread and duration (converted from the same clock readings by
//! the same code as the event's), then forgets the entries that ended in the closed window or
//! before it.
//!
//! The layer takes the lock with `try_lock` and drops the ids when the aggregator (or another
//! closing span) holds it: a span never waits, an exemplar may then go without ids.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, TryLockError};

use crate::limits::MAX_EXEMPLARS;
use crate::loom::{AtomicBool, Ordering};

/// A span's ids and the call they belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(any(test, feature = "tracing")), allow(dead_code))]
pub(crate) struct SpanCall {
    /// The thread number of the ring the call went into.
    pub(crate) thread: u64,
    /// The call's start and end, raw readings of the engine's clock.
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
}

impl SpanCall {
    fn ticks(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
}

/// Per operation id, the longest calls offered (at most [`MAX_EXEMPLARS`], unordered).
#[derive(Debug)]
pub(crate) struct SpanIds {
    calls: Mutex<HashMap<u32, Vec<SpanCall>>>,
    /// Whether any call was ever offered: the aggregator skips the lock until then.
    used: AtomicBool,
}

impl Default for SpanIds {
    fn default() -> Self {
        Self {
            calls: Mutex::new(HashMap::new()),
            used: AtomicBool::new(false),
        }
    }
}

impl SpanIds {
    /// Offers the ids of a call of operation `op`; kept if it is among the longest offered.
    /// Never waits: dropped when the table is busy.
    #[cfg_attr(not(any(test, feature = "tracing")), allow(dead_code))]
    pub(crate) fn offer(&self, op: u32, call: SpanCall) {
        let mut calls = match self.calls.try_lock() {
            Ok(c) => c,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        // Relaxed: a hint; the aggregator reads the entries under the lock.
        self.used.store(true, Ordering::Relaxed);
        let list = calls.entry(op).or_default();
        if list.len() < MAX_EXEMPLARS {
            list.push(call);
            return;
        }
        if let Some((i, shortest)) = list
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| c.ticks())
            .map(|(i, c)| (i, c.ticks()))
        {
            if call.ticks() > shortest {
                list[i] = call;
            }
        }
    }

    /// Whether any call was ever offered.
    pub(crate) fn is_used(&self) -> bool {
        // Relaxed: see `offer`.
        self.used.load(Ordering::Relaxed)
    }

    /// Runs `f` on the table (the aggregator, at a window close).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut HashMap<u32, Vec<SpanCall>>) -> R) -> R {
        f(&mut self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn call(thread: u64, ticks: u64) -> SpanCall {
        SpanCall {
            thread,
            start: 1_000,
            end: 1_000 + ticks,
            trace_id: [1; 16],
            span_id: [2; 8],
        }
    }

    #[test]
    fn keeps_the_longest_calls_per_operation() {
        let ids = SpanIds::default();
        assert!(!ids.is_used());
        for t in 0..(MAX_EXEMPLARS as u64 + 10) {
            ids.offer(7, call(1, t));
        }
        ids.offer(8, call(2, 5));
        assert!(ids.is_used());
        ids.with(|m| {
            let mut kept: Vec<u64> = m[&7].iter().map(SpanCall::ticks).collect();
            kept.sort_unstable();
            let want: Vec<u64> = (10..MAX_EXEMPLARS as u64 + 10).collect();
            assert_eq!(kept, want);
            assert_eq!(m[&8], [call(2, 5)]);
        });
    }

    #[test]
    fn a_busy_table_drops_the_offer_without_waiting() {
        let ids = SpanIds::default();
        ids.with(|_| ids.offer(1, call(1, 1)));
        ids.with(|m| assert!(m.is_empty()));
    }
}
