//! Ingest: draining every ring into the open windows.
//!
//! Events come in chunks; runs of consecutive timed calls of one operation that end in the
//! current window (or of pre-measured durations) take a fast loop, everything else the
//! general path.

use std::num::NonZeroU64;
use std::sync::Arc;

use super::window::{self, RawExemplar, Slowest};
use super::{Aggregator, Drained, Pass};
use crate::clock::{Clock, TimeBase};
use crate::config::EffectiveRule;
use crate::event::Event;
use crate::hist::{bump, IndexTable, LOG_CAPACITY};
use crate::hub::Hub;
use crate::ring::Consumer;

/// What ends a run, and the slow threshold of its operation.
struct RunLimits {
    op: u32,
    /// The cached window's bounds as raw clock readings (timed runs only).
    lo: u64,
    hi: u64,
    ticks: Ticks,
    slow_ns: u64,
}

/// What an exemplar needs besides its duration: kept out of the run's loop.
struct ExemplarSource<'a> {
    k: usize,
    base: &'a TimeBase,
    clock: &'a Clock,
    now_ns: u64,
    thread: u64,
    label: &'a Option<Arc<str>>,
}

impl ExemplarSource<'_> {
    #[cold]
    #[inline(never)]
    fn offer<const TIMED: bool>(&self, slowest: &mut Slowest, ns: u64, end: u64) {
        let end_unix_ns = if TIMED {
            self.base.unix_ns(self.clock, end)
        } else {
            self.now_ns
        };
        slowest.offer(
            self.k,
            RawExemplar {
                ns,
                end_unix_ns,
                thread: self.thread,
                thread_name: self.label.clone(),
            },
        );
    }
}

/// Events a run is processed in at a time: their durations fit the aggregator's buffer.
pub(super) const BLOCK: usize = 256;

/// Finds how many events at the start of `evs` (at most [`BLOCK`]) belong to the run and
/// writes their durations to `ns`; returns that number and how many of them failed.
///
/// Not inlined, like the other loops of a run: on its own, each loop gets the registers to
/// itself, where inlined into the drain the compiler spills some of its state.
#[inline(never)]
fn scan<const TIMED: bool>(evs: &[Event], lim: &RunLimits, ns: &mut [u64; BLOCK]) -> (usize, u64) {
    let (op, lo, hi, ticks) = (lim.op, lim.lo, lim.hi, lim.ticks);
    let mut errors = 0_u64;
    let mut n = 0;
    for (ev, slot) in evs.iter().zip(ns.iter_mut()) {
        let part = if TIMED {
            ev.is_plain_timed_of(op) && ev.plain_end() >= lo && ev.plain_end() < hi
        } else {
            ev.is_plain_nanos_of(op)
        };
        if !part {
            break;
        }
        *slot = if TIMED {
            ticks.nanos(0, ev.plain_duration_ticks())
        } else {
            ev.nanos_value()
        };
        errors += u64::from(ev.is_error());
        n += 1;
    }
    (n, errors)
}

/// Adds the exact statistics of a run's calls (durations `ns`, `errors` of them failed) to
/// `calls`, and offers the slow ones as exemplars.
///
/// The loop has no call in it, so its state stays in registers: the exemplars are offered in
/// a pass of their own, taken only when the longest call beats the floor, which offers the
/// same calls in the same order as a check per call would (the floor only rises).
#[inline(never)]
fn add_stats<const TIMED: bool>(
    ns: &[u64],
    evs: &[Event],
    errors: u64,
    slow_ns: u64,
    calls: &mut window::Calls,
    slowest: &mut Slowest,
    ex: &ExemplarSource<'_>,
) {
    // Runs hold calls of weight 1 only (sampled calls that stand for several take
    // `ingest_other`), so the sums need no weight.
    let (mut slow, mut min, mut max) = (0_u64, u64::MAX, 0_u64);
    let (mut sum, mut sum_sq) = (0_u128, 0_u128);
    for &v in ns {
        slow += u64::from(v > slow_ns);
        min = min.min(v);
        max = max.max(v);
        sum += u128::from(v);
        sum_sq += u128::from(v) * u128::from(v);
    }
    if max > slowest.floor {
        offer_slowest::<TIMED>(ns, evs, slowest, ex);
    }
    calls.merge_run(ns.len() as u64, errors, slow, min, max, sum, sum_sq);
}

/// Counts each of `ns` in `dense`, at the index `table` gives (no count may wrap).
#[inline(never)]
fn count_dense(dense: &mut [u32], ns: &[u64], table: &IndexTable, mask: NonZeroU64) {
    for &v in ns {
        dense[table.index(v, mask)] += 1;
    }
}

/// Offers every call longer than the floor at its turn (`ns[i]` is the duration of
/// `evs[i]`).
#[cold]
#[inline(never)]
fn offer_slowest<const TIMED: bool>(
    ns: &[u64],
    evs: &[Event],
    slowest: &mut Slowest,
    ex: &ExemplarSource<'_>,
) {
    for (&v, ev) in ns.iter().zip(evs) {
        if v > slowest.floor {
            // A pre-measured call has no timestamp (it ends "now").
            let end = if TIMED { ev.plain_end() } else { 0 };
            ex.offer::<TIMED>(slowest, v, end);
        }
    }
}

/// Converts tick differences to nanoseconds with one multiply and shift.
///
/// The factor is read off the clock once (`quanta`'s own conversion of 2^40 ticks), so the
/// result differs from `quanta::Clock::delta_as_nanos` by at most 1 ns for durations under
/// 2^40 ticks (minutes) and by a relative 2^-40 beyond.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ticks {
    /// Nanoseconds per 2^40 ticks.
    factor: u64,
    /// The longest difference whose nanoseconds fit a `u64` (longer ones saturate).
    max_ticks: u64,
}

impl Ticks {
    const SHIFT: u32 = 40;

    pub(super) fn new(clock: &Clock) -> Self {
        Self::with_factor(clock.delta_ns(0, 1 << Self::SHIFT))
    }

    fn with_factor(factor: u64) -> Self {
        // `(d * factor) >> 40` fits a u64 exactly when `d * factor < 2^104`.
        let max_ticks =
            u64::try_from(((1_u128 << 104) - 1) / u128::from(factor.max(1))).unwrap_or(u64::MAX);
        Self { factor, max_ticks }
    }

    /// Nanoseconds from `start` to `end` (0 if `end` is not after `start`; `u64::MAX` past
    /// what a `u64` holds).
    #[inline(always)]
    pub(super) fn nanos(self, start: u64, end: u64) -> u64 {
        let d = end.saturating_sub(start);
        if d > self.max_ticks {
            return u64::MAX;
        }
        ((u128::from(d) * u128::from(self.factor)) >> Self::SHIFT) as u64
    }
}

impl Aggregator {
    /// Drains `consumers` (removing the abandoned ones once empty) and collects their drops.
    pub(super) fn drain_rings(
        &mut self,
        hub: &Hub,
        consumers: &mut Vec<Consumer<Event>>,
        mode: Pass,
    ) -> Drained {
        let mut drained = Drained::default();
        let mut i = 0;
        while i < consumers.len() {
            let c = &mut consumers[i];
            // Read before draining: if the producer is gone, the drain and the drop counts
            // below see everything it did.
            let gone = c.is_abandoned();
            self.ring_thread = c.tag();
            self.ring_label.clone_from(&c.label().cloned());
            // A live ring is drained once per pass (what it held when we looked); at the
            // final pass twice more, so a thread still recording cannot keep us here forever.
            // An abandoned ring is drained to the end.
            let mut laps = if mode == Pass::Final { 3 } else { 1 };
            loop {
                let n = c.drain_chunks(usize::MAX, |evs| self.ingest_chunk(hub, evs));
                drained.events += n;
                drained.fullest = drained.fullest.max(n);
                laps -= 1;
                if n == 0 || (!gone && laps == 0) {
                    break;
                }
            }
            c.take_drops(|op, d, e| {
                drained.dropped = true;
                self.add_drops(op, d, e);
            });
            // A ring whose thread is gone may have skipped calls under rules published after
            // this pass started: its last tallies are read with the newest list of operations
            // that skip calls.
            if gone {
                hub.tally_keys(&mut self.tally_keys);
            }
            let keys = std::mem::take(&mut self.tally_keys);
            c.take_tallies(&keys, |op, n| self.add_unsampled(op, n));
            self.tally_keys = keys;
            if gone {
                consumers.swap_remove(i);
            } else {
                i += 1;
            }
        }
        drained
    }

    /// Position of the window for an event ending at raw reading `end`, and whether it is late.
    #[cold]
    fn locate(&mut self, end: u64) -> (usize, bool) {
        let end_ns = self.base.unix_ns(&self.clock, end);
        let idx = end_ns / self.window_ns;
        if self.last_closed.is_some_and(|c| idx <= c) {
            return (0, true);
        }
        // A timestamp ahead of the clock (another core's TSC, a moved mock) is not allowed to
        // open windows far in the future.
        let idx = idx.min(self.now_index + 1);
        let pos = match self.find(idx) {
            Ok(pos) => pos,
            Err(pos) => {
                self.open_at(pos, idx);
                pos
            }
        };
        let (start_ns, end_ns) = (self.windows[pos].start_ns, self.windows[pos].end_ns);
        self.cur = pos;
        self.cur_lo_raw = self.base.raw_at(&self.clock, start_ns);
        self.cur_hi_raw = self.base.raw_at(&self.clock, end_ns);
        (pos, false)
    }

    /// Records a chunk of events drained from one ring.
    ///
    /// Consecutive calls of one operation into the same window form a run: its exact counts
    /// stay in registers and only its durations touch memory (the histogram), which is what
    /// makes draining a busy ring cheap.
    #[inline]
    pub(crate) fn ingest_chunk(&mut self, hub: &Hub, evs: &[Event]) {
        let mut rest = evs;
        while let Some(first) = rest.first() {
            let n = if first.flags() & Event::SLOW != 0 || first.op() as usize >= self.rules.len() {
                // A failure with a kind, the failure of an unsampled call, a sampled call
                // standing for several, or an operation whose rule is not resolved yet.
                self.ingest_other(hub, *first);
                1
            } else if first.flags() & Event::NANOS != 0 {
                self.ingest_run::<false>(rest)
            } else if first.end() >= self.cur_lo_raw && first.end() < self.cur_hi_raw {
                self.ingest_run::<true>(rest)
            } else {
                // Another window than the previous timed event's: find it (and cache its
                // bounds for the events that follow).
                self.ingest_other(hub, *first);
                1
            };
            rest = &rest[n..];
        }
    }

    /// Records the run at the start of `evs` (at least its first event, which the caller has
    /// checked belongs to it) and returns its length. `TIMED`: timed calls ending inside the
    /// cached window; otherwise duration-only calls, which go to the window for "now".
    ///
    /// Durations are counted straight into the window's counts (HdrHistogram's index, no
    /// other bookkeeping: the run keeps the exact extremes and sums): into its log while it
    /// has room, which may end the run early, and into its dense array after that.
    #[inline(always)]
    fn ingest_run<const TIMED: bool>(&mut self, evs: &[Event]) -> usize {
        let op = evs[0].op();
        let lim = RunLimits {
            op,
            lo: self.cur_lo_raw,
            hi: self.cur_hi_raw,
            ticks: self.ticks,
            // The caller checked that the rule of `op` is resolved.
            slow_ns: self.rules[op as usize].slow_ns(),
        };
        let (table, mask) = (&self.index, self.layout.mask());
        let ex = ExemplarSource {
            k: self.rules[op as usize].exemplars,
            base: &self.base,
            clock: &self.clock,
            now_ns: self.now_ns,
            thread: self.ring_thread,
            label: &self.ring_label,
        };
        let pos = if TIMED { self.cur } else { self.now_pos };
        let acc = self.windows[pos].op(op);
        let counts = &mut acc.counts;
        if counts.dense.is_none() && counts.log.len() + counts.extra.len() >= LOG_CAPACITY {
            counts.densify(&mut self.counts_pool);
        }
        let room = if counts.dense.is_some() {
            evs.len()
        } else {
            LOG_CAPACITY - counts.log.len() - counts.extra.len()
        };
        let evs = &evs[..evs.len().min(room)];
        let buf = &mut *self.ns_buf;
        let mut done = 0;
        loop {
            let block = &evs[done..evs.len().min(done + BLOCK)];
            let (n, errors) = scan::<TIMED>(block, &lim, buf);
            if n == 0 {
                // The previous block ended exactly where the run did.
                return done;
            }
            let ns = &buf[..n];
            add_stats::<TIMED>(
                ns,
                block,
                errors,
                lim.slow_ns,
                &mut acc.calls,
                &mut acc.slowest,
                &ex,
            );
            match counts.dense.as_deref_mut() {
                Some(dense) if counts.dense_calls + n as u64 <= u64::from(u32::MAX) => {
                    // No count can wrap: the array holds fewer than 2^32 calls in all.
                    count_dense(dense, ns, table, mask);
                    counts.dense_calls += n as u64;
                }
                Some(dense) => {
                    for &v in ns {
                        bump(dense, &mut counts.extra, table.index(v, mask), 1);
                    }
                    counts.dense_calls += n as u64;
                }
                None => counts
                    .log
                    .extend(ns.iter().map(|&v| table.index(v, mask) as u32)),
            }
            done += n;
            if n < block.len() || done == evs.len() {
                return done;
            }
        }
    }

    /// Records an event outside the fast path: a duration-only event, a timed call in
    /// another window than the previous one (possibly late), a failure with a kind, or the
    /// failure of an unsampled call.
    #[cold]
    fn ingest_other(&mut self, hub: &Hub, ev: Event) {
        if ev.flags() & Event::UNSAMPLED != 0 {
            // The call is already counted as unsampled: only its failure is added.
            let acc = self.windows[self.now_pos].op(ev.op());
            acc.calls.errors += 1;
            acc.count_kind(ev.kind(), 1);
            return;
        }
        let (ns, pos, late, end_unix_ns) = if ev.flags() & Event::NANOS != 0 {
            (ev.nanos_value(), self.now_pos, false, self.now_ns)
        } else if !ev.has_timestamp() {
            // A timed call that did not fit the plain form (a weight, or 2^32 ticks or more):
            // no timestamp, so the window open now, as for `NANOS`.
            let ns = self.ticks.nanos(0, ev.duration_ticks());
            (ns, self.now_pos, false, self.now_ns)
        } else {
            let (pos, late) = self.locate(ev.end());
            let end = self.base.unix_ns(&self.clock, ev.end());
            (self.ticks.nanos(ev.start(), ev.end()), pos, late, end)
        };
        let rule = self.rule(hub, ev.op());
        let slow = ns > rule.slow_ns();
        let acc = self.windows[pos].op(ev.op());
        let layout = self.layout;
        acc.record(
            ns,
            ev.weight(),
            ev.is_error(),
            slow,
            &layout,
            &mut self.counts_pool,
        );
        acc.late += u64::from(late);
        if ev.is_error() {
            acc.count_kind(ev.kind(), 1);
        }
        if ns > acc.slowest.floor {
            acc.slowest.offer(
                rule.exemplars,
                RawExemplar {
                    ns,
                    end_unix_ns,
                    thread: self.ring_thread,
                    thread_name: self.ring_label.clone(),
                },
            );
        }
    }

    /// The rule of operation `id`, resolving (and caching) it and those before it if needed.
    pub(super) fn rule(&mut self, hub: &Hub, id: u32) -> EffectiveRule {
        let i = id as usize;
        if i >= self.rules.len() {
            if i >= self.names.len() {
                hub.copy_names(&mut self.names);
            }
            while self.rules.len() <= i {
                let Some(name) = self.names.get(self.rules.len()) else {
                    // Not a registered operation: the defaults, not cached.
                    return self.cfg.compiled.resolve("");
                };
                let rule = self.cfg.compiled.resolve(name);
                self.rules.push(rule);
            }
        }
        self.rules[i]
    }

    /// Adds calls a ring's thread counted without timing them to the current window.
    pub(super) fn add_unsampled(&mut self, op: usize, n: u64) {
        let Ok(op) = u32::try_from(op) else { return };
        self.windows[self.now_pos].op(op).unsampled += n;
    }

    /// Adds drops reported by a ring (or by the no-ring path) to the current window.
    pub(super) fn add_drops(&mut self, op: usize, dropped: u64, errors: u64) {
        let Ok(op) = u32::try_from(op) else { return };
        let acc = self.windows[self.now_pos].op(op);
        acc.dropped += dropped;
        acc.calls.errors += errors;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    use super::Ticks;
    use crate::Engine;

    #[test]
    fn tick_conversion_saturates_exactly_where_a_u64_ends() {
        for factor in [1, 3 << 38, 1 << 40, (1 << 40) + 1, 5 << 41, u64::MAX] {
            let t = Ticks::with_factor(factor);
            for d in [0, 1, 1 << 20, t.max_ticks.saturating_sub(1), t.max_ticks]
                .into_iter()
                .chain([t.max_ticks.saturating_add(1), u64::MAX])
            {
                let exact = (u128::from(d) * u128::from(factor)) >> 40;
                let want = u64::try_from(exact).unwrap_or(u64::MAX);
                assert_eq!(t.nanos(0, d), want, "factor {factor} d {d}");
            }
        }
    }

    #[test]
    fn guards_dropped_while_panicking_count_as_errors_inside_a_run() {
        let engine = Engine::builder().start_manual().unwrap();
        let op = engine.op("ingest.panics").unwrap();
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        for i in 0..10 {
            drop(op.start());
            if i % 3 == 0 {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    let _t = op.start();
                    panic!("in the timed call");
                }));
                assert!(r.is_err());
            }
            op.record_ns(100 + i);
            op.record_error_ns(200 + i);
        }
        std::panic::set_hook(hook);
        engine.flush().unwrap();
        let snap = engine.snapshot();
        let t = snap.totals("ingest.panics").unwrap();
        assert_eq!((t.count, t.errors), (10 + 4 + 10 + 10, 4 + 10));
    }
}
