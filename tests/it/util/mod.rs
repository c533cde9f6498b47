//! Helpers shared by the modules of this binary.

// Runs the `ringmeter` binary, which is built only with feature `cli`.
#[cfg(feature = "cli")]
pub mod cli;
pub mod log;
