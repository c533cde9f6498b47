//! Appending records to memory-mapped segment files, with rotation and retention.
//!
//! A segment is created at its full size (`set_len`, then zeros written through the file so
//! the blocks really exist: a full disk shows up here as an error instead of as a `SIGBUS`
//! on a later store into the mapping), mapped, given its header, and filled frame by frame.
//! It is never shrunk while mapped. A frame is written in three steps: its header with the
//! in-progress bit set, the payload, then — after a release fence — the length word without
//! the bit. A process killed at any point leaves either nothing (a zero length word), an
//! in-progress frame (a torn tail) or a complete frame.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memmap2::MmapMut;

use super::format::{
    segment_file_name, FrameHeader, SegmentHeader, U32Le, FRAME_HEADER_LEN, IN_PROGRESS,
    MAX_PAYLOAD, SEGMENT_HEADER_LEN,
};
use super::reader::list_segments;
use super::record::{
    encode_dictionary, encode_event, encode_window, window_fields, EncodeError, EngineEvent,
    Record, RecordKind,
};
use super::LogError;
use crate::hist::Encoder;
use crate::report::WindowReport;

pub use crate::limits::{DEFAULT_SEGMENT_SIZE, MIN_SEGMENT_SIZE};

/// Where and how a log is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// The log directory (created if missing, mode 0o750 on Unix).
    pub dir: PathBuf,
    /// Size of each segment file; a new one is started when a record does not fit.
    pub segment_size: u64,
    /// Segments whose last write is older than this are deleted (`None`: no age limit).
    pub max_age: Option<Duration>,
    /// Oldest segments are deleted while the log is larger than this (`None`: no limit).
    /// The segment being written is never deleted.
    pub max_bytes: Option<u64>,
}

impl LogConfig {
    /// A configuration for `dir` with the default segment size and no retention limits.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_size: DEFAULT_SEGMENT_SIZE,
            max_age: None,
            max_bytes: None,
        }
    }
}

/// The segment being written.
struct Segment {
    path: PathBuf,
    /// Kept open for the mapping's lifetime.
    _file: File,
    map: MmapMut,
    /// Offset of the next frame.
    pos: usize,
    /// Sequence number of the next frame.
    next_seq: u64,
    /// Offset from which bytes have not been handed to `flush_async` yet.
    unflushed: usize,
}

/// Appends records to a log directory.
///
/// The engine runs one on its aggregator thread (see
/// [`Builder::log_dir`](crate::Builder::log_dir)); it is public for tools and tests that
/// write logs themselves.
pub struct Writer {
    config: LogConfig,
    seg: Option<Segment>,
    next_segment: u64,
    /// Operation ids whose dictionary entry the current segment holds.
    known: Vec<bool>,
    /// Reused payload buffer.
    buf: Vec<u8>,
    /// Reused histogram serializer.
    hist: Encoder,
    host: String,
    last_retention: SystemTime,
}

impl core::fmt::Debug for Writer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Writer")
            .field("config", &self.config)
            .field("segment", &self.seg.as_ref().map(|s| &s.path))
            .finish_non_exhaustive()
    }
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default()
}

/// Creates `dir` (and parents) without world access.
fn create_dir(dir: &Path) -> Result<(), LogError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o750);
    b.create(dir)
        .map_err(|e| LogError::io(dir, "create directory", e))
}

impl Writer {
    /// Opens (creating if needed) the log directory and starts a new segment after the
    /// existing ones. Applies retention once.
    ///
    /// # Errors
    /// [`LogError::Io`] when the directory or the segment cannot be created, sized or mapped.
    pub fn open(config: LogConfig) -> Result<Writer, LogError> {
        create_dir(&config.dir)?;
        let next_segment = list_segments(&config.dir)?
            .last()
            .map_or(0, |(seq, _)| seq + 1);
        let mut w = Writer {
            config,
            seg: None,
            next_segment,
            known: Vec::new(),
            buf: Vec::with_capacity(4096),
            hist: Encoder::new(),
            host: host_name(),
            last_retention: SystemTime::now(),
        };
        w.rotate(0)?;
        Ok(w)
    }

    /// The configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The segment file being written.
    pub fn segment_path(&self) -> Option<&Path> {
        self.seg.as_ref().map(|s| s.path.as_path())
    }

    /// Appends one record (a dictionary, event or window record, or raw unknown kinds).
    ///
    /// Window records are written as they are: the caller must have written the dictionary
    /// entries their operation ids need in the same segment, or the reader names them
    /// `op<ID>`. [`Writer::append_window`] does that itself.
    ///
    /// # Errors
    /// [`LogError::Encode`] for a record too large to encode, [`LogError::Io`] when a new
    /// segment is needed and cannot be created.
    pub fn append(&mut self, record: &Record) -> Result<(), LogError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let r = record
            .encode_with(&mut buf, &mut self.hist)
            .map_err(LogError::from)
            .and_then(|kind| {
                if let Record::Dictionary(entries) = record {
                    self.write_frame(kind, &buf)?;
                    for e in entries {
                        self.mark_known(e.id);
                    }
                    Ok(())
                } else {
                    self.write_frame(kind, &buf).map(|_| ())
                }
            });
        self.buf = buf;
        r?;
        self.flush_async()
    }

    /// Appends an engine event.
    ///
    /// # Errors
    /// As [`Writer::append`].
    pub fn append_event(&mut self, event: &EngineEvent) -> Result<(), LogError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let r = encode_event(event, &mut buf)
            .map_err(LogError::from)
            .and_then(|()| self.write_frame(RecordKind::Event as u8, &buf).map(|_| ()));
        self.buf = buf;
        r?;
        self.flush_async()
    }

    /// Appends one window record per operation of `report`, each preceded in its segment by
    /// the dictionary entry of its operation, then hands the new bytes to the OS
    /// (`flush_async`).
    ///
    /// # Errors
    /// As [`Writer::append`]. Records written before the error stay written.
    pub fn append_window(&mut self, report: &WindowReport) -> Result<(), LogError> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.append_window_inner(report, &mut buf);
        self.buf = buf;
        r?;
        self.flush_async()?;
        if let Ok(age) = SystemTime::now().duration_since(self.last_retention) {
            if age >= Duration::from_secs(60) && self.config.max_age.is_some() {
                self.apply_retention(SystemTime::now())?;
            }
        }
        Ok(())
    }

    fn append_window_inner(
        &mut self,
        report: &WindowReport,
        buf: &mut Vec<u8>,
    ) -> Result<(), LogError> {
        for op in &report.ops {
            buf.clear();
            encode_window(&window_fields(report, op), &mut self.hist, buf)?;
            let win_len = FrameHeader::frame_len(frame_payload_len(buf.len())?);
            let dict_payload = 4 + 4 + 2 + op.name.len();
            let dict_len = FrameHeader::frame_len(frame_payload_len(dict_payload)?);
            // Room for the dictionary entry and the window together, so a rotation in
            // between cannot leave the window without its entry.
            let need = if self.is_known(op.id) {
                win_len
            } else {
                win_len + dict_len
            };
            if !self.fits(need) {
                self.rotate(need)?;
            }
            if !self.is_known(op.id) {
                let mut d = Vec::with_capacity(dict_payload);
                encode_dictionary(std::iter::once((op.id, &*op.name)), &mut d)?;
                self.write_frame(RecordKind::Dictionary as u8, &d)?;
                self.mark_known(op.id);
            }
            self.write_frame(RecordKind::Window as u8, buf)?;
        }
        Ok(())
    }

    fn is_known(&self, id: u32) -> bool {
        self.known.get(id as usize).copied().unwrap_or(false)
    }

    fn mark_known(&mut self, id: u32) {
        let i = id as usize;
        if i < (1 << 24) {
            if i >= self.known.len() {
                self.known.resize(i + 1, false);
            }
            self.known[i] = true;
        }
    }

    /// Whether a frame of `len` bytes fits in the current segment.
    fn fits(&self, len: u64) -> bool {
        self.seg
            .as_ref()
            .is_some_and(|s| s.pos as u64 + len <= s.map.len() as u64)
    }

    /// Writes one frame, rotating first if it does not fit. Returns its offset.
    fn write_frame(&mut self, kind: u8, payload: &[u8]) -> Result<usize, LogError> {
        let plen = frame_payload_len(payload.len())?;
        let flen = FrameHeader::frame_len(plen);
        if !self.fits(flen) {
            self.rotate(flen)?;
        }
        let Some(seg) = self.seg.as_mut() else {
            return Err(LogError::io(
                &self.config.dir,
                "write",
                std::io::Error::other("no open segment"),
            ));
        };
        let at = seg.pos;
        let header = FrameHeader::new(kind, seg.next_seq, payload);
        let mut marked = header;
        marked.len = U32Le::new(header.unpadded_len() | IN_PROGRESS);
        let h = FRAME_HEADER_LEN;
        // `fits` checked that `at + flen <= map.len()`.
        let frame = &mut seg.map[at..at + flen as usize];
        frame[..h].copy_from_slice(bytemuck::bytes_of(&marked));
        // The in-progress mark lands before the payload.
        fence(Ordering::Release);
        frame[h..h + payload.len()].copy_from_slice(payload);
        // Padding bytes are zero already (fresh segment, never reused).
        // Everything above lands before the length word that completes the frame.
        fence(Ordering::Release);
        frame[..4].copy_from_slice(bytemuck::bytes_of(&header.len));
        seg.pos += flen as usize;
        seg.next_seq += 1;
        Ok(at)
    }

    /// Hands the bytes written since the last call to the OS for writing back.
    fn flush_async(&mut self) -> Result<(), LogError> {
        if let Some(seg) = self.seg.as_mut() {
            if seg.pos > seg.unflushed {
                seg.map
                    .flush_async_range(seg.unflushed, seg.pos - seg.unflushed)
                    .map_err(|e| LogError::io(&seg.path, "flush_async", e))?;
                seg.unflushed = seg.pos;
            }
        }
        Ok(())
    }

    /// Writes everything back to the file and waits for it (`msync`).
    ///
    /// # Errors
    /// [`LogError::Io`] when the flush fails.
    pub fn flush(&mut self) -> Result<(), LogError> {
        if let Some(seg) = self.seg.as_mut() {
            seg.map
                .flush()
                .map_err(|e| LogError::io(&seg.path, "flush", e))?;
            seg.unflushed = seg.pos;
        }
        Ok(())
    }

    /// Finishes the current segment (flushed) and starts the next, large enough for a frame
    /// of `min_frame` bytes; then applies retention.
    fn rotate(&mut self, min_frame: u64) -> Result<(), LogError> {
        if self.seg.is_some() {
            self.flush()?;
            self.seg = None;
        }
        self.known.clear();
        let seq = self.next_segment;
        self.next_segment += 1;
        let path = self.config.dir.join(segment_file_name(seq));
        let size = self
            .config
            .segment_size
            .max(MIN_SEGMENT_SIZE)
            .max(SEGMENT_HEADER_LEN as u64 + min_frame);
        let seg = create_segment(&path, seq, size, &self.host)?;
        self.seg = Some(seg);
        self.apply_retention(SystemTime::now())?;
        Ok(())
    }

    /// Deletes whole segments, oldest first, that are past the configured age or make the
    /// log larger than the configured size. Never deletes the segment being written.
    ///
    /// A segment's age is counted from the creation of the segment after it (when it
    /// stopped receiving records).
    ///
    /// # Errors
    /// [`LogError::Io`] when the directory cannot be listed or a segment cannot be deleted.
    pub fn apply_retention(&mut self, now: SystemTime) -> Result<(), LogError> {
        self.last_retention = now;
        let (max_age, max_bytes) = (self.config.max_age, self.config.max_bytes);
        if max_age.is_none() && max_bytes.is_none() {
            return Ok(());
        }
        let current = self.seg.as_ref().map(|s| s.path.clone());
        let segs = list_segments(&self.config.dir)?;
        let mut sizes = Vec::with_capacity(segs.len());
        let mut total = 0_u64;
        for (_, p) in &segs {
            let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            sizes.push(len);
            total += len;
        }
        let cutoff = max_age.and_then(|a| now.checked_sub(a)).map(unix_ns);
        for i in 0..segs.len() {
            let path = &segs[i].1;
            if current.as_deref() == Some(path.as_path()) {
                break;
            }
            let too_big = max_bytes.is_some_and(|m| total > m);
            let too_old = match (cutoff, segs.get(i + 1)) {
                (Some(cut), Some((_, next))) => created_ns(next).is_some_and(|c| c < cut),
                _ => false,
            };
            if !(too_big || too_old) {
                break;
            }
            match std::fs::remove_file(path) {
                Ok(()) => total -= sizes[i],
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= sizes[i],
                Err(e) => return Err(LogError::io(path, "delete segment", e)),
            }
        }
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Best effort; errors were reported by the last append.
        let _ = self.flush();
    }
}

/// Creation time recorded in a segment's header.
fn created_ns(path: &Path) -> Option<u64> {
    let mut head = [0_u8; SEGMENT_HEADER_LEN];
    let f = File::open(path).ok()?;
    #[cfg(unix)]
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut head, 0).ok()?;
    #[cfg(not(unix))]
    std::io::Read::read_exact(&mut &f, &mut head).ok()?;
    let h: SegmentHeader = bytemuck::pod_read_unaligned(&head);
    (h.compute_crc() == h.crc.get()).then(|| h.created_unix_ns.get())
}

fn frame_payload_len(len: usize) -> Result<u32, LogError> {
    u32::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_PAYLOAD)
        .ok_or(LogError::Encode(EncodeError::TooLong {
            field: "record",
            len,
        }))
}

/// Creates, sizes, fills and maps a new segment and writes its header.
fn create_segment(path: &Path, seq: u64, size: u64, host: &str) -> Result<Segment, LogError> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o640);
    let mut file = opts
        .open(path)
        .map_err(|e| LogError::io(path, "create segment", e))?;
    let fail = |op, e| {
        let _ = std::fs::remove_file(path);
        LogError::io(path, op, e)
    };
    file.set_len(size).map_err(|e| fail("set_len", e))?;
    // Make the blocks real, so a full disk fails here and not as SIGBUS in the mapping.
    let zeros = vec![0_u8; 64 << 10];
    let mut left = size;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        std::io::Write::write_all(&mut file, &zeros[..n]).map_err(|e| fail("preallocate", e))?;
        left -= n as u64;
    }
    // SAFETY: the mapping is sound as long as no one else truncates or writes the file while
    // it is mapped. This process created the file just now (`create_new`, mode 0o640 in a
    // 0o750 directory), never shrinks it while the mapping lives, and writes it only through
    // this mapping; readers only read it. Another process with write access truncating it
    // would break this (as for every memory-mapped file); see docs/log-format.md.
    let map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| fail("mmap", e))?;
    let mut seg = Segment {
        path: path.to_owned(),
        _file: file,
        map,
        pos: SEGMENT_HEADER_LEN,
        next_seq: 0,
        unflushed: 0,
    };
    let header = SegmentHeader::new(seq, unix_ns(SystemTime::now()), std::process::id(), host);
    seg.map[..SEGMENT_HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&header));
    Ok(seg)
}
