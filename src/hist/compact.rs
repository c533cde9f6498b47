//! Compact histograms: HdrHistogram's counts without its full counts array.
//!
//! Every form here indexes counts exactly as an `hdrhistogram::Histogram` of the same bounds
//! does ([`Layout`]), so percentiles, extremes, bucket counts and the V2 encoding come out
//! identical to those of the full histogram, and converting is copying counts.
//!
//! | form | holds | used for |
//! |---|---|---|
//! | [`CompactHistogram`] | sorted `(index, count)` pairs of the non-zero counts | a closed window's histogram, as published |
//! | `WindowCounts` | the indices of the first calls as they came (a log), then a dense `u32` array | one operation in one open window |
//! | `RangeCounts` | dense `u32` counts (with carries) from the lowest to the highest index seen | totals since start |

use core::fmt;

use hdrhistogram::Histogram;

use super::layout::Layout;

/// Calls an open window's log holds before its counts move to a dense array.
pub(crate) const LOG_CAPACITY: usize = 1024;

/// A latency histogram (nanoseconds) stored as its non-zero counts only.
///
/// It has the bounds, precision and bucket layout of an [`hdrhistogram::Histogram`] and
/// answers as that histogram would: [`value_at_quantile`](Self::value_at_quantile),
/// [`len`](Self::len), [`min`](Self::min), [`max`](Self::max) and
/// [`iter_recorded`](Self::iter_recorded) agree with the `Histogram` holding the same calls,
/// and [`to_hdrhistogram`](Self::to_hdrhistogram) (or `Histogram::from`) builds that
/// histogram. A window with a few hundred calls takes a few KiB instead of the full counts
/// array (216 KiB at 1 ns–60 s and 3 digits).
///
/// # Examples
/// ```
/// let engine = ringmeter::Engine::builder().start_manual()?;
/// let windows = engine.subscribe(4);
/// let op = engine.op("demo")?;
/// for ns in [1_000, 2_000, 3_000] {
///     op.record_ns(ns);
/// }
/// engine.shutdown()?;
/// let w = windows.try_recv().expect("the window closed at shutdown");
/// let h = &w.op("demo").unwrap().histogram;
/// assert_eq!((h.len(), h.min(), h.value_at_quantile(0.5)), (3, 1_000, 2_000));
/// let full: ringmeter::hdrhistogram::Histogram<u64> = h.to_hdrhistogram();
/// assert_eq!(full.value_at_quantile(0.99), h.value_at_quantile(0.99));
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct CompactHistogram {
    layout: Layout,
    /// Counts-array indices with a non-zero count, ascending.
    index: Vec<u32>,
    /// The count at each of `index`.
    counts: Vec<u64>,
    /// Sum of `counts` (saturating, as HdrHistogram's total).
    total: u64,
}

/// One non-zero count of a histogram: the calls whose durations fall in one bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedBucket {
    lowest: u64,
    highest: u64,
    count: u64,
}

impl RecordedBucket {
    /// The lowest value of the bucket.
    pub fn lowest(&self) -> u64 {
        self.lowest
    }

    /// The highest value of the bucket (`HistogramIterationValue::value_iterated_to` of
    /// HdrHistogram's recorded-values iterator).
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Calls counted in the bucket.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl CompactHistogram {
    /// An empty histogram with the bounds and precision of `template` (not its counts).
    pub fn new_from(template: &Histogram<u64>) -> Self {
        Self::empty(Layout::of(template))
    }

    pub(crate) fn empty(layout: Layout) -> Self {
        Self {
            layout,
            index: Vec::new(),
            counts: Vec::new(),
            total: 0,
        }
    }

    /// Builds it from sorted, distinct `(index, count)` pairs, reusing `index` and `counts`
    /// (cleared first).
    pub(crate) fn from_sorted(
        layout: Layout,
        mut index: Vec<u32>,
        mut counts: Vec<u64>,
        pairs: impl Iterator<Item = (u32, u64)>,
    ) -> Self {
        index.clear();
        counts.clear();
        // Reused buffers keep about the size of what they hold, not of the largest histogram
        // they ever held.
        let n = pairs.size_hint().0;
        if index.capacity() > n + n / 4 + 16 {
            index.shrink_to(n);
        }
        if counts.capacity() > n + n / 4 + 16 {
            counts.shrink_to(n);
        }
        index.reserve_exact(n);
        counts.reserve_exact(n);
        let mut total = 0_u64;
        for (i, c) in pairs {
            if c == 0 {
                continue;
            }
            debug_assert!(index.last().is_none_or(|&l| l < i));
            index.push(i);
            counts.push(c);
            total = total.saturating_add(c);
        }
        Self {
            layout,
            index,
            counts,
            total,
        }
    }

    /// Gives back its buffers (for reuse).
    pub(crate) fn into_buffers(self) -> (Vec<u32>, Vec<u64>) {
        (self.index, self.counts)
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `(index, count)` of every non-zero count, ascending.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.index
            .iter()
            .zip(&self.counts)
            .map(|(&i, &c)| (i as usize, c))
    }

    /// Calls counted (each with its weight).
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing is counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Lowest discernible value.
    pub fn low(&self) -> u64 {
        self.layout.low()
    }

    /// Highest trackable value: larger durations are counted at it.
    pub fn high(&self) -> u64 {
        self.layout.high()
    }

    /// Significant decimal digits.
    pub fn sigfig(&self) -> u8 {
        self.layout.digits()
    }

    /// Buckets with a non-zero count.
    pub fn buckets_recorded(&self) -> usize {
        self.index.len()
    }

    /// The lowest value equivalent to `value` at this histogram's precision.
    pub fn lowest_equivalent(&self, value: u64) -> u64 {
        self.layout.lowest_equivalent(value)
    }

    /// The highest value equivalent to `value` at this histogram's precision.
    pub fn highest_equivalent(&self, value: u64) -> u64 {
        self.layout.highest_equivalent(value)
    }

    /// The lowest value of the lowest non-zero bucket, 0 when empty or when the bucket of 0
    /// holds calls (as `Histogram::min`).
    pub fn min(&self) -> u64 {
        match self.index.first() {
            Some(&i) if i > 0 => self.layout.value_for(i as usize),
            _ => 0,
        }
    }

    /// The highest value of the highest non-zero bucket, 0 when empty (as
    /// `Histogram::max`). The exact maximum is in [`OpStats::max_ns`](crate::OpStats::max_ns).
    pub fn max(&self) -> u64 {
        match self.index.last() {
            Some(&i) => self
                .layout
                .highest_equivalent(self.layout.value_for(i as usize)),
            None => 0,
        }
    }

    /// The value at `quantile` (0 to 1), exactly as `Histogram::value_at_quantile` computes
    /// it: the highest equivalent value of the first bucket at which the running count
    /// reaches `ceil(quantile * len)` (the lowest equivalent value for quantile 0); 0 when
    /// empty.
    pub fn value_at_quantile(&self, quantile: f64) -> u64 {
        let mut out = [0];
        quantiles_into(
            &self.layout,
            self.pairs(),
            self.total,
            &[quantile],
            &mut out,
        );
        out[0]
    }

    /// The values at several ascending quantiles in one pass, as `value_at_quantile` would
    /// give each (a quantile below the one before it ends the list early, as in
    /// `Histogram::value_at_quantiles`).
    pub fn value_at_quantiles(&self, quantiles: &[f64]) -> Vec<u64> {
        let n = quantiles
            .windows(2)
            .position(|w| w[1] < w[0])
            .map_or(quantiles.len(), |p| p + 1);
        let mut out = vec![0; n];
        quantiles_into(
            &self.layout,
            self.pairs(),
            self.total,
            &quantiles[..n],
            &mut out,
        );
        out
    }

    /// The non-zero buckets, lowest first (HdrHistogram's `iter_recorded`).
    pub fn iter_recorded(&self) -> impl Iterator<Item = RecordedBucket> + '_ {
        self.pairs().map(|(i, count)| {
            let lowest = self.layout.value_for(i);
            RecordedBucket {
                lowest,
                highest: self.layout.highest_equivalent(lowest),
                count,
            }
        })
    }

    /// The same counts in an `hdrhistogram::Histogram` (which allocates its full counts
    /// array).
    pub fn to_hdrhistogram(&self) -> Histogram<u64> {
        let mut h = self.layout.histogram();
        for (i, c) in self.pairs() {
            // `value_for` of an index inside the array is trackable: this cannot fail.
            let recorded = h.record_n(self.layout.value_for(i), c);
            debug_assert!(recorded.is_ok());
        }
        h
    }
}

impl From<&Histogram<u64>> for CompactHistogram {
    /// The non-zero counts of `h`.
    fn from(h: &Histogram<u64>) -> Self {
        let layout = Layout::of(h);
        let pairs = h.iter_recorded().map(|v| {
            let i = layout.index(v.value_iterated_to());
            (i as u32, v.count_at_value())
        });
        Self::from_sorted(layout, Vec::new(), Vec::new(), pairs)
    }
}

impl From<&CompactHistogram> for Histogram<u64> {
    fn from(h: &CompactHistogram) -> Self {
        h.to_hdrhistogram()
    }
}

impl PartialEq<Histogram<u64>> for CompactHistogram {
    fn eq(&self, other: &Histogram<u64>) -> bool {
        self.to_hdrhistogram() == *other
    }
}

impl PartialEq<CompactHistogram> for Histogram<u64> {
    fn eq(&self, other: &CompactHistogram) -> bool {
        other == self
    }
}

impl fmt::Debug for CompactHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactHistogram")
            .field("len", &self.len())
            .field("min", &self.min())
            .field("max", &self.max())
            .field("buckets_recorded", &self.buckets_recorded())
            .finish()
    }
}

/// HdrHistogram's `value_at_quantiles` over ascending `(index, count)` pairs summing to
/// `total`: writes one value per quantile (ascending quantiles) into `out`.
pub(crate) fn quantiles_into(
    layout: &Layout,
    mut pairs: impl Iterator<Item = (usize, u64)>,
    total: u64,
    quantiles: &[f64],
    out: &mut [u64],
) {
    let mut running = 0_u64;
    let mut at = 0;
    for (q, slot) in quantiles.iter().zip(out.iter_mut()) {
        let target = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        while running < target {
            let Some((i, c)) = pairs.next() else {
                *slot = 0;
                break;
            };
            at = i;
            running = running.saturating_add(c);
        }
        if running < target {
            continue;
        }
        let v = layout.value_for(at);
        *slot = if *q == 0.0 {
            layout.lowest_equivalent(v)
        } else {
            layout.highest_equivalent(v)
        };
    }
}

/// Spare dense arrays for open windows, all of one length. It keeps at most as many spares
/// as there are arrays in use (and at least two), so arrays freed by a burst go back to the
/// allocator.
pub(crate) struct CountsPool {
    len: usize,
    spare: Vec<Box<[u32]>>,
    /// Arrays handed out and not given back.
    out: usize,
}

impl CountsPool {
    pub(crate) fn new(layout: &Layout) -> Self {
        Self {
            len: layout.len(),
            spare: Vec::new(),
            out: 0,
        }
    }

    /// A zeroed array.
    fn take(&mut self) -> Box<[u32]> {
        self.out += 1;
        self.spare
            .pop()
            .unwrap_or_else(|| vec![0; self.len].into_boxed_slice())
    }

    /// Takes back a zeroed array.
    fn give(&mut self, a: Box<[u32]>) {
        debug_assert!(a.iter().all(|&c| c == 0));
        self.out -= 1;
        if self.spare.len() < self.out.max(2) {
            self.spare.push(a);
        }
    }
}

/// The counts of one operation in one open window: the counts-array indices of the first
/// [`LOG_CAPACITY`] calls in a log, as they came; past that, a dense `u32` array from the
/// pool. Weighted calls and the carries of `u32` counts that wrap go to `extra`.
#[derive(Default)]
pub(crate) struct WindowCounts {
    pub(crate) log: Vec<u32>,
    pub(crate) dense: Option<Box<[u32]>>,
    /// Calls counted in `dense` (weights included): while below 2^32 no count can wrap.
    pub(crate) dense_calls: u64,
    pub(crate) extra: Vec<(u32, u64)>,
}

impl WindowCounts {
    /// Whether nothing is counted.
    pub(crate) fn is_empty(&self) -> bool {
        self.log.is_empty() && self.dense.is_none() && self.extra.is_empty()
    }

    /// Moves the log into a dense array (taken from `pool`) and returns it.
    #[cold]
    pub(crate) fn densify(&mut self, pool: &mut CountsPool) -> &mut [u32] {
        let dense = self.dense.get_or_insert_with(|| pool.take());
        for &i in &self.log {
            bump(dense, &mut self.extra, i as usize, 1);
        }
        self.dense_calls += self.log.len() as u64;
        self.log.clear();
        dense
    }

    /// Counts `n` calls at index `i`.
    pub(crate) fn add(&mut self, i: usize, n: u64, pool: &mut CountsPool) {
        if self.dense.is_none() {
            if n == 1 && self.log.len() < LOG_CAPACITY {
                self.log.push(i as u32);
                return;
            }
            if self.log.len() + self.extra.len() < LOG_CAPACITY {
                self.extra.push((i as u32, n));
                return;
            }
            self.densify(pool);
        }
        let dense = self.dense.as_mut().expect("dense after densify");
        self.dense_calls = self.dense_calls.saturating_add(n);
        match u32::try_from(n) {
            Ok(n) => bump(dense, &mut self.extra, i, n),
            Err(_) => self.extra.push((i as u32, n)),
        }
    }

    /// Appends every `(index, count)` to `out` (unsorted; an index may repeat).
    pub(crate) fn pairs_into(&self, out: &mut Vec<(u32, u64)>) {
        out.extend(self.log.iter().map(|&i| (i, 1)));
        out.extend_from_slice(&self.extra);
        if let Some(d) = &self.dense {
            dense_pairs(d, out);
        }
    }

    /// Empties it into a compact histogram (whose buffers come from `buffers`), returning
    /// the dense array, zeroed, to `pool`. `scratch` is working space.
    pub(crate) fn take(
        &mut self,
        layout: Layout,
        buffers: (Vec<u32>, Vec<u64>),
        scratch: &mut Vec<(u32, u64)>,
        pool: &mut CountsPool,
    ) -> CompactHistogram {
        scratch.clear();
        self.pairs_into(scratch);
        if let Some(mut d) = self.dense.take() {
            d.fill(0);
            pool.give(d);
        }
        self.dense_calls = 0;
        self.log.clear();
        self.extra.clear();
        sort_and_sum(scratch);
        CompactHistogram::from_sorted(layout, buffers.0, buffers.1, scratch.iter().copied())
    }
}

/// Adds `n` at `d[i]`; a wrap of the `u32` count carries 2^32 into `extra`.
#[inline(always)]
pub(crate) fn bump(d: &mut [u32], extra: &mut Vec<(u32, u64)>, i: usize, n: u32) {
    let (v, wrapped) = d[i].overflowing_add(n);
    d[i] = v;
    if wrapped {
        carry(extra, i);
    }
}

#[cold]
#[inline(never)]
fn carry(extra: &mut Vec<(u32, u64)>, i: usize) {
    extra.push((i as u32, 1 << 32));
}

/// Appends the non-zero counts of a dense array.
fn dense_pairs(d: &[u32], out: &mut Vec<(u32, u64)>) {
    for (k, chunk) in d.chunks(16).enumerate() {
        if chunk.iter().all(|&c| c == 0) {
            continue;
        }
        for (j, &c) in chunk.iter().enumerate() {
            if c != 0 {
                out.push(((k * 16 + j) as u32, u64::from(c)));
            }
        }
    }
}

/// Sorts pairs by index and sums the counts of equal indices (saturating).
pub(crate) fn sort_and_sum(v: &mut Vec<(u32, u64)>) {
    v.sort_unstable_by_key(|p| p.0);
    v.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 = kept.1.saturating_add(next.1);
            true
        } else {
            false
        }
    });
}

/// Dense `u32` counts over the range of indices seen so far: totals since start. A count
/// that passes `u32::MAX` wraps and carries 2^32 into `carries`.
#[derive(Clone, Default)]
pub(crate) struct RangeCounts {
    /// Index of `counts[0]`.
    base: u32,
    counts: Vec<u32>,
    /// Multiples of 2^32 to add to the counts at these indices, sorted by index.
    carries: Vec<(u32, u64)>,
    total: u64,
}

impl RangeCounts {
    /// Adds `n` calls at index `i`, widening the range if needed.
    pub(crate) fn add(&mut self, i: u32, n: u64) {
        if n == 0 {
            return;
        }
        // The range is the bulk of an operation's memory: it grows by what is needed plus an
        // eighth (not the doubling of a `Vec`), so that widening one index at a time stays
        // linear overall.
        let slack = self.counts.len() / 8;
        if self.counts.is_empty() {
            self.base = i;
            self.counts.reserve_exact(1);
            self.counts.push(0);
        } else if i < self.base {
            let grow = (self.base - i) as usize;
            self.counts.reserve_exact(grow + slack);
            self.counts.splice(0..0, core::iter::repeat_n(0, grow));
            self.base = i;
        } else if (i - self.base) as usize >= self.counts.len() {
            let len = (i - self.base) as usize + 1;
            if len > self.counts.capacity() {
                self.counts.reserve_exact(len - self.counts.len() + slack);
            }
            self.counts.resize(len, 0);
        }
        let c = &mut self.counts[(i - self.base) as usize];
        // Low 32 bits into the count, the rest (and a wrap) into the carries.
        let sum = u64::from(*c) + (n & u64::from(u32::MAX));
        *c = sum as u32;
        let high = (n & !u64::from(u32::MAX)) + (sum & !u64::from(u32::MAX));
        if high != 0 {
            match self.carries.binary_search_by_key(&i, |&(k, _)| k) {
                Ok(at) => self.carries[at].1 = self.carries[at].1.saturating_add(high),
                Err(at) => self.carries.insert(at, (i, high)),
            }
        }
        self.total = self.total.saturating_add(n);
    }

    /// Adds every `(index, count)`.
    pub(crate) fn add_pairs(&mut self, pairs: impl Iterator<Item = (usize, u64)>) {
        for (i, c) in pairs {
            self.add(i as u32, c);
        }
    }

    /// Calls counted.
    pub(crate) fn len(&self) -> u64 {
        self.total
    }

    /// `(index, count)` of every non-zero count, ascending.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        let base = self.base as usize;
        let mut carries = self.carries.iter().peekable();
        self.counts.iter().enumerate().filter_map(move |(k, &c)| {
            let i = base + k;
            let high = carries
                .next_if(|&&(at, _)| at as usize == i)
                .map_or(0, |&(_, h)| h);
            let n = u64::from(c).saturating_add(high);
            (n != 0).then_some((i, n))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Histogram<u64> {
        Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
    }

    #[test]
    fn window_counts_move_from_log_to_dense_without_losing_a_call() {
        let t = template();
        let layout = Layout::of(&t);
        let mut pool = CountsPool::new(&layout);
        let mut w = WindowCounts::default();
        let mut h = Histogram::new_from(&t);
        for k in 0..3 * LOG_CAPACITY as u64 {
            let v = 1 + k * 37 % 5_000;
            w.add(layout.index(v), 1, &mut pool);
            h.saturating_record(v);
        }
        w.add(layout.index(7), 5, &mut pool);
        h.saturating_record_n(7, 5);
        assert!(w.dense.is_some());
        let mut scratch = Vec::new();
        let c = w.take(layout, Default::default(), &mut scratch, &mut pool);
        assert_eq!(c, h);
        assert!(w.is_empty());
        assert_eq!(pool.spare.len(), 1);
    }

    #[test]
    fn a_wrapping_u32_count_carries() {
        let t = template();
        let layout = Layout::of(&t);
        let mut pool = CountsPool::new(&layout);
        let mut w = WindowCounts::default();
        w.densify(&mut pool);
        w.add(10, u64::from(u32::MAX), &mut pool);
        w.add(10, 2, &mut pool);
        w.add(11, 1 << 40, &mut pool);
        let c = w.take(layout, Default::default(), &mut Vec::new(), &mut pool);
        let pairs: Vec<_> = c.pairs().collect();
        assert_eq!(pairs, vec![(10, u64::from(u32::MAX) + 2), (11, 1 << 40)]);
        assert_eq!(c.len(), u64::from(u32::MAX) + 2 + (1 << 40));
    }

    #[test]
    fn range_counts_widen_both_ways() {
        let mut r = RangeCounts::default();
        r.add(100, 1);
        r.add(50, 2);
        r.add(200, 3);
        r.add(100, 1);
        let pairs: Vec<_> = r.pairs().collect();
        assert_eq!(pairs, vec![(50, 2), (100, 2), (200, 3)]);
        assert_eq!(r.len(), 7);
        assert_eq!(r.counts.len(), 151);
    }

    #[test]
    fn range_counts_carry_past_u32() {
        let mut r = RangeCounts::default();
        r.add(7, u64::from(u32::MAX));
        r.add(7, 3);
        r.add(9, 5 << 32 | 4);
        r.add(8, 1);
        let pairs: Vec<_> = r.pairs().collect();
        assert_eq!(
            pairs,
            vec![(7, u64::from(u32::MAX) + 3), (8, 1), (9, 5 << 32 | 4)]
        );
        assert_eq!(r.len(), u64::from(u32::MAX) + 3 + 1 + (5 << 32 | 4));
    }
}
