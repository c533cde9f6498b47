//! Cost of alert rules at window close: one window of 1000 operations (10 calls each) closed
//! on a manual engine with no rule, a fixed threshold, an anomaly rule (p99 against a baseline
//! of 30 windows), a performance budget (p95 over an hour of 1 s windows: 64 buckets of 57
//! windows) and both, every rule matching every operation. The difference with `none` is the
//! rules' cost per window on the aggregator thread; divide by 1000 for one operation.
//!
//! Each scenario first closes 40 windows (full baselines) and checks that the rules see every
//! operation (the budget's burn is published for each) before it is timed. Run:
//! `cargo bench --bench alerts`.
//!
//! For instruction counts (deterministic, unlike the timings of a shared machine) the same
//! loop runs without Criterion when `RINGMETER_ALERT_BENCH=<rules>:<windows>` is set (`rules`
//! one of the scenario names): run it under `valgrind --tool=callgrind` with two window counts
//! and take the difference, which leaves out the set-up.

use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use ringmeter::alert::{AlertRule, Signal};
use ringmeter::{Clock, Engine, MockClock, Op};

/// `cargo bench` passes `--bench`; `cargo test --benches` (CI) runs a small version.
fn full() -> bool {
    std::env::args().any(|a| a == "--bench") || std::env::var_os("RINGMETER_ALERT_BENCH").is_some()
}

const CALLS: u64 = 10;
const SCENARIOS: [&str; 5] = ["none", "threshold", "anomaly", "budget", "anomaly_budget"];

fn rules(scenario: &str) -> Vec<AlertRule> {
    let anomaly = || AlertRule::anomaly("anomaly", "*", Signal::Latency { quantile: 0.99 }, 3.0);
    let budget = || {
        AlertRule::budget(
            "budget",
            "*",
            0.95,
            Duration::from_millis(4),
            Duration::from_secs(3600),
        )
    };
    match scenario {
        "none" => vec![],
        "threshold" => vec![AlertRule::percentile(
            "p99",
            "*",
            0.99,
            Duration::from_millis(100),
        )],
        "anomaly" => vec![anomaly()],
        "budget" => vec![budget()],
        "anomaly_budget" => vec![anomaly(), budget()],
        other => panic!("unknown scenario {other}"),
    }
}

struct Rig {
    engine: Engine,
    mock: MockClock,
    ops: Vec<Op>,
    round: u64,
}

impl Rig {
    fn new(scenario: &str) -> Rig {
        let (clock, mock) = Clock::mock();
        let mut b = Engine::builder()
            .clock(clock)
            .window(Duration::from_secs(1))
            .ring_capacity(1 << 16);
        for r in rules(scenario) {
            b = b.alert(r);
        }
        let engine = b.start_manual().unwrap();
        let n_ops = if full() { 1000 } else { 50 };
        let ops = (0..n_ops)
            .map(|i| engine.op(&format!("svc.op{i}")).unwrap())
            .collect();
        let mut rig = Rig {
            engine,
            mock,
            ops,
            round: 0,
        };
        for _ in 0..40 {
            rig.fill();
            rig.close();
        }
        if scenario.contains("budget") {
            let burns = rig.engine.snapshot().budgets.len();
            assert_eq!(burns, rig.ops.len(), "every operation has a burn");
        }
        rig
    }

    /// Calls of 1 µs to 5 ms, changing with the round.
    fn fill(&mut self) {
        self.round += 1;
        for (i, op) in self.ops.iter().enumerate() {
            for k in 0..CALLS {
                op.record_ns(1_000 + (k * 7919 + i as u64 * 104_729 + self.round) % 5_000_000);
            }
        }
        self.engine.flush().unwrap(); // aggregate the calls into the open window
    }

    /// Closes the open window (and evaluates the rules on it).
    fn close(&mut self) {
        self.mock.advance(Duration::from_secs(1));
        self.engine.flush().unwrap();
    }
}

fn alert_window(c: &mut Criterion) {
    let mut g = c.benchmark_group("alert_window");
    g.sample_size(10).measurement_time(Duration::from_secs(6));
    for scenario in SCENARIOS {
        let mut rig = Rig::new(scenario);
        g.bench_function(scenario, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    rig.fill();
                    let t = Instant::now();
                    rig.close();
                    total += t.elapsed();
                }
                total
            })
        });
        rig.engine.shutdown().unwrap();
    }
    g.finish();
}

criterion_group!(benches, alert_window);

fn main() {
    if let Some(spec) = std::env::var_os("RINGMETER_ALERT_BENCH") {
        let spec = spec.to_string_lossy().into_owned();
        let (scenario, windows) = spec.split_once(':').expect("<rules>:<windows>");
        let mut rig = Rig::new(scenario);
        for _ in 0..windows.parse::<u32>().expect("a window count") {
            rig.fill();
            rig.close();
        }
        rig.engine.shutdown().unwrap();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
