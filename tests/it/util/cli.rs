//! Helpers shared by the CLI and interoperability tests: temporary directories, logs written
//! by a mock-clock engine, and running the `ringmeter` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ringmeter::{Clock, Engine};

/// An hour boundary (2023-11-14T22:00:00Z), where the test logs start.
pub const T0_SECS: u64 = 1_699_999_200;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("ringmeter-cli-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a log of `windows` one-second windows from [`T0_SECS`] into `dir`:
/// `db.query` gets 1,000 calls per window of 1..=1000 µs (every 100th failed), `cache.get`
/// 200 calls of 10..=2000 ns.
pub fn write_log(dir: &Path, windows: u64) {
    let (clock, mock) = Clock::mock();
    mock.advance(Duration::from_secs(T0_SECS));
    let engine = Engine::builder()
        .clock(clock)
        .window(Duration::from_secs(1))
        .log_dir(dir)
        .process_gauges(false) // real figures would change the golden files at every run
        .start_manual()
        .unwrap();
    let db = engine.op("db.query").unwrap();
    let cache = engine.op("cache.get").unwrap();
    for _ in 0..windows {
        for i in 1..=1000u64 {
            if i % 100 == 0 {
                db.record_error_ns(i * 1000);
            } else {
                db.record_ns(i * 1000);
            }
        }
        for i in 1..=200u64 {
            cache.record_ns(i * 10);
        }
        engine.flush().unwrap();
        mock.advance(Duration::from_secs(1));
    }
    mock.advance(Duration::from_secs(1));
    engine.shutdown().unwrap();
}

/// Runs `ringmeter` with `args`.
pub fn ringmeter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringmeter"))
        .args(args)
        .output()
        .expect("run the ringmeter binary")
}

/// Runs `ringmeter` and returns its stdout, failing the test on a non-zero exit.
pub fn ok(args: &[&str]) -> String {
    let out = ringmeter(args);
    assert!(
        out.status.success(),
        "ringmeter {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `ringmeter`, expects exit code `code`, and returns its stderr.
pub fn fails(args: &[&str], code: i32) -> String {
    let out = ringmeter(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "ringmeter {args:?}: stdout {} stderr {err}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

/// The value of `"key":` in a line of JSON output (a number).
pub fn json_u64(line: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    let at = line.find(&pat).unwrap_or_else(|| panic!("{key} in {line}")) + pat.len();
    line[at..]
        .split([',', '}'])
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Runs `ringmeter` with `args` and its standard output connected to `stdout` (a closed
/// pipe, `/dev/full`), returning its exit code and standard error.
pub fn with_stdout(args: &[&str], stdout: std::process::Stdio) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmeter"))
        .args(args)
        .stdout(stdout)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run the ringmeter binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A pipe whose reading end is already closed: the first write to it fails with `EPIPE`,
/// as when `head -1` has read its line and exited.
pub fn closed_pipe() -> std::process::Stdio {
    let (reader, writer) = std::io::pipe().expect("create a pipe");
    drop(reader);
    writer.into()
}

/// `/dev/full`: every write to it fails with `ENOSPC`.
pub fn dev_full() -> std::process::Stdio {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full")
        .into()
}
