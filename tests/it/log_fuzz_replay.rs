//! Replays the fuzz inputs as ordinary tests, plus a short deterministic mutation run over
//! the seeds so the decoders meet damaged input on stable.
//!
//! Inputs, per fuzz target: the seed corpus `fuzz/seeds/<target>/` (committed), crash inputs
//! kept as regressions in `tests/data/fuzz/<target>/` (committed: copy a file from
//! `fuzz/artifacts/<target>/` there once it is fixed), and whatever local fuzzing left in
//! `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` (not committed).
//! Fuzz with `cd fuzz && cargo +nightly fuzz run <target> corpus/<target> seeds/<target>` (new
//! inputs go to the first directory, so the committed seeds stay as they are).

use std::path::Path;

use ringmeter::log::fuzzing::{check_dir_bytes, check_record_bytes, check_segment_bytes};

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
