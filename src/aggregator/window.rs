//! Per-operation accumulators of one window, and of the totals since start.

use std::sync::Arc;

use crate::hist::{percentiles, CountsPool, Layout, Quantiles, WindowCounts};
use crate::report::OpStats;

/// Exact statistics of calls: counts, extremes and sums. An [`OpAcc`] keeps one; the drain keeps
/// another in registers for a run of consecutive calls of one operation into one window and
/// merges it at the run's end.
#[derive(Clone, Copy)]
pub(crate) struct Calls {
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) slow: u64,
    /// Minimum recorded duration; `u64::MAX` while `count == 0`.
    pub(crate) min: u64,
    pub(crate) max: u64,
    /// Sum of the weights (calls the recorded ones stand for); `count` without sampling.
    pub(crate) weight: u64,
    /// Weighted sums of durations and of their squares (the squares' saturating: a few calls
    /// near `u64::MAX` nanoseconds fill a `u128`).
    pub(crate) sum: u128,
    pub(crate) sum_sq: u128,
}

impl Default for Calls {
    fn default() -> Self {
        Self::new()
    }
}

impl Calls {
    pub(crate) const fn new() -> Self {
        Self {
            count: 0,
            errors: 0,
            slow: 0,
            min: u64::MAX,
            max: 0,
            weight: 0,
            sum: 0,
            sum_sq: 0,
        }
    }

    /// Counts one call of `ns` nanoseconds standing for `weight` calls (its histogram entry
    /// is the caller's job).
    #[inline(always)]
    pub(crate) fn record(&mut self, ns: u64, weight: u64, error: bool, slow: bool) {
        self.count += 1;
        self.errors += u64::from(error);
        self.slow += u64::from(slow);
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
        self.weight += weight;
        let wns = u128::from(ns) * u128::from(weight);
        self.sum += wns;
        self.sum_sq = self
            .sum_sq
            .saturating_add(wns.saturating_mul(u128::from(ns)));
    }

    /// Adds the calls of a run: `count` calls of weight 1 with these extremes and sums.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn merge_run(
        &mut self,
        count: u64,
        errors: u64,
        slow: u64,
        min: u64,
        max: u64,
        sum: u128,
        sum_sq: u128,
    ) {
        self.merge(&Calls {
            count,
            errors,
            slow,
            min,
            max,
            weight: count,
            sum,
            sum_sq,
        });
    }

    /// Adds `other`'s calls.
    #[inline(always)]
    pub(crate) fn merge(&mut self, other: &Calls) {
        self.count += other.count;
        self.errors += other.errors;
        self.slow += other.slow;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.weight += other.weight;
        self.sum += other.sum;
        self.sum_sq = self.sum_sq.saturating_add(other.sum_sq);
    }
}

/// One of the slowest calls of a window, as the drain saw it.
#[derive(Clone, Debug)]
pub(crate) struct RawExemplar {
    pub(crate) ns: u64,
    pub(crate) end_unix_ns: u64,
    pub(crate) thread: u64,
    pub(crate) thread_name: Option<Arc<str>>,
}

/// The `k` slowest calls seen, kept unordered; `floor` is the duration a call must exceed to
/// enter (`u64::MAX` when `k == 0`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Slowest {
    pub(crate) items: Vec<RawExemplar>,
    pub(crate) floor: u64,
}

impl Slowest {
    /// Offers a call that is longer than `floor`, keeping at most `k`.
    #[cold]
    #[inline(never)]
    pub(crate) fn offer(&mut self, k: usize, e: RawExemplar) {
        if k == 0 {
            self.floor = u64::MAX;
            return;
        }
        self.items.push(e);
        self.items
            .sort_unstable_by_key(|x| core::cmp::Reverse(x.ns));
        self.items.truncate(k);
        self.floor = if self.items.len() < k {
            0
        } else {
            self.items[k - 1].ns
        };
    }

    /// The calls, slowest first.
    pub(crate) fn sorted(&self) -> Vec<RawExemplar> {
        let mut v = self.items.clone();
        v.sort_by(|a, b| b.ns.cmp(&a.ns).then(a.end_unix_ns.cmp(&b.end_unix_ns)));
        v
    }
}

/// Running statistics of one operation. Counts, extremes and sums are exact.
#[derive(Default)]
pub(crate) struct OpAcc {
    /// The calls recorded; `calls.errors` also counts failures of dropped and unsampled calls.
    pub(crate) calls: Calls,
    pub(crate) dropped: u64,
    /// Calls counted but not timed (sampling).
    pub(crate) unsampled: u64,
    pub(crate) late: u64,
    /// Failures per error kind code (kind 0, none, is not listed).
    pub(crate) kinds: Vec<(u8, u64)>,
    /// The slowest calls (window accumulators only).
    pub(crate) slowest: Slowest,
    /// Durations recorded so far, as counts-array indices (window accumulators only).
    pub(crate) counts: WindowCounts,
    /// Listed in its window's `touched` (window accumulators only).
    pub(crate) touched: bool,
}

impl OpAcc {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Whether nothing at all was seen.
    pub(crate) fn is_empty(&self) -> bool {
        self.calls.count == 0 && self.dropped == 0 && self.calls.errors == 0 && self.unsampled == 0
    }

    /// Records one call of `ns` nanoseconds standing for `weight` calls.
    #[inline(always)]
    pub(crate) fn record(
        &mut self,
        ns: u64,
        weight: u64,
        error: bool,
        slow: bool,
        layout: &Layout,
        pool: &mut CountsPool,
    ) {
        self.calls.record(ns, weight, error, slow);
        // Values above the highest trackable value are counted at that value; `max` stays exact.
        self.counts.add(layout.index(ns), weight, pool);
    }

    /// Counts a failure of kind `kind` (0: none, not listed).
    pub(crate) fn count_kind(&mut self, kind: u8, n: u64) {
        if kind == 0 || n == 0 {
            return;
        }
        match self.kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, c)) => *c += n,
            None => self.kinds.push((kind, n)),
        }
    }

    /// Adds another accumulator's counts (not its histogram or exemplars).
    pub(crate) fn add_counts(&mut self, other: &OpAcc) {
        self.calls.merge(&other.calls);
        self.dropped += other.dropped;
        self.unsampled += other.unsampled;
        self.late += other.late;
        for &(k, n) in &other.kinds {
            self.count_kind(k, n);
        }
    }

    /// Clears the counts (the histogram's were taken at the window's close), keeping the
    /// buffers for reuse.
    pub(crate) fn clear_counts(&mut self) {
        let mut counts = std::mem::take(&mut self.counts);
        debug_assert!(counts.is_empty());
        counts.log.clear();
        let mut kinds = std::mem::take(&mut self.kinds);
        kinds.clear();
        let mut slowest = std::mem::take(&mut self.slowest.items);
        slowest.clear();
        *self = Self::new();
        self.counts = counts;
        self.kinds = kinds;
        self.slowest.items = slowest;
    }

    /// The statistics, with percentiles from `hist`.
    pub(crate) fn stats<H: Quantiles + ?Sized>(&self, hist: Option<&H>) -> OpStats {
        let c = &self.calls;
        let mut s = OpStats {
            count: c.count,
            errors: c.errors,
            slow: c.slow,
            dropped: self.dropped,
            unsampled: self.unsampled,
            late: self.late,
            ..OpStats::default()
        };
        if c.count == 0 {
            return s;
        }
        s.min_ns = c.min;
        s.max_ns = c.max;
        let n = c.weight.max(1) as f64;
        s.mean_ns = c.sum as f64 / n;
        s.stddev_ns = (c.sum_sq as f64 / n - s.mean_ns * s.mean_ns)
            .max(0.0)
            .sqrt();
        let [p50, p90, p95, p99, p999] = percentiles(hist, c.count, c.min, c.max);
        (s.p50_ns, s.p90_ns, s.p95_ns, s.p99_ns, s.p999_ns) = (p50, p90, p95, p99, p999);
        s
    }
}

/// One open window.
pub(crate) struct WindowAcc {
    /// Window number (`start_ns / length`).
    pub(crate) index: u64,
    pub(crate) start_ns: u64,
    pub(crate) end_ns: u64,
    /// Indexed by operation id; grown on demand.
    pub(crate) ops: Vec<OpAcc>,
    /// Ids whose accumulator is not empty, in first-seen order.
    pub(crate) touched: Vec<u32>,
}

impl WindowAcc {
    pub(crate) fn new() -> Self {
        Self {
            index: 0,
            start_ns: 0,
            end_ns: 0,
            ops: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// Re-targets a (cleared) window at `index`.
    pub(crate) fn reopen(&mut self, index: u64, length_ns: u64) {
        debug_assert!(self.touched.is_empty());
        self.index = index;
        self.start_ns = index.saturating_mul(length_ns);
        self.end_ns = self.start_ns.saturating_add(length_ns);
    }

    /// The accumulator of `op`, marking it touched.
    #[inline(always)]
    pub(crate) fn op(&mut self, op: u32) -> &mut OpAcc {
        let i = op as usize;
        if i >= self.ops.len() {
            self.ops.resize_with(i + 1, OpAcc::new);
        }
        let acc = &mut self.ops[i];
        if !acc.touched {
            acc.touched = true;
            self.touched.push(op);
        }
        acc
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use hdrhistogram::Histogram;

    use super::*;
    use crate::hist::{HistPool, PooledHistogram};

    struct Pools {
        layout: Layout,
        counts: CountsPool,
        hist: HistPool,
    }

    fn pools(high: u64, digits: u8) -> Pools {
        let layout = Layout::of(&Histogram::new_with_bounds(1, high, digits).unwrap());
        Pools {
            layout,
            counts: CountsPool::new(&layout),
            hist: HistPool::new(),
        }
    }

    impl Pools {
        fn histogram(&mut self, a: &mut OpAcc) -> PooledHistogram {
            let h = a.counts.take(
                self.layout,
                self.hist.buffers(),
                &mut Vec::new(),
                &mut self.counts,
            );
            self.hist.lend(h)
        }
    }

    #[test]
    fn stats_are_exact_for_counts_and_extremes() {
        let mut p = pools(60_000_000_000, 3);
        let mut a = OpAcc::new();
        for (ns, err) in [(100, false), (300, true), (200, false)] {
            a.record(ns, 1, err, ns > 250, &p.layout, &mut p.counts);
        }
        let h = p.histogram(&mut a);
        let s = a.stats(Some(&*h));
        assert_eq!(
            (s.count, s.errors, s.slow, s.min_ns, s.max_ns),
            (3, 1, 1, 100, 300)
        );
        assert!((s.mean_ns - 200.0).abs() < 1e-9);
        assert!((s.stddev_ns - (20_000f64 / 3.0).sqrt()).abs() < 1e-6);
        assert_eq!(s.p50_ns, 200);
        assert_eq!(s.p999_ns, 300);
    }

    #[test]
    fn touched_lists_each_op_once() {
        let mut p = pools(60_000_000_000, 3);
        let mut w = WindowAcc::new();
        w.reopen(3, 1_000);
        assert_eq!((w.start_ns, w.end_ns), (3_000, 4_000));
        w.op(5).record(1, 1, false, false, &p.layout, &mut p.counts);
        w.op(5).record(1, 1, false, false, &p.layout, &mut p.counts);
        w.op(2).dropped += 1;
        w.op(2).dropped += 1;
        assert_eq!(w.touched, vec![5, 2]);
    }

    #[test]
    fn above_range_values_saturate_but_max_is_exact() {
        let mut p = pools(1_000, 2);
        let mut a = OpAcc::new();
        a.record(5_000, 1, false, false, &p.layout, &mut p.counts);
        let h = p.histogram(&mut a);
        let s = a.stats(Some(&*h));
        assert_eq!(s.max_ns, 5_000);
        assert!(s.p50_ns <= 5_000 && s.p50_ns >= 1_000);
    }
}
