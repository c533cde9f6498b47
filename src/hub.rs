//! What the hot path and the aggregator share: one [`Hub`] per engine.
//!
//! The hot path (`op`, `local`) reaches it through the engine's leaked [`EngineKey`] to
//! register a ring, read the sampling words and count calls that found no ring; the
//! aggregator reads it on every pass to adopt new rings, copy operation names, read the rules,
//! the tallies to collect and the counters and gauges. It knows nothing of the aggregator, the
//! published snapshot or the engine handle that owns it: those sit above it, in `engine`,
//! which hands the hub to `Aggregator::pass` as an argument.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use arc_swap::ArcSwap;

use crate::clock::Clock;
use crate::config::table::Table;
use crate::config::Resolved;
use crate::doorbell::Doorbell;
use crate::event::Event;
use crate::limits::RING_HIGH_WATER;
use crate::loom::{self, AtomicBool, AtomicU64, Ordering};
use crate::metric::{self, CounterValue, GaugeValue};
use crate::registry::Registry;
use crate::ring::{self, Producer};
use crate::span_ids::SpanIds;

/// The per-engine part that `Op` handles point to.
///
/// One is leaked per engine (128 bytes) so that `Op` can be a `Copy` handle without a
/// lifetime; the engine's real state behind `hub` is freed when the engine goes away.
///
/// Every timed call reads it (the clock's source), so it is aligned to its own pair of cache
/// lines: leaked among other small allocations it shared a line with state that is written,
/// which cost the hot path over a nanosecond per call.
#[repr(align(128))]
pub(crate) struct EngineKey {
    id: u64,
    clock: Clock,
    hub: Weak<Hub>,
}

impl EngineKey {
    #[inline(always)]
    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The engine's number, unique in the process.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    #[inline(always)]
    pub(crate) fn addr(&'static self) -> usize {
        self as *const Self as usize
    }

    /// The engine's hub, unless the engine is gone.
    pub(crate) fn hub(&self) -> Option<Arc<Hub>> {
        self.hub.upgrade()
    }

    /// Counts an event that could not be pushed into a ring.
    #[cold]
    pub(crate) fn drop_without_ring(&self, ev: &Event) {
        if let Some(hub) = self.hub() {
            // An unsampled call's failure note only carries an error: its call is counted.
            let call = ev.flags() & Event::UNSAMPLED == 0;
            hub.count_unringed(ev.op() as usize, call, ev.is_error());
        }
    }
}

/// Operation names of one engine. Id 0 is the reserved overflow operation.
pub(crate) struct Names {
    /// Index = operation id.
    pub(crate) list: Vec<Arc<str>>,
    pub(crate) by_name: HashMap<Arc<str>, u32>,
    /// Prometheus form to the registered name.
    pub(crate) by_prometheus: HashMap<String, Arc<str>>,
}

impl Names {
    /// A table holding only `first` (id 0), whose Prometheus form is `first_prometheus`.
    pub(crate) fn new(first: &str, first_prometheus: String) -> Self {
        let first: Arc<str> = Arc::from(first);
        Self {
            list: vec![Arc::clone(&first)],
            by_name: HashMap::from([(Arc::clone(&first), 0)]),
            by_prometheus: HashMap::from([(first_prometheus, first)]),
        }
    }
}

/// The settings a hub is built with.
pub(crate) struct HubSettings {
    /// The engine's number, unique in the process.
    pub(crate) id: u64,
    pub(crate) clock: Clock,
    /// Events per thread's ring.
    pub(crate) ring_capacity: usize,
    /// Operations the engine accepts besides the reserved one.
    pub(crate) max_operations: usize,
    /// The rules in force at start.
    pub(crate) resolved: Arc<Resolved>,
    pub(crate) names: Names,
}

/// State shared by the engine handle, the aggregator and the threads' ring lookups.
pub(crate) struct Hub {
    key: &'static EngineKey,
    /// New rings' consumer ends, waiting for the aggregator.
    pub(crate) registry: Registry<Event>,
    /// What a ring rings when it is a quarter full: wakes the aggregator thread. Installed once,
    /// by the engine right after it started that thread and before any ring can be
    /// registered; never for a manual engine.
    doorbell: OnceLock<loom::Arc<Doorbell>>,
    /// Taken before the engine's configuration lock when both are needed.
    names: Mutex<Names>,
    ring_capacity: usize,
    max_operations: usize,
    /// Set when a pass of the aggregator unwound: nobody will drain rings registered later.
    aggregator_dead: AtomicBool,
    /// Per operation `[dropped, dropped errors]` of events that found no ring; cold path only.
    unringed: Box<[[AtomicU64; 2]]>,
    /// Set after any `unringed` increment.
    unringed_any: AtomicBool,
    /// Per-operation sampling words for the hot path.
    rule_words: loom::Arc<Table>,
    /// Per-operation rules for the aggregator.
    resolved: ArcSwap<Resolved>,
    /// One bit per operation that has ever had a rule that skips calls (set, never cleared):
    /// the aggregator reads those operations' tallies.
    tally_bits: Box<[AtomicU64]>,
    /// Counters and gauges; never held while taking another lock.
    metrics: Mutex<metric::Registry>,
    /// Trace and span ids of calls the `tracing` layer timed, for the exemplars.
    span_ids: SpanIds,
}

impl Hub {
    /// A hub and the engine key that points to it (leaked: see [`EngineKey`]).
    pub(crate) fn new(settings: HubSettings) -> Arc<Self> {
        let HubSettings {
            id,
            clock,
            ring_capacity,
            max_operations,
            resolved,
            names,
        } = settings;
        Arc::new_cyclic(|weak: &Weak<Hub>| {
            let key: &'static EngineKey = Box::leak(Box::new(EngineKey {
                id,
                clock,
                hub: weak.clone(),
            }));
            Self {
                key,
                registry: Registry::new(),
                doorbell: OnceLock::new(),
                names: Mutex::new(names),
                ring_capacity,
                max_operations,
                aggregator_dead: AtomicBool::new(false),
                unringed: (0..=max_operations)
                    .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                    .collect(),
                unringed_any: AtomicBool::new(false),
                rule_words: loom::Arc::new(Table::new(max_operations + 1)),
                resolved: ArcSwap::new(resolved),
                tally_bits: (0..max_operations / 64 + 1)
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                metrics: Mutex::new(metric::Registry::default()),
                span_ids: SpanIds::default(),
            }
        })
    }

    /// The trace and span ids of calls timed from spans (see [`crate::span_ids`]).
    pub(crate) fn span_ids(&self) -> &SpanIds {
        &self.span_ids
    }

    /// The key `Op` handles of this engine point to.
    pub(crate) fn key(&self) -> &'static EngineKey {
        self.key
    }

    /// Events per thread's ring.
    pub(crate) fn ring_capacity(&self) -> usize {
        self.ring_capacity
    }

    /// Operations the engine accepts besides the reserved one.
    pub(crate) fn max_operations(&self) -> usize {
        self.max_operations
    }

    /// Registers a ring for the calling thread, tagged with its number and name.
    pub(crate) fn register_ring(&self, thread: u64) -> Producer<Event> {
        // Relaxed: the flag guards no data; a ring registered just as the aggregator dies is
        // one more full-size ring nobody reads, whose pushes are counted as dropped.
        if self.aggregator_dead.load(Ordering::Relaxed) {
            // Nobody will ever drain this ring. A minimal one with no consumer keeps the hot
            // path working (its pushes drop) without piling up memory.
            let (producer, _consumer) = ring::channel(2, 1);
            return producer;
        }
        let name = std::thread::current().name().map(Arc::from);
        let mut producer = self.registry.register_tagged(
            self.ring_capacity,
            self.max_operations + 1,
            thread,
            name,
        );
        if let Some(bell) = self.doorbell.get() {
            let high_water = self.ring_capacity / RING_HIGH_WATER;
            producer.set_doorbell(loom::Arc::clone(bell), high_water);
        }
        producer
    }

    /// Installs the doorbell that rings register with from now on (once; later calls are
    /// ignored).
    #[cfg_attr(loom, allow(dead_code))] // the loom build leaves the engine without one
    pub(crate) fn install_doorbell(&self, bell: Doorbell) {
        let _ = self.doorbell.set(loom::Arc::new(bell));
    }

    /// The doorbell of the aggregator thread, once installed.
    pub(crate) fn doorbell(&self) -> Option<&Doorbell> {
        self.doorbell.get().map(|bell| &**bell)
    }

    /// Records that the aggregator died (a pass unwound): see [`register_ring`](Self::register_ring).
    pub(crate) fn mark_aggregator_dead(&self) {
        // Relaxed: see `register_ring`.
        self.aggregator_dead.store(true, Ordering::Relaxed);
    }

    /// The engine's sampling words, for a thread's ring entry.
    pub(crate) fn rule_table(&self) -> loom::Arc<Table> {
        loom::Arc::clone(&self.rule_words)
    }

    /// Publishes changed sampling words `(operation, word)` to the hot path.
    pub(crate) fn publish_rule_words(&self, changes: impl IntoIterator<Item = (usize, u64)>) {
        self.rule_words.publish(changes);
    }

    /// The configuration the aggregator works with.
    pub(crate) fn resolved(&self) -> Arc<Resolved> {
        self.resolved.load_full()
    }

    /// Replaces the configuration the aggregator works with.
    pub(crate) fn store_resolved(&self, resolved: Arc<Resolved>) {
        self.resolved.store(resolved);
    }

    #[cold]
    fn count_unringed(&self, op: usize, call: bool, error: bool) {
        let Some(c) = self.unringed.get(op) else {
            return;
        };
        if call {
            c[0].fetch_add(1, Ordering::Relaxed);
        }
        if error {
            c[1].fetch_add(1, Ordering::Relaxed);
        }
        // Release: the increments above are visible to the aggregator's Acquire swap.
        self.unringed_any.store(true, Ordering::Release);
    }

    /// Hands the counts of events that found no ring to `f` and resets them.
    pub(crate) fn take_unringed(&self, mut f: impl FnMut(usize, u64, u64)) {
        // Acquire: pairs with the Release store in `count_unringed`.
        if !self.unringed_any.swap(false, Ordering::Acquire) {
            return;
        }
        for (op, c) in self.unringed.iter().enumerate() {
            let d = c[0].swap(0, Ordering::Relaxed);
            let e = c[1].swap(0, Ordering::Relaxed);
            if d != 0 || e != 0 {
                f(op, d, e);
            }
        }
    }

    /// The operation names.
    pub(crate) fn lock_names(&self) -> MutexGuard<'_, Names> {
        // The name table is updated by one `insert` sequence that cannot panic halfway in a
        // way that breaks it, so a poisoned lock still holds a consistent table.
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Extends `into` with the names it does not have yet.
    pub(crate) fn copy_names(&self, into: &mut Vec<Arc<str>>) {
        let names = self.lock_names();
        if names.list.len() > into.len() {
            into.extend_from_slice(&names.list[into.len()..]);
        }
    }

    /// Marks operation `id`'s tallies to be read from now on. Relaxed: published to the hot
    /// path with the sampling words (the Release in `Table::publish`), and so ordered before
    /// every unsampled call and before the exit of any thread that made one.
    pub(crate) fn mark_tally(&self, id: usize) {
        if let Some(w) = self.tally_bits.get(id / 64) {
            w.fetch_or(1 << (id % 64), Ordering::Relaxed);
        }
    }

    /// Appends the operations whose tallies are read to `into`, in id order.
    pub(crate) fn tally_keys(&self, into: &mut Vec<u32>) {
        into.clear();
        for (i, w) in self.tally_bits.iter().enumerate() {
            // Relaxed: see `mark_tally`.
            let mut bits = w.load(Ordering::Relaxed);
            while bits != 0 {
                into.push((i * 64) as u32 + bits.trailing_zeros());
                bits &= bits - 1;
            }
        }
    }

    /// The counters and gauges.
    pub(crate) fn lock_metrics(&self) -> MutexGuard<'_, metric::Registry> {
        self.metrics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counter and gauge values now.
    pub(crate) fn read_metrics(&self) -> (Vec<CounterValue>, Vec<GaugeValue>) {
        let reg = self.lock_metrics();
        if reg.is_empty() {
            return (Vec::new(), Vec::new());
        }
        reg.read()
    }
}
