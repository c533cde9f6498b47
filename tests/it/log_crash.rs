//! Crash test: a child process writes windows through an engine and is killed with SIGKILL
//! at random points. Afterwards the log has at most a torn tail, and every window the child
//! reported flushed before the kill is in it with its exact count. Every other run the
//! child appends large raw records through a `Writer` instead, so that kills land inside
//! frames and leave torn tails.
//!
//! The child is this test binary re-executed with `RINGMETER_CRASH_CHILD` set and filtered to
//! `crash_child` alone. Runs: `RINGMETER_CRASH_RUNS`, else 500 with `RINGMETER_CRASH_LONG`
//! set, else 40; `scripts/crash-test.sh` runs the whole crash-and-damage suite. The runs
//! cycle through the durability policies and, for the raw child, the mapping and `pwrite`.
//! After each kill the verdict is at worst a torn tail: a kill loses nothing committed.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringmeter::log::{Durability, LogError, Reader, Record, Verdict, WriteMode};

use crate::util::log as log_util;

const CHILD_ENV: &str = "RINGMETER_CRASH_CHILD";
const RAW_ENV: &str = "RINGMETER_CRASH_RAW";
const POLICY_ENV: &str = "RINGMETER_CRASH_POLICY";

fn policy() -> Durability {
    std::env::var(POLICY_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default()
}

/// Payload size of the raw child's records: large, so kills often land mid-frame.
const RAW_PAYLOAD: usize = 200_000;

/// The child's body: runs only when re-executed by the parent test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    if std::env::var_os(RAW_ENV).is_some() {
        return raw_child(&dir);
    }
    let (clock, mock) = ringmeter::Clock::mock();
    let engine = ringmeter::Engine::builder()
        .clock(clock)
        .log_dir(&dir)
        .log_segment_size(8192)
        .log_durability(policy())
        .start_manual()
        .unwrap();
    let ops = [
        engine.op("db.query").unwrap(),
        engine.op("http.get").unwrap(),
    ];
    let mut out = std::io::stdout().lock();
    for w in 0_u64.. {
        let n = 1 + w % 17;
        for i in 0..n {
            ops[(i % 2) as usize].record_ns(1_000 + i * 997 + w);
        }
        mock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
        // The log append happened inside flush(): report the window as flushed.
        let snap = engine.snapshot();
        if let Some(last) = &snap.last_window {
            let count: u64 = last.ops.iter().map(|o| o.stats.count).sum();
            writeln!(out, "{} {count}", last.index).unwrap();
            out.flush().unwrap();
        }
    }
}

/// A child that appends large raw records through a `Writer`: most of its time is spent
/// inside frames, so kills leave torn tails.
fn raw_child(dir: &str) {
    let mut cfg = ringmeter::log::LogConfig::new(dir);
    cfg.segment_size = 1 << 20;
    cfg.durability = policy();
    if std::env::var_os("RINGMETER_CRASH_PWRITE").is_some() {
        cfg.write_mode = WriteMode::Pwrite;
    }
    let mut w = ringmeter::log::Writer::open(cfg).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0_u64.. {
        w.append(&Record::Unknown {
            kind: 200,
            payload: vec![i as u8; RAW_PAYLOAD],
        })
        .unwrap();
        writeln!(out, "{i} 0").unwrap();
        out.flush().unwrap();
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_at_random_points_leaves_at_most_a_torn_tail() {
    let runs: u64 = std::env::var("RINGMETER_CRASH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if std::env::var_os("RINGMETER_CRASH_LONG").is_some() {
            500
        } else {
            40
        });
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    // The harness names a test by its module path without the crate's name.
    let child_test = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::crash_child"),
        None => "crash_child".to_owned(),
    };
    let mut torn = 0;
    let mut windows_checked = 0;
    for run in 0..runs {
        let tmp = log_util::TempDir::new("crash");
        let dir = tmp.path().join("log");
        let raw = run % 2 == 1;
        let mut cmd = Command::new(&exe);
        if raw {
            cmd.env(RAW_ENV, "1");
            if run % 4 == 3 {
                cmd.env("RINGMETER_CRASH_PWRITE", "1");
            }
        }
        cmd.env(POLICY_ENV, ["os", "window", "5ms"][(run / 2 % 3) as usize]);
        let mut child = cmd
            .args(["--exact", &child_test, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_micros(rng.next() % 60_000);
        let t0 = Instant::now();
        while t0.elapsed() < delay {
            std::thread::sleep(Duration::from_micros(500));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let flushed: Vec<(u64, u64)> = stdout
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
            })
            .collect();
        let (records, integrity) = match Reader::read_all(&dir) {
            Ok(x) => x,
            Err(LogError::NotFound { .. } | LogError::NotALog { .. }) if flushed.is_empty() => {
                continue
            }
            Err(e) => panic!("run {run} (seed {seed}): {e}"),
        };
        let verdict = integrity.verdict();
        // Clean when the kill came between sealing a segment and renaming the next in.
        assert!(
            verdict <= Verdict::TornTail,
            "run {run} (seed {seed}): {integrity:?}"
        );
        torn += u64::from(verdict == Verdict::TornTail);
        if raw {
            let raws: Vec<&Vec<u8>> = records
                .iter()
                .filter_map(|r| match r {
                    Record::Unknown { kind: 200, payload } => Some(payload),
                    _ => None,
                })
                .collect();
            assert!(raws.len() >= flushed.len(), "run {run} (seed {seed})");
            for (i, p) in raws.iter().enumerate() {
                assert!(
                    p.len() == RAW_PAYLOAD && p.iter().all(|&b| b == i as u8),
                    "run {run} (seed {seed}): record {i} differs"
                );
            }
            windows_checked += flushed.len();
            continue;
        }
        for (index, count) in &flushed {
            let logged: u64 = records
                .iter()
                .filter_map(|r| match r {
                    Record::Window(w) if w.index == *index => Some(w.stats.count),
                    _ => None,
                })
                .sum();
            assert_eq!(
                logged, *count,
                "run {run} (seed {seed}): window {index} flushed but not logged"
            );
            windows_checked += 1;
        }
    }
    eprintln!(
        "crash test: {runs} runs, {torn} torn tails, {windows_checked} flushed windows and records found"
    );
    assert!(windows_checked > 0);
}
