//! The demo workload: worker threads serve fake requests through four instrumented
//! operations. A module of the `ringmeter` binary (for `ringmeter demo`) that
//! `examples/demo.rs` also includes with `#[path]`, so it uses only ringmeter's public API.
//!
//! | operation     | how it is timed                     | latency            | errors           |
//! |---------------|-------------------------------------|--------------------|------------------|
//! | `http.handle` | `time_result` around the whole call | sum of the below   | `Err` results    |
//! | `cache.get`   | `start()` guard, `set_failed(miss)` | well under 1 µs    | misses (~25%)    |
//! | `db.query`    | `time_result`, on cache misses      | ~50–200 µs (spin)  | ~2% `Err`        |
//! | `batch.flush` | `record_ns`, timed by `Instant`     | a sleep, ~0.1–1 ms | ~1%, `record_error_ns` |

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ringmeter::{Engine, Error, Op};

/// Calls longer than this count as slow.
pub const SLOW: Duration = Duration::from_micros(150);

/// The demo's own count of what it asked ringmeter to record, per operation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Issued {
    /// Calls issued.
    pub calls: u64,
    /// Failed calls issued.
    pub errors: u64,
}

impl Issued {
    /// Counts one call.
    pub fn add(&mut self, failed: bool) {
        self.calls += 1;
        self.errors += u64::from(failed);
    }
}

/// The operations of the workload.
#[derive(Clone, Copy)]
pub struct Ops {
    /// `http.handle`.
    pub http: Op,
    /// `cache.get`.
    pub cache: Op,
    /// `db.query`.
    pub db: Op,
    /// `batch.flush`.
    pub batch: Op,
}

/// The operation names, in the order of [`Ops`] and [`Tally`].
pub const NAMES: [&str; 4] = ["http.handle", "cache.get", "db.query", "batch.flush"];

impl Ops {
    /// Registers the four operations with `engine`.
    ///
    /// # Errors
    /// As [`Engine::op`].
    pub fn register(engine: &Engine) -> Result<Ops, Error> {
        Ok(Ops {
            http: engine.op(NAMES[0])?,
            cache: engine.op(NAMES[1])?,
            db: engine.op(NAMES[2])?,
            batch: engine.op(NAMES[3])?,
        })
    }
}

/// Per-thread tallies, in the same order as [`Ops`].
#[derive(Default)]
pub struct Tally {
    /// `http.handle`.
    pub http: Issued,
    /// `cache.get`.
    pub cache: Issued,
    /// `db.query`.
    pub db: Issued,
    /// `batch.flush`.
    pub batch: Issued,
}

impl Tally {
    /// The counts in the order of [`NAMES`].
    pub fn in_order(&self) -> [Issued; 4] {
        [self.http, self.cache, self.db, self.batch]
    }
}

/// One worker: fake requests until `stop` is set. Returns what it issued.
pub fn work(ops: Ops, seed: u64, stop: &AtomicBool) -> Tally {
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    let cache: HashMap<u64, u64> = (0..768).map(|k| (k, k * 7)).collect();
    let mut served = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let result = ops.http.time_result(|| {
            let mut misses = 0;
            for _ in 0..1 + rng.below(6) {
                // A lookup of a key that is present three times in four.
                let key = rng.below(1024);
                let mut t = ops.cache.start();
                let hit = std::hint::black_box(cache.get(&key)).is_some();
                t.set_failed(!hit);
                t.stop();
                tally.cache.add(!hit);
                misses += u32::from(!hit);
            }
            if misses == 0 {
                return Ok(());
            }
            let failed = rng.below(100) < 2;
            let r = ops.db.time_result(|| {
                spin(Duration::from_micros(50 + rng.below(151)));
                if failed {
                    Err("db timeout")
                } else {
                    Ok(())
                }
            });
            tally.db.add(failed);
            r
        });
        tally.http.add(result.is_err());
        served += 1;

        // Every 32 requests, a batch flush timed with `Instant` and recorded after the fact.
        if served.is_multiple_of(32) {
            let started = Instant::now();
            thread::sleep(Duration::from_micros(100 + rng.below(400)));
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let failed = rng.below(100) == 0;
            if failed {
                ops.batch.record_error_ns(ns);
            } else {
                ops.batch.record_ns(ns);
            }
            tally.batch.add(failed);
        } else {
            // Think time, so the workers leave some CPU to the aggregator and the printer.
            thread::sleep(Duration::from_micros(50));
        }
    }
    tally
}

/// Busy-waits for `d` (a sleep would round short waits up to the timer slack).
fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// xorshift64*: a few lines of std-only randomness, plenty for a workload.
struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    fn new(seed: u64) -> Self {
        Self(0x9E37_79B9_7F4A_7C15 ^ (seed + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9))
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}
