//! Helpers shared by the modules of this binary.

// Runs the `ringmeter` binary, which is built only with feature `cli`.
#[cfg(feature = "cli")]
pub mod cli;
// Headless Chromium for the page tests (the dashboard's).
#[cfg(feature = "http")]
pub mod chromium;
pub mod log;
