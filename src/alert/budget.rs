//! Performance budgets: the rolling sums behind a budget's burn, and the burn as published.
//!
//! A budget "latency at quantile q at most L over a rolling period of P windows" allows a
//! share `1 - q` of the period's calls to be slower than L. Its burn is the share actually
//! slower, divided by that allowance:
//!
//! ```text
//! burn = (over / calls) / (1 - q)
//! ```
//!
//! where `calls` counts the recorded (timed) calls of the period, each with its sampling
//! weight, and `over` those among them whose histogram bucket lies wholly above L. Burn 1
//! means the allowance is used up exactly; above 1 the period's latency at q is above L (to
//! the histogram's precision).
//!
//! The sums are kept per bucket of `g = ceil(P / 64)` consecutive windows, aligned on window
//! indices that are multiples of `g` (so memory is at most 64 buckets of 24 bytes per rule and
//! operation, whatever the period); the burn covers the bucket of the latest window and the
//! `ceil(P / g) - 1` buckets before it. With P ≤ 64 that is exactly the last P windows; with a
//! longer period, between `P - g + 1` and `P + g - 1` windows, like the sliding windows of a
//! rate limiter's bucketed counter.

use std::sync::Arc;

use crate::limits::MAX_BUDGET_BUCKETS;

/// One operation's burn of one budget rule, as of the latest closed window (see
/// [`Condition::BudgetBurn`](super::Condition::BudgetBurn) and docs/alerts.md).
///
/// Published in [`Snapshot::budgets`](crate::Snapshot::budgets) for every operation that had
/// a recorded call within the rolling period.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BudgetBurn {
    /// The budget rule's name.
    pub rule: Arc<str>,
    /// The operation's name.
    pub operation: Arc<str>,
    /// The budget's quantile: `1 - quantile` of the calls may be slower than the limit.
    pub quantile: f64,
    /// The latency limit in nanoseconds.
    pub limit_ns: u64,
    /// The rolling period in windows.
    pub period_windows: u64,
    /// Recorded calls in the period (each with its sampling weight).
    pub calls: u64,
    /// Those slower than the limit.
    pub over: u64,
    /// `(over / calls) / (1 - quantile)`: 1 when the allowance is used up exactly.
    pub burn: f64,
}

/// The rolling sums of one (budget rule, operation).
#[derive(Debug)]
pub(crate) struct BudgetRing {
    /// `(bucket id, calls, over)`, bucket `id` at `id % buckets.len()`; id `u64::MAX` is an
    /// unused slot.
    buckets: Box<[(u64, u64, u64)]>,
    /// Windows per bucket (`g`).
    width: u64,
    period_windows: u64,
    /// The newest bucket id added to.
    newest: u64,
}

impl BudgetRing {
    /// Sums over a period of `period_windows` windows (at least 1).
    pub(crate) fn new(period_windows: u64) -> Self {
        let period_windows = period_windows.max(1);
        let width = period_windows.div_ceil(MAX_BUDGET_BUCKETS);
        let n = period_windows.div_ceil(width);
        debug_assert!(n <= MAX_BUDGET_BUCKETS);
        Self {
            buckets: vec![(u64::MAX, 0, 0); n as usize].into_boxed_slice(),
            width,
            period_windows,
            newest: 0,
        }
    }

    /// The period's length in windows.
    pub(crate) fn period_windows(&self) -> u64 {
        self.period_windows
    }

    /// Adds the calls and slow calls of window `index` (indices never go back).
    pub(crate) fn add(&mut self, index: u64, calls: u64, over: u64) {
        let id = index / self.width;
        let n = self.buckets.len() as u64;
        let slot = &mut self.buckets[(id % n) as usize];
        if slot.0 != id {
            *slot = (id, 0, 0);
        }
        slot.1 = slot.1.saturating_add(calls);
        slot.2 = slot.2.saturating_add(over);
        self.newest = id;
    }

    /// Whether every bucket has left the period ending with window `index` (one compare,
    /// so that forgetting idle operations costs nothing per window).
    pub(crate) fn is_stale(&self, index: u64) -> bool {
        self.newest.saturating_add(self.buckets.len() as u64) <= index / self.width
    }

    /// `(calls, over)` of the period ending with window `index`.
    pub(crate) fn sums(&self, index: u64) -> (u64, u64) {
        let id = index / self.width;
        let n = self.buckets.len() as u64;
        self.buckets
            .iter()
            .filter(|b| b.0 <= id && b.0.saturating_add(n) > id)
            .fold((0, 0), |(c, o), b| {
                (c.saturating_add(b.1), o.saturating_add(b.2))
            })
    }
}

/// The burn of `over` slow calls among `calls` against a budget at `quantile` (in (0, 1));
/// `None` without calls.
pub(crate) fn burn(calls: u64, over: u64, quantile: f64) -> Option<f64> {
    (calls > 0).then(|| over as f64 / calls as f64 / (1.0 - quantile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_periods_sum_exactly_their_windows() {
        let mut r = BudgetRing::new(3);
        assert_eq!(r.sums(0), (0, 0));
        for (i, (calls, over)) in [(10, 1), (10, 2), (10, 3), (10, 4)].into_iter().enumerate() {
            r.add(i as u64, calls, over);
        }
        assert_eq!(r.sums(3), (30, 9)); // windows 1 to 3
        assert_eq!(r.sums(4), (20, 7), "window 4 saw nothing: windows 2 and 3");
        assert!(!r.is_stale(5));
        assert_eq!(r.sums(6), (0, 0), "all stale");
        assert!(r.is_stale(6));
        r.add(10, 5, 5);
        assert_eq!(r.sums(10), (5, 5), "a gap clears the old buckets");
        assert!((burn(20, 1, 0.95).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(burn(0, 0, 0.95), None);
    }

    #[test]
    fn long_periods_sum_in_buckets() {
        // 3600 windows: buckets of 57 windows, 64 of them (3648 windows at most).
        let mut r = BudgetRing::new(3600);
        assert_eq!((r.width, r.buckets.len()), (57, 64));
        for i in 0..4000 {
            r.add(i, 1, u64::from(i % 2 == 0));
        }
        // The bucket of window 3999 is 70 (3990..=3999); buckets 7 to 70: windows 399..=3999.
        let (calls, over) = r.sums(3999);
        assert_eq!(calls, 3999 - 399 + 1);
        assert_eq!(over, (399..4000).filter(|i| i % 2 == 0).count() as u64);
        assert_eq!(r.period_windows(), 3600);
    }
}
