//! Ingest: draining every ring into the open windows.
//!
//! Events come in chunks; runs of consecutive calls of one operation and the same flags
//! (timed calls that end in the cached window, or pre-measured durations) take a fast loop
//! that reads each event once, everything else the general path.

use std::num::NonZeroU64;
use std::sync::Arc;

use super::window::{self, RawExemplar, Slowest};
use super::{Aggregator, Drained, Pass};
use crate::clock::{Clock, TimeBase};
use crate::config::EffectiveRule;
use crate::event::Event;
use crate::hist::{bump, DenseCounter, IndexTable, LOG_CAPACITY};
use crate::hub::Hub;
use crate::ring::Consumer;

/// What ends a run, and the slow threshold of its operation.
struct RunLimits {
    /// The run's operation id and flags ([`Event::key`]): every call of a run has the same,
    /// so a run's calls either all failed or none did.
    key: u32,
    /// The cached window's bounds as raw clock readings (timed runs only).
    lo: u64,
    hi: u64,
    ticks: Ticks,
    slow_ns: u64,
}

impl RunLimits {
    /// The duration in nanoseconds of `ev`, a call of the run.
    #[inline(always)]
    fn nanos<const TIMED: bool>(&self, ev: &Event) -> u64 {
        if TIMED {
            self.ticks.plain_nanos(ev.plain_duration_ticks())
        } else {
            ev.nanos_value()
        }
    }

    /// Whether the run's calls failed.
    fn failed(&self) -> bool {
        self.key & ((Event::ERROR | Event::PANIC) << 16) != 0
    }
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

/// Events a run is processed in at a time: the extremes and sums of a block are merged into
/// the window's once, and its sums fit a `u64` when its calls are short ([`SHORT`]).
pub(super) const BLOCK: usize = 256;

/// Durations below this (268 ms) add up over a block without overflowing a `u64`, squares
/// included.
const SHORT: u64 = 1 << 28;
const _: () =
    assert!(BLOCK as u128 * (SHORT as u128 - 1) * (SHORT as u128 - 1) <= u64::MAX as u128);

/// What a block of a run adds up to: `n` calls of weight 1, their exact extremes, and the
/// sums of their durations and squares modulo 2^64 (exact when `max < SHORT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    n: usize,
    min: u64,
    max: u64,
    sum: u64,
    sum_sq: u64,
}

/// Where the block's loop counts each duration.
trait Tally {
    /// Counts the `at`-th call of the block, of `ns` nanoseconds.
    fn count(&mut self, at: usize, ns: u64);
}

/// The window's dense array, when no count can wrap during the block.
impl Tally for DenseCounter<'_> {
    #[inline(always)]
    fn count(&mut self, _: usize, ns: u64) {
        self.add_one(ns);
    }
}

/// The window's dense array when a count may wrap (2^32 calls of one operation in one
/// window): a wrap carries into `extra`.
struct Carrying<'a> {
    dense: &'a mut [u32],
    extra: &'a mut Vec<(u32, u64)>,
    table: &'a IndexTable,
    mask: NonZeroU64,
}

impl Tally for Carrying<'_> {
    #[inline(always)]
    fn count(&mut self, _: usize, ns: u64) {
        bump(self.dense, self.extra, self.table.index(ns, self.mask), 1);
    }
}

/// The indices of the block's calls, in order, for the window's log.
struct Logged<'a> {
    indices: &'a mut [u32; BLOCK],
    table: &'a IndexTable,
    mask: NonZeroU64,
}

impl Tally for Logged<'_> {
    #[inline(always)]
    fn count(&mut self, at: usize, ns: u64) {
        self.indices[at] = self.table.index(ns, self.mask) as u32;
    }
}

/// The drain's loop: takes the calls of the run at the start of `evs` (at most [`BLOCK`]),
/// counts each duration into `tally` and adds up the block's extremes and sums. Each event
/// is read once: one compare of its operation and flags with the run's, for a timed call
/// one of its end with the window's bounds, then the duration.
///
/// Not inlined: on its own, the loop gets the registers to itself.
#[inline(never)]
fn count_block<const TIMED: bool, T: Tally>(
    evs: &[Event],
    lim: &RunLimits,
    tally: &mut T,
) -> Block {
    let (key, lo, span) = (lim.key, lim.lo, lim.hi.wrapping_sub(lim.lo));
    let (mut min, mut max, mut sum, mut sum_sq) = (u64::MAX, 0_u64, 0_u64, 0_u64);
    let evs = &evs[..evs.len().min(BLOCK)];
    let mut n = evs.len();
    // The count is taken from the iterator's position, so the loop keeps no counter of its
    // own (only the log's tally uses it, to place each index).
    let mut it = evs.iter();
    while let Some(ev) = it.next() {
        let at = evs.len() - it.len() - 1;
        // `lo <= end < hi` as one unsigned compare.
        if ev.key() != key || (TIMED && ev.plain_end().wrapping_sub(lo) >= span) {
            n = at;
            break;
        }
        let v = lim.nanos::<TIMED>(ev);
        min = min.min(v);
        max = max.max(v);
        sum = sum.wrapping_add(v);
        sum_sq = sum_sq.wrapping_add(v.wrapping_mul(v));
        tally.count(at, v);
    }
    Block {
        n,
        min,
        max,
        sum,
        sum_sq,
    }
}

/// Adds a block's calls (`evs`, what [`count_block`] added up as `b`) to the window's exact
/// statistics `calls`, and offers the slow ones as exemplars.
///
/// Whatever the block's loop left out is rare and taken here from its extremes: sums that may
/// have overflowed a `u64` (a call of 268 ms or more) are recomputed in `u128`, calls above
/// the slow threshold counted, and calls longer than the exemplars' floor offered, in their
/// order (the floor only rises, so this offers what a check per call would).
#[inline(always)]
fn add_block<const TIMED: bool>(
    b: &Block,
    evs: &[Event],
    lim: &RunLimits,
    calls: &mut window::Calls,
    slowest: &mut Slowest,
    ex: &ExemplarSource<'_>,
) {
    let (sum, sum_sq) = if b.max < SHORT {
        (u128::from(b.sum), u128::from(b.sum_sq))
    } else {
        wide_sums::<TIMED>(evs, lim)
    };
    let slow = if b.max > lim.slow_ns {
        count_slow::<TIMED>(evs, lim)
    } else {
        0
    };
    if b.max > slowest.floor {
        offer_slowest::<TIMED>(evs, lim, slowest, ex);
    }
    let n = b.n as u64;
    let errors = if lim.failed() { n } else { 0 };
    calls.merge_run(n, errors, slow, b.min, b.max, sum, sum_sq);
}

/// The exact sums of durations and squares of a run's calls `evs` (the squares' saturating:
/// two calls of 2^63.5 ns fill a `u128`).
#[cold]
#[inline(never)]
fn wide_sums<const TIMED: bool>(evs: &[Event], lim: &RunLimits) -> (u128, u128) {
    evs.iter().fold((0, 0), |(sum, sum_sq), ev| {
        let v = u128::from(lim.nanos::<TIMED>(ev));
        (sum + v, sum_sq.saturating_add(v * v))
    })
}

/// How many of a run's calls `evs` are slow.
#[cold]
#[inline(never)]
fn count_slow<const TIMED: bool>(evs: &[Event], lim: &RunLimits) -> u64 {
    evs.iter()
        .map(|ev| u64::from(lim.nanos::<TIMED>(ev) > lim.slow_ns))
        .sum()
}

/// Offers every call of `evs` (calls of a run) longer than the floor at its turn.
#[cold]
#[inline(never)]
fn offer_slowest<const TIMED: bool>(
    evs: &[Event],
    lim: &RunLimits,
    slowest: &mut Slowest,
    ex: &ExemplarSource<'_>,
) {
    for ev in evs {
        let v = lim.nanos::<TIMED>(ev);
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

    /// [`nanos`](Self::nanos) of a plain timed call's duration (below 2^32 ticks), without
    /// the check for saturation: `max_ticks` is at least 2^40 (the factor is a `u64`).
    #[inline(always)]
    fn plain_nanos(self, d: u64) -> u64 {
        debug_assert!(d <= u64::from(u32::MAX) && self.max_ticks > u64::from(u32::MAX));
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
    /// Consecutive calls of one operation with the same flags (failed or not, timed or
    /// pre-measured) into the same window form a run: its exact counts stay in registers and
    /// only its durations touch memory (the histogram), which is what makes draining a busy
    /// ring cheap.
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
    /// has room, which may end the run early, and into its dense array after that. The run
    /// goes in blocks of [`BLOCK`] calls ([`count_block`], then [`add_block`]).
    #[inline(always)]
    fn ingest_run<const TIMED: bool>(&mut self, evs: &[Event]) -> usize {
        let op = evs[0].op();
        let lim = RunLimits {
            key: evs[0].key(),
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
        let indices = &mut *self.idx_buf;
        let mut done = 0;
        loop {
            let rest = &evs[done..];
            let b = match counts.dense.as_deref_mut() {
                // No count can wrap: the array holds fewer than 2^32 calls in all.
                Some(dense) if counts.dense_calls + BLOCK as u64 <= u64::from(u32::MAX) => {
                    let mut t = DenseCounter::new(dense, table, mask);
                    let b = count_block::<TIMED, _>(rest, &lim, &mut t);
                    counts.dense_calls += b.n as u64;
                    b
                }
                Some(dense) => {
                    let extra = &mut counts.extra;
                    let mut t = Carrying {
                        dense,
                        extra,
                        table,
                        mask,
                    };
                    let b = count_block::<TIMED, _>(rest, &lim, &mut t);
                    counts.dense_calls += b.n as u64;
                    b
                }
                None => {
                    let mut t = Logged {
                        indices: &mut *indices,
                        table,
                        mask,
                    };
                    let b = count_block::<TIMED, _>(rest, &lim, &mut t);
                    counts.log.extend_from_slice(&indices[..b.n]);
                    b
                }
            };
            if b.n == 0 {
                // The previous block ended exactly where the run did.
                return done;
            }
            let calls = &rest[..b.n];
            add_block::<TIMED>(&b, calls, &lim, &mut acc.calls, &mut acc.slowest, &ex);
            done += b.n;
            if b.n < rest.len().min(BLOCK) || done == evs.len() {
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
    use std::time::Duration;

    use hdrhistogram::Histogram;
    use proptest::prelude::*;

    use super::*;
    use crate::hist::Layout;
    use crate::{Clock, Engine};

    /// The block loop's work done the plain way: the length of the run at the start of
    /// `evs` (at most a block) and its calls' durations.
    fn naive_block(evs: &[Event], lim: &RunLimits, timed: bool) -> Vec<u64> {
        let key = evs[0].key();
        evs.iter()
            .take(BLOCK)
            .take_while(|ev| {
                ev.key() == key && (!timed || (lim.lo <= ev.plain_end() && ev.plain_end() < lim.hi))
            })
            .map(|ev| {
                if timed {
                    lim.ticks.nanos(0, ev.plain_duration_ticks())
                } else {
                    ev.nanos_value()
                }
            })
            .collect()
    }

    /// One event of a generated stream: its operation, whether it failed, whether it is
    /// pre-measured, its duration (ticks or ns) and its end.
    fn event() -> impl Strategy<Value = (u32, bool, bool, u64, u64)> {
        let duration = prop_oneof![
            4 => 0_u64..4_096,
            2 => 4_096_u64..1 << 28,
            1 => (1_u64 << 28)..1 << 32,
            1 => any::<u64>(),
        ];
        (
            prop_oneof![8 => Just(3_u32), 1 => Just(4_u32)],
            prop_oneof![8 => Just(false), 1 => Just(true)],
            prop_oneof![8 => Just(false), 1 => Just(true)],
            duration,
            prop_oneof![8 => 1_000_u64..2_000, 1 => 0_u64..3_000],
        )
    }

    fn build(spec: &[(u32, bool, bool, u64, u64)], timed: bool) -> Vec<Event> {
        spec.iter()
            .map(|&(op, failed, other_kind, d, end)| {
                let word = if failed { Event::ERROR } else { 0 };
                if timed != other_kind {
                    Event::timed(op, word, end, d & u64::from(u32::MAX))
                } else {
                    Event::nanos(op, word, d)
                }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The block loop finds where a run ends (operation, flags, the window's bounds, the
        /// block's end), and adds up exactly what the plain recomputation does: extremes,
        /// sums (exact below `SHORT`, recomputed above) and the counts at HdrHistogram's
        /// indices, through each tally.
        #[test]
        fn a_block_adds_up_what_a_naive_recomputation_does(
            spec in prop::collection::vec(event(), 1..700),
            timed in any::<bool>(),
            factor in prop_oneof![Just(1_u64 << 40), (1_u64 << 36)..(1_u64 << 42)],
        ) {
            let evs = build(&spec, timed);
            // The caller starts a run only at an event of the run's kind.
            prop_assume!(evs[0].has_timestamp() == timed);
            let layout = Layout::of(&Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap());
            let (table, mask) = (layout.index_table(), layout.mask());
            let lim = RunLimits {
                key: evs[0].key(),
                lo: 1_000,
                hi: 2_000,
                ticks: Ticks::with_factor(factor),
                slow_ns: 5_000,
            };
            prop_assume!(!timed || (lim.lo..lim.hi).contains(&evs[0].plain_end()));
            let want = naive_block(&evs, &lim, timed);

            let mut indices = [0_u32; BLOCK];
            let mut logged = Logged { indices: &mut indices, table: &table, mask };
            let b = if timed {
                count_block::<true, _>(&evs, &lim, &mut logged)
            } else {
                count_block::<false, _>(&evs, &lim, &mut logged)
            };
            prop_assert_eq!(b.n, want.len());
            let want_idx: Vec<u32> = want.iter().map(|&v| layout.index(v) as u32).collect();
            prop_assert_eq!(&indices[..b.n], &want_idx[..]);
            prop_assert_eq!(b.min, want.iter().copied().min().unwrap_or(u64::MAX));
            prop_assert_eq!(b.max, want.iter().copied().max().unwrap_or(0));
            let sum: u128 = want.iter().map(|&v| u128::from(v)).sum();
            // Squares of durations near `u64::MAX` pass what a `u128` holds: the sum saturates.
            let sum_sq = want
                .iter()
                .fold(0_u128, |a, &v| a.saturating_add(u128::from(v) * u128::from(v)));
            let low_sq = want.iter().fold(0_u64, |a, &v| a.wrapping_add(v.wrapping_mul(v)));
            prop_assert_eq!(b.sum, sum as u64);
            prop_assert_eq!(b.sum_sq, low_sq);
            if b.max < SHORT {
                prop_assert_eq!((u128::from(b.sum), u128::from(b.sum_sq)), (sum, sum_sq));
            }
            let calls = &evs[..b.n];
            let wide = if timed { wide_sums::<true>(calls, &lim) } else { wide_sums::<false>(calls, &lim) };
            prop_assert_eq!(wide, (sum, sum_sq));
            let slow = if timed { count_slow::<true>(calls, &lim) } else { count_slow::<false>(calls, &lim) };
            prop_assert_eq!(slow, want.iter().filter(|&&v| v > lim.slow_ns).count() as u64);

            // The dense array, and the same with a count about to wrap.
            let mut dense = vec![0_u32; layout.len()];
            let mut counter = DenseCounter::new(&mut dense, &table, mask);
            let n = if timed {
                count_block::<true, _>(&evs, &lim, &mut counter).n
            } else {
                count_block::<false, _>(&evs, &lim, &mut counter).n
            };
            prop_assert_eq!(n, want.len());
            let mut naive = vec![0_u32; layout.len()];
            for &i in &want_idx {
                naive[i as usize] += 1;
            }
            prop_assert_eq!(&dense, &naive);
            let mut extra = Vec::new();
            let at = want_idx.first().map_or(0, |&i| i as usize);
            dense.fill(0);
            dense[at] = u32::MAX;
            let mut carrying = Carrying { dense: &mut dense, extra: &mut extra, table: &table, mask };
            if timed {
                count_block::<true, _>(&evs, &lim, &mut carrying);
            } else {
                count_block::<false, _>(&evs, &lim, &mut carrying);
            }
            naive[at] = naive[at].wrapping_add(u32::MAX);
            prop_assert_eq!(&dense, &naive);
            let carried: Vec<(u32, u64)> = if want_idx.is_empty() { vec![] } else { vec![(at as u32, 1 << 32)] };
            prop_assert_eq!(extra, carried);
        }
    }

    /// Exact statistics of the calls of one operation, recomputed.
    struct Naive {
        durations: Vec<u64>,
        errors: u64,
        hist: Histogram<u64>,
    }

    impl Naive {
        fn new() -> Self {
            Self {
                durations: Vec::new(),
                errors: 0,
                hist: Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap(),
            }
        }

        fn add(&mut self, v: u64, failed: bool) {
            self.durations.push(v);
            self.errors += u64::from(failed);
            self.hist.saturating_record(v);
        }
    }

    /// Runs of every length around a block's and the log's, of pre-measured and timed calls,
    /// failed or not, with durations from single nanoseconds to `u64::MAX` (sums past 2^64,
    /// squares past 2^128 in one call's worth of `u64`s): the totals and the window's
    /// histogram are exactly those of the calls.
    #[test]
    fn long_runs_are_exact() {
        let (clock, mock) = Clock::mock();
        let slow_ns = 50_000;
        let engine = Engine::builder()
            .window(Duration::from_secs(3600))
            .slow_threshold(Duration::from_nanos(slow_ns))
            .ring_capacity(1 << 14)
            .clock(clock)
            .start_manual()
            .unwrap();
        let windows = engine.subscribe(4);
        let names = ["ingest.long_a", "ingest.long_b"];
        let ops = names.map(|n| engine.op(n).unwrap());
        let mut naive = [Naive::new(), Naive::new()];
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut queued = 0;
        for (k, len) in [1, 2, 255, 256, 257, 511, 1023, 1024, 1025, 3000, 700, 5000]
            .into_iter()
            .cycle()
            .take(60)
            .enumerate()
        {
            let which = k % 2;
            let op = ops[which];
            let (timed, failed) = ((k / 2) % 2 == 1, (k / 4) % 3 == 1);
            for _ in 0..len {
                let r = next();
                // Mostly short calls; now and then one of 268 ms or more (the block's sums
                // in u128), and for pre-measured calls values up to u64::MAX.
                let v = match r % 64 {
                    0 if !timed => u64::MAX - (r >> 40),
                    1 => (1 << 28) + (r >> 36),
                    2..=5 => slow_ns - 2 + (r >> 62),
                    _ => (r >> 20) % 100_000,
                };
                if timed {
                    let mut t = op.start();
                    t.set_failed(failed);
                    mock.advance_ns(v);
                    drop(t);
                } else if failed {
                    op.record_error_ns(v);
                } else {
                    op.record_ns(v);
                }
                naive[which].add(v, failed);
                queued += 1;
                if queued == 8_192 {
                    engine.flush().unwrap();
                    queued = 0;
                }
            }
        }
        engine.flush().unwrap();
        let snap = engine.snapshot();
        for (name, n) in names.iter().zip(&mut naive) {
            let t = snap.totals.iter().find(|t| &*t.name == *name).unwrap();
            let d = &mut n.durations;
            let count = d.len() as u64;
            let slow = d.iter().filter(|&&v| v > slow_ns).count() as u64;
            let sum: u128 = d.iter().map(|&v| u128::from(v)).sum();
            d.sort_unstable();
            let s = &t.stats;
            assert_eq!(
                (s.count, s.errors, s.slow, s.dropped),
                (count, n.errors, slow, 0)
            );
            assert_eq!((s.min_ns, s.max_ns), (d[0], d[d.len() - 1]), "{name}");
            assert_eq!(t.sum_ns, sum, "{name}");
        }
        engine.shutdown().unwrap();
        let w = windows.try_recv().expect("the window closed at shutdown");
        for (name, n) in names.iter().zip(&naive) {
            let got = &w.op(name).unwrap().histogram;
            assert!(**got == n.hist, "{name}: histogram");
        }
    }

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
