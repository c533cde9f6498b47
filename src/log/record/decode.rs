//! Records from payloads. Every read is bounds-checked, and every count is checked against
//! the bytes left before anything is reserved, so a damaged payload gives a [`DecodeError`]
//! naming the offset, never a panic or an allocation the payload cannot justify.

use std::sync::Arc;

use hdrhistogram::Histogram;

use super::{
    DecodeError, DictEntry, EngineEvent, EngineEventKind, Exemplar, Record, RecordKind,
    SamplingMode, SeriesRecord, WindowFixed, WindowRecord, WINDOW_FIXED_LEN,
};
use crate::alert::{Alert, AlertState, Condition, Signal};
use crate::hist::{check_frame, decode as decode_histogram};
use crate::metric::{CounterValue, GaugeValue, Labels};
use crate::process::{ProcessSample, ProcessStats};
use crate::report::OpStats;

impl Record {
    /// As [`Record::decode`], but window records keep their histogram as stored
    /// ([`WindowRecord::stored_histogram`]) instead of decoding it, which is several times
    /// faster. The stored bytes are still checked without reading the counts: a V2 + deflate
    /// histogram's cookie and a compressed length that stays inside the payload, or a plain
    /// V2 histogram's header (bounded parameters, a payload length that is the rest of its
    /// bytes).
    ///
    /// # Errors
    /// [`DecodeError`] naming what is wrong and where in the payload.
    pub fn decode_without_histogram(kind: u8, payload: &[u8]) -> Result<Record, DecodeError> {
        if kind == RecordKind::Window as u8 {
            decode_window(payload, false).map(|w| Record::Window(Box::new(w)))
        } else {
            Self::decode(kind, payload)
        }
    }

    /// Decodes a payload of kind `kind`. Window records come back with an empty operation
    /// name: [`Reader`](crate::log::Reader) fills it in from the dictionary records.
    ///
    /// # Errors
    /// [`DecodeError`] naming what is wrong and where in the payload.
    pub fn decode(kind: u8, payload: &[u8]) -> Result<Record, DecodeError> {
        match RecordKind::from_u8(kind) {
            Some(RecordKind::Dictionary) => decode_dictionary(payload).map(Record::Dictionary),
            Some(RecordKind::Window) => {
                decode_window(payload, true).map(|w| Record::Window(Box::new(w)))
            }
            Some(RecordKind::Event) => decode_event(payload).map(Record::Event),
            Some(RecordKind::Series) => decode_series(payload).map(Record::Series),
            Some(RecordKind::Alert) => decode_alert(payload).map(Record::Alert),
            Some(RecordKind::Process) => decode_process(payload).map(Record::Process),
            None => Ok(Record::Unknown {
                kind,
                payload: payload.to_vec(),
            }),
        }
    }
}

/// A bounds-checked cursor over a payload.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn err(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "{what}: needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn str(&mut self, len: usize, what: &str) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let b = self.take(len, what)?;
        core::str::from_utf8(b).map_err(|_| DecodeError {
            offset: at,
            reason: format!("{what}: not UTF-8"),
        })
    }

    /// Checks that `n` items of at least `min_size` bytes each can fit in what is left.
    fn count(&mut self, min_size: usize, what: &str) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_size) > self.remaining() {
            return Err(self.err(format!("{what}: {n} entries cannot fit")));
        }
        Ok(n)
    }
}

/// A process payload. Figures after the ones this version knows, and their presence bits, are
/// skipped (a later writer may append some); a presence bit for a figure the payload does not
/// hold is an error.
fn decode_process(payload: &[u8]) -> Result<ProcessStats, DecodeError> {
    let mut c = Cursor::new(payload);
    let unix_ns = c.u64("time")?;
    let present = c.u32("presence bits")?;
    let flags = c.u32("flags")?;
    let rss_rises = c.u32("rises")?;
    let n = c.count(8, "figures")?;
    if n < 32 && present >> n != 0 {
        return Err(c.err(format!(
            "presence bits {present:#x} name figures beyond the {n} stored"
        )));
    }
    let mut figures = [None; super::encode::PROCESS_FIGURES];
    for i in 0..n {
        let v = c.u64("figure")?;
        if let Some(f) = figures.get_mut(i) {
            *f = (present >> i & 1 == 1).then_some(v);
        }
    }
    let [resident_bytes, virtual_bytes, heap_bytes, cpu_user_ns, cpu_system_ns, threads, open_fds, max_fds, start_unix_ns] =
        figures;
    let sample = ProcessSample {
        resident_bytes,
        virtual_bytes,
        heap_bytes,
        cpu_user_ns,
        cpu_system_ns,
        threads,
        open_fds,
        max_fds,
        start_unix_ns,
    };
    Ok(ProcessStats::new(
        unix_ns,
        sample,
        rss_rises,
        flags & 1 == 1,
    ))
}

fn decode_dictionary(payload: &[u8]) -> Result<Vec<DictEntry>, DecodeError> {
    let mut c = Cursor::new(payload);
    let n = c.count(6, "dictionary entries")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = c.u32("operation id")?;
        let len = c.u16("name length")? as usize;
        let name = c.str(len, "operation name")?;
        out.push(DictEntry {
            id,
            name: Arc::from(name),
        });
    }
    Ok(out)
}

/// One series entry: name, labels, raw value.
type RawSeries = (Arc<str>, Labels, u64);

fn decode_series_entry(c: &mut Cursor<'_>) -> Result<RawSeries, DecodeError> {
    let len = c.u16("series name length")? as usize;
    let name: Arc<str> = Arc::from(c.str(len, "series name")?);
    let n = c.u16("label count")? as usize;
    if n.saturating_mul(4) > c.remaining() {
        return Err(c.err(format!("labels: {n} entries cannot fit")));
    }
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let len = c.u16("label name length")? as usize;
        let k: Arc<str> = Arc::from(c.str(len, "label name")?);
        let len = c.u16("label value length")? as usize;
        let v: Arc<str> = Arc::from(c.str(len, "label value")?);
        labels.push((k, v));
    }
    let value = c.u64("series value")?;
    Ok((name, labels.into(), value))
}

fn decode_series(payload: &[u8]) -> Result<SeriesRecord, DecodeError> {
    let mut c = Cursor::new(payload);
    let unix_ns = c.u64("series time")?;
    // An entry is at least 12 bytes: two lengths and the value.
    let n = c.count(12, "counters")?;
    let mut counters = Vec::with_capacity(n);
    for _ in 0..n {
        let (name, labels, value) = decode_series_entry(&mut c)?;
        counters.push(CounterValue {
            name,
            labels,
            help: None,
            value,
        });
    }
    let n = c.count(12, "gauges")?;
    let mut gauges = Vec::with_capacity(n);
    for _ in 0..n {
        let (name, labels, value) = decode_series_entry(&mut c)?;
        gauges.push(GaugeValue {
            name,
            labels,
            help: None,
            value: f64::from_bits(value),
        });
    }
    if c.remaining() != 0 {
        return Err(c.err("trailing bytes after the gauges"));
    }
    Ok(SeriesRecord {
        unix_ns,
        counters,
        gauges,
    })
}

fn decode_alert(payload: &[u8]) -> Result<Alert, DecodeError> {
    let mut c = Cursor::new(payload);
    let state = match c.u8("alert state")? {
        1 => AlertState::Firing,
        2 => AlertState::Resolved,
        s => {
            return Err(c.err(format!(
                "alert state {s} is neither 1 (firing) nor 2 (resolved)"
            )))
        }
    };
    let kind = c.u8("condition kind")?;
    let has_value = match c.u8("value flag")? {
        0 => false,
        1 => true,
        f => return Err(c.err(format!("value flag {f} is neither 0 nor 1"))),
    };
    c.take(1, "reserved")?;
    let windows_breached = c.u32("windows breached")?;
    let x = c.u64("condition")?;
    let y = c.u64("condition")?;
    let condition = match kind {
        1 => Condition::ErrorRate {
            above: f64::from_bits(x),
        },
        2 => Condition::Percentile {
            quantile: f64::from_bits(x),
            above_ns: y,
        },
        3 => Condition::SlowCalls { above: x },
        4 => Condition::Anomaly {
            signal: match y {
                0 => Signal::ErrorRate,
                q => Signal::Latency {
                    quantile: f64::from_bits(q),
                },
            },
            k: f64::from_bits(x),
        },
        // The period and the burn level follow the names.
        5 => Condition::BudgetBurn {
            quantile: f64::from_bits(x),
            above_ns: y,
            period_ns: 0,
            burn_above: 0.0,
        },
        k => return Err(c.err(format!("unknown condition kind {k}"))),
    };
    let value = f64::from_bits(c.u64("value")?);
    let calls = c.u64("calls")?;
    let window_start_unix_ns = c.u64("window start")?;
    let window_end_unix_ns = c.u64("window end")?;
    let since_unix_ns = c.u64("since")?;
    let len = c.u16("rule name length")? as usize;
    let rule = Arc::from(c.str(len, "rule name")?);
    let len = c.u16("operation name length")? as usize;
    let operation = Arc::from(c.str(len, "operation name")?);
    let mut condition = condition;
    if let Condition::BudgetBurn {
        period_ns,
        burn_above,
        ..
    } = &mut condition
    {
        *period_ns = c.u64("budget period")?;
        *burn_above = f64::from_bits(c.u64("budget burn level")?);
    }
    if c.remaining() != 0 {
        return Err(c.err("trailing bytes after the alert"));
    }
    Ok(Alert {
        rule,
        operation,
        state,
        condition,
        value: has_value.then_some(value),
        calls,
        window_start_unix_ns,
        window_end_unix_ns,
        since_unix_ns,
        windows_breached,
    })
}

fn decode_event(payload: &[u8]) -> Result<EngineEvent, DecodeError> {
    let mut c = Cursor::new(payload);
    let kind = EngineEventKind::from_u8(c.u8("event kind")?);
    c.take(3, "reserved")?;
    let unix_ns = c.u64("event time")?;
    let len = c.u32("detail length")? as usize;
    let detail = c.str(len, "event detail")?.to_owned();
    Ok(EngineEvent {
        kind,
        unix_ns,
        detail,
    })
}

#[allow(clippy::needless_update)]
fn decode_window(payload: &[u8], histogram: bool) -> Result<WindowRecord, DecodeError> {
    let mut c = Cursor::new(payload);
    let fixed: WindowFixed = bytemuck::pod_read_unaligned(c.take(WINDOW_FIXED_LEN, "window")?);
    let sampling = SamplingMode::from_wire(fixed.sampling_mode, fixed.sampling_param.get())
        .ok_or_else(|| DecodeError {
            offset: 4,
            reason: format!("unknown sampling mode {}", fixed.sampling_mode),
        })?;
    let n = c.count(24, "exemplars")?;
    let mut slowest = Vec::with_capacity(n);
    for _ in 0..n {
        let duration_ns = c.u64("exemplar")?;
        let end_unix_ns = c.u64("exemplar")?;
        let thread = c.u64("exemplar")?;
        slowest.push(Exemplar::new(duration_ns, end_unix_ns, thread));
    }
    let n = c.count(10, "error kinds")?;
    let mut error_kinds = Vec::with_capacity(n);
    for _ in 0..n {
        let count = c.u64("error count")?;
        let len = c.u16("error kind length")? as usize;
        error_kinds.push((Arc::from(c.str(len, "error kind")?), count));
    }
    let len = c.u32("histogram length")? as usize;
    let at = c.pos;
    let bytes = c.take(len, "histogram")?;
    let (histogram, stored_histogram) = if histogram {
        let h = decode_histogram(bytes).map_err(|reason| DecodeError { offset: at, reason })?;
        (h, None)
    } else {
        check_frame(bytes).map_err(|reason| DecodeError { offset: at, reason })?;
        (empty_histogram(), Some(bytes.to_vec()))
    };
    let stats = OpStats {
        count: fixed.count.get(),
        errors: fixed.errors.get(),
        slow: fixed.slow.get(),
        dropped: fixed.dropped.get(),
        late: fixed.late.get(),
        min_ns: fixed.min_ns.get(),
        max_ns: fixed.max_ns.get(),
        mean_ns: f64::from_bits(fixed.mean_ns.get()),
        stddev_ns: f64::from_bits(fixed.stddev_ns.get()),
        p50_ns: fixed.p50_ns.get(),
        p90_ns: fixed.p90_ns.get(),
        p95_ns: fixed.p95_ns.get(),
        p99_ns: fixed.p99_ns.get(),
        p999_ns: fixed.p999_ns.get(),
        unsampled: fixed.unsampled.get(),
        // Fields added to `OpStats` later default to zero in older records.
        ..OpStats::default()
    };
    Ok(WindowRecord {
        op_id: fixed.op_id.get(),
        op: Arc::from(""),
        index: fixed.index.get(),
        start_unix_ns: fixed.start_unix_ns.get(),
        length_ns: fixed.length_ns.get(),
        stats,
        unsampled: fixed.unsampled.get(),
        sampling,
        slow_threshold_ns: fixed.slow_threshold_ns.get(),
        slowest,
        error_kinds,
        histogram,
        stored_histogram,
    })
}

/// The placeholder histogram of records read without their histograms.
fn empty_histogram() -> Histogram<u64> {
    thread_local! {
        static EMPTY: Histogram<u64> = Histogram::new_with_max(2, 1).expect("valid bounds");
    }
    EMPTY.with(Histogram::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> WindowRecord {
        let mut histogram = Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        histogram.record_n(1_500, 3).unwrap();
        WindowRecord {
            op_id: 7,
            op: Arc::from(""),
            index: 3,
            start_unix_ns: 3_000_000_000,
            length_ns: 1_000_000_000,
            stats: OpStats {
                count: 3,
                min_ns: 1_500,
                max_ns: 1_500,
                ..OpStats::default()
            },
            unsampled: 0,
            sampling: SamplingMode::All,
            slow_threshold_ns: 1_000_000,
            slowest: vec![],
            error_kinds: vec![(Arc::from("timeout"), 2)],
            histogram,
            stored_histogram: None,
        }
    }

    #[test]
    fn counts_that_cannot_fit_are_refused_before_reserving() {
        let err = Record::decode(RecordKind::Dictionary as u8, &u32::MAX.to_le_bytes());
        let err = err.unwrap_err();
        assert_eq!(err.offset, 4);
        assert!(err.reason.contains("cannot fit"), "{err}");
    }

    #[test]
    fn a_window_read_without_its_histogram_keeps_a_checked_frame() {
        let w = window();
        let mut payload = Vec::new();
        let kind = Record::Window(Box::new(w.clone()))
            .encode(&mut payload)
            .unwrap();
        let Record::Window(fast) = Record::decode_without_histogram(kind, &payload).unwrap() else {
            panic!("not a window");
        };
        let stored = fast.stored_histogram.as_deref().unwrap();
        assert!(payload.ends_with(stored));
        assert_eq!(decode_histogram(stored).unwrap(), w.histogram);
        // Stored in the plain V2 form (format version 3), a payload length that is not the
        // bytes stored is refused without reading the counts.
        assert_eq!(&stored[..4], &[0x1c, 0x84, 0x93, 0x13]);
        let at = payload.len() - stored.len();
        let declared = (stored.len() - 40 + 1) as u32;
        payload[at + 4..at + 8].copy_from_slice(&declared.to_be_bytes());
        let err = Record::decode_without_histogram(kind, &payload).unwrap_err();
        assert_eq!(err.offset, at);
        assert!(err.reason.contains("is not the"), "{err}");
    }
}
