//! Shared pieces of the comparison benches: the CPU-time meter, one adapter per peer crate
//! behind the [`Peer`] and [`Local`] traits, persistent worker threads for the two-thread
//! scenario, and a counting global allocator for the heap scenario.
//!
//! Every adapter records into its crate the way that crate's documentation shows, checks
//! that what was recorded arrived (`count`), and says which scenarios it can take part in.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringmeter::facade::tracing::Timing;
use ringmeter::{Engine, Op, TracingLayer};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

/// Calls timed between two untimed drains (flush, upkeep, span collection). A ring of twice
/// this never fills, and fastrace's per-thread span queue holds it.
pub const CHUNK: u64 = 4096;
/// A pre-measured duration, in nanoseconds.
pub const PRE_MEASURED_NS: u64 = 1_250;

// ---------------------------------------------------------------------------------------------
// Time

/// What a scenario's time is: the measuring thread's CPU time (default), so that other
/// processes on a shared machine do not inflate it, or wall time
/// (`RINGMETER_BENCH_CLOCK=wall`). The cost of reading the clock, calibrated once, is
/// subtracted from every timed interval. The same meter as the library's `benches/hot_path.rs`.
pub struct Meter {
    cpu: bool,
    origin: Instant,
    overhead: Duration,
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    // From the C library std links on Linux; no dependency needed.
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

/// Linux `CLOCK_THREAD_CPUTIME_ID`.
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

/// CPU time consumed by the calling thread.
pub fn thread_cpu_time() -> Duration {
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `struct timespec` (two 64-bit fields on x86_64 Linux).
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The process's meter, calibrated on first use.
pub fn meter() -> &'static Meter {
    static METER: OnceLock<Meter> = OnceLock::new();
    METER.get_or_init(|| {
        let cpu = match std::env::var("RINGMETER_BENCH_CLOCK").as_deref() {
            Ok("wall") => false,
            Ok("cpu") | Err(_) => true,
            Ok(other) => panic!("RINGMETER_BENCH_CLOCK={other}: expected cpu or wall"),
        };
        let mut m = Meter {
            cpu,
            origin: Instant::now(),
            overhead: Duration::ZERO,
        };
        let mut empty: Vec<Duration> = (0..1001)
            .map(|_| {
                let t0 = m.stamp();
                m.stamp() - t0
            })
            .collect();
        empty.sort_unstable();
        m.overhead = empty[empty.len() / 2];
        println!(
            "compare-bench: clock {}, reading overhead {:?} (subtracted from every timed interval)",
            if cpu { "thread-cpu" } else { "wall" },
            m.overhead
        );
        m
    })
}

impl Meter {
    fn stamp(&self) -> Duration {
        if self.cpu {
            thread_cpu_time()
        } else {
            self.origin.elapsed()
        }
    }
}

/// Starts a timed interval on the calling thread.
pub fn begin() -> Duration {
    meter().stamp()
}

/// Time since `t0` (from [`begin`] on the same thread), less the clock's own cost.
pub fn since(t0: Duration) -> Duration {
    let m = meter();
    m.stamp().saturating_sub(t0).saturating_sub(m.overhead)
}

/// The quanta clock the peers without a timer of their own use (the same TSC reads as
/// ringmeter's clock), calibrated once.
pub fn quanta_clock() -> quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new).clone()
}

// ---------------------------------------------------------------------------------------------
// Peers

/// One crate set up to record latencies, shared by the recording threads.
pub trait Peer: Send + Sync + 'static {
    /// What each recording thread holds.
    type Local: Local;
    /// Whether the crate takes a pre-measured value (a tracing span only times).
    const RECORDS: bool = true;
    /// Whether the crate can time a call.
    const TIMES: bool = true;
    /// A recording handle for the calling thread.
    fn local(&self) -> Self::Local;
    /// Untimed, between chunks, after every thread's [`Local::sync`]: what the crate's
    /// reader or upkeep task would do (aggregate, drain a bucket, flush).
    fn drain(&self) {}
    /// Values aggregated so far (after `sync`, `drain`, and any `Local` dropped).
    fn count(&self) -> u64;
}

/// A thread's recording handle.
pub trait Local {
    /// Clock pair around an empty body plus the record (the crate's own timer where it has one).
    fn timed(&mut self);
    /// Records a pre-measured value in nanoseconds.
    fn record(&mut self, ns: u64);
    /// Untimed, between chunks: hand thread-local state to the shared side.
    fn sync(&mut self) {}
}

/// ringmeter on a manual engine (no aggregator thread), flushed between chunks.
pub struct Ringmeter {
    /// The engine.
    pub engine: Engine,
    /// The operation recorded.
    pub op: Op,
    name: String,
}

impl Ringmeter {
    /// A manual engine with a ring of `ring` events and one operation `name`.
    pub fn manual(ring: usize, name: &str) -> Self {
        let engine = Engine::builder()
            .ring_capacity(ring)
            .start_manual()
            .expect("manual engine");
        Self::with(engine, name)
    }

    /// `name` on `engine`.
    pub fn with(engine: Engine, name: &str) -> Self {
        let op = engine.op(name).expect("op");
        Self {
            engine,
            op,
            name: name.to_owned(),
        }
    }

    /// (recorded, dropped, unsampled-or-zero) after a flush.
    pub fn totals(&self) -> (u64, u64) {
        self.engine.flush().expect("flush");
        let snap = self.engine.snapshot();
        snap.totals(&self.name)
            .map_or((0, 0), |s| (s.count, s.dropped))
    }
}

impl Peer for Ringmeter {
    type Local = Op;
    fn local(&self) -> Op {
        self.op
    }
    fn drain(&self) {
        self.engine.flush().expect("flush");
    }
    fn count(&self) -> u64 {
        let (count, dropped) = self.totals();
        assert_eq!(dropped, 0, "{}: dropped events", self.name);
        count
    }
}

impl Local for Op {
    #[inline(always)]
    fn timed(&mut self) {
        let t = self.start();
        drop(t);
    }
    #[inline(always)]
    fn record(&mut self, ns: u64) {
        self.record_ns(ns);
    }
}

/// The `metrics` facade with metrics-exporter-prometheus's recorder installed globally
/// (recorder only, no HTTP listener); `run_upkeep` between chunks drains its buckets.
pub struct Facade {
    handle: metrics_exporter_prometheus::PrometheusHandle,
    hist: metrics::Histogram,
    name: String,
}

/// The process's Prometheus recorder, installed as the `metrics` global recorder once.
pub fn facade_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("first global recorder");
            handle
        })
        .clone()
}

impl Facade {
    /// A histogram `name` (unique per instance, so counts are per instance).
    pub fn new(name: &str) -> Self {
        let handle = facade_handle();
        let hist = metrics::histogram!(name.to_owned());
        Self {
            handle,
            hist,
            name: name.to_owned(),
        }
    }
}

impl Peer for Facade {
    type Local = (quanta::Clock, metrics::Histogram);
    fn local(&self) -> Self::Local {
        (quanta_clock(), self.hist.clone())
    }
    fn drain(&self) {
        self.handle.run_upkeep();
    }
    fn count(&self) -> u64 {
        let text = self.handle.render();
        let key = format!("{}_count ", self.name);
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map_or(0, |v| v.trim().parse::<f64>().expect("count") as u64)
    }
}

impl Local for (quanta::Clock, metrics::Histogram) {
    #[inline(always)]
    fn timed(&mut self) {
        let a = self.0.raw();
        let z = self.0.raw();
        self.1.record(self.0.delta_as_nanos(a, z) as f64);
    }
    #[inline(always)]
    fn record(&mut self, ns: u64) {
        self.1.record(ns as f64);
    }
}

/// metrics-util's `AtomicBucket` (what the Prometheus recorder stores histogram values in),
/// shared by the threads; drained with `clear_with` between chunks.
pub struct Bucket {
    bucket: Arc<metrics_util::storage::AtomicBucket<u64>>,
    drained: AtomicU64,
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            bucket: Arc::new(metrics_util::storage::AtomicBucket::new()),
            drained: AtomicU64::new(0),
        }
    }
}

impl Peer for Bucket {
    type Local = (quanta::Clock, Arc<metrics_util::storage::AtomicBucket<u64>>);
    fn local(&self) -> Self::Local {
        (quanta_clock(), Arc::clone(&self.bucket))
    }
    fn drain(&self) {
        self.bucket.clear_with(|values| {
            self.drained
                .fetch_add(values.len() as u64, Ordering::Relaxed);
        });
    }
    fn count(&self) -> u64 {
        self.drain();
        self.drained.load(Ordering::Relaxed)
    }
}

impl Local for (quanta::Clock, Arc<metrics_util::storage::AtomicBucket<u64>>) {
    #[inline(always)]
    fn timed(&mut self) {
        let a = self.0.raw();
        let z = self.0.raw();
        self.1.push(self.0.delta_as_nanos(a, z));
    }
    #[inline(always)]
    fn record(&mut self, ns: u64) {
        self.1.push(ns);
    }
}

fn prometheus_histogram(name: &str) -> prometheus::Histogram {
    prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(name, "compare"))
        .expect("histogram")
}

/// prometheus `Histogram`, shared by the threads: `observe` (seconds) and `start_timer`.
pub struct PromShared(prometheus::Histogram);

impl PromShared {
    /// A histogram `name` with the default buckets.
    pub fn new(name: &str) -> Self {
        Self(prometheus_histogram(name))
    }
}

impl Peer for PromShared {
    type Local = prometheus::Histogram;
    fn local(&self) -> Self::Local {
        self.0.clone()
    }
    fn count(&self) -> u64 {
        self.0.get_sample_count()
    }
}

impl Local for prometheus::Histogram {
    #[inline(always)]
    fn timed(&mut self) {
        let t = self.start_timer();
        drop(t);
    }
    #[inline(always)]
    fn record(&mut self, ns: u64) {
        self.observe(ns as f64 * 1e-9);
    }
}

/// prometheus `Histogram::local()`: one `LocalHistogram` per thread, flushed into the shared
/// histogram by the recording thread every 1024 values (inside the timing, as a user does).
pub struct PromLocal(prometheus::Histogram);

impl PromLocal {
    /// A histogram `name` with the default buckets.
    pub fn new(name: &str) -> Self {
        Self(prometheus_histogram(name))
    }
}

/// Values a thread observes between two flushes of its `LocalHistogram`.
pub const PROM_LOCAL_FLUSH: u32 = 1024;

/// A thread's `LocalHistogram` and the values observed since its last flush.
pub struct PromLocalHandle(prometheus::local::LocalHistogram, u32);

impl Peer for PromLocal {
    type Local = PromLocalHandle;
    fn local(&self) -> Self::Local {
        PromLocalHandle(self.0.local(), 0)
    }
    fn count(&self) -> u64 {
        self.0.get_sample_count()
    }
}

impl PromLocalHandle {
    #[inline(always)]
    fn tick(&mut self) {
        self.1 += 1;
        if self.1 == PROM_LOCAL_FLUSH {
            self.0.flush();
            self.1 = 0;
        }
    }
}

impl Local for PromLocalHandle {
    #[inline(always)]
    fn timed(&mut self) {
        let t = self.0.start_timer();
        drop(t);
        self.tick();
    }
    #[inline(always)]
    fn record(&mut self, ns: u64) {
        self.0.observe(ns as f64 * 1e-9);
        self.tick();
    }
    fn sync(&mut self) {
        self.0.flush();
        self.1 = 0;
    }
}

impl Drop for PromLocalHandle {
    fn drop(&mut self) {
        self.0.flush();
    }
}

/// metriken's `AtomicCounterHistogram` (grouping power 7, values up to 2^64), shared.
pub struct Metriken(Arc<metriken::histogram::AtomicCounterHistogram>);

impl Default for Metriken {
    fn default() -> Self {
        Self(Arc::new(metriken::histogram::AtomicCounterHistogram::new(
            7, 64,
        )))
    }
}

impl Peer for Metriken {
    type Local = (
        quanta::Clock,
        Arc<metriken::histogram::AtomicCounterHistogram>,
    );
    fn local(&self) -> Self::Local {
        (quanta_clock(), Arc::clone(&self.0))
    }
    fn count(&self) -> u64 {
        self.0
            .load()
            .map_or(0, |h| h.as_slice().iter().copied().sum::<u64>())
    }
}

impl Local
    for (
        quanta::Clock,
        Arc<metriken::histogram::AtomicCounterHistogram>,
    )
{
    #[inline(always)]
    fn timed(&mut self) {
        let a = self.0.raw();
        let z = self.0.raw();
        let _ = self.1.increment(self.0.delta_as_nanos(a, z));
    }
    #[inline(always)]
    fn record(&mut self, ns: u64) {
        let _ = self.1.increment(ns);
    }
}

/// The HdrHistogram every hdrhistogram adapter uses: 1 ns to 60 s, 3 significant digits
/// (ringmeter's default precision and range).
pub fn hdr() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram")
}

/// hdrhistogram owned by each thread (no sharing); counts handed over between chunks.
#[derive(Default)]
pub struct HdrOwned(Arc<AtomicU64>);

/// A thread's own HdrHistogram.
pub struct HdrOwnedLocal {
    clock: quanta::Clock,
    hist: hdrhistogram::Histogram<u64>,
    total: Arc<AtomicU64>,
}

impl Peer for HdrOwned {
    type Local = HdrOwnedLocal;
    fn local(&self) -> Self::Local {
        HdrOwnedLocal {
            clock: quanta_clock(),
            hist: hdr(),
            total: Arc::clone(&self.0),
        }
    }
    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Local for HdrOwnedLocal {
    #[inline(always)]
    fn timed(&mut self) {
        let a = self.clock.raw();
        let z = self.clock.raw();
        self.hist.saturating_record(self.clock.delta_as_nanos(a, z));
    }
    #[inline(always)]
    fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns);
    }
    fn sync(&mut self) {
        self.total.fetch_add(self.hist.len(), Ordering::Relaxed);
        self.hist.reset();
    }
}

impl Drop for HdrOwnedLocal {
    fn drop(&mut self) {
        self.sync();
    }
}

/// One HdrHistogram behind a `Mutex`, shared by the threads.
pub struct HdrMutex(Arc<Mutex<hdrhistogram::Histogram<u64>>>);

impl Default for HdrMutex {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(hdr())))
    }
}

impl Peer for HdrMutex {
    type Local = (quanta::Clock, Arc<Mutex<hdrhistogram::Histogram<u64>>>);
    fn local(&self) -> Self::Local {
        (quanta_clock(), Arc::clone(&self.0))
    }
    fn count(&self) -> u64 {
        self.0.lock().expect("lock").len()
    }
}

impl Local for (quanta::Clock, Arc<Mutex<hdrhistogram::Histogram<u64>>>) {
    #[inline(always)]
    fn timed(&mut self) {
        let a = self.0.raw();
        let z = self.0.raw();
        let ns = self.0.delta_as_nanos(a, z);
        self.1.lock().expect("lock").saturating_record(ns);
    }
    #[inline(always)]
    fn record(&mut self, ns: u64) {
        self.1.lock().expect("lock").saturating_record(ns);
    }
}

/// hdrhistogram's `sync::SyncHistogram` with one `Recorder` per thread; the reader merges
/// with `refresh` (counted once the recorders are dropped, as `refresh` waits for live ones).
pub struct HdrSync(Mutex<hdrhistogram::sync::SyncHistogram<u64>>);

impl Default for HdrSync {
    fn default() -> Self {
        Self(Mutex::new(hdr().into_sync()))
    }
}

impl Peer for HdrSync {
    type Local = (quanta::Clock, hdrhistogram::sync::Recorder<u64>);
    fn local(&self) -> Self::Local {
        (quanta_clock(), self.0.lock().expect("lock").recorder())
    }
    fn count(&self) -> u64 {
        let mut s = self.0.lock().expect("lock");
        s.refresh_timeout(Duration::from_secs(5));
        s.len()
    }
}

impl Local for (quanta::Clock, hdrhistogram::sync::Recorder<u64>) {
    #[inline(always)]
    fn timed(&mut self) {
        let a = self.0.raw();
        let z = self.0.raw();
        self.1.saturating_record(self.0.delta_as_nanos(a, z));
    }
    #[inline(always)]
    fn record(&mut self, ns: u64) {
        self.1.saturating_record(ns);
    }
}

/// fastrace `LocalSpan`s under a per-thread `LocalCollector`, collected between chunks.
/// A span only times: it takes no pre-measured value.
#[derive(Default)]
pub struct Fastrace(Arc<AtomicU64>);

/// A thread's span collector and the shared span count.
pub struct FastraceLocal {
    collector: Option<fastrace::local::LocalCollector>,
    total: Arc<AtomicU64>,
}

impl Peer for Fastrace {
    type Local = FastraceLocal;
    const RECORDS: bool = false;
    fn local(&self) -> Self::Local {
        FastraceLocal {
            collector: Some(fastrace::local::LocalCollector::start()),
            total: Arc::clone(&self.0),
        }
    }
    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Local for FastraceLocal {
    #[inline(always)]
    fn timed(&mut self) {
        let span = fastrace::local::LocalSpan::enter_with_local_parent("compare.op");
        drop(span);
    }
    fn record(&mut self, _ns: u64) {
        unreachable!("a span takes no pre-measured value")
    }
    fn sync(&mut self) {
        if let Some(c) = self.collector.take() {
            let spans = c.collect();
            let n = spans
                .to_span_records(fastrace::collector::SpanContext::random())
                .len();
            self.total.fetch_add(n as u64, Ordering::Relaxed);
        }
        self.collector = Some(fastrace::local::LocalCollector::start());
    }
}

impl Drop for FastraceLocal {
    fn drop(&mut self) {
        self.sync();
        self.collector = None;
    }
}

/// The span every `tracing` peer times.
pub const SPAN: &str = "compare.span";

/// A `tracing` subscriber (the registry and one layer) that each recording thread installs as
/// its default; a call is `info_span!("compare.span").in_scope(|| ())`: the span created,
/// entered, exited and closed. A span only times: it takes no pre-measured value.
pub struct TracingSpans {
    dispatch: Dispatch,
    count: Box<dyn Fn(&Dispatch) -> u64 + Send + Sync>,
    drain: Box<dyn Fn() + Send + Sync>,
}

/// The spans closed, counted by the floor's layer.
struct CountCloses(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountCloses {
    fn on_close(&self, _id: tracing::span::Id, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl TracingSpans {
    /// The floor: the registry's own span bookkeeping, with a layer that only counts closes.
    pub fn registry() -> Self {
        let closed = Arc::new(AtomicU64::new(0));
        let layer = CountCloses(Arc::clone(&closed));
        Self {
            dispatch: Dispatch::new(tracing_subscriber::registry().with(layer)),
            count: Box::new(move |_| closed.load(Ordering::Relaxed)),
            drain: Box::new(|| {}),
        }
    }

    /// ringmeter's `TracingLayer` on a manual engine (ring of `ring` events), flushed between
    /// chunks.
    pub fn ringmeter(ring: usize, timing: Timing) -> Self {
        let engine = Engine::builder()
            .ring_capacity(ring)
            .start_manual()
            .expect("manual engine");
        let layer = TracingLayer::new(&engine).timing(timing);
        let (e1, e2) = (engine.clone(), engine);
        Self {
            dispatch: Dispatch::new(tracing_subscriber::registry().with(layer)),
            count: Box::new(move |_| {
                e1.flush().expect("flush");
                let snap = e1.snapshot();
                let s = snap.totals(SPAN).cloned().unwrap_or_default();
                assert_eq!(s.dropped, 0, "ringmeter layer: dropped events");
                s.count
            }),
            drain: Box::new(move || e2.flush().expect("flush")),
        }
    }

    /// tracing-timing's `TimingLayer` with span close events, so that a span without events
    /// records its creation-to-close time (as a "close" event) into the histogram of the span's
    /// name. It is read (`force_synchronize`) only when counting: synchronizing clears the
    /// threads' recorders, which the next span would then rebuild.
    pub fn tracing_timing() -> Self {
        let layer = tracing_timing::Builder::default()
            .span_close_events()
            .layer(|| tracing_timing::Histogram::new_with_max(1_000_000_000, 3).expect("bounds"));
        let downcaster = layer.downcaster();
        Self {
            dispatch: Dispatch::new(tracing_subscriber::registry().with(layer)),
            count: Box::new(move |d| {
                let layer = downcaster.downcast(d).expect("the tracing-timing layer");
                layer.force_synchronize();
                layer.with_histograms(|hs| {
                    hs.get_mut(SPAN)
                        .and_then(|events| events.get_mut("close"))
                        .map_or(0, |h| h.len())
                })
            }),
            drain: Box::new(|| {}),
        }
    }
}

impl Peer for TracingSpans {
    type Local = TracingLocal;
    const RECORDS: bool = false;
    fn local(&self) -> TracingLocal {
        TracingLocal {
            _default: tracing::dispatcher::set_default(&self.dispatch),
        }
    }
    fn drain(&self) {
        (self.drain)();
    }
    fn count(&self) -> u64 {
        (self.count)(&self.dispatch)
    }
}

/// The subscriber installed as the thread's default while the handle lives.
pub struct TracingLocal {
    _default: tracing::dispatcher::DefaultGuard,
}

impl Local for TracingLocal {
    #[inline(always)]
    fn timed(&mut self) {
        tracing::info_span!("compare.span").in_scope(|| black_box(()));
    }
    fn record(&mut self, _ns: u64) {
        unreachable!("a span takes no pre-measured value")
    }
}

// ---------------------------------------------------------------------------------------------
// Scenario drivers

/// Which call a scenario times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// [`Local::timed`].
    Timed,
    /// [`Local::record`] of [`PRE_MEASURED_NS`].
    Record,
}

#[inline(always)]
fn call<L: Local>(l: &mut L, what: Call) {
    match what {
        Call::Timed => l.timed(),
        Call::Record => l.record(black_box(PRE_MEASURED_NS)),
    }
}

/// Checks before timing that `n` calls through a fresh handle arrive, exactly.
pub fn check<P: Peer>(peer: &P, label: &str, what: Call, n: u64) {
    let c0 = peer.count();
    {
        let mut l = peer.local();
        for _ in 0..n {
            call(&mut l, what);
        }
        l.sync();
    }
    peer.drain();
    let c1 = peer.count();
    assert_eq!(c1 - c0, n, "{label}: calls lost");
}

/// Times `iters` calls on one thread in chunks of [`CHUNK`], with the untimed `sync` and
/// `drain` between chunks.
pub fn chunked<P: Peer>(peer: &P, l: &mut P::Local, what: Call, iters: u64) -> Duration {
    let mut left = iters;
    let mut spent = Duration::ZERO;
    while left > 0 {
        let n = left.min(CHUNK);
        let t0 = begin();
        for _ in 0..n {
            call(l, what);
        }
        spent += since(t0);
        l.sync();
        peer.drain();
        left -= n;
    }
    spent
}

/// Persistent recording threads (start-up, registration and first-touch page faults stay out
/// of the timings), each with its own [`Local`] for the whole run.
pub struct Workers {
    jobs: Vec<mpsc::Sender<u64>>,
    done: mpsc::Receiver<Duration>,
    handles: Vec<JoinHandle<()>>,
    /// Calls issued in all threads so far.
    pub issued: Arc<AtomicU64>,
}

impl Workers {
    /// `n` threads recording into `peer`: per request every thread times `iters` calls in
    /// chunks of [`CHUNK`], all threads starting each chunk together at a barrier; between
    /// chunks each thread syncs and thread 0 drains (untimed).
    pub fn new<P: Peer>(peer: Arc<P>, n: usize, what: Call) -> Self {
        let barrier = Arc::new(Barrier::new(n));
        let issued = Arc::new(AtomicU64::new(0));
        let (done_tx, done) = mpsc::channel();
        let mut jobs = Vec::new();
        let mut handles = Vec::new();
        for i in 0..n {
            let (tx, rx) = mpsc::channel::<u64>();
            let (peer, barrier, done_tx, issued) = (
                Arc::clone(&peer),
                Arc::clone(&barrier),
                done_tx.clone(),
                Arc::clone(&issued),
            );
            handles.push(std::thread::spawn(move || {
                let mut l = peer.local();
                for iters in rx {
                    issued.fetch_add(iters, Ordering::Relaxed);
                    let mut left = iters;
                    let mut spent = Duration::ZERO;
                    while left > 0 {
                        let k = left.min(CHUNK);
                        barrier.wait();
                        let t0 = begin();
                        for _ in 0..k {
                            call(&mut l, what);
                        }
                        spent += since(t0);
                        l.sync();
                        barrier.wait();
                        if i == 0 {
                            peer.drain();
                        }
                        left -= k;
                    }
                    if done_tx.send(spent).is_err() {
                        break;
                    }
                }
            }));
            jobs.push(tx);
        }
        Self {
            jobs,
            done,
            handles,
            issued,
        }
    }

    /// Every thread runs `iters` calls; the slowest thread's time.
    pub fn run(&self, iters: u64) -> Duration {
        for tx in &self.jobs {
            tx.send(iters).expect("worker alive");
        }
        (0..self.jobs.len())
            .map(|_| self.done.recv().expect("worker result"))
            .max()
            .unwrap_or_default()
    }

    /// Stops the threads (dropping their handles) and returns the calls they issued.
    pub fn finish(mut self) -> u64 {
        self.jobs.clear();
        for h in self.handles.drain(..) {
            h.join().expect("worker panicked");
        }
        self.issued.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------------
// Heap

/// A global allocator that counts live bytes and allocation calls (install it with
/// `#[global_allocator]` in a bench binary).
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// adds relaxed counter updates, so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc`/`realloc` above, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// (live heap bytes, allocation calls) so far, as counted by [`Counting`].
pub fn heap() -> (usize, usize) {
    (LIVE.load(Ordering::Relaxed), ALLOCS.load(Ordering::Relaxed))
}
