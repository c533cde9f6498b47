//! The `metrics` facade backend end to end: the facade's macros from several threads feed an
//! engine exactly; counters and gauges keep their labels in snapshots, the exposition and
//! the window log.

use std::time::Duration;

use ringmeter::export::prom::Format;
use ringmeter::facade::MetricsRecorder;
use ringmeter::log::{Reader, Record};
use ringmeter::Engine;

#[test]
fn the_global_recorder_feeds_the_engine_from_many_threads() {
    let dir = std::env::temp_dir().join(format!("ringmeter-facade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let engine = Engine::builder()
        .window(Duration::from_millis(20))
        .grace(Duration::from_millis(5))
        .log_dir(&dir)
        .start()
        .unwrap();
    ringmeter::facade::install(&engine).unwrap();
    assert!(ringmeter::facade::install(&engine).is_err());
    metrics::describe_histogram!("rpc.latency", metrics::Unit::Milliseconds, "RPC latency");
    metrics::describe_counter!("rpc.calls", "RPCs issued.");
    const THREADS: u64 = 4;
    const CALLS: u64 = 20_000;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                let method = if t % 2 == 0 { "get" } else { "put" };
                let h = metrics::histogram!("rpc.latency", "method" => method);
                for i in 0..CALLS {
                    h.record((i % 100) as f64 / 10.0); // 0 to 9.9 ms
                    metrics::counter!("rpc.calls", "method" => method).increment(1);
                    if i % 1000 == 0 {
                        metrics::gauge!("rpc.in_flight").increment(1.0);
                        metrics::histogram!("rpc.latency", "method" => method).record(f64::NAN);
                    }
                }
            });
        }
    });
    metrics::gauge!("rpc.in_flight").decrement(10.0);
    engine.shutdown().unwrap();
    let snap = engine.snapshot();
    for method in ["get", "put"] {
        let op = format!("rpc.latency.method_{method}");
        let stats = snap.totals(&op).unwrap();
        assert_eq!(
            stats.calls(),
            2 * CALLS,
            "{op}: every value recorded or counted"
        );
        if stats.dropped == 0 {
            assert_eq!(stats.max_ns, 9_900_000);
            assert_eq!(stats.min_ns, 0);
        }
        let calls = snap
            .counters
            .iter()
            .find(|c| &*c.name == "rpc_calls" && &*c.labels[0].1 == method)
            .unwrap();
        assert_eq!(calls.value, 2 * CALLS);
        assert_eq!(calls.help.as_deref(), Some("RPCs issued."));
        let rejected = snap
            .counters
            .iter()
            .find(|c| &*c.name == "ringmeter_metrics_rejected_values")
            .unwrap();
        assert_eq!(rejected.value, THREADS * CALLS / 1000);
    }
    let gauge = snap.gauges.iter().find(|g| &*g.name == "rpc_in_flight");
    assert_eq!(gauge.unwrap().value, (THREADS * CALLS / 1000) as f64 - 10.0);

    let text = String::from_utf8(engine.render_metrics(Format::Text)).unwrap();
    assert!(
        text.contains("rpc_calls_total{method=\"get\"} 40000\n"),
        "{text}"
    );
    assert!(text.contains("# HELP rpc_calls_total RPCs issued.\n"));
    assert!(text.contains("rpc_in_flight 70\n"));
    assert!(text.contains("ringmeter_latency_seconds_count{op=\"rpc.latency.method_put\"}"));

    // The log holds the series as they were at the last window close.
    let mut last = None;
    for rec in Reader::open(&dir).unwrap() {
        if let Record::Series(s) = rec.unwrap() {
            last = Some(s);
        }
    }
    let last = last.expect("series records in the log");
    let c = last
        .counters
        .iter()
        .find(|c| &*c.name == "rpc_calls")
        .unwrap();
    assert_eq!(c.value, 2 * CALLS);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn names_are_mapped_and_failures_counted() {
    let engine = Engine::builder().start_manual().unwrap();
    let recorder = MetricsRecorder::new(&engine);
    metrics::with_local_recorder(&recorder, || {
        metrics::histogram!("http request", "path" => "/a/b").record(0.001);
        metrics::counter!("2xx.responses", "le" => "x", "http.method" => "GET").increment(2);
        metrics::gauge!("temp-celsius").set(-3.5);
        // `a.b` and `a_b` have one Prometheus form: the second cannot be an operation.
        metrics::histogram!("a.b").record(1.0);
        metrics::histogram!("a_b").record(1.0);
        metrics::histogram!("neg").record(-1.0);
    });
    assert_eq!(recorder.rejected_registrations(), 1);
    engine.flush().unwrap();
    let snap = engine.snapshot();
    assert_eq!(
        snap.totals("http_request.path__a_b").unwrap().max_ns,
        1_000_000
    );
    assert_eq!(snap.totals("a.b").unwrap().count, 1);
    // A negative duration is not recorded, but counted.
    assert!(snap.totals("neg").is_none());
    let rejected = snap
        .counters
        .iter()
        .find(|c| &*c.name == "ringmeter_metrics_rejected_values" && &*c.labels[0].1 == "neg")
        .unwrap();
    assert_eq!(rejected.value, 1);
    let c = &snap
        .counters
        .iter()
        .find(|c| &*c.name == "m2xx_responses")
        .unwrap();
    let labels: Vec<(&str, &str)> = c.labels.iter().map(|(k, v)| (&**k, &**v)).collect();
    assert_eq!(labels, [("http_method", "GET"), ("le_", "x")]);
    assert_eq!(snap.gauges[0].value, -3.5);
    assert_eq!(&*snap.gauges[0].name, "temp_celsius");
}

/// A request id used as a label: every value past the limits is refused, and the refusals
/// are in the exposition per metric name, exactly.
#[test]
fn a_request_id_label_shows_its_refusals_per_name() {
    const IDS: u64 = 100_000;
    let engine = Engine::builder().start_manual().unwrap();
    let recorder = MetricsRecorder::new(&engine);
    metrics::with_local_recorder(&recorder, || {
        for id in 0..IDS {
            let id = id.to_string();
            metrics::histogram!("http.request", "request_id" => id.clone()).record(0.001);
            metrics::counter!("http.responses", "request_id" => id).increment(1);
        }
    });
    // 1024 operations (the default limit) were registered, the rest refused; the series limit
    // holds the first histogram's rejected-values counter and 65,535 response counters.
    let ops_refused = IDS - 1024;
    let series_refused = IDS - (ringmeter::limits::MAX_SERIES as u64 - 1);
    assert_eq!(ops_refused, 98_976);
    assert_eq!(
        recorder.rejected_registrations(),
        ops_refused + series_refused
    );
    engine.flush().unwrap();
    let text = String::from_utf8(engine.render_metrics(Format::Text)).unwrap();
    for line in [
        format!(
            "ringmeter_refused_registrations_total{{limit=\"operations\",name=\"http.request\"}} {ops_refused}\n"
        ),
        format!(
            "ringmeter_refused_registrations_total{{limit=\"series\",name=\"http.responses\"}} {series_refused}\n"
        ),
        "# TYPE ringmeter_refused_registrations_total counter\n".to_owned(),
    ] {
        assert!(text.contains(&line), "{line} missing");
    }
    let om = String::from_utf8(engine.render_metrics(Format::OpenMetrics)).unwrap();
    assert!(om.contains(&format!(
        "ringmeter_refused_registrations_total{{limit=\"operations\",name=\"http.request\"}} {ops_refused}\n"
    )));
    // Engine::op refusals are counted under the operation's name.
    assert!(engine.op("one.more").is_err());
    assert!(engine.op("one.more").is_err());
    engine.flush().unwrap();
    let snap = engine.snapshot();
    let refused: Vec<_> = snap
        .counters
        .iter()
        .filter(|c| &*c.name == "ringmeter_refused_registrations")
        .map(|c| {
            (
                c.labels[0].1.to_string(),
                c.labels[1].1.to_string(),
                c.value,
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            ("operations".into(), "http.request".into(), ops_refused),
            ("operations".into(), "one.more".into(), 2),
            ("series".into(), "http.responses".into(), series_refused),
        ]
    );
}
