//! The OTLP/JSON encoding of the requests this module builds (`ringmeter dump --format
//! otlp-json`).
//!
//! It follows the protocol's JSON mapping (the proto3 JSON mapping with OTLP's changes):
//! field names in lowerCamelCase, 64-bit integers as decimal strings, enums as their integer
//! values, trace and span ids as hex (not base64), fields at their default value left out.
//! Only the message kinds [`request`](super::request) and
//! [`interval_request`](super::interval_request) produce are written: gauges, sums and
//! explicit-bucket histograms with string, integer and double attributes.

use std::fmt::Write as _;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, Exemplar, HistogramDataPoint, NumberDataPoint,
};

/// `request` as one line of OTLP/JSON (no line break).
///
/// # Examples
/// ```
/// use ringmeter::export::otlp::{resource, to_json, proto::collector::metrics::v1::ExportMetricsServiceRequest};
/// let req = ExportMetricsServiceRequest { resource_metrics: Vec::new() };
/// assert_eq!(to_json(&req), r#"{"resourceMetrics":[]}"#);
/// # let _ = resource("svc", &[]);
/// ```
pub fn to_json(request: &ExportMetricsServiceRequest) -> String {
    let mut o = String::new();
    o.push_str(r#"{"resourceMetrics":["#);
    for (i, rm) in request.resource_metrics.iter().enumerate() {
        comma(&mut o, i);
        o.push('{');
        let mut first = true;
        if let Some(r) = &rm.resource {
            field(&mut o, &mut first, "resource");
            o.push('{');
            let mut f = true;
            attributes(&mut o, &mut f, "attributes", &r.attributes);
            o.push('}');
        }
        field(&mut o, &mut first, "scopeMetrics");
        o.push('[');
        for (j, sm) in rm.scope_metrics.iter().enumerate() {
            comma(&mut o, j);
            o.push('{');
            let mut f = true;
            if let Some(scope) = &sm.scope {
                field(&mut o, &mut f, "scope");
                o.push('{');
                let mut g = true;
                string_field(&mut o, &mut g, "name", &scope.name);
                string_field(&mut o, &mut g, "version", &scope.version);
                o.push('}');
            }
            field(&mut o, &mut f, "metrics");
            o.push('[');
            for (k, m) in sm.metrics.iter().enumerate() {
                comma(&mut o, k);
                o.push('{');
                let mut g = true;
                string_field(&mut o, &mut g, "name", &m.name);
                string_field(&mut o, &mut g, "description", &m.description);
                string_field(&mut o, &mut g, "unit", &m.unit);
                match &m.data {
                    Some(metric::Data::Gauge(gauge)) => {
                        field(&mut o, &mut g, "gauge");
                        o.push('{');
                        let mut h = true;
                        number_points(&mut o, &mut h, &gauge.data_points);
                        o.push('}');
                    }
                    Some(metric::Data::Sum(sum)) => {
                        field(&mut o, &mut g, "sum");
                        o.push('{');
                        let mut h = true;
                        number_points(&mut o, &mut h, &sum.data_points);
                        int_field(
                            &mut o,
                            &mut h,
                            "aggregationTemporality",
                            sum.aggregation_temporality.into(),
                        );
                        if sum.is_monotonic {
                            field(&mut o, &mut h, "isMonotonic");
                            o.push_str("true");
                        }
                        o.push('}');
                    }
                    Some(metric::Data::Histogram(hist)) => {
                        field(&mut o, &mut g, "histogram");
                        o.push('{');
                        let mut h = true;
                        field(&mut o, &mut h, "dataPoints");
                        o.push('[');
                        for (n, p) in hist.data_points.iter().enumerate() {
                            comma(&mut o, n);
                            histogram_point(&mut o, p);
                        }
                        o.push(']');
                        int_field(
                            &mut o,
                            &mut h,
                            "aggregationTemporality",
                            hist.aggregation_temporality.into(),
                        );
                        o.push('}');
                    }
                    // Not produced by this module.
                    _ => {}
                }
                o.push('}');
            }
            o.push_str("]}");
        }
        o.push_str("]}");
    }
    o.push_str("]}");
    o
}

fn comma(o: &mut String, i: usize) {
    if i > 0 {
        o.push(',');
    }
}

/// Writes `"name":`, preceded by a comma unless it is the object's first member.
fn field(o: &mut String, first: &mut bool, name: &str) {
    if !*first {
        o.push(',');
    }
    *first = false;
    o.push('"');
    o.push_str(name);
    o.push_str("\":");
}

fn string(o: &mut String, s: &str) {
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", u32::from(c));
            }
            c => o.push(c),
        }
    }
    o.push('"');
}

fn string_field(o: &mut String, first: &mut bool, name: &str, value: &str) {
    if !value.is_empty() {
        field(o, first, name);
        string(o, value);
    }
}

/// A 64-bit integer field: a decimal string, left out at 0.
fn u64_field(o: &mut String, first: &mut bool, name: &str, value: u64) {
    if value != 0 {
        field(o, first, name);
        let _ = write!(o, "\"{value}\"");
    }
}

/// A 32-bit integer (or enum) field: a JSON number, left out at 0.
fn int_field(o: &mut String, first: &mut bool, name: &str, value: i64) {
    if value != 0 {
        field(o, first, name);
        let _ = write!(o, "{value}");
    }
}

/// A double: a JSON number, or the strings `NaN`, `Infinity`, `-Infinity`.
fn double(o: &mut String, v: f64) {
    if v.is_nan() {
        o.push_str("\"NaN\"");
    } else if v.is_infinite() {
        o.push_str(if v > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else {
        // Rust writes the shortest text that reads back as the same double, never with an
        // exponent: valid JSON.
        let _ = write!(o, "{v}");
    }
}

fn attributes(o: &mut String, first: &mut bool, name: &str, attrs: &[KeyValue]) {
    if attrs.is_empty() {
        return;
    }
    field(o, first, name);
    o.push('[');
    for (i, kv) in attrs.iter().enumerate() {
        comma(o, i);
        o.push_str("{\"key\":");
        string(o, &kv.key);
        o.push_str(",\"value\":{");
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => {
                o.push_str("\"stringValue\":");
                string(o, s);
            }
            Some(any_value::Value::IntValue(v)) => {
                let _ = write!(o, "\"intValue\":\"{v}\"");
            }
            Some(any_value::Value::DoubleValue(v)) => {
                o.push_str("\"doubleValue\":");
                double(o, *v);
            }
            Some(any_value::Value::BoolValue(v)) => {
                let _ = write!(o, "\"boolValue\":{v}");
            }
            // Not produced by this module.
            _ => {}
        }
        o.push_str("}}");
    }
    o.push(']');
}

fn number_points(o: &mut String, first: &mut bool, points: &[NumberDataPoint]) {
    field(o, first, "dataPoints");
    o.push('[');
    for (i, p) in points.iter().enumerate() {
        comma(o, i);
        o.push('{');
        let mut f = true;
        attributes(o, &mut f, "attributes", &p.attributes);
        u64_field(o, &mut f, "startTimeUnixNano", p.start_time_unix_nano);
        u64_field(o, &mut f, "timeUnixNano", p.time_unix_nano);
        match p.value {
            Some(number_data_point::Value::AsInt(v)) => {
                field(o, &mut f, "asInt");
                let _ = write!(o, "\"{v}\"");
            }
            Some(number_data_point::Value::AsDouble(v)) => {
                field(o, &mut f, "asDouble");
                double(o, v);
            }
            None => {}
        }
        o.push('}');
    }
    o.push(']');
}

fn histogram_point(o: &mut String, p: &HistogramDataPoint) {
    o.push('{');
    let mut f = true;
    attributes(o, &mut f, "attributes", &p.attributes);
    u64_field(o, &mut f, "startTimeUnixNano", p.start_time_unix_nano);
    u64_field(o, &mut f, "timeUnixNano", p.time_unix_nano);
    u64_field(o, &mut f, "count", p.count);
    if let Some(sum) = p.sum {
        field(o, &mut f, "sum");
        double(o, sum);
    }
    field(o, &mut f, "bucketCounts");
    o.push('[');
    for (i, c) in p.bucket_counts.iter().enumerate() {
        comma(o, i);
        let _ = write!(o, "\"{c}\"");
    }
    o.push(']');
    field(o, &mut f, "explicitBounds");
    o.push('[');
    for (i, b) in p.explicit_bounds.iter().enumerate() {
        comma(o, i);
        double(o, *b);
    }
    o.push(']');
    if !p.exemplars.is_empty() {
        field(o, &mut f, "exemplars");
        o.push('[');
        for (i, e) in p.exemplars.iter().enumerate() {
            comma(o, i);
            exemplar_json(o, e);
        }
        o.push(']');
    }
    for (name, v) in [("min", p.min), ("max", p.max)] {
        if let Some(v) = v {
            field(o, &mut f, name);
            double(o, v);
        }
    }
    o.push('}');
}

fn exemplar_json(o: &mut String, e: &Exemplar) {
    o.push('{');
    let mut f = true;
    attributes(o, &mut f, "filteredAttributes", &e.filtered_attributes);
    u64_field(o, &mut f, "timeUnixNano", e.time_unix_nano);
    match e.value {
        Some(exemplar::Value::AsDouble(v)) => {
            field(o, &mut f, "asDouble");
            double(o, v);
        }
        Some(exemplar::Value::AsInt(v)) => {
            field(o, &mut f, "asInt");
            let _ = write!(o, "\"{v}\"");
        }
        None => {}
    }
    for (name, id) in [("spanId", &e.span_id), ("traceId", &e.trace_id)] {
        if !id.is_empty() {
            field(o, &mut f, name);
            o.push('"');
            for b in id {
                let _ = write!(o, "{b:02x}");
            }
            o.push('"');
        }
    }
    o.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_numbers_follow_the_mapping() {
        let mut o = String::new();
        string(&mut o, "a\"b\\c\nd\u{1}é");
        assert_eq!(o, r#""a\"b\\c\nd\u0001é""#);
        let mut o = String::new();
        for v in [1e-9, 0.5, f64::NAN, f64::NEG_INFINITY] {
            double(&mut o, v);
            o.push(' ');
        }
        assert_eq!(o, r#"0.000000001 0.5 "NaN" "-Infinity" "#);
        let e = Exemplar {
            time_unix_nano: 7,
            span_id: vec![0, 0xab],
            trace_id: vec![1, 2],
            value: Some(exemplar::Value::AsInt(-3)),
            ..Exemplar::default()
        };
        let mut o = String::new();
        exemplar_json(&mut o, &e);
        assert_eq!(
            o,
            r#"{"timeUnixNano":"7","asInt":"-3","spanId":"00ab","traceId":"0102"}"#
        );
    }
}
