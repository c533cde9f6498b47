//! Speed of `ringmeter dump --format hlog`: window records read from a log and written as an
//! HdrHistogram interval log, in window records per second.
//!
//! The log is generated first, shaped as in `benches/merge.rs`: 1-second windows of 100
//! operations, each with a few hundred calls spread over three decades of latency (so the
//! log stores them plain, and the export compresses every one), written with `log::Writer`
//! into the system temp directory.
//!
//! | scenario | what is timed |
//! |---|---|
//! | `read/stored` | `Reader` alone, histograms kept as stored: the floor under the export |
//! | `hlog/stored` | `Reader` into `HlogWriter` (stored histograms compressed): `dump --format hlog` |
//! | `hlog/decoded` | `Reader` decoding every histogram, into `HlogWriter` (each encoded from its counts): a rollup's path |
//!
//! Each export is checked first: every line parsed back with the `hdrhistogram` crate's
//! interval log reader holds the histogram the log holds. Then each scenario runs 3 times; the
//! best run is printed, as records per second of the process's CPU time and of wall time,
//! with the output's size. Run: `cargo bench --bench hlog` (`cargo test --benches` runs a
//! small log once); arguments after `--` name the scenarios to run. With
//! `RINGMETER_BENCH_KEEP=1` the generated log is kept and its directory printed, to time the
//! command itself on it.

use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use ringmeter::export::hlog::HlogWriter;
use ringmeter::hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use ringmeter::hdrhistogram::serialization::Deserializer;
use ringmeter::hdrhistogram::Histogram;

#[path = "support/biglog.rs"]
mod biglog;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use biglog::{full, generate, read, OPS};

/// Counts the bytes written to it, and drops them.
#[derive(Default)]
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The export into `out`, buffered as the command buffers its output; returns the records read.
fn export<W: Write>(dir: &Path, decode: bool, out: W) -> (u64, W) {
    let mut log = HlogWriter::new(io::BufWriter::with_capacity(1 << 16, out));
    let n = read(dir, decode, |i| log.write(&i).unwrap());
    let out = log.finish().unwrap().into_inner().ok().unwrap();
    (n, out)
}

fn read_only(dir: &Path, decode: bool) -> (u64, u64) {
    let mut bytes = 0;
    let n = read(dir, decode, |i| {
        bytes += i.stored_histogram.map_or(0, |s| s.len() as u64);
    });
    (n, bytes)
}

fn hlog(dir: &Path, decode: bool) -> (u64, u64) {
    let (n, out) = export(dir, decode, Count::default());
    (n, out.0)
}

/// Checks that the export of `dir` holds, line by line, the log's histograms.
fn check(dir: &Path, decode: bool) {
    let mut expected = Vec::new();
    read(dir, true, |i| {
        expected.push((i.op, i.start_unix_ns, i.histogram))
    });
    let text = export(dir, decode, Vec::new()).1;
    let mut deserializer = Deserializer::new();
    let mut n = 0;
    for entry in IntervalLogIterator::new(&text) {
        let LogEntry::Interval(line) = entry.unwrap() else {
            continue;
        };
        let (op, start, h) = &expected[n];
        assert_eq!(line.tag().map(|t| t.as_str()), Some(&op[..]));
        assert_eq!(line.start_timestamp().as_millis() as u64, start / 1_000_000);
        let bytes = BASE64.decode(line.encoded_histogram()).unwrap();
        let got: Histogram<u64> = deserializer.deserialize(&mut bytes.as_slice()).unwrap();
        assert_eq!(&got, h);
        n += 1;
    }
    assert_eq!(n, expected.len());
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

fn main() {
    let seconds = if full() { 600 } else { 5 };
    let (dir, records) = generate("hlog", seconds);
    let bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "hlog: {records} window records ({OPS} operations x {seconds} 1-second windows), {} MiB",
        bytes >> 20
    );
    type Scenario = fn(&Path, bool) -> (u64, u64);
    let scenarios: [(&str, Scenario, bool); 3] = [
        ("read/stored", read_only, false),
        ("hlog/stored", hlog, false),
        ("hlog/decoded", hlog, true),
    ];
    // Scenarios named in the arguments (`cargo bench --bench hlog -- hlog/stored`), else all.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runs = if full() { 3 } else { 1 };
    for (name, f, decode) in scenarios {
        if !only.is_empty() && !only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        // Check before timing: every exported line reads back as the histogram the log holds.
        if name.starts_with("hlog/") {
            check(&dir, decode);
        }
        let (mut cpu, mut wall, mut out) = (f64::INFINITY, f64::INFINITY, 0);
        for _ in 0..runs {
            let (t, c) = (Instant::now(), process_cpu());
            let (n, bytes) = f(&dir, decode);
            let (secs, cpu_secs) = (t.elapsed().as_secs_f64(), process_cpu() - c);
            assert_eq!(n, records);
            (cpu, wall, out) = (cpu.min(cpu_secs), wall.min(secs), bytes);
        }
        println!(
            "hlog/{name:<13} {:>10.0} records/s of CPU time ({cpu:.3} s), {:>10.0} of wall time, {:>5} MiB out",
            records as f64 / cpu,
            records as f64 / wall,
            out >> 20
        );
    }
    if std::env::var_os("RINGMETER_BENCH_KEEP").is_some() {
        println!("hlog: log kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
