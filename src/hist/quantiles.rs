//! The percentiles a window reports, read from its HdrHistogram or a compact form of it.

use hdrhistogram::Histogram;

use super::compact::{quantiles_into, CompactHistogram, RangeCounts};
use super::layout::Layout;

/// Something that answers HdrHistogram's `value_at_quantiles` for [`QUANTILES`].
pub(crate) trait Quantiles {
    /// Calls counted.
    fn total(&self) -> u64;
    /// The values at [`QUANTILES`].
    fn at_quantiles(&self) -> [u64; 5];
}

impl Quantiles for Histogram<u64> {
    fn total(&self) -> u64 {
        self.len()
    }
    fn at_quantiles(&self) -> [u64; 5] {
        let mut q = [0; 5];
        for (slot, v) in q.iter_mut().zip(self.value_at_quantiles(QUANTILES)) {
            *slot = v;
        }
        q
    }
}

impl Quantiles for CompactHistogram {
    fn total(&self) -> u64 {
        self.len()
    }
    fn at_quantiles(&self) -> [u64; 5] {
        let mut q = [0; 5];
        quantiles_into(self.layout(), self.pairs(), self.len(), &QUANTILES, &mut q);
        q
    }
}

/// Totals' counts read with their layout.
pub(crate) struct RangeView<'a>(pub(crate) &'a Layout, pub(crate) &'a RangeCounts);

impl Quantiles for RangeView<'_> {
    fn total(&self) -> u64 {
        self.1.len()
    }
    fn at_quantiles(&self) -> [u64; 5] {
        let mut q = [0; 5];
        quantiles_into(self.0, self.1.pairs(), self.1.len(), &QUANTILES, &mut q);
        q
    }
}

/// The quantiles reported in [`OpStats`](crate::OpStats): p50, p90, p95, p99, p99.9;
/// ascending, as hdrhistogram's one-pass lookup needs.
pub const QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

/// The values at [`QUANTILES`] of `histogram`, each clamped to the exact `[min_ns, max_ns]`
/// of the calls it holds (a bucket's highest equivalent value can lie beyond the true
/// extremes). All zero when `count` is zero or there is no histogram, or an empty one.
///
/// A `max_ns` below `min_ns` (statistics put together by hand) is taken as `min_ns`.
pub(crate) fn percentiles<H: Quantiles + ?Sized>(
    histogram: Option<&H>,
    count: u64,
    min_ns: u64,
    max_ns: u64,
) -> [u64; 5] {
    let mut q = [0; 5];
    let Some(h) = histogram.filter(|h| count > 0 && h.total() > 0) else {
        return q;
    };
    let (lo, hi) = (min_ns, max_ns.max(min_ns));
    for (slot, v) in q.iter_mut().zip(h.at_quantiles()) {
        *slot = v.clamp(lo, hi);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for &v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn percentiles_are_clamped_to_the_exact_extremes() {
        let h = hist(&[100_003, 200_007, 300_011]);
        let q = percentiles(Some(&h), 3, 100_003, 300_011);
        assert_eq!(q[0], h.value_at_quantile(0.5));
        // The top bucket's highest equivalent value is above 300_011.
        assert!(h.value_at_quantile(0.999) > 300_011);
        assert_eq!(q[4], 300_011);
        assert!(q.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn nothing_recorded_gives_zeros() {
        let h = hist(&[5]);
        assert_eq!(percentiles::<Histogram<u64>>(None, 3, 1, 9), [0; 5]);
        assert_eq!(percentiles(Some(&hist(&[])), 3, 1, 9), [0; 5]);
        assert_eq!(percentiles(Some(&h), 0, 1, 9), [0; 5]);
    }

    #[test]
    fn a_maximum_below_the_minimum_does_not_panic() {
        let h = hist(&[5, 6]);
        assert_eq!(percentiles(Some(&h), 2, 10, 0), [10; 5]);
    }
}
