//! The live side of the HTTP endpoint (feature `http`): `GET /api/snapshot` against its JSON
//! Schema (`docs/snapshot.schema.json`, checked by Python's `jsonschema`) and against the
//! engine's own figures, and the dashboard page `GET /` loaded by headless Chromium from a
//! running engine.
//!
//! The schema check runs `RINGMETER_PYTHON` (or `python3`) with the `jsonschema` package; the
//! page test runs Chromium (Debian package `chromium`). A missing tool skips its test with a
//! note, unless `RINGMETER_REQUIRE_INTEROP=1`, which makes it a failure.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringmeter::alert::AlertRule;
use ringmeter::http::{serve, ServeOptions};
use ringmeter::{Clock, Engine, Rule, Sampling};
use serde_json::Value;

use crate::util::chromium;

fn required() -> bool {
    std::env::var("RINGMETER_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
}

/// `GET path`: the status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = std::str::from_utf8(&raw[9..12]).unwrap().parse().unwrap();
    (status, raw[split + 4..].to_vec())
}

fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/snapshot.schema.json")
}

/// Validates `doc` against the schema with Python's `jsonschema` (Draft 2020-12); also
/// checks that the validator rejects a copy of `doc` with an unknown field, so a schema or a
/// validator that accepts anything cannot pass. `None` when the tool is missing.
fn validate(doc: &Value, name: &str) -> Option<Result<(), String>> {
    let python = std::env::var("RINGMETER_PYTHON").unwrap_or_else(|_| "python3".into());
    let file = std::env::temp_dir().join(format!(
        "ringmeter-snapshot-{}-{name}.json",
        std::process::id()
    ));
    std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
    let script = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
cls = jsonschema.Draft202012Validator
cls.check_schema(schema)
errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
for e in errors:
    print("at /" + "/".join(map(str, e.absolute_path)) + ": " + e.message)
bad = dict(doc, unexpected_field=1)
if not list(cls(schema).iter_errors(bad)):
    print("the schema accepts an unknown top-level field")
    sys.exit(1)
sys.exit(1 if errors else 0)
"#;
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(schema_path())
        .arg(&file)
        .stdin(Stdio::null())
        .output();
    let _ = std::fs::remove_file(&file);
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            assert!(!required(), "cannot run {python}: {e}");
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'jsonschema'") {
        assert!(
            !required(),
            "RINGMETER_REQUIRE_INTEROP=1 but {python} has no jsonschema"
        );
        eprintln!("note: Python's jsonschema not installed; skipping the schema check");
        return None;
    }
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr
        ))
    })
}

/// An engine on a mock clock whose snapshot has every kind of value: two closed windows,
/// sampling, exemplars, an error kind, counters and gauges (one NaN), a firing alert and a
/// window log.
fn rich_engine(dir: &Path) -> Engine {
    let (clock, mock) = Clock::mock();
    mock.advance(Duration::from_millis(500));
    let engine = Engine::builder()
        .clock(clock)
        .log_dir(dir)
        .rule("db.*", Rule::new().exemplars(2))
        .rule("cache.*", Rule::new().sampling(Sampling::Every(2)))
        .rule("bg.*", Rule::new().sampling(Sampling::Probability(0.5)))
        .rule("noisy.*", Rule::new().sampling(Sampling::CountOnly))
        .alert(AlertRule::error_rate("db-errors", "db.*", 0.1))
        .start_manual()
        .unwrap();
    let db = engine.op("db.query").unwrap();
    let cache = engine.op("cache.get").unwrap();
    let bg = engine.op("bg.sweep").unwrap();
    let noisy = engine.op("noisy.ping").unwrap();
    let timeout = engine.error_kind("timeout").unwrap();
    engine
        .counter("jobs.done", &[("queue", "mail")])
        .unwrap()
        .increment(3);
    engine.gauge("queue.depth", &[]).unwrap().set(7.5);
    engine.gauge("ratio.unknown", &[]).unwrap().set(f64::NAN);
    for _ in 0..2 {
        for i in 0..20u64 {
            db.record_ns(1_000 + i * 100);
            cache.record_ns(300);
            bg.record_ns(5_000);
            noisy.record_ns(10);
        }
        db.record_error_kind_ns(90_000, timeout);
        db.record_error_ns(80_000);
        db.record_error_ns(70_000);
        mock.advance(Duration::from_secs(1));
        mock.advance_ns(0);
        engine.flush().unwrap();
    }
    engine
}

#[test]
fn the_snapshot_json_follows_the_schema_and_the_engine() {
    let dir = std::env::temp_dir().join(format!("ringmeter-dash-json-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let engine = rich_engine(&dir);
    let server = serve(&engine, ServeOptions::new("127.0.0.1:0")).unwrap();
    let (status, body) = get(server.local_addr(), "/api/snapshot");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let doc: Value = serde_json::from_slice(&body).expect("valid JSON");

    // Strict Rust-side checks of what the schema cannot know: the values are the engine's.
    let snap = engine.snapshot();
    assert_eq!(doc["sequence"], snap.sequence);
    assert_eq!(doc["windows_closed"], snap.windows_closed);
    let totals = doc["totals"].as_array().unwrap();
    assert_eq!(totals.len(), snap.totals.len());
    for (json, t) in totals.iter().zip(&snap.totals) {
        assert_eq!(json["name"], *t.name);
        assert_eq!(json["stats"]["count"], t.stats.count);
        assert_eq!(json["stats"]["errors"], t.stats.errors);
        assert_eq!(json["stats"]["p99_ns"], t.stats.p99_ns);
        assert_eq!(json["weight"], t.weight);
        assert_eq!(json["buckets"].as_array().unwrap().len(), t.buckets.len());
    }
    let window = snap.last_window.as_ref().unwrap();
    assert_eq!(doc["last_window"]["index"], window.index);
    let db = doc["last_window"]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "db.query")
        .unwrap();
    let db_window = window.op("db.query").unwrap();
    // The histogram: its non-zero buckets, counts adding up to the window's histogram.
    let buckets = db["histogram"].as_array().unwrap();
    assert_eq!(buckets.len(), db_window.histogram.buckets_recorded());
    let sum: u64 = buckets.iter().map(|b| b[2].as_u64().unwrap()).sum();
    assert_eq!(sum, db_window.histogram.len());
    assert!(buckets
        .iter()
        .all(|b| b[0].as_u64().unwrap() <= b[1].as_u64().unwrap()));
    assert_eq!(db["slowest"].as_array().unwrap().len(), 2);
    assert_eq!(db["slowest"][0]["duration_ns"], 90_000);
    assert_eq!(db["error_kinds"][0][0], "timeout");
    assert_eq!(db["error_kinds"][0][1], 1);
    assert_eq!(db["sampling"]["mode"], "all");
    let mode = |name: &str| {
        doc["last_window"]["ops"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .map(|o| o["sampling"].clone())
            .unwrap()
    };
    assert_eq!(mode("cache.get")["n"], 2);
    assert_eq!(mode("bg.sweep")["p"], 0.5);
    assert_eq!(mode("noisy.ping")["mode"], "count_only");
    assert_eq!(doc["alerts"][0]["state"], "firing");
    assert_eq!(doc["alerts"][0]["operation"], "db.query");
    assert_eq!(doc["alerts"][0]["threshold"], 0.1);
    assert_eq!(doc["counters"][0]["labels"]["queue"], "mail");
    assert_eq!(doc["counters"][0]["value"], 3);
    let gauges = doc["gauges"].as_array().unwrap();
    assert!(gauges
        .iter()
        .any(|g| g["name"] == "ratio_unknown" && g["value"].is_null()));
    assert!(gauges
        .iter()
        .any(|g| g["name"] == "queue_depth" && g["value"] == 7.5));
    assert_eq!(doc["log"]["dir"], dir.to_str().unwrap());
    assert_eq!(doc["log"]["writing"], true);

    // The schema, in full.
    match validate(&doc, "rich") {
        Some(r) => r.unwrap(),
        None => return,
    }
    // An engine that has closed no window yet and writes no log: nulls where allowed.
    let empty = Engine::builder().start_manual().unwrap();
    let quiet = serve(&empty, ServeOptions::new("127.0.0.1:0")).unwrap();
    let (status, body) = get(quiet.local_addr(), "/api/snapshot");
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert!(doc["last_window"].is_null() && doc["log"].is_null());
    validate(&doc, "empty").unwrap().unwrap();
    drop(server);
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Where the dashboard's screenshot is kept (a CI artifact).
fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshot.png")
}

#[test]
fn chromium_shows_the_live_dashboard() {
    let Some(chromium) = chromium::find() else {
        eprintln!("note: chromium not found; skipping (set RINGMETER_REQUIRE_INTEROP=1 to fail)");
        return;
    };
    // A real engine with short windows, two operations under load and an alert that fires.
    let engine = Engine::builder()
        .window(Duration::from_millis(200))
        .grace(Duration::from_millis(40))
        .alert(AlertRule::error_rate("http-errors", "http.*", 0.05))
        .alert(AlertRule::budget(
            "db-p95",
            "db.*",
            0.95,
            Duration::from_micros(60),
            Duration::from_secs(60),
        ))
        .start()
        .unwrap();
    let db = engine.op("db.query").unwrap();
    let web = engine.op("http.get").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                db.record_ns(20_000 + (i % 50) * 1_000);
                if i.is_multiple_of(10) {
                    web.record_error_ns(2_000_000);
                } else {
                    web.record_ns(300_000 + (i % 7) * 10_000);
                }
                i += 1;
                if i.is_multiple_of(20) {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
    };
    let server = serve(&engine, ServeOptions::new("127.0.0.1:0")).unwrap();
    let url = format!("http://{}/", server.local_addr());
    let shot = screenshot_path();
    let _ = std::fs::remove_file(&shot);
    let page = chromium::load(&chromium, &url, &shot);
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();

    assert!(
        page.console_errors.is_empty(),
        "console errors: {:#?}",
        page.console_errors
    );
    let dom = &page.dom;
    // One card per operation, each with its two charts drawn by uPlot.
    for op in ["db.query", "http.get"] {
        assert!(
            dom.contains(&format!("data-op=\"{op}\"")),
            "no card for {op}"
        );
    }
    assert_eq!(dom.matches("class=\"chart latency\"").count(), 2);
    assert_eq!(dom.matches("class=\"chart counts\"").count(), 2);
    assert_eq!(dom.matches("class=\"uplot").count(), 4, "uPlot charts");
    // Series: uPlot's legend has one row per series (the page's static legend leaves the
    // x axis out): 4 latency series (p50, p99, p99.9, max) and 2 count series (calls,
    // errors), per operation.
    assert_eq!(
        dom.matches("class=\"u-series").count(),
        2 * (4 + 2),
        "series rows"
    );
    for label in ["p50", "p99", "p99.9", "max", "calls", "errors"] {
        assert!(dom.contains(&format!(">{label}<")), "no series {label}");
    }
    // The alert fires and is listed; no process section unless the snapshot carries one.
    assert!(dom.contains("<td>http-errors</td>"), "the firing alert");
    // The budget's burn: 9 in 50 db.query calls (61–69 µs) are over its 60 µs limit, 18%
    // where 5% are allowed, so the row is marked as over its allowance.
    assert!(
        !dom.contains("<section id=\"budgets-section\" hidden"),
        "the budgets section"
    );
    assert!(dom.contains("<td>db-p95</td>"), "the budget's row");
    assert!(dom.contains("<td>p95 ≤ 60.0 µs</td>"), "the budget's limit");
    assert!(dom.contains("<tr class=\"over\"><td>db-p95</td>"), "burn above 1");
    let has_process = serde_json::from_slice::<Value>(&get(server.local_addr(), "/api/snapshot").1)
        .unwrap()
        .get("process")
        .is_some();
    assert_eq!(
        dom.contains("<section id=\"process-section\" hidden"),
        !has_process
    );
    // The screenshot is a PNG.
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    server.shutdown();
}

#[test]
fn the_dashboard_asks_for_the_token_when_one_is_required() {
    let Some(chromium) = chromium::find() else {
        eprintln!("note: chromium not found; skipping (set RINGMETER_REQUIRE_INTEROP=1 to fail)");
        return;
    };
    let engine = Engine::builder().start_manual().unwrap();
    let token = "dash-token-0123456789abcdef";
    let server = serve(
        &engine,
        ServeOptions::new("127.0.0.1:0").bearer_token(token),
    )
    .unwrap();
    let base = format!("http://{}/", server.local_addr());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    // Without the token: the form is shown, no data. The 401 itself is logged by the
    // browser as a failed load, which is expected here.
    let page = chromium::load(
        &chromium,
        &base,
        &dir.join("dashboard-token-screenshot.png"),
    );
    assert!(
        page.dom.contains("<form id=\"auth\">"),
        "the token form is shown"
    );
    assert!(page.dom.contains("waiting for a bearer token"));
    // With the token in the fragment (never sent to the server): data, no errors.
    let page = chromium::load(
        &chromium,
        &format!("{base}#token={token}"),
        &dir.join("dashboard-token-screenshot.png"),
    );
    assert!(page.console_errors.is_empty(), "{:#?}", page.console_errors);
    assert!(page.dom.contains("<form id=\"auth\" hidden"));
    assert!(page.dom.contains("windows closed"));
}

/// `ringmeter demo --serve ADDR`: the dashboard and the snapshot are served while the demo
/// runs, at the address it prints.
#[cfg(feature = "cli")]
#[test]
fn the_demo_serves_the_dashboard() {
    use std::io::BufRead;

    let dir = crate::util::cli::TempDir::new("demo-serve");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmeter"))
        .args([
            "demo",
            "--serve",
            "127.0.0.1:0",
            "--seconds",
            "3",
            "--window-ms",
            "100",
        ])
        .arg("--log-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: SocketAddr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("dashboard: http://")
                .and_then(|rest| rest.split('/').next())
                .map(|a| a.parse().unwrap())
        })
        .expect("the demo prints the dashboard's address");
    std::thread::sleep(Duration::from_millis(500));
    let (status, page) = get(addr, "/");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("ringmeter live"));
    let (status, body) = get(addr, "/api/snapshot");
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert!(!doc["totals"].as_array().unwrap().is_empty(), "{doc}");
    // The rest of the output is read so the demo never blocks on a full pipe.
    lines.for_each(drop);
    assert!(child.wait().unwrap().success());
}
