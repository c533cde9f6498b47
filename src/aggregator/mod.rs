//! The aggregator: drains every ring, sorts events into time windows, keeps per-operation
//! statistics and latency counts (in HdrHistogram's bucket layout, `hist`'s compact forms),
//! closes windows and publishes snapshots.
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

//!
//! Its work is split by stage: [`ingest`] drains the rings into the open windows, [`close`]
//! opens and closes windows and keeps the totals, [`deliver`] hands closed windows to
//! subscribers, callbacks and alert rules and builds the snapshots.

mod close;
mod deliver;
mod ingest;
mod sample;
mod window;

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

pub(crate) use deliver::in_callback_of;
pub use deliver::Subscription;
// The engine's builder names the bucket constants through this module.

use crate::alert::{Alert, Evaluator};
use crate::clock::{Clock, TimeBase};
use crate::config::{EffectiveRule, Resolved};
use crate::event::Event;
use crate::hist::{CountsPool, HistPool, IndexTable, Layout};
use crate::hub::Hub;
use crate::log::{EngineEventKind, LogConfig, LogSink};
use crate::process::ProcessGauges;
use crate::report::{Snapshot, WindowReport};
use crate::ring::Consumer;
use close::Total;
use deliver::Subscriber;
use ingest::Ticks;
use window::WindowAcc;

/// A callback run on the aggregator thread for every closed window.
pub(crate) type WindowCallback = Box<dyn FnMut(&Arc<WindowReport>) + Send>;
/// A callback for the alert notices of one window close (or of a rule change).
pub(crate) type AlertCallback = Box<dyn FnMut(&[Alert]) + Send>;

/// Settings the aggregator needs, fixed at start.
pub(crate) struct Settings {
    pub(crate) engine_id: u64,
    pub(crate) clock: Clock,
    pub(crate) window: Duration,
    pub(crate) grace: Duration,
    pub(crate) template: Histogram<u64>,
    pub(crate) callbacks: Vec<WindowCallback>,
    /// The window log, if enabled.
    pub(crate) log: Option<LogConfig>,
    /// The configuration at start (the one the engine publishes first).
    pub(crate) resolved: Arc<Resolved>,
    /// Upper bounds of the exposition's histogram buckets, ascending, in nanoseconds.
    pub(crate) bucket_bounds: Arc<[u64]>,
    /// Alert rules and their state.
    pub(crate) alerts: Evaluator,
    pub(crate) alert_callbacks: Vec<AlertCallback>,
    /// The process gauges sampled at every window close, if enabled.
    pub(crate) process: Option<ProcessGauges>,
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

/// What a pass did: what it drained, and the snapshot to publish if it made one.
#[derive(Debug)]
pub(crate) struct PassOutcome {
    pub(crate) drained: Drained,
    pub(crate) snapshot: Option<Arc<Snapshot>>,
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
    /// Buffers of published histograms, and the counts-array layout of every histogram.
    pool: HistPool,
    layout: Layout,
    /// `layout`'s index by table lookup, for the drain.
    index: IndexTable,
    /// Dense counts arrays for open windows.
    counts_pool: CountsPool,
    /// Working space for sorting a window's counts at its close.
    scratch: Vec<(u32, u64)>,
    /// Counts-array indices of the block of a run being drained into a window's log.
    idx_buf: Box<[u32; ingest::BLOCK]>,
    totals: Vec<Total>,
    names: Vec<Arc<str>>,
    subscribers: Vec<Subscriber>,
    callbacks: Vec<WindowCallback>,
    last_window: Option<Arc<WindowReport>>,
    windows_closed: u64,
    sequence: u64,
    /// The window log (see `crate::log`), if enabled.
    log: Option<LogSink>,
    /// Upper bounds of the exposition's histogram buckets.
    bucket_bounds: Arc<[u64]>,
    /// Alert rules, evaluated at every window close.
    alerts: Evaluator,
    alert_callbacks: Vec<AlertCallback>,
    /// The process gauges, sampled at every window close (see `crate::process`), if enabled.
    process: Option<ProcessGauges>,
}

impl Aggregator {
    pub(crate) fn new(settings: Settings) -> Self {
        let base = TimeBase::new(&settings.clock);
        let ticks = Ticks::new(&settings.clock);
        let layout = Layout::of(&settings.template);
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
            pool: HistPool::new(),
            layout,
            index: layout.index_table(),
            counts_pool: CountsPool::new(&layout),
            scratch: Vec::new(),
            idx_buf: Box::new([0; ingest::BLOCK]),
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
            process: settings.process,
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
            agg.log = Some(LogSink::new(cfg, now, detail));
        }
        // The first window opens at start.
        agg.now_index = agg.base.now_ns(&agg.clock) / agg.window_ns;
        agg.ensure_current();
        agg
    }

    /// Number of rings currently attached.
    pub(crate) fn rings(&self) -> usize {
        self.consumers.len()
    }

    /// The most events waiting in one ring, after adopting the rings registered since the
    /// last pass: the aggregator thread's last look before it sleeps (each ring's tail is
    /// loaded afresh).
    pub(crate) fn fullest_ring(&mut self, hub: &Hub) -> usize {
        hub.registry.adopt(&mut self.consumers);
        self.consumers.iter().map(Consumer::len).max().unwrap_or(0)
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
    /// Drains every ring, closes the windows that are due (every window for
    /// [`Pass::Final`]) and builds a snapshot when there is something new to publish; the
    /// caller publishes it.
    pub(crate) fn pass(&mut self, hub: &Hub, mode: Pass) -> PassOutcome {
        hub.registry.adopt(&mut self.consumers);
        let cfg = hub.resolved();
        let rules_changed = !Arc::ptr_eq(&cfg.compiled, &self.cfg.compiled);
        self.cfg = cfg;
        if rules_changed {
            self.rules.clear();
            if let Some(log) = &mut self.log {
                let now = self.base.now_ns(&self.clock);
                let detail = self.cfg.compiled.describe();
                log.event(EngineEventKind::ConfigChange, now, detail);
            }
        }
        hub.tally_keys(&mut self.tally_keys);
        let now_ns = self.base.now_ns(&self.clock);
        self.now_ns = now_ns;
        self.now_index = now_ns / self.window_ns;
        self.ensure_current();

        let mut consumers = std::mem::take(&mut self.consumers);
        let mut drained = self.drain_rings(hub, &mut consumers, mode);
        if mode == Pass::Final {
            // Rings registered while we drained: at the end nothing may be left behind.
            let mut late = Vec::new();
            hub.registry.adopt(&mut late);
            let more = self.drain_rings(hub, &mut late, mode);
            drained.events += more.events;
            drained.fullest = drained.fullest.max(more.fullest);
            consumers.append(&mut late);
        }
        self.consumers = consumers;
        hub.take_unringed(|op, d, e| {
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
            self.close_front(hub);
            closed = true;
        }
        if mode == Pass::Final {
            if let Some(log) = &mut self.log {
                let now = self.base.now_ns(&self.clock);
                log.event(EngineEventKind::Shutdown, now, String::new());
                log.flush();
            }
        }
        let changed = closed || drained.events > 0 || drained.dropped;
        if closed || mode == Pass::Flush || (mode == Pass::Final && (changed || self.sequence == 0))
        {
            let snapshot = self.publish(hub, mode == Pass::Flush);
            return PassOutcome {
                drained,
                snapshot: Some(snapshot),
            };
        }
        PassOutcome {
            drained,
            snapshot: None,
        }
    }
}
