//! Helpers shared by the modules of this binary.

// Headless Chromium for the page tests (the dashboard's and the HTML report's).
#[cfg(feature = "http")]
pub mod chromium;
// Runs the `ringmeter` binary, which is built only with feature `cli`.
#[cfg(feature = "cli")]
pub mod cli;
pub mod log;
pub mod tools;
