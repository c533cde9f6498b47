//! The outside readers the interoperability tests feed: promtool and the Python packages.
//! A missing tool skips the calling test with a note, or fails it when
//! `RINGMETER_REQUIRE_INTEROP=1` (as `.ci/run` sets).

use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Skips with a note, or panics when interop is required.
pub fn missing(tool: &str) {
    if std::env::var_os("RINGMETER_REQUIRE_INTEROP").is_some_and(|v| v == "1") {
        panic!("{tool} is required (RINGMETER_REQUIRE_INTEROP=1) but cannot be run");
    }
    eprintln!("note: {tool} not found; skipping (set RINGMETER_REQUIRE_INTEROP=1 to fail)");
}

/// Runs `command` with `text` on its standard input.
pub fn pipe(command: &mut Command, text: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// The Python that has the interop packages: `RINGMETER_PYTHON`, else `python3`.
pub fn python() -> OsString {
    std::env::var_os("RINGMETER_PYTHON").unwrap_or_else(|| "python3".into())
}

/// Whether `command` runs and exits 0 (output discarded).
fn runs(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Asserts that `promtool check metrics` accepts `text` without a word; skips (see
/// [`missing`]) when promtool cannot be run.
pub fn promtool_accepts(text: &str) {
    if !runs(Command::new("promtool").arg("--version")) {
        missing("promtool");
        return;
    }
    let out = pipe(Command::new("promtool").args(["check", "metrics"]), text);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {} {}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the Python `script` with `text` on its standard input after checking that `module`
/// imports, and returns what it printed; `None` (skipped, see [`missing`]) when it does not.
/// The script must succeed.
pub fn python_reads(module: &str, script: &str, text: &str) -> Option<String> {
    let python = python();
    if !runs(Command::new(&python).args(["-c", &format!("import {module}")])) {
        missing(&format!("python {module}"));
        return None;
    }
    let out = pipe(Command::new(&python).args(["-c", script]), text);
    assert!(
        out.status.success(),
        "python: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
