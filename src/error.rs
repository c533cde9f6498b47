//! The crate's error type.

use core::fmt;

use crate::name::NameError;

/// Everything that can go wrong when configuring or steering an engine.
///
/// The hot path never returns errors: a full ring drops the event and counts it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operation name broke the naming rules (see [`validate_name`](crate::validate_name)).
    InvalidName {
        /// The rejected name.
        name: String,
        /// Which rule it broke.
        reason: NameError,
    },
    /// Two names map onto the same Prometheus metric name.
    NameCollision {
        /// The rejected name.
        name: String,
        /// The registered name it collides with.
        existing: String,
    },
    /// The engine already has its configured maximum number of operations.
    TooManyOperations {
        /// The limit ([`Builder::max_operations`](crate::Builder::max_operations)).
        limit: usize,
    },
    /// A configuration value is out of range or cannot be parsed.
    InvalidConfig {
        /// Where the value was given: a builder setting (`ring_capacity`), an environment
        /// variable (`RINGMETER_WINDOW_SECS`), or a file and key (`app.toml: rules."db.*".sample_every`).
        key: String,
        /// The rejected value, as text.
        value: String,
        /// What is allowed.
        reason: String,
    },
    /// The configuration file could not be read or is not valid TOML.
    ConfigFile {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong (the I/O error or the TOML parser's message with its position).
        reason: String,
    },
    /// The aggregator thread could not be started.
    Spawn(std::io::Error),
    /// The aggregator thread panicked; snapshots stay at the last one it published.
    AggregatorPanicked,
    /// [`init_global`](crate::init_global) was called after the global engine existed.
    GlobalAlreadyInitialized,
    /// A window or alert callback called back into its own engine (flush, shutdown,
    /// on_window, reconfiguration), directly or through another engine's callback that it
    /// ran, which would deadlock.
    CalledFromCallback,
    /// A callback waited for another engine (flush, shutdown, on_window, reconfiguration)
    /// whose callbacks, on another thread, wait for the first engine: a cycle of waits that
    /// would deadlock. The call was refused without waiting; the other side goes on.
    CallbackCycle,
    /// The metrics endpoint could not listen on its address (in use, not local, no permission).
    Bind {
        /// The address as given.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName { name, reason } => {
                write!(f, "invalid operation name {name:?}: {reason}")
            }
            Self::NameCollision { name, existing } => write!(
                f,
                "operation name {name:?} has the same Prometheus name as {existing:?}"
            ),
            Self::TooManyOperations { limit } => {
                write!(
                    f,
                    "the engine already has its maximum of {limit} operations"
                )
            }
            Self::InvalidConfig { key, value, reason } => {
                write!(f, "invalid value {value} for {key}: {reason}")
            }
            Self::ConfigFile { path, reason } => {
                write!(
                    f,
                    "cannot use configuration file {}: {reason}",
                    path.display()
                )
            }
            Self::Spawn(e) => write!(f, "cannot start the aggregator thread: {e}"),
            Self::AggregatorPanicked => f.write_str(
                "the aggregator thread panicked; snapshots stop at the last one it published",
            ),
            Self::GlobalAlreadyInitialized => {
                f.write_str("the global engine was already initialised")
            }
            Self::CalledFromCallback => f.write_str(
                "a window callback cannot flush, shut down or reconfigure its own engine",
            ),
            Self::CallbackCycle => f.write_str(
                "a callback cannot wait for an engine whose callbacks wait for its own engine",
            ),
            Self::Bind { addr, source } => {
                write!(f, "cannot serve metrics on {addr}: {source}")
            }
        }
    }
}

impl Error {
    /// An [`Error::InvalidConfig`].
    pub(crate) fn invalid(key: &str, value: impl fmt::Display, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            key: key.to_owned(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn(e) => Some(e),
            Self::Bind { source, .. } => Some(source),
            Self::InvalidName { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    /// Every variant, without a wildcard: inside the crate `#[non_exhaustive]` does not
    /// apply, so this stops compiling when a variant is added, until it is added here and to
    /// the `compile_fail` example of `compile_fail_tests.rs` (which must list them all to
    /// fail for the missing wildcard alone).
    fn name(e: &Error) -> &'static str {
        match e {
            Error::InvalidName { .. } => "name",
            Error::NameCollision { .. } => "collision",
            Error::TooManyOperations { .. } => "full",
            Error::InvalidConfig { .. } => "config",
            Error::ConfigFile { .. } => "config file",
            Error::Spawn(_) => "spawn",
            Error::AggregatorPanicked => "aggregator",
            Error::GlobalAlreadyInitialized => "global",
            Error::CalledFromCallback => "callback",
            Error::CallbackCycle => "cycle",
            Error::Bind { .. } => "bind",
        }
    }

    #[test]
    fn every_variant_is_listed() {
        assert_eq!(name(&Error::CallbackCycle), "cycle");
        let text = include_str!("compile_fail_tests.rs");
        for variant in [
            "InvalidName",
            "NameCollision",
            "TooManyOperations",
            "InvalidConfig",
            "ConfigFile",
            "Spawn",
            "AggregatorPanicked",
            "GlobalAlreadyInitialized",
            "CalledFromCallback",
            "CallbackCycle",
            "Bind",
        ] {
            assert!(
                text.contains(&format!("ringmeter::Error::{variant}")),
                "{variant} is missing from the compile_fail example of compile_fail_tests.rs"
            );
        }
    }
}
