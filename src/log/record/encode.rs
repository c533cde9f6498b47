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
use crate::process::{ProcessSample, ProcessStats};
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
            Self::Process(p) => encode_process(p, buf),
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

/// The figures of a process record, in their stored order (`docs/log-format.md`, kind 6).
pub(super) fn process_figures(s: &ProcessSample) -> [Option<u64>; PROCESS_FIGURES] {
    [
        s.resident_bytes,
        s.virtual_bytes,
        s.heap_bytes,
        s.cpu_user_ns,
        s.cpu_system_ns,
        s.threads,
        s.open_fds,
        s.max_fds,
        s.start_unix_ns,
    ]
}

/// Figures a process record of this version stores.
pub(super) const PROCESS_FIGURES: usize = 9;

/// Appends a process payload: time, which figures are present, the growth state, then every
/// figure (0 when absent).
pub(crate) fn encode_process(p: &ProcessStats, buf: &mut Vec<u8>) {
    let figures = process_figures(&p.sample);
    let present = figures
        .iter()
        .enumerate()
        .filter(|(_, f)| f.is_some())
        .fold(0u32, |bits, (i, _)| bits | 1 << i);
    put_u64(buf, p.unix_ns);
    put_u32(buf, present);
    put_u32(buf, u32::from(p.rss_growing));
    put_u32(buf, p.rss_rises);
    put_u32(buf, PROCESS_FIGURES as u32);
    for f in figures {
        put_u64(buf, f.unwrap_or(0));
    }
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
        None => hist.encode_stored(w.histogram, buf).map_err(|e| match e {
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

    #[test]
    fn process_records_are_laid_out_as_documented_and_skip_later_figures() {
        let sample = ProcessSample::default()
            .with_resident_bytes(0x1000)
            .with_threads(3);
        let p = ProcessStats::new(0x0102_0304_0506_0708, sample, 5, true);
        let mut buf = Vec::new();
        assert_eq!(Record::Process(p).encode(&mut buf).unwrap(), 6);
        assert_eq!(buf.len(), 24 + 9 * 8);
        assert_eq!(buf[..8], [8, 7, 6, 5, 4, 3, 2, 1]);
        // Present: resident (bit 0) and threads (bit 5); flags: growing; rises 5; 9 figures.
        assert_eq!(
            buf[8..24],
            [0x21, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0]
        );
        assert_eq!(buf[24..32], 0x1000u64.to_le_bytes());
        assert_eq!(buf[64..72], 3u64.to_le_bytes());
        assert_eq!(Record::decode(6, &buf).unwrap(), Record::Process(p));

        // A later writer's tenth figure, present, is skipped; so are trailing bytes.
        let mut later = buf.clone();
        later[8] |= 1 << 1 | 1 << 2; // virtual and heap present, holding 0
        later[9] = 0x02; // bit 9
        later[20] = 10;
        later.extend_from_slice(&7u64.to_le_bytes());
        later.extend_from_slice(b"more");
        let Ok(Record::Process(q)) = Record::decode(6, &later) else {
            panic!("decodes")
        };
        assert_eq!(q.sample.resident_bytes, Some(0x1000));
        assert_eq!(
            (q.sample.virtual_bytes, q.sample.heap_bytes),
            (Some(0), Some(0))
        );
        assert_eq!(q.rss_rises, 5);

        // A presence bit beyond the figures stored, or figures that do not fit, are errors.
        let mut bad = buf.clone();
        bad[20] = 2;
        bad.truncate(24 + 16);
        assert!(Record::decode(6, &bad).is_err());
        let mut short = buf.clone();
        short.truncate(24 + 8 * 8);
        assert!(Record::decode(6, &short).is_err());
        assert!(Record::decode(6, &buf[..20]).is_err());
    }
}
