//! The window log: every closed window persisted in memory-mapped, append-only segment
//! files that survive a crash, and a reader that recovers what a crash or damage left.
//!
//! | item | role |
//! |---|---|
//! | [`Reader`] | reads a log directory in order, across segments, while a writer may be live |
//! | [`Record`], [`WindowRecord`], [`EngineEvent`], [`DictEntry`] | decoded records |
//! | [`Integrity`], [`Damage`], [`Verdict`], [`Health`] | what the reader found: clean (sealed), unsealed, torn tail, records missing, corrupt |
//! | [`writer_state`], [`WriterState`] | whether a writer holds the directory now (a log without one is closed) |
//! | [`Writer`], [`LogConfig`], [`Durability`], [`WriteMode`] | appends records (one writer per directory); the engine runs one on its aggregator thread |
//! | [`LogStatus`] | the engine's log state, in every [`Snapshot`](crate::Snapshot) |
//! | [`format`](mod@format) | the fixed headers and constants of the on-disk format |
//!
//! The format, the recovery rules, retention and the fault policy are specified in
//! `docs/log-format.md`.
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use ringmeter::log::{Reader, Record};
//!
//! let dir = std::env::temp_dir().join(format!("ringmeter-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let (clock, mock) = ringmeter::Clock::mock();
//! let engine = ringmeter::Engine::builder().clock(clock).log_dir(&dir).start_manual()?;
//! engine.op("db.query")?.record_ns(1_500);
//! mock.advance(Duration::from_secs(2));
//! engine.shutdown()?;
//!
//! let mut reader = Reader::open(&dir).unwrap();
//! let windows: Vec<_> = reader
//!     .by_ref()
//!     .filter_map(|r| match r.unwrap() {
//!         Record::Window(w) => Some(w),
//!         _ => None,
//!     })
//!     .collect();
//! assert_eq!(&*windows[0].op, "db.query");
//! assert_eq!(windows[0].stats.count, 1);
//! assert!(reader.integrity().is_clean());
//! // Shut down: the segment is sealed.
//! assert_eq!(ringmeter::log::Reader::check(&dir).unwrap().verdict(), ringmeter::log::Verdict::Clean);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), ringmeter::Error>(())
//! ```

use core::fmt;
use std::io;
use std::path::PathBuf;

pub mod format;
#[doc(hidden)]
pub mod fuzzing;
mod liveness;
mod reader;
mod record;
mod sink;
mod writer;

pub use crate::report::LogStatus;
pub use liveness::{writer_state, WriterState};
pub use reader::{Damage, Entry, Health, Integrity, Reader, SegmentInfo, Verdict};
pub use record::{
    DecodeError, DictEntry, EncodeError, EngineEvent, EngineEventKind, Exemplar, Record,
    RecordKind, SamplingMode, SeriesRecord, WindowRecord, MAX_HISTOGRAM_COUNTS,
};
pub(crate) use sink::LogSink;
pub(crate) use writer::check_dir_lock;
pub use writer::{
    Durability, LogConfig, WriteMode, Writer, DEFAULT_SEGMENT_SIZE, LOCK_FILE, MIN_SEGMENT_SIZE,
};

/// Errors of the log reader and writer. Each names the file it concerns.
#[derive(Debug)]
#[non_exhaustive]
pub enum LogError {
    /// The log directory (or file) does not exist.
    NotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// The path is not a ringmeter log: no segment files, or a file without the magic.
    NotALog {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A segment was written by a newer format version than this crate reads.
    NewerVersion {
        /// The segment.
        path: PathBuf,
        /// Its format version.
        found: u32,
        /// The newest version this crate reads ([`format::FORMAT_VERSION`]).
        supported: u32,
    },
    /// An I/O operation failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// A record could not be encoded.
    Encode(EncodeError),
    /// Another writer holds the log directory's lock ([`LOCK_FILE`]).
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The process id recorded by the holder, if readable.
        pid: Option<u32>,
    },
    /// The writer was opened by another process: this one is a `fork()` of it and must not
    /// write the parent's segment.
    Forked {
        /// The log directory.
        path: PathBuf,
        /// The process that opened the writer.
        parent: u32,
        /// This process.
        child: u32,
    },
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            op,
            source,
        }
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound { path } => write!(f, "{}: no such file or directory", path.display()),
            Self::NotALog { path, reason } => {
                write!(f, "{}: not a ringmeter log ({reason})", path.display())
            }
            Self::NewerVersion {
                path,
                found,
                supported,
            } => write!(
                f,
                "{}: written by log format version {found}; this version reads up to {supported}",
                path.display()
            ),
            Self::Io { path, op, source } => write!(f, "{}: {op}: {source}", path.display()),
            Self::Encode(e) => write!(f, "cannot encode record: {e}"),
            Self::Locked { path, pid } => match pid {
                Some(pid) => write!(
                    f,
                    "{}: the log directory is held by another writer (process {pid})",
                    path.display()
                ),
                None => write!(
                    f,
                    "{}: the log directory is held by another writer",
                    path.display()
                ),
            },
            Self::Forked {
                path,
                parent,
                child,
            } => write!(
                f,
                "{}: the log writer belongs to process {parent}; process {child} is a fork of \
                 it and does not write its segment",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Encode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<EncodeError> for LogError {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}
