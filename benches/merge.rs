//! Merge speed of `ringmeter stats`, `dump --rollup` and `report`: window records read from a
//! log and merged per operation, in window records per second.
//!
//! The log is generated first: 1-second windows of 100 operations (the shape of a day of
//! windows, 8.6 M records, cut to a few minutes), each with a few hundred calls spread over
//! three decades of latency, written with `log::Writer` into the system temp directory.
//!
//! | scenario | what is timed |
//! |---|---|
//! | `read/stored` | `Reader` alone, histograms kept as stored: the floor under the merges |
//! | `totals/stored` | `Reader` (histograms kept as stored) into `Totals::add_all`, batches of 4096 on one thread: what `stats`, `report` and `dump --format prom` do |
//! | `totals_one_by_one/stored` | the same with `Totals::add` per record (each histogram read into its non-zero counts, then added) |
//! | `rollup_1m/stored` | the same into a 1-minute `Rollup::push_all`, batches of 4096, periods without decoded histograms: `dump --format json --rollup 1m` |
//! | `rollup_1m_one_by_one/stored` | `Rollup::push` per record, periods with decoded histograms (the library's default) |
//! | `totals/decoded` | `Reader` decoding every histogram into a full HdrHistogram, into `Totals`: the read before merging went sparse |
//! | `cli/stats`, `cli/dump_rollup_1m`, `cli/report` | the `ringmeter` binary itself (`stats DIR`, `dump DIR --format json --rollup 1m`, `report DIR -o FILE`), output thrown away; CPU time of the child process |
//!
//! Each library scenario is checked against the decoded path (same histograms and
//! percentiles) before it is timed, then each scenario is run 3 times; the best run is
//! printed, as records per second of CPU time (all threads: per core, whatever else the
//! machine runs) and of wall time. Run: `cargo bench --bench merge` (`cargo test --benches`
//! runs a small log once); `cargo bench --bench merge -- NAME` runs the scenarios whose name
//! contains NAME, and `--no-check` skips the check (for a profile of the timed part).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use ringmeter::export::{Interval, Rollup, Totals};
use ringmeter::hdrhistogram::serialization::Deserializer;
use ringmeter::hdrhistogram::Histogram;

#[path = "support/biglog.rs"]
mod biglog;

use biglog::{full, generate, read, OPS, S};

/// Intervals per batch, as the CLI hands them to `Totals::add_all` and `Rollup::push_all`
/// (`RINGMETER_BENCH_BATCH` sets another size, to compare).
fn batch_size() -> usize {
    std::env::var("RINGMETER_BENCH_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(4096)
}

fn totals(dir: &Path, decode: bool) -> (u64, Vec<Interval>) {
    let size = batch_size();
    let mut t = Totals::new();
    let mut batch = Vec::new();
    let n = read(dir, decode, |i| {
        batch.push(i);
        if batch.len() == size {
            t.add_all(std::mem::replace(&mut batch, Vec::with_capacity(size)), 1)
                .unwrap();
        }
    });
    t.add_all(batch, 1).unwrap();
    (n, t.finish())
}

fn totals_one_by_one(dir: &Path, decode: bool) -> (u64, Vec<Interval>) {
    let mut t = Totals::new();
    let n = read(dir, decode, |i| t.add(i).unwrap());
    (n, t.finish())
}

fn rollup(dir: &Path, decode: bool) -> (u64, Vec<Interval>) {
    let size = batch_size();
    let mut r = Rollup::new(60 * S);
    // As `dump --format json --rollup` has it: periods without a decoded histogram.
    r.decode_histograms(false);
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let n = read(dir, decode, |i| {
        batch.push(i);
        if batch.len() == size {
            r.push_all(
                std::mem::replace(&mut batch, Vec::with_capacity(size)),
                &mut out,
            )
            .unwrap();
        }
    });
    r.push_all(batch, &mut out).unwrap();
    out.extend(r.finish());
    (n, out)
}

fn rollup_one_by_one(dir: &Path, decode: bool) -> (u64, Vec<Interval>) {
    let mut r = Rollup::new(60 * S);
    let mut out = Vec::new();
    let n = read(dir, decode, |i| out.extend(r.push(i).unwrap()));
    out.extend(r.finish());
    (n, out)
}

fn read_only(dir: &Path, decode: bool) -> (u64, Vec<Interval>) {
    let mut last = None;
    let n = read(dir, decode, |i| last = Some(i));
    (n, last.into_iter().collect())
}

/// CPU time of the process (all its threads), in seconds.
fn process_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn same(a: &[Interval], b: &[Interval]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((&x.op, x.start_unix_ns), (&y.op, y.start_unix_ns));
        let (s, t) = (&x.stats, &y.stats);
        assert_eq!(
            (s.count, s.min_ns, s.max_ns, s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns),
            (t.count, t.min_ns, t.max_ns, t.p50_ns, t.p90_ns, t.p99_ns, t.p999_ns)
        );
        assert_eq!(histogram(x), histogram(y));
    }
}

/// The histogram of `i`, decoded from its stored bytes when it has them.
fn histogram(i: &Interval) -> Histogram<u64> {
    match &i.stored_histogram {
        Some(bytes) => Deserializer::new().deserialize(&mut &bytes[..]).unwrap(),
        None => i.histogram.clone(),
    }
}

fn main() {
    let seconds = if full() { 600 } else { 5 };
    let (dir, records) = generate("merge", seconds);
    let bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "merge: {records} window records ({OPS} operations x {seconds} 1-second windows), {} MiB",
        bytes >> 20
    );
    // Check before timing: each scenario merges to what the decoded path merges to
    // (`--no-check` leaves the check out, for a profile of the timed part alone).
    let check = !std::env::args().any(|a| a == "--no-check");
    if check {
        let reference = totals_one_by_one(&dir, true).1;
        same(&totals(&dir, false).1, &reference);
        same(&totals_one_by_one(&dir, false).1, &reference);
        let rolled = rollup_one_by_one(&dir, true).1;
        same(&rollup(&dir, false).1, &rolled);
        same(&rollup_one_by_one(&dir, false).1, &rolled);
    }
    type Scenario = fn(&Path, bool) -> (u64, Vec<Interval>);
    let scenarios: [(&str, Scenario, bool); 6] = [
        ("read/stored", read_only, false),
        ("totals/stored", totals, false),
        ("totals_one_by_one/stored", totals_one_by_one, false),
        ("rollup_1m/stored", rollup, false),
        ("rollup_1m_one_by_one/stored", rollup_one_by_one, false),
        ("totals/decoded", totals, true),
    ];
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let chosen = |name: &str| wanted.is_empty() || wanted.iter().any(|w| name.contains(w));
    let runs = if full() { 3 } else { 1 };
    for (name, f, decode) in scenarios {
        if !chosen(name) {
            continue;
        }
        let (mut cpu, mut wall) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..runs {
            let (t, c) = (Instant::now(), process_cpu());
            let (n, out) = f(&dir, decode);
            let (secs, cpu_secs) = (t.elapsed().as_secs_f64(), process_cpu() - c);
            assert_eq!(n, records);
            assert!(!out.is_empty());
            (cpu, wall) = (cpu.min(cpu_secs), wall.min(secs));
        }
        print(name, records, cpu, wall);
    }
    // The binary itself, on the same log.
    let page = std::env::temp_dir().join(format!(
        "ringmeter-bench-report-{}.html",
        std::process::id()
    ));
    let d = dir.to_str().unwrap();
    let p = page.to_str().unwrap();
    let commands: [(&str, Vec<&str>); 3] = [
        ("cli/stats", vec!["stats", d]),
        (
            "cli/dump_rollup_1m",
            vec!["dump", d, "--format", "json", "--rollup", "1m"],
        ),
        ("cli/report", vec!["report", d, "-o", p]),
    ];
    for (name, args) in commands {
        if !chosen(name) {
            continue;
        }
        let (mut cpu, mut wall) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..runs {
            let (t, c) = (Instant::now(), children_cpu());
            let status = Command::new(env!("CARGO_BIN_EXE_ringmeter"))
                .args(&args)
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "{name}: {status}");
            let (secs, cpu_secs) = (t.elapsed().as_secs_f64(), children_cpu() - c);
            (cpu, wall) = (cpu.min(cpu_secs), wall.min(secs));
        }
        print(name, records, cpu, wall);
    }
    let _ = std::fs::remove_file(&page);
    let _ = std::fs::remove_dir_all(&dir);
}

fn print(name: &str, records: u64, cpu: f64, wall: f64) {
    println!(
        "merge/{name:<28} {:>10.0} records/s of CPU time ({cpu:.3} s), {:>10.0} of wall time",
        records as f64 / cpu,
        records as f64 / wall
    );
}

/// CPU time (user and system) of the child processes waited for so far, in seconds.
fn children_cpu() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    assert_eq!(rc, 0);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}
