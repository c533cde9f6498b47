//! OTLP export (feature `otlp`): every request the exporter posts is decoded by the official
//! Python `opentelemetry-proto` package and checked against the engine's exact statistics;
//! retryable answers are retried without loss; a dead endpoint never holds the engine up, and
//! every window is accounted for as sent, failed or missed.
//!
//! The Python interpreter is `RINGMETER_PYTHON`, or `python3`; without `opentelemetry-proto`
//! the decoding test skips with a note, unless `RINGMETER_REQUIRE_INTEROP=1` (set by
//! `.ci/run`), which makes it fail.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ringmeter::export::prom::Format;
use ringmeter::{Clock, Engine, MockClock};
use ringmeter::{OtlpConfig, OtlpExporter};

use crate::util::tools::python;

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// A minimal OTLP/HTTP receiver: answers each request with the next status of its script
/// (200 once the script is used up) and keeps every request.
struct Receiver {
    port: u16,
    requests: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start(script: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut script: VecDeque<u16> = script.iter().copied().collect();
        let thread = {
            let (requests, stop) = (Arc::clone(&requests), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            conn.set_nonblocking(false).unwrap();
                            if let Some(r) = read_request(&conn) {
                                let status = script.pop_front().unwrap_or(200);
                                requests.lock().unwrap().push(r);
                                answer(conn, status);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        Receiver {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/metrics", self.port)
    }

    fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn read_request(conn: &TcpStream) -> Option<Received> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let (mut length, mut content_type) = (0, String::new());
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse().ok()?,
            "content-type" => content_type = v.trim().to_owned(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        path,
        content_type,
        body,
    })
}

fn answer(mut conn: TcpStream, status: u16) {
    let extra = if status == 429 {
        "Retry-After: 0\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n{extra}Connection: close\r\n\r\n"
    );
    let _ = conn.write_all(head.as_bytes());
}

/// Decodes an OTLP request with the official Python package and prints its points, one per
/// line, from the protocol's JSON mapping (`json_format.MessageToDict`).
const DECODE: &str = r#"
import base64, json, sys
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
req = ExportMetricsServiceRequest()
req.ParseFromString(sys.stdin.buffer.read())
d = json_format.MessageToDict(req)
def attrs(p):
    return {a['key']: list(a['value'].values())[0] for a in p.get('attributes', [])}
for rm in d['resourceMetrics']:
    print('resource', json.dumps(attrs(rm['resource']), sort_keys=True, separators=(',', ':')))
    for sm in rm['scopeMetrics']:
        print('scope', sm['scope']['name'], sm['scope']['version'])
        for m in sm['metrics']:
            if 'histogram' in m:
                h = m['histogram']
                for p in h['dataPoints']:
                    print('hist', m['name'], attrs(p)['op'], h['aggregationTemporality'],
                          p.get('startTimeUnixNano', '0'), p['timeUnixNano'], p.get('count', '0'),
                          repr(p.get('sum', 0.0)), ','.join(p['bucketCounts']),
                          ','.join(repr(b) for b in p['explicitBounds']),
                          repr(p.get('min')), repr(p.get('max')), len(p.get('exemplars', [])))
                    for e in p.get('exemplars', []):
                        print('exemplar', attrs(p)['op'], repr(e.get('asDouble')),
                              base64.b64decode(e.get('traceId', '')).hex() or '-',
                              base64.b64decode(e.get('spanId', '')).hex() or '-')
            elif 'sum' in m:
                s = m['sum']
                for p in s['dataPoints']:
                    print('sum', m['name'], json.dumps(attrs(p), sort_keys=True, separators=(',', ':')),
                          s['aggregationTemporality'], s.get('isMonotonic', False),
                          p.get('startTimeUnixNano', '0'), p['timeUnixNano'], p.get('asInt', '0'))
            elif 'gauge' in m:
                for p in m['gauge']['dataPoints']:
                    print('gauge', m['name'], json.dumps(attrs(p), sort_keys=True, separators=(',', ':')),
                          p['timeUnixNano'], repr(p.get('asDouble', 0.0)))
"#;

/// Whether Python can decode OTLP; panics instead of skipping when interop is required.
fn decoder_available() -> bool {
    let found = Command::new(python())
        .args([
            "-c",
            "import google.protobuf.json_format, opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var_os("RINGMETER_REQUIRE_INTEROP").is_some_and(|v| v == "1") {
            panic!("python3 with opentelemetry-proto is required (RINGMETER_REQUIRE_INTEROP=1)");
        }
        eprintln!("note: python3 with opentelemetry-proto not found; skipping");
    }
    found
}

/// The lines [`DECODE`] prints for `body`.
fn decode(body: &[u8]) -> Vec<String> {
    let mut child = Command::new(python())
        .args(["-c", DECODE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Python decoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn engine_with_mock() -> (Engine, MockClock) {
    let (clock, mock) = Clock::mock();
    let engine = Engine::builder()
        .clock(clock)
        .window(Duration::from_secs(1))
        .max_operations(8)
        .prometheus_buckets([
            Duration::from_micros(1),
            Duration::from_micros(10),
            Duration::from_millis(1),
        ])
        .start_manual()
        .unwrap();
    (engine, mock)
}

/// Closes the open window: its calls are drained, the clock moves past its end and grace.
fn close_window(engine: &Engine, mock: &MockClock) {
    engine.flush().unwrap();
    mock.advance(Duration::from_secs(3));
    engine.flush().unwrap();
}

fn fast(url: &str) -> OtlpConfig {
    OtlpConfig::new()
        .ignore_env()
        .endpoint(url)
        .service_name("otlp-test")
        .resource_attribute("deployment.environment", "test")
        .timeout(Duration::from_secs(5))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .shutdown_timeout(Duration::from_secs(10))
}

fn exporter(engine: &Engine, capacity: usize, config: &OtlpConfig) -> OtlpExporter {
    let weak = engine.downgrade();
    OtlpExporter::start(
        engine.subscribe(capacity),
        move || weak.upgrade().map(|e| e.snapshot()),
        config,
    )
    .unwrap()
}

/// An exporter that keeps its counts in engine counters too.
fn counted_exporter(engine: &Engine, capacity: usize, config: &OtlpConfig) -> OtlpExporter {
    let weak = engine.downgrade();
    OtlpExporter::start_counted(
        engine.subscribe(capacity),
        move || weak.upgrade().map(|e| e.snapshot()),
        config,
        |name, labels| engine.counter(name, labels),
    )
    .unwrap()
}

/// Non-cumulative counts of `durations` at the bounds 1 µs, 10 µs, 1 ms, then above.
fn buckets(durations: &[u64]) -> String {
    let mut c = [0u64; 4];
    for &d in durations {
        c[[1_000, 10_000, 1_000_000].partition_point(|&b| b < d)] += 1;
    }
    c.map(|n| n.to_string()).join(",")
}

/// Waits up to 10 s for `done`.
fn wait_for(done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out");
}

#[test]
fn python_decodes_every_window_with_the_engines_exact_figures() {
    if !decoder_available() {
        return;
    }
    let receiver = Receiver::start(&[]);
    let (engine, mock) = engine_with_mock();
    let exp = counted_exporter(&engine, 16, &fast(&receiver.url()));
    let query = engine.op("db.query").unwrap();
    let cache = engine.op("cache.get").unwrap();
    // Fill the operation table (8): further registrations are refused and counted.
    for i in 0..6 {
        engine.op(&format!("idle{i}")).unwrap();
    }
    for _ in 0..3 {
        assert!(engine.op("one.too.many").is_err());
    }
    let jobs = engine.counter("jobs.done", &[("queue", "a")]).unwrap();
    let depth = engine.gauge("queue.depth", &[]).unwrap();
    // Exactly representable durations (below 2048 ns HdrHistogram buckets are 1 ns wide;
    // 1_000_000 is a bucket's lowest value at 3 digits).
    let windows: [(Vec<u64>, Vec<u64>); 2] = [
        (
            vec![500, 999, 1_000, 1_001, 2_000, 1_000_000],
            vec![100, 200],
        ),
        (vec![7, 1_500, 1_500, 1_500], vec![]),
    ];
    for (i, (q, c)) in windows.iter().enumerate() {
        for &ns in q {
            query.record_ns(ns);
        }
        for &ns in c {
            cache.record_ns(ns);
        }
        query.record_error_ns(1_000); // one failure per window, timed too
        jobs.increment(10);
        depth.set(i as f64 + 0.5);
        engine.flush().unwrap();
        close_window(&engine, &mock);
        // The counters and gauges go out as read when the window is sent: let it go before
        // the next window's increments.
        wait_for(|| exp.stats().sent == i as u64 + 1);
    }
    let snap = engine.snapshot();
    let stats = exp.shutdown();
    assert_eq!(
        (stats.sent, stats.failed, stats.missed),
        (2, 0, 0),
        "{stats:?}"
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let totals = snap.totals("db.query").unwrap();
    assert_eq!(totals.count, 12);
    let mut total_count = 0;
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.path, "/v1/metrics");
        assert_eq!(r.content_type, "application/x-protobuf");
        let lines = decode(&r.body);
        assert_eq!(
            lines[0],
            r#"resource {"deployment.environment":"test","service.name":"otlp-test"}"#
        );
        assert_eq!(
            lines[1],
            format!("scope ringmeter {}", env!("CARGO_PKG_VERSION"))
        );
        let hist = |op: &str| -> Vec<String> {
            let line = lines
                .iter()
                .find(|l| l.starts_with(&format!("hist ringmeter.latency {op} ")))
                .unwrap_or_else(|| panic!("no histogram point of {op} in {lines:#?}"));
            line.split(' ').map(str::to_owned).collect()
        };
        let (start, end) = {
            let h = hist("db.query");
            (h[4].parse::<u64>().unwrap(), h[5].parse::<u64>().unwrap())
        };
        assert_eq!(end - start, 1_000_000_000, "a window's bounds");
        if i == 1 {
            let prev = decode(&requests[0].body);
            let prev_end = prev.iter().find(|l| l.starts_with("hist ")).unwrap();
            assert!(start >= prev_end.split(' ').nth(5).unwrap().parse::<u64>().unwrap());
        }
        let mut q = windows[i].0.clone();
        q.push(1_000);
        let h = hist("db.query");
        assert_eq!(h[3], "AGGREGATION_TEMPORALITY_DELTA");
        assert_eq!(h[6], q.len().to_string(), "count");
        total_count += q.len() as u64;
        let sum: u64 = q.iter().sum();
        assert_eq!(h[7].parse::<f64>().unwrap(), sum as f64 / 1e9, "sum");
        assert_eq!(h[8], buckets(&q), "bucket counts");
        assert_eq!(h[9], "1e-06,1e-05,0.001");
        let (min, max) = (*q.iter().min().unwrap(), *q.iter().max().unwrap());
        assert_eq!(h[10].parse::<f64>().unwrap(), min as f64 / 1e9);
        assert_eq!(h[11].parse::<f64>().unwrap(), max as f64 / 1e9);
        assert!(h[12].parse::<usize>().unwrap() >= 1, "exemplars");
        let point = |name: &str, attrs: &str| -> Vec<String> {
            let prefix = format!("sum {name} {attrs} ");
            lines
                .iter()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("no {prefix} in {lines:#?}"))
                .split(' ')
                .map(str::to_owned)
                .collect()
        };
        let calls = point("ringmeter.calls", r#"{"op":"db.query"}"#);
        assert_eq!(
            calls[3..],
            [
                "AGGREGATION_TEMPORALITY_DELTA".to_owned(),
                "True".to_owned(),
                start.to_string(),
                end.to_string(),
                q.len().to_string()
            ]
        );
        assert_eq!(point("ringmeter.errors", r#"{"op":"db.query"}"#)[7], "1");
        assert_eq!(
            point("ringmeter.dropped_calls", r#"{"op":"db.query"}"#)[7],
            "0"
        );
        if windows[i].1.is_empty() {
            assert!(!lines.iter().any(|l| l.contains("\"op\":\"cache.get\"")));
        } else {
            assert_eq!(hist("cache.get")[6], "2");
        }
        // The refusals and the exporter's own counts are cumulative sums like any counter;
        // window i goes out after i windows were sent.
        let refused = point(
            "ringmeter_refused_registrations",
            r#"{"limit":"operations","name":"one.too.many"}"#,
        );
        assert_eq!(refused[3], "AGGREGATION_TEMPORALITY_CUMULATIVE");
        assert_eq!(refused[7], "3");
        let sent = point("ringmeter_otlp_windows", r#"{"outcome":"sent"}"#);
        assert_eq!(sent[7], i.to_string());
        assert_eq!(
            point("ringmeter_otlp_windows", r#"{"outcome":"failed"}"#)[7],
            "0"
        );
        let jobs = point("jobs_done", r#"{"queue":"a"}"#);
        assert_eq!(jobs[3], "AGGREGATION_TEMPORALITY_CUMULATIVE");
        assert_eq!(jobs[7], (10 * (i + 1)).to_string());
        let gauge = lines
            .iter()
            .find(|l| l.starts_with("gauge queue_depth {} "))
            .unwrap();
        assert_eq!(gauge.split(' ').nth(4).unwrap(), format!("{}.5", i));
    }
    assert_eq!(total_count, totals.count);
    assert_eq!(totals.errors, 2);
}

#[test]
fn retryable_answers_are_retried_and_nothing_is_lost() {
    let receiver = Receiver::start(&[503, 429, 200, 502, 200]);
    let (engine, mock) = engine_with_mock();
    let exp = exporter(&engine, 16, &fast(&receiver.url()));
    let op = engine.op("step").unwrap();
    for _ in 0..2 {
        op.record_ns(1_000);
        close_window(&engine, &mock);
    }
    let stats = exp.shutdown();
    assert_eq!(
        (stats.sent, stats.failed, stats.missed, stats.retries),
        (2, 0, 0, 3),
        "{stats:?}"
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 5);
    // The retries carry the same window.
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(requests[1].body, requests[2].body);
    assert_eq!(requests[3].body, requests[4].body);
    assert_ne!(requests[2].body, requests[3].body);
}

#[test]
fn a_rejected_window_is_not_retried_and_is_counted() {
    let receiver = Receiver::start(&[400]);
    let (engine, mock) = engine_with_mock();
    let exp = exporter(&engine, 16, &fast(&receiver.url()));
    let op = engine.op("step").unwrap();
    for _ in 0..2 {
        op.record_ns(1_000);
        close_window(&engine, &mock);
    }
    let stats = exp.shutdown();
    assert_eq!(
        (stats.sent, stats.failed, stats.retries),
        (1, 1, 0),
        "{stats:?}"
    );
    assert!(stats.last_error.unwrap().contains("400"));
    assert_eq!(receiver.requests().len(), 2);
}

#[test]
fn a_dead_endpoint_never_holds_the_engine_and_every_window_is_accounted_for() {
    // A port that was just free: nothing listens on it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1/metrics");
    let (engine, mock) = engine_with_mock();
    // 200 ms of backoff per window: far slower than the windows close.
    let config = fast(&url)
        .attempts(3)
        .backoff(Duration::from_millis(100), Duration::from_millis(100))
        .shutdown_timeout(Duration::from_millis(200));
    // Its counts are kept in engine counters too.
    let exp = counted_exporter(&engine, 2, &config);
    let op = engine.op("step").unwrap();
    let windows = 20;
    for _ in 0..windows {
        for _ in 0..100 {
            op.record_ns(1_000);
        }
        close_window(&engine, &mock);
    }
    let snap = engine.snapshot();
    // Recording and closing went on: every call is in the totals.
    assert_eq!(snap.totals("step").unwrap().count, 100 * windows);
    assert_eq!(snap.windows_closed, windows);
    let stats = exp.shutdown();
    assert_eq!(stats.sent, 0);
    assert_eq!(stats.failed + stats.missed, windows, "{stats:?}");
    assert!(stats.missed > 0, "a queue of 2 overflowed: {stats:?}");
    assert!(stats.last_error.is_some());
    // The engine counters say the same, in the snapshot and the exposition.
    engine.flush().unwrap();
    let text = String::from_utf8(engine.render_metrics(Format::Text)).unwrap();
    for (outcome, n) in [
        ("sent", stats.sent),
        ("failed", stats.failed),
        ("missed", stats.missed),
    ] {
        let line = format!("ringmeter_otlp_windows_total{{outcome=\"{outcome}\"}} {n}\n");
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }
    let line = format!("ringmeter_otlp_retries_total {}\n", stats.retries);
    assert!(stats.retries > 0 && text.contains(&line), "{line} missing");
}

#[test]
fn the_exporter_ends_by_itself_when_the_engine_is_gone() {
    let receiver = Receiver::start(&[]);
    let (engine, mock) = engine_with_mock();
    let exp = exporter(&engine, 4, &fast(&receiver.url()));
    engine.op("step").unwrap().record_ns(5);
    close_window(&engine, &mock);
    engine.shutdown().unwrap();
    let closed = engine.snapshot().windows_closed;
    drop(engine);
    wait_for(|| !exp.is_running());
    let stats = exp.shutdown();
    // The window with the call, and the (empty) windows the shutdown closed.
    assert_eq!((stats.sent, stats.failed), (closed, 0), "{stats:?}");
    assert!(receiver.requests().len() as u64 == closed);
}

/// Parses each line of an OTLP/JSON dump with the official package's JSON parser and prints
/// `op count sum bucket_counts start end` per histogram point, `op calls errors` per window.
#[cfg(feature = "cli")]
const PARSE_JSON: &str = r#"
import sys
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
for line in sys.stdin:
    req = json_format.Parse(line, ExportMetricsServiceRequest())
    for rm in req.resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == 'ringmeter'
            calls = {}
            for m in sm.metrics:
                if m.HasField('histogram'):
                    assert m.histogram.aggregation_temporality == 1
                    for p in m.histogram.data_points:
                        print('hist', p.attributes[0].value.string_value, p.count, repr(p.sum),
                              ','.join(str(c) for c in p.bucket_counts), p.start_time_unix_nano, p.time_unix_nano)
                elif m.HasField('sum'):
                    for p in m.sum.data_points:
                        calls.setdefault(p.attributes[0].value.string_value, []).append((m.name, p.as_int))
            for op, values in calls.items():
                d = dict(values)
                print('calls', op, d['ringmeter.calls'], d['ringmeter.errors'])
"#;

#[cfg(feature = "cli")]
#[test]
fn dump_otlp_json_is_read_by_the_official_json_parser() {
    use crate::util::cli::{json_u64, ok, write_log, TempDir};

    if !decoder_available() {
        return;
    }
    let dir = TempDir::new("otlp-json");
    let log = dir.join("log");
    write_log(&log, 3);
    let log = log.to_str().unwrap();
    let otlp = ok(&["dump", log, "--format", "otlp-json"]);
    let json = ok(&["dump", log, "--format", "json"]);
    assert_eq!(otlp.lines().count(), json.lines().count());
    assert_eq!(otlp.lines().count(), 6, "3 windows of 2 operations");
    let mut child = Command::new(python())
        .args(["-c", PARSE_JSON])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(otlp.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the official parser refused the dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let hists: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("hist "))
        .map(|l| l.split(' ').collect())
        .collect();
    let calls: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("calls "))
        .map(|l| l.split(' ').collect())
        .collect();
    assert_eq!((hists.len(), calls.len()), (6, 6));
    // The exact sums of write_log's durations, and its counts, per window.
    let db_sum: u64 = (1..=1000u64).map(|i| i * 1000).sum();
    let cache_sum: u64 = (1..=200u64).map(|i| i * 10).sum();
    for ((h, c), j) in hists.iter().zip(&calls).zip(json.lines()) {
        let (count, sum) = match h[1] {
            "db.query" => (1000, db_sum),
            "cache.get" => (200, cache_sum),
            op => panic!("unexpected operation {op}"),
        };
        assert_eq!(h[2], count.to_string());
        assert_eq!(h[2], json_u64(j, "count").to_string());
        assert_eq!(
            h[3].parse::<f64>().unwrap(),
            sum as f64 / 1e9,
            "sum of {}",
            h[1]
        );
        let buckets: u64 = h[4].split(',').map(|c| c.parse::<u64>().unwrap()).sum();
        assert_eq!(buckets, count);
        let start = json_u64(j, "start_unix_ns");
        assert_eq!(h[5], start.to_string());
        assert_eq!(h[6], (start + json_u64(j, "length_ns")).to_string());
        assert_eq!(c[1], h[1]);
        assert_eq!(c[2], count.to_string());
        assert_eq!(c[3], json_u64(j, "errors").to_string());
    }
}

/// A span's `trace_id` and `span_id` reach the collector as its exemplar's ids.
#[cfg(feature = "tracing")]
#[test]
fn python_reads_the_trace_ids_of_span_exemplars() {
    use tracing_subscriber::layer::SubscriberExt;

    if !decoder_available() {
        return;
    }
    let receiver = Receiver::start(&[]);
    let (engine, mock) = engine_with_mock();
    let exp = exporter(&engine, 4, &fast(&receiver.url()));
    let subscriber = tracing_subscriber::registry().with(ringmeter::TracingLayer::new(&engine));
    let (trace, span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("traced", trace_id = trace, span_id = span)
            .in_scope(|| mock.advance(Duration::from_millis(3)));
        tracing::info_span!("traced").in_scope(|| mock.advance(Duration::from_millis(1)));
    });
    close_window(&engine, &mock);
    wait_for(|| exp.stats().sent == 1);
    exp.shutdown();
    let lines = decode(&receiver.requests()[0].body);
    let exemplars: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("exemplar traced "))
        .map(String::as_str)
        .collect();
    assert_eq!(
        exemplars,
        [
            format!("exemplar traced 0.003 {trace} {span}").as_str(),
            "exemplar traced 0.001 - -"
        ]
    );
}
