//! The process's figures ([`ProcessStats`]) as OTLP metrics, under the OpenTelemetry semantic
//! conventions' process metric names where they have one:
//!
//! | metric | type | value |
//! |---|---|---|
//! | `process.cpu.time` (unit `s`) | Sum, monotonic, CUMULATIVE | user and system CPU time, attribute `cpu.mode` = `user` / `system` |
//! | `process.memory.usage` (unit `By`) | Sum, not monotonic, CUMULATIVE | resident memory |
//! | `process.memory.virtual` (unit `By`) | Sum, not monotonic, CUMULATIVE | virtual memory |
//! | `process.thread.count` (unit `{thread}`) | Sum, not monotonic, CUMULATIVE | threads |
//! | `process.unix.file_descriptor.count` (unit `{file_descriptor}`) | Sum, not monotonic, CUMULATIVE | open file descriptors |
//! | `process.uptime` (unit `s`) | Gauge | time since the process started |
//! | `ringmeter.process.memory.heap` (unit `By`) | Sum, not monotonic, CUMULATIVE | heap in use, as the program's sampler reports it |
//! | `ringmeter.process.file_descriptor.limit` (unit `{file_descriptor}`) | Gauge | the soft limit |
//! | `ringmeter.process.memory.rss_rises` (unit `{window}`) | Gauge | [`ProcessStats::rss_rises`] |
//! | `ringmeter.process.memory.rss_growing` | Gauge | 1 while [`ProcessStats::rss_growing`], else 0 |
//!
//! Semantic-convention up-down counters are Sums that are not monotonic. A figure the sample
//! does not have is left out. Points are stamped with the sample's time; the cumulative ones
//! start at the process's start when it is known.

use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint, Sum,
};

use super::string_kv;
use crate::process::ProcessStats;

/// The metrics of one sample.
pub(super) fn metrics(p: &ProcessStats) -> Vec<Metric> {
    let s = &p.sample;
    let time = p.unix_ns;
    let start = s.start_unix_ns.unwrap_or(0).min(time);
    let mut out = Vec::new();
    if let (Some(user), Some(system)) = (s.cpu_user_ns, s.cpu_system_ns) {
        let points = [("user", user), ("system", system)]
            .into_iter()
            .map(|(mode, ns)| NumberDataPoint {
                attributes: vec![string_kv("cpu.mode", mode)],
                start_time_unix_nano: start,
                time_unix_nano: time,
                value: Some(number_data_point::Value::AsDouble(ns as f64 / 1e9)),
                ..NumberDataPoint::default()
            })
            .collect();
        out.push(sum(
            "process.cpu.time",
            "Total CPU seconds broken down by different CPU modes.",
            "s",
            points,
            true,
        ));
    }
    let up_down = [
        (
            "process.memory.usage",
            "The amount of physical memory in use.",
            "By",
            s.resident_bytes,
        ),
        (
            "process.memory.virtual",
            "The amount of committed virtual memory.",
            "By",
            s.virtual_bytes,
        ),
        (
            "process.thread.count",
            "Process threads count.",
            "{thread}",
            s.threads,
        ),
        (
            "process.unix.file_descriptor.count",
            "Number of unix file descriptors in use by the process.",
            "{file_descriptor}",
            s.open_fds,
        ),
        (
            "ringmeter.process.memory.heap",
            "Heap in use, as the program's allocator reports it.",
            "By",
            s.heap_bytes,
        ),
    ];
    for (name, description, unit, value) in up_down {
        if let Some(v) = value {
            let point = int_point(v, start, time);
            out.push(sum(name, description, unit, vec![point], false));
        }
    }
    if let Some(started) = s.start_unix_ns {
        let up = time.saturating_sub(started) as f64 / 1e9;
        out.push(gauge(
            "process.uptime",
            "The time the process has been running.",
            "s",
            number_data_point::Value::AsDouble(up),
            time,
        ));
    }
    let gauges = [
        (
            "ringmeter.process.file_descriptor.limit",
            "The soft limit on open file descriptors.",
            "{file_descriptor}",
            s.max_fds,
        ),
        (
            "ringmeter.process.memory.rss_rises",
            "Rises of resident memory from window to window since the last fall.",
            "{window}",
            Some(u64::from(p.rss_rises)),
        ),
        (
            "ringmeter.process.memory.rss_growing",
            "1 while resident memory has risen over the configured number of windows.",
            "",
            Some(u64::from(p.rss_growing)),
        ),
    ];
    for (name, description, unit, value) in gauges {
        if let Some(v) = value {
            out.push(gauge(name, description, unit, int(v), time));
        }
    }
    out
}

/// OTLP integers are signed; a figure above `i64::MAX` saturates.
fn int(v: u64) -> number_data_point::Value {
    number_data_point::Value::AsInt(i64::try_from(v).unwrap_or(i64::MAX))
}

fn int_point(v: u64, start: u64, time: u64) -> NumberDataPoint {
    NumberDataPoint {
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: Some(int(v)),
        ..NumberDataPoint::default()
    }
}

fn sum(
    name: &str,
    description: &str,
    unit: &str,
    data_points: Vec<NumberDataPoint>,
    is_monotonic: bool,
) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        data: Some(metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic,
        })),
        ..Metric::default()
    }
}

fn gauge(
    name: &str,
    description: &str,
    unit: &str,
    value: number_data_point::Value,
    time: u64,
) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: time,
                value: Some(value),
                ..NumberDataPoint::default()
            }],
        })),
        ..Metric::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::ProcessSample;

    fn find<'a>(m: &'a [Metric], name: &str) -> &'a Metric {
        m.iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    }

    #[test]
    fn figures_become_semantic_convention_metrics() {
        let sample = ProcessSample::default()
            .with_resident_bytes(64 << 20)
            .with_cpu_ns(2_500_000_000, 500_000_000)
            .with_threads(7)
            .with_start_unix_ns(1_000_000_000);
        let m = metrics(&ProcessStats::new(11_000_000_000, sample, 3, true));
        let Some(metric::Data::Sum(cpu)) = &find(&m, "process.cpu.time").data else {
            panic!()
        };
        assert!(cpu.is_monotonic);
        assert_eq!(
            cpu.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let secs: Vec<_> = cpu
            .data_points
            .iter()
            .map(|p| (p.start_time_unix_nano, p.value))
            .collect();
        assert_eq!(
            secs,
            [
                (1_000_000_000, Some(number_data_point::Value::AsDouble(2.5))),
                (1_000_000_000, Some(number_data_point::Value::AsDouble(0.5)))
            ]
        );
        let Some(metric::Data::Sum(rss)) = &find(&m, "process.memory.usage").data else {
            panic!()
        };
        assert!(!rss.is_monotonic);
        assert_eq!(rss.data_points[0].value, Some(int(64 << 20)));
        assert_eq!(rss.data_points[0].time_unix_nano, 11_000_000_000);
        let Some(metric::Data::Gauge(up)) = &find(&m, "process.uptime").data else {
            panic!()
        };
        assert_eq!(
            up.data_points[0].value,
            Some(number_data_point::Value::AsDouble(10.0))
        );
        let Some(metric::Data::Gauge(g)) = &find(&m, "ringmeter.process.memory.rss_growing").data
        else {
            panic!()
        };
        assert_eq!(g.data_points[0].value, Some(int(1)));
        // Absent figures are left out.
        for absent in [
            "process.memory.virtual",
            "process.unix.file_descriptor.count",
            "ringmeter.process.memory.heap",
        ] {
            assert!(m.iter().all(|x| x.name != absent), "{absent}");
        }
    }
}
