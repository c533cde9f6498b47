//! Interoperability: `dump --format hlog` read by HdrHistogram's Java `HistogramLogProcessor`
//! and by the Python `hdrhistogram` package gives the percentiles ringmeter reports, and
//! `dump --format prom` passes `promtool check metrics`.
//!
//! A missing tool skips its test with a note on stderr, unless `RINGMETER_REQUIRE_INTEROP=1`
//! (set by `.ci/run`), which makes it fail. The Java jar is looked for at
//! `RINGMETER_HDRHISTOGRAM_JAR` or `/usr/share/java/hdrhistogram.jar` (Debian's
//! `libhdrhistogram-java`); the Python interpreter with `hdrhistogram` installed at
//! `RINGMETER_PYTHON`, or `python3`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::cli::{json_u64, ok, write_log, TempDir};
use crate::util::tools::{missing, promtool_accepts, python};

/// Whether the tool can be run; panics instead of skipping when interop is required.
fn available(tool: &str, probe: &mut Command) -> bool {
    let found = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        missing(tool);
    }
    found
}

/// What ringmeter reports for an operation over the whole log: count and p50, p90, p99,
/// p99.9, max (from a rollup into one period).
fn reported(dir: &Path, op: &str) -> [u64; 6] {
    let out = ok(&[
        "dump",
        dir.to_str().unwrap(),
        "--format",
        "json",
        "--rollup",
        "1h",
        "--op",
        op,
    ]);
    let line = out.lines().next().unwrap();
    ["count", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"].map(|k| json_u64(line, k))
}

/// Equal within HdrHistogram's precision at 3 significant digits (a bucket's width is at
/// most 1/1024 of its values; ringmeter clamps to the exact maximum, the tools report a
/// bucket's highest equivalent value).
fn assert_close(what: &str, ours: u64, theirs: u64) {
    let tol = ours / 1000 + 1;
    assert!(
        ours.abs_diff(theirs) <= tol,
        "{what}: ringmeter {ours}, other tool {theirs}"
    );
}

/// A log of 3 windows of two operations, and its `hlog` dump.
fn fixture(tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let log = dir.join("log");
    write_log(&log, 3);
    let hlog = dir.join("out.hlog");
    ok(&[
        "dump",
        log.to_str().unwrap(),
        "--format",
        "hlog",
        "-o",
        hlog.to_str().unwrap(),
    ]);
    (dir, hlog)
}

#[test]
fn java_histogram_log_processor_reads_the_hlog() {
    let jar = std::env::var_os("RINGMETER_HDRHISTOGRAM_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/java/hdrhistogram.jar"));
    if !available("java", Command::new("java").arg("-version")) {
        return;
    }
    if !jar.exists() {
        missing(&jar.display().to_string());
        return;
    }
    let (dir, hlog) = fixture("java");
    // One operation untagged, which the processor reads without -tag.
    let untagged = dir.join("untagged.hlog");
    let log = dir.join("log");
    ok(&[
        "dump",
        log.to_str().unwrap(),
        "--format",
        "hlog",
        "--untagged",
        "--op",
        "db.query",
        "-o",
        untagged.to_str().unwrap(),
    ]);
    for (op, input, tagged) in [
        ("db.query", &hlog, true),
        ("cache.get", &hlog, true),
        ("db.query", &untagged, false),
    ] {
        let out = dir.join(&format!("{op}-{tagged}.txt"));
        let mut java = Command::new("java");
        java.arg("-cp")
            .arg(&jar)
            .arg("org.HdrHistogram.HistogramLogProcessor")
            .arg("-i")
            .arg(input)
            .args(["-csv", "-outputValueUnitRatio", "1", "-o"])
            .arg(&out);
        if tagged {
            // The processor reads untagged lines only unless told a tag.
            java.args(["-tag", op]);
        }
        let status = java.status().unwrap();
        assert!(status.success());
        // Columns: Timestamp, Int_Count, Int_50%, Int_90%, Int_Max, Total_Count, Total_50%,
        // Total_90%, Total_99%, Total_99.9%, Total_99.99%, Total_Max.
        let text = std::fs::read_to_string(&out).unwrap();
        let last = text.lines().rfind(|l| !l.starts_with(['#', '"'])).unwrap();
        let cols: Vec<u64> = last
            .split(',')
            .map(|c| c.trim().parse::<f64>().unwrap() as u64)
            .collect();
        let ours = reported(&log, op);
        assert_eq!(cols[5], ours[0], "{op} count");
        for (name, ours, theirs) in [
            ("p50", ours[1], cols[6]),
            ("p90", ours[2], cols[7]),
            ("p99", ours[3], cols[8]),
            ("p99.9", ours[4], cols[9]),
            ("max", ours[5], cols[11]),
        ] {
            assert_close(&format!("java {op} {name}"), ours, theirs);
        }
    }
}

#[test]
fn python_hdrhistogram_reads_the_hlog() {
    let python = python();
    if !available(
        "python3 with the hdrhistogram package",
        Command::new(&python).args(["-c", "import hdrh.log"]),
    ) {
        return;
    }
    let (dir, hlog) = fixture("python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hlog_percentiles.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(&hlog)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut seen = 0;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let op = f.next().unwrap();
        let theirs: Vec<u64> = f.map(|v| v.parse().unwrap()).collect();
        let ours = reported(&dir.join("log"), op);
        assert_eq!(theirs[0], ours[0], "{op} count");
        for (i, name) in ["p50", "p90", "p99", "p99.9", "max"].iter().enumerate() {
            // Python rounds a percentile's rank to the nearest count where ringmeter and
            // Java round up: compare p99.9 only where the rank is a whole number.
            if *name == "p99.9" && !(ours[0] * 999).is_multiple_of(1000) {
                continue;
            }
            assert_close(&format!("python {op} {name}"), ours[i + 1], theirs[i + 1]);
        }
        seen += 1;
    }
    assert_eq!(seen, 2, "{text}");
}

#[test]
fn promtool_accepts_the_prometheus_text() {
    if !available("promtool", Command::new("promtool").arg("--version")) {
        return;
    }
    let dir = TempDir::new("prom");
    let log = dir.join("log");
    write_log(&log, 2);
    let text = ok(&["dump", log.to_str().unwrap(), "--format", "prom"]);
    promtool_accepts(&text);
}
