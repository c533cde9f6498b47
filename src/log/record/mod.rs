//! The record kinds of the window log: what each record holds, and the fixed layout shared
//! by the window payload's encoder and decoder.
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | the record types, their wire numbers, the errors |
//! | `encode.rs` | payloads from records (and from an engine's closed window) |
//! | `decode.rs` | records from payloads, bounded by the payload's size |
//!
//! Every payload is little-endian. Decoding never panics and never allocates more than the
//! payload it is given can justify: every count is checked against the bytes left before
//! anything is reserved, and the embedded HdrHistogram's parameters are checked before it is
//! built (see [`MAX_HISTOGRAM_COUNTS`]). The byte layout is in `docs/log-format.md`.

use core::fmt;
use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use hdrhistogram::Histogram;

use super::format::{U32Le, U64Le};
use crate::alert::Alert;
pub use crate::limits::MAX_HISTOGRAM_COUNTS;
use crate::metric::{CounterValue, GaugeValue};
use crate::process::ProcessStats;
use crate::report::OpStats;

mod decode;
mod encode;

pub(crate) use encode::{encode_dictionary, encode_event, encode_window, window_fields};

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
    /// The process's resources at a window close.
    Process = 6,
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
            6 => Some(Self::Process),
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
    Alert(Alert),
    /// The process's resources, sampled when a window closed (written before that window's
    /// records).
    Process(ProcessStats),
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
            Self::Process(_) => RecordKind::Process as u8,
            Self::Unknown { kind, .. } => *kind,
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
    /// The mode byte and parameter stored in a window record.
    fn to_wire(self) -> (u8, u64) {
        match self {
            Self::All => (0, 0),
            Self::Every(n) => (1, u64::from(n)),
            Self::Probability(p) => (2, p.to_bits()),
            Self::CountOnly => (3, 0),
        }
    }

    /// The rule stored as `mode` and `param`, if this version knows the mode.
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

/// One of the slowest calls of a window: the engine's own [`Exemplar`](crate::Exemplar). The
/// log stores its duration, end and thread number; a decoded one has no thread name.
pub use crate::report::Exemplar;

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
    /// Window length in nanoseconds.
    pub length_ns: u64,
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
    /// The histogram exactly as stored (HdrHistogram V2, plain or deflated: see
    /// `docs/log-format.md`), when the record was read
    /// without decoding its histogram; `None` otherwise. When set, encoding writes these
    /// bytes instead of serializing `histogram`.
    pub stored_histogram: Option<Vec<u8>>,
}

impl WindowRecord {
    /// Window end, nanoseconds since the Unix epoch.
    pub fn end_unix_ns(&self) -> u64 {
        self.start_unix_ns.saturating_add(self.length_ns)
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
    /// The kind byte stored in an event record.
    fn to_u8(self) -> u8 {
        match self {
            Self::Start => 1,
            Self::ConfigChange => 2,
            Self::Shutdown => 3,
            Self::Other(b) => b,
        }
    }

    /// The kind stored as `b`.
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
    pub counters: Vec<CounterValue>,
    /// Gauges, sorted by name and labels.
    pub gauges: Vec<GaugeValue>,
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
