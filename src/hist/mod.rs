//! Histogram plumbing shared by the aggregator, the window log and the exports: a leaf
//! module that depends on nothing else in the crate.
//!
//! | module | job |
//! |---|---|
//! | [`buckets`] | Prometheus bucket counts derived from an HdrHistogram |
//! | `pool` | recycling of window histograms ([`PooledHistogram`], [`HistPool`]) |
//! | `quantiles` | the percentiles of window statistics ([`QUANTILES`], [`percentiles`]) |

pub(crate) mod buckets;
mod pool;
mod quantiles;

pub use buckets::{DEFAULT_BUCKETS_NS, MAX_BUCKETS};
pub(crate) use pool::HistPool;
pub use pool::PooledHistogram;
pub(crate) use quantiles::percentiles;
pub use quantiles::QUANTILES;
