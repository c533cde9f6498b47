//! The alert evaluator: one state machine per (rule, operation), stepped once per closed
//! window.
//!
//! ```text
//!            breach                 breach, run = for_windows, cooldown over
//! inactive ─────────▶ pending ──────────────────────────────────────────────▶ firing ─┐
//!    ▲                  │ no breach (no notice)                                 │     │ breach
//!    └──────────────────┘                                                       │ ◀───┘ (no repeat)
//!    ▲                                                                           │ no breach:
//!    └──── cooldown over ◀── cooldown (breaches counted, firing held back) ◀─────┘ resolved notice
//! ```
//!
//! A state exists only while its pair is pending, firing or cooling down, so memory is
//! bounded by the pairs in one of those phases. Anomaly and budget rules also keep a track
//! per (rule, operation): a fixed ring of baseline values (at most 1024 `f64`) or of budget
//! buckets (at most 64); a budget's track is dropped once its period holds no call. Which
//! rules match an operation is computed once per operation id and cached; evaluating a window
//! allocates only when a pair starts a breach or a track, or a notice goes out.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::baseline::Baseline;
use super::budget::{burn, BudgetBurn, BudgetRing};
use super::notice::{Alert, AlertState};
use super::rule::{validate_all, AlertRule, Condition, Signal};
use super::sample::OpSample;
use crate::error::Error;
use crate::limits::MAX_OPERATIONS;
use crate::pattern::Pattern;

/// The window's error rate, or `None` without calls.
fn error_rate<O: OpSample>(op: &O) -> Option<f64> {
    let calls = op.calls();
    (calls > 0).then(|| op.errors() as f64 / calls as f64)
}

/// The window's latency at `quantile`, clamped to the exact bounds; `None` without a timed
/// call.
fn latency<O: OpSample>(op: &O, quantile: f64) -> Option<f64> {
    (op.recorded() > 0).then(|| {
        let (min, max) = (op.min_ns(), op.max_ns());
        let v = op.value_at_quantile(quantile);
        v.clamp(min, max.max(min)) as f64
    })
}

/// The value a stateless condition compares in one window, or `None` when there is none to
/// compare (the anomaly and budget conditions are read by [`Tracks::observe`]).
fn observed<O: OpSample>(condition: &Condition, op: &O) -> Option<f64> {
    match *condition {
        Condition::ErrorRate { .. } => error_rate(op),
        Condition::Percentile { quantile, .. } => latency(op, quantile),
        Condition::SlowCalls { .. } => Some(op.slow() as f64),
        Condition::Anomaly { .. } | Condition::BudgetBurn { .. } => None,
    }
}

/// One rule with the states of its operations.
#[derive(Debug)]
struct Slot {
    info: RuleInfo,
    /// Pending, firing or cooling-down operations, by operation id.
    states: HashMap<u32, OpState>,
    /// Baselines or budget sums of an anomaly or budget rule, by operation id (ordered, so
    /// that the published burns come in id order without a sort).
    tracks: BTreeMap<u32, Track>,
}

/// What an anomaly or budget rule remembers of one operation across windows.
#[derive(Debug)]
struct Track {
    /// The operation's name (an id that now names another operation starts over).
    name: Arc<str>,
    kind: TrackKind,
}

#[derive(Debug)]
enum TrackKind {
    Baseline(Baseline),
    Budget(BudgetRing),
}

/// The window being evaluated, as the tracks need it.
#[derive(Clone, Copy, Debug)]
struct Position {
    /// `start / length`.
    index: u64,
    length_ns: u64,
}

/// One rule, compiled.
#[derive(Debug)]
struct RuleInfo {
    rule: AlertRule,
    name: Arc<str>,
    pattern: Pattern,
    condition: Condition,
    cooldown_ns: u64,
    /// Anomaly rules: the baseline's length, its warm-up and the floors.
    baseline_len: usize,
    warmup: usize,
    floor: f64,
    relative: f64,
}

impl Slot {
    fn new(rule: AlertRule) -> Self {
        Self {
            info: RuleInfo {
                name: Arc::from(rule.name()),
                pattern: rule.compiled_pattern(),
                condition: rule.condition(),
                cooldown_ns: u64::try_from(rule.cooldown_period().as_nanos()).unwrap_or(u64::MAX),
                baseline_len: rule.baseline_len() as usize,
                warmup: rule.warmup_len() as usize,
                floor: rule.deviation_floor(),
                relative: rule.relative_deviation_floor(),
                rule,
            },
            states: HashMap::new(),
            tracks: BTreeMap::new(),
        }
    }
}

impl RuleInfo {
    /// The value of an anomaly or budget condition in this window, updating the operation's
    /// track; `eligible` says whether the window had the rule's `min_calls`.
    fn observe_tracked<O: OpSample>(
        &self,
        tracks: &mut BTreeMap<u32, Track>,
        op: &O,
        eligible: bool,
        at: Position,
        scratch: &mut Vec<f64>,
    ) -> Option<f64> {
        match self.condition {
            Condition::Anomaly { signal, .. } => {
                let value = match signal {
                    Signal::ErrorRate => error_rate(op),
                    Signal::Latency { quantile } => latency(op, quantile),
                }
                .filter(|_| eligible)?;
                let track = track(tracks, op, || {
                    TrackKind::Baseline(Baseline::new(self.baseline_len))
                });
                let TrackKind::Baseline(baseline) = &mut track.kind else {
                    unreachable!("an anomaly rule keeps baselines")
                };
                // Compared with the windows before it, then part of the baseline.
                let score = if baseline.len() >= self.warmup {
                    baseline
                        .spread(scratch)
                        .map(|s| s.score(value, self.floor, self.relative))
                } else {
                    None
                };
                baseline.push(value);
                score
            }
            Condition::BudgetBurn {
                quantile,
                above_ns,
                period_ns,
                ..
            } => {
                let calls = op.timed_weight();
                if calls == 0 && !tracks.contains_key(&op.op_id()) {
                    return None;
                }
                let over = op.weight_above(above_ns);
                let track = track(tracks, op, || {
                    TrackKind::Budget(BudgetRing::new(period_ns.div_ceil(at.length_ns.max(1))))
                });
                let TrackKind::Budget(ring) = &mut track.kind else {
                    unreachable!("a budget rule keeps budget sums")
                };
                ring.add(at.index, calls, over);
                let (calls, over) = ring.sums(at.index);
                burn(calls, over, quantile)
            }
            _ => None,
        }
    }

    /// The burns of a budget rule's operations at window `index`, in operation id order.
    fn burns(&self, tracks: &BTreeMap<u32, Track>, index: u64, out: &mut Vec<BudgetBurn>) {
        let Condition::BudgetBurn {
            quantile, above_ns, ..
        } = self.condition
        else {
            return;
        };
        for t in tracks.values() {
            let TrackKind::Budget(ring) = &t.kind else {
                continue;
            };
            let (calls, over) = ring.sums(index);
            if let Some(burn) = burn(calls, over, quantile) {
                out.push(BudgetBurn {
                    rule: Arc::clone(&self.name),
                    operation: Arc::clone(&t.name),
                    quantile,
                    limit_ns: above_ns,
                    period_windows: ring.period_windows(),
                    calls,
                    over,
                    burn,
                });
            }
        }
    }
}

/// The track of `op`, made by `make` when there is none or its id now names another
/// operation.
fn track<'a, O: OpSample>(
    tracks: &'a mut BTreeMap<u32, Track>,
    op: &O,
    make: impl FnOnce() -> TrackKind,
) -> &'a mut Track {
    let name = op.op_name();
    match tracks.entry(op.op_id()) {
        Entry::Occupied(e) => {
            let t = e.into_mut();
            if !Arc::ptr_eq(&t.name, name) && *t.name != **name {
                *t = Track {
                    name: Arc::clone(name),
                    kind: make(),
                };
            }
            t
        }
        Entry::Vacant(e) => e.insert(Track {
            name: Arc::clone(name),
            kind: make(),
        }),
    }
}

impl RuleInfo {
    fn notice(&self, st: &OpState, state: AlertState, w: Window) -> Alert {
        Alert {
            rule: Arc::clone(&self.name),
            operation: Arc::clone(&st.name),
            state,
            condition: self.condition,
            value: st.last_value,
            calls: st.last_calls,
            window_start_unix_ns: w.start,
            window_end_unix_ns: w.end,
            since_unix_ns: st.since_unix_ns,
            windows_breached: st.run,
        }
    }

    /// Steps `st` by one window; pushes a notice if one goes out.
    fn advance(&self, idx: usize, st: &mut OpState, breach: bool, w: Window, out: &mut Notices) {
        if breach {
            if st.run == 0 {
                st.since_unix_ns = w.start;
            }
            st.run = st.run.saturating_add(1);
            if !st.firing && st.run >= self.rule.windows_to_fire() && w.end >= st.hold_until {
                st.firing = true;
                out.push((idx, self.notice(st, AlertState::Firing, w)));
            }
        } else {
            if st.firing {
                st.firing = false;
                // The resolved notice reports the run that just ended.
                out.push((idx, self.notice(st, AlertState::Resolved, w)));
                st.hold_until = w.end.saturating_add(self.cooldown_ns);
            }
            st.run = 0;
        }
    }
}

/// The state of one (rule, operation) pair that is pending, firing or cooling down.
#[derive(Debug)]
struct OpState {
    name: Arc<str>,
    /// Consecutive breaching windows up to the last evaluated one (0: not in a breach).
    run: u32,
    /// Start of the run's first window (meaningful while `run > 0`, and in the resolved
    /// notice that ends a run).
    since_unix_ns: u64,
    /// A firing notice went out and no resolved notice since.
    firing: bool,
    /// A firing notice may go out only in a window ending at or after this (the cooldown
    /// after the last resolved notice; 0 when there is none).
    hold_until: u64,
    /// The evaluation that last saw the operation in a window.
    seen: u64,
    /// The value and calls of the last evaluated window (for notices and [`Evaluator::active`]).
    last_value: Option<f64>,
    last_calls: u64,
}

impl OpState {
    /// Nothing left to remember once the window ending at `end` is evaluated: no run, not
    /// firing, and any cooldown over for every later window.
    fn is_idle(&self, end: u64) -> bool {
        self.run == 0 && !self.firing && self.hold_until <= end
    }
}

/// Bounds of the window being evaluated, in nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    start: u64,
    end: u64,
}

/// Notices with the index of their rule, before they are put in order.
type Notices = Vec<(usize, Alert)>;

/// The rules that match one operation id.
#[derive(Debug)]
struct Matches {
    name: Arc<str>,
    rules: Vec<usize>,
}

/// Evaluates alert rules on closed windows, keeping one state machine per (rule, operation).
///
/// The aggregator owns one, calls [`evaluate_ops`](Self::evaluate_ops) for every closed window in
/// window order, and hands the notices it returns to the alert callbacks (outside any lock
/// the hot path needs).
#[derive(Debug)]
pub(crate) struct Evaluator {
    slots: Vec<Slot>,
    /// Which rules match each operation id, filled on first sight; ids above
    /// [`MAX_OPERATIONS`] are matched each time instead.
    cache: Vec<Option<Matches>>,
    /// Number of windows evaluated; a state's `seen` equal to it means present in the window.
    epoch: u64,
    /// The last window evaluated.
    last: Option<Window>,
    /// Index of the last (real) window evaluated: the budgets' time line.
    index: u64,
    /// Reused by the baselines' median and MAD.
    scratch: Vec<f64>,
}

impl Evaluator {
    /// An evaluator for `rules`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if a rule is invalid ([`AlertRule::validate`]) or two rules
    /// share a name.
    pub(crate) fn new(rules: Vec<AlertRule>) -> Result<Self, Error> {
        validate_all(&rules)?;
        Ok(Self {
            slots: rules.into_iter().map(Slot::new).collect(),
            cache: Vec::new(),
            epoch: 0,
            last: None,
            index: 0,
            scratch: Vec::new(),
        })
    }

    /// Whether there are no rules (the aggregator may skip [`evaluate_ops`](Self::evaluate_ops)).
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Replaces the rules. A rule whose name and definition are both unchanged keeps its
    /// states (pending runs, firing alerts, cooldowns); every other state is dropped. Returns
    /// a resolved notice for each alert that was firing under a dropped rule (with the last
    /// evaluated window's bounds and no value), in rule then operation order.
    ///
    /// # Errors
    /// As [`new`](Self::new); on error nothing changes.
    pub(crate) fn set_rules(&mut self, rules: Vec<AlertRule>) -> Result<Vec<Alert>, Error> {
        validate_all(&rules)?;
        let mut old: Vec<Option<Slot>> = std::mem::take(&mut self.slots)
            .into_iter()
            .map(Some)
            .collect();
        self.slots = rules
            .into_iter()
            .map(|rule| {
                let mut slot = Slot::new(rule);
                let kept = old
                    .iter_mut()
                    .find(|o| o.as_ref().is_some_and(|o| o.info.rule == slot.info.rule))
                    .and_then(Option::take);
                if let Some(kept) = kept {
                    slot.states = kept.states;
                    slot.tracks = kept.tracks;
                }
                slot
            })
            .collect();
        self.cache.clear();
        let mut out = Notices::new();
        if let Some(w) = self.last {
            for (idx, slot) in old.iter().enumerate() {
                let Some(slot) = slot else { continue };
                for st in slot.states.values().filter(|st| st.firing) {
                    let mut a = slot.info.notice(st, AlertState::Resolved, w);
                    a.value = None;
                    a.calls = 0;
                    out.push((idx, a));
                }
            }
        }
        Ok(ordered(out))
    }

    /// Steps every (rule, operation) state by one closed window and returns the notices it
    /// produces, ordered by rule (in rule order) then operation name, so they can be
    /// delivered as one group per window.
    ///
    /// The window starts at `start_unix_ns` (nanoseconds since the Unix epoch), lasts
    /// `length_ns` and holds `ops`, the operations that saw a call (or a drop) in it.
    ///
    /// Call once per closed window, in window order. An operation absent from the window
    /// (no call) counts as not breaching. If windows were skipped since the last call (when
    /// its clock jumps, the aggregator skips the windows in between that saw no event), the
    /// gap counts as one window without calls: it ends every run and resolves what was
    /// firing, with the gap's bounds in the notices.
    pub(crate) fn evaluate_ops<O: OpSample>(
        &mut self,
        start_unix_ns: u64,
        length_ns: u64,
        ops: &[O],
    ) -> Vec<Alert> {
        let window = Window {
            start: start_unix_ns,
            end: start_unix_ns.saturating_add(length_ns),
        };
        let at = Position {
            index: start_unix_ns / length_ns.max(1),
            length_ns,
        };
        let mut out = Notices::new();
        if let Some(last) = self.last {
            if window.start > last.end {
                let gap = Window {
                    start: last.end,
                    end: window.start,
                };
                self.step::<O>(gap, at, &[], &mut out);
            }
        }
        self.index = at.index;
        self.step(window, at, ops, &mut out);
        ordered(out)
    }

    /// The burn of every budget rule on every operation with a recorded call in the rule's
    /// period, as of the last evaluated window: in rule order, then operation id.
    pub(crate) fn budgets(&self) -> Vec<BudgetBurn> {
        let mut out = Vec::new();
        if self.last.is_some() {
            for slot in &self.slots {
                slot.info.burns(&slot.tracks, self.index, &mut out);
            }
        }
        out
    }

    /// The alerts firing now, in rule then operation order, as firing notices carrying the
    /// last evaluated window's bounds and value.
    pub(crate) fn active(&self) -> Vec<Alert> {
        let Some(w) = self.last else {
            return Vec::new();
        };
        let mut out = Notices::new();
        for (idx, slot) in self.slots.iter().enumerate() {
            for st in slot.states.values().filter(|st| st.firing) {
                out.push((idx, slot.info.notice(st, AlertState::Firing, w)));
            }
        }
        ordered(out)
    }

    /// The rules, in order.
    #[cfg(test)]
    pub(crate) fn rules(&self) -> impl Iterator<Item = &AlertRule> + '_ {
        self.slots.iter().map(|s| &s.info.rule)
    }

    /// How many (rule, operation) pairs have a state (pending, firing or cooling down).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.slots.iter().map(|s| s.states.len()).sum()
    }

    /// How many operation ids have cached matches.
    #[cfg(test)]
    pub(super) fn cached(&self) -> usize {
        self.cache.len()
    }

    /// How many (rule, operation) pairs have a baseline or budget track.
    #[cfg(test)]
    pub(crate) fn tracks(&self) -> usize {
        self.slots.iter().map(|s| s.tracks.len()).sum()
    }

    fn step<O: OpSample>(&mut self, w: Window, at: Position, ops: &[O], out: &mut Notices) {
        self.epoch += 1;
        self.last = Some(w);
        let epoch = self.epoch;
        let Self {
            slots,
            cache,
            scratch,
            ..
        } = self;
        let mut visit = |slot: &mut Slot, idx: usize, op: &O| {
            visit(slot, idx, op, Visit { epoch, w, at }, scratch, out)
        };
        for op in ops {
            match cached_matches(cache, slots, op.op_id(), op.op_name()) {
                Some(rules) => {
                    for &idx in rules {
                        visit(&mut slots[idx], idx, op);
                    }
                }
                None => {
                    for (idx, slot) in slots.iter_mut().enumerate() {
                        if slot.info.pattern.matches(op.op_name()) {
                            visit(slot, idx, op);
                        }
                    }
                }
            }
        }
        for (idx, slot) in slots.iter_mut().enumerate() {
            let info = &slot.info;
            if matches!(info.condition, Condition::BudgetBurn { .. }) {
                // A budget whose period holds no call is forgotten.
                slot.tracks.retain(|_, t| match &t.kind {
                    TrackKind::Budget(ring) => !ring.is_stale(at.index),
                    TrackKind::Baseline(_) => true,
                });
            }
            slot.states.retain(|_, st| {
                if st.seen != epoch {
                    // Absent from the window: no call, so no breach.
                    st.last_value = None;
                    st.last_calls = 0;
                    info.advance(idx, st, false, w, out);
                }
                !st.is_idle(w.end)
            });
        }
    }
}

/// Where a window is, for [`visit`].
#[derive(Clone, Copy, Debug)]
struct Visit {
    epoch: u64,
    w: Window,
    at: Position,
}

/// Steps the state of (`slot`, `op`) with the operation's window.
fn visit<O: OpSample>(
    slot: &mut Slot,
    idx: usize,
    op: &O,
    Visit { epoch, w, at }: Visit,
    scratch: &mut Vec<f64>,
    out: &mut Notices,
) {
    let Slot {
        info,
        states,
        tracks,
    } = slot;
    let calls = op.calls();
    let eligible = calls >= info.rule.min_calls_per_window();
    let value = match info.condition {
        Condition::Anomaly { .. } | Condition::BudgetBurn { .. } => {
            info.observe_tracked(tracks, op, eligible, at, scratch)
        }
        ref c => observed(c, op),
    };
    let breach = eligible && value.is_some_and(|v| info.condition.breached(v));
    let st = match states.get_mut(&op.op_id()) {
        Some(st) => st,
        None if breach => states.entry(op.op_id()).or_insert(OpState {
            name: Arc::clone(op.op_name()),
            run: 0,
            since_unix_ns: w.start,
            firing: false,
            hold_until: 0,
            seen: 0,
            last_value: None,
            last_calls: 0,
        }),
        None => return,
    };
    st.seen = epoch;
    st.last_value = value;
    st.last_calls = calls;
    info.advance(idx, st, breach, w, out);
}

/// The cached rule indices matching operation `id` named `name`, computing them on first
/// sight (or when the id now names another operation). `None` for ids too large to cache.
fn cached_matches<'a>(
    cache: &'a mut Vec<Option<Matches>>,
    slots: &[Slot],
    id: u32,
    name: &Arc<str>,
) -> Option<&'a [usize]> {
    let i = id as usize;
    if i >= MAX_OPERATIONS {
        return None;
    }
    if cache.len() <= i {
        cache.resize_with(i + 1, || None);
    }
    let entry = &mut cache[i];
    let fresh = entry
        .as_ref()
        .is_some_and(|m| Arc::ptr_eq(&m.name, name) || *m.name == **name);
    if !fresh {
        *entry = Some(Matches {
            name: Arc::clone(name),
            rules: slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.info.pattern.matches(name))
                .map(|(idx, _)| idx)
                .collect(),
        });
    }
    entry.as_ref().map(|m| m.rules.as_slice())
}

/// Notices in delivery order: by rule index, then operation name; notices of one pair keep
/// their time order.
fn ordered(mut out: Notices) -> Vec<Alert> {
    if out.is_empty() {
        return Vec::new();
    }
    out.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.operation.cmp(&b.1.operation))
    });
    out.into_iter().map(|(_, a)| a).collect()
}
