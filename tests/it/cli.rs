//! The `ringmeter` binary end to end: every subcommand and every bad-input case.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringmeter::log::format::SegmentHeader;
use ringmeter::log::{Reader, Record};

use crate::util::cli::{
    closed_pipe, dev_full, fails, json_u64, ok, ringmeter, with_stdout, write_log, TempDir, T0_SECS,
};

fn path(dir: &TempDir) -> &str {
    dir.path().to_str().unwrap()
}

#[test]
fn stats_prints_a_row_per_operation() {
    let dir = TempDir::new("stats");
    write_log(dir.path(), 3);
    let out = ok(&["stats", path(&dir)]);
    assert!(out.starts_with("6 windows from 2023-11-14T22:00:00.000Z to 2023-11-14T22:00:03.000Z"));
    let db = out.lines().find(|l| l.starts_with("db.query")).unwrap();
    let cols: Vec<&str> = db.split_whitespace().collect();
    assert_eq!(cols[1], "3000");
    assert_eq!(cols[2], "0"); // unsampled
    assert_eq!(cols[3], "1.0%");
    assert!(out.lines().any(|l| l.starts_with("cache.get")));

    let only = ok(&["stats", path(&dir), "--op", "db.*"]);
    assert!(only.contains("db.query") && !only.contains("cache.get"));

    let one = ok(&[
        "stats",
        path(&dir),
        "--since",
        "2023-11-14T22:00:01Z",
        "--until",
        "2023-11-14T23:00:02+01:00",
    ]);
    assert!(
        one.starts_with("2 windows from 2023-11-14T22:00:01.000Z"),
        "{one}"
    );
    let cols: Vec<&str> = one
        .lines()
        .find(|l| l.starts_with("db.query"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(cols[1], "1000");
}

#[test]
fn bad_input_gets_a_clear_message_and_exit_code() {
    let dir = TempDir::new("bad");
    write_log(dir.path(), 1);
    let p = path(&dir);
    // Usage errors: 2.
    assert!(fails(&["stats", p, "--op", "db[0]"], 2).contains("bad operation pattern"));
    assert!(fails(&["stats", p, "--op", "nothing.*"], 2).contains("no operation in"));
    assert!(fails(&["stats", p, "--since", "yesterday"], 2).contains("bad time"));
    assert!(fails(&["stats", p, "--since", "-10x"], 2).contains("bad relative time"));
    assert!(fails(&["stats", p, "--since", "-1h", "--until", "-2h"], 2).contains("bad time range"));
    assert!(fails(&["dump", p, "--format", "json", "--rollup", "1.5m"], 2).contains("bad rollup"));
    assert!(fails(&["dump", p, "--format", "prom", "--rollup", "1m"], 2).contains("--rollup"));
    assert!(fails(&["dump", p, "--format", "xml"], 2).contains("xml"));
    assert!(fails(&["dump", p, "--format", "csv", "--rollup", "500ms"], 2).contains("bad rollup"));
    assert!(fails(&["dump", p, "--format", "csv", "--untagged"], 2).contains("hlog only"));
    assert!(fails(&["tail", p, "--op", "a b"], 2).contains("bad operation pattern"));
    assert!(fails(&["dump", p, "--format", "hlog", "--untagged"], 2).contains("one operation"));
    // Errors: 1.
    let missing = dir.join("missing");
    assert!(fails(&["stats", missing.to_str().unwrap()], 1).contains("no such file or directory"));
    assert!(fails(&["tail", missing.to_str().unwrap()], 1).contains("no such file"));
    assert!(fails(&["check", missing.to_str().unwrap()], 1).contains("no such file"));
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(fails(&["check", empty.to_str().unwrap()], 1).contains("not a ringmeter log"));
    let text = dir.join("notes.txt");
    std::fs::write(&text, vec![b'x'; 512]).unwrap();
    assert!(
        fails(&["dump", text.to_str().unwrap(), "--format", "csv"], 1)
            .contains("not a ringmeter log")
    );
    // Nothing in range: an error, not an empty table.
    assert!(fails(&["stats", p, "--until", "2000-01-01T00:00:00Z"], 1).contains("no window"));
}

#[test]
fn a_newer_format_version_is_refused() {
    let dir = TempDir::new("newer");
    write_log(dir.path(), 1);
    let seg = Reader::open(dir.path()).unwrap().segments()[0].path.clone();
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = std::mem::size_of::<SegmentHeader>();
    let mut h: SegmentHeader = bytemuck::pod_read_unaligned(&bytes[..n]);
    h.version = ringmeter::log::format::U32Le::new(99);
    h.crc = ringmeter::log::format::U32Le::new(h.compute_crc());
    bytes[..n].copy_from_slice(bytemuck::bytes_of(&h));
    std::fs::write(&seg, bytes).unwrap();
    let err = fails(&["stats", path(&dir)], 1);
    assert!(err.contains("format version 99"), "{err}");
}

#[test]
fn dump_formats() {
    let dir = TempDir::new("dump");
    write_log(dir.path(), 3);
    let p = path(&dir);

    let json = ok(&["dump", p, "--format", "json"]);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 6);
    let db: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("\"db.query\""))
        .collect();
    assert_eq!(json_u64(db[0], "count"), 1000);
    assert_eq!(json_u64(db[0], "errors"), 10);
    assert_eq!(json_u64(db[0], "max_ns"), 1_000_000);
    assert_eq!(
        json_u64(db[1], "start_unix_ns"),
        (T0_SECS + 1) * 1_000_000_000
    );

    let rolled = ok(&[
        "dump", p, "--format", "json", "--rollup", "1m", "--op", "db.query",
    ]);
    let lines: Vec<&str> = rolled.lines().collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(json_u64(lines[0], "count"), 3000);
    assert_eq!(json_u64(lines[0], "errors"), 30);
    assert_eq!(json_u64(lines[0], "length_ns"), 60_000_000_000);
    assert_eq!(json_u64(lines[0], "min_ns"), 1000);
    let two = ok(&[
        "dump", p, "--format", "json", "--rollup", "2s", "--op", "db.query",
    ]);
    let counts: Vec<u64> = two.lines().map(|l| json_u64(l, "count")).collect();
    assert_eq!(counts, [2000, 1000]);

    let csv = ok(&["dump", p, "--format", "csv", "--op", "cache.get"]);
    let rows: Vec<&str> = csv.split("\r\n").filter(|r| !r.is_empty()).collect();
    assert_eq!(rows.len(), 4);
    assert!(rows[0].starts_with("op,start_unix_ns,length_ns,count,"));
    assert!(rows[1].starts_with(&format!("cache.get,{}000000000,1000000000,200,", T0_SECS)));

    // Beside the log: `-o` refuses a path inside it.
    let elsewhere = TempDir::new("dump-out");
    let out = elsewhere.join("out.hlog");
    ok(&["dump", p, "--format", "hlog", "-o", out.to_str().unwrap()]);
    let hlog = std::fs::read_to_string(&out).unwrap();
    assert!(hlog.contains("#[Histogram log format version 1.3]"));
    assert_eq!(
        hlog.lines()
            .filter(|l| l.starts_with("Tag=db.query,"))
            .count(),
        3
    );
    let untagged = ok(&[
        "dump",
        p,
        "--format",
        "hlog",
        "--untagged",
        "--op",
        "cache.get",
    ]);
    assert_eq!(untagged.lines().filter(|l| l.contains("HISTF")).count(), 3);
    assert!(!untagged.contains("Tag="));

    let prom = ok(&["dump", p, "--format", "prom"]);
    let ts = (T0_SECS + 3) * 1000;
    assert!(
        prom.contains(&format!(
            "ringmeter_calls_total{{op=\"db.query\"}} 3000 {ts}\n"
        )),
        "{prom}"
    );
    assert!(prom.contains(&format!(
        "ringmeter_errors_total{{op=\"db.query\"}} 30 {ts}\n"
    )));
    assert!(prom.contains("ringmeter_latency_seconds_count{op=\"cache.get\"} 600 "));
}

/// Offset of the last window record's frame and of the first one.
fn frame_offsets(dir: &std::path::Path) -> (std::path::PathBuf, u64, u64) {
    let mut r = Reader::open(dir).unwrap();
    let mut offsets = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        if matches!(e.record, Record::Window(_)) {
            offsets.push(e.offset);
        }
    }
    let seg = r.segments()[0].path.clone();
    (seg, offsets[0], *offsets.last().unwrap())
}

#[test]
fn check_reports_clean_torn_and_corrupt_logs() {
    let dir = TempDir::new("check");
    write_log(dir.path(), 2);
    let out = ok(&["check", path(&dir)]);
    assert!(out.contains("clean"), "{out}");

    // Damage in the middle of the first window record: valid records follow, so corrupt.
    let (seg, first, last) = frame_offsets(dir.path());
    let original = std::fs::read(&seg).unwrap();
    let mut bytes = original.clone();
    bytes[first as usize + 30] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let out = ringmeter(&["check", path(&dir)]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("corrupt"));
    // Reading a damaged log still works, with a warning, and fails as `check` does.
    let stats = ringmeter(&["stats", path(&dir)]);
    assert_eq!(stats.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&stats.stdout).contains("db.query"));
    assert!(String::from_utf8_lossy(&stats.stderr).contains("corrupt"));

    // Everything after the start of the last record wiped: it was committed, so corrupt.
    let mut bytes = original.clone();
    let end = bytes.len();
    bytes[last as usize..end].fill(0xa5);
    std::fs::write(&seg, &bytes).unwrap();
    let out = ringmeter(&["check", path(&dir)]);
    assert_eq!(out.status.code(), Some(4));

    // Zeroed instead: committed records missing.
    let mut bytes = original.clone();
    bytes[last as usize..end].fill(0);
    std::fs::write(&seg, &bytes).unwrap();
    let out = ringmeter(&["check", path(&dir)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(text.contains("records missing"));
    // Readers say so too, rather than calling it "0 corrupt ranges".
    let stats = ringmeter(&["stats", path(&dir)]);
    let warning = String::from_utf8_lossy(&stats.stderr);
    assert!(warning.contains("missing committed records"), "{warning}");
    assert_eq!(stats.status.code(), Some(5));

    // The last record in progress and not committed (a kill inside the append): a torn
    // tail only.
    use ringmeter::log::format::{CommitSlot, U32Le, COMMIT_BLOCK_AT, IN_PROGRESS};
    let mut bytes = original;
    let block = &bytes[COMMIT_BLOCK_AT..COMMIT_BLOCK_AT + 64];
    let slot = CommitSlot::newest(block).unwrap();
    let g = slot.generation.get() + 1;
    let back = CommitSlot::new(g, last, slot.records.get() - 1, 0);
    let at = CommitSlot::offset(g);
    bytes[at..at + 32].copy_from_slice(bytemuck::bytes_of(&back));
    let len = u32::from_le_bytes(bytes[last as usize..last as usize + 4].try_into().unwrap());
    // Nothing after it (the engine's shutdown events came later).
    bytes[last as usize + (len as usize).div_ceil(8) * 8..].fill(0);
    let marked = U32Le::new(len | IN_PROGRESS);
    bytes[last as usize..last as usize + 4].copy_from_slice(bytemuck::bytes_of(&marked));
    std::fs::write(&seg, &bytes).unwrap();
    let out = ringmeter(&["check", path(&dir)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("torn tail"));
}

#[test]
fn tail_prints_existing_and_new_windows() {
    let dir = TempDir::new("tail");
    write_log(dir.path(), 2);
    let all = ok(&["tail", path(&dir), "--all", "-n", "3"]);
    assert_eq!(all.lines().count(), 3);
    assert!(all
        .lines()
        .next()
        .unwrap()
        .starts_with("2023-11-14T22:00:00.000Z"));

    // Follow: the windows written after tail started.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmeter"))
        .args([
            "tail",
            path(&dir),
            "--op",
            "db.*",
            "-n",
            "2",
            "--poll-ms",
            "20",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Tail skips what the log holds when it starts, and nothing tells when it has: keep
    // closing windows, one engine writing live, until it has printed two of them. Every
    // window written has the same counts, so which two it prints does not matter.
    let (clock, mock) = ringmeter::Clock::mock();
    mock.advance(Duration::from_secs(T0_SECS + 3_600));
    let engine = ringmeter::Engine::builder()
        .clock(clock)
        .window(Duration::from_secs(1))
        .log_dir(dir.path())
        .start_manual()
        .unwrap();
    let db = engine.op("db.query").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("tail did not print two new windows");
        }
        for i in 1..=1000u64 {
            db.record_ns(i * 1000);
        }
        mock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
        // Pacing only: the loop ends on the child's exit, not on this pause.
        std::thread::sleep(Duration::from_millis(20));
    }
    engine.shutdown().unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines
        .iter()
        .all(|l| l.contains("db.query") && l.contains("count     1000")));
}

#[test]
fn demo_writes_a_log_and_prints_its_stats() {
    let dir = TempDir::new("demo");
    let log = dir.join("log");
    let out = ok(&[
        "demo",
        "--log-dir",
        log.to_str().unwrap(),
        "--seconds",
        "1",
        "--window-ms",
        "200",
        "--threads",
        "1",
    ]);
    for op in ["http.handle", "cache.get", "db.query", "batch.flush"] {
        assert!(
            out.lines().any(|l| l.starts_with(op)),
            "{op} missing: {out}"
        );
    }
    ok(&["check", log.to_str().unwrap()]);
    assert!(ok(&["stats", log.to_str().unwrap(), "--since", "-1h"]).contains("http.handle"));
}

#[test]
fn help_and_version() {
    let help = ok(&["--help"]);
    for sub in ["demo", "stats", "dump", "check", "tail"] {
        assert!(help.contains(sub));
    }
    assert!(ok(&["dump", "--help"]).contains("--rollup"));
    assert!(ok(&["--version"]).starts_with("ringmeter "));
    assert_eq!(ringmeter(&[]).status.code(), Some(2));
}

/// `dump` throughput on a log of 40,000 window records, printed rather than asserted (the
/// machine is shared). Run with
/// `cargo test --release --test it -- --ignored --nocapture cli::dump_throughput`.
#[test]
#[ignore = "a measurement, not a check"]
fn dump_throughput() {
    let dir = TempDir::new("throughput");
    if let Some(keep) = std::env::var_os("RINGMETER_KEEP_LOG") {
        write_log(std::path::Path::new(&keep), 2_000);
        return;
    }
    write_log(dir.path(), 20_000);
    let elsewhere = TempDir::new("throughput-out");
    for format in ["json", "csv", "hlog"] {
        let out = elsewhere.join(&format!("out.{format}"));
        let started = Instant::now();
        ok(&[
            "dump",
            path(&dir),
            "--format",
            format,
            "-o",
            out.to_str().unwrap(),
        ]);
        let secs = started.elapsed().as_secs_f64();
        println!(
            "dump --format {format}: 40000 window records in {secs:.2} s = {:.0} records/s",
            40_000.0 / secs
        );
    }
    let started = Instant::now();
    ok(&["stats", path(&dir)]);
    println!(
        "stats: {:.0} records/s",
        40_000.0 / started.elapsed().as_secs_f64()
    );
}

/// The four formats of a fixed two-window log, byte for byte. After a deliberate format
/// change, regenerate with `RINGMETER_BLESS=1 cargo test --test it cli::dump_output_matches`.
#[test]
fn dump_output_matches_the_golden_files() {
    let dir = TempDir::new("golden");
    write_log(dir.path(), 2);
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let bless = std::env::var_os("RINGMETER_BLESS").is_some_and(|v| v == "1");
    for (format, file) in [
        ("json", "two-windows.jsonl"),
        ("csv", "two-windows.csv"),
        ("hlog", "two-windows.hlog"),
        ("prom", "two-windows.prom"),
    ] {
        let out = ok(&["dump", path(&dir), "--format", format]);
        let want = golden.join(file);
        if bless {
            std::fs::write(&want, &out).unwrap();
        }
        let expected = std::fs::read_to_string(&want).unwrap();
        assert!(
            out == expected,
            "{format} differs from {}:\n{out}",
            want.display()
        );
    }
}

/// Runs every subcommand that prints with `stdout`, against a log of `dir`, and returns the
/// exit code and standard error of each.
fn every_subcommand(dir: &TempDir, stdout: fn() -> Stdio) -> Vec<(String, Option<i32>, String)> {
    let p = path(dir);
    let demo_log = dir.join("demo-log");
    let demo_log = demo_log.to_str().unwrap();
    let runs: [&[&str]; 10] = [
        &["stats", p],
        &["report", p],
        &["check", p],
        &["dump", p, "--format", "json"],
        &["dump", p, "--format", "csv"],
        &["dump", p, "--format", "hlog"],
        &["dump", p, "--format", "prom"],
        &["dump", p, "--format", "csv", "--rollup", "2s"],
        &["tail", p, "--all", "-n", "3"],
        &[
            "demo",
            "--log-dir",
            demo_log,
            "--seconds",
            "1",
            "--window-ms",
            "100",
            "--threads",
            "1",
        ],
    ];
    runs.iter()
        .map(|args| {
            let (code, err) = with_stdout(args, stdout());
            (args.join(" "), code, err)
        })
        .collect()
}

/// `ringmeter stats DIR | head -1`: the reader goes away; the command stops quietly.
#[test]
fn a_closed_stdout_ends_every_subcommand_quietly() {
    let dir = TempDir::new("epipe");
    write_log(dir.path(), 3);
    for (cmd, code, err) in every_subcommand(&dir, closed_pipe) {
        assert_eq!(code, Some(0), "{cmd}: {err}");
        assert!(err.is_empty(), "{cmd} printed: {err}");
    }
}

/// `check`'s exit code is its verdict: a reader that goes away early does not turn a damaged
/// log's verdict into 0.
#[test]
fn check_keeps_its_verdict_when_stdout_closes() {
    let dir = TempDir::new("epipe-check");
    write_log(dir.path(), 3);
    // Damage in the middle of the first window record, with valid records after it.
    let (segment, first, _) = frame_offsets(dir.path());
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[first as usize + 30] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();
    let verdict = ringmeter(&["check", path(&dir)]).status.code();
    assert_ne!(verdict, Some(0));
    let (code, err) = with_stdout(&["check", path(&dir)], closed_pipe());
    assert_eq!(code, verdict, "{err}");
    assert!(err.is_empty(), "{err}");
}

/// `ringmeter check DIR > /dev/full`: one message, exit code 1, no panic.
#[test]
fn a_full_stdout_is_one_error_message_and_exit_code_1() {
    let dir = TempDir::new("enospc");
    write_log(dir.path(), 3);
    for (cmd, code, err) in every_subcommand(&dir, dev_full) {
        assert_eq!(code, Some(1), "{cmd}: {err}");
        assert_eq!(
            err,
            "ringmeter: cannot write to standard output: No space left on device (os error 28)\n",
            "{cmd}"
        );
    }
    // And a full `-o` file.
    let err = fails(
        &["dump", path(&dir), "--format", "json", "-o", "/dev/full"],
        1,
    );
    assert_eq!(
        err,
        "ringmeter: cannot write to /dev/full: No space left on device (os error 28)\n"
    );
}

/// An empty selection is the same outcome for `stats` and every `dump` format: exit code 1,
/// a message, and nothing on stdout (not even a CSV header or an hlog preamble).
#[test]
fn an_empty_selection_fails_alike_in_stats_and_dump() {
    let dir = TempDir::new("empty-selection");
    write_log(dir.path(), 2);
    let p = path(&dir);
    let before = ["--until", "2000-01-01T00:00:00Z"];
    let mut runs: Vec<Vec<&str>> = vec![vec!["stats", p]];
    for format in ["json", "csv", "hlog", "prom"] {
        runs.push(vec!["dump", p, "--format", format]);
    }
    runs.push(vec!["dump", p, "--format", "json", "--rollup", "1m"]);
    runs.push(vec!["report", p]);
    for mut args in runs {
        args.extend(before);
        let out = ringmeter(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("no window of"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
    }
    // A log with no window record at all says so.
    let quiet = TempDir::new("no-windows");
    let engine = ringmeter::Engine::builder()
        .log_dir(quiet.path())
        .start_manual()
        .unwrap();
    engine.shutdown().unwrap();
    drop(engine);
    for args in [
        vec!["stats", path(&quiet)],
        vec!["dump", path(&quiet), "--format", "csv"],
    ] {
        let err = fails(&args, 1);
        assert!(err.contains("holds no window yet"), "{args:?}: {err}");
    }
}

/// `-o` never writes inside the log directory: not a new file, not a segment by its name,
/// through `..`, a symbolic link or a hard link. The segments stay as they were.
#[test]
fn dump_output_inside_the_log_directory_is_refused() {
    let dir = TempDir::new("output-inside");
    let log = dir.join("log");
    write_log(&log, 2);
    let segment = Reader::open(&log).unwrap().segments()[0].path.clone();
    let original = std::fs::read(&segment).unwrap();
    let name = segment.file_name().unwrap().to_str().unwrap().to_owned();
    let outside = dir.join("elsewhere");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&segment, outside.join("link.rml")).unwrap();
    std::fs::hard_link(&segment, outside.join("hard.rml")).unwrap();
    std::os::unix::fs::symlink(&log, outside.join("logdir")).unwrap();
    let targets = [
        log.join("out.csv"),
        log.join(&name),
        outside.join("..").join("log").join(&name),
        outside.join("link.rml"),
        outside.join("hard.rml"),
        outside.join("logdir").join("new.csv"),
    ];
    let log_arg = log.to_str().unwrap();
    for target in &targets {
        for input in [log_arg, segment.to_str().unwrap()] {
            let err = fails(
                &[
                    "dump",
                    input,
                    "--format",
                    "csv",
                    "-o",
                    target.to_str().unwrap(),
                ],
                2,
            );
            assert!(
                err.contains("inside the log directory"),
                "{target:?}: {err}"
            );
        }
    }
    assert!(!log.join("out.csv").exists());
    assert_eq!(std::fs::read(&segment).unwrap(), original);
    // Beside the log is fine.
    let fine = outside.join("out.csv");
    ok(&[
        "dump",
        log_arg,
        "--format",
        "csv",
        "-o",
        fine.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&fine).unwrap().lines().count(), 5);
}

/// A window longer than the run: the demo's summary covers the windows it wrote, which
/// start before the run did.
#[test]
fn demo_summarises_windows_longer_than_its_run() {
    let dir = TempDir::new("demo-long");
    let log = dir.join("log");
    let out = ok(&[
        "demo",
        "--log-dir",
        log.to_str().unwrap(),
        "--seconds",
        "1",
        "--window-ms",
        "60000",
        "--threads",
        "1",
    ]);
    assert!(out.lines().any(|l| l.starts_with("http.handle")), "{out}");
}

/// An OS error is said once, though the log's error includes it in its text and returns it
/// as its source too.
#[test]
fn os_errors_are_printed_once() {
    let dir = TempDir::new("os-error");
    // (A directory named like a segment is not an OS error: the reader reports it as
    // records missing, without opening it.)
    let missing = dir.join("no-such-log");
    let out = ringmeter(&["stats", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.matches("os error").count() <= 1, "{err}");
    assert_eq!(
        err.to_lowercase().matches("no such file").count(),
        1,
        "{err}"
    );
    // And an output that cannot be created.
    write_log(&dir.join("log"), 1);
    let err = fails(
        &[
            "dump",
            dir.join("log").to_str().unwrap(),
            "--format",
            "csv",
            "-o",
            dir.path().to_str().unwrap(),
        ],
        1,
    );
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}

/// Counts near `u64::MAX` add up to `u64::MAX`, not to a wrapped small number (nor to a
/// panic on overflow).
#[test]
fn counts_near_u64_max_saturate() {
    use crate::util::log::sample_records;
    use ringmeter::log::{LogConfig, Writer};
    let dir = TempDir::new("saturate");
    let mut w = Writer::open(LogConfig::new(dir.path())).unwrap();
    for mut r in sample_records(4) {
        if let Record::Window(win) = &mut r {
            win.stats.count = u64::MAX - 1;
            win.stats.dropped = 5;
            win.stats.errors = 1;
        }
        w.append(&r).unwrap();
    }
    drop(w);
    let out = ok(&["stats", path(&dir)]);
    for op in ["db.query", "http.get"] {
        let cols: Vec<&str> = out
            .lines()
            .find(|l| l.starts_with(op))
            .unwrap_or_else(|| panic!("{op} in {out}"))
            .split_whitespace()
            .collect();
        assert_eq!(cols[1], u64::MAX.to_string(), "{out}");
        assert_eq!(cols[3], "0.0%", "{out}");
        assert_eq!(cols.last(), Some(&"10"), "{out}");
    }
    let tail = ok(&["tail", path(&dir), "--all", "-n", "1"]);
    assert!(tail.contains(&format!("count {}", u64::MAX - 1)), "{tail}");
}

/// A log no writer holds is closed: what its newest segment lacks is missing, and every
/// reading subcommand says so, not only `check`. The same bytes while a writer holds the
/// directory are a log still being written.
#[test]
fn a_closed_log_with_an_empty_newest_segment_fails_every_reader() {
    let dir = TempDir::new("closed-empty");
    write_log(dir.path(), 2);
    let next = Reader::open(dir.path())
        .unwrap()
        .segments()
        .last()
        .unwrap()
        .seq
        + 1;
    let empty = dir
        .path()
        .join(ringmeter::log::format::segment_file_name(next));
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(
        ringmeter::log::writer_state(dir.path()),
        ringmeter::log::WriterState::Closed
    );
    for args in [
        vec!["stats", path(&dir)],
        vec!["dump", path(&dir), "--format", "json"],
        // Reads to the end, warns, prints nothing.
        vec!["tail", path(&dir), "-n", "0"],
        vec!["check", path(&dir)],
    ] {
        let out = ringmeter(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {err} {text}");
        if args[0] != "check" {
            assert!(err.contains("missing committed records"), "{args:?}: {err}");
        }
        if args[0] == "stats" || args[0] == "dump" {
            assert!(!text.is_empty(), "{args:?}: the windows are still printed");
        }
    }
    // A writer holding the directory (a second engine would fail; a bare writer takes the
    // lock and starts a segment of its own): the empty file is no longer the newest, and
    // the log is live, so the readers succeed and wait for more.
    std::fs::remove_file(&empty).unwrap();
    let writer = ringmeter::log::Writer::open(ringmeter::log::LogConfig::new(dir.path())).unwrap();
    assert!(matches!(
        ringmeter::log::writer_state(dir.path()),
        ringmeter::log::WriterState::Live { pid: Some(_) }
    ));
    let out = ringmeter(&["stats", path(&dir)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).is_empty());
    drop(writer);
}

/// A writer killed before it sealed its segment: `check` says the log is intact, and now
/// also that no writer holds it, so the windows it had not written are missing; `stats`
/// warns the same way (exit 0: every committed record was read).
#[test]
fn a_killed_writer_is_named_by_every_reader() {
    use ringmeter::log::format::{CommitSlot, COMMIT_BLOCK_AT};
    let dir = TempDir::new("closed-unsealed");
    write_log(dir.path(), 2);
    let (seg, _, _) = frame_offsets(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let slot = CommitSlot::newest(&bytes[COMMIT_BLOCK_AT..COMMIT_BLOCK_AT + 64]).unwrap();
    let g = slot.generation.get() + 1;
    let open = CommitSlot::new(g, slot.end.get(), slot.records.get(), 0);
    let at = CommitSlot::offset(g);
    bytes[at..at + 32].copy_from_slice(bytemuck::bytes_of(&open));
    std::fs::write(&seg, &bytes).unwrap();
    let out = ringmeter(&["check", path(&dir)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("no writer holds the log"), "{text}");
    let stats = ringmeter(&["stats", path(&dir)]);
    let err = String::from_utf8_lossy(&stats.stderr);
    assert_eq!(stats.status.code(), Some(0), "{err}");
    assert!(err.contains("was not closed by its writer"), "{err}");
}
