//! OpenTelemetry metrics (OTLP): closed windows as `ExportMetricsServiceRequest`s (feature
//! `otlp`).
//!
//! [`request`] turns one closed [`WindowReport`], plus the counters and gauges of a snapshot,
//! into the protocol's own generated message (the `opentelemetry-proto`
//! crate, re-exported as [`proto`]); [`OtlpExporter`](crate::otlp::OtlpExporter) pushes those messages from a thread of
//! its own to an OTLP/HTTP endpoint, protobuf-encoded. The conversion is pure and keeps the
//! engine's exact figures; the mapping, the environment variables and the retry behaviour are
//! described in `docs/exporting.md`.
//!
//! # The mapping
//! One `ResourceMetrics` (the [`OtlpConfig`]'s resource), one `ScopeMetrics` (scope
//! `ringmeter`, the crate's version); every operation of the window is a data point with the
//! attribute `op` = its name.
//!
//! | metric | type | value |
//! |---|---|---|
//! | `ringmeter.latency` (unit `s`) | Histogram, DELTA | per window: explicit buckets at [`Snapshot::bucket_bounds_ns`](crate::Snapshot::bucket_bounds_ns), count, sum, min, max, exemplars |
//! | `ringmeter.calls` | Sum, monotonic, DELTA | [`OpStats::calls`](crate::OpStats::calls) |
//! | `ringmeter.errors`, `ringmeter.slow_calls`, `ringmeter.unsampled_calls`, `ringmeter.dropped_calls`, `ringmeter.late_calls` | Sum, monotonic, DELTA | `errors`, `slow`, `unsampled`, `dropped`, `late` |
//! | each [`Engine::counter`](crate::Engine::counter) (and `metrics` counter) | Sum, monotonic, CUMULATIVE | its value, its labels as attributes |
//! | each [`Engine::gauge`](crate::Engine::gauge) (and `metrics` gauge) | Gauge | its value, its labels as attributes |
//! | the window's [`ProcessStats`](crate::ProcessStats) | `process.*` semantic-convention metrics | see `src/export/otlp/process.rs` and `docs/exporting.md` |
//!
//! Data points of a window run from its start (`start_time_unix_nano`) to its end
//! (`time_unix_nano`). The counters and gauges carry the window's end as their time, with the
//! values of the latest snapshot when the window is converted ([`OtlpExporter`](crate::otlp::OtlpExporter) does so as it
//! sends it, so they may include changes made since the window ended: cumulative counters
//! stay exact over time, only their sampling instant is late). The counters' start is the
//! start of the first window the exporter saw (their values count from registration, which
//! may be earlier: a backend sees one series from that point on).
//!
//! **Why explicit buckets, in seconds.** The histogram points use the same bounds as the
//! Prometheus exposition's `ringmeter_latency_seconds` (so a dashboard reads the same buckets
//! from either path), in seconds as the OpenTelemetry semantic conventions write durations
//! (unit `s`; a Collector's Prometheus exporter then names it `ringmeter_latency_seconds`).
//! An exponential histogram derived from the HdrHistogram would carry more detail, but its
//! buckets (powers of 2^(2^-scale)) do not line up with HdrHistogram's, so every count would be
//! split by interpolation, and Prometheus reads exponential histograms only as native
//! histograms, which a classic Prometheus setup does not ingest. An HdrHistogram bucket goes
//! to the first bound at or above its lowest value, as in the exposition.
//!
//! **Count and sum.** `count` is the histogram's count: with sampling, each sampled call counts
//! with the calls it stands for (as the exposition's `_count`), so it estimates `count +
//! unsampled`; without sampling it is exactly `count`. `sum` is the window's exact integer sum of the
//! recorded durations ([`OpWindow::sum_ns`], weighted as `count` is), in seconds: the only
//! rounding is the conversion to a double. (The log keeps a window's mean, not its sum, so
//! [`interval_request`] recovers the sum as `mean_ns × count`, exact below 2^52 ns.)
//! `min` and `max` are the exact extremes.
//!
//! **Exemplars.** The window's slowest calls ([`OpWindow::slowest`]) are the histogram point's
//! exemplars: value (seconds), time (end of the call) and the filtered attributes
//! `thread.id` (ringmeter's thread number) and `thread.name` when the thread has one, and the
//! `trace_id` and `span_id` of the span the call ran in when the `tracing` layer knew them
//! ([`Exemplar::trace`](crate::Exemplar::trace); empty otherwise).
//!
//! # Examples
//! ```
//! use ringmeter::export::otlp::{self, proto::metrics::v1::metric::Data};
//!
//! let (clock, mock) = ringmeter::Clock::mock();
//! let engine = ringmeter::Engine::builder().clock(clock).start_manual()?;
//! let windows = engine.subscribe(4);
//! engine.op("db.query")?.record_ns(1_500);
//! engine.flush()?; // into the open window
//! mock.advance(std::time::Duration::from_secs(3));
//! engine.flush()?;
//! let window = windows.try_recv().expect("a closed window");
//! let snap = engine.snapshot();
//! let resource = otlp::resource("checkout", &[]);
//! let req = otlp::request(&resource, &window, &snap.bucket_bounds_ns, &[], &[], 0);
//! let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
//! let latency = metrics.iter().find(|m| m.name == "ringmeter.latency").unwrap();
//! let Some(Data::Histogram(h)) = &latency.data else { panic!() };
//! assert_eq!((h.data_points[0].count, h.data_points[0].sum), (1, Some(1.5e-6)));
//! # Ok::<(), ringmeter::Error>(())
//! ```

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, AggregationTemporality, Exemplar, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::Interval;
use crate::metric::{CounterValue, GaugeValue, Labels};
use crate::report::{Exemplar as CallExemplar, OpStats, OpWindow, WindowReport};

mod config;
mod json;
mod process;

pub use config::{OtlpConfig, Resolved};
pub use json::to_json;

/// The generated OTLP message types (the `opentelemetry-proto` crate's `tonic` module: prost
/// messages, no gRPC transport).
pub use opentelemetry_proto::tonic as proto;

/// `Content-Type` of an OTLP/HTTP protobuf request.
pub const CONTENT_TYPE: &str = "application/x-protobuf";

/// The endpoint used when neither the configuration nor the environment names one.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4318/v1/metrics";

/// Names the metrics endpoint, used as it is (OpenTelemetry exporter configuration).
pub const ENV_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
/// Names the base URL of every signal; metrics go to it plus `v1/metrics`.
pub const ENV_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The request timeout for metrics, in milliseconds.
pub const ENV_METRICS_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT";
/// The request timeout of every signal, in milliseconds.
pub const ENV_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
/// The transport protocol for metrics; only `http/protobuf` is supported.
pub const ENV_METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
/// The transport protocol of every signal; only `http/protobuf` is supported.
pub const ENV_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// The `service.name` resource attribute.
pub const ENV_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// More resource attributes: `key=value` pairs separated by commas, percent-encoded.
pub const ENV_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";

/// The instrumentation scope's name.
pub const SCOPE_NAME: &str = "ringmeter";

/// The resource of `service_name` and `attributes` (for [`request`] without an
/// [`OtlpConfig`]).
pub fn resource(service_name: &str, attributes: &[(&str, &str)]) -> Resource {
    let mut attrs = vec![string_kv("service.name", service_name)];
    attrs.extend(attributes.iter().map(|(k, v)| string_kv(k, v)));
    Resource {
        attributes: attrs,
        ..Resource::default()
    }
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

fn int_kv(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The per-operation delta counters of a window: metric name, description, value.
type OpCounter = (&'static str, &'static str, fn(&OpStats) -> u64);
const OP_COUNTERS: [OpCounter; 6] = [
    (
        "ringmeter.calls",
        "Calls issued: recorded, unsampled and dropped.",
        OpStats::calls,
    ),
    (
        "ringmeter.errors",
        "Failed calls, including failures among unsampled and dropped calls.",
        |s| s.errors,
    ),
    (
        "ringmeter.slow_calls",
        "Recorded calls longer than the slow threshold.",
        |s| s.slow,
    ),
    (
        "ringmeter.unsampled_calls",
        "Calls counted but not timed, as the operation's sampling says.",
        |s| s.unsampled,
    ),
    (
        "ringmeter.dropped_calls",
        "Calls lost to a full ring.",
        |s| s.dropped,
    ),
    (
        "ringmeter.late_calls",
        "Calls counted after their own window had closed.",
        |s| s.late,
    ),
];

/// The request carrying one closed window: `report`'s operations, with histograms bucketed at
/// `bounds_ns` (the snapshot's [`bucket_bounds_ns`](crate::Snapshot::bucket_bounds_ns)), and
/// the `counters` and `gauges` published with it (cumulative counters starting at
/// `counters_start_unix_ns`). See the [module docs](self) for the mapping.
pub fn request(
    resource: &Resource,
    report: &WindowReport,
    bounds_ns: &[u64],
    counters: &[CounterValue],
    gauges: &[GaugeValue],
    counters_start_unix_ns: u64,
) -> ExportMetricsServiceRequest {
    let start = report.start_unix_ns;
    let end = start.saturating_add(report.length_ns);
    let mut metrics = Vec::with_capacity(1 + OP_COUNTERS.len() + counters.len() + gauges.len());
    let points: Vec<HistogramDataPoint> = report
        .ops
        .iter()
        .filter(|o| !o.histogram.is_empty())
        .map(|o| histogram_point(o, bounds_ns, start, end))
        .collect();
    if !points.is_empty() {
        metrics.push(latency(points));
    }
    if !report.ops.is_empty() {
        for (name, description, value) in OP_COUNTERS {
            let points = report
                .ops
                .iter()
                .map(|o| number_point(vec![string_kv("op", &o.name)], start, end, value(&o.stats)))
                .collect();
            metrics.push(sum(
                name,
                description,
                "{call}",
                points,
                AggregationTemporality::Delta,
            ));
        }
    }
    let mut i = 0;
    while i < counters.len() {
        let name = &counters[i].name;
        let same = counters[i..].iter().take_while(|c| c.name == *name).count();
        let group = &counters[i..i + same];
        let points = group
            .iter()
            .map(|c| {
                number_point(
                    labels(&c.labels),
                    counters_start_unix_ns.min(end),
                    end,
                    c.value,
                )
            })
            .collect();
        let description = group.iter().find_map(|c| c.help.as_deref()).unwrap_or("");
        metrics.push(sum(
            name,
            description,
            "",
            points,
            AggregationTemporality::Cumulative,
        ));
        i += same;
    }
    let mut i = 0;
    while i < gauges.len() {
        let name = &gauges[i].name;
        let same = gauges[i..].iter().take_while(|g| g.name == *name).count();
        let group = &gauges[i..i + same];
        let data_points = group
            .iter()
            .map(|g| NumberDataPoint {
                attributes: labels(&g.labels),
                time_unix_nano: end,
                value: Some(number_data_point::Value::AsDouble(g.value)),
                ..NumberDataPoint::default()
            })
            .collect();
        metrics.push(Metric {
            name: name.to_string(),
            description: group
                .iter()
                .find_map(|g| g.help.as_deref())
                .unwrap_or("")
                .to_owned(),
            data: Some(metric::Data::Gauge(Gauge { data_points })),
            ..Metric::default()
        });
        i += same;
    }
    if let Some(p) = &report.process {
        metrics.extend(process::metrics(p));
    }
    wrap(resource, metrics)
}

fn latency(data_points: Vec<HistogramDataPoint>) -> Metric {
    Metric {
        name: "ringmeter.latency".to_owned(),
        description:
            "Latency of recorded calls (each sampled call counted with the calls it stands for)."
                .to_owned(),
        unit: "s".to_owned(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points,
            aggregation_temporality: AggregationTemporality::Delta as i32,
        })),
        ..Metric::default()
    }
}

fn wrap(resource: &Resource, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.clone()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn labels(labels: &Labels) -> Vec<KeyValue> {
    labels.iter().map(|(k, v)| string_kv(k, v)).collect()
}

fn sum(
    name: &str,
    description: &str,
    unit: &str,
    data_points: Vec<NumberDataPoint>,
    temporality: AggregationTemporality,
) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        data: Some(metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: temporality as i32,
            is_monotonic: true,
        })),
        ..Metric::default()
    }
}

fn number_point(attributes: Vec<KeyValue>, start: u64, end: u64, value: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: end,
        // OTLP integers are signed; a count above i64::MAX saturates.
        value: Some(number_data_point::Value::AsInt(
            i64::try_from(value).unwrap_or(i64::MAX),
        )),
        ..NumberDataPoint::default()
    }
}

/// One operation's histogram point: bucket counts at `bounds_ns` (not cumulative, one more
/// than the bounds), exact count, sum, min and max, the slowest calls as exemplars.
fn histogram_point(o: &OpWindow, bounds_ns: &[u64], start: u64, end: u64) -> HistogramDataPoint {
    let mut bucket_counts = vec![0u64; bounds_ns.len() + 1];
    for b in o.histogram.iter_recorded() {
        add_to_bucket(&mut bucket_counts, bounds_ns, b.lowest(), b.count());
    }
    let exemplars = o.slowest.iter().map(exemplar).collect();
    point(
        &o.name,
        &o.stats,
        (o.histogram.len(), o.sum_ns),
        bucket_counts,
        bounds_ns,
        exemplars,
        (start, end),
    )
}

/// Adds `count` calls whose HdrHistogram bucket starts at `lowest` to the first bound at or
/// above it (the exposition's rule).
fn add_to_bucket(bucket_counts: &mut [u64], bounds_ns: &[u64], lowest: u64, count: u64) {
    let slot = bounds_ns.partition_point(|&bound| bound < lowest);
    bucket_counts[slot] = bucket_counts[slot].saturating_add(count);
}

fn exemplar(e: &CallExemplar) -> Exemplar {
    let mut attrs = vec![int_kv(
        "thread.id",
        i64::try_from(e.thread).unwrap_or(i64::MAX),
    )];
    if let Some(name) = &e.thread_name {
        attrs.push(string_kv("thread.name", name));
    }
    Exemplar {
        filtered_attributes: attrs,
        time_unix_nano: e.end_unix_ns,
        value: Some(exemplar::Value::AsDouble(seconds(e.duration_ns))),
        span_id: e.trace.map_or_else(Vec::new, |t| t.span_id.to_vec()),
        trace_id: e.trace.map_or_else(Vec::new, |t| t.trace_id.to_vec()),
    }
}

fn point(
    op: &str,
    s: &OpStats,
    (count, sum_ns): (u64, u128),
    bucket_counts: Vec<u64>,
    bounds_ns: &[u64],
    exemplars: Vec<Exemplar>,
    (start, end): (u64, u64),
) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: vec![string_kv("op", op)],
        start_time_unix_nano: start,
        time_unix_nano: end,
        count,
        sum: Some(sum_ns as f64 / 1e9),
        bucket_counts,
        explicit_bounds: bounds_ns.iter().map(|&b| seconds(b)).collect(),
        exemplars,
        min: (s.count > 0).then(|| seconds(s.min_ns)),
        max: (s.count > 0).then(|| seconds(s.max_ns)),
        ..HistogramDataPoint::default()
    }
}

/// The request carrying one interval read back from a window log (`ringmeter dump --format
/// otlp-json`): as [`request`] for a window of one operation, without exemplars (the log does
/// not keep them), counters or gauges. `interval.histogram` must be decoded.
pub fn interval_request(
    resource: &Resource,
    interval: &Interval,
    bounds_ns: &[u64],
) -> ExportMetricsServiceRequest {
    let (start, end) = (interval.start_unix_ns, interval.end_unix_ns());
    let h = &interval.histogram;
    let mut metrics = Vec::with_capacity(1 + OP_COUNTERS.len());
    if !h.is_empty() {
        let mut bucket_counts = vec![0u64; bounds_ns.len() + 1];
        for v in h.iter_recorded() {
            let lowest = h.lowest_equivalent(v.value_iterated_to());
            add_to_bucket(&mut bucket_counts, bounds_ns, lowest, v.count_at_value());
        }
        // The log keeps the mean, not the sum: multiplying back and rounding recovers the
        // integer sum while it stays below 2^52 ns.
        let s = &interval.stats;
        let sum_ns = if s.mean_ns.is_finite() {
            (s.mean_ns * h.len() as f64).round() as u128
        } else {
            0
        };
        let p = point(
            &interval.op,
            &interval.stats,
            (h.len(), sum_ns),
            bucket_counts,
            bounds_ns,
            Vec::new(),
            (start, end),
        );
        metrics.push(latency(vec![p]));
    }
    for (name, description, value) in OP_COUNTERS {
        let p = number_point(
            vec![string_kv("op", &interval.op)],
            start,
            end,
            value(&interval.stats),
        );
        metrics.push(sum(
            name,
            description,
            "{call}",
            vec![p],
            AggregationTemporality::Delta,
        ));
    }
    wrap(resource, metrics)
}

/// The protobuf encoding of `request`: an OTLP/HTTP request body.
pub fn encode(request: &ExportMetricsServiceRequest) -> Vec<u8> {
    prost::Message::encode_to_vec(request)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn window_of(durations: &[u64]) -> (crate::Engine, Arc<WindowReport>, Arc<crate::Snapshot>) {
        let (clock, mock) = crate::Clock::mock();
        let engine = crate::Engine::builder()
            .clock(clock)
            .prometheus_buckets([Duration::from_micros(1), Duration::from_micros(10)])
            .start_manual()
            .unwrap();
        let windows = engine.subscribe(4);
        let op = engine.op("db.query").unwrap();
        for &ns in durations {
            op.record_ns(ns);
        }
        op.record_error_ns(5);
        engine
            .counter("jobs.done", &[("queue", "a")])
            .unwrap()
            .increment(3);
        engine
            .counter("jobs.done", &[("queue", "b")])
            .unwrap()
            .increment(4);
        engine.gauge("queue.depth", &[]).unwrap().set(2.5);
        engine.flush().unwrap(); // the durations enter the open window
        mock.advance(Duration::from_secs(3));
        engine.flush().unwrap();
        let w = windows.try_recv().expect("a closed window");
        (engine.clone(), w, engine.snapshot())
    }

    fn metric<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
        req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    #[test]
    fn a_window_becomes_delta_points_with_exact_figures() {
        let (_engine, w, snap) = window_of(&[500, 1_000, 1_001, 7_000, 2_000_000]);
        let res = resource("svc", &[("k", "v")]);
        let req = request(
            &res,
            &w,
            &snap.bucket_bounds_ns,
            &snap.counters,
            &snap.gauges,
            42,
        );
        // The protobuf round trip keeps everything.
        let bytes = encode(&req);
        let back = <ExportMetricsServiceRequest as prost::Message>::decode(&bytes[..]).unwrap();
        assert_eq!(back, req);
        let rm = &req.resource_metrics[0];
        assert_eq!(rm.resource.as_ref().unwrap().attributes.len(), 2);
        let scope = rm.scope_metrics[0].scope.as_ref().unwrap();
        assert_eq!(
            (scope.name.as_str(), scope.version.as_str()),
            ("ringmeter", env!("CARGO_PKG_VERSION"))
        );
        let (start, end) = (w.start_unix_ns, w.start_unix_ns + w.length_ns);
        let Some(metric::Data::Histogram(h)) = &metric(&req, "ringmeter.latency").data else {
            panic!("not a histogram")
        };
        assert_eq!(
            h.aggregation_temporality,
            AggregationTemporality::Delta as i32
        );
        let p = &h.data_points[0];
        assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (start, end));
        assert_eq!(p.explicit_bounds, vec![1e-6, 1e-5]);
        // 5 (the error), 500 and 1_000 at or below 1 µs; 1_001 and 7_000 below 10 µs.
        assert_eq!(p.bucket_counts, vec![3, 2, 1]);
        assert_eq!(p.count, 6);
        let sum_ns: u64 = 5 + 500 + 1_000 + 1_001 + 7_000 + 2_000_000;
        assert_eq!(p.sum, Some(sum_ns as f64 / 1e9));
        assert_eq!((p.min, p.max), (Some(5e-9), Some(2e-3)));
        assert_eq!(p.attributes, vec![string_kv("op", "db.query")]);
        let slowest = &w.op("db.query").unwrap().slowest;
        assert!(!slowest.is_empty());
        assert_eq!(p.exemplars.len(), slowest.len());
        assert_eq!(p.exemplars[0].value, Some(exemplar::Value::AsDouble(2e-3)));
        assert_eq!(p.exemplars[0].time_unix_nano, slowest[0].end_unix_ns);
        assert!(p.exemplars[0].trace_id.is_empty());
        let int = |name: &str| {
            let Some(metric::Data::Sum(s)) = &metric(&req, name).data else {
                panic!("{name} is not a sum")
            };
            assert!(s.is_monotonic);
            let p = &s.data_points[0];
            (
                s.aggregation_temporality,
                p.start_time_unix_nano,
                p.time_unix_nano,
                p.value,
            )
        };
        let delta = AggregationTemporality::Delta as i32;
        let v = |n| Some(number_data_point::Value::AsInt(n));
        assert_eq!(int("ringmeter.calls"), (delta, start, end, v(6)));
        assert_eq!(int("ringmeter.errors"), (delta, start, end, v(1)));
        assert_eq!(int("ringmeter.dropped_calls"), (delta, start, end, v(0)));
        let Some(metric::Data::Sum(jobs)) = &metric(&req, "jobs_done").data else {
            panic!("jobs_done is not a sum")
        };
        assert_eq!(
            jobs.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let values: Vec<_> = jobs
            .data_points
            .iter()
            .map(|p| (p.attributes.clone(), p.value, p.start_time_unix_nano))
            .collect();
        assert_eq!(
            values,
            vec![
                (vec![string_kv("queue", "a")], v(3), 42),
                (vec![string_kv("queue", "b")], v(4), 42)
            ]
        );
        let Some(metric::Data::Gauge(g)) = &metric(&req, "queue_depth").data else {
            panic!("queue_depth is not a gauge")
        };
        assert_eq!(
            g.data_points[0].value,
            Some(number_data_point::Value::AsDouble(2.5))
        );
        assert_eq!(g.data_points[0].time_unix_nano, end);
    }

    #[test]
    fn the_sum_is_the_exact_integer_sum_past_2_pow_52_ns() {
        // Calls whose sum (with the 5 ns error call of `window_of`) is a double, but
        // the mean times the count misses it by 159 ns.
        let durations = [
            219_329_352_087_767_209,
            274_466_876_252_787_348,
            267_048_453_390_934_186,
            119_956_795_992_070_517,
        ];
        let sum_ns: u64 = durations.iter().sum();
        let (_engine, w, snap) = window_of(&durations);
        let o = w.op("db.query").unwrap();
        // The error call of `window_of` (5 ns) is in the window too.
        assert_eq!(o.sum_ns, u128::from(sum_ns) + 5);
        let from_mean = (o.stats.mean_ns * o.histogram.len() as f64).round();
        assert_ne!(from_mean, (sum_ns + 5) as f64, "the mean would have done");
        let req = request(
            &resource("svc", &[]),
            &w,
            &snap.bucket_bounds_ns,
            &[],
            &[],
            0,
        );
        let Some(metric::Data::Histogram(h)) = &metric(&req, "ringmeter.latency").data else {
            panic!("not a histogram")
        };
        assert_eq!(h.data_points[0].sum, Some((sum_ns + 5) as f64 / 1e9));
    }

    #[test]
    fn a_window_without_operations_has_no_metrics() {
        let empty = WindowReport {
            index: 0,
            start_unix_ns: 0,
            length_ns: 1,
            ops: Vec::new(),
            process: None,
        };
        let req = request(&resource("svc", &[]), &empty, &[], &[], &[], 0);
        assert!(req.resource_metrics[0].scope_metrics[0].metrics.is_empty());
    }
}
