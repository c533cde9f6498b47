//! The process-wide engine, started on first use from the environment, and the cache behind
//! [`op!`](crate::op!).

use std::sync::OnceLock;

use super::names::OVERFLOW_OP;
use super::{Builder, Engine};
use crate::error::Error;
use crate::op::Op;

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
/// ```compile_fail,E0080
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
