//! Prometheus histogram buckets derived from HdrHistograms.
//!
//! An exposition histogram has a few fixed upper bounds (`le`); the engine keeps, per
//! operation, how many recorded calls fall at or below each bound, updated from each closed
//! window's HdrHistogram. An HdrHistogram bucket goes to the first bound at or above its
//! lowest equivalent value, so a call recorded exactly at a bound counts under it; a bucket
//! straddling a bound (only above 2^(digits·log2 10) ns, where HdrHistogram buckets are wider
//! than 1 ns) counts under it too: the error is within the histogram's precision.

use hdrhistogram::Histogram;

use super::layout::Layout;

/// Adds `hist`'s counts to `counts`, one slot per bound plus one above the last bound
/// (`counts.len() == bounds.len() + 1`; not cumulative).
pub(crate) fn add(bounds: &[u64], hist: &Histogram<u64>, counts: &mut [u64]) {
    debug_assert_eq!(counts.len(), bounds.len() + 1);
    if hist.is_empty() {
        return;
    }
    for v in hist.iter_recorded() {
        let low = hist.lowest_equivalent(v.value_iterated_to());
        let i = bounds.partition_point(|&b| b < low);
        counts[i] += v.count_at_value();
    }
}

/// As [`add`], for `(index, count)` pairs of a counts array laid out as `layout` says.
pub(crate) fn add_pairs(
    bounds: &[u64],
    layout: &Layout,
    pairs: impl Iterator<Item = (usize, u64)>,
    counts: &mut [u64],
) {
    debug_assert_eq!(counts.len(), bounds.len() + 1);
    for (i, c) in pairs {
        let low = layout.value_for(i);
        let slot = bounds.partition_point(|&b| b < low);
        counts[slot] += c;
    }
}

/// Running sums of `counts`: calls at or below each bound, then all calls.
pub(crate) fn cumulative(counts: &[u64]) -> Vec<u64> {
    let mut sum = 0;
    counts
        .iter()
        .map(|c| {
            sum += c;
            sum
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_under_the_first_bound_at_or_above_them() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for v in [1, 999, 1_000, 1_001, 2_000_000, 70_000_000_000] {
            h.saturating_record(v);
        }
        h.record_n(10_000, 5).unwrap();
        let bounds = [1_000, 10_000, 1_000_000];
        let mut counts = vec![0; 4];
        add(&bounds, &h, &mut counts);
        // 1_001 is in a 1 ns-wide bucket: above 1_000.
        assert_eq!(counts, vec![3, 6, 0, 2]);
        assert_eq!(cumulative(&counts), vec![3, 9, 9, 11]);
        assert_eq!(*cumulative(&counts).last().unwrap(), h.len());
    }

    #[test]
    fn a_value_recorded_at_a_wide_bound_counts_under_it() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 2).unwrap();
        h.record(1_000_000).unwrap();
        h.record(1_000_000_000).unwrap();
        let bounds = [1_000_000, 1_000_000_000];
        let mut counts = vec![0; 3];
        add(&bounds, &h, &mut counts);
        assert_eq!(counts, vec![1, 1, 0]);
    }
}
