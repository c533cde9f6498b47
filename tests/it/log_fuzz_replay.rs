//! Replays the fuzz inputs as ordinary tests, plus a short deterministic mutation run over
//! the seeds so the decoders meet damaged input on stable.
//!
//! Inputs, per fuzz target: the seed corpus `fuzz/seeds/<target>/` (committed), crash inputs
//! kept as regressions in `tests/data/fuzz/<target>/` (committed: copy a file from
//! `fuzz/artifacts/<target>/` there once it is fixed), and whatever local fuzzing left in
//! `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` (not committed).
//! Fuzz with `cd fuzz && cargo +nightly fuzz run <target> corpus/<target> seeds/<target>` (new
//! inputs go to the first directory, so the committed seeds stay as they are).
//!
//! On stable, [`fuzz_on_stable`] runs every target's check for a fixed time on mutations of
//! its seeds (deterministic: the same sequence of inputs everywhere, as many of them as the
//! budget allows), so CI fuzzes without a nightly toolchain.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use ringmeter::log::format::segment_file_name;
use ringmeter::log::fuzzing::{
    check_dir_bytes, check_record_bytes, check_segment_bytes, SEGMENT_SEPARATOR,
};
use ringmeter::log::{Reader, Record};

/// The `record_roundtrip` target's input and check, shared with `fuzz/`.
#[path = "../../fuzz/common/roundtrip.rs"]
mod roundtrip;

/// What the `record_roundtrip` fuzz target does with its bytes (as `libfuzzer-sys` builds a
/// typed input).
fn check_roundtrip_bytes(data: &[u8]) {
    if let Ok(input) = roundtrip::Input::arbitrary_take_rest(Unstructured::new(data)) {
        roundtrip::check(input);
    }
}

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        "fuzz/seeds",
        "tests/data/fuzz",
        "fuzz/corpus",
        "fuzz/artifacts",
    ] {
        let Ok(rd) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn segment_reader_inputs_replay() {
    let inputs = inputs("segment_reader");
    assert!(!inputs.is_empty(), "the seed corpus is missing");
    for (name, bytes) in inputs {
        eprintln!("{name}");
        check_segment_bytes(&bytes);
    }
}

/// The directory reader's inputs, each under the fuzz target's time limit (10 s), plus
/// mutations of its seeds.
#[test]
fn log_dir_reader_inputs_replay() {
    let inputs = inputs("log_dir_reader");
    assert!(!inputs.is_empty(), "the seed corpus is missing");
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    let seeds: Vec<Vec<u8>> = inputs
        .iter()
        .filter(|(name, _)| name.contains("seeds"))
        .map(|(_, b)| b.clone())
        .collect();
    let mutated = (0..60).map(|_| {
        let i = rng.below(seeds.len());
        mutate(&mut rng, &seeds[i])
    });
    for (name, bytes) in inputs
        .into_iter()
        .chain(mutated.map(|b| ("mutation".to_owned(), b)))
    {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            check_dir_bytes(&bytes);
            let _ = tx.send(());
        });
        match rx.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(()) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{name}: over 10 s"),
            Err(_) => panic!("{name}: the check panicked"),
        }
    }
}

#[test]
fn record_decode_inputs_replay() {
    let inputs = inputs("record_decode");
    assert!(!inputs.is_empty(), "the seed corpus is missing");
    for (name, bytes) in inputs {
        eprintln!("{name}");
        check_record_bytes(&bytes);
    }
}

#[test]
fn record_roundtrip_inputs_replay() {
    let inputs = inputs("record_roundtrip");
    assert!(!inputs.is_empty(), "the seed corpus is missing");
    for (name, bytes) in inputs {
        eprintln!("{name}");
        check_roundtrip_bytes(&bytes);
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
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flips, overwrites with extreme values, truncates and splices bytes of the seeds.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if b.len() >= 4 => {
                let i = rng.below(b.len() - 3);
                let v: [u8; 4] = match rng.below(3) {
                    0 => [0xff; 4],
                    1 => [0; 4],
                    _ => (rng.next() as u32).to_le_bytes(),
                };
                b[i..i + 4].copy_from_slice(&v);
            }
            2 => {
                let n = rng.below(b.len() + 1);
                b.truncate(n);
            }
            3 if !b.is_empty() => {
                let i = rng.below(b.len());
                let j = rng.below(b.len());
                let (lo, hi) = (i.min(j), i.max(j));
                let chunk = b[lo..hi].to_vec();
                let at = rng.below(b.len());
                b.splice(at..at, chunk);
            }
            _ => {
                let i = rng.below(b.len() + 1);
                b.insert(i, rng.next() as u8);
            }
        }
    }
    b
}

#[test]
fn mutated_seeds_never_break_the_decoders() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Seeds only, so the run is the same everywhere.
    let seeds = |t| -> Vec<(String, Vec<u8>)> {
        inputs(t)
            .into_iter()
            .filter(|(name, _)| name.contains("seeds"))
            .collect()
    };
    let records = seeds("record_decode");
    for _ in 0..2000 {
        let (_, seed) = &records[rng.below(records.len())];
        check_record_bytes(&mutate(&mut rng, seed));
    }
    let segments = seeds("segment_reader");
    for _ in 0..150 {
        let (_, seed) = &segments[rng.below(segments.len())];
        check_segment_bytes(&mutate(&mut rng, seed));
    }
}

/// Time each target is fuzzed on stable: 3 s, or `RINGMETER_FUZZ_SECS`.
fn fuzz_budget() -> Duration {
    let secs = std::env::var("RINGMETER_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// Inputs run whatever the budget, so a slow machine still covers the start of the sequence.
const MIN_INPUTS: u64 = 100;

/// A value a length or count field could be set to: the extremes, and values just past what
/// an input of `len` bytes can hold.
fn huge(rng: &mut Rng, len: usize) -> u64 {
    let len = len as u64;
    match rng.below(8) {
        0 => u64::MAX,
        1 => u64::from(u32::MAX),
        2 => u64::from(u32::MAX >> 1),
        3 => 1 << 31,
        4 => u64::from(u16::MAX),
        5 => len + 1,
        6 => len.saturating_mul(2),
        _ => 1 << 40,
    }
}

/// [`mutate`], plus what a fuzzer with a dictionary of lengths does: length and count
/// fields (u16, u32 or u64, at aligned offsets or anywhere) set to huge values, and splices
/// of another seed.
fn mutate_hard(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = mutate(rng, seed);
    for _ in 0..1 + rng.below(3) {
        let len = b.len();
        match rng.below(4) {
            0 | 1 if len >= 8 => {
                let width = [2usize, 4, 8][rng.below(3)];
                let mut at = rng.below(len - width + 1);
                if rng.below(2) == 0 {
                    at -= at % width;
                }
                let v = huge(rng, len).to_le_bytes();
                b[at..at + width].copy_from_slice(&v[..width]);
            }
            2 if !other.is_empty() => {
                let from = rng.below(other.len());
                let to = from + rng.below(other.len() - from + 1);
                let at = rng.below(len + 1);
                b.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                let n = rng.below(len + 1);
                b.truncate(n);
            }
        }
    }
    b
}

/// Runs `check` (what fuzz target `target` runs) on mutations of the target's seeds for
/// [`fuzz_budget`]. A failing input is saved and named in the panic message.
fn fuzz_on_stable(target: &str, check: fn(&[u8])) {
    let seeds: Vec<Vec<u8>> = inputs(target)
        .into_iter()
        .filter(|(name, _)| name.contains("fuzz/seeds/"))
        .map(|(_, bytes)| bytes)
        .collect();
    assert!(!seeds.is_empty(), "the seed corpus of {target} is missing");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ target.len() as u64);
    let budget = fuzz_budget();
    let started = Instant::now();
    let mut n = 0u64;
    while n < MIN_INPUTS || started.elapsed() < budget {
        let seed = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let input = mutate_hard(&mut rng, seed, other);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&input))) {
            let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{target}-{n}"));
            let _ = std::fs::write(&saved, &input);
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            panic!(
                "{target}: input {n} of the stable fuzz run failed: {what}\n\
                 saved to {} (keep it as a regression in tests/data/fuzz/{target}/)",
                saved.display()
            );
        }
        n += 1;
    }
    eprintln!(
        "{target}: {n} inputs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn fuzz_record_decode_on_stable() {
    fuzz_on_stable("record_decode", check_record_bytes);
}

#[test]
fn fuzz_segment_reader_on_stable() {
    fuzz_on_stable("segment_reader", check_segment_bytes);
}

#[test]
fn fuzz_log_dir_reader_on_stable() {
    fuzz_on_stable("log_dir_reader", check_dir_bytes);
}

#[test]
fn fuzz_record_roundtrip_on_stable() {
    fuzz_on_stable("record_roundtrip", check_roundtrip_bytes);
}

/// Every target has a seed holding an alert record (kind 4), the directory reader's too.
#[test]
fn every_target_has_an_alert_seed() {
    let is_alert = |r: &Record| matches!(r, Record::Alert(_));
    assert!(inputs("record_decode").iter().any(|(_, b)| {
        b.first() == Some(&4) && Record::decode(4, &b[1..]).is_ok_and(|r| is_alert(&r))
    }));
    assert!(inputs("segment_reader").iter().any(|(name, _)| {
        Reader::read_all(Path::new(name)).is_ok_and(|(records, _)| records.iter().any(is_alert))
    }));
    // A directory input's first segment, alone in a directory of its own.
    let dir = crate::util::log::TempDir::new("alert-seed");
    assert!(inputs("log_dir_reader").iter().any(|(_, b)| {
        let first = b
            .windows(SEGMENT_SEPARATOR.len())
            .position(|w| w == SEGMENT_SEPARATOR)
            .map_or(&b[..], |i| &b[..i]);
        let path = dir.path().join(segment_file_name(0));
        std::fs::write(&path, first).unwrap();
        Reader::read_all(dir.path()).is_ok_and(|(records, _)| records.iter().any(is_alert))
    }));
    assert!(inputs("record_roundtrip").iter().any(|(_, b)| {
        roundtrip::Input::arbitrary_take_rest(Unstructured::new(b))
            .ok()
            .and_then(roundtrip::build)
            .is_some_and(|r| is_alert(&r))
    }));
}

/// Writes the alert seeds of the three targets into `fuzz/seeds/` (run by hand with
/// `cargo test --test it -- --ignored write_alert_seeds`; the files are committed).
#[test]
#[ignore = "writes the committed seed files"]
fn write_alert_seeds() {
    use std::sync::Arc;

    use ringmeter::alert::{Alert, AlertState, Condition};
    use ringmeter::log::{LogConfig, Writer};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let alert = |state, condition, value| Alert {
        rule: Arc::from("db-latency"),
        operation: Arc::from("db.query"),
        state,
        condition,
        value,
        calls: 1_234,
        window_start_unix_ns: 1_700_000_000_000_000_000,
        window_end_unix_ns: 1_700_000_001_000_000_000,
        since_unix_ns: 1_699_999_998_000_000_000,
        windows_breached: 3,
    };
    let alerts = [
        alert(
            AlertState::Firing,
            Condition::Percentile {
                quantile: 0.99,
                above_ns: 2_000_000,
            },
            Some(3_500_000.0),
        ),
        alert(
            AlertState::Resolved,
            Condition::ErrorRate { above: 0.05 },
            None,
        ),
        alert(
            AlertState::Firing,
            Condition::SlowCalls { above: 10 },
            Some(42.0),
        ),
    ];
    // record_decode: the kind byte, then the payload.
    let mut bytes = vec![4u8];
    Record::Alert(alerts[0].clone()).encode(&mut bytes).unwrap();
    std::fs::write(root.join("record_decode/seed-alert"), &bytes).unwrap();
    // segment_reader: a small segment with the alerts among windows.
    let dir = std::env::temp_dir().join(format!("ringmeter-alert-seed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = LogConfig::new(&dir);
    cfg.segment_size = 4096;
    let mut w = Writer::open(cfg).unwrap();
    for r in crate::util::log::sample_records(2) {
        w.append(&r).unwrap();
    }
    for a in &alerts {
        w.append(&Record::Alert(a.clone())).unwrap();
    }
    let segment = w.segment_path().unwrap().to_owned();
    drop(w);
    let (records, integrity) = Reader::read_all(&segment).unwrap();
    assert!(
        integrity.is_clean()
            && records
                .iter()
                .filter(|r| matches!(r, Record::Alert(_)))
                .count()
                == 3
    );
    std::fs::copy(&segment, root.join("segment_reader/seed-alert.rml")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // record_roundtrip: the first of a fixed sequence of byte strings that `arbitrary` reads
    // as an alert with names.
    let mut rng = Rng(0x51ed_2701_a3c4_9b1f);
    let bytes = (0..100_000)
        .map(|_| (0..160).map(|_| rng.next() as u8).collect::<Vec<u8>>())
        .find(|b| {
            matches!(
                roundtrip::Input::arbitrary_take_rest(Unstructured::new(b))
                    .ok()
                    .and_then(roundtrip::build),
                Some(Record::Alert(a)) if !a.rule.is_empty() && !a.operation.is_empty()
            )
        })
        .expect("an alert input");
    std::fs::write(root.join("record_roundtrip/seed-alert"), bytes).unwrap();
}

/// Process records of every shape the seeds need: all figures, none, some.
fn process_records() -> Vec<Record> {
    use ringmeter::{ProcessSample, ProcessStats};

    let full = ProcessSample::default()
        .with_resident_bytes(48 << 20)
        .with_virtual_bytes(1 << 30)
        .with_heap_bytes(20 << 20)
        .with_cpu_ns(3_250_000_000, 750_000_000)
        .with_threads(9)
        .with_fds(17, Some(1024))
        .with_start_unix_ns(1_699_999_000_000_000_000);
    let some = ProcessSample::default()
        .with_resident_bytes(50 << 20)
        .with_threads(9);
    [
        ProcessStats::new(1_700_000_001_000_000_000, full, 0, false),
        ProcessStats::new(
            1_700_000_002_000_000_000,
            ProcessSample::default(),
            0,
            false,
        ),
        ProcessStats::new(1_700_000_003_000_000_000, some, 12, true),
    ]
    .into_iter()
    .map(Record::Process)
    .collect()
}

/// Every target has a seed holding a process record (kind 6).
#[test]
fn every_target_has_a_process_seed() {
    let is_process = |r: &Record| matches!(r, Record::Process(_));
    assert!(inputs("record_decode").iter().any(|(_, b)| {
        b.first() == Some(&6) && Record::decode(6, &b[1..]).is_ok_and(|r| is_process(&r))
    }));
    assert!(inputs("segment_reader").iter().any(|(name, _)| {
        Reader::read_all(Path::new(name)).is_ok_and(|(records, _)| records.iter().any(is_process))
    }));
    assert!(inputs("record_roundtrip").iter().any(|(_, b)| {
        roundtrip::Input::arbitrary_take_rest(Unstructured::new(b))
            .ok()
            .and_then(roundtrip::build)
            .is_some_and(|r| is_process(&r))
    }));
}

/// Writes the process seeds of the three targets into `fuzz/seeds/` (run by hand with
/// `cargo test --test it -- --ignored write_process_seeds`; the files are committed).
#[test]
#[ignore = "writes the committed seed files"]
fn write_process_seeds() {
    use ringmeter::log::{LogConfig, Writer};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let records = process_records();
    // record_decode: the kind byte, then the payload of the record with every figure.
    let mut bytes = vec![6u8];
    records[0].encode(&mut bytes).unwrap();
    std::fs::write(root.join("record_decode/seed-process"), &bytes).unwrap();
    // segment_reader: a small segment with process records among windows.
    let dir = std::env::temp_dir().join(format!("ringmeter-process-seed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = LogConfig::new(&dir);
    cfg.segment_size = 4096;
    let mut w = Writer::open(cfg).unwrap();
    for (r, p) in crate::util::log::sample_records(3).iter().zip(&records) {
        w.append(p).unwrap();
        w.append(r).unwrap();
    }
    let segment = w.segment_path().unwrap().to_owned();
    drop(w);
    let (back, integrity) = Reader::read_all(&segment).unwrap();
    assert!(integrity.is_clean());
    let logged: Vec<&Record> = back
        .iter()
        .filter(|r| matches!(r, Record::Process(_)))
        .collect();
    assert_eq!(logged, records.iter().collect::<Vec<_>>());
    std::fs::copy(&segment, root.join("segment_reader/seed-process.rml")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // record_roundtrip: the first of a fixed sequence of byte strings that `arbitrary` reads
    // as a process record with at least four figures.
    let mut rng = Rng(0x9c0f_3e55_d1a2_7b64);
    let bytes = (0..100_000)
        .map(|_| (0..160).map(|_| rng.next() as u8).collect::<Vec<u8>>())
        .find(|b| {
            matches!(
                roundtrip::Input::arbitrary_take_rest(Unstructured::new(b))
                    .ok()
                    .and_then(roundtrip::build),
                Some(Record::Process(p)) if [
                    p.sample.resident_bytes,
                    p.sample.virtual_bytes,
                    p.sample.heap_bytes,
                    p.sample.cpu_user_ns,
                    p.sample.threads,
                    p.sample.open_fds,
                    p.sample.start_unix_ns,
                ].iter().filter(|f| f.is_some()).count() >= 4
            )
        })
        .expect("a process input");
    std::fs::write(root.join("record_roundtrip/seed-process"), bytes).unwrap();
}
