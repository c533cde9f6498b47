//! The robust baseline of an anomaly rule: the median and the median absolute deviation
//! (MAD) of an operation's last windows, kept in a fixed ring.
//!
//! Median and MAD are the robust estimators of location and scale of Hampel (1974); 1.4826 ×
//! MAD estimates the standard deviation of a normal sample (Rousseeuw & Croux, "Alternatives
//! to the Median Absolute Deviation", 1993). Unlike a mean and a standard deviation, or an
//! EWMA, they ignore a minority of outliers: spikes already in the ring (up to half of it) do
//! not widen the band that the next window is compared with. Each statistic is one
//! selection (`select_nth_unstable`) over a copy of the ring, linear in its length.

/// Scales a MAD to estimate the standard deviation of normally distributed values.
pub(crate) const MAD_SCALE: f64 = 1.4826;

/// The last `capacity` values of one signal, oldest overwritten first.
#[derive(Debug)]
pub(crate) struct Baseline {
    /// The ring; `values.len()` grows to the capacity, then stays.
    values: Vec<f64>,
    /// Where the next value goes once the ring is full.
    next: usize,
    capacity: usize,
}

/// Median and MAD of a baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) mad: f64,
}

impl Spread {
    /// How many deviations `value` lies above the median. The deviation is the largest of
    /// [`MAD_SCALE`] × MAD, `floor` and `relative` × |median|; with all three 0, a value
    /// above the median scores +∞. A value at or below the median scores 0 (only rises
    /// count).
    pub(crate) fn score(&self, value: f64, floor: f64, relative: f64) -> f64 {
        let rise = value - self.median;
        if rise.is_nan() || rise <= 0.0 {
            return 0.0;
        }
        let deviation = (MAD_SCALE * self.mad)
            .max(floor)
            .max(relative * self.median.abs());
        if deviation > 0.0 {
            rise / deviation
        } else {
            f64::INFINITY
        }
    }
}

impl Baseline {
    /// An empty baseline of at most `capacity` values (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        debug_assert!(capacity >= 1);
        Self {
            values: Vec::with_capacity(capacity),
            next: 0,
            capacity,
        }
    }

    /// Values held.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// Adds `value`, dropping the oldest when full.
    pub(crate) fn push(&mut self, value: f64) {
        if self.values.len() < self.capacity {
            self.values.push(value);
        } else {
            self.values[self.next] = value;
            self.next = (self.next + 1) % self.capacity;
        }
    }

    /// Median and MAD of the values held (`None` when empty), using `scratch` (reused
    /// across calls so that a window close does not allocate once it has grown).
    pub(crate) fn spread(&self, scratch: &mut Vec<f64>) -> Option<Spread> {
        if self.values.is_empty() {
            return None;
        }
        scratch.clear();
        scratch.extend_from_slice(&self.values);
        let median = median_in_place(scratch);
        for v in scratch.iter_mut() {
            *v = (*v - median).abs();
        }
        let mad = median_in_place(scratch);
        Some(Spread { median, mad })
    }
}

/// The median of a non-empty slice, reordering it: the middle value, or the mean of the two
/// middle values for an even length.
pub(crate) fn median_in_place(v: &mut [f64]) -> f64 {
    debug_assert!(!v.is_empty());
    let n = v.len();
    let (below, &mut upper, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        upper
    } else {
        // The lower middle is the largest of the values before the upper one.
        let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        lower / 2.0 + upper / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_of_small_sets() {
        assert_eq!(median_in_place(&mut [3.0]), 3.0);
        assert_eq!(median_in_place(&mut [5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        let mut b = Baseline::new(5);
        let mut scratch = Vec::new();
        assert_eq!(b.spread(&mut scratch), None);
        for v in [10.0, 12.0, 11.0, 100.0, 9.0] {
            b.push(v);
        }
        // Sorted 9 10 11 12 100: median 11; deviations 2 1 0 1 89: MAD 1.
        assert_eq!(
            b.spread(&mut scratch),
            Some(Spread {
                median: 11.0,
                mad: 1.0
            })
        );
        // The ring drops the oldest (10): 12 11 100 9 50.
        b.push(50.0);
        assert_eq!(b.len(), 5);
        assert_eq!(b.spread(&mut scratch).unwrap().median, 12.0);
    }

    #[test]
    fn scores_use_the_largest_deviation() {
        let s = Spread {
            median: 100.0,
            mad: 10.0,
        };
        assert!((s.score(100.0 + MAD_SCALE * 10.0 * 3.0, 0.0, 0.0) - 3.0).abs() < 1e-12);
        assert_eq!(s.score(150.0, 25.0, 0.0), 2.0); // floor 25 > 14.8
        assert_eq!(s.score(150.0, 0.0, 0.5), 1.0); // 0.5 × 100 = 50
        assert_eq!(s.score(90.0, 0.0, 0.0), 0.0, "falls do not count");
        let flat = Spread {
            median: 7.0,
            mad: 0.0,
        };
        assert_eq!(flat.score(7.0, 0.0, 0.0), 0.0);
        assert_eq!(flat.score(7.5, 0.0, 0.0), f64::INFINITY);
        assert_eq!(flat.score(7.5, 0.25, 0.0), 2.0);
    }
}
