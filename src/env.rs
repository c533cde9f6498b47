//! The environment variables that configure an engine.
//!
//! [`Builder::from_env`](crate::Builder::from_env) and the process-wide engine
//! ([`global`](crate::global)) read them; explicit builder calls override them, and they
//! override the configuration file named by [`CONFIG`]. See `docs/configuration.md`.
//!
//! # Examples
//! ```
//! use ringmeter::env;
//! let builder = ringmeter::Builder::from_env_with(|name| {
//!     (name == env::SAMPLE_EVERY).then(|| "8".into())
//! })?;
//! let engine = builder.start_manual()?;
//! # Ok::<(), ringmeter::Error>(())
//! ```

/// Slow threshold of every operation, in milliseconds (decimals allowed).
pub const SLOW_THRESHOLD_MS: &str = "RINGMETER_SLOW_THRESHOLD_MS";
/// Window length in seconds (decimals allowed).
pub const WINDOW_SECS: &str = "RINGMETER_WINDOW_SECS";
/// Error-rate threshold of every operation, 0 to 1.
pub const ERROR_RATE_THRESHOLD: &str = "RINGMETER_ERROR_RATE_THRESHOLD";
/// Time one call in N of every operation.
pub const SAMPLE_EVERY: &str = "RINGMETER_SAMPLE_EVERY";
/// Ring capacity in events (a power of two).
pub const RING_CAPACITY: &str = "RINGMETER_RING_CAPACITY";
/// Directory of the window log.
pub const LOG_DIR: &str = "RINGMETER_LOG_DIR";
/// Path of a TOML configuration file.
pub const CONFIG: &str = "RINGMETER_CONFIG";

/// Every variable above, in the order the documentation lists them.
pub const ALL: [&str; 7] = [
    CONFIG,
    SLOW_THRESHOLD_MS,
    WINDOW_SECS,
    ERROR_RATE_THRESHOLD,
    SAMPLE_EVERY,
    RING_CAPACITY,
    LOG_DIR,
];
