//! HdrHistogram's counts-array layout, computed once from a histogram's bounds: which index a
//! value is counted at and which values an index stands for.
//!
//! The formulas are HdrHistogram's own (`index_for`, `value_for`, `lowest_equivalent`,
//! `highest_equivalent` in the Rust crate, `countsArrayIndex` in Java), so an index here is
//! an index into `hdrhistogram::Histogram::counts` of the same bounds and the counts convert
//! both ways without arithmetic.

use core::num::NonZeroU64;

use hdrhistogram::Histogram;

/// The counts-array layout of an HdrHistogram with given bounds and precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    low: u64,
    high: u64,
    digits: u8,
    unit_magnitude: u32,
    sub_bucket_half_count_magnitude: u32,
    sub_bucket_half_count: u32,
    sub_bucket_mask: u64,
    leading_zero_count_base: u32,
    /// Length of the counts array.
    len: u32,
    /// Index that values past the end of the array are counted at (that of `high`).
    saturated: u32,
}

impl Layout {
    /// The layout of `template` (its bounds and precision; not its counts).
    pub(crate) fn of(template: &Histogram<u64>) -> Self {
        let (low, high, digits) = (template.low(), template.high(), template.sigfig());
        // As `Histogram::new_with_bounds` computes them.
        let largest = 2 * 10_u32.pow(u32::from(digits));
        let unit_magnitude = (low as f64).log2().floor() as u32;
        let sub_bucket_count_magnitude = f64::from(largest).log2().ceil() as u32;
        let sub_bucket_half_count_magnitude = sub_bucket_count_magnitude - 1;
        let sub_bucket_count = 1_u32 << sub_bucket_count_magnitude;
        let mut l = Self {
            low,
            high,
            digits,
            unit_magnitude,
            sub_bucket_half_count_magnitude,
            sub_bucket_half_count: sub_bucket_count / 2,
            sub_bucket_mask: (u64::from(sub_bucket_count) - 1) << unit_magnitude,
            leading_zero_count_base: 64 - unit_magnitude - sub_bucket_count_magnitude,
            len: u32::try_from(template.distinct_values()).unwrap_or(u32::MAX),
            saturated: 0,
        };
        l.saturated = l.raw_index(high).min(l.len as usize - 1) as u32;
        l
    }

    /// Lowest discernible value.
    pub(crate) fn low(&self) -> u64 {
        self.low
    }

    /// Highest trackable value.
    pub(crate) fn high(&self) -> u64 {
        self.high
    }

    /// Significant decimal digits.
    pub(crate) fn digits(&self) -> u8 {
        self.digits
    }

    /// Length of the counts array.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    #[inline(always)]
    fn bucket_for(&self, value: u64) -> u32 {
        self.leading_zero_count_base - (value | self.sub_bucket_mask).leading_zeros()
    }

    /// HdrHistogram's `index_for`, which may lie past the end of the array:
    /// `((bucket + 1) << half_magnitude) + sub_bucket - half_count`, where the first and
    /// last terms cancel to `bucket << half_magnitude`.
    #[inline(always)]
    fn raw_index(&self, value: u64) -> usize {
        let bucket = self.bucket_for(value);
        let sub = (value >> (bucket + self.unit_magnitude)) as usize;
        ((bucket as usize) << self.sub_bucket_half_count_magnitude) + sub
    }

    /// The index `value` is counted at by `Histogram::saturating_record`: its own, or that of
    /// the highest trackable value when its own lies past the end of the array. Always below
    /// [`len`](Self::len).
    #[inline(always)]
    pub(crate) fn index(&self, value: u64) -> usize {
        let i = self.raw_index(value);
        if i < self.len as usize {
            i
        } else {
            self.saturated as usize
        }
    }

    /// The lowest value counted at `index` (HdrHistogram's `value_for`).
    pub(crate) fn value_for(&self, index: usize) -> u64 {
        let mut bucket = (index >> self.sub_bucket_half_count_magnitude) as i64 - 1;
        let mut sub = (index as u64 & (u64::from(self.sub_bucket_half_count) - 1))
            + u64::from(self.sub_bucket_half_count);
        if bucket < 0 {
            sub -= u64::from(self.sub_bucket_half_count);
            bucket = 0;
        }
        sub << (bucket as u32 + self.unit_magnitude)
    }

    /// The lowest value equivalent to `value` at this precision.
    pub(crate) fn lowest_equivalent(&self, value: u64) -> u64 {
        let bucket = self.bucket_for(value);
        let sub = value >> (bucket + self.unit_magnitude);
        sub << (bucket + self.unit_magnitude)
    }

    /// The highest value equivalent to `value` at this precision (capped at `u64::MAX`).
    pub(crate) fn highest_equivalent(&self, value: u64) -> u64 {
        if value == u64::MAX {
            return u64::MAX;
        }
        let range = 1_u64 << (self.unit_magnitude + self.bucket_for(value));
        self.lowest_equivalent(value).saturating_add(range) - 1
    }

    /// The lookup table of [`IndexTable::index`] for this layout.
    pub(crate) fn index_table(&self) -> IndexTable {
        let h = self.sub_bucket_half_count_magnitude;
        let bucket_count = self.len / self.sub_bucket_half_count - 1;
        let mut t = IndexTable {
            shift: [0; 64],
            base: [0; 64],
            len: self.len,
        };
        // `value | sub_bucket_mask` has its highest bit at `h + unit_magnitude` or above.
        for msb in h + self.unit_magnitude..64 {
            let bucket = msb - h - self.unit_magnitude;
            let m = msb as usize;
            if bucket < bucket_count {
                t.shift[m] = (msb - h) as u8;
                t.base[m] = bucket << h;
            } else if msb == 63 {
                // Every value here is at least 2^63: `value >> 63` is 1.
                t.shift[m] = 63;
                t.base[m] = self.saturated - 1;
            } else {
                // Every value here is below 2^63: `value >> 63` is 0.
                t.shift[m] = 63;
                t.base[m] = self.saturated;
            }
        }
        t
    }

    /// An empty `hdrhistogram::Histogram` with these bounds.
    pub(crate) fn histogram(&self) -> Histogram<u64> {
        Histogram::new_with_bounds(self.low, self.high, self.digits)
            .expect("bounds taken from a valid histogram")
    }
}

/// [`Layout::index`] by table lookup, for the drain: a value's bucket follows from the
/// highest set bit of `value | sub_bucket_mask`, so one table entry per bit position gives the
/// shift that yields the sub-bucket and the index of the bucket's start. Buckets past the end
/// of the array map every value to the saturated index (shift 63, which leaves 0, or 1 for
/// values of 2^63 and above, whose entry is one lower).
///
/// Invariant: every index it gives is below `len`, the layout's counts-array length (the
/// highest is `len - 1`, the end of the last bucket, or the saturated index), for any value.
#[derive(Clone, Debug)]
pub(crate) struct IndexTable {
    shift: [u8; 64],
    base: [u32; 64],
    /// Length of the layout's counts array.
    len: u32,
}

impl IndexTable {
    /// The index `value` is counted at (as [`Layout::index`] computes it; the caller passes
    /// `sub_bucket_mask`, which it keeps in a register).
    #[inline(always)]
    pub(crate) fn index(&self, value: u64, mask: NonZeroU64) -> usize {
        let msb = ((mask | value).ilog2() & 63) as usize;
        (self.base[msb] as usize) + (value >> self.shift[msb]) as usize
    }
}

/// A counts array of an [`IndexTable`]'s layout, its length checked once, so that counting a
/// value into it takes no bounds check: the drain's innermost step.
pub(crate) struct DenseCounter<'a> {
    counts: &'a mut [u32],
    table: &'a IndexTable,
    mask: NonZeroU64,
}

impl<'a> DenseCounter<'a> {
    /// Counts into `counts`, which must have the layout's length (as the counts pool's arrays
    /// do).
    ///
    /// # Panics
    /// If `counts` is shorter than the layout's counts array.
    pub(crate) fn new(counts: &'a mut [u32], table: &'a IndexTable, mask: NonZeroU64) -> Self {
        assert!(
            counts.len() >= table.len as usize,
            "a counts array of the layout"
        );
        Self {
            counts,
            table,
            mask,
        }
    }

    /// Adds 1 at the index of `value` (no count may wrap: the caller keeps the array's total
    /// below 2^32).
    #[inline(always)]
    pub(crate) fn add_one(&mut self, value: u64) {
        let i = self.table.index(value, self.mask);
        debug_assert!(i < self.counts.len());
        // SAFETY: `i < table.len` by the table's invariant, and `counts` is at least that
        // long (checked in `new`).
        let c = unsafe { self.counts.get_unchecked_mut(i) };
        *c += 1;
    }
}

impl Layout {
    /// `sub_bucket_mask` (never zero: a sub-bucket count is at least 2), for
    /// [`IndexTable::index`].
    pub(crate) fn mask(&self) -> NonZeroU64 {
        NonZeroU64::new(self.sub_bucket_mask).unwrap_or(NonZeroU64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's invariant, which `DenseCounter` relies on, checked at both ends of every
    /// bit position (the index grows with the value within one), for layouts from 1 to 5
    /// digits and lowest values from 1 to 2^20.
    #[test]
    fn every_index_of_the_table_lies_inside_the_array() {
        for low in [1, 2, 1_000, 1 << 20] {
            for digits in 1..=5 {
                for high in [2 * low, 60_000_000_000, u64::MAX / 2, u64::MAX] {
                    let Ok(t) = Histogram::<u64>::new_with_bounds(low, high, digits) else {
                        continue;
                    };
                    let l = Layout::of(&t);
                    let table = l.index_table();
                    for bit in 0..64 {
                        let (lowest, highest) = (1_u64 << bit, u64::MAX >> (63 - bit));
                        for v in [lowest, highest, 0] {
                            let i = table.index(v, l.mask());
                            assert_eq!(i, l.index(v), "{low} {high} {digits}: {v}");
                            assert!(i < l.len(), "{low} {high} {digits}: {v} at {i}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn indices_and_values_are_hdrhistograms() {
        for (low, high, d) in [
            (1, 60_000_000_000, 3),
            (1, 1_000, 2),
            (1, 1 << 40, 4),
            (1_000, 1 << 40, 1),
        ] {
            let t = Histogram::<u64>::new_with_bounds(low, high, d).unwrap();
            let l = Layout::of(&t);
            assert_eq!(l.len(), t.distinct_values());
            let mut x = 0x9E37_79B9_7F4A_7C15_u64;
            let mut values = vec![0, 1, 2, low, high, high + 1, u64::MAX, 2047, 2048, 4095];
            for _ in 0..2_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                values.push(x >> (x % 64));
            }
            let table = l.index_table();
            let mut h = Histogram::<u64>::new_from(&t);
            for v in values {
                let i = l.index(v);
                assert_eq!(table.index(v, l.mask()), i, "{v}");
                let lowest = l.value_for(i);
                let before = h.count_at(lowest);
                h.saturating_record(v);
                assert_eq!(h.count_at(lowest), before + 1, "{v} at {i}");
                assert_eq!(t.lowest_equivalent(lowest), lowest);
                assert_eq!(l.lowest_equivalent(v), t.lowest_equivalent(v), "{v}");
                assert_eq!(l.highest_equivalent(v), t.highest_equivalent(v), "{v}");
            }
        }
    }
}
