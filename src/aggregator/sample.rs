//! The aggregator's per-operation window as the alert evaluator reads it.

use std::sync::Arc;

use crate::alert::OpSample;
use crate::report::OpWindow;

impl OpSample for OpWindow {
    fn op_id(&self) -> u32 {
        self.id
    }
    fn op_name(&self) -> &Arc<str> {
        &self.name
    }
    fn calls(&self) -> u64 {
        self.stats.calls()
    }
    fn errors(&self) -> u64 {
        self.stats.errors
    }
    fn recorded(&self) -> u64 {
        self.stats.count
    }
    fn slow(&self) -> u64 {
        self.stats.slow
    }
    fn min_ns(&self) -> u64 {
        self.stats.min_ns
    }
    fn max_ns(&self) -> u64 {
        self.stats.max_ns
    }
    fn value_at_quantile(&self, quantile: f64) -> u64 {
        self.histogram.value_at_quantile(quantile)
    }
    fn timed_weight(&self) -> u64 {
        self.histogram.len()
    }
    fn weight_above(&self, limit_ns: u64) -> u64 {
        if self.stats.max_ns <= limit_ns {
            return 0;
        }
        self.histogram
            .iter_recorded()
            .filter(|b| b.lowest() > limit_ns)
            .map(|b| b.count())
            .sum()
    }
}
