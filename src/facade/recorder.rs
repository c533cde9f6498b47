//! The [`metrics`] crate's recorder (feature `metrics`); the module documentation of
//! [`facade`](super) describes it.

use crate::loom::{AtomicBool, AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use metrics::{Key, KeyName, Metadata, SharedString, Unit};

use crate::engine::Engine;
use crate::error::Error;
use crate::export::prom::sanitize_label_name;
use crate::limits::MAX_NAME_LEN;
use crate::metric::Counter;
use crate::op::Op;

/// Installs a [`MetricsRecorder`] of `engine` as the process-wide `metrics` recorder.
///
/// # Errors
/// `metrics::SetRecorderError` when a global recorder was already installed.
#[allow(clippy::result_large_err)] // the error hands the recorder back, as `metrics` does
pub fn install(engine: &Engine) -> Result<(), metrics::SetRecorderError<MetricsRecorder>> {
    metrics::set_global_recorder(MetricsRecorder::new(engine))
}

/// The `metrics::Recorder` that feeds an engine (see the [module docs](crate::facade)).
pub struct MetricsRecorder {
    engine: Engine,
    histograms: RwLock<HashMap<Key, metrics::Histogram>>,
    /// Nanoseconds per unit of a histogram's values, by metric name, from its description.
    units: Mutex<HashMap<String, f64>>,
    rejected: AtomicU64,
    reported: AtomicBool,
}

impl core::fmt::Debug for MetricsRecorder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MetricsRecorder")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// A facade histogram: an operation and the scale of its values.
struct HistogramHandle {
    op: Op,
    ns_per_unit: f64,
    rejected: Counter,
}

impl metrics::HistogramFn for HistogramHandle {
    fn record(&self, value: f64) {
        let ns = value * self.ns_per_unit;
        if ns.is_finite() && ns >= 0.0 {
            // Saturates at u64::MAX ns (584 years).
            self.op.record_ns(ns.round() as u64);
        } else {
            self.rejected.increment(1);
        }
    }
}

impl MetricsRecorder {
    /// A recorder feeding `engine` (it holds a handle, so the engine runs as long as the
    /// recorder exists).
    pub fn new(engine: &Engine) -> Self {
        Self {
            engine: engine.clone(),
            histograms: RwLock::new(HashMap::new()),
            units: Mutex::new(HashMap::new()),
            rejected: AtomicU64::new(0),
            reported: AtomicBool::new(false),
        }
    }

    /// Metrics that could not be registered and got a handle that does nothing.
    pub fn rejected_registrations(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    fn reject(&self, what: &str, name: &str, e: &Error) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        if !self.reported.swap(true, Ordering::Relaxed) {
            eprintln!("ringmeter: metrics {what} {name:?} not recorded: {e} (further failures are only counted)");
        }
    }

    fn labels(key: &Key) -> Vec<(String, String)> {
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| {
                let mut k = sanitize_label_name(l.key());
                if k.starts_with("__") || matches!(k.as_str(), "op" | "le" | "quantile") {
                    k.push('_');
                }
                (k, l.value().to_owned())
            })
            .collect();
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        labels
    }
}

/// `text` in the operation naming rules' alphabet, `.` kept where `dots` says.
fn name_part(text: &str, dots: bool, out: &mut String) {
    let mut last_dot = true;
    for c in text.chars() {
        let c = match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' => c,
            '.' if dots && !last_dot => '.',
            _ => '_',
        };
        last_dot = c == '.';
        out.push(c);
    }
}

/// The operation name of a facade histogram (see the module docs).
fn op_name(key: &Key) -> String {
    let mut name = String::new();
    if !key.name().starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.push('m');
    }
    name_part(key.name(), true, &mut name);
    let mut labels: Vec<_> = key.labels().collect();
    labels.sort_by(|a, b| a.key().cmp(b.key()));
    for l in labels {
        if !name.ends_with('.') {
            name.push('.');
        }
        name_part(l.key(), false, &mut name);
        name.push('_');
        name_part(l.value(), false, &mut name);
    }
    while name.ends_with('.') {
        name.pop();
    }
    if name.len() > MAX_NAME_LEN {
        // FNV-1a of the whole key text: distinct long names stay distinct.
        let mut h: u32 = 0x811c_9dc5;
        for b in name.bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        name.truncate(MAX_NAME_LEN - 9);
        while name.ends_with('.') {
            name.pop();
        }
        name.push_str(&format!("_{h:08x}"));
    }
    name
}

/// The counter or gauge name of a facade metric.
fn series_name(name: &str) -> String {
    let mut out = String::new();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.push('m');
    }
    name_part(name, false, &mut out);
    out.truncate(MAX_NAME_LEN);
    out
}

fn ns_per_unit(unit: Option<Unit>) -> f64 {
    match unit {
        Some(Unit::Milliseconds) => 1e6,
        Some(Unit::Microseconds) => 1e3,
        Some(Unit::Nanoseconds) => 1.0,
        _ => 1e9,
    }
}

impl metrics::Recorder for MetricsRecorder {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        let _ = self
            .engine
            .describe(&series_name(key.as_str()), &description);
    }

    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        let _ = self
            .engine
            .describe(&series_name(key.as_str()), &description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _description: SharedString) {
        self.units
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.as_str().to_owned(), ns_per_unit(unit));
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> metrics::Counter {
        let labels = Self::labels(key);
        let refs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (&**k, &**v)).collect();
        let name = series_name(key.name());
        match self.engine.register_counter(&name, &refs, key.name()) {
            Ok(c) => metrics::Counter::from_arc(c.cell()),
            Err(e) => {
                self.reject("counter", key.name(), &e);
                metrics::Counter::noop()
            }
        }
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> metrics::Gauge {
        let labels = Self::labels(key);
        let refs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (&**k, &**v)).collect();
        let name = series_name(key.name());
        match self.engine.register_gauge(&name, &refs, key.name()) {
            Ok(g) => metrics::Gauge::from_arc(g.cell()),
            Err(e) => {
                self.reject("gauge", key.name(), &e);
                metrics::Gauge::noop()
            }
        }
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> metrics::Histogram {
        if let Some(h) = self
            .histograms
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return h.clone();
        }
        let mut map = self
            .histograms
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = map.get(key) {
            return h.clone();
        }
        let name = op_name(key);
        let handle = self.engine.register_op(&name, key.name()).and_then(|op| {
            let rejected = self.engine.counter(
                "ringmeter.metrics_rejected_values",
                &[("metric", key.name())],
            )?;
            let ns_per_unit = self
                .units
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(key.name())
                .copied()
                .unwrap_or(1e9);
            Ok(HistogramHandle {
                op,
                ns_per_unit,
                rejected,
            })
        });
        let h = match handle {
            Ok(h) => metrics::Histogram::from_arc(Arc::new(h)),
            Err(e) => {
                self.reject("histogram", key.name(), &e);
                metrics::Histogram::noop()
            }
        };
        map.insert(key.clone(), h.clone());
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_are_valid_and_carry_the_labels() {
        let k = Key::from_parts(
            "http.request",
            vec![
                metrics::Label::new("method", "GET"),
                metrics::Label::new("a-b", "x/y"),
            ],
        );
        assert_eq!(op_name(&k), "http.request.a_b_x_y.method_GET");
        assert_eq!(op_name(&Key::from_name("9lives..x.")), "m9lives._x");
        let long = "a".repeat(300);
        let n = op_name(&Key::from_name(long.clone()));
        assert!(n.len() <= MAX_NAME_LEN);
        assert_ne!(n, op_name(&Key::from_name(long + "b")));
        for k in ["http.request", "9lives..x.", "é", "-", "a.b-c"] {
            assert_eq!(
                crate::validate_name(&op_name(&Key::from_name(k))),
                Ok(()),
                "{k}"
            );
            assert_eq!(crate::validate_name(&series_name(k)), Ok(()), "{k}");
        }
    }
}
