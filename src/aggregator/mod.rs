//! The aggregator: drains every ring, sorts events into time windows, keeps per-operation
//! HdrHistograms and statistics, closes windows and publishes snapshots.
//!
//! All of its state lives in one [`Aggregator`] value behind a mutex that only the aggregator
//! thread and explicit [`Engine::flush`](crate::Engine::flush)/[`Engine::shutdown`](crate::Engine::shutdown)
//! calls take; the hot path never touches it. Readers get [`Snapshot`]s through `arc-swap`.
//!
//! Window rules: an event belongs to the window its end timestamp falls in. A window closes
//! once the clock is `grace` past its end; an event for a window that has already closed is
//! put in the oldest open window and counted as `late`. Every window the aggregator's clock
//! passes through is reported, empty or not; when the clock jumps (a stalled aggregator, a
//! mock clock moved by seconds) the windows in between that saw no event are skipped. Events recorded with a duration only
//! ([`Op::record_ns`](crate::Op::record_ns)) have no timestamp and go to the newest open window.

mod buckets;
mod pool;
mod report;
mod sample;
mod window;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use hdrhistogram::Histogram;

pub(crate) use buckets::{add as add_to_buckets, cumulative as cumulative_buckets};
pub use buckets::{DEFAULT_BUCKETS_NS, MAX_BUCKETS};
pub use pool::PooledHistogram;
pub use report::{Exemplar, OpStats, OpTotals, OpWindow, Snapshot, WindowReport};

use crate::clock::{Clock, TimeBase};
use crate::config::{EffectiveRule, Resolved};
use crate::event::Event;
use crate::loom::{AtomicU64, Ordering};
use crate::ring::Consumer;
use pool::HistPool;
use window::{OpAcc, RawExemplar, WindowAcc};

/// A callback run on the aggregator thread for every closed window.
pub(crate) type WindowCallback = Box<dyn FnMut(&Arc<WindowReport>) + Send>;
/// A callback for the alert notices of one window close (or of a rule change).
pub(crate) type AlertCallback = Box<dyn FnMut(&[crate::alert::Alert]) + Send>;

/// Receives every closed window through a bounded channel.
///
/// A subscriber that falls behind misses windows rather than slowing the aggregator; the
/// count of missed windows is in [`Subscription::missed`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let (clock, mock) = ringmeter::Clock::mock();
/// let engine = ringmeter::Engine::builder().clock(clock).start_manual()?;
/// let windows = engine.subscribe(16);
/// let t = engine.op("step")?.start();
/// mock.advance_ns(10);
/// drop(t); // ends at 10 ns: window 0
/// mock.advance(Duration::from_secs(2));
/// engine.flush()?; // window 0 is past its end and grace: closed
/// let w = windows.try_recv().expect("a closed window");
/// assert_eq!((w.index, w.op("step").unwrap().stats.count), (0, 1));
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[derive(Debug)]
pub struct Subscription {
    rx: Receiver<Arc<WindowReport>>,
    missed: Arc<AtomicU64>,
}

impl Subscription {
    /// Waits up to `timeout` for the next closed window.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Arc<WindowReport>> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next closed window if one is waiting.
    pub fn try_recv(&self) -> Option<Arc<WindowReport>> {
        self.rx.try_recv().ok()
    }

    /// The underlying channel, for `select!` and iteration.
    pub fn receiver(&self) -> &Receiver<Arc<WindowReport>> {
        &self.rx
    }

    /// Windows not delivered because the channel was full.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }
}

struct Subscriber {
    tx: Sender<Arc<WindowReport>>,
    missed: Arc<AtomicU64>,
}

/// Settings the aggregator needs, fixed at start.
pub(crate) struct Settings {
    pub(crate) engine_id: u64,
    pub(crate) clock: Clock,
    pub(crate) window: Duration,
    pub(crate) grace: Duration,
    pub(crate) template: Histogram<u64>,
    pub(crate) callbacks: Vec<WindowCallback>,
    /// The window log, if enabled.
    pub(crate) log: Option<crate::log::LogConfig>,
    /// The configuration at start (the one the engine publishes first).
    pub(crate) resolved: Arc<Resolved>,
    /// Upper bounds of the exposition's histogram buckets, ascending, in nanoseconds.
    pub(crate) bucket_bounds: Arc<[u64]>,
    /// Alert rules and their state.
    pub(crate) alerts: crate::alert::Evaluator,
    pub(crate) alert_callbacks: Vec<AlertCallback>,
}

/// What a pass should do besides draining.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Drain, close due windows, publish if one closed.
    Tick,
    /// Drain, close due windows, publish totals that include the open windows.
    Flush,
    /// Drain everything, close every window, publish.
    Final,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

thread_local! {
    /// Id of the engine whose window callbacks run on this thread right now (0: none).
    static IN_CALLBACK: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

/// Marks the current thread as running engine `id`'s callbacks until dropped.
struct CallbackScope(u64);

impl CallbackScope {
    fn enter(id: u64) -> Self {
        Self(IN_CALLBACK.replace(id))
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        IN_CALLBACK.set(self.0);
    }
}

/// Whether the calling thread is inside a window callback of engine `id` (where taking the
/// aggregator's lock again would deadlock).
pub(crate) fn in_callback_of(id: u64) -> bool {
    IN_CALLBACK.get() == id
}

/// Converts tick differences to nanoseconds with one multiply and shift.
///
/// The factor is read off the clock once (`quanta`'s own conversion of 2^40 ticks), so the
/// result differs from `quanta::Clock::delta_as_nanos` by at most 1 ns for durations under
/// 2^40 ticks (minutes) and by a relative 2^-40 beyond.
#[derive(Clone, Copy, Debug)]
struct Ticks {
    /// Nanoseconds per 2^40 ticks.
    factor: u64,
}

impl Ticks {
    const SHIFT: u32 = 40;

    fn new(clock: &Clock) -> Self {
        Self {
            factor: clock.delta_ns(0, 1 << Self::SHIFT),
        }
    }

    /// Nanoseconds from `start` to `end` (0 if `end` is not after `start`).
    #[inline(always)]
    fn nanos(self, start: u64, end: u64) -> u64 {
        let d = end.saturating_sub(start);
        let ns = (u128::from(d) * u128::from(self.factor)) >> Self::SHIFT;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// What a pass drained.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Drained {
    /// Events drained from all rings.
    pub(crate) events: usize,
    /// Most events drained from one ring in one go.
    pub(crate) fullest: usize,
    /// Whether any ring reported drops.
    pub(crate) dropped: bool,
}

/// Cumulative totals of one operation.
struct Total {
    acc: OpAcc,
    stats: OpStats,
    /// Calls per exposition bucket (see `buckets`), not cumulative; empty until the first
    /// recorded call.
    buckets: Vec<u64>,
}

/// The totals entry of `id`, created on first use.
fn total_of(totals: &mut Vec<Total>, id: u32) -> &mut Total {
    let i = id as usize;
    if i >= totals.len() {
        totals.resize_with(i + 1, || Total {
            acc: OpAcc::new(),
            stats: OpStats::default(),
            buckets: Vec::new(),
        });
    }
    &mut totals[i]
}

/// The aggregator's whole state.
pub(crate) struct Aggregator {
    engine_id: u64,
    consumers: Vec<Consumer<Event>>,
    clock: Clock,
    base: TimeBase,
    window_ns: u64,
    grace_ns: u64,
    /// The configuration, reloaded at the start of every pass.
    cfg: Arc<Resolved>,
    /// Per operation id, its rule under `cfg.compiled` (resolved on first use; cleared when
    /// the rules change).
    rules: Vec<EffectiveRule>,
    /// Operations whose tallies of unsampled calls are read, as of the start of the pass.
    tally_keys: Vec<u32>,
    /// Number and name of the thread whose ring is being drained.
    ring_thread: u64,
    ring_label: Option<Arc<str>>,
    /// The clock at the start of the pass, in nanoseconds since the Unix epoch.
    now_ns: u64,
    /// Open windows, ascending by index (a handful), never empty after the start of a pass.
    windows: Vec<WindowAcc>,
    spare: Vec<WindowAcc>,
    /// Window number the clock was in at the start of the current pass.
    now_index: u64,
    /// Highest window index closed so far; events for it or older are late.
    last_closed: Option<u64>,
    /// Position in `windows` of the window the clock was in at the start of this pass.
    now_pos: usize,
    /// Tick-to-nanosecond conversion.
    ticks: Ticks,
    /// Fast path for `ingest`: position in `windows` of the last window hit and its bounds
    /// as raw clock readings (`cur_lo_raw == cur_hi_raw`: nothing cached).
    cur: usize,
    cur_lo_raw: u64,
    cur_hi_raw: u64,
    pool: HistPool,
    template: Histogram<u64>,
    totals: Vec<Total>,
    names: Vec<Arc<str>>,
    subscribers: Vec<Subscriber>,
    callbacks: Vec<WindowCallback>,
    last_window: Option<Arc<WindowReport>>,
    windows_closed: u64,
    sequence: u64,
    /// The window log (see `crate::log`), if enabled.
    log: Option<crate::log::LogSink>,
    /// Upper bounds of the exposition's histogram buckets.
    bucket_bounds: Arc<[u64]>,
    /// Alert rules, evaluated at every window close.
    alerts: crate::alert::Evaluator,
    alert_callbacks: Vec<AlertCallback>,
}

impl Aggregator {
    pub(crate) fn new(settings: Settings) -> Self {
        let base = TimeBase::new(&settings.clock);
        let ticks = Ticks::new(&settings.clock);
        let mut agg = Self {
            engine_id: settings.engine_id,
            consumers: Vec::new(),
            base,
            window_ns: nanos(settings.window).max(1),
            grace_ns: nanos(settings.grace),
            cfg: Arc::clone(&settings.resolved),
            rules: Vec::new(),
            tally_keys: Vec::new(),
            ring_thread: 0,
            ring_label: None,
            now_ns: 0,
            clock: settings.clock,
            windows: Vec::new(),
            spare: Vec::new(),
            now_index: 0,
            last_closed: None,
            now_pos: 0,
            ticks,
            cur: 0,
            cur_lo_raw: 0,
            cur_hi_raw: 0,
            pool: HistPool::new(Histogram::new_from(&settings.template)),
            template: settings.template,
            totals: Vec::new(),
            names: Vec::new(),
            subscribers: Vec::new(),
            callbacks: settings.callbacks,
            last_window: None,
            windows_closed: 0,
            sequence: 0,
            log: None,
            bucket_bounds: settings.bucket_bounds,
            alerts: settings.alerts,
            alert_callbacks: settings.alert_callbacks,
        };
        if let Some(cfg) = settings.log {
            let now = agg.base.now_ns(&agg.clock);
            let detail = format!(
                "window_ns={}\ngrace_ns={}\npid={}\n{}",
                agg.window_ns,
                agg.grace_ns,
                std::process::id(),
                agg.cfg.compiled.describe()
            );
            agg.log = Some(crate::log::LogSink::new(cfg, now, detail));
        }
        // The first window opens at start.
        agg.now_index = agg.base.now_ns(&agg.clock) / agg.window_ns;
        agg.ensure_current();
        agg
    }

    /// Adds a channel subscriber.
    pub(crate) fn subscribe(&mut self, capacity: usize) -> Subscription {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let missed = Arc::new(AtomicU64::new(0));
        self.subscribers.push(Subscriber {
            tx,
            missed: Arc::clone(&missed),
        });
        Subscription { rx, missed }
    }

    /// Adds a callback.
    pub(crate) fn add_callback(&mut self, f: WindowCallback) {
        self.callbacks.push(f);
    }

    /// Number of rings currently attached.
    pub(crate) fn rings(&self) -> usize {
        self.consumers.len()
    }

    /// Nanoseconds from now until the oldest open window is due to close.
    pub(crate) fn until_next_close(&self) -> Duration {
        let now = self.base.now_ns(&self.clock);
        let due = match self.windows.first() {
            Some(w) => w.end_ns.saturating_add(self.grace_ns),
            None => (now / self.window_ns + 1) * self.window_ns + self.grace_ns,
        };
        Duration::from_nanos(due.saturating_sub(now))
    }

    /// One pass: adopt new rings, drain all rings, collect drop counts, close due windows and
    /// publish as `mode` says.
    pub(crate) fn pass(&mut self, shared: &crate::engine::Shared, mode: Pass) -> Drained {
        shared.registry.adopt(&mut self.consumers);
        let cfg = shared.resolved();
        let rules_changed = !Arc::ptr_eq(&cfg.compiled, &self.cfg.compiled);
        self.cfg = cfg;
        if rules_changed {
            self.rules.clear();
            if let Some(log) = &mut self.log {
                let now = self.base.now_ns(&self.clock);
                let detail = self.cfg.compiled.describe();
                log.event(crate::log::EngineEventKind::ConfigChange, now, detail);
            }
        }
        shared.tally_keys(&mut self.tally_keys);
        let now_ns = self.base.now_ns(&self.clock);
        self.now_ns = now_ns;
        self.now_index = now_ns / self.window_ns;
        self.ensure_current();

        let mut consumers = std::mem::take(&mut self.consumers);
        let mut drained = self.drain_rings(shared, &mut consumers, mode);
        if mode == Pass::Final {
            // Rings registered while we drained: at the end nothing may be left behind.
            let mut late = Vec::new();
            shared.registry.adopt(&mut late);
            let more = self.drain_rings(shared, &mut late, mode);
            drained.events += more.events;
            drained.fullest = drained.fullest.max(more.fullest);
            consumers.append(&mut late);
        }
        self.consumers = consumers;
        shared.take_unringed(|op, d, e| {
            drained.dropped = true;
            self.add_drops(op, d, e);
        });

        let mut closed = false;
        while let Some(front) = self.windows.first() {
            let due = front.end_ns.saturating_add(self.grace_ns) <= now_ns;
            if !(due || mode == Pass::Final) {
                break;
            }
            if mode == Pass::Final && front.index > self.now_index && front.touched.is_empty() {
                // An empty window the clock has not reached yet (opened after an earlier final
                // pass as a home for stragglers): nothing to report.
                let w = self.windows.remove(0);
                self.spare.push(w);
                self.cur_lo_raw = 0;
                self.cur_hi_raw = 0;
                continue;
            }
            self.close_front(shared);
            closed = true;
        }
        if mode == Pass::Final {
            if let Some(log) = &mut self.log {
                let now = self.base.now_ns(&self.clock);
                log.event(crate::log::EngineEventKind::Shutdown, now, String::new());
                log.flush();
            }
        }
        let changed = closed || drained.events > 0 || drained.dropped;
        if closed || mode == Pass::Flush || (mode == Pass::Final && (changed || self.sequence == 0))
        {
            let snapshot = self.publish(shared, mode == Pass::Flush);
            shared.snapshot.store(snapshot);
        }
        drained
    }

    /// Drains `consumers` (removing the abandoned ones once empty) and collects their drops.
    fn drain_rings(
        &mut self,
        shared: &crate::engine::Shared,
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
                let n = c.drain_chunks(usize::MAX, |evs| self.ingest_chunk(shared, evs));
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
                shared.tally_keys(&mut self.tally_keys);
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

    /// Makes sure the window events of "now" go to exists: the one the clock is in or, when
    /// a final pass already closed that one, the next (so late events and drops have a home
    /// and no window index is ever reported twice).
    fn ensure_current(&mut self) {
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
    fn find(&self, index: u64) -> Result<usize, usize> {
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
    fn open_at(&mut self, pos: usize, index: u64) {
        let mut w = self.spare.pop().unwrap_or_else(WindowAcc::new);
        w.reopen(index, self.window_ns);
        self.windows.insert(pos, w);
        if pos <= self.now_pos && self.windows.len() > 1 {
            self.now_pos += 1;
        }
        self.cur_lo_raw = 0;
        self.cur_hi_raw = 0;
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
    pub(crate) fn ingest_chunk(&mut self, shared: &crate::engine::Shared, evs: &[Event]) {
        let mut rest = evs;
        while let Some(first) = rest.first() {
            let n = if first.flags & (Event::SPECIAL | Event::WEIGHT_MASK) != 0
                || first.op as usize >= self.rules.len()
            {
                // A failure with a kind, the failure of an unsampled call, a sampled call
                // standing for several, or an operation whose rule is not resolved yet.
                self.ingest_other(shared, *first);
                1
            } else if first.flags & Event::NANOS != 0 {
                self.ingest_run::<false>(rest)
            } else if first.end >= self.cur_lo_raw && first.end < self.cur_hi_raw {
                self.ingest_run::<true>(rest)
            } else {
                // Another window than the previous timed event's: find it (and cache its
                // bounds for the events that follow).
                self.ingest_other(shared, *first);
                1
            };
            rest = &rest[n..];
        }
    }

    /// Records the run at the start of `evs` (at least its first event, which the caller has
    /// checked belongs to it) and returns its length. `TIMED`: timed calls ending inside the
    /// cached window; otherwise duration-only calls, which go to the window for "now".
    #[inline(always)]
    fn ingest_run<const TIMED: bool>(&mut self, evs: &[Event]) -> usize {
        let op = evs[0].op;
        let (lo, hi) = (self.cur_lo_raw, self.cur_hi_raw);
        let ticks = self.ticks;
        // The caller checked that the rule of `op` is resolved.
        let rule = &self.rules[op as usize];
        let (slow_ns, k) = (rule.slow_ns(), rule.exemplars);
        let pos = if TIMED { self.cur } else { self.now_pos };
        let acc = self.windows[pos].op(op);
        let pool = &self.pool;
        let hist = acc.hist.get_or_insert_with(|| pool.take());
        let slowest = &mut acc.slowest;
        let mut run = window::Calls::new();
        for ev in evs {
            let ns = if TIMED {
                if ev.op != op
                    || ev.flags & (Event::NANOS | Event::SPECIAL | Event::WEIGHT_MASK) != 0
                    || ev.end < lo
                    || ev.end >= hi
                {
                    break;
                }
                ticks.nanos(ev.start, ev.end)
            } else {
                if ev.op != op
                    || ev.flags & (Event::NANOS | Event::SPECIAL | Event::WEIGHT_MASK)
                        != Event::NANOS
                {
                    break;
                }
                ev.start
            };
            // Runs hold calls of weight 1 only (sampled calls that stand for several take
            // `ingest_other`), so the sums need no extra multiply here.
            run.record(ns, 1, ev.is_error(), ns > slow_ns);
            // Values above the highest trackable value are counted at that value; `max`
            // stays exact.
            hist.saturating_record(ns);
            if ns > slowest.floor {
                let end_unix_ns = if TIMED {
                    self.base.unix_ns(&self.clock, ev.end)
                } else {
                    self.now_ns
                };
                slowest.offer(
                    k,
                    RawExemplar {
                        ns,
                        end_unix_ns,
                        thread: self.ring_thread,
                        thread_name: self.ring_label.clone(),
                    },
                );
            }
        }
        acc.calls.merge(&run);
        run.count as usize
    }

    /// Records an event outside the fast path: a duration-only event, a timed call in
    /// another window than the previous one (possibly late), a failure with a kind, or the
    /// failure of an unsampled call.
    #[cold]
    fn ingest_other(&mut self, shared: &crate::engine::Shared, ev: Event) {
        if ev.flags & Event::UNSAMPLED != 0 {
            // The call is already counted as unsampled: only its failure is added.
            let acc = self.windows[self.now_pos].op(ev.op);
            acc.calls.errors += 1;
            acc.count_kind(ev.kind(), 1);
            return;
        }
        let (ns, pos, late, end_unix_ns) = if ev.flags & Event::NANOS != 0 {
            (ev.start, self.now_pos, false, self.now_ns)
        } else {
            let (pos, late) = self.locate(ev.end);
            let end = self.base.unix_ns(&self.clock, ev.end);
            (self.ticks.nanos(ev.start, ev.end), pos, late, end)
        };
        let rule = self.rule(shared, ev.op);
        let slow = ns > rule.slow_ns();
        let acc = self.windows[pos].op(ev.op);
        acc.record(ns, ev.weight(), ev.is_error(), slow, &self.pool);
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
    fn rule(&mut self, shared: &crate::engine::Shared, id: u32) -> EffectiveRule {
        let i = id as usize;
        if i >= self.rules.len() {
            if i >= self.names.len() {
                shared.copy_names(&mut self.names);
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
    fn add_unsampled(&mut self, op: usize, n: u64) {
        let Ok(op) = u32::try_from(op) else { return };
        self.windows[self.now_pos].op(op).unsampled += n;
    }

    /// Adds drops reported by a ring (or by the no-ring path) to the current window.
    fn add_drops(&mut self, op: usize, dropped: u64, errors: u64) {
        let Ok(op) = u32::try_from(op) else { return };
        let acc = self.windows[self.now_pos].op(op);
        acc.dropped += dropped;
        acc.calls.errors += errors;
    }

    /// Makes sure `names` covers `id`.
    fn name(&mut self, shared: &crate::engine::Shared, id: u32) -> Arc<str> {
        if id as usize >= self.names.len() {
            shared.copy_names(&mut self.names);
        }
        self.names
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(format!("op{id}")))
    }

    /// Closes the oldest open window: report, totals, delivery.
    fn close_front(&mut self, shared: &crate::engine::Shared) {
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
            let name = self.name(shared, id);
            let acc = &mut w.ops[id as usize];
            let hist = acc.hist.take().unwrap_or_else(|| self.pool.take());
            let stats = acc.stats(Some(&hist));
            let rule = self.rule(shared, id);
            let mut slowest: Vec<Exemplar> = acc
                .slowest
                .sorted()
                .into_iter()
                .map(|e| Exemplar {
                    duration_ns: e.ns,
                    end_unix_ns: e.end_unix_ns,
                    thread: e.thread,
                    thread_name: e.thread_name,
                })
                .collect();
            slowest.truncate(rule.exemplars);
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
                buckets::add(&self.bucket_bounds, &hist, &mut total.buckets);
                let cum = total
                    .acc
                    .hist
                    .get_or_insert_with(|| Histogram::new_from(&self.template));
                // Same bounds on both sides, so this cannot fail.
                let added = cum.add(&hist);
                debug_assert!(added.is_ok());
            }
            total.stats = total.acc.stats(total.acc.hist.as_ref());
            acc.clear_counts();
            let error_rate_exceeded = stats.error_rate() > rule.error_rate_threshold;
            ops.push(OpWindow {
                id,
                name,
                stats,
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
        let report = Arc::new(WindowReport {
            index: w.index,
            start_unix_ns: w.start_ns,
            length: Duration::from_nanos(self.window_ns),
            ops,
        });
        if let Some(log) = &mut self.log {
            let (counters, gauges) = shared.read_metrics();
            if !counters.is_empty() || !gauges.is_empty() {
                log.record(&crate::log::Record::Series(crate::log::SeriesRecord {
                    unix_ns: w.end_ns,
                    counters,
                    gauges,
                }));
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

    /// Replaces the alert rules (already validated); notices of removed firing rules go out.
    pub(crate) fn set_alert_rules(
        &mut self,
        rules: Vec<crate::alert::AlertRule>,
    ) -> Result<(), crate::Error> {
        let notices = self.alerts.set_rules(rules)?;
        self.notify(&notices);
        Ok(())
    }

    /// Adds an alert callback.
    pub(crate) fn add_alert_callback(&mut self, f: AlertCallback) {
        self.alert_callbacks.push(f);
    }

    /// Logs alert notices and hands them, as one group, to the alert callbacks.
    fn notify(&mut self, notices: &[crate::alert::Alert]) {
        if notices.is_empty() {
            return;
        }
        if let Some(log) = &mut self.log {
            for n in notices {
                log.record(&crate::log::Record::Alert(n.clone()));
            }
        }
        let _in_callback = CallbackScope::enter(self.engine_id);
        let mut i = 0;
        while i < self.alert_callbacks.len() {
            let cb = &mut self.alert_callbacks[i];
            if catch_unwind(AssertUnwindSafe(|| cb(notices))).is_err() {
                eprintln!("ringmeter: an alert callback panicked and was removed");
                drop(self.alert_callbacks.swap_remove(i));
            } else {
                i += 1;
            }
        }
    }

    /// Hands a closed window to callbacks and subscribers.
    fn deliver(&mut self, report: &Arc<WindowReport>) {
        let _in_callback = CallbackScope::enter(self.engine_id);
        let mut i = 0;
        while i < self.callbacks.len() {
            let cb = &mut self.callbacks[i];
            if catch_unwind(AssertUnwindSafe(|| cb(report))).is_err() {
                eprintln!("ringmeter: a window callback panicked and was removed");
                drop(self.callbacks.swap_remove(i));
            } else {
                i += 1;
            }
        }
        self.subscribers
            .retain(|s| match s.tx.try_send(Arc::clone(report)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    let n = s.missed.load(Ordering::Relaxed);
                    // Only the aggregator writes this counter.
                    s.missed.store(n + 1, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
    }

    /// Publishes a snapshot. With `include_open`, totals also cover the open windows.
    fn publish(&mut self, shared: &crate::engine::Shared, include_open: bool) -> Arc<Snapshot> {
        self.sequence += 1;
        let mut in_open: Vec<u32> = Vec::new();
        if include_open {
            for w in &self.windows {
                in_open.extend_from_slice(&w.touched);
            }
            in_open.sort_unstable();
            in_open.dedup();
        }
        let mut totals = Vec::new();
        let mut open_iter = in_open.iter().peekable();
        let ids = self
            .totals
            .len()
            .max(in_open.last().map_or(0, |&m| m as usize + 1));
        if ids > self.names.len() {
            shared.copy_names(&mut self.names);
        }
        for id in 0..ids as u32 {
            let has_open = open_iter.next_if(|&&o| o == id).is_some();
            let (stats, calls, counts) = if has_open {
                self.merged_with_open(id)
            } else {
                match self.totals.get(id as usize) {
                    Some(t) if !t.acc.is_empty() => {
                        (t.stats.clone(), t.acc.calls, t.buckets.clone())
                    }
                    _ => continue,
                }
            };
            let buckets = if counts.is_empty() {
                vec![0; self.bucket_bounds.len() + 1]
            } else {
                buckets::cumulative(&counts)
            };
            let name = self
                .names
                .get(id as usize)
                .cloned()
                .unwrap_or_else(|| Arc::from(format!("op{id}")));
            totals.push(OpTotals {
                id,
                name,
                stats,
                sum_ns: calls.sum,
                weight: calls.weight,
                buckets,
            });
        }
        let (counters, gauges) = shared.read_metrics();
        Arc::new(Snapshot {
            last_window: self.last_window.clone(),
            totals,
            windows_closed: self.windows_closed,
            sequence: self.sequence,
            log: self.log.as_ref().map(|l| l.status()),
            bucket_bounds_ns: Arc::clone(&self.bucket_bounds),
            counters,
            gauges,
            alerts: if self.alerts.is_empty() {
                Vec::new()
            } else {
                self.alerts.active()
            },
        })
    }

    /// Totals of `id` plus whatever the open windows hold for it: statistics, exact sums and
    /// bucket counts (not cumulative).
    fn merged_with_open(&mut self, id: u32) -> (OpStats, window::Calls, Vec<u64>) {
        let total = total_of(&mut self.totals, id);
        let mut acc = OpAcc::new();
        acc.add_counts(&total.acc);
        let mut counts = if total.buckets.is_empty() {
            vec![0; self.bucket_bounds.len() + 1]
        } else {
            total.buckets.clone()
        };
        let mut hist = match &total.acc.hist {
            Some(h) => h.clone(),
            None => Histogram::new_from(&self.template),
        };
        for w in &self.windows {
            if let Some(o) = w.ops.get(id as usize) {
                acc.add_counts(o);
                if let Some(h) = &o.hist {
                    let added = hist.add(h);
                    debug_assert!(added.is_ok());
                    buckets::add(&self.bucket_bounds, h, &mut counts);
                }
            }
        }
        (acc.stats(Some(&hist)), acc.calls, counts)
    }
}

impl Subscription {
    /// A subscription that will never receive anything.
    pub(crate) fn dead(rx: Receiver<Arc<WindowReport>>) -> Self {
        Self {
            rx,
            missed: Arc::new(AtomicU64::new(0)),
        }
    }
}
