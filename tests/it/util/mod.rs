//! Helpers shared by the modules of this binary.

// Runs the `ringmeter` binary, which is built only with feature `cli`.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub mod chromium;
#[cfg(feature = "cli")]
pub mod cli;
pub mod log;
