//! The OTLP/HTTP push: a thread that sends every window of a [`Subscription`] (feature
//! `otlp`). It sits on top of the engine, beside `http`: the conversion to OTLP messages is
//! [`export::otlp`](crate::export::otlp), which knows nothing of engines or threads.
//!
//! The subscription is the bounded queue: the aggregator puts each closed window in it
//! without waiting and counts the windows that find it full
//! ([`Subscription::missed`]); this thread takes them one at a time, converts and posts each
//! one, retrying with exponential backoff, so a slow or dead collector costs queue slots and
//! then missed windows, never the aggregator's or the hot path's time.
//!
//! Started with [`OtlpExporter::start_counted`], the exporter also counts what became of each
//! window in engine counters ([`WINDOWS_COUNTER`] by `outcome`, [`RETRIES_COUNTER`]), so its
//! failures are in the snapshot, the exposition, the log and the next requests it sends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender};
use ureq::Agent;

use crate::aggregator::Subscription;
use crate::error::Error;
use crate::export::otlp::proto::resource::v1::Resource;
use crate::export::otlp::{encode, request, OtlpConfig, Resolved, CONTENT_TYPE};
use crate::metric::Counter;
use crate::report::{Snapshot, WindowReport};

/// The engine counter of an exporter started with [`OtlpExporter::start_counted`] that
/// counts windows by `outcome`: `sent`, `failed`, `missed`, as [`OtlpStats`] does
/// (`ringmeter_otlp_windows_total{outcome="failed"}` in the exposition).
pub const WINDOWS_COUNTER: &str = "ringmeter.otlp.windows";

/// The engine counter of an exporter started with [`OtlpExporter::start_counted`] that
/// counts requests repeated after a retryable failure ([`OtlpStats::retries`]).
pub const RETRIES_COUNTER: &str = "ringmeter.otlp.retries";

/// What an [`OtlpExporter`] has done so far. Every window it was handed is, in the end, in
/// exactly one of `sent`, `failed` and `missed`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpStats {
    /// Windows the endpoint accepted (a 2xx answer).
    pub sent: u64,
    /// Windows given up: rejected (an answer other than 2xx, 429, 502, 503, 504), retries
    /// exhausted, or still queued when the shutdown deadline passed.
    pub failed: u64,
    /// Windows that found the queue full and were never taken ([`Subscription::missed`]).
    pub missed: u64,
    /// Requests repeated after a retryable failure.
    pub retries: u64,
    /// The last failure (an HTTP status or a transport error), kept for diagnosis.
    pub last_error: Option<String>,
}

/// Counters shared between the thread and its handle (Relaxed: each is read on its own,
/// for reporting).
#[derive(Debug, Default)]
struct Shared {
    sent: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// The engine counters kept in step, when started with [`OtlpExporter::start_counted`].
    engine: Option<EngineCounters>,
}

/// An exporter's counts as engine counters.
#[derive(Debug)]
struct EngineCounters {
    sent: Counter,
    failed: Counter,
    missed: Counter,
    retries: Counter,
    /// The subscription's missed count already added to `missed`.
    missed_seen: AtomicU64,
}

impl EngineCounters {
    fn register(
        counter: impl Fn(&str, &[(&str, &str)]) -> Result<Counter, Error>,
    ) -> Result<Self, Error> {
        let windows = |outcome| counter(WINDOWS_COUNTER, &[("outcome", outcome)]);
        Ok(Self {
            sent: windows("sent")?,
            failed: windows("failed")?,
            missed: windows("missed")?,
            retries: counter(RETRIES_COUNTER, &[])?,
            missed_seen: AtomicU64::new(0),
        })
    }
}

impl Shared {
    fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = &self.engine {
            c.sent.increment(1);
        }
    }

    fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = &self.engine {
            c.failed.increment(1);
        }
    }

    fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = &self.engine {
            c.retries.increment(1);
        }
    }

    /// Brings the engine's missed counter up to the subscription's count (by increments, so
    /// that several exporters of one engine add up).
    fn sync_missed(&self, windows: &Subscription) {
        if let Some(c) = &self.engine {
            let now = windows.missed();
            let before = c.missed_seen.fetch_max(now, Ordering::Relaxed);
            if now > before {
                c.missed.increment(now - before);
            }
        }
    }
}

/// A background thread that pushes every closed window of an engine to an OTLP/HTTP endpoint
/// (feature `otlp`). Dropping it (or [`shutdown`](Self::shutdown)) sends what is still queued
/// within the configured shutdown timeout, then joins the thread.
///
/// # Examples
/// ```no_run
/// use ringmeter::{OtlpConfig, OtlpExporter};
///
/// let engine = ringmeter::Engine::builder().start()?;
/// let weak = engine.downgrade();
/// let exporter = OtlpExporter::start(
///     engine.subscribe(64),
///     move || weak.upgrade().map(|e| e.snapshot()),
///     &OtlpConfig::new().service_name("checkout"),
/// )?;
/// // ... the program runs; each closed window is posted to the collector ...
/// engine.shutdown()?; // closes the last windows
/// let stats = exporter.shutdown(); // sends them, then stops
/// println!("sent {} windows, {} failed", stats.sent, stats.failed);
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[derive(Debug)]
pub struct OtlpExporter {
    shared: Arc<Shared>,
    windows: Arc<Subscription>,
    stop: Option<Sender<Instant>>,
    thread: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl OtlpExporter {
    /// Starts a thread that posts every window `windows` receives, with the counters and
    /// gauges of the snapshot `snapshot` returns at that moment (`None`: none, e.g. when the
    /// engine is gone; pass a closure over a [`WeakEngine`](crate::WeakEngine) so the
    /// exporter does not keep the engine alive). The capacity given to
    /// [`Engine::subscribe`](crate::Engine::subscribe) is the queue's.
    ///
    /// # Errors
    /// From [`OtlpConfig::resolve`](crate::export::otlp::OtlpConfig::resolve) (invalid settings or
    /// `OTEL_*` values); [`Error::Spawn`] if the thread cannot be started.
    pub fn start(
        windows: Subscription,
        snapshot: impl Fn() -> Option<Arc<Snapshot>> + Send + 'static,
        config: &OtlpConfig,
    ) -> Result<OtlpExporter, Error> {
        let settings = config.resolve()?;
        Self::start_resolved(windows, snapshot, settings)
    }

    /// As [`start`](Self::start), with settings already resolved.
    ///
    /// # Errors
    /// [`Error::Spawn`] if the thread cannot be started.
    pub fn start_resolved(
        windows: Subscription,
        snapshot: impl Fn() -> Option<Arc<Snapshot>> + Send + 'static,
        settings: Resolved,
    ) -> Result<OtlpExporter, Error> {
        Self::launch(windows, Box::new(snapshot), settings, None)
    }

    /// As [`start`](Self::start), and keeps what became of each window in counters too,
    /// registered through `counter` (pass `|name, labels| engine.counter(name, labels)`):
    /// [`WINDOWS_COUNTER`] with the label `outcome` = `sent`, `failed` or `missed`, and
    /// [`RETRIES_COUNTER`]. Registered in the engine, they are in its snapshots, its exposition
    /// (`ringmeter_otlp_windows_total{outcome="failed"}`), its log, and the requests sent once
    /// the collector is back. `missed` is brought up to date whenever the thread takes a
    /// window and when [`stats`](Self::stats) or [`shutdown`](Self::shutdown) is called.
    /// Several exporters of one engine add to the same counters.
    ///
    /// # Examples
    /// ```no_run
    /// use ringmeter::{OtlpConfig, OtlpExporter};
    ///
    /// let engine = ringmeter::Engine::builder().start()?;
    /// let weak = engine.downgrade();
    /// let exporter = OtlpExporter::start_counted(
    ///     engine.subscribe(64),
    ///     move || weak.upgrade().map(|e| e.snapshot()),
    ///     &OtlpConfig::new(),
    ///     |name, labels| engine.counter(name, labels),
    /// )?;
    /// // ... `ringmeter_otlp_windows_total{outcome="failed"}` in the exposition ...
    /// engine.shutdown()?;
    /// exporter.shutdown();
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`start`](Self::start); the first error of `counter` (for an engine, no room for
    /// the four series: [`MAX_SERIES`](crate::limits::MAX_SERIES)).
    pub fn start_counted(
        windows: Subscription,
        snapshot: impl Fn() -> Option<Arc<Snapshot>> + Send + 'static,
        config: &OtlpConfig,
        counter: impl Fn(&str, &[(&str, &str)]) -> Result<Counter, Error>,
    ) -> Result<OtlpExporter, Error> {
        let settings = config.resolve()?;
        let counters = EngineCounters::register(counter)?;
        Self::launch(windows, Box::new(snapshot), settings, Some(counters))
    }

    fn launch(
        windows: Subscription,
        snapshot: SnapshotFn,
        settings: Resolved,
        counters: Option<EngineCounters>,
    ) -> Result<OtlpExporter, Error> {
        let shared = Arc::new(Shared {
            engine: counters,
            ..Shared::default()
        });
        let windows = Arc::new(windows);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_global(Some(settings.timeout))
            .build()
            .into();
        let shutdown_timeout = settings.shutdown_timeout;
        let mut worker = Worker {
            shared: Arc::clone(&shared),
            windows: Arc::clone(&windows),
            stop: stop_rx,
            deadline: None,
            snapshot,
            resource: settings.resource(),
            settings,
            agent,
            counters_start: None,
            bounds: Arc::from(Vec::new()),
        };
        let thread = std::thread::Builder::new()
            .name("ringmeter-otlp".to_owned())
            .spawn(move || worker.run())
            .map_err(Error::Spawn)?;
        Ok(OtlpExporter {
            shared,
            windows,
            stop: Some(stop_tx),
            thread: Some(thread),
            shutdown_timeout,
        })
    }

    /// The counts so far.
    pub fn stats(&self) -> OtlpStats {
        self.shared.sync_missed(&self.windows);
        OtlpStats {
            sent: self.shared.sent.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            missed: self.windows.missed(),
            retries: self.shared.retries.load(Ordering::Relaxed),
            last_error: self
                .shared
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// Whether the thread still runs: it ends by itself once the engine has shut down and
    /// every window it closed was handled.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Sends the windows still queued (until the shutdown timeout; a request already in
    /// flight may run to its own timeout), stops the thread and returns the final counts.
    /// Windows still queued then are counted as failed.
    pub fn shutdown(mut self) -> OtlpStats {
        self.stop_and_join();
        self.stats()
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The thread may have ended already (its subscription closed): nothing to tell.
            let _ = stop.try_send(Instant::now() + self.shutdown_timeout);
        }
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has nothing left to clean up here.
            let _ = thread.join();
        }
        // Windows that arrived after the thread's last look: never sent.
        while self.windows.try_recv().is_some() {
            self.shared.failed();
        }
        self.shared.sync_missed(&self.windows);
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

type SnapshotFn = Box<dyn Fn() -> Option<Arc<Snapshot>> + Send>;

struct Worker {
    shared: Arc<Shared>,
    windows: Arc<Subscription>,
    stop: Receiver<Instant>,
    /// Set once a stop arrives: the time by which every queued window must be sent or given up.
    deadline: Option<Instant>,
    snapshot: SnapshotFn,
    resource: Resource,
    settings: Resolved,
    agent: Agent,
    /// Start of the first window seen: the start of the cumulative counters.
    counters_start: Option<u64>,
    /// The latest bucket bounds seen (kept for when the engine is gone).
    bounds: Arc<[u64]>,
}

/// How one request ended.
enum Outcome {
    Sent,
    /// Worth another try, after at least this long (a `Retry-After`).
    Retry(Option<Duration>),
    Rejected,
}

impl Worker {
    fn run(&mut self) {
        loop {
            if self.deadline.is_some() {
                // Stopping: send what is queued, then end.
                while let Ok(w) = self.windows.receiver().try_recv() {
                    self.send(&w);
                }
                return;
            }
            let windows = Arc::clone(&self.windows);
            select! {
                recv(windows.receiver()) -> w => match w {
                    Ok(w) => self.send(&w),
                    // The engine is gone and every window it sent was taken.
                    Err(_) => return,
                },
                recv(self.stop) -> deadline => {
                    self.deadline = Some(deadline.unwrap_or_else(|_| Instant::now()));
                }
            }
        }
    }

    /// Sends one window, retrying as configured; counts it as sent or failed.
    fn send(&mut self, window: &WindowReport) {
        self.shared.sync_missed(&self.windows);
        let snap = (self.snapshot)();
        if let Some(s) = &snap {
            if !s.bucket_bounds_ns.is_empty() {
                self.bounds = Arc::clone(&s.bucket_bounds_ns);
            }
        }
        let counters_start = *self.counters_start.get_or_insert(window.start_unix_ns);
        let (counters, gauges) = match &snap {
            Some(s) => (&s.counters[..], &s.gauges[..]),
            None => (&[][..], &[][..]),
        };
        let body = encode(&request(
            &self.resource,
            window,
            &self.bounds,
            counters,
            gauges,
            counters_start,
        ));
        let mut backoff = self.settings.initial_backoff;
        for attempt in 1..=self.settings.attempts {
            if self.past_deadline() {
                break;
            }
            let wait = match self.post(&body) {
                Outcome::Sent => {
                    self.shared.sent();
                    return;
                }
                Outcome::Rejected => break,
                Outcome::Retry(after) => after.unwrap_or(backoff).min(self.settings.max_backoff),
            };
            if attempt == self.settings.attempts {
                break;
            }
            backoff = backoff.saturating_mul(2).min(self.settings.max_backoff);
            if !self.sleep(wait) {
                break;
            }
            self.shared.retried();
        }
        self.shared.failed();
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Waits `wait`, less if a stop arrives and its deadline comes first; false when the
    /// deadline leaves no time for another attempt.
    fn sleep(&mut self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        loop {
            let now = Instant::now();
            if let Some(d) = self.deadline {
                if d <= until {
                    return false;
                }
            }
            if now >= until {
                return true;
            }
            if self.deadline.is_some() {
                std::thread::sleep(until - now);
                continue;
            }
            match self.stop.recv_timeout(until - now) {
                Ok(d) => self.deadline = Some(d),
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => self.deadline = Some(Instant::now()),
            }
        }
    }

    fn post(&self, body: &[u8]) -> Outcome {
        let mut timeout = self.settings.timeout;
        if let Some(d) = self.deadline {
            timeout = timeout.min(d.saturating_duration_since(Instant::now()));
        }
        let result = self
            .agent
            .post(&self.settings.endpoint)
            .config()
            .timeout_global(Some(timeout.max(Duration::from_millis(1))))
            .build()
            .header("Content-Type", CONTENT_TYPE)
            .send(body);
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                if (200..300).contains(&status) {
                    return Outcome::Sent;
                }
                self.note(format!("{} answered HTTP {status}", self.settings.endpoint));
                match status {
                    429 | 502 | 503 | 504 => Outcome::Retry(
                        response
                            .headers()
                            .get("Retry-After")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs),
                    ),
                    _ => Outcome::Rejected,
                }
            }
            Err(e) => {
                self.note(format!("posting to {}: {e}", self.settings.endpoint));
                Outcome::Retry(None)
            }
        }
    }

    fn note(&self, error: String) {
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
    }
}
