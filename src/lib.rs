//! Lock-free, in-process latency metrics for hot paths.
//!
//! Wrap an operation in a guard or closure; the guard reads the TSC at start and end and
//! pushes a 16-byte event into the calling thread's own ring — no lock, no allocation, no
//! shared read-modify-write atomic, never blocking. An aggregator thread drains every ring,
//! converts ticks to nanoseconds, sorts events into fixed windows of per-operation
//! HdrHistograms, and publishes immutable snapshots that readers load without locks.
//!
//! | type | role |
//! |---|---|
//! | [`Engine`], [`Builder`] | configuration, aggregator thread, snapshots, shutdown |
//! | [`Op`], [`op!`] | `Copy` handle of one operation; the hot-path calls |
//! | [`Timer`] | guard that records a call when dropped |
//! | [`LocalOp`] | an `Op` bound to one thread ([`Op::local`]), for loops of many calls |
//! | [`Snapshot`], [`WindowReport`], [`OpStats`] | what the aggregator publishes |
//! | [`ProcessStats`], [`ProcessSample`], [`ProcessReader`] | the process's memory, CPU time, threads and descriptors, sampled at every window close |
//! | [`Subscription`] | a channel of closed windows |
//! | [`Clock`], [`MockClock`] | the TSC clock and a hand-moved clock for tests |
//! | [`log`] | the window log ([`Builder::log_dir`]): crash-safe segment files and their [`log::Reader`] |
//! | [`export`] | windows as JSON lines, CSV, HdrHistogram interval logs, Prometheus text; exact rollups |
//! | `OtlpExporter`, `OtlpConfig` | closed windows pushed to an OpenTelemetry collector over OTLP/HTTP (feature `otlp`) |
//! | `TracingLayer` (feature `tracing`) | a `tracing_subscriber::Layer`: spans timed into operations |
//! | `http::serve` (feature `http`) | `GET /metrics`, the snapshot as JSON and a live dashboard page; `Serialize` on the report types (feature `serde`) |
//!
//! Every call is accounted for: it is either recorded or counted as dropped (when its
//! thread's ring is full), per operation and window.
//!
//! # Examples
//! ```
//! use std::time::Duration;
//!
//! let engine = ringmeter::Engine::builder()
//!     .window(Duration::from_millis(100))
//!     .start()?;
//! let query = engine.op("db.query")?;
//!
//! std::thread::scope(|s| {
//!     for _ in 0..4 {
//!         s.spawn(|| {
//!             for i in 0..1000 {
//!                 let mut t = query.start();
//!                 if i % 100 == 0 {
//!                     t.fail();
//!                 }
//!             }
//!         });
//!     }
//! });
//!
//! engine.shutdown()?;
//! let stats = engine.snapshot().totals("db.query").unwrap().clone();
//! assert_eq!(stats.count + stats.dropped, 4000);
//! assert_eq!(stats.errors, 40);
//! # Ok::<(), ringmeter::Error>(())
//! ```
//!
//! The design (data flow, event layout, every memory ordering) is described in
//! `docs/architecture.md`.
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

// The modules in layers, from the bottom of the one-way module graph up: a module imports
// modules of its own layer or of the layers listed before it, never of a later one (see
// docs/architecture.md).

// Leaves: bounds, names, errors, the clock, the event.
mod clock;
pub mod env;
mod error;
mod event;
mod hist;
pub mod limits;
mod loom;
mod name;
mod pattern;
mod process;

// Lock-free primitives and shared values.
pub mod metric;
mod span_ids;

// Rules and alert rules.
pub mod alert;
mod config;

// The published data model.
mod report;

// Its consumers: the window log and the exports.
pub mod export;
pub mod log;

// What the hot path and the aggregator share, and the hot path.
mod hub;
mod local;
mod op;

// The aggregator.
mod aggregator;

// The handle on top, and what serves it.
mod engine;
#[cfg(any(feature = "metrics", feature = "tracing"))]
pub mod facade;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "otlp")]
pub mod otlp;

#[cfg(doctest)]
mod compile_fail_tests;

// The ring, its doorbell and the registry are public only for the loom models in
// `tests/loom.rs`.
#[cfg(loom)]
#[doc(hidden)]
pub mod doorbell;
#[cfg(not(loom))]
mod doorbell;
#[cfg(loom)]
#[doc(hidden)]
pub mod registry;
#[cfg(not(loom))]
mod registry;
#[cfg(loom)]
#[doc(hidden)]
pub mod ring;
#[cfg(not(loom))]
mod ring;

pub use aggregator::Subscription;
pub use clock::{Clock, MockClock};
pub use config::{EffectiveRule, Rule, Rules, Sampling};
pub use engine::{global, init_global, Builder, Engine, OpCache, WeakEngine, OVERFLOW_OP};
pub use error::Error;
#[cfg(feature = "otlp")]
pub use export::otlp::OtlpConfig;
#[cfg(feature = "tracing")]
pub use facade::tracing::TracingLayer;
pub use hist::{CompactHistogram, PooledHistogram, RecordedBucket};
pub use limits::{
    DEFAULT_BUCKETS_NS, MAX_BUCKETS, MAX_EXEMPLARS, MAX_NAME_LEN, MAX_OPERATIONS,
    MAX_RING_CAPACITY, MAX_SAMPLE_EVERY, MIN_SAMPLE_PROBABILITY,
};
pub use metric::{Counter, Gauge};
pub use name::{prometheus_name, validate_name, NameError};
pub use op::{ErrorKind, LocalOp, Op, Timer};
#[cfg(feature = "otlp")]
pub use otlp::{OtlpExporter, OtlpStats};
pub use process::{ProcessReader, ProcessSample, ProcessStats};
pub use report::{Exemplar, OpStats, OpTotals, OpWindow, Snapshot, TraceContext, WindowReport};

/// The calling thread's number: ringmeter numbers threads from 1 in the order they first
/// record into any engine (or ask for their number). Window exemplars name threads by it
/// ([`Exemplar::thread`]); log it beside the thread's own name to find a slow call's thread.
///
/// # Examples
/// ```
/// let me = ringmeter::thread_number();
/// assert!(me >= 1);
/// assert_eq!(ringmeter::thread_number(), me);
/// ```
pub fn thread_number() -> u64 {
    local::thread_number()
}

/// The hand-off of sampling settings to the hot path, public only for the loom models.
#[cfg(loom)]
#[doc(hidden)]
pub use config::table as rule_table;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The configuration guide's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/configuration.md")]
struct ConfigurationDoctests;

/// The exporting guide's examples (they need the `http`, `metrics`, `otlp` and `tracing`
/// features).
#[cfg(all(
    doctest,
    feature = "http",
    feature = "metrics",
    feature = "otlp",
    feature = "tracing"
))]
#[doc = include_str!("../docs/exporting.md")]
struct ExportingDoctests;

/// The dashboard guide's example (feature `http`).
#[cfg(all(doctest, feature = "http"))]
#[doc = include_str!("../docs/dashboard.md")]
struct DashboardDoctests;

/// The alerts guide's examples.
#[cfg(doctest)]
#[doc = include_str!("../docs/alerts.md")]
struct AlertsDoctests;

/// Re-export of the `hdrhistogram` crate whose `Histogram` type appears in window reports.
pub use hdrhistogram;
