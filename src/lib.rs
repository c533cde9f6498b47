//! Lock-free, in-process latency metrics for hot paths.
//!
//! Wrap an operation in a guard or closure; the guard reads the TSC at start and end and
//! pushes a 24-byte event into the calling thread's own ring — no lock, no allocation, no
//! shared read-modify-write atomic, never blocking. An aggregator thread drains every ring,
//! converts ticks to nanoseconds, sorts events into fixed windows of per-operation
//! HdrHistograms, and publishes immutable snapshots that readers load without locks.
//!
//! | type | role |
//! |---|---|
//! | [`Engine`], [`Builder`] | configuration, aggregator thread, snapshots, shutdown |
//! | [`Op`], [`op!`] | `Copy` handle of one operation; the hot-path calls |
//! | [`Timer`] | guard that records a call when dropped |
//! | [`Snapshot`], [`WindowReport`], [`OpStats`] | what the aggregator publishes |
//! | [`Subscription`] | a channel of closed windows |
//! | [`Clock`], [`MockClock`] | the TSC clock and a hand-moved clock for tests |
//! | [`log`] | the window log ([`Builder::log_dir`]): crash-safe segment files and their [`log::Reader`] |
//! | [`export`] | windows as JSON lines, CSV, HdrHistogram interval logs, Prometheus text; exact rollups |
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

mod aggregator;
mod clock;
#[cfg(doctest)]
mod compile_fail_tests;
#[doc(hidden)]
pub mod demo;
mod engine;
mod error;
mod event;
pub mod export;
mod local;
pub mod log;
mod loom;
mod name;
mod op;

// The ring and the registry are public only for the loom models in `tests/loom.rs`.
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

pub use aggregator::{
    OpStats, OpTotals, OpWindow, PooledHistogram, Snapshot, Subscription, WindowReport,
};
pub use clock::{Clock, MockClock};
pub use engine::{
    global, init_global, Builder, Engine, OpCache, WeakEngine, MAX_OPERATIONS, MAX_RING_CAPACITY,
    OVERFLOW_OP,
};
pub use error::Error;
pub use name::{prometheus_name, validate_name, NameError, MAX_NAME_LEN};
pub use op::{Op, Timer};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Re-export of the `hdrhistogram` crate whose `Histogram` type appears in window reports.
pub use hdrhistogram;
