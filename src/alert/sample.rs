//! What the alert evaluator reads of one operation's window, in plain numbers.
//!
//! The evaluator sees windows only through [`OpSample`], so `alert` does not depend on the
//! published report types (which themselves list the firing [`Alert`](super::Alert)s); the
//! aggregator implements the trait for its per-operation window.

use std::sync::Arc;

/// One operation's share of a closed window, as the alert conditions read it: implemented by
/// the aggregator's per-operation window, and by plain values in tests.
pub(crate) trait OpSample {
    /// The operation's id inside its engine.
    fn op_id(&self) -> u32;
    /// The operation's name.
    fn op_name(&self) -> &Arc<str>;
    /// Calls issued in the window: recorded, unsampled and dropped.
    fn calls(&self) -> u64;
    /// Failed calls among [`calls`](Self::calls).
    fn errors(&self) -> u64;
    /// Calls recorded (timed; their durations are in the window's histogram).
    fn recorded(&self) -> u64;
    /// Recorded calls longer than the operation's slow threshold.
    fn slow(&self) -> u64;
    /// Shortest recorded duration in nanoseconds (0 when nothing was recorded).
    fn min_ns(&self) -> u64;
    /// Longest recorded duration in nanoseconds (exact, unlike the histogram).
    fn max_ns(&self) -> u64;
    /// The value at `quantile` of the window's latency histogram in nanoseconds
    /// (HdrHistogram's `value_at_quantile`).
    fn value_at_quantile(&self, quantile: f64) -> u64;
    /// The calls the window's histogram holds: recorded calls, each with its sampling
    /// weight (HdrHistogram's `len`).
    fn timed_weight(&self) -> u64;
    /// Those of [`timed_weight`](Self::timed_weight) whose histogram bucket lies wholly above
    /// `limit_ns` (none when the exact maximum is at or below it).
    fn weight_above(&self, limit_ns: u64) -> u64;
}
