//! The engine: configuration, operation names, the aggregator thread and its handle.

use std::collections::HashMap;
use std::sync::{Mutex as StdMutex, MutexGuard, OnceLock, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use arc_swap::ArcSwap;
use hdrhistogram::Histogram;

use crate::aggregator::WindowReport;
use crate::aggregator::{
    in_callback_of, Aggregator, Pass, Settings, Snapshot, Subscription, WindowCallback,
};
use crate::clock::Clock;
use crate::config::source::{self, Layer};
use crate::config::table::{self, Table};
use crate::config::{word_of, CompiledRules, EffectiveRule, Layers, Resolved, Rule, Rules};
use crate::error::Error;
use crate::event::Event;
use crate::loom::{AtomicBool, AtomicU64, Ordering};
use crate::name::{prometheus_name, validate_name};
use crate::op::{ErrorKind, Op};
use crate::registry::Registry;
use crate::ring::Producer;

/// Name of the reserved operation (id 0) that [`op!`](crate::op!) falls back to when an
/// engine's operation table is full, so that no call goes uncounted.
pub const OVERFLOW_OP: &str = "ringmeter.overflow";

/// Largest accepted ring capacity (events per thread per engine).
pub const MAX_RING_CAPACITY: usize = 1 << 24;

/// Largest accepted [`Builder::max_operations`].
pub const MAX_OPERATIONS: usize = 1 << 16;

/// The per-engine part that `Op` handles point to.
///
/// One is leaked per engine (128 bytes) so that `Op` can be a `Copy` handle without a
/// lifetime; the engine's real state behind `shared` is freed when the engine goes away.
///
/// Every call reads it (the generation check), so it is aligned to its own pair of cache
/// lines: leaked among other small allocations it shared a line with state that is written,
/// which cost the hot path over a nanosecond per call.
#[repr(align(128))]
pub(crate) struct EngineKey {
    id: u64,
    clock: Clock,
    shared: Weak<Shared>,
    /// Generation of the engine's sampling words (see `config::table`).
    generation: AtomicU64,
}

impl EngineKey {
    #[inline(always)]
    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The sampling words' generation, for the hot path's change check. Relaxed: a stale
    /// value only delays the refresh by a call; the refresh itself loads it with Acquire.
    #[inline(always)]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    pub(crate) fn generation_atomic(&self) -> &AtomicU64 {
        &self.generation
    }

    #[inline(always)]
    pub(crate) fn addr(&'static self) -> usize {
        self as *const Self as usize
    }

    pub(crate) fn shared(&self) -> Option<std::sync::Arc<Shared>> {
        self.shared.upgrade()
    }

    /// Counts an event that could not be pushed into a ring.
    #[cold]
    pub(crate) fn drop_without_ring(&self, ev: &Event) {
        if let Some(shared) = self.shared() {
            // An unsampled call's failure note only carries an error: its call is counted.
            let call = ev.flags & Event::UNSAMPLED == 0;
            shared.count_unringed(ev.op as usize, call, ev.is_error());
        }
    }
}

/// Operation names of one engine.
struct Names {
    /// Index = operation id.
    list: Vec<std::sync::Arc<str>>,
    by_name: HashMap<std::sync::Arc<str>, u32>,
    /// Prometheus form to the registered name.
    by_prometheus: HashMap<String, std::sync::Arc<str>>,
}

/// State shared by the engine handles, the aggregator thread and the threads' ring lookups.
pub(crate) struct Shared {
    key: &'static EngineKey,
    pub(crate) registry: Registry<Event>,
    pub(crate) snapshot: ArcSwap<Snapshot>,
    names: StdMutex<Names>,
    agg: StdMutex<Aggregator>,
    ring_capacity: usize,
    max_operations: usize,
    stop: AtomicBool,
    /// Set when the last handle went away inside a window callback: the thread then runs the
    /// final pass itself before it exits.
    exit_alone: AtomicBool,
    inject_panic: AtomicBool,
    /// Per operation `[dropped, dropped errors]` of events that found no ring; cold path only.
    unringed: Box<[[AtomicU64; 2]]>,
    /// Set after any `unringed` increment.
    unringed_any: AtomicBool,
    /// Per-operation sampling words for the hot path (generation in `key`).
    rule_words: crate::loom::Arc<Table>,
    /// Per-operation rules for the aggregator.
    resolved: ArcSwap<Resolved>,
    /// One bit per operation that has ever had a rule that skips calls (set, never cleared):
    /// the aggregator reads those operations' tallies.
    tally_bits: Box<[AtomicU64]>,
    /// Rule layers; taken after `names` when both are needed.
    config: StdMutex<ConfigState>,
    /// Counters and gauges; never held while taking another lock.
    metrics: StdMutex<crate::metric::Registry>,
}

/// The configuration an engine runs with.
struct ConfigState {
    layers: Layers,
    compiled: std::sync::Arc<CompiledRules>,
    /// Start-up-only settings in force (a reload may not change them).
    window: Duration,
    ring_capacity: usize,
    log_dir: Option<std::path::PathBuf>,
}

impl Shared {
    /// Counter and gauge values now.
    pub(crate) fn read_metrics(
        &self,
    ) -> (
        Vec<crate::metric::CounterValue>,
        Vec<crate::metric::GaugeValue>,
    ) {
        let reg = self
            .metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if reg.is_empty() {
            return (Vec::new(), Vec::new());
        }
        reg.read()
    }

    fn lock_metrics(&self) -> std::sync::MutexGuard<'_, crate::metric::Registry> {
        self.metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a ring for the calling thread, tagged with its number and name.
    pub(crate) fn register_ring(&self, thread: u64) -> Producer<Event> {
        if self.agg.is_poisoned() {
            // The aggregator died: nobody will ever drain this ring. A minimal one with no
            // consumer keeps the hot path working (its pushes drop) without piling up memory.
            let (producer, _consumer) = crate::ring::channel(2, 1);
            return producer;
        }
        let name = std::thread::current().name().map(std::sync::Arc::from);
        self.registry
            .register_tagged(self.ring_capacity, self.max_operations + 1, thread, name)
    }

    /// The engine's sampling words, for a thread's ring entry.
    pub(crate) fn rule_table(&self) -> crate::loom::Arc<Table> {
        crate::loom::Arc::clone(&self.rule_words)
    }

    /// The configuration the aggregator works with.
    pub(crate) fn resolved(&self) -> std::sync::Arc<Resolved> {
        self.resolved.load_full()
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

    /// Extends `into` with the names it does not have yet.
    pub(crate) fn copy_names(&self, into: &mut Vec<std::sync::Arc<str>>) {
        let names = lock_names(&self.names);
        if names.list.len() > into.len() {
            into.extend_from_slice(&names.list[into.len()..]);
        }
    }

    fn lock_config(&self) -> MutexGuard<'_, ConfigState> {
        // Every update of the state is built aside and assigned at the end, so a poisoned
        // lock still holds a consistent state.
        self.config.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves every registered operation against `compiled`, publishes the rules to the
    /// aggregator and then the changed sampling words to the hot path.
    fn apply_rules(&self, names: &Names, compiled: &std::sync::Arc<CompiledRules>) {
        let old = self.resolved.load_full();
        let new = Resolved {
            compiled: std::sync::Arc::clone(compiled),
            kinds: old.kinds.clone(),
        };
        let mut changes = Vec::new();
        for (id, name) in names.list.iter().enumerate() {
            let word = word_of(&compiled.resolve(name));
            if word != word_of(&old.compiled.resolve(name)) {
                changes.push((id, word));
            }
            if word != table::ALL {
                self.mark_tally(id);
            }
        }
        self.resolved.store(std::sync::Arc::new(new));
        self.rule_words.publish(&self.key.generation, changes);
    }

    /// Marks operation `id`'s tallies to be read from now on. Relaxed: published to the hot
    /// path with the sampling words (the Release in `Table::publish`), and so ordered before
    /// every unsampled call and before the exit of any thread that made one.
    fn mark_tally(&self, id: usize) {
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

    /// Publishes the sampling word of a newly registered operation (O(1) unless it skips
    /// calls, which also adds it to the tallies the aggregator reads).
    fn add_op_rule(&self, id: u32, name: &str, compiled: &CompiledRules) {
        let word = word_of(&compiled.resolve(name));
        if word == table::ALL {
            return;
        }
        self.mark_tally(id as usize);
        self.rule_words
            .publish(&self.key.generation, [(id as usize, word)]);
    }

    /// Makes `layers` the configuration if its rules compile and its start-up-only settings
    /// are those in force.
    fn reconfigure(&self, layers: Layers) -> Result<(), Error> {
        let names = lock_names(&self.names);
        let mut config = self.lock_config();
        let eff = layers.effective();
        let compiled = std::sync::Arc::new(eff.rules.compile()?);
        let window = eff.window.unwrap_or(DEFAULT_WINDOW);
        let ring = eff.ring_capacity.unwrap_or(DEFAULT_RING_CAPACITY);
        let fixed = "only read at start; restart the engine to change it";
        if window != config.window {
            return Err(Error::invalid("window", format_args!("{window:?}"), fixed));
        }
        if ring != config.ring_capacity {
            return Err(Error::invalid("ring_capacity", ring, fixed));
        }
        if eff.log_dir != config.log_dir {
            let shown = eff.log_dir.as_deref().map(|p| p.display().to_string());
            return Err(Error::invalid("log_dir", format_args!("{shown:?}"), fixed));
        }
        self.apply_rules(&names, &compiled);
        config.layers = layers;
        config.compiled = compiled;
        Ok(())
    }

    fn lock_agg(&self) -> Result<MutexGuard<'_, Aggregator>, Error> {
        if in_callback_of(self.key.id) {
            return Err(Error::CalledFromCallback);
        }
        self.agg.lock().map_err(|_| Error::AggregatorPanicked)
    }
}

fn lock_names(names: &StdMutex<Names>) -> MutexGuard<'_, Names> {
    // The name table is updated by one `insert` sequence that cannot panic halfway in a way
    // that breaks it, so a poisoned lock still holds a consistent table.
    names.lock().unwrap_or_else(|p| p.into_inner())
}

/// Configures and starts an [`Engine`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let engine = ringmeter::Engine::builder()
///     .window(Duration::from_millis(500))
///     .ring_capacity(1 << 14)
///     .slow_threshold(Duration::from_millis(250))
///     .start()?;
/// # Ok::<(), ringmeter::Error>(())
/// ```
pub struct Builder {
    /// Ring capacity, window, log directory and rules from the file, the environment and the
    /// API calls.
    layers: Layers,
    /// Whether `layers.file` still has to be read from `layers.file_path`.
    file_pending: bool,
    max_operations: usize,
    grace: Duration,
    drain_interval: Duration,
    idle_interval: Duration,
    significant_digits: u8,
    highest_trackable: Duration,
    clock: Option<Clock>,
    callbacks: Vec<WindowCallback>,
    /// Window log settings; an empty `dir` means no log.
    log: crate::log::LogConfig,
    /// Exposition histogram bucket bounds, nanoseconds.
    buckets: Vec<u64>,
    alert_callbacks: Vec<crate::aggregator::AlertCallback>,
}

/// Default ring capacity.
const DEFAULT_RING_CAPACITY: usize = 8192;
/// Default window length.
const DEFAULT_WINDOW: Duration = Duration::from_secs(1);

impl Default for Builder {
    fn default() -> Self {
        Self {
            layers: Layers::default(),
            file_pending: false,
            max_operations: 1024,
            grace: Duration::from_millis(100),
            drain_interval: Duration::from_millis(1),
            idle_interval: Duration::from_millis(5),
            significant_digits: 3,
            highest_trackable: Duration::from_secs(60),
            clock: None,
            callbacks: Vec::new(),
            log: crate::log::LogConfig::new(""),
            buckets: crate::aggregator::DEFAULT_BUCKETS_NS.to_vec(),
            alert_callbacks: Vec::new(),
        }
    }
}

impl core::fmt::Debug for Builder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Builder")
            .field("layers", &self.layers)
            .field("max_operations", &self.max_operations)
            .field("grace", &self.grace)
            .field("drain_interval", &self.drain_interval)
            .field("idle_interval", &self.idle_interval)
            .field("significant_digits", &self.significant_digits)
            .field("highest_trackable", &self.highest_trackable)
            .field("callbacks", &self.callbacks.len())
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// A builder with the settings of the environment: the configuration file named by
    /// `RINGMETER_CONFIG` (read at [`start`](Self::start)), overridden by the variables
    /// `RINGMETER_SLOW_THRESHOLD_MS`, `RINGMETER_WINDOW_SECS`, `RINGMETER_ERROR_RATE_THRESHOLD`,
    /// `RINGMETER_SAMPLE_EVERY`, `RINGMETER_RING_CAPACITY` and `RINGMETER_LOG_DIR`; every
    /// builder call made afterwards overrides both. See `docs/configuration.md`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the variable and its value if one cannot be parsed
    /// or is out of range.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// // With RINGMETER_WINDOW_SECS=5 in the environment the window would be 5 s; the
    /// // explicit call below wins over it either way.
    /// let engine = ringmeter::Builder::from_env()?
    ///     .window(Duration::from_millis(250))
    ///     .start()?;
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn from_env() -> Result<Self, Error> {
        Self::from_env_with(|name| std::env::var_os(name))
    }

    /// [`from_env`](Self::from_env) with the variables looked up through `var` instead of the
    /// process environment (for tests and for programs that keep settings elsewhere).
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    ///
    /// # Examples
    /// ```
    /// let b = ringmeter::Builder::from_env_with(|name| {
    ///     (name == "RINGMETER_SAMPLE_EVERY").then(|| "x".into())
    /// });
    /// let err = b.unwrap_err().to_string();
    /// assert!(err.contains("RINGMETER_SAMPLE_EVERY") && err.contains('x'), "{err}");
    /// ```
    pub fn from_env_with(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Self, Error> {
        let (env, file) = source::from_env(&var)?;
        let mut b = Self::default();
        b.layers.env = env;
        if file.is_some() {
            b.layers.file_path = file;
            b.file_pending = true;
        }
        Ok(b)
    }

    /// Reads rules and settings from the TOML file at `path` at [`start`](Self::start) (below
    /// the environment and the API in precedence, like `RINGMETER_CONFIG`, which it replaces);
    /// [`Engine::reload_config`] re-reads it. The format is in `docs/configuration.md`.
    pub fn config_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.layers.file_path = Some(path.into());
        self.file_pending = true;
        self
    }

    /// Events each thread's ring holds (a power of two, 2 to 2^24; default 8192, 192 KiB).
    /// A full ring drops new events and counts them.
    pub fn ring_capacity(mut self, events: usize) -> Self {
        self.layers.api.ring_capacity = Some(events);
        self
    }

    /// Adds a rule for the operations `pattern` matches (an exact name or a glob such as
    /// `db.*`; see [`Rules`]). Checked at [`start`](Self::start).
    ///
    /// # Examples
    /// ```
    /// use ringmeter::{Engine, Rule, Sampling};
    /// let engine = Engine::builder()
    ///     .rule("cache.*", Rule::new().sampling(Sampling::Every(64)))
    ///     .start()?;
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn rule(mut self, pattern: &str, rule: Rule) -> Self {
        self.layers.api.rules = std::mem::take(&mut self.layers.api.rules).rule(pattern, rule);
        self
    }

    /// Sets defaults for every operation (fields not set stay as they were).
    pub fn defaults(mut self, rule: Rule) -> Self {
        self.layers.api.rules = std::mem::take(&mut self.layers.api.rules).defaults(rule);
        self
    }

    /// Adds a whole rule set (see [`rule`](Self::rule)).
    pub fn rules(mut self, rules: Rules) -> Self {
        self.layers.api.rules.overlay(&rules);
        self
    }

    /// Most operations the engine accepts (1 to 65536; default 1024). Each ring keeps an
    /// 8-byte drop counter per operation.
    pub fn max_operations(mut self, n: usize) -> Self {
        self.max_operations = n;
        self
    }

    /// Window length (1 ms to 1 day; default 1 s).
    pub fn window(mut self, d: Duration) -> Self {
        self.layers.api.window = Some(d);
        self
    }

    /// How long after its end a window stays open for stragglers (at most the window length;
    /// default 100 ms).
    pub fn grace(mut self, d: Duration) -> Self {
        self.grace = d;
        self
    }

    /// Pause between aggregator passes while events arrive (10 µs to 1 s; default 1 ms).
    pub fn drain_interval(mut self, d: Duration) -> Self {
        self.drain_interval = d;
        self
    }

    /// Longest pause between passes when idle; the pause doubles from `drain_interval` up to
    /// this (at least `drain_interval`, at most 1 s; default 5 ms).
    pub fn idle_interval(mut self, d: Duration) -> Self {
        self.idle_interval = d;
        self
    }

    /// HdrHistogram precision in significant decimal digits (1 to 5; default 3, that is
    /// percentiles within 0.1%).
    pub fn significant_digits(mut self, digits: u8) -> Self {
        self.significant_digits = digits;
        self
    }

    /// Largest duration the histograms resolve (at least 1 µs; default 60 s). Longer calls
    /// are counted at this value in the histogram; `max_ns` stays exact.
    pub fn highest_trackable(mut self, d: Duration) -> Self {
        self.highest_trackable = d;
        self
    }

    /// Calls longer than this count as slow, for every operation without a rule that says
    /// otherwise (default 1 s); the same as `.defaults(Rule::new().slow_threshold(d))`.
    pub fn slow_threshold(self, d: Duration) -> Self {
        self.defaults(Rule::new().slow_threshold(d))
    }

    /// The clock to use (default [`Clock::tsc`]); [`Clock::mock`] for tests.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Runs `f` on the aggregator thread for every closed window. Keep it short: it delays
    /// draining. A callback that panics is removed (and reported on stderr). Inside `f`,
    /// the engine's `flush`, `shutdown` and `on_window` return [`Error::CalledFromCallback`]
    /// and `subscribe` hands out a closed channel. A callback that needs the engine should
    /// capture a [`WeakEngine`] ([`Engine::downgrade`]): a captured [`Engine`] clone keeps the
    /// engine alive forever. Callbacks of two engines must not flush each other: that can
    /// deadlock.
    pub fn on_window(
        mut self,
        f: impl FnMut(&std::sync::Arc<WindowReport>) + Send + 'static,
    ) -> Self {
        self.callbacks.push(Box::new(f));
        self
    }

    // --- Window log (see `crate::log`) -------------------------------------------------

    /// Persists every closed window in a memory-mapped log in `dir` (created if missing,
    /// without world access), readable with [`log::Reader`](crate::log::Reader) and the
    /// `ringmeter` CLI. Off by default. Faults never stop the engine: they are reported in
    /// [`Snapshot::log`] and retried (see [`log`](crate::log)).
    ///
    /// Overrides `RINGMETER_LOG_DIR` and the configuration file's `log_dir`
    /// (see [`from_env`](Self::from_env)).
    pub fn log_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.layers.api.log_dir = Some(dir.into());
        self
    }

    /// Size of each log segment file (default 16 MiB; 4 KiB to 1 GiB).
    pub fn log_segment_size(mut self, bytes: u64) -> Self {
        self.log.segment_size = bytes;
        self
    }

    /// Deletes whole log segments older than `max_age` and, oldest first, while the log is
    /// larger than `max_bytes` (default: keep everything; `Duration::MAX` / `u64::MAX` for
    /// no limit of one kind).
    pub fn log_retention(mut self, max_age: Duration, max_bytes: u64) -> Self {
        self.log.max_age = (max_age != Duration::MAX).then_some(max_age);
        self.log.max_bytes = (max_bytes != u64::MAX).then_some(max_bytes);
        self
    }

    /// Upper bounds of the Prometheus histogram buckets of every operation
    /// ([`Engine::render_metrics`], [`OpTotals::buckets`](crate::OpTotals::buckets)):
    /// ascending, above zero, at most [`MAX_BUCKETS`](crate::MAX_BUCKETS) of them; `+Inf`
    /// is always added. Default: [`DEFAULT_BUCKETS_NS`](crate::DEFAULT_BUCKETS_NS), 1 µs to
    /// 10 s in 1-2.5-5 steps.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let engine = ringmeter::Engine::builder()
    ///     .prometheus_buckets([1, 5, 20, 100].map(Duration::from_millis))
    ///     .start_manual()?;
    /// engine.op("rpc.call")?.record(Duration::from_millis(3));
    /// engine.flush()?;
    /// let snap = engine.snapshot();
    /// assert_eq!(snap.bucket_bounds_ns.len(), 4);
    /// assert_eq!(snap.totals[0].buckets, vec![0, 1, 1, 1, 1]);
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn prometheus_buckets(mut self, bounds: impl IntoIterator<Item = Duration>) -> Self {
        self.buckets = bounds
            .into_iter()
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .collect();
        self
    }

    /// Adds an alert rule, evaluated at every window close (see [`alert`](crate::alert));
    /// the configuration file's `[[alert]]` rules come on top.
    ///
    /// # Examples
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use ringmeter::alert::{AlertRule, AlertState};
    /// use ringmeter::{Clock, Engine};
    ///
    /// let (clock, mock) = Clock::mock();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = Arc::clone(&seen);
    /// let engine = Engine::builder()
    ///     .clock(clock)
    ///     .alert(AlertRule::error_rate("db-errors", "db.*", 0.1).for_windows(2))
    ///     .on_alert(move |notices| sink.lock().unwrap().extend(notices.iter().cloned()))
    ///     .start_manual()?;
    /// let op = engine.op("db.query")?;
    /// mock.advance(Duration::from_millis(500));
    /// for _ in 0..3 {
    ///     let _ = op.time_result(|| Err::<(), _>("refused")); // every call fails
    ///     mock.advance(Duration::from_secs(1)); // the window closes
    ///     engine.flush()?;
    /// }
    /// let seen = seen.lock().unwrap();
    /// assert_eq!(seen.len(), 1);
    /// assert_eq!(seen[0].state, AlertState::Firing);
    /// assert_eq!(engine.snapshot().alerts.len(), 1);
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn alert(mut self, rule: crate::alert::AlertRule) -> Self {
        self.layers.api.alerts.push(rule);
        self
    }

    /// Calls `f` with the alert notices of every window close that has some, grouped: firing
    /// and resolved notices ordered by rule, then operation. Runs on the aggregator thread,
    /// like [`on_window`](Self::on_window) callbacks, with the same rules; a callback that
    /// panics is removed.
    pub fn on_alert(mut self, f: impl FnMut(&[crate::alert::Alert]) + Send + 'static) -> Self {
        self.alert_callbacks.push(Box::new(f));
        self
    }

    fn check_buckets(&self) -> Result<(), Error> {
        let b = &self.buckets;
        let reason = if b.is_empty() {
            "at least one bound"
        } else if b.len() > crate::aggregator::MAX_BUCKETS {
            "at most 64 bounds"
        } else if b[0] == 0 {
            "bounds above zero"
        } else if b.windows(2).any(|w| w[0] >= w[1]) {
            "bounds in strictly ascending order"
        } else {
            return Ok(());
        };
        let shown: Vec<String> = b.iter().map(|ns| format!("{ns}ns")).collect();
        Err(Error::invalid(
            "prometheus_buckets",
            format_args!("[{}]", shown.join(", ")),
            reason,
        ))
    }

    fn check_log(&self) -> Result<(), Error> {
        let bad = |key: &str, value: String, reason: &str| Err(Error::invalid(key, value, reason));
        let size = self.log.segment_size;
        if !(crate::log::MIN_SEGMENT_SIZE..=1 << 30).contains(&size) {
            return bad("log_segment_size", size.to_string(), "4 KiB to 1 GiB");
        }
        if self.log.max_age == Some(Duration::ZERO) {
            return bad("log_retention", "max_age 0s".into(), "max_age above zero");
        }
        if self.log.max_bytes == Some(0) {
            return bad(
                "log_retention",
                "max_bytes 0".into(),
                "max_bytes above zero",
            );
        }
        Ok(())
    }

    // --- end of window log -------------------------------------------------------------

    fn check(&self, eff: &Layer) -> Result<Histogram<u64>, Error> {
        self.check_log()?;
        self.check_buckets()?;
        fn bad(key: &'static str, value: impl core::fmt::Debug, reason: &'static str) -> Error {
            Error::invalid(key, format_args!("{value:?}"), reason)
        }
        let c = eff.ring_capacity.unwrap_or(DEFAULT_RING_CAPACITY);
        if !(2..=MAX_RING_CAPACITY).contains(&c) || !c.is_power_of_two() {
            return Err(bad("ring_capacity", c, "a power of two from 2 to 2^24"));
        }
        if !(1..=MAX_OPERATIONS).contains(&self.max_operations) {
            return Err(bad("max_operations", self.max_operations, "1 to 65536"));
        }
        let w = eff.window.unwrap_or(DEFAULT_WINDOW);
        if w < Duration::from_millis(1) || w > Duration::from_secs(86_400) {
            return Err(bad("window", w, "1 ms to 1 day"));
        }
        if self.grace > w {
            return Err(bad("grace", self.grace, "at most the window length"));
        }
        let d = self.drain_interval;
        if d < Duration::from_micros(10) || d > Duration::from_secs(1) {
            return Err(bad("drain_interval", d, "10 µs to 1 s"));
        }
        if self.idle_interval < d || self.idle_interval > Duration::from_secs(1) {
            return Err(bad(
                "idle_interval",
                self.idle_interval,
                "at least drain_interval, at most 1 s",
            ));
        }
        if !(1..=5).contains(&self.significant_digits) {
            return Err(bad("significant_digits", self.significant_digits, "1 to 5"));
        }
        let high = u64::try_from(self.highest_trackable.as_nanos()).unwrap_or(u64::MAX);
        // HdrHistogram's interval-log readers need the value to fit a signed 64-bit number.
        if !(1_000..=i64::MAX as u64 / 2).contains(&high) {
            return Err(bad(
                "highest_trackable",
                self.highest_trackable,
                "at least 1 µs and below 2^62 ns",
            ));
        }
        Histogram::new_with_bounds(1, high, self.significant_digits).map_err(|_| {
            bad(
                "highest_trackable",
                self.highest_trackable,
                "HdrHistogram rejected the bounds",
            )
        })
    }

    /// Starts the engine and its aggregator thread.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first out-of-range setting, or [`Error::Spawn`].
    pub fn start(self) -> Result<Engine, Error> {
        self.launch(true)
    }

    /// Starts the engine without an aggregator thread: rings are drained, windows closed and
    /// snapshots published only by [`Engine::flush`] and [`Engine::shutdown`]. Deterministic,
    /// for tests with a mock clock.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first out-of-range setting.
    pub fn start_manual(self) -> Result<Engine, Error> {
        self.launch(false)
    }

    fn launch(mut self, spawn: bool) -> Result<Engine, Error> {
        if self.file_pending {
            if let Some(path) = &self.layers.file_path {
                self.layers.file = source::from_file(path)?;
            }
        }
        let eff = self.layers.effective();
        let template = self.check(&eff)?;
        let compiled = std::sync::Arc::new(eff.rules.compile()?);
        let window = eff.window.unwrap_or(DEFAULT_WINDOW);
        let ring_capacity = eff.ring_capacity.unwrap_or(DEFAULT_RING_CAPACITY);
        let clock = self.clock.take().unwrap_or_default();
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let drain = self.drain_interval;
        let idle = self.idle_interval;
        let max_operations = self.max_operations;
        let resolved = std::sync::Arc::new(Resolved {
            compiled: std::sync::Arc::clone(&compiled),
            kinds: vec![std::sync::Arc::from("")],
        });
        let settings = Settings {
            engine_id: id,
            clock: clock.clone(),
            window,
            grace: self.grace,
            template,
            callbacks: std::mem::take(&mut self.callbacks),
            log: eff.log_dir.clone().map(|dir| crate::log::LogConfig {
                dir,
                ..self.log.clone()
            }),
            resolved: std::sync::Arc::clone(&resolved),
            bucket_bounds: self.buckets.clone().into(),
            alerts: crate::alert::Evaluator::new(eff.alerts.clone())?,
            alert_callbacks: std::mem::take(&mut self.alert_callbacks),
        };
        let shared = std::sync::Arc::new_cyclic(|weak: &Weak<Shared>| {
            let key: &'static EngineKey = Box::leak(Box::new(EngineKey {
                id,
                clock,
                shared: weak.clone(),
                generation: AtomicU64::new(0),
            }));
            let overflow: std::sync::Arc<str> = std::sync::Arc::from(OVERFLOW_OP);
            Shared {
                key,
                registry: Registry::new(),
                snapshot: ArcSwap::from_pointee(Snapshot::default()),
                names: StdMutex::new(Names {
                    list: vec![overflow.clone()],
                    by_name: HashMap::from([(overflow.clone(), 0)]),
                    by_prometheus: HashMap::from([(prometheus_name(OVERFLOW_OP), overflow)]),
                }),
                agg: StdMutex::new(Aggregator::new(settings)),
                ring_capacity,
                max_operations,
                stop: AtomicBool::new(false),
                exit_alone: AtomicBool::new(false),
                inject_panic: AtomicBool::new(false),
                unringed: (0..=max_operations)
                    .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                    .collect(),
                unringed_any: AtomicBool::new(false),
                rule_words: crate::loom::Arc::new(Table::new(max_operations + 1)),
                resolved: ArcSwap::new(std::sync::Arc::clone(&resolved)),
                tally_bits: (0..max_operations / 64 + 1)
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                config: StdMutex::new(ConfigState {
                    layers: self.layers,
                    compiled,
                    window,
                    ring_capacity,
                    log_dir: eff.log_dir,
                }),
                metrics: StdMutex::new(crate::metric::Registry::default()),
            }
        });
        {
            let names = lock_names(&shared.names);
            let config = shared.lock_config();
            shared.apply_rules(&names, &config.compiled);
        }
        let thread = if spawn {
            let s = std::sync::Arc::clone(&shared);
            let handle = thread::Builder::new()
                .name("ringmeter-aggregator".into())
                .spawn(move || run(&s, drain, idle))
                .map_err(Error::Spawn)?;
            Some(handle)
        } else {
            None
        };
        Ok(Engine {
            inner: std::sync::Arc::new(Handle {
                shared,
                thread: StdMutex::new(thread),
            }),
        })
    }
}

/// The aggregator thread's loop.
///
/// After a pass that found a ring at least a quarter full it goes straight on (yielding the
/// core once), so a burst is drained at full speed; otherwise it parks for `drain`, doubling
/// the pause up to `idle` while nothing arrives, and never past the next window's close.
fn run(shared: &Shared, drain: Duration, idle: Duration) {
    let busy_at = shared.ring_capacity / 4;
    let mut pause = drain;
    // Relaxed: `stop` carries no data; `join` orders everything after the loop.
    while !shared.stop.load(Ordering::Relaxed) {
        let (drained, until_close) = {
            let Ok(mut agg) = shared.agg.lock() else {
                return;
            };
            if shared.inject_panic.load(Ordering::Relaxed) {
                panic!("ringmeter: aggregator panic injected by a test");
            }
            let drained = agg.pass(shared, Pass::Tick);
            (drained, agg.until_next_close())
        };
        if drained.fullest >= busy_at.max(1) {
            pause = drain;
            thread::yield_now();
            continue;
        }
        pause = if drained.events > 0 {
            drain
        } else {
            (pause * 2).min(idle)
        };
        thread::park_timeout(pause.min(until_close.max(Duration::from_micros(50))));
    }
    // Relaxed: written by this thread (see `Handle::drop`).
    if shared.exit_alone.load(Ordering::Relaxed) {
        if let Ok(mut agg) = shared.agg.lock() {
            agg.pass(shared, Pass::Final);
        }
    }
}

/// Owner of the aggregator thread; shuts it down when the last [`Engine`] clone goes away.
struct Handle {
    shared: std::sync::Arc<Shared>,
    thread: StdMutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if in_callback_of(self.shared.key.id) {
            // The last handle was dropped inside one of the engine's own window callbacks, on
            // the aggregator thread: it cannot join itself. Ask it to run the final pass and
            // exit on its own.
            // Relaxed: read by the same thread, after this callback returns.
            self.shared.exit_alone.store(true, Ordering::Relaxed);
            self.shared.stop.store(true, Ordering::Relaxed);
            return;
        }
        let _ = shutdown(&self.shared, &self.thread);
    }
}

fn shutdown(shared: &Shared, thread: &StdMutex<Option<JoinHandle<()>>>) -> Result<(), Error> {
    if in_callback_of(shared.key.id) {
        return Err(Error::CalledFromCallback);
    }
    let handle = thread.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(h) = handle {
        // Relaxed: see `run`; the join below synchronises.
        shared.stop.store(true, Ordering::Relaxed);
        h.thread().unpark();
        if h.join().is_err() {
            return Err(Error::AggregatorPanicked);
        }
    }
    let mut agg = shared.lock_agg()?;
    agg.pass(shared, Pass::Final);
    Ok(())
}

/// A running metrics engine: per-thread rings, an aggregator thread, windows and snapshots.
///
/// `Engine` is a cheap handle (`Clone` shares it). Dropping the last handle shuts the engine
/// down as [`shutdown`](Self::shutdown) does.
///
/// # Examples
/// ```
/// let engine = ringmeter::Engine::builder().start()?;
/// let op = engine.op("parse")?;
/// let n: u32 = op.time(|| "17".parse().unwrap());
/// engine.shutdown()?;
/// let snap = engine.snapshot();
/// assert_eq!(snap.totals("parse").unwrap().count, 1);
/// # assert_eq!(n, 17);
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: std::sync::Arc<Handle>,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("id", &self.inner.shared.key.id)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder with the default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The handle of operation `name`, registering it on first use.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::NameCollision`] (same Prometheus name as another
    /// operation) or [`Error::TooManyOperations`].
    pub fn op(&self, name: &str) -> Result<Op, Error> {
        validate_name(name).map_err(|reason| Error::InvalidName {
            name: name.to_owned(),
            reason,
        })?;
        let shared = self.shared();
        let mut names = lock_names(&shared.names);
        if let Some(&id) = names.by_name.get(name) {
            return Ok(Op {
                key: shared.key,
                id,
            });
        }
        let prom = prometheus_name(name);
        if let Some(existing) = names.by_prometheus.get(&prom) {
            return Err(Error::NameCollision {
                name: name.to_owned(),
                existing: existing.to_string(),
            });
        }
        // Id 0 is the reserved overflow operation.
        if names.list.len() > shared.max_operations {
            return Err(Error::TooManyOperations {
                limit: shared.max_operations,
            });
        }
        let id = names.list.len() as u32;
        let name: std::sync::Arc<str> = std::sync::Arc::from(name);
        names.list.push(name.clone());
        names.by_name.insert(name.clone(), id);
        names.by_prometheus.insert(prom, name.clone());
        {
            let config = shared.lock_config();
            shared.add_op_rule(id, &name, &config.compiled);
        }
        Ok(Op {
            key: shared.key,
            id,
        })
    }

    /// Replaces the rules set through the API ([`Builder::rule`], earlier `set_rules` calls)
    /// with `rules`; the configuration file's and the environment's rules stay below them.
    /// Every thread sees the new sampling at its next call, without a lock; the aggregator
    /// applies slow thresholds and the rest from its next pass. No event is lost.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad pattern or value; the rules in force stay.
    ///
    /// # Examples
    /// ```
    /// use ringmeter::{Engine, Rule, Rules, Sampling};
    /// let engine = Engine::builder().start_manual()?;
    /// let op = engine.op("db.query")?;
    /// engine.set_rules(Rules::new().rule("db.*", Rule::new().sampling(Sampling::CountOnly)))?;
    /// op.time(|| ()); // counted, not timed
    /// engine.flush()?;
    /// assert_eq!(engine.snapshot().totals("db.query").unwrap().unsampled, 1);
    /// let bad = Rules::new().rule("db.*", Rule::new().sampling(Sampling::Probability(f64::NAN)));
    /// assert!(engine.set_rules(bad).is_err());
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn set_rules(&self, rules: Rules) -> Result<(), Error> {
        let mut layers = self.shared().lock_config().layers.clone();
        layers.api.rules = rules;
        self.shared().reconfigure(layers)
    }

    /// Adds (or merges into) one API rule; see [`set_rules`](Self::set_rules).
    ///
    /// # Errors
    /// As [`set_rules`](Self::set_rules).
    pub fn set_rule(&self, pattern: &str, rule: Rule) -> Result<(), Error> {
        let mut layers = self.shared().lock_config().layers.clone();
        layers.api.rules = std::mem::take(&mut layers.api.rules).rule(pattern, rule);
        self.shared().reconfigure(layers)
    }

    /// Re-reads the configuration file ([`Builder::config_file`] or `RINGMETER_CONFIG`) and
    /// applies its rules, still below the environment and the API. Settings read only at start
    /// (window, ring capacity, log directory) must be unchanged.
    ///
    /// # Errors
    /// [`Error::ConfigFile`] if the file cannot be read or parsed, [`Error::InvalidConfig`]
    /// for a bad key or value, a changed start-up setting, or no file to reload. On any
    /// error the configuration in force stays.
    pub fn reload_config(&self) -> Result<(), Error> {
        let mut layers = self.shared().lock_config().layers.clone();
        let Some(path) = layers.file_path.clone() else {
            return Err(Error::invalid(
                "config_file",
                "none",
                "the engine was started without a configuration file (RINGMETER_CONFIG or Builder::config_file)",
            ));
        };
        layers.file = source::from_file(&path)?;
        let alerts = layers.effective().alerts;
        crate::alert::Evaluator::new(alerts.clone())?;
        let mut agg = self.shared().lock_agg()?;
        self.shared().reconfigure(layers)?;
        agg.set_alert_rules(alerts)
    }

    /// The Prometheus exposition of the latest snapshot in `format`: what `GET /metrics`
    /// serves (feature `http`). See `docs/exporting.md` for the metric families.
    ///
    /// # Examples
    /// ```
    /// use ringmeter::export::prom::Format;
    /// let engine = ringmeter::Engine::builder().start_manual()?;
    /// engine.op("db.query")?.record_ns(1_500);
    /// engine.flush()?;
    /// let text = String::from_utf8(engine.render_metrics(Format::Text)).unwrap();
    /// assert!(text.contains("ringmeter_calls_total{op=\"db.query\"} 1\n"));
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn render_metrics(&self, format: crate::export::prom::Format) -> Vec<u8> {
        let snap = self.snapshot();
        crate::export::prom::render(&snap, format)
    }

    /// The counter `name{labels}`, registered on first use (see [`metric`](crate::metric)).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a name breaking the operation naming rules;
    /// [`Error::InvalidConfig`] for a bad or repeated label name, a gauge of the same name and
    /// labels, or more than [`MAX_SERIES`](crate::metric::MAX_SERIES) series.
    pub fn counter(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Result<crate::metric::Counter, Error> {
        self.shared().lock_metrics().counter(name, labels)
    }

    /// The gauge `name{labels}`, registered on first use (see [`metric`](crate::metric)).
    ///
    /// # Errors
    /// As [`counter`](Self::counter).
    pub fn gauge(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Result<crate::metric::Gauge, Error> {
        self.shared().lock_metrics().gauge(name, labels)
    }

    /// Sets the help text of the counters or gauges named `name` in the exposition.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a name breaking the naming rules.
    pub fn describe(&self, name: &str, help: &str) -> Result<(), Error> {
        self.shared().lock_metrics().describe(name, help)
    }

    /// Replaces the alert rules given through the API ([`Builder::alert`], earlier calls);
    /// the configuration file's `[[alert]]` rules stay. Rules whose name and definition are
    /// unchanged keep their state; a removed rule that was firing sends resolved notices.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad rule or two rules of one name (the rules in force
    /// stay); [`Error::CalledFromCallback`] from a window or alert callback.
    pub fn set_alert_rules(&self, rules: Vec<crate::alert::AlertRule>) -> Result<(), Error> {
        let mut layers = self.shared().lock_config().layers.clone();
        layers.api.alerts = rules;
        let alerts = layers.effective().alerts;
        crate::alert::Evaluator::new(alerts.clone())?;
        let mut agg = self.shared().lock_agg()?;
        self.shared().reconfigure(layers)?;
        agg.set_alert_rules(alerts)
    }

    /// Adds an alert callback (see [`Builder::on_alert`]).
    ///
    /// # Errors
    /// [`Error::AggregatorPanicked`]; [`Error::CalledFromCallback`] from a callback.
    pub fn on_alert(
        &self,
        f: impl FnMut(&[crate::alert::Alert]) + Send + 'static,
    ) -> Result<(), Error> {
        self.shared().lock_agg()?.add_alert_callback(Box::new(f));
        Ok(())
    }

    /// The window length in force.
    pub fn window(&self) -> Duration {
        self.shared().lock_config().window
    }

    /// The ring capacity in force (events per thread).
    pub fn ring_capacity(&self) -> usize {
        self.shared().ring_capacity
    }

    /// The log directory configured (builder, `RINGMETER_LOG_DIR` or the configuration file).
    pub fn log_dir(&self) -> Option<std::path::PathBuf> {
        self.shared().lock_config().log_dir.clone()
    }

    /// The settings in force for `op`, if it belongs to this engine.
    pub fn rule_of(&self, op: Op) -> Option<EffectiveRule> {
        if !core::ptr::eq(op.key, self.shared().key) {
            return None;
        }
        let name = self.op_name(op)?;
        Some(self.shared().resolved.load().compiled.resolve(&name))
    }

    /// The error kind called `name`, registering it on first use (at most 255 per engine).
    ///
    /// # Errors
    /// [`Error::InvalidName`] if `name` breaks the operation naming rules,
    /// [`Error::InvalidConfig`] when the engine already has 255 kinds.
    pub fn error_kind(&self, name: &str) -> Result<ErrorKind, Error> {
        validate_name(name).map_err(|reason| Error::InvalidName {
            name: name.to_owned(),
            reason,
        })?;
        let shared = self.shared();
        let _config = shared.lock_config();
        let current = shared.resolved.load_full();
        if let Some(code) = current.kinds.iter().position(|k| &**k == name) {
            return Ok(ErrorKind(code as u8));
        }
        let code = current.kinds.len();
        if code > usize::from(u8::MAX) {
            return Err(Error::invalid(
                "error_kind",
                name,
                "an engine has at most 255 error kinds",
            ));
        }
        let mut new = Resolved::clone(&current);
        new.kinds.push(std::sync::Arc::from(name));
        shared.resolved.store(std::sync::Arc::new(new));
        Ok(ErrorKind(code as u8))
    }

    /// The reserved operation [`OVERFLOW_OP`].
    pub fn overflow_op(&self) -> Op {
        Op {
            key: self.shared().key,
            id: 0,
        }
    }

    /// The name of `op`, if it belongs to this engine.
    pub fn op_name(&self, op: Op) -> Option<std::sync::Arc<str>> {
        if !core::ptr::eq(op.key, self.shared().key) {
            return None;
        }
        lock_names(&self.shared().names)
            .list
            .get(op.id as usize)
            .cloned()
    }

    /// The latest published snapshot. Never blocks the aggregator or the hot path.
    pub fn snapshot(&self) -> std::sync::Arc<Snapshot> {
        self.shared().snapshot.load_full()
    }

    /// Aggregates every event recorded (on any thread) before this call and publishes a
    /// snapshot whose totals include the open windows. Closes windows that are due.
    ///
    /// # Errors
    /// [`Error::AggregatorPanicked`] if the aggregator panicked.
    pub fn flush(&self) -> Result<(), Error> {
        let shared = self.shared();
        shared.lock_agg()?.pass(shared, Pass::Flush);
        Ok(())
    }

    /// Stops the aggregator thread, drains every ring, closes every open window (the current
    /// one partial) and publishes the final snapshot. Idempotent. Events recorded afterwards
    /// are still accepted and aggregated by later `flush` or `shutdown` calls.
    ///
    /// # Errors
    /// [`Error::AggregatorPanicked`] if the aggregator panicked.
    pub fn shutdown(&self) -> Result<(), Error> {
        shutdown(&self.inner.shared, &self.inner.thread)
    }

    /// Whether the aggregator thread is running.
    pub fn is_running(&self) -> bool {
        self.inner
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }

    /// A channel that receives every window closed from now on (see [`Subscription`]).
    /// `capacity` windows can wait in it before further ones are counted as missed.
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        match self.shared().lock_agg() {
            Ok(mut agg) => agg.subscribe(capacity),
            // The aggregator is dead (or this is its own callback): hand out a closed channel.
            Err(_) => {
                let (_, rx) = crossbeam_channel::bounded(1);
                Subscription::dead(rx)
            }
        }
    }

    /// Runs `f` on the aggregator thread for every window closed from now on
    /// (see [`Builder::on_window`]).
    ///
    /// # Errors
    /// [`Error::AggregatorPanicked`] if the aggregator panicked.
    pub fn on_window(
        &self,
        f: impl FnMut(&std::sync::Arc<WindowReport>) + Send + 'static,
    ) -> Result<(), Error> {
        self.shared().lock_agg()?.add_callback(Box::new(f));
        Ok(())
    }

    /// Number of rings the aggregator currently drains (threads that recorded and whose
    /// rings are not yet freed).
    pub fn rings(&self) -> usize {
        self.shared().lock_agg().map_or(0, |a| a.rings())
    }

    /// A weak handle, for window callbacks that need to reach their own engine.
    ///
    /// # Examples
    /// ```
    /// let engine = ringmeter::Engine::builder().start()?;
    /// let weak = engine.downgrade();
    /// engine.on_window(move |w| {
    ///     if let Some(engine) = weak.upgrade() {
    ///         let _ = engine.snapshot(); // fine; flush() here would be CalledFromCallback
    ///     }
    /// })?;
    /// drop(engine); // still shuts down: the callback holds no strong handle
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine {
            inner: std::sync::Arc::downgrade(&self.inner),
        }
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Clock {
        self.shared().key.clock()
    }

    /// Test hook: makes the aggregator thread panic on its next pass.
    #[doc(hidden)]
    pub fn inject_aggregator_panic(&self) {
        self.shared().inject_panic.store(true, Ordering::Relaxed);
        if let Some(h) = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            h.thread().unpark();
        }
    }
}

/// A handle that does not keep its engine alive; see [`Engine::downgrade`].
///
/// A window callback that needs its own engine should hold one of these: a strong [`Engine`]
/// captured by the callback would keep the engine (and its thread) alive forever.
#[derive(Clone, Debug)]
pub struct WeakEngine {
    inner: std::sync::Weak<Handle>,
}

impl WeakEngine {
    /// The engine, if a strong handle still exists.
    pub fn upgrade(&self) -> Option<Engine> {
        self.inner.upgrade().map(|inner| Engine { inner })
    }
}

static GLOBAL: OnceLock<Engine> = OnceLock::new();

/// The process-wide engine, started on first use with the settings of the environment
/// ([`Builder::from_env`]: `RINGMETER_*` variables and the `RINGMETER_CONFIG` file).
///
/// To have a bad setting stop start-up with its error, initialise it explicitly at the top of
/// `main` with `ringmeter::init_global(ringmeter::Builder::from_env()?)?`. Started lazily
/// (for instance by the first [`op!`](crate::op!)), it cannot return an error: a bad setting
/// is then reported on stderr and the engine starts with the defaults. It lives until the
/// process exits; call `ringmeter::global().shutdown()` at the end of `main` to close the
/// last, partial window. If its aggregator thread cannot be started, it runs without one
/// (see [`Builder::start_manual`]) and says so on stderr.
pub fn global() -> &'static Engine {
    GLOBAL.get_or_init(|| {
        let started = Builder::from_env().and_then(Builder::start);
        started.unwrap_or_else(|e| {
            eprintln!("ringmeter: {e}; the global engine starts with the default settings");
            Engine::builder().start().unwrap_or_else(|e| {
                eprintln!("ringmeter: {e}; the global engine aggregates only on flush()");
                Engine::builder()
                    .start_manual()
                    .expect("default settings are valid")
            })
        })
    })
}

/// Starts the process-wide engine from `builder`.
///
/// # Errors
/// [`Error::GlobalAlreadyInitialized`] if [`global`] was already used or initialised, and
/// the errors of [`Builder::start`].
pub fn init_global(builder: Builder) -> Result<&'static Engine, Error> {
    if GLOBAL.get().is_some() {
        return Err(Error::GlobalAlreadyInitialized);
    }
    let engine = builder.start()?;
    GLOBAL
        .set(engine)
        .map_err(|_| Error::GlobalAlreadyInitialized)?;
    Ok(global())
}

/// Cache behind [`op!`](crate::op!). Not for direct use.
#[doc(hidden)]
pub struct OpCache(OnceLock<Op>);

impl OpCache {
    #[doc(hidden)]
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    #[doc(hidden)]
    #[inline]
    pub fn get(&self, name: &'static str) -> Op {
        *self.0.get_or_init(|| {
            let engine = global();
            engine.op(name).unwrap_or_else(|e| {
                eprintln!("ringmeter: {e}; counting its calls under {OVERFLOW_OP}");
                engine.overflow_op()
            })
        })
    }
}

impl Default for OpCache {
    fn default() -> Self {
        Self::new()
    }
}

/// The handle of an operation of the [`global`] engine, resolved once per call site and
/// cached in a static, so later calls cost one load.
///
/// The name must be a string literal; an invalid name fails to compile. If the global
/// engine's operation table is full, calls are counted under [`OVERFLOW_OP`] (reported once on
/// stderr).
///
/// # Examples
/// ```
/// fn handle() -> u32 {
///     ringmeter::op!("http.handle").time(|| 200)
/// }
/// assert_eq!(handle(), 200);
/// ```
///
/// A bad name is a compile error:
/// ```compile_fail
/// let _ = ringmeter::op!("not a name");
/// ```
#[macro_export]
macro_rules! op {
    ($name:literal) => {{
        const _: () = ::core::assert!(
            $crate::validate_name($name).is_ok(),
            "invalid ringmeter operation name (see ringmeter::validate_name)"
        );
        static CACHE: $crate::OpCache = $crate::OpCache::new();
        CACHE.get($name)
    }};
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn callbacks_cannot_reenter_their_engine() {
        let (clock, mock) = Clock::mock();
        let engine = Engine::builder().clock(clock).start_manual().unwrap();
        let (tx, rx) = mpsc::channel();
        let inner = engine.clone();
        let other = Engine::builder().start_manual().unwrap();
        engine
            .on_window(move |_| {
                let own = (inner.flush(), inner.shutdown(), inner.on_window(|_| {}));
                // Another engine is not affected.
                tx.send((own, other.flush().is_ok())).unwrap();
            })
            .unwrap();
        engine.op("a").unwrap().record_ns(1);
        mock.advance(Duration::from_secs(3));
        engine.flush().unwrap();
        let ((f, s, o), other_ok) = rx.try_recv().expect("callback ran");
        assert!(matches!(f, Err(Error::CalledFromCallback)));
        assert!(matches!(s, Err(Error::CalledFromCallback)));
        assert!(matches!(o, Err(Error::CalledFromCallback)));
        assert!(other_ok);
        engine.shutdown().unwrap();
    }

    #[test]
    fn last_handle_dropped_inside_a_callback_still_shuts_down() {
        let engine = Engine::builder()
            .window(Duration::from_millis(10))
            .grace(Duration::from_millis(1))
            .start()
            .unwrap();
        let windows = engine.subscribe(1024);
        let (to_main, from_cb) = mpsc::channel();
        let (to_cb, from_main) = mpsc::channel::<()>();
        let weak = engine.downgrade();
        let from_main = StdMutex::new(from_main);
        engine
            .on_window(move |_| {
                if let Some(strong) = weak.upgrade() {
                    let _ = to_main.send(());
                    // Wait until the main thread has dropped its handle: ours is the last.
                    let _ = from_main
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(10));
                    drop(strong);
                }
            })
            .unwrap();
        engine.op("x").unwrap().record_ns(1);
        from_cb.recv_timeout(Duration::from_secs(10)).unwrap();
        drop(engine);
        to_cb.send(()).unwrap();
        // The thread runs its final pass and exits; the engine's state goes away and with it
        // the subscriber's sender.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match windows.receiver().recv_deadline(deadline) {
                Ok(_) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("engine still alive: {e:?}"),
            }
        }
    }

    #[test]
    fn overflow_op_is_reserved_and_counted() {
        let engine = Engine::builder().max_operations(1).start_manual().unwrap();
        engine.op("only").unwrap();
        assert!(matches!(
            engine.op("second"),
            Err(Error::TooManyOperations { limit: 1 })
        ));
        let overflow = engine.overflow_op();
        assert_eq!(overflow.id(), 0);
        assert_eq!(engine.op_name(overflow).as_deref(), Some(OVERFLOW_OP));
        overflow.record_ns(5);
        engine.shutdown().unwrap();
        assert_eq!(engine.snapshot().totals(OVERFLOW_OP).unwrap().count, 1);
    }
}
