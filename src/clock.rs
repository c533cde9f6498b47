//! The clock the hot path reads: raw TSC ticks through `quanta`, or a mock moved by hand.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Source of timestamps for an engine.
///
/// [`Clock::tsc`] reads the CPU's time-stamp counter through [`quanta`] (falling back to the
/// OS monotonic clock where no stable TSC exists); the hot path stores raw ticks and the
/// aggregator converts them to nanoseconds. [`Clock::mock`] gives a clock that only moves when
/// a test moves it; its readings are taken as nanoseconds since the Unix epoch, so window
/// boundaries in tests are exact.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let (clock, mock) = ringmeter::Clock::mock();
/// mock.advance(Duration::from_millis(5));
/// assert_eq!(clock.now_ns(), 5_000_000);
/// ```
#[derive(Clone, Debug)]
pub struct Clock {
    inner: quanta::Clock,
    mock: bool,
    /// Whether `quanta` chose the x86 TSC as its source, so that [`raw`](Self::raw) can read
    /// it with one instruction instead of asking `quanta`, which branches on its clock's kind
    /// at every read. Readings are the same either way: `quanta::Clock::raw` is `_rdtsc()`
    /// for that kind.
    tsc: bool,
}

impl Clock {
    /// The TSC clock (calibrated once per process by `quanta`).
    pub fn tsc() -> Self {
        let inner = quanta::Clock::new();
        Self {
            tsc: reads_tsc(&inner),
            inner,
            mock: false,
        }
    }

    /// A clock at 0 that moves only through the returned [`MockClock`].
    pub fn mock() -> (Self, MockClock) {
        let (inner, mock) = quanta::Clock::mock();
        (
            Self {
                inner,
                mock: true,
                tsc: false,
            },
            MockClock { inner: mock },
        )
    }

    /// Whether this is a mock clock.
    pub fn is_mock(&self) -> bool {
        self.mock
    }

    /// Raw reading: TSC ticks, or nanoseconds for the mock.
    #[inline(always)]
    pub fn raw(&self) -> u64 {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        if self.tsc {
            return rdtsc();
        }
        self.raw_other()
    }

    /// [`raw`](Self::raw) from any other source (the OS clock, the mock, another architecture's
    /// counter): out of line, so that the TSC read inlined into the hot path stays small.
    #[inline(never)]
    fn raw_other(&self) -> u64 {
        self.inner.raw()
    }

    /// Nanoseconds between two raw readings (0 if `end` is not after `start`).
    #[inline(always)]
    pub fn delta_ns(&self, start: u64, end: u64) -> u64 {
        self.inner.delta_as_nanos(start, end)
    }

    /// Current time in nanoseconds on this clock's own scale (see `TimeBase`).
    pub fn now_ns(&self) -> u64 {
        TimeBase::new(self).now_ns(self)
    }
}

/// Whether `clock` reads the x86 TSC: `quanta` does not say which source it chose, but its
/// `Debug` form names it (`Counter`, as opposed to `Monotonic` or `Mock`). The test
/// `raw_reads_quantas_source` checks the answer against `quanta`'s own readings.
fn reads_tsc(clock: &quanta::Clock) -> bool {
    cfg!(all(target_arch = "x86_64", target_feature = "sse2"))
        && format!("{clock:?}").starts_with("Clock { inner: Counter(")
}

/// One read of the time-stamp counter, as `quanta`'s TSC source does it.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` exists on every x86_64 CPU, reads no memory and has no preconditions.
    unsafe { core::arch::x86_64::_rdtsc() }
}

impl Default for Clock {
    fn default() -> Self {
        Self::tsc()
    }
}

/// Handle that moves a [`Clock::mock`] clock.
#[derive(Clone, Debug)]
pub struct MockClock {
    inner: Arc<quanta::Mock>,
}

impl MockClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.inner.increment(by);
    }

    /// Moves the clock forward by `ns` nanoseconds.
    pub fn advance_ns(&self, ns: u64) {
        self.inner.increment(ns);
    }

    /// The current reading in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.inner.value()
    }
}

/// Maps raw readings to nanoseconds since the Unix epoch.
///
/// For the TSC clock the mapping is anchored once, at engine start, to the system time; for the
/// mock clock the reading already is the time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimeBase {
    raw: u64,
    unix_ns: u64,
}

impl TimeBase {
    pub(crate) fn new(clock: &Clock) -> Self {
        let raw = clock.raw();
        let unix_ns = if clock.mock {
            raw
        } else {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        };
        Self { raw, unix_ns }
    }

    /// Nanoseconds since the Unix epoch of a raw reading.
    #[inline(always)]
    pub(crate) fn unix_ns(&self, clock: &Clock, raw: u64) -> u64 {
        if clock.mock {
            raw
        } else {
            self.unix_ns.saturating_add(clock.delta_ns(self.raw, raw))
        }
    }

    /// The smallest raw reading whose [`unix_ns`](Self::unix_ns) is at least `unix_ns`, so that
    /// a window's bounds can be compared with raw readings directly. `unix_ns` is monotonic in
    /// the raw reading, which makes a binary search exact.
    pub(crate) fn raw_at(&self, clock: &Clock, unix_ns: u64) -> u64 {
        if clock.mock {
            return unix_ns;
        }
        if unix_ns <= self.unix_ns {
            return 0;
        }
        let target = unix_ns - self.unix_ns;
        let (mut lo, mut hi) = (1, u64::MAX - self.raw);
        if clock.delta_ns(self.raw, self.raw + hi) < target {
            return u64::MAX;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if clock.delta_ns(self.raw, self.raw + mid) >= target {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.raw + lo
    }

    pub(crate) fn now_ns(&self, clock: &Clock) -> u64 {
        self.unix_ns(clock, clock.raw())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn mock_moves_only_by_hand() {
        let (clock, mock) = Clock::mock();
        assert!(clock.is_mock());
        let a = clock.raw();
        mock.advance_ns(250);
        assert_eq!(clock.delta_ns(a, clock.raw()), 250);
        assert_eq!(clock.delta_ns(clock.raw(), a), 0);
        assert_eq!(mock.now_ns(), 250);
    }

    /// The clock reads the source `quanta` chose: with the TSC, readings interleave with
    /// `quanta`'s own; otherwise it asks `quanta`.
    #[test]
    fn raw_reads_quantas_source() {
        let clock = Clock::tsc();
        let debug = format!("{:?}", clock.inner);
        assert_eq!(clock.tsc, reads_tsc(&clock.inner), "{debug}");
        if cfg!(all(target_arch = "x86_64", target_feature = "sse2")) {
            assert!(
                debug.starts_with("Clock { inner: Counter(")
                    || debug.starts_with("Clock { inner: Monotonic("),
                "quanta's Debug form changed: {debug}"
            );
        }
        for _ in 0..1000 {
            let a = clock.inner.raw();
            let b = clock.raw();
            let c = clock.inner.raw();
            assert!(a <= b && b <= c, "{a} {b} {c} ({debug})");
        }
        let (mock, _) = Clock::mock();
        assert!(!mock.tsc);
    }

    #[test]
    fn raw_at_inverts_unix_ns() {
        let clock = Clock::tsc();
        let base = TimeBase::new(&clock);
        for ahead in [1u64, 999, 1_000_000, 1_000_000_007, 3_600_000_000_000] {
            let t = base.unix_ns + ahead;
            let r = base.raw_at(&clock, t);
            assert!(base.unix_ns(&clock, r) >= t);
            assert!(
                base.unix_ns(&clock, r - 1) < t,
                "not the smallest for {ahead}"
            );
        }
        assert_eq!(base.raw_at(&clock, base.unix_ns), 0);
        let (mock, _) = Clock::mock();
        assert_eq!(TimeBase::new(&mock).raw_at(&mock, 42), 42);
    }

    #[test]
    fn tsc_base_is_near_system_time() {
        let clock = Clock::tsc();
        let base = TimeBase::new(&clock);
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let ours = base.now_ns(&clock);
        assert!(ours.abs_diff(sys) < 1_000_000_000, "{ours} vs {sys}");
    }
}
