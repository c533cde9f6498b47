//! Process gauges through the engine: the growth flag over windows with a made-up sampler,
//! the snapshot, the exposition (checked by promtool and the OpenMetrics parser), the window
//! log's process records, the configuration file's keys. (The real resident memory moving
//! with an allocation is `tests/process_rss.rs`, a binary of its own.)

use std::collections::VecDeque;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringmeter::export::prom::Format;
use ringmeter::log::{Reader, Record};
use ringmeter::{Clock, Engine, MockClock, ProcessSample, ProcessStats};

use crate::util::log::TempDir;
use crate::util::tools::{missing, promtool_accepts, python, python_reads};

/// Samples handed out in order; an empty sample once they run out.
#[derive(Clone, Default)]
struct Feed(Arc<Mutex<VecDeque<ProcessSample>>>);

impl Feed {
    fn of_rss(rss: &[u64]) -> Self {
        let f = Feed::default();
        for (i, &r) in rss.iter().enumerate() {
            f.push(sample(r, i as u64));
        }
        f
    }

    fn push(&self, s: ProcessSample) {
        self.0.lock().unwrap().push_back(s);
    }

    fn sampler(&self) -> impl FnMut() -> ProcessSample + Send + 'static {
        let q = Arc::clone(&self.0);
        move || q.lock().unwrap().pop_front().unwrap_or_default()
    }
}

/// A full sample with resident memory `rss` at window `i`.
fn sample(rss: u64, i: u64) -> ProcessSample {
    ProcessSample::default()
        .with_resident_bytes(rss)
        .with_virtual_bytes(rss * 4)
        .with_heap_bytes(rss / 2)
        .with_cpu_ns(1_000_000_000 + i * 250_000_000, 500_000_000)
        .with_threads(5)
        .with_fds(12, Some(1024))
        .with_start_unix_ns(1_699_999_000_000_000_000)
}

/// A manual engine on a mock clock at 1_700_000_000.5 s (mid-window, so that a second later
/// the window is past its grace), process figures from `feed`.
fn engine(feed: &Feed, growth: u32, log: Option<&TempDir>) -> (Engine, MockClock) {
    let (clock, mock) = Clock::mock();
    mock.advance(Duration::from_millis(1_700_000_000_500));
    let mut b = Engine::builder()
        .clock(clock)
        .window(Duration::from_secs(1))
        .rss_growth_windows(growth)
        .process_sampler(feed.sampler());
    if let Some(dir) = log {
        b = b.log_dir(dir.path());
    }
    (b.start_manual().unwrap(), mock)
}

/// Closes the open window (one call of `op` in it) and returns the report's process figures.
fn close_window(engine: &Engine, mock: &MockClock) -> ProcessStats {
    engine.op("work").unwrap().record_ns(1_000);
    engine.flush().unwrap();
    mock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    let snap = engine.snapshot();
    let report = snap.last_window.as_ref().unwrap();
    let p = report.process.expect("sampled at the close");
    assert_eq!(snap.process, Some(p));
    assert_eq!(p.unix_ns, report.start_unix_ns + report.length_ns);
    p
}

#[test]
fn the_growth_flag_follows_consecutive_rises_of_resident_memory() {
    let mb = 1 << 20;
    let rss = [100, 101, 102, 102, 103, 90, 91, 92, 93, 94].map(|m| m * mb);
    let feed = Feed::of_rss(&rss);
    let (engine, mock) = engine(&feed, 3, None);
    let got: Vec<(u64, u32, bool)> = (0..rss.len())
        .map(|_| {
            let p = close_window(&engine, &mock);
            (
                p.sample.resident_bytes.unwrap() / mb,
                p.rss_rises,
                p.rss_growing,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (100, 0, false),
            (101, 1, false),
            (102, 2, false),
            (102, 2, false), // equal: neither a rise nor a fall
            (103, 3, true),
            (90, 0, false), // a fall resets
            (91, 1, false),
            (92, 2, false),
            (93, 3, true),
            (94, 4, true),
        ]
    );
    let text = String::from_utf8(engine.render_metrics(Format::Text)).unwrap();
    assert!(
        text.contains("\nringmeter_process_rss_growing 1\n"),
        "{text}"
    );
    assert!(text.contains("\nringmeter_process_rss_rises 4\n"), "{text}");
    assert!(
        text.contains("\nprocess_resident_memory_bytes 98566144\n"),
        "{text}"
    );
}

#[test]
fn growth_windows_zero_turns_the_flag_off_and_process_gauges_false_the_sampling() {
    let feed = Feed::of_rss(&[1, 2, 3, 4, 5]);
    let (engine, mock) = engine(&feed, 0, None);
    let mut last = close_window(&engine, &mock);
    for _ in 1..5 {
        last = close_window(&engine, &mock);
    }
    assert_eq!((last.rss_rises, last.rss_growing), (4, false));

    let (clock, mock) = Clock::mock();
    let off = Engine::builder()
        .clock(clock)
        .process_gauges(false)
        .start_manual()
        .unwrap();
    off.op("work").unwrap().record_ns(1);
    mock.advance(Duration::from_secs(5));
    off.flush().unwrap();
    let snap = off.snapshot();
    assert!(snap.last_window.as_ref().unwrap().process.is_none());
    assert!(snap.process.is_none());
    let text = String::from_utf8(off.render_metrics(Format::Text)).unwrap();
    assert!(!text.contains("process_"), "{text}");
}

/// The exposition of three windows with every figure known.
fn exposition(format: Format) -> String {
    let feed = Feed::of_rss(&[10 << 20, 11 << 20, 12 << 20]);
    let (engine, mock) = engine(&feed, 2, None);
    for _ in 0..3 {
        close_window(&engine, &mock);
    }
    String::from_utf8(engine.render_metrics(format)).unwrap()
}

#[test]
fn the_exposition_has_the_conventional_process_families() {
    let text = exposition(Format::Text);
    for line in [
        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 12582912\n",
        "process_virtual_memory_bytes 50331648\n",
        "process_heap_bytes 6291456\n",
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 2\n",
        "ringmeter_process_cpu_seconds_total{mode=\"user\"} 1.5\n",
        "ringmeter_process_cpu_seconds_total{mode=\"system\"} 0.5\n",
        "process_threads 5\n",
        "process_open_fds 12\n",
        "process_max_fds 1024\n",
        "process_start_time_seconds 1699999000\n",
        "ringmeter_process_rss_rises 2\n",
        "ringmeter_process_rss_growing 1\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    let om = exposition(Format::OpenMetrics);
    assert!(om.contains("# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total 2\n"));
    assert!(om.ends_with("# EOF\n"));
}

#[test]
fn promtool_accepts_the_process_families() {
    promtool_accepts(&exposition(Format::Text));
}

#[test]
fn the_openmetrics_parser_accepts_the_process_families() {
    let text = exposition(Format::OpenMetrics);
    let script = "import sys\n\
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
fams = [f for f in parse(sys.stdin.read()) if 'process' in f.name]\n\
print(' '.join(sorted(f.name + ':' + f.type for f in fams)))\n";
    let Some(out) = python_reads("prometheus_client.openmetrics.parser", script, &text) else {
        return;
    };
    assert_eq!(
        out.trim(),
        "process_cpu_seconds:counter process_heap_bytes:gauge process_max_fds:gauge \
         process_open_fds:gauge process_resident_memory_bytes:gauge \
         process_start_time_seconds:gauge process_threads:gauge \
         process_virtual_memory_bytes:gauge ringmeter_process_cpu_seconds:counter \
         ringmeter_process_rss_growing:gauge ringmeter_process_rss_rises:gauge"
    );
}

#[test]
fn the_log_keeps_one_process_record_per_window_before_its_windows() {
    let dir = TempDir::new("process-log");
    let feed = Feed::of_rss(&[5 << 20, 6 << 20, 7 << 20, 7 << 20]);
    // One sample without figures: absent figures stay absent in the log.
    feed.0.lock().unwrap().insert(2, ProcessSample::default());
    let (engine, mock) = engine(&feed, 1, Some(&dir));
    let reported: Vec<ProcessStats> = (0..5).map(|_| close_window(&engine, &mock)).collect();
    engine.shutdown().unwrap();
    drop(engine);
    let (records, integrity) = Reader::read_all(dir.path()).unwrap();
    assert!(integrity.is_clean(), "{integrity:?}");
    let logged: Vec<ProcessStats> = records
        .iter()
        .filter_map(|r| match r {
            Record::Process(p) => Some(*p),
            _ => None,
        })
        .collect();
    // The final pass at shutdown closes one more window (the one `close_window` left open).
    assert_eq!(logged[..5], reported[..]);
    assert!(reported[2].sample.resident_bytes.is_none());
    assert_eq!(reported[1].sample.threads, Some(5));
    assert!(reported[1].rss_growing);
    // Each process record comes before the window records of the window it closed.
    for (i, r) in records.iter().enumerate() {
        if let Record::Process(p) = r {
            let next_window = records[i..].iter().find_map(|r| match r {
                Record::Window(w) => Some(w),
                _ => None,
            });
            if let Some(w) = next_window {
                assert_eq!(w.end_unix_ns(), p.unix_ns);
            }
        }
    }
}

#[test]
fn the_configuration_file_sets_and_checks_the_process_keys() {
    let dir = TempDir::new("process-config");
    let path = dir.path().join("ringmeter.toml");
    std::fs::write(&path, "process_gauges = false\n").unwrap();
    let (clock, mock) = Clock::mock();
    let engine = Engine::builder()
        .clock(clock)
        .config_file(&path)
        .start_manual()
        .unwrap();
    engine.op("work").unwrap().record_ns(1);
    mock.advance(Duration::from_secs(5));
    engine.flush().unwrap();
    assert!(engine.snapshot().process.is_none());
    // A start-up setting: a reload may not change it.
    std::fs::write(&path, "process_gauges = true\n").unwrap();
    let err = engine.reload_config().unwrap_err().to_string();
    assert!(err.contains("process_gauges"), "{err}");

    std::fs::write(&path, "rss_growth_windows = 2\n").unwrap();
    let feed = Feed::of_rss(&[1, 2, 3]);
    let (clock, mock) = Clock::mock();
    mock.advance(Duration::from_millis(500));
    let engine = Engine::builder()
        .clock(clock)
        .config_file(&path)
        .process_sampler(feed.sampler())
        .start_manual()
        .unwrap();
    let flags: Vec<bool> = (0..3)
        .map(|_| close_window(&engine, &mock).rss_growing)
        .collect();
    assert_eq!(flags, [false, false, true]);

    for bad in [
        "process_gauges = 1",
        "rss_growth_windows = -1",
        "rss_growth_windows = 100001",
        "rss_growth_windows = \"10\"",
    ] {
        std::fs::write(&path, bad).unwrap();
        let err = Engine::builder()
            .config_file(&path)
            .start_manual()
            .unwrap_err()
            .to_string();
        let key = bad.split(' ').next().unwrap();
        assert!(err.contains(key), "{bad}: {err}");
    }
    let err = Engine::builder()
        .rss_growth_windows(100_001)
        .start_manual()
        .unwrap_err()
        .to_string();
    assert!(err.contains("rss_growth_windows"), "{err}");
}

/// The window's OTLP request, decoded by the official Python `opentelemetry-proto` package:
/// the semantic-convention process metrics with their types and values.
#[cfg(feature = "otlp")]
#[test]
fn otlp_carries_the_semantic_convention_process_metrics() {
    use ringmeter::export::otlp::{encode, request, resource};

    let python = python();
    let probe = Command::new(&python)
        .args([
            "-c",
            "import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !probe {
        missing("python opentelemetry-proto");
        return;
    }
    let feed = Feed::of_rss(&[10 << 20, 11 << 20]);
    let (engine, mock) = engine(&feed, 1, None);
    close_window(&engine, &mock);
    close_window(&engine, &mock);
    let snap = engine.snapshot();
    let window = snap.last_window.as_ref().unwrap();
    let req = request(
        &resource("svc", &[]),
        window,
        &snap.bucket_bounds_ns,
        &[],
        &[],
        0,
    );
    let script = r#"
import sys
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
req = ExportMetricsServiceRequest()
req.ParseFromString(sys.stdin.buffer.read())
for m in req.resource_metrics[0].scope_metrics[0].metrics:
    kind = m.WhichOneof('data')
    if not (m.name.startswith('process.') or m.name.startswith('ringmeter.process.')):
        continue
    d = getattr(m, kind)
    mono = ' monotonic' if kind == 'sum' and d.is_monotonic else ''
    for p in d.data_points:
        attrs = ','.join(a.key + '=' + a.value.string_value for a in p.attributes)
        v = p.as_int if p.WhichOneof('value') == 'as_int' else p.as_double
        print(m.name, m.unit, kind + mono, attrs, v, p.start_time_unix_nano, p.time_unix_nano)
"#;
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&encode(&req)).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = 1_699_999_000_000_000_000_u64;
    let end = window.start_unix_ns + window.length_ns;
    let want = [
        format!("process.cpu.time s sum monotonic cpu.mode=user 1.25 {start} {end}"),
        format!("process.cpu.time s sum monotonic cpu.mode=system 0.5 {start} {end}"),
        format!("process.memory.usage By sum  11534336 {start} {end}"),
        format!("process.memory.virtual By sum  46137344 {start} {end}"),
        format!("process.thread.count {{thread}} sum  5 {start} {end}"),
        format!("process.unix.file_descriptor.count {{file_descriptor}} sum  12 {start} {end}"),
        format!("ringmeter.process.memory.heap By sum  5767168 {start} {end}"),
        format!(
            "process.uptime s gauge  {:.1} 0 {end}",
            (end - start) as f64 / 1e9
        ),
        format!("ringmeter.process.file_descriptor.limit {{file_descriptor}} gauge  1024 0 {end}"),
        format!("ringmeter.process.memory.rss_rises {{window}} gauge  1 0 {end}"),
        format!("ringmeter.process.memory.rss_growing  gauge  1 0 {end}"),
    ];
    let got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, want);
}

/// `ringmeter stats` prints a process line from the log's process records, and
/// `dump --format prom` ends with the process families, which promtool accepts.
#[cfg(feature = "cli")]
#[test]
fn the_cli_shows_the_process_records() {
    use crate::util::cli::ok;

    let dir = TempDir::new("process-cli");
    let mib = 1 << 20;
    // The fifth sample is taken at shutdown, when the last (empty) window closes.
    let feed = Feed::of_rss(&[40 * mib, 41 * mib, 42 * mib, 43 * mib, 43 * mib]);
    let (engine, mock) = engine(&feed, 2, Some(&dir));
    for _ in 0..4 {
        close_window(&engine, &mock);
    }
    engine.shutdown().unwrap();
    drop(engine);
    let p = dir.path().to_str().unwrap();
    let out = ok(&["stats", p]);
    let line = out
        .lines()
        .find(|l| l.starts_with("process: "))
        .unwrap_or_else(|| panic!("no process line in\n{out}"));
    assert_eq!(
        line,
        "process: resident 43.0 MiB (max 43.0 MiB), heap 21.5 MiB, cpu 1.00 s user + 0 ns system \
         over the range, 5 threads, 12/1024 fds; resident memory growing in 3 of 5 windows, \
         still at the end (3 rises)"
    );
    // A range with one window: no CPU over it, the growth as of that window.
    let one = ok(&["stats", p, "--until", "@1700000001"]);
    assert!(
        one.contains("process: resident 40.0 MiB (max 40.0 MiB), heap 20.0 MiB, 5 threads"),
        "{one}"
    );
    assert!(!one.contains("growing"), "{one}");

    let prom = ok(&["dump", p, "--format", "prom"]);
    assert!(
        prom.contains("\nprocess_resident_memory_bytes 45088768 1700000005000\n"),
        "{prom}"
    );
    assert!(prom.contains("\nringmeter_process_rss_growing 1 1700000005000\n"));
    promtool_accepts(&prom);
}
