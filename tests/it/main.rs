//! The integration tests that can share a process: one module per capability, all in one test
//! binary, so a change to the library costs one link step here instead of one per file.
//! Run a module with `cargo test --test it rules::`, one test with
//! `cargo test --test it -- --exact rules::a_disabled_operation_is_only_counted`.
//!
//! The other files in `tests/` are binaries of their own because they need a process of their
//! own:
//! - `engine.rs`: a `#[global_allocator]` that pauses a thread inside an allocation, and the
//!   process-wide global engine (`op!`, `ringmeter::global()`, `init_global`);
//! - `heap_growth.rs`: a counting `#[global_allocator]`;
//! - `process_rss.rs`: allocates and frees 64 MiB and expects the process's resident memory
//!   to follow, so no other test may allocate meanwhile;
//! - `global_env.rs`, `global_env_bad.rs`: set process environment variables, then start the
//!   global engine from them (once per process, so one binary each);
//! - `loom.rs`: the loom models, built only under `RUSTFLAGS="--cfg loom"` (`.ci/run` runs
//!   them as `--test loom`);
//! - `keep_up.rs`: checks that paced bursts lose nothing, so no other test's threads may
//!   compete with it for the cores.
//!
//! So no module here may set the process environment, use the global engine or install a
//! global allocator. Process-wide state that modules here do set: `exactness` installs a panic
//! hook that silences only its own injected panics; `facade` installs the global `metrics`
//! recorder (the only module allowed to); `log_crash` re-executes this binary as its child,
//! filtered to its `crash_child` test.
//!
//! proptest keeps its regressions for a module `x` in `tests/proptest-regressions/x.txt` (its
//! default place for a source file under a directory with a `main.rs`).

mod util;

mod aggregation_props;
#[cfg(feature = "test-hooks")]
mod aggregator_panic;
mod alerts;
mod anomaly;
mod batch;
#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "http")]
mod dashboard;
mod exactness;
mod exposition;
#[cfg(feature = "metrics")]
mod facade;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "cli")]
mod interop;
mod local_op;
mod log_crash;
mod log_damage;
mod log_engine;
mod log_fuzz_replay;
mod log_records;
mod log_recovery;
mod log_writer;
#[cfg(feature = "otlp")]
mod otlp;
mod process;
#[cfg(feature = "cli")]
mod report;
mod rules;
#[cfg(feature = "tracing")]
mod tracing_layer;
