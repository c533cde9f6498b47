//! [`Builder`]: an engine's settings, checked and turned into a running [`Engine`].

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::names::OVERFLOW_OP;
use super::reconfig::ConfigState;
use super::run::Pauses;
use super::{Engine, Inner};
use crate::aggregator::{Aggregator, AlertCallback, Settings, WindowCallback};
use crate::alert::{Alert, AlertRule, Evaluator};
use crate::clock::Clock;
use crate::config::source::{self, Layer};
use crate::config::Durability;
use crate::config::{Layers, Resolved, Rule, Rules};
use crate::error::Error;
use crate::hub::{Hub, HubSettings, Names};
use crate::limits::{
    DEFAULT_BUCKETS_NS, DEFAULT_DRAIN_INTERVAL, DEFAULT_GRACE, DEFAULT_HIGHEST_TRACKABLE,
    DEFAULT_IDLE_INTERVAL, DEFAULT_MAX_OPERATIONS, DEFAULT_RING_CAPACITY,
    DEFAULT_RSS_GROWTH_WINDOWS, DEFAULT_SIGNIFICANT_DIGITS, DEFAULT_WINDOW, MAX_BUCKETS,
    MAX_OPERATIONS, MAX_RING_CAPACITY, MAX_RSS_GROWTH_WINDOWS, MAX_SEGMENT_SIZE, MAX_WINDOW,
    MIN_SEGMENT_SIZE, MIN_WINDOW,
};
use crate::log::{check_dir_lock, LogConfig};
use crate::name::prometheus_name;
use crate::process::{ProcessGauges, ProcessSample, Sampler};
use crate::report::WindowReport;

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
    log: LogConfig,
    /// Exposition histogram bucket bounds, nanoseconds.
    buckets: Vec<u64>,
    alert_callbacks: Vec<AlertCallback>,
    /// The program's process sampler, if it gave one.
    process_sampler: Option<Sampler>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            layers: Layers::default(),
            file_pending: false,
            max_operations: DEFAULT_MAX_OPERATIONS,
            grace: DEFAULT_GRACE,
            drain_interval: DEFAULT_DRAIN_INTERVAL,
            idle_interval: DEFAULT_IDLE_INTERVAL,
            significant_digits: DEFAULT_SIGNIFICANT_DIGITS,
            highest_trackable: DEFAULT_HIGHEST_TRACKABLE,
            clock: None,
            callbacks: Vec::new(),
            log: LogConfig::new(""),
            buckets: DEFAULT_BUCKETS_NS.to_vec(),
            alert_callbacks: Vec::new(),
            process_sampler: None,
        }
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
    /// `RINGMETER_SAMPLE_EVERY`, `RINGMETER_RING_CAPACITY`, `RINGMETER_LOG_DIR` and
    /// `RINGMETER_LOG_DURABILITY`; every
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
    pub fn from_env_with(var: impl Fn(&str) -> Option<OsString>) -> Result<Self, Error> {
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
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.layers.file_path = Some(path.into());
        self.file_pending = true;
        self
    }

    /// Events each thread's ring holds (a power of two, 2 to 2^24; default 2^14, 256 KiB).
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
    /// capture a [`WeakEngine`](crate::WeakEngine) ([`Engine::downgrade`]): a captured [`Engine`] clone keeps the
    /// engine alive forever. A call from a callback that would wait, through other engines'
    /// callbacks, for a thread waiting for this engine returns [`Error::CallbackCycle`]
    /// instead of deadlocking.
    pub fn on_window(mut self, f: impl FnMut(&Arc<WindowReport>) + Send + 'static) -> Self {
        self.callbacks.push(Box::new(f));
        self
    }

    // --- Window log (see `crate::log`) -------------------------------------------------

    /// Persists every closed window in a memory-mapped log in `dir` (created if missing,
    /// without world access), readable with [`log::Reader`](crate::log::Reader) and the
    /// `ringmeter` CLI. Off by default. Faults never stop the engine: they are reported in
    /// [`Snapshot::log`](crate::Snapshot::log) and retried (see [`log`](crate::log)).
    ///
    /// Overrides `RINGMETER_LOG_DIR` and the configuration file's `log_dir`
    /// (see [`from_env`](Self::from_env)).
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.layers.api.log_dir = Some(dir.into());
        self
    }

    /// When the window log waits for its records to reach the disk (default
    /// [`Durability::OsWriteBack`](crate::log::Durability::OsWriteBack)): what survives a
    /// process kill and a power loss under each policy is in `docs/log-format.md`.
    /// Overrides `RINGMETER_LOG_DURABILITY` and the configuration file's `log_durability`
    /// (`"os"`, `"window"` or an interval such as `"250ms"`).
    ///
    /// # Examples
    /// ```
    /// use ringmeter::log::Durability;
    /// let engine = ringmeter::Engine::builder()
    ///     .log_durability(Durability::EachWindow)
    ///     .start_manual()?;
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn log_durability(mut self, durability: Durability) -> Self {
        self.layers.api.log_durability = Some(durability);
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
    pub fn alert(mut self, rule: AlertRule) -> Self {
        self.layers.api.alerts.push(rule);
        self
    }

    /// Calls `f` with the alert notices of every window close that has some, grouped: firing
    /// and resolved notices ordered by rule, then operation. Runs on the aggregator thread,
    /// like [`on_window`](Self::on_window) callbacks, with the same rules; a callback that
    /// panics is removed.
    pub fn on_alert(mut self, f: impl FnMut(&[Alert]) + Send + 'static) -> Self {
        self.alert_callbacks.push(Box::new(f));
        self
    }

    // --- Process gauges (see `crate::process`) -----------------------------------------

    /// Whether the aggregator samples the process's resources (memory, CPU time, threads,
    /// file descriptors) at every window close, for [`WindowReport::process`],
    /// [`Snapshot::process`](crate::Snapshot::process), the window log, the exposition and
    /// OTLP (default: on). Overrides the configuration file's `process_gauges`.
    ///
    /// # Examples
    /// ```
    /// let engine = ringmeter::Engine::builder().process_gauges(false).start_manual()?;
    /// engine.shutdown()?;
    /// assert!(engine.snapshot().process.is_none());
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn process_gauges(mut self, on: bool) -> Self {
        self.layers.api.process_gauges = Some(on);
        self
    }

    /// Rises of the resident memory from window to window, with no fall in between, that set
    /// the growth flag ([`ProcessStats::rss_growing`](crate::ProcessStats::rss_growing));
    /// 0 turns the flag off (default
    /// [`DEFAULT_RSS_GROWTH_WINDOWS`](crate::limits::DEFAULT_RSS_GROWTH_WINDOWS), at most
    /// [`MAX_RSS_GROWTH_WINDOWS`](crate::limits::MAX_RSS_GROWTH_WINDOWS)). Overrides the
    /// configuration file's `rss_growth_windows`.
    pub fn rss_growth_windows(mut self, windows: u32) -> Self {
        self.layers.api.rss_growth_windows = Some(windows);
        self
    }

    /// Takes the process's figures from `sampler` instead of reading them from the operating
    /// system: to add the heap figure of the program's allocator to
    /// [`ProcessReader::read`](crate::ProcessReader::read) (see
    /// [`ProcessSample::with_heap_bytes`]), or to feed made-up samples in tests. Called on the
    /// aggregator thread once per closed window; a sampler that panics is dropped and the
    /// figures are absent from then on.
    pub fn process_sampler(
        mut self,
        sampler: impl FnMut() -> ProcessSample + Send + 'static,
    ) -> Self {
        self.process_sampler = Some(Box::new(sampler));
        self
    }

    fn check_buckets(&self) -> Result<(), Error> {
        let b = &self.buckets;
        let reason = if b.is_empty() {
            "at least one bound"
        } else if b.len() > MAX_BUCKETS {
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

    fn check_log(&self, eff: &Layer) -> Result<(), Error> {
        let bad = |key: &str, value: String, reason: &str| Err(Error::invalid(key, value, reason));
        let size = self.log.segment_size;
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&size) {
            return bad("log_segment_size", size.to_string(), "4 KiB to 1 GiB");
        }
        if self.log.max_age == Some(Duration::ZERO) {
            return bad("log_retention", "max_age 0s".into(), "max_age above zero");
        }
        if let Some(Durability::Every(d)) = eff.log_durability {
            if d.is_zero() {
                return bad("log_durability", format!("{d:?}"), "an interval above zero");
            }
        }
        if let Some(dir) = &eff.log_dir {
            // One writer per directory: fail here rather than run without a log.
            if let Err(e) = check_dir_lock(dir) {
                return bad("log_dir", dir.display().to_string(), &e.to_string());
            }
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
        self.check_log(eff)?;
        self.check_buckets()?;
        fn bad(key: &'static str, value: impl fmt::Debug, reason: &'static str) -> Error {
            Error::invalid(key, format_args!("{value:?}"), reason)
        }
        let c = eff.ring_capacity.unwrap_or(DEFAULT_RING_CAPACITY);
        if !(2..=MAX_RING_CAPACITY).contains(&c) || !c.is_power_of_two() {
            return Err(bad("ring_capacity", c, "a power of two from 2 to 2^24"));
        }
        if !(1..=MAX_OPERATIONS).contains(&self.max_operations) {
            return Err(bad("max_operations", self.max_operations, "1 to 65535"));
        }
        let w = eff.window.unwrap_or(DEFAULT_WINDOW);
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&w) {
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
        if let Some(n) = eff
            .rss_growth_windows
            .filter(|&n| n > MAX_RSS_GROWTH_WINDOWS)
        {
            return Err(bad("rss_growth_windows", n, "0 (off) to 100000"));
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
    /// [`Error::InvalidConfig`] naming the first out-of-range setting (key `log_dir`, naming
    /// the holder's process id, when another writer holds the log directory), or
    /// [`Error::Spawn`].
    pub fn start(self) -> Result<Engine, Error> {
        self.launch(true)
    }

    /// Starts the engine without an aggregator thread: rings are drained, windows closed and
    /// snapshots published only by [`Engine::flush`] and [`Engine::shutdown`]. Deterministic,
    /// for tests with a mock clock.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first out-of-range setting (key `log_dir` when
    /// another writer holds the log directory).
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
        let compiled = Arc::new(eff.rules.compile()?);
        let window = eff.window.unwrap_or(DEFAULT_WINDOW);
        let ring_capacity = eff.ring_capacity.unwrap_or(DEFAULT_RING_CAPACITY);
        let clock = self.clock.take().unwrap_or_default();
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resolved = Arc::new(Resolved {
            compiled: Arc::clone(&compiled),
            kinds: vec![Arc::from("")],
        });
        let settings = Settings {
            engine_id: id,
            clock: clock.clone(),
            window,
            grace: self.grace,
            template,
            callbacks: std::mem::take(&mut self.callbacks),
            log: eff.log_dir.clone().map(|dir| LogConfig {
                dir,
                durability: eff.log_durability.unwrap_or_default(),
                ..self.log.clone()
            }),
            resolved: Arc::clone(&resolved),
            bucket_bounds: self.buckets.clone().into(),
            alerts: Evaluator::new(eff.alerts.clone())?,
            alert_callbacks: std::mem::take(&mut self.alert_callbacks),
            process: eff.process_gauges.unwrap_or(true).then(|| {
                ProcessGauges::new(
                    self.process_sampler.take(),
                    eff.rss_growth_windows.unwrap_or(DEFAULT_RSS_GROWTH_WINDOWS),
                )
            }),
        };
        let hub = Hub::new(HubSettings {
            id,
            clock,
            ring_capacity,
            max_operations: self.max_operations,
            resolved,
            names: Names::new(OVERFLOW_OP, prometheus_name(OVERFLOW_OP)),
        });
        let config = ConfigState {
            layers: self.layers,
            compiled,
            window,
            ring_capacity,
            log_dir: eff.log_dir,
            log_durability: eff.log_durability.unwrap_or_default(),
            process_gauges: eff.process_gauges,
            rss_growth_windows: eff.rss_growth_windows,
        };
        let inner = Arc::new(Inner::new(hub, Aggregator::new(settings), config));
        inner.apply_rules_in_force();
        let pauses = Pauses {
            drain: self.drain_interval,
            idle: self.idle_interval,
        };
        Engine::launch(inner, spawn.then_some(pauses))
    }
}
