//! Closing windows: opening them as time passes, closing them once due, and keeping the
//! per-operation totals.

use std::sync::Arc;

use super::window::{self, OpAcc, WindowAcc};
use super::Aggregator;
use crate::hist::{buckets, RangeCounts, RangeView};
use crate::hub::Hub;
use crate::log::{Record, SeriesRecord};
use crate::report::{Exemplar, OpStats, OpWindow, TraceContext, WindowReport};

/// Cumulative totals of one operation.
pub(super) struct Total {
    pub(super) acc: OpAcc,
    pub(super) stats: OpStats,
    /// Calls per exposition bucket (see `buckets`), not cumulative; empty until the first
    /// recorded call.
    pub(super) buckets: Vec<u64>,
    /// Durations since start, as counts over the range of indices seen.
    pub(super) hist: RangeCounts,
}

/// The totals entry of `id`, created on first use.
pub(super) fn total_of(totals: &mut Vec<Total>, id: u32) -> &mut Total {
    let i = id as usize;
    if i >= totals.len() {
        totals.resize_with(i + 1, || Total {
            acc: OpAcc::new(),
            stats: OpStats::default(),
            buckets: Vec::new(),
            hist: RangeCounts::default(),
        });
    }
    &mut totals[i]
}

impl Aggregator {
    /// Makes sure the window events of "now" go to exists: the one the clock is in or, when
    /// a final pass already closed that one, the next (so late events and drops have a home
    /// and no window index is ever reported twice).
    pub(super) fn ensure_current(&mut self) {
        let idx = match self.last_closed {
            Some(c) if c >= self.now_index => c + 1,
            _ => self.now_index,
        };
        if let Err(pos) = self.find(idx) {
            self.open_at(pos, idx);
        }
        self.now_pos = self.find(idx).unwrap_or(0);
    }

    /// Deque position of window `index`, or where to insert it. Searched from the back: the
    /// deque holds a handful of windows and recent ones are wanted most.
    pub(super) fn find(&self, index: u64) -> Result<usize, usize> {
        for (pos, w) in self.windows.iter().enumerate().rev() {
            if w.index == index {
                return Ok(pos);
            }
            if w.index < index {
                return Err(pos + 1);
            }
        }
        Err(0)
    }

    /// Inserts an empty window for `index` at position `pos`.
    pub(super) fn open_at(&mut self, pos: usize, index: u64) {
        let mut w = self.spare.pop().unwrap_or_else(WindowAcc::new);
        w.reopen(index, self.window_ns);
        self.windows.insert(pos, w);
        if pos <= self.now_pos && self.windows.len() > 1 {
            self.now_pos += 1;
        }
        self.cur_lo_raw = 0;
        self.cur_hi_raw = 0;
    }

    /// Makes sure `names` covers `id`.
    fn name(&mut self, hub: &Hub, id: u32) -> Arc<str> {
        if id as usize >= self.names.len() {
            hub.copy_names(&mut self.names);
        }
        self.names
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(format!("op{id}")))
    }

    /// Closes the oldest open window: report, totals, delivery.
    pub(super) fn close_front(&mut self, hub: &Hub) {
        if self.windows.is_empty() {
            return;
        }
        let mut w = self.windows.remove(0);
        self.now_pos = self.now_pos.saturating_sub(1);
        self.cur_lo_raw = 0;
        self.cur_hi_raw = 0;
        let mut touched = std::mem::take(&mut w.touched);
        touched.sort_unstable();
        let mut ops = Vec::with_capacity(touched.len());
        for &id in &touched {
            let name = self.name(hub, id);
            let acc = &mut w.ops[id as usize];
            let layout = self.layout;
            let hist = acc.counts.take(
                layout,
                self.pool.buffers(),
                &mut self.scratch,
                &mut self.counts_pool,
            );
            let stats = acc.stats(Some(&hist));
            let rule = self.rule(hub, id);
            let mut slowest: Vec<Exemplar> = acc
                .slowest
                .sorted()
                .into_iter()
                .map(|e| Exemplar {
                    duration_ns: e.ns,
                    end_unix_ns: e.end_unix_ns,
                    thread: e.thread,
                    thread_name: e.thread_name,
                    trace: None,
                })
                .collect();
            slowest.truncate(rule.exemplars);
            if hub.span_ids().is_used() {
                self.attach_span_ids(hub, id, &mut slowest);
            }
            let mut kinds = acc.kinds.clone();
            kinds.sort_unstable();
            let error_kinds = kinds
                .into_iter()
                .map(|(code, n)| {
                    let name = self.cfg.kinds.get(usize::from(code)).cloned();
                    (name.unwrap_or_else(|| Arc::from(format!("kind{code}"))), n)
                })
                .collect();
            let total = total_of(&mut self.totals, id);
            total.acc.add_counts(acc);
            if !hist.is_empty() {
                if total.buckets.is_empty() {
                    total.buckets = vec![0; self.bucket_bounds.len() + 1];
                }
                buckets::add_pairs(
                    &self.bucket_bounds,
                    &layout,
                    hist.pairs(),
                    &mut total.buckets,
                );
                total.hist.add_pairs(hist.pairs());
            }
            total.stats = total.acc.stats(Some(&RangeView(&layout, &total.hist)));
            let sum_ns = acc.calls.sum;
            acc.clear_counts();
            let error_rate_exceeded = stats.error_rate() > rule.error_rate_threshold;
            ops.push(OpWindow {
                id,
                name,
                stats,
                sum_ns,
                histogram: self.pool.lend(hist),
                sampling: rule.sampling,
                enabled: rule.enabled,
                slow_threshold_ns: rule.slow_ns(),
                error_rate_threshold: rule.error_rate_threshold,
                error_rate_exceeded,
                slowest,
                error_kinds,
            });
        }
        touched.clear();
        w.touched = touched;
        if hub.span_ids().is_used() {
            self.forget_span_ids(hub, w.end_ns);
        }
        // Once per window, off the hot path: a few reads of `/proc/self` on Linux.
        let process = self.process.as_mut().map(|p| p.sample(w.end_ns));
        let report = Arc::new(WindowReport {
            index: w.index,
            start_unix_ns: w.start_ns,
            length_ns: self.window_ns,
            ops,
            process,
        });
        if let Some(log) = &mut self.log {
            let (counters, gauges) = hub.read_metrics();
            if !counters.is_empty() || !gauges.is_empty() {
                log.record(&Record::Series(SeriesRecord {
                    unix_ns: w.end_ns,
                    counters,
                    gauges,
                }));
            }
            if let Some(p) = report.process {
                log.record(&Record::Process(p));
            }
            log.window(&report);
        }
        self.last_closed = Some(w.index);
        self.spare.push(w);
        let notices = if self.alerts.is_empty() {
            Vec::new()
        } else {
            self.alerts
                .evaluate_ops(report.start_unix_ns, self.window_ns, &report.ops)
        };
        self.deliver(&report);
        self.notify(&notices);
        self.last_window = Some(report);
        self.windows_closed += 1;
    }

    /// Gives the exemplars of operation `id` the trace and span ids the `tracing` layer left
    /// for them (see [`crate::span_ids`]): the call of the same thread whose clock readings
    /// give the exemplar's duration, converted as its event was.
    fn attach_span_ids(&self, hub: &Hub, id: u32, slowest: &mut [Exemplar]) {
        let ticks = self.ticks;
        hub.span_ids().with(|calls| {
            let Some(list) = calls.get_mut(&id) else {
                return;
            };
            for e in slowest.iter_mut() {
                let found = list.iter().position(|c| {
                    c.thread == e.thread && ticks.nanos(c.start, c.end) == e.duration_ns
                });
                if let Some(i) = found {
                    let c = list.swap_remove(i);
                    e.trace = TraceContext::new(c.trace_id, c.span_id);
                }
            }
        });
    }

    /// Forgets the ids of calls that ended by `end_ns` (their windows are closed).
    fn forget_span_ids(&self, hub: &Hub, end_ns: u64) {
        hub.span_ids().with(|calls| {
            calls.retain(|_, list| {
                list.retain(|c| self.base.unix_ns(&self.clock, c.end) >= end_ns);
                !list.is_empty()
            });
        });
    }

    /// Totals of `id` plus whatever the open windows hold for it: statistics, exact sums and
    /// bucket counts (not cumulative).
    pub(super) fn merged_with_open(&mut self, id: u32) -> (OpStats, window::Calls, Vec<u64>) {
        let total = total_of(&mut self.totals, id);
        let mut acc = OpAcc::new();
        acc.add_counts(&total.acc);
        let mut counts = if total.buckets.is_empty() {
            vec![0; self.bucket_bounds.len() + 1]
        } else {
            total.buckets.clone()
        };
        let mut hist = total.hist.clone();
        let layout = self.layout;
        let scratch = &mut self.scratch;
        for w in &self.windows {
            if let Some(o) = w.ops.get(id as usize) {
                acc.add_counts(o);
                scratch.clear();
                o.counts.pairs_into(scratch);
                let pairs = || scratch.iter().map(|&(i, c)| (i as usize, c));
                hist.add_pairs(pairs());
                buckets::add_pairs(&self.bucket_bounds, &layout, pairs(), &mut counts);
            }
        }
        (
            acc.stats(Some(&RangeView(&layout, &hist))),
            acc.calls,
            counts,
        )
    }
}
