//! Adapters from the instrumentation facades a service already uses, so its existing
//! metrics and spans feed an engine: the [`metrics`] crate's recorder (feature `metrics`,
//! below) and a `tracing` layer (feature `tracing`, [`tracing`]).
//!
//! # The `metrics` recorder
//!
//! `metrics::histogram!`, `counter!` and `gauge!` feed an engine.
//!
//! | facade | ringmeter | exposed as |
//! |---|---|---|
//! | `histogram!(name, labels..)` | an operation ([`Op::record_ns`](crate::Op::record_ns)), through the calling thread's ring | `ringmeter_latency_seconds{op="…"}` and the other operation families |
//! | `counter!(name, labels..)` | a [`Counter`](crate::Counter) | `<name>_total{labels}` |
//! | `gauge!(name, labels..)` | a [`Gauge`](crate::Gauge) | `<name>{labels}` |
//!
//! **Histograms** become operations. The operation's name is the metric name with each label
//! appended as `.key_value` in key order (`http.request{method=GET}` →
//! `http.request.method_GET`), every character outside `[A-Za-z0-9_]` turned into `_`, a
//! leading letter added when needed; a name that would pass 128 bytes is cut and ends in a
//! hash of the whole. Values are durations in **seconds** unless the histogram was described
//! (`describe_histogram!`) before its first use with the unit milliseconds, microseconds or
//! nanoseconds; they are recorded in nanoseconds, so the operation's statistics, windows,
//! log and exports are those of any other operation. A value that is negative, NaN or
//! infinite cannot be recorded: it is counted in the counter
//! `ringmeter_metrics_rejected_values_total{metric="<name>"}` instead of being lost silently.
//!
//! **Counters and gauges** keep their labels. Names and label names are made valid
//! Prometheus names the same way (`.`, `-` and the like become `_`); a label named `op`, `le`
//! or `quantile`, reserved by the operation families, gets a trailing `_`.
//!
//! A metric that cannot be registered (a name colliding with another one's Prometheus form,
//! the engine's operation or series limit reached) gets a handle that does nothing; the
//! first such failure is reported on standard error and every one is counted
//! ([`MetricsRecorder::rejected_registrations`]).
//!
//! The facade looks its handle up on every macro call (a read lock on a hash map here); in
//! a hot loop, register once (`let h = metrics::histogram!("db.query");`) and reuse `h`.
//!
//! # Examples
//! ```
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! let recorder = ringmeter::facade::MetricsRecorder::new(&engine);
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::histogram!("db.query", "table" => "users").record(0.002); // seconds
//!     metrics::counter!("jobs.done").increment(3);
//!     metrics::gauge!("queue.depth").set(7.0);
//! });
//! engine.flush()?;
//! let snap = engine.snapshot();
//! assert_eq!(snap.totals("db.query.table_users").unwrap().max_ns, 2_000_000);
//! assert_eq!(snap.counters[0].value, 3);
//! assert_eq!(snap.gauges[0].value, 7.0);
//! # Ok::<(), ringmeter::Error>(())
//! ```
//!
//! To make it the process-wide recorder: [`install`].

#[cfg(feature = "metrics")]
mod recorder;
#[cfg(feature = "tracing")]
pub mod tracing;

#[cfg(feature = "metrics")]
pub use recorder::{install, MetricsRecorder};
