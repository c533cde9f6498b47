//! Record kinds of the window log and their payload encoding.
//!
//! Every payload is little-endian. Decoding never panics and never allocates more than the
//! payload it is given can justify: every count is checked against the bytes left before
//! anything is reserved, and the embedded HdrHistogram's parameters are checked before it is
//! built (see [`MAX_HISTOGRAM_COUNTS`]). The byte layout is in `docs/log-format.md`.

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::{Pod, Zeroable};
use hdrhistogram::Histogram;

use super::format::{U32Le, U64Le};
pub use crate::hist::MAX_HISTOGRAM_COUNTS;
use crate::hist::{check_frame, decode as decode_histogram, Encoder, HistEncodeError};
use crate::report::{OpStats, OpWindow, WindowReport};

/// Record kind numbers, as stored in a frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    /// Operation dictionary: operation id to name.
    Dictionary = 1,
    /// One operation's statistics and histogram over one closed window.
    Window = 2,
    /// An engine event: start, configuration change, shutdown.
    Event = 3,
    /// An alert notice: a rule started firing or resolved on an operation.
    Alert = 4,
    /// Counter and gauge values at a window close.
    Series = 5,
}

impl RecordKind {
    /// The kind stored as `byte`, if this version knows it.
    pub fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Dictionary),
            2 => Some(Self::Window),
            3 => Some(Self::Event),
            4 => Some(Self::Alert),
            5 => Some(Self::Series),
            _ => None,
        }
    }
}

/// One decoded record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// Operation ids and their names. The writer repeats the entries a segment needs at the
    /// start of that segment, so every segment can be read on its own.
    Dictionary(Vec<DictEntry>),
    /// One operation over one closed window.
    Window(Box<WindowRecord>),
    /// An engine event.
    Event(EngineEvent),
    /// Counter and gauge values.
    Series(SeriesRecord),
    /// An alert notice.
    Alert(crate::alert::Alert),
    /// A record of a kind this version does not decode, returned as its raw payload.
    Unknown {
        /// The frame's kind byte.
        kind: u8,
        /// The raw payload.
        payload: Vec<u8>,
    },
}

impl Record {
    /// The kind byte this record is stored with.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Dictionary(_) => RecordKind::Dictionary as u8,
            Self::Window(_) => RecordKind::Window as u8,
            Self::Event(_) => RecordKind::Event as u8,
            Self::Series(_) => RecordKind::Series as u8,
            Self::Alert(_) => RecordKind::Alert as u8,
            Self::Unknown { kind, .. } => *kind,
        }
    }

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

    /// As [`Record::decode`], but window records keep their histogram as stored
    /// ([`WindowRecord::stored_histogram`]) instead of decoding it, which is several times
    /// faster. The stored bytes are still checked to be framed as V2+deflate: the cookie, and
    /// a compressed length that stays inside the payload.
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
    /// name: [`Reader`](super::Reader) fills it in from the dictionary records.
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
            None => Ok(Record::Unknown {
                kind,
                payload: payload.to_vec(),
            }),
        }
    }
}

/// One entry of an operation dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DictEntry {
    /// Operation id inside the writing engine.
    pub id: u32,
    /// Operation name.
    pub name: Arc<str>,
}

/// The sampling rule in force for an operation when its window closed: the engine's
/// [`Sampling`](crate::Sampling), under the name the log format uses.
pub use crate::config::Sampling as SamplingMode;

impl SamplingMode {
    fn to_wire(self) -> (u8, u64) {
        match self {
            Self::All => (0, 0),
            Self::Every(n) => (1, u64::from(n)),
            Self::Probability(p) => (2, p.to_bits()),
            Self::CountOnly => (3, 0),
        }
    }

    fn from_wire(mode: u8, param: u64) -> Option<Self> {
        match mode {
            0 => Some(Self::All),
            1 => u32::try_from(param).ok().map(Self::Every),
            2 => Some(Self::Probability(f64::from_bits(param))),
            3 => Some(Self::CountOnly),
            _ => None,
        }
    }
}

/// One of the slowest calls of a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exemplar {
    /// Duration in nanoseconds.
    pub duration_ns: u64,
    /// End of the call, nanoseconds since the Unix epoch.
    pub end_unix_ns: u64,
    /// Id of the thread that made the call.
    pub thread: u64,
}

/// One operation's statistics over one closed window, as stored in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRecord {
    /// Operation id inside the writing engine.
    pub op_id: u32,
    /// Operation name, resolved from the dictionary records (empty straight out of
    /// [`Record::decode`]; `op<ID>` if the log holds no dictionary entry for the id).
    pub op: Arc<str>,
    /// Window number: `start_unix_ns / length`.
    pub index: u64,
    /// Window start, nanoseconds since the Unix epoch.
    pub start_unix_ns: u64,
    /// Window length.
    pub length: Duration,
    /// Statistics, as the engine reported them.
    pub stats: OpStats,
    /// Calls skipped by sampling (counted, not timed).
    pub unsampled: u64,
    /// Sampling rule in force when the window closed.
    pub sampling: SamplingMode,
    /// Slow threshold in force, nanoseconds.
    pub slow_threshold_ns: u64,
    /// The slowest calls (top K), slowest first.
    pub slowest: Vec<Exemplar>,
    /// Error counts by kind.
    pub error_kinds: Vec<(Arc<str>, u64)>,
    /// Latency histogram in nanoseconds (empty when read with
    /// [`Reader::decode_histograms(false)`](super::Reader::decode_histograms)).
    pub histogram: Histogram<u64>,
    /// The histogram exactly as stored (HdrHistogram V2 + deflate), when the record was read
    /// without decoding its histogram; `None` otherwise. When set, encoding writes these
    /// bytes instead of serializing `histogram`.
    pub stored_histogram: Option<Vec<u8>>,
}

impl WindowRecord {
    /// Window end, nanoseconds since the Unix epoch.
    pub fn end_unix_ns(&self) -> u64 {
        let len = u64::try_from(self.length.as_nanos()).unwrap_or(u64::MAX);
        self.start_unix_ns.saturating_add(len)
    }

    /// A borrowed view for encoding.
    pub(crate) fn fields(&self) -> WindowFields<'_> {
        WindowFields {
            op_id: self.op_id,
            index: self.index,
            start_unix_ns: self.start_unix_ns,
            length_ns: u64::try_from(self.length.as_nanos()).unwrap_or(u64::MAX),
            stats: &self.stats,
            unsampled: self.unsampled,
            sampling: self.sampling,
            slow_threshold_ns: self.slow_threshold_ns,
            slowest: std::borrow::Cow::Borrowed(&self.slowest),
            error_kinds: &self.error_kinds,
            histogram: &self.histogram,
            stored_histogram: self.stored_histogram.as_deref(),
        }
    }
}

/// Kinds of engine events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineEventKind {
    /// The engine started (detail: its configuration as `key=value` lines).
    Start,
    /// The configuration changed (detail: the new configuration).
    ConfigChange,
    /// The engine shut down.
    Shutdown,
    /// A kind this version does not know.
    Other(u8),
}

impl EngineEventKind {
    fn to_u8(self) -> u8 {
        match self {
            Self::Start => 1,
            Self::ConfigChange => 2,
            Self::Shutdown => 3,
            Self::Other(b) => b,
        }
    }

    fn from_u8(b: u8) -> Self {
        match b {
            1 => Self::Start,
            2 => Self::ConfigChange,
            3 => Self::Shutdown,
            b => Self::Other(b),
        }
    }
}

/// An engine event record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineEvent {
    /// What happened.
    pub kind: EngineEventKind,
    /// When, nanoseconds since the Unix epoch (the engine's clock).
    pub unix_ns: u64,
    /// Free text; for start and configuration changes, `key=value` lines.
    pub detail: String,
}

/// Counter and gauge values at one time (see [`metric`](crate::metric)); help texts are not
/// stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesRecord {
    /// When they were read, nanoseconds since the Unix epoch (the end of the window that
    /// closed).
    pub unix_ns: u64,
    /// Counters, sorted by name and labels.
    pub counters: Vec<crate::metric::CounterValue>,
    /// Gauges, sorted by name and labels.
    pub gauges: Vec<crate::metric::GaugeValue>,
}

/// Why a payload could not be encoded.
#[derive(Debug)]
#[non_exhaustive]
pub enum EncodeError {
    /// A name, text or list is longer than its length field allows.
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// The histogram serializer failed.
    Histogram(String),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { field, len } => write!(f, "{field} too long to encode ({len})"),
            Self::Histogram(e) => write!(f, "cannot serialize histogram: {e}"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Why a payload could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset inside the payload where decoding failed.
    pub offset: usize,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad payload at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

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
    pub(crate) slowest: std::borrow::Cow<'a, [Exemplar]>,
    pub(crate) error_kinds: &'a [(Arc<str>, u64)],
    pub(crate) histogram: &'a Histogram<u64>,
    /// Already-serialized histogram bytes to write instead of `histogram`.
    pub(crate) stored_histogram: Option<&'a [u8]>,
}

/// The one mapping from an engine's closed window to a window record.
pub(crate) fn window_fields<'a>(report: &'a WindowReport, op: &'a OpWindow) -> WindowFields<'a> {
    WindowFields {
        op_id: op.id,
        index: report.index,
        start_unix_ns: report.start_unix_ns,
        length_ns: u64::try_from(report.length.as_nanos()).unwrap_or(u64::MAX),
        stats: &op.stats,
        unsampled: op.stats.unsampled,
        sampling: op.sampling,
        slow_threshold_ns: op.slow_threshold_ns,
        slowest: op
            .slowest
            .iter()
            .map(|e| Exemplar {
                duration_ns: e.duration_ns,
                end_unix_ns: e.end_unix_ns,
                thread: e.thread,
            })
            .collect(),
        error_kinds: &op.error_kinds,
        histogram: &op.histogram,
        stored_histogram: None,
    }
}

/// The fixed part of a window payload (168 bytes).
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct WindowFixed {
    op_id: U32Le,
    sampling_mode: u8,
    reserved: [u8; 3],
    sampling_param: U64Le,
    index: U64Le,
    start_unix_ns: U64Le,
    length_ns: U64Le,
    count: U64Le,
    errors: U64Le,
    slow: U64Le,
    dropped: U64Le,
    late: U64Le,
    unsampled: U64Le,
    min_ns: U64Le,
    max_ns: U64Le,
    mean_ns: U64Le,
    stddev_ns: U64Le,
    p50_ns: U64Le,
    p90_ns: U64Le,
    p95_ns: U64Le,
    p99_ns: U64Le,
    p999_ns: U64Le,
    slow_threshold_ns: U64Le,
}

/// Size of the fixed part of a window payload.
pub(crate) const WINDOW_FIXED_LEN: usize = 168;
const _: () = assert!(core::mem::size_of::<WindowFixed>() == WINDOW_FIXED_LEN);

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
    counters: &[crate::metric::CounterValue],
    gauges: &[crate::metric::GaugeValue],
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
pub(crate) fn encode_alert(a: &crate::alert::Alert, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    use crate::alert::{AlertState, Condition};
    buf.push(match a.state {
        AlertState::Firing => 1,
        AlertState::Resolved => 2,
    });
    let (kind, x, y) = match a.condition {
        Condition::ErrorRate { above } => (1, above.to_bits(), 0),
        Condition::Percentile { quantile, above_ns } => (2, quantile.to_bits(), above_ns),
        Condition::SlowCalls { above } => (3, above, 0),
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
    Ok(())
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
        None => hist.encode(w.histogram, buf).map_err(|e| match e {
            HistEncodeError::TooLarge(len) => too_long("histogram", len),
            e => EncodeError::Histogram(e.to_string()),
        })?,
    };
    let len = u32::try_from(written).map_err(|_| too_long("histogram", written))?;
    buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
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
type RawSeries = (Arc<str>, crate::metric::Labels, u64);

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
        counters.push(crate::metric::CounterValue {
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
        gauges.push(crate::metric::GaugeValue {
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

fn decode_alert(payload: &[u8]) -> Result<crate::alert::Alert, DecodeError> {
    use crate::alert::{Alert, AlertState, Condition};
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
        slowest.push(Exemplar {
            duration_ns: c.u64("exemplar")?,
            end_unix_ns: c.u64("exemplar")?,
            thread: c.u64("exemplar")?,
        });
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
        length: Duration::from_nanos(fixed.length_ns.get()),
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
