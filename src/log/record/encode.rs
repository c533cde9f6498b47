//! Record payloads from records, and window payloads straight from an engine's closed window.
//!
//! The writer encodes every window of a closed engine window through [`window_fields`] and
//! [`encode_window`], with one histogram [`Encoder`] kept across windows.

use std::borrow::Cow;
use std::sync::Arc;

use super::{EncodeError, EngineEvent, Exemplar, Record, SamplingMode, WindowFixed, WindowRecord};
use crate::alert::{Alert, AlertState, Condition, Signal};
use crate::hist::{Encoder, HistEncodeError, HistRef};
use crate::log::format::{U32Le, U64Le};
use crate::metric::{CounterValue, GaugeValue};
use crate::report::{OpStats, OpWindow, WindowReport};

impl Record {
    /// Appends this record's payload to `buf` and returns its kind byte.
    ///
    /// # Errors
    /// [`EncodeError`] when a name or list is too long for its length field or the
    /// histogram cannot be serialized.
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<u8, EncodeError> {
        self.encode_with(buf, &mut Encoder::new())
    }

    /// [`Record::encode`] with a reused histogram encoder.
    pub(crate) fn encode_with(
        &self,
        buf: &mut Vec<u8>,
        hist: &mut Encoder,
    ) -> Result<u8, EncodeError> {
        match self {
            Self::Dictionary(entries) => {
                encode_dictionary(entries.iter().map(|e| (e.id, &*e.name)), buf)?
            }
            Self::Window(w) => encode_window(&w.fields(), hist, buf)?,
            Self::Event(e) => encode_event(e, buf)?,
            Self::Series(r) => encode_series(r.unix_ns, &r.counters, &r.gauges, buf)?,
            Self::Alert(a) => encode_alert(a, buf)?,
            Self::Unknown { payload, .. } => buf.extend_from_slice(payload),
        }
        Ok(self.kind())
    }
}

impl WindowRecord {
    /// A borrowed view for encoding.
    pub(crate) fn fields(&self) -> WindowFields<'_> {
        WindowFields {
            op_id: self.op_id,
            index: self.index,
            start_unix_ns: self.start_unix_ns,
            length_ns: self.length_ns,
            stats: &self.stats,
            unsampled: self.unsampled,
            sampling: self.sampling,
            slow_threshold_ns: self.slow_threshold_ns,
            slowest: Cow::Borrowed(&self.slowest),
            error_kinds: &self.error_kinds,
            histogram: HistRef::Hdr(&self.histogram),
            stored_histogram: self.stored_histogram.as_deref(),
        }
    }
}

/// A borrowed window, the single input of the window encoder.
pub(crate) struct WindowFields<'a> {
    pub(crate) op_id: u32,
    pub(crate) index: u64,
    pub(crate) start_unix_ns: u64,
    pub(crate) length_ns: u64,
    pub(crate) stats: &'a OpStats,
    pub(crate) unsampled: u64,
    pub(crate) sampling: SamplingMode,
    pub(crate) slow_threshold_ns: u64,
    pub(crate) slowest: Cow<'a, [Exemplar]>,
    pub(crate) error_kinds: &'a [(Arc<str>, u64)],
    pub(crate) histogram: HistRef<'a>,
    /// Already-serialized histogram bytes to write instead of `histogram`.
    pub(crate) stored_histogram: Option<&'a [u8]>,
}

/// The one mapping from an engine's closed window to a window record.
pub(crate) fn window_fields<'a>(report: &'a WindowReport, op: &'a OpWindow) -> WindowFields<'a> {
    WindowFields {
        op_id: op.id,
        index: report.index,
        start_unix_ns: report.start_unix_ns,
        length_ns: report.length_ns,
        stats: &op.stats,
        unsampled: op.stats.unsampled,
        sampling: op.sampling,
        slow_threshold_ns: op.slow_threshold_ns,
        slowest: Cow::Borrowed(&op.slowest),
        error_kinds: &op.error_kinds,
        histogram: HistRef::Compact(&op.histogram),
        stored_histogram: None,
    }
}

fn too_long(field: &'static str, len: usize) -> EncodeError {
    EncodeError::TooLong { field, len }
}

fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_le_bytes());
}
fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Appends a dictionary payload.
pub(crate) fn encode_dictionary<'a>(
    entries: impl ExactSizeIterator<Item = (u32, &'a str)>,
    buf: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let n = u32::try_from(entries.len()).map_err(|_| too_long("dictionary", entries.len()))?;
    put_u32(buf, n);
    for (id, name) in entries {
        let len = u16::try_from(name.len()).map_err(|_| too_long("operation name", name.len()))?;
        put_u32(buf, id);
        put_u16(buf, len);
        buf.extend_from_slice(name.as_bytes());
    }
    Ok(())
}

/// Appends an event payload.
pub(crate) fn encode_event(e: &EngineEvent, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    let len =
        u32::try_from(e.detail.len()).map_err(|_| too_long("event detail", e.detail.len()))?;
    buf.push(e.kind.to_u8());
    buf.extend_from_slice(&[0; 3]);
    put_u64(buf, e.unix_ns);
    put_u32(buf, len);
    buf.extend_from_slice(e.detail.as_bytes());
    Ok(())
}

fn put_str16(buf: &mut Vec<u8>, s: &str, field: &'static str) -> Result<(), EncodeError> {
    let len = u16::try_from(s.len()).map_err(|_| too_long(field, s.len()))?;
    put_u16(buf, len);
    buf.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_series(
    buf: &mut Vec<u8>,
    name: &str,
    labels: &[(Arc<str>, Arc<str>)],
    value: u64,
) -> Result<(), EncodeError> {
    put_str16(buf, name, "series name")?;
    let n = u16::try_from(labels.len()).map_err(|_| too_long("labels", labels.len()))?;
    put_u16(buf, n);
    for (k, v) in labels {
        put_str16(buf, k, "label name")?;
        put_str16(buf, v, "label value")?;
    }
    put_u64(buf, value);
    Ok(())
}

/// Appends a series payload: time, counters, gauges (gauge values as `f64` bits).
pub(crate) fn encode_series(
    unix_ns: u64,
    counters: &[CounterValue],
    gauges: &[GaugeValue],
    buf: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    put_u64(buf, unix_ns);
    let n = u32::try_from(counters.len()).map_err(|_| too_long("counters", counters.len()))?;
    put_u32(buf, n);
    for c in counters {
        put_series(buf, &c.name, &c.labels, c.value)?;
    }
    let n = u32::try_from(gauges.len()).map_err(|_| too_long("gauges", gauges.len()))?;
    put_u32(buf, n);
    for g in gauges {
        put_series(buf, &g.name, &g.labels, g.value.to_bits())?;
    }
    Ok(())
}

/// Appends an alert payload.
pub(crate) fn encode_alert(a: &Alert, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    buf.push(match a.state {
        AlertState::Firing => 1,
        AlertState::Resolved => 2,
    });
    let (kind, x, y) = match a.condition {
        Condition::ErrorRate { above } => (1, above.to_bits(), 0),
        Condition::Percentile { quantile, above_ns } => (2, quantile.to_bits(), above_ns),
        Condition::SlowCalls { above } => (3, above, 0),
        Condition::Anomaly { signal, k } => (4, k.to_bits(), signal_bits(signal)),
        Condition::BudgetBurn {
            quantile, above_ns, ..
        } => (5, quantile.to_bits(), above_ns),
    };
    buf.push(kind);
    buf.push(u8::from(a.value.is_some()));
    buf.push(0);
    put_u32(buf, a.windows_breached);
    put_u64(buf, x);
    put_u64(buf, y);
    put_u64(buf, a.value.map_or(0, f64::to_bits));
    put_u64(buf, a.calls);
    put_u64(buf, a.window_start_unix_ns);
    put_u64(buf, a.window_end_unix_ns);
    put_u64(buf, a.since_unix_ns);
    put_str16(buf, &a.rule, "alert rule name")?;
    put_str16(buf, &a.operation, "operation name")?;
    if let Condition::BudgetBurn {
        period_ns,
        burn_above,
        ..
    } = a.condition
    {
        put_u64(buf, period_ns);
        put_u64(buf, burn_above.to_bits());
    }
    Ok(())
}

/// An anomaly's signal in a `u64`: the quantile's bits for a latency, 0 for the error rate
/// (no quantile is 0).
fn signal_bits(signal: Signal) -> u64 {
    match signal {
        Signal::Latency { quantile } => quantile.to_bits(),
        _ => 0,
    }
}

/// Appends a window payload, serializing the histogram with `hist` (reused across calls).
pub(crate) fn encode_window(
    w: &WindowFields<'_>,
    hist: &mut Encoder,
    buf: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let s = w.stats;
    let (mode, param) = w.sampling.to_wire();
    let fixed = WindowFixed {
        op_id: U32Le::new(w.op_id),
        sampling_mode: mode,
        reserved: [0; 3],
        sampling_param: U64Le::new(param),
        index: U64Le::new(w.index),
        start_unix_ns: U64Le::new(w.start_unix_ns),
        length_ns: U64Le::new(w.length_ns),
        count: U64Le::new(s.count),
        errors: U64Le::new(s.errors),
        slow: U64Le::new(s.slow),
        dropped: U64Le::new(s.dropped),
        late: U64Le::new(s.late),
        unsampled: U64Le::new(w.unsampled),
        min_ns: U64Le::new(s.min_ns),
        max_ns: U64Le::new(s.max_ns),
        mean_ns: U64Le::new(s.mean_ns.to_bits()),
        stddev_ns: U64Le::new(s.stddev_ns.to_bits()),
        p50_ns: U64Le::new(s.p50_ns),
        p90_ns: U64Le::new(s.p90_ns),
        p95_ns: U64Le::new(s.p95_ns),
        p99_ns: U64Le::new(s.p99_ns),
        p999_ns: U64Le::new(s.p999_ns),
        slow_threshold_ns: U64Le::new(w.slow_threshold_ns),
    };
    buf.extend_from_slice(bytemuck::bytes_of(&fixed));
    let n = u32::try_from(w.slowest.len()).map_err(|_| too_long("exemplars", w.slowest.len()))?;
    put_u32(buf, n);
    for e in w.slowest.iter() {
        put_u64(buf, e.duration_ns);
        put_u64(buf, e.end_unix_ns);
        put_u64(buf, e.thread);
    }
    let n = u32::try_from(w.error_kinds.len())
        .map_err(|_| too_long("error kinds", w.error_kinds.len()))?;
    put_u32(buf, n);
    for (kind, count) in w.error_kinds {
        let len = u16::try_from(kind.len()).map_err(|_| too_long("error kind", kind.len()))?;
        put_u64(buf, *count);
        put_u16(buf, len);
        buf.extend_from_slice(kind.as_bytes());
    }
    // Length placeholder, then the histogram straight into `buf`.
    let at = buf.len();
    put_u32(buf, 0);
    let written = match w.stored_histogram {
        Some(bytes) => {
            buf.extend_from_slice(bytes);
            bytes.len()
        }
        None => hist.encode_any(w.histogram, buf).map_err(|e| match e {
            HistEncodeError::TooLarge(len) => too_long("histogram", len),
            e => EncodeError::Histogram(e.to_string()),
        })?,
    };
    let len = u32::try_from(written).map_err(|_| too_long("histogram", written))?;
    buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{DictEntry, EngineEventKind};

    #[test]
    fn lengths_beyond_their_fields_are_refused() {
        let long: Arc<str> = Arc::from("x".repeat(usize::from(u16::MAX) + 1));
        let dict = Record::Dictionary(vec![DictEntry { id: 1, name: long }]);
        let mut buf = Vec::new();
        assert!(matches!(
            dict.encode(&mut buf),
            Err(EncodeError::TooLong {
                field: "operation name",
                len: 65_536
            })
        ));
    }

    #[test]
    fn events_are_laid_out_as_documented() {
        let e = EngineEvent {
            kind: EngineEventKind::Shutdown,
            unix_ns: 0x0102_0304_0506_0708,
            detail: "bye".into(),
        };
        let mut buf = Vec::new();
        assert_eq!(Record::Event(e).encode(&mut buf).unwrap(), 3);
        assert_eq!(
            buf,
            [3, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1, 3, 0, 0, 0, b'b', b'y', b'e']
        );
    }
}
