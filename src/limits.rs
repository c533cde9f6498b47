//! Every bound and default of the engine in one place: what the builder, the configuration
//! sources, the name rules and the alert rules check against.
//!
//! Any module may import this one; it imports nothing from the crate.
//!
//! # Examples
//! ```
//! use ringmeter::limits;
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! assert_eq!(engine.ring_capacity(), limits::DEFAULT_RING_CAPACITY);
//! assert!(limits::DEFAULT_RING_CAPACITY <= limits::MAX_RING_CAPACITY);
//! # Ok::<(), ringmeter::Error>(())
//! ```

use std::time::Duration;

/// Largest accepted ring capacity (events per thread per engine).
pub const MAX_RING_CAPACITY: usize = 1 << 24;

/// Default ring capacity (events per thread per engine): 2^14 events of 16 bytes, 256 KiB
/// per thread that records (resident once the thread has written the ring through; a thread
/// that recorded a few calls holds a few pages of it). Chosen from measurement
/// (`docs/performance.md`, "Sustained throughput and drops"): it holds the burst of a thread
/// paced at 1 M calls/s that owes 10,000 calls after a 10 ms hold-up without any drain,
/// where 8192 does not, and gives a woken aggregator at least 10 ms at that rate.
pub const DEFAULT_RING_CAPACITY: usize = 1 << 14;

/// Largest accepted [`Builder::max_operations`](crate::Builder::max_operations): operation
/// ids, the reserved overflow operation's 0 included, fit the 16 bits an event has for them.
pub const MAX_OPERATIONS: usize = (1 << 16) - 1;

/// Default [`Builder::max_operations`](crate::Builder::max_operations).
pub const DEFAULT_MAX_OPERATIONS: usize = 1024;

/// Default window length.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(1);

/// Shortest accepted window.
pub const MIN_WINDOW: Duration = Duration::from_millis(1);

/// Longest accepted window.
pub const MAX_WINDOW: Duration = Duration::from_secs(86_400);

/// Default number of rises of the resident memory, with no fall in between, that sets the
/// process's growth flag ([`Builder::rss_growth_windows`](crate::Builder::rss_growth_windows)).
pub const DEFAULT_RSS_GROWTH_WINDOWS: u32 = 10;

/// Most windows [`Builder::rss_growth_windows`](crate::Builder::rss_growth_windows) accepts.
pub const MAX_RSS_GROWTH_WINDOWS: u32 = 100_000;

/// Default grace period: how long after its end a window stays open for stragglers.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(100);

/// Default pause between aggregator passes while events arrive.
pub const DEFAULT_DRAIN_INTERVAL: Duration = Duration::from_millis(1);

/// Default longest pause between aggregator passes when idle.
pub const DEFAULT_IDLE_INTERVAL: Duration = Duration::from_millis(5);

/// A thread's ring wakes a sleeping aggregator when it holds `capacity / RING_HIGH_WATER`
/// events (a quarter), and again every quarter it fills while the aggregator stays behind.
/// With the low-water mark, a sleeping aggregator is woken before a ring holds three eighths;
/// the rest is the headroom for its wake-up: 10 ms at 1 M events/s for the default ring.
pub(crate) const RING_HIGH_WATER: usize = 4;

/// The aggregator drains without pausing while any ring holds at least
/// `capacity / RING_LOW_WATER` events (an eighth), and sleeps only when all hold fewer.
/// The two marks must add up to less than the capacity for a sleeping aggregator to be woken
/// before a ring fills.
pub(crate) const RING_LOW_WATER: usize = 8;

/// Default HdrHistogram precision, in significant decimal digits.
pub const DEFAULT_SIGNIFICANT_DIGITS: u8 = 3;

/// Default largest duration the histograms resolve.
pub const DEFAULT_HIGHEST_TRACKABLE: Duration = Duration::from_secs(60);

/// Default slow threshold of an operation without a rule that sets one.
pub const DEFAULT_SLOW_THRESHOLD: Duration = Duration::from_secs(1);

/// Largest accepted [`Sampling::Every`](crate::Sampling::Every) period.
pub const MAX_SAMPLE_EVERY: u32 = 1_000_000;

/// Smallest accepted [`Sampling::Probability`](crate::Sampling::Probability).
pub const MIN_SAMPLE_PROBABILITY: f64 = 1e-6;

/// Most exemplars (slowest calls) an operation keeps per window.
pub const MAX_EXEMPLARS: usize = 64;

/// Longest accepted operation name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Most counter and gauge series one engine holds.
pub const MAX_SERIES: usize = 65_536;

/// Most metric names whose refused registrations an engine counts one by one; refusals of
/// further names are counted together ([`metric::OTHER_REFUSED`](crate::metric::OTHER_REFUSED)).
pub const MAX_REFUSED_NAMES: usize = 256;

/// Default Prometheus histogram bucket upper bounds in nanoseconds: 1 µs to 10 s, 1-2.5-5
/// steps ([`Builder::prometheus_buckets`](crate::Builder::prometheus_buckets)).
pub const DEFAULT_BUCKETS_NS: [u64; 22] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Most Prometheus histogram bucket bounds accepted.
pub const MAX_BUCKETS: usize = 64;

/// Largest counts array (entries) a stored histogram may declare: the engine's largest
/// configuration (5 significant digits, the whole `u64` range) needs about 6.3 million.
pub const MAX_HISTOGRAM_COUNTS: u64 = 8 << 20;

/// Default size of a window log segment: 16 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;

/// Smallest window log segment size accepted.
pub const MIN_SEGMENT_SIZE: u64 = 4096;

/// Largest window log segment size accepted: 1 GiB.
pub const MAX_SEGMENT_SIZE: u64 = 1 << 30;

/// Closed windows kept in memory while the window log is failing.
pub const MAX_PENDING: usize = 256;

/// Wait before the first retry after a window log fault.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Longest wait between retries after window log faults.
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// Windows in an anomaly rule's baseline by default.
pub const DEFAULT_BASELINE_WINDOWS: u32 = 30;

/// Most windows in an anomaly rule's baseline (8 bytes each per rule and operation).
pub const MAX_BASELINE_WINDOWS: u32 = 1024;

/// Windows an anomaly rule's baseline needs before a window can breach, by default.
pub const DEFAULT_WARMUP_WINDOWS: u32 = 10;

/// An anomaly rule's smallest deviation as a fraction of its baseline's median, by default.
pub const DEFAULT_MIN_RELATIVE_DEVIATION: f64 = 0.1;

/// A budget's rolling period in the configuration file when `period_secs` is not given.
pub const DEFAULT_BUDGET_PERIOD: Duration = Duration::from_secs(3600);

/// Most buckets of a budget's rolling period (24 bytes each per rule and operation): a
/// period of more windows sums them in buckets of several windows.
pub const MAX_BUDGET_BUCKETS: u64 = 64;

/// An anomaly rule's `deviations` in the configuration file when not given.
pub const DEFAULT_DEVIATIONS: f64 = 3.0;
