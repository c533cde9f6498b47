//! The live Prometheus exposition (`Engine::render_metrics`) in the text format 0.0.4 and
//! OpenMetrics: golden files, what promtool checks, and what it does not (bucket order,
//! `+Inf` equal to `_count`, counts equal to the engine's exact statistics).
//!
//! After a deliberate format change: `RINGMETER_BLESS=1 cargo test --test it exposition::`.

use std::collections::BTreeMap;
use std::time::Duration;

use ringmeter::export::prom::Format;
use ringmeter::{Clock, Engine, Rule, Sampling};

use crate::util::tools::{promtool_accepts, python_reads};

/// A deterministic engine: mock clock, no aggregator thread, two windows closed and a third
/// open, a sampled operation, counters and gauges, awkward label values.
fn engine() -> Engine {
    let (clock, mock) = Clock::mock();
    mock.advance(Duration::from_secs(1_700_000_000));
    let engine = Engine::builder()
        .clock(clock)
        .window(Duration::from_secs(1))
        .rule("bulk.*", Rule::new().sampling(Sampling::Every(4)))
        .prometheus_buckets([10, 100, 1_000, 10_000].map(Duration::from_micros))
        .process_gauges(false) // the process families are checked in `process`
        .start_manual()
        .unwrap();
    let query = engine.op("db.query").unwrap();
    let fetch = engine.op("cache.get").unwrap();
    let bulk = engine.op("bulk.load").unwrap();
    let sent = engine
        .counter("net.bytes_sent", &[("peer", "db \"primary\"\n")])
        .unwrap();
    let depth = engine.gauge("queue.depth", &[]).unwrap();
    engine
        .describe("net.bytes_sent", "Bytes written to peers.")
        .unwrap();
    for w in 0..3_u64 {
        for i in 0..100_u64 {
            query.record_ns(5_000 + i * 1_000 * (w + 1));
            if i % 10 == 0 {
                query.record_error_ns(50_000);
            }
            fetch.record_ns(500 + i);
            bulk.record_ns(2_000_000);
            sent.increment(100);
        }
        depth.set(w as f64 + 0.5);
        engine.flush().unwrap();
        mock.advance(Duration::from_secs(1));
    }
    engine.flush().unwrap();
    engine
}

fn render(engine: &Engine, format: Format) -> String {
    String::from_utf8(engine.render_metrics(format)).unwrap()
}

#[test]
fn exposition_matches_the_golden_files() {
    let engine = engine();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let bless = std::env::var_os("RINGMETER_BLESS").is_some_and(|v| v == "1");
    for (format, file) in [
        (Format::Text, "live.prom"),
        (Format::OpenMetrics, "live.openmetrics"),
    ] {
        let text = thread_ids_masked(&render(&engine, format));
        let path = dir.join(file);
        if bless {
            std::fs::write(&path, &text).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap();
        assert!(text == want, "{file} differs:\n{text}");
    }
}

/// `text` with the exemplars' thread numbers as `N`: ringmeter numbers threads in the order
/// they first record in the process, so the number depends on the other tests.
fn thread_ids_masked(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        match line.split_once(" # {thread_id=\"") {
            Some((sample, rest)) => {
                let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
                out.push_str(&format!("{sample} # {{thread_id=\"N{rest}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// One sample line: name, labels, value.
fn parse(text: &str) -> Vec<(String, BTreeMap<String, String>, String)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        // An OpenMetrics exemplar follows ` # ` (label values here hold no ` # `).
        let line = line.split_once(" # ").map_or(line, |(sample, _)| sample);
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((n, rest)) => {
                let rest = rest.strip_suffix('}').unwrap();
                let mut labels = BTreeMap::new();
                // Label values here hold no `",` sequence except the escaped test value.
                for part in rest.split("\",") {
                    let (k, v) = part.split_once("=\"").unwrap();
                    labels.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                }
                (n.to_owned(), labels)
            }
        };
        out.push((name, labels, value.to_owned()));
    }
    out
}

#[test]
fn buckets_ascend_and_inf_equals_count_equals_the_exact_statistics() {
    let engine = engine();
    let snap = engine.snapshot();
    for format in [Format::Text, Format::OpenMetrics] {
        let samples = parse(&render(&engine, format));
        for op in ["db.query", "cache.get", "bulk.load"] {
            let of = |name: &str| {
                samples
                    .iter()
                    .filter(|(n, l, _)| n == name && l.get("op").map(String::as_str) == Some(op))
                    .collect::<Vec<_>>()
            };
            let buckets = of("ringmeter_latency_seconds_bucket");
            assert_eq!(buckets.len(), 5, "{op}");
            let mut last_le = f64::NEG_INFINITY;
            let mut last_count = 0.0;
            for (_, l, v) in &buckets {
                let le: f64 = match l["le"].as_str() {
                    "+Inf" => f64::INFINITY,
                    s => s.parse().unwrap(),
                };
                let v: f64 = v.parse().unwrap();
                assert!(le > last_le, "{op}: bucket order");
                assert!(v >= last_count, "{op}: cumulative counts");
                last_le = le;
                last_count = v;
            }
            assert_eq!(last_le, f64::INFINITY);
            let count: f64 = of("ringmeter_latency_seconds_count")[0].2.parse().unwrap();
            assert_eq!(last_count, count, "{op}: +Inf equals _count");
            let totals = snap.totals.iter().find(|t| &*t.name == op).unwrap();
            assert_eq!(count as u64, totals.weight);
            let calls: u64 = of("ringmeter_calls_total")[0].2.parse().unwrap();
            assert_eq!(calls, totals.stats.calls());
            let sum: f64 = of("ringmeter_latency_seconds_sum")[0].2.parse().unwrap();
            assert!((sum - totals.sum_ns as f64 / 1e9).abs() <= 1e-12 * sum.max(1.0));
        }
    }
    // Without sampling the histogram holds every call exactly; with one in four sampled it
    // stands for all of them.
    let t = |name: &str| snap.totals.iter().find(|t| &*t.name == name).unwrap();
    assert_eq!(t("db.query").weight, t("db.query").stats.count);
    assert_eq!(t("db.query").stats.count, 330);
    assert_eq!(t("db.query").stats.errors, 30);
    // Every 4th of 300 calls timed: 75 samples standing for the calls up to the last one
    // sampled (the 3 after it are counted as unsampled, but no sample stands for them yet).
    assert_eq!(t("bulk.load").stats.count, 75);
    assert_eq!(t("bulk.load").stats.calls(), 300);
    assert_eq!(t("bulk.load").weight, 297);
    // cache.get: 500..600 ns, all under the first bound (10 µs).
    assert_eq!(t("cache.get").buckets, vec![300, 300, 300, 300, 300]);
}

#[test]
fn promtool_accepts_the_live_text() {
    promtool_accepts(&render(&engine(), Format::Text));
}

/// The OpenMetrics text through the strict parser of the Python client library
/// (`prometheus_client.openmetrics.parser`), from `RINGMETER_PYTHON` or `python3`.
#[test]
fn the_openmetrics_parser_accepts_the_openmetrics_text() {
    let engine = engine();
    let text = render(&engine, Format::OpenMetrics);
    // The parser also checks each exemplar's syntax and the 128-character limit of its
    // labels; it prints them back.
    let script = r#"import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse
fams = list(parse(sys.stdin.read()))
print(len(fams), sum(len(f.samples) for f in fams))
for f in fams:
    for s in f.samples:
        e = s.exemplar
        if e is not None:
            ts = e.timestamp
            print(s.name, s.labels['op'], s.labels['le'], sorted(e.labels.items()), format(e.value, '.9f'), ts.sec, ts.nsec)
"#;
    let Some(printed) = python_reads("prometheus_client.openmetrics.parser", script, &text) else {
        return;
    };
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    let mut lines = printed.lines();
    assert_eq!(lines.next(), Some(&*format!("11 {samples}")), "{text}");
    // One exemplar per operation here (every one of its slowest calls falls in one bucket):
    // the slowest call of the latest closed window, on the bucket it falls in.
    let snap = engine.snapshot();
    let window = snap.last_window.as_ref().unwrap();
    let bounds: Vec<u64> = snap.bucket_bounds_ns.to_vec();
    let mut want = Vec::new();
    for op in ["db.query", "cache.get", "bulk.load"] {
        let slowest = &window.op(op).unwrap().slowest;
        let e = &slowest[0];
        let i = bounds.partition_point(|&b| b < e.duration_ns);
        assert!(slowest
            .iter()
            .all(|s| bounds.partition_point(|&b| b < s.duration_ns) == i));
        want.push(format!(
            "ringmeter_latency_seconds_bucket {op} {} [('thread_id', '{}')] {:.9} {} {}",
            bounds[i] as f64 / 1e9,
            e.thread,
            e.duration_ns as f64 / 1e9,
            e.end_unix_ns / 1_000_000_000,
            e.end_unix_ns % 1_000_000_000,
        ));
    }
    let got: Vec<&str> = lines.collect();
    assert_eq!(got, want, "{text}");
}

#[test]
fn bad_bucket_bounds_are_errors() {
    for bounds in [
        vec![],
        vec![Duration::ZERO],
        vec![Duration::from_millis(2), Duration::from_millis(1)],
        vec![Duration::from_millis(1); 2],
        (1..=65).map(Duration::from_millis).collect(),
    ] {
        let err = Engine::builder()
            .prometheus_buckets(bounds.clone())
            .start_manual()
            .unwrap_err();
        assert!(
            err.to_string().contains("prometheus_buckets"),
            "{bounds:?}: {err}"
        );
    }
}
