//! Reading a log directory: segments in sequence order, every frame validated, damage
//! reported and skipped.
//!
//! The reader uses ordinary file reads, never a mapping, so a writer appending to (or
//! retention deleting) the files at the same time cannot make it fault: at worst it sees a
//! frame half written, which looks like a torn tail until the writer finishes it.
//!
//! Recovery rules (also in `docs/log-format.md`): frames are read in order from the end of
//! the segment header and commit block. A zero length word (or, in a sealed segment, the
//! committed end) ends the written part of the segment. A frame whose length runs past the
//! file, whose in-progress bit is set, whose CRC does not match, whose sequence number is not
//! the next one, or whose payload does not decode is damage. After damage the reader scans
//! forward at [`FRAME_ALIGN`] steps, once, in fixed buffers, for a valid frame with a higher
//! sequence number: if it finds one, the bytes in between are a corrupt range and reading
//! resumes there; if not, the damage is the segment's torn tail when the writer had not
//! committed the frame, and corrupt (or missing, if the file is cut short) when it had. The
//! end of the data below the committed end, zeros before valid frames, a gap in the segment
//! sequence and files that are not readable regular segments are missing records.

use core::fmt;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{
    parse_segment_file_name, segment_file_name, CommitSlot, FrameHeader, SegmentHeader, U32Le,
    COMMIT_BLOCK_AT, COMMIT_SLOT_LEN, FIRST_FRAME_V2, FORMAT_VERSION, FRAME_ALIGN,
    FRAME_HEADER_LEN, MAGIC, MAX_PAYLOAD, MAX_SEGMENT_FILE_LEN, OLDEST_VERSION, SEGMENT_HEADER_LEN,
};
use super::liveness::{writer_state, WriterState};
use super::record::Record;
use super::LogError;

/// One segment file of a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// Segment sequence number (from the file name; the header must agree).
    pub seq: u64,
    /// Creation time, nanoseconds since the Unix epoch (0 until the header was read).
    pub created_unix_ns: u64,
    /// Process id of the writer (0 until the header was read).
    pub pid: u32,
    /// Host name of the writer (empty until the header was read).
    pub host: String,
}

/// A damaged byte range of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The segment file.
    pub segment: PathBuf,
    /// Offset of the first damaged byte.
    pub offset: u64,
    /// Length of the damaged range in bytes (for a torn tail: to the end of the file).
    pub len: u64,
    /// What was wrong with the first frame of the range.
    pub reason: String,
}

/// The overall state of a log, worst first: the coarse form of [`Verdict`], kept for
/// callers that only tell "fine", "crash tail" and "damaged" apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// No damage and nothing missing ([`Verdict::Clean`] or [`Verdict::Unsealed`]).
    Clean,
    /// Only torn tails: the end of a segment that a writer did not finish (expected after a
    /// crash; everything before it is intact).
    TornTail,
    /// Corrupt ranges or missing records ([`Verdict::Corrupt`] or
    /// [`Verdict::RecordsMissing`]).
    Corrupt,
}

/// What a read of a log found, from best to worst; [`Integrity::verdict`] gives the worst
/// that applies. `ringmeter check` exits with a distinct code for each (`docs/cli.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// Every segment sealed by its writer and every record it committed read.
    Clean,
    /// Every committed record read, but a segment is not sealed: its writer is still
    /// running, or was killed (a kill loses nothing the writer had written), or the segment
    /// has format version 1, which carries no seal.
    Unsealed,
    /// A frame its writer had begun but not committed ends a segment: what a kill or a
    /// power loss in the middle of a write leaves. Every committed record was read.
    TornTail,
    /// Records the writer committed are not there: zeroed bytes before valid frames or
    /// below the committed length, a segment truncated below its committed length, a segment
    /// missing from the sequence, empty, headerless, or not a readable regular file.
    RecordsMissing,
    /// Damaged bytes: a committed frame fails its checks (bit rot, overwritten bytes), or a
    /// segment header is invalid.
    Corrupt,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Clean => "clean",
            Self::Unsealed => "unsealed",
            Self::TornTail => "torn tail",
            Self::RecordsMissing => "records missing",
            Self::Corrupt => "corrupt",
        })
    }
}

/// What the reader has found so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Integrity {
    /// Segment files visited.
    pub segments: u64,
    /// Valid records returned.
    pub records: u64,
    /// Torn tails, at most one per segment.
    pub torn_tails: Vec<Damage>,
    /// Corrupt ranges.
    pub corrupt: Vec<Damage>,
    /// Ranges (or whole segments, with `len` 0 when unknown) where committed records are
    /// missing.
    pub missing: Vec<Damage>,
    /// Segments read to their end without a seal (see [`Verdict::Unsealed`]).
    pub unsealed: Vec<PathBuf>,
}

impl Integrity {
    /// The worst finding.
    pub fn verdict(&self) -> Verdict {
        if !self.corrupt.is_empty() {
            Verdict::Corrupt
        } else if !self.missing.is_empty() {
            Verdict::RecordsMissing
        } else if !self.torn_tails.is_empty() {
            Verdict::TornTail
        } else if !self.unsealed.is_empty() {
            Verdict::Unsealed
        } else {
            Verdict::Clean
        }
    }

    /// Clean, torn tail or corrupt (missing records count as corrupt).
    pub fn health(&self) -> Health {
        match self.verdict() {
            Verdict::Clean | Verdict::Unsealed => Health::Clean,
            Verdict::TornTail => Health::TornTail,
            _ => Health::Corrupt,
        }
    }

    /// No damage and nothing missing: [`Verdict::Clean`] or [`Verdict::Unsealed`].
    pub fn is_clean(&self) -> bool {
        self.verdict() <= Verdict::Unsealed
    }
}

/// A record with its place in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Sequence number of the segment it is in.
    pub segment: u64,
    /// Offset of its frame in the segment file.
    pub offset: u64,
    /// Its frame sequence number inside the segment.
    pub seq: u64,
    /// The record (window records carry their operation's name).
    pub record: Record,
}

/// Reads a log directory record by record, in order.
///
/// It is an iterator of `Result<Record, LogError>`; errors are I/O failures and segments of
/// a newer format version, while damage is skipped and reported in [`Reader::integrity`].
/// The iterator is not fused: after it returns `None`, calling it again returns records a
/// live writer has appended since (this is how `tail` follows a log).
///
/// Time and memory are bounded: every byte of a segment is read a bounded number of times
/// (recovery scans forward in fixed buffers), no buffer is sized by a length read from disk
/// before that length was checked against the file and, above 1 MiB, the frame's CRC; only
/// regular files are opened (a FIFO, device, directory or symbolic-link loop named like a
/// segment is reported as missing records), and no more than
/// [`MAX_SEGMENT_FILE_LEN`](super::format::MAX_SEGMENT_FILE_LEN) bytes of a file are read.
///
/// # Examples
/// See the [module documentation](super).
#[derive(Debug)]
pub struct Reader {
    root: PathBuf,
    /// Whether `root` is a directory (new segments are looked for) or a single segment file.
    is_dir: bool,
    segments: Vec<SegmentInfo>,
    /// Highest segment sequence listed so far (entries are never removed from `segments`,
    /// so a file that cannot be opened is reported once, not listed again forever).
    listed: Option<u64>,
    /// Index in `segments` of the segment being read.
    cur: usize,
    /// State inside the current segment (`None`: not opened yet).
    open: Option<OpenSegment>,
    /// Sequence of the last segment opened, to find gaps in the sequence.
    prev_seq: Option<u64>,
    integrity: Integrity,
    /// Whether window records get their histogram decoded.
    histograms: bool,
    /// Whether no writer is expected to add anything: the last segment is then checked to
    /// its end like the others (zero gaps, headerless files).
    final_pass: bool,
    /// [`OpenSegment::examined`] of the segments already left.
    examined: u64,
}

#[derive(Debug)]
struct OpenSegment {
    file: File,
    /// Offset of the first frame.
    data_start: u64,
    /// Format version of the segment.
    version: u32,
    /// The newest commit slot (version 2; re-read whenever the reader reaches the end of
    /// what it has, since a live writer updates it).
    commit: Option<CommitSlot>,
    /// Offset of the next frame.
    pos: u64,
    /// Sequence number the next frame must carry (after damage: at least this).
    next_seq: u64,
    /// Whether `next_seq` is a lower bound only (after damage).
    resync: bool,
    /// Operation names from this segment's dictionary records.
    names: HashMap<u32, Arc<str>>,
    /// File length when last looked at, capped at `MAX_SEGMENT_FILE_LEN`.
    len: u64,
    /// Cached file bytes starting at `chunk_at`. Complete frames never change, so cached
    /// bytes are only re-read when they end the data or look damaged (a live writer may
    /// have finished them since).
    chunk: Vec<u8>,
    chunk_at: u64,
    /// A torn tail already searched: position, the frame header there and the file length.
    /// The same bytes again need no second search.
    tail_memo: Option<(u64, [u8; FRAME_HEADER_LEN], u64)>,
    /// Whether the segment's end was reached with committed records missing (final).
    finished: bool,
    /// Whether a commit slot is damaged (neither empty nor valid).
    commit_damaged: bool,
    /// Bytes read from the file, checked by CRC or decoded so far (see [`Reader::examined`]).
    examined: u64,
    /// Bytes checked by CRC or decoded so far, against [`OpenSegment::budget`].
    checked: u64,
}

fn slot_valid(bytes: &[u8]) -> bool {
    bytes.len() == COMMIT_SLOT_LEN && bytemuck::pod_read_unaligned::<CommitSlot>(bytes).is_valid()
}

/// Bytes read ahead per file read, and the largest buffer used before a frame's CRC matched.
const CHUNK: usize = 1 << 20;

/// Bytes a segment's frames may cost to check (CRC and decoding) per byte of the segment,
/// and in any case ([`OpenSegment::budget`]).
const BUDGET_PER_BYTE: u64 = 8;
const BUDGET_BASE: u64 = 64 << 10;

/// The most work ([`Reader::examined`]) that reading `segments` segment files of `total`
/// bytes in all may cost, whatever their bytes: each byte read once, a look at the commit
/// block and the frame header again at each damaged frame (at most one per 8 bytes), and
/// each segment's budget of checked bytes, which may have been read once more.
pub(crate) fn work_bound(total: u64, segments: u64) -> u64 {
    let reads = total + (2 * COMMIT_SLOT_LEN + FRAME_HEADER_LEN) as u64 * total.div_ceil(8);
    reads + 3 * (BUDGET_PER_BYTE * total + BUDGET_BASE * segments) + 4096 * segments
}

impl OpenSegment {
    /// Makes sure the cache holds `[off, off + need)`; false when the file is shorter.
    fn fill(&mut self, path: &Path, off: u64, need: usize) -> Result<bool, LogError> {
        let end = off + need as u64;
        if off >= self.chunk_at && end <= self.chunk_at + self.chunk.len() as u64 {
            return Ok(true);
        }
        if end > self.len {
            return Ok(false);
        }
        // Bounded by the file's length, never by a length field alone; callers check the
        // CRC of frames larger than `CHUNK` before asking for them.
        let want = (need.max(CHUNK) as u64).min(self.len - off) as usize;
        self.chunk.clear();
        self.chunk.resize(want, 0);
        let n =
            read_at(&self.file, &mut self.chunk, off).map_err(|e| LogError::io(path, "read", e))?;
        self.examined += n as u64;
        self.chunk.truncate(n);
        self.chunk_at = off;
        Ok(n >= need)
    }

    /// Whether the cache holds `[off, off + len)`.
    fn covers(&self, off: u64, len: usize) -> bool {
        off >= self.chunk_at && off + len as u64 <= self.chunk_at + self.chunk.len() as u64
    }

    /// The most bytes that checking frames (CRC and decoding, every attempt counted) may
    /// cost in this segment: a writer's frames never overlap, so reading a segment checks
    /// each byte about twice (once where damage is found, once when the frame after it is
    /// recognised and read), however damaged it is. Only frames crafted to overlap, each
    /// claiming the bytes of the next ones, can ask for more.
    fn budget(&self) -> u64 {
        BUDGET_PER_BYTE * self.len + BUDGET_BASE
    }

    /// Counts `n` bytes about to be checked by CRC or decoded; false when that would pass
    /// the segment's [`budget`](Self::budget) (the bytes are then not checked).
    fn charge(&mut self, n: u64) -> bool {
        if self.checked + n > self.budget() {
            return false;
        }
        self.checked += n;
        self.examined += n;
        true
    }

    /// Cached bytes `[off, off + len)`; call after a successful `fill`.
    fn bytes(&self, off: u64, len: usize) -> &[u8] {
        let a = (off - self.chunk_at) as usize;
        &self.chunk[a..a + len]
    }

    /// Re-reads the commit block, then the file length (in that order: the writer completes
    /// frames before it commits them), and forgets the cache unless the frame header at the
    /// current position still reads as cached.
    ///
    /// Only the frame at the position can have changed since it was cached: a writer
    /// appends, and completes a frame by rewriting its length word (clearing the in-progress
    /// bit), so a frame whose header is unchanged is unchanged. Keeping the cache then keeps
    /// every byte of a damaged segment read once, rather than once per damaged frame.
    fn invalidate(&mut self, path: &Path) -> Result<(), LogError> {
        let old_len = self.len;
        if self.version >= 2 {
            let mut block = [0_u8; 2 * COMMIT_SLOT_LEN];
            for attempt in 0..2 {
                let n = read_at(&self.file, &mut block, COMMIT_BLOCK_AT as u64)
                    .map_err(|e| LogError::io(path, "read", e))?;
                self.examined += n as u64;
                self.commit = CommitSlot::newest(&block[..n]);
                // A slot that is neither empty nor valid: a live writer may be writing it
                // right now, so look once more before calling it damaged.
                // (A block cut short by truncation is reported as missing records instead.)
                self.commit_damaged = n == block.len()
                    && block
                        .chunks(COMMIT_SLOT_LEN)
                        .any(|c| c.iter().any(|&b| b != 0) && !slot_valid(c));
                if !self.commit_damaged || attempt == 1 {
                    break;
                }
                std::thread::yield_now();
            }
        }
        self.len = self
            .file
            .metadata()
            .map_err(|e| LogError::io(path, "stat", e))?
            .len()
            .min(MAX_SEGMENT_FILE_LEN);
        let pos = self.pos;
        let keep = self.len == old_len && self.covers(pos, FRAME_HEADER_LEN) && {
            let mut header = [0_u8; FRAME_HEADER_LEN];
            let n =
                read_at(&self.file, &mut header, pos).map_err(|e| LogError::io(path, "read", e))?;
            self.examined += n as u64;
            n == FRAME_HEADER_LEN && header[..] == *self.bytes(pos, FRAME_HEADER_LEN)
        };
        if !keep {
            self.chunk.clear();
            self.chunk_at = 0;
        }
        Ok(())
    }

    /// Offset up to which the writer committed frames (the data start when unknown).
    fn committed_end(&self) -> u64 {
        self.commit
            .map_or(self.data_start, |c| c.end.get().min(MAX_SEGMENT_FILE_LEN))
    }

    fn sealed(&self) -> bool {
        self.commit.is_some_and(|c| c.sealed())
    }
}

/// Reads up to `buf.len()` bytes at `offset`; returns how many were read (short at EOF).
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(file, &mut buf[done..], offset + done as u64);
        #[cfg(windows)]
        let n =
            std::os::windows::fs::FileExt::seek_read(file, &mut buf[done..], offset + done as u64);
        match n {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Whether the CRC of the frame `h` at `at` matches, reading its payload in fixed pieces.
fn crc_matches(file: &File, h: &FrameHeader, at: u64, buf: &mut Vec<u8>) -> io::Result<bool> {
    let plen = u64::from(h.payload_len());
    let mut header = *h;
    header.crc = U32Le::new(0);
    header.len = U32Le::new(h.unpadded_len());
    let mut crc = crc32c::crc32c(bytemuck::bytes_of(&header));
    buf.resize(CHUNK, 0);
    let mut off = 0;
    while off < plen {
        let n = (plen - off).min(CHUNK as u64) as usize;
        let got = read_at(file, &mut buf[..n], at + FRAME_HEADER_LEN as u64 + off)?;
        if got < n {
            return Ok(false);
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        off += n as u64;
    }
    Ok(crc == h.crc.get())
}

/// The first offset at or after `at` that holds data (`SEEK_DATA`): `None` when only a
/// hole follows; `Some(at)` where the filesystem cannot tell.
fn next_data(file: &File, at: u64) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let off = libc::off_t::try_from(at).ok()?;
        // SAFETY: `lseek` on a descriptor borrowed for the call; no memory is passed. The
        // reader always gives explicit offsets (pread), so moving the file offset is harmless.
        let r = unsafe { libc::lseek(file.as_raw_fd(), off, libc::SEEK_DATA) };
        if r >= 0 {
            return Some(r as u64);
        }
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) {
            return None;
        }
        Some(at)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        Some(at)
    }
}

/// Why a file named like a segment cannot be read as one; `None` for a regular file.
enum Unopenable {
    /// Vanished since the listing (retention).
    Gone,
    /// Reported as missing records, with the reason.
    Missing(String),
}

/// Opens `path` only if it is a regular file: never blocks on a FIFO, never opens a device.
fn open_regular(path: &Path) -> Result<File, Unopenable> {
    let describe = |e: &io::Error| -> String {
        if e.raw_os_error() == Some(libc_eloop()) {
            "symbolic link loop".into()
        } else {
            format!("cannot open: {e}")
        }
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(if std::fs::symlink_metadata(path).is_ok() {
                Unopenable::Missing("dangling symbolic link".into())
            } else {
                Unopenable::Gone
            });
        }
        Err(e) => return Err(Unopenable::Missing(describe(&e))),
    };
    if !meta.is_file() {
        return Err(Unopenable::Missing(format!(
            "not a regular file ({})",
            file_type_name(&meta.file_type())
        )));
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    // Non-blocking, so a FIFO swapped in after the check above cannot block the open.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NONBLOCK);
    let file = opts.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Unopenable::Gone
        } else {
            Unopenable::Missing(describe(&e))
        }
    })?;
    match file.metadata() {
        Ok(m) if m.is_file() => Ok(file),
        Ok(m) => Err(Unopenable::Missing(format!(
            "not a regular file ({})",
            file_type_name(&m.file_type())
        ))),
        Err(e) => Err(Unopenable::Missing(describe(&e))),
    }
}

#[cfg(unix)]
fn libc_eloop() -> i32 {
    libc::ELOOP
}

#[cfg(not(unix))]
fn libc_eloop() -> i32 {
    -1
}

fn file_type_name(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_socket() {
            return "socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "device";
        }
    }
    if t.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

/// Lists the segment files of `dir`, sorted by sequence.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let rd = std::fs::read_dir(dir).map_err(|e| LogError::io(dir, "read directory", e))?;
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| LogError::io(dir, "read directory", e))?;
        let name = ent.file_name();
        if let Some(seq) = name.to_str().and_then(parse_segment_file_name) {
            out.push((seq, ent.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// What a segment header says.
enum HeaderCheck {
    Valid(SegmentHeader),
    /// Fewer bytes than a header, or all zero.
    Unwritten,
    /// Not a valid segment header.
    Bad(String),
}

/// Checks a segment header; `seq` is the sequence from the file name, when it has one.
fn check_header(bytes: &[u8], path: &Path, seq: Option<u64>) -> Result<HeaderCheck, LogError> {
    if bytes.len() < SEGMENT_HEADER_LEN || bytes[..SEGMENT_HEADER_LEN].iter().all(|&b| b == 0) {
        return Ok(HeaderCheck::Unwritten);
    }
    let h: SegmentHeader = bytemuck::pod_read_unaligned(&bytes[..SEGMENT_HEADER_LEN]);
    if h.magic != MAGIC {
        return Ok(HeaderCheck::Bad("bad magic".into()));
    }
    if h.compute_crc() != h.crc.get() {
        return Ok(HeaderCheck::Bad("segment header CRC mismatch".into()));
    }
    let version = h.version.get();
    if version > FORMAT_VERSION {
        return Err(LogError::NewerVersion {
            path: path.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version < OLDEST_VERSION {
        return Ok(HeaderCheck::Bad(format!("format version {version}")));
    }
    let want_len = if version == 1 {
        SEGMENT_HEADER_LEN
    } else {
        FIRST_FRAME_V2
    };
    if h.header_len.get() as usize != want_len {
        return Ok(HeaderCheck::Bad("unexpected header length".into()));
    }
    if let Some(seq) = seq {
        if h.segment_seq.get() != seq {
            return Ok(HeaderCheck::Bad(format!(
                "header names segment {:x}, the file name {seq:x}",
                h.segment_seq.get()
            )));
        }
    }
    Ok(HeaderCheck::Valid(h))
}

/// Outcome of looking at the frame at the current position.
enum Step {
    /// A valid frame: header and payload length.
    Frame(FrameHeader),
    /// The written part of the segment ends here (zero length word, or end of file).
    End,
    /// Damage, with the reason.
    Damaged(String),
    /// Checking the frame would pass the segment's budget of checked bytes: frames crafted
    /// to overlap (see [`OpenSegment::budget`]).
    OverBudget,
}

/// What a scan for a valid frame after damage found.
enum Scan {
    /// A valid frame: its offset and sequence number.
    Found(u64, u64),
    /// No valid frame up to the end of the file.
    None,
    /// Checking the candidate frame at this offset would pass the segment's budget.
    OverBudget,
}

impl Reader {
    /// Opens a log directory (or a single segment file).
    ///
    /// Reads nothing but the directory listing and the first segment's header; records are
    /// read as the iterator is advanced.
    ///
    /// # Errors
    /// [`LogError::NotFound`] for a missing path, [`LogError::NotALog`] for a directory
    /// without segment files or a file that is not a segment, [`LogError::NewerVersion`]
    /// for a segment of a newer format, [`LogError::Io`] when the path cannot be read.
    pub fn open(path: impl AsRef<Path>) -> Result<Reader, LogError> {
        let root = path.as_ref().to_owned();
        let meta = match std::fs::metadata(&root) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LogError::NotFound { path: root })
            }
            Err(e) => return Err(LogError::io(&root, "stat", e)),
        };
        let mut reader = Reader {
            is_dir: meta.is_dir(),
            root,
            segments: Vec::new(),
            listed: None,
            cur: 0,
            open: None,
            prev_seq: None,
            integrity: Integrity::default(),
            histograms: true,
            final_pass: false,
            examined: 0,
        };
        if reader.is_dir {
            reader.refresh()?;
            if reader.segments.is_empty() {
                return Err(LogError::NotALog {
                    path: reader.root,
                    reason: "no segment files".into(),
                });
            }
        } else {
            let not_a_log =
                |root: PathBuf, reason: String| LogError::NotALog { path: root, reason };
            let file = match open_regular(&reader.root) {
                Ok(f) => f,
                Err(Unopenable::Gone) => return Err(LogError::NotFound { path: reader.root }),
                Err(Unopenable::Missing(reason)) => return Err(not_a_log(reader.root, reason)),
            };
            let mut head = [0_u8; SEGMENT_HEADER_LEN];
            let n =
                read_at(&file, &mut head, 0).map_err(|e| LogError::io(&reader.root, "read", e))?;
            let named = reader
                .root
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_segment_file_name);
            match check_header(&head[..n], &reader.root, named)? {
                HeaderCheck::Valid(h) => reader.segments.push(SegmentInfo {
                    path: reader.root.clone(),
                    seq: h.segment_seq.get(),
                    created_unix_ns: h.created_unix_ns.get(),
                    pid: h.pid.get(),
                    host: h.host(),
                }),
                HeaderCheck::Unwritten => {
                    return Err(not_a_log(reader.root, "no segment header".into()))
                }
                HeaderCheck::Bad(reason) => return Err(not_a_log(reader.root, reason)),
            }
        }
        // Fail early on a newer version rather than after reading older segments.
        if reader.is_dir {
            reader.open_current()?;
        }
        Ok(reader)
    }

    /// Reads a whole log and returns its records and integrity report. No writer is
    /// expected: the last segment is checked to its end like the others.
    ///
    /// # Errors
    /// As [`Reader::open`], and I/O errors while reading.
    pub fn read_all(path: impl AsRef<Path>) -> Result<(Vec<Record>, Integrity), LogError> {
        let mut r = Self::open(path)?;
        r.final_pass = true;
        let records = r.by_ref().collect::<Result<Vec<_>, _>>()?;
        Ok((records, r.integrity.clone()))
    }

    /// Reads a whole log and returns its integrity report only (as [`Reader::read_all`]).
    ///
    /// # Errors
    /// As [`Reader::open`], and I/O errors while reading.
    pub fn check(path: impl AsRef<Path>) -> Result<Integrity, LogError> {
        let mut r = Self::open(path)?;
        r.final_pass = true;
        for rec in r.by_ref() {
            rec?;
        }
        Ok(r.integrity.clone())
    }

    /// Whether window records come with their histogram decoded (the default) or with the
    /// stored bytes only ([`WindowRecord::stored_histogram`](super::WindowRecord::stored_histogram),
    /// `histogram` left empty). Skipping the decoding makes reading several times faster
    /// when only the statistics or the raw V2 bytes (e.g. for an HdrHistogram log) are needed.
    pub fn decode_histograms(&mut self, decode: bool) -> &mut Self {
        self.histograms = decode;
        self
    }

    /// Declares that no writer will append any more (the default is to expect one): the
    /// newest segment is then checked to its end like the others, so a zeroed range or an
    /// empty file there is reported as missing records instead of being waited on.
    /// [`Reader::read_all`] and [`Reader::check`] do this themselves.
    pub fn expect_no_writer(&mut self, finished: bool) -> &mut Self {
        self.final_pass = finished;
        self
    }

    /// Whether a writer holds the log's directory now (see [`writer_state`]): a reader of
    /// a [`Closed`](WriterState::Closed) log can
    /// [expect no writer](Self::expect_no_writer), so that an empty, zeroed or unsealed
    /// newest segment is reported instead of waited on.
    pub fn writer_state(&self) -> WriterState {
        if self.is_dir {
            writer_state(&self.root)
        } else {
            let dir = self.root.parent().filter(|p| !p.as_os_str().is_empty());
            writer_state(dir.unwrap_or(Path::new(".")))
        }
    }

    /// What has been found so far (complete once the iterator has returned `None`).
    pub fn integrity(&self) -> &Integrity {
        &self.integrity
    }

    /// The segments known so far, in order. Header fields are filled in once a segment has
    /// been opened.
    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    /// The work done so far, in bytes: read from segment files, checked by CRC or decoded
    /// (every attempt counted). Recovery keeps it linear in the size of the files read,
    /// whatever their bytes (tests and the fuzz harness check this).
    pub(crate) fn examined(&self) -> u64 {
        self.examined + self.open.as_ref().map_or(0, |o| o.examined)
    }

    /// The path this reader was opened on.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Looks for segment files created since the last look (directories only).
    ///
    /// # Errors
    /// [`LogError::Io`] when the directory cannot be listed.
    pub fn refresh(&mut self) -> Result<(), LogError> {
        if !self.is_dir {
            return Ok(());
        }
        for (seq, path) in list_segments(&self.root)? {
            if self.listed.is_none_or(|l| seq > l) {
                self.listed = Some(seq);
                self.segments.push(SegmentInfo {
                    path,
                    seq,
                    created_unix_ns: 0,
                    pid: 0,
                    host: String::new(),
                });
            }
        }
        Ok(())
    }

    /// The next valid record with its position, `Ok(None)` at the current end of the log.
    ///
    /// # Errors
    /// [`LogError::Io`] when a segment cannot be read, [`LogError::NewerVersion`] for a
    /// segment of a newer format (reading goes on after it at the next call).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, LogError> {
        loop {
            if self.open.is_none() && !self.open_current()? {
                return Ok(None);
            }
            match self.next_in_segment()? {
                Some(e) => return Ok(Some(e)),
                None => {
                    // End of what is written in this segment. Move on only if a later
                    // segment exists; otherwise a live writer may still append here.
                    if self.cur + 1 >= self.segments.len() {
                        self.refresh()?;
                        if self.cur + 1 < self.segments.len() {
                            // A later segment appeared, so this one's writer moved on: look
                            // at it once more as a finished segment (gaps after its end).
                            if let Some(e) = self.next_in_segment()? {
                                return Ok(Some(e));
                            }
                        }
                    }
                    if self.cur + 1 >= self.segments.len() {
                        return Ok(None);
                    }
                    self.cur += 1;
                    if let Some(open) = self.open.take() {
                        self.examined += open.examined;
                    }
                }
            }
        }
    }

    /// Opens `segments[cur]` (reporting unreadable files and gaps in the sequence); false
    /// when there is none left.
    fn open_current(&mut self) -> Result<bool, LogError> {
        loop {
            if self.open.is_some() {
                return Ok(true);
            }
            if self.cur >= self.segments.len() {
                self.refresh()?;
                if self.cur >= self.segments.len() {
                    return Ok(false);
                }
            }
            let path = self.segments[self.cur].path.clone();
            let seq = self.segments[self.cur].seq;
            let last = self.cur + 1 >= self.segments.len();
            let file = match open_regular(&path) {
                Ok(f) => f,
                // Deleted by retention since the listing: not an error, and never listed
                // again (so never retried).
                Err(Unopenable::Gone) => {
                    self.cur += 1;
                    continue;
                }
                Err(Unopenable::Missing(reason)) => {
                    self.integrity.segments += 1;
                    self.note_seq(seq, &path);
                    self.integrity.missing.push(Damage {
                        segment: path,
                        offset: 0,
                        len: 0,
                        reason,
                    });
                    self.cur += 1;
                    continue;
                }
            };
            let mut head = [0_u8; FIRST_FRAME_V2];
            let n = read_at(&file, &mut head, 0).map_err(|e| LogError::io(&path, "read", e))?;
            let named = self.is_dir.then_some(seq);
            let checked = match check_header(&head[..n], &path, named) {
                Ok(c) => c,
                Err(e) => {
                    // Reported once; the iteration goes on past it.
                    self.cur += 1;
                    return Err(e);
                }
            };
            let file_len = file
                .metadata()
                .map_err(|e| LogError::io(&path, "stat", e))?
                .len();
            match checked {
                HeaderCheck::Valid(h) => {
                    let info = &mut self.segments[self.cur];
                    info.created_unix_ns = h.created_unix_ns.get();
                    info.pid = h.pid.get();
                    info.host = h.host();
                    self.integrity.segments += 1;
                    self.note_seq(seq, &path);
                    let version = h.version.get();
                    let data_start = h.header_len.get() as u64;
                    if file_len > MAX_SEGMENT_FILE_LEN {
                        self.integrity.corrupt.push(Damage {
                            segment: path.clone(),
                            offset: MAX_SEGMENT_FILE_LEN,
                            len: file_len - MAX_SEGMENT_FILE_LEN,
                            reason: "file longer than any segment a writer makes; not read".into(),
                        });
                    }
                    let mut open = OpenSegment {
                        file,
                        data_start,
                        version,
                        commit: None,
                        pos: data_start,
                        next_seq: 0,
                        resync: false,
                        names: HashMap::new(),
                        len: 0,
                        chunk: Vec::new(),
                        chunk_at: 0,
                        tail_memo: None,
                        finished: false,
                        commit_damaged: false,
                        examined: 0,
                        checked: 0,
                    };
                    open.invalidate(&path)?;
                    if open.commit_damaged {
                        self.integrity.corrupt.push(Damage {
                            segment: path.clone(),
                            offset: COMMIT_BLOCK_AT as u64,
                            len: 2 * COMMIT_SLOT_LEN as u64,
                            reason: "commit block damaged".into(),
                        });
                    }
                    if version >= 2 && open.len < data_start {
                        self.integrity.missing.push(Damage {
                            segment: path,
                            offset: open.len,
                            len: 0,
                            reason: "segment truncated into its commit block".into(),
                        });
                        open.finished = true;
                    }
                    self.open = Some(open);
                    return Ok(true);
                }
                HeaderCheck::Unwritten if last && !self.final_pass => {
                    // A writer of format version 1 may be creating it right now: look again
                    // later (version 2 writers rename segments into place with their header).
                    return Ok(false);
                }
                HeaderCheck::Unwritten => {
                    self.integrity.segments += 1;
                    self.note_seq(seq, &path);
                    self.integrity.missing.push(Damage {
                        segment: path,
                        offset: 0,
                        len: file_len,
                        reason: if file_len == 0 {
                            "empty segment file".into()
                        } else {
                            "segment header never written".into()
                        },
                    });
                }
                HeaderCheck::Bad(reason) => {
                    self.integrity.segments += 1;
                    self.note_seq(seq, &path);
                    self.integrity.corrupt.push(Damage {
                        segment: path,
                        offset: 0,
                        len: file_len,
                        reason,
                    });
                }
            }
            self.cur += 1;
        }
    }

    /// Records that segment `seq` was reached, reporting the segments skipped since the
    /// previous one as missing.
    fn note_seq(&mut self, seq: u64, path: &Path) {
        if let Some(prev) = self.prev_seq {
            if seq > prev.saturating_add(1) {
                let first = prev + 1;
                let name = segment_file_name(first);
                self.integrity.missing.push(Damage {
                    segment: path
                        .parent()
                        .map_or_else(|| name.clone().into(), |d| d.join(&name)),
                    offset: 0,
                    len: 0,
                    reason: if seq - first == 1 {
                        format!("segment {first:x} missing from the sequence")
                    } else {
                        format!(
                            "segments {first:x} to {:x} missing from the sequence",
                            seq - 1
                        )
                    },
                });
            }
        }
        self.prev_seq = Some(seq);
    }

    /// Classifies the frame at the current position (its payload is then in the cache).
    fn look(&mut self) -> Result<Step, LogError> {
        let path = &self.segments[self.cur].path;
        let Some(open) = self.open.as_mut() else {
            return Ok(Step::End);
        };
        let pos = open.pos;
        if open.sealed() && pos >= open.committed_end() {
            // The writer closed the segment here: nothing after it is data.
            return Ok(Step::End);
        }
        if !open.fill(path, pos, FRAME_HEADER_LEN)? {
            return Ok(Step::End);
        }
        let h: FrameHeader = bytemuck::pod_read_unaligned(open.bytes(pos, FRAME_HEADER_LEN));
        if h.len.get() == 0 {
            return Ok(Step::End);
        }
        if h.in_progress() {
            return Ok(Step::Damaged("frame still marked in progress".into()));
        }
        if !h.len_valid() {
            return Ok(Step::Damaged(format!(
                "frame length {} below the header's",
                h.unpadded_len()
            )));
        }
        let plen = h.payload_len();
        if plen > MAX_PAYLOAD || pos + FrameHeader::frame_len(plen) > open.len {
            return Ok(Step::Damaged(format!(
                "frame length {} runs past the end of the segment",
                h.unpadded_len()
            )));
        }
        let seq = h.seq.get();
        let seq_ok = if open.resync {
            seq >= open.next_seq
        } else {
            seq == open.next_seq
        };
        if !seq_ok {
            return Ok(Step::Damaged(format!(
                "sequence number {seq}, expected {}",
                open.next_seq
            )));
        }
        let total = FRAME_HEADER_LEN + plen as usize;
        // The CRC check and the decoding that follows it; a torn tail looked at again (a
        // reader following a live log) costs nothing new.
        let again = open.tail_memo.is_some_and(|(at, ..)| at == pos);
        if !again && !open.charge(2 * total as u64) {
            return Ok(Step::OverBudget);
        }
        if total > CHUNK {
            // Check the CRC in fixed pieces before a buffer of this size is made.
            let mut buf = Vec::new();
            open.examined += u64::from(plen);
            if !crc_matches(&open.file, &h, pos, &mut buf)
                .map_err(|e| LogError::io(path, "read", e))?
            {
                return Ok(Step::Damaged("CRC mismatch".into()));
            }
        }
        if !open.fill(path, pos, total)? {
            return Ok(Step::Damaged("payload cut short".into()));
        }
        let payload = &open.bytes(pos, total)[FRAME_HEADER_LEN..];
        if h.compute_crc(payload) != h.crc.get() {
            return Ok(Step::Damaged("CRC mismatch".into()));
        }
        Ok(Step::Frame(h))
    }

    /// The next valid record of the current segment, `None` at its written end.
    fn next_in_segment(&mut self) -> Result<Option<Entry>, LogError> {
        loop {
            let path = self.segments[self.cur].path.clone();
            if self.open.as_ref().is_none_or(|o| o.finished) {
                return Ok(None);
            }
            let mut step = self.look()?;
            if !matches!(step, Step::Frame(_)) {
                // Before concluding anything, look at the file as it is now.
                if let Some(open) = self.open.as_mut() {
                    open.invalidate(&path)?;
                }
                step = self.look()?;
            }
            let reason = match step {
                Step::OverBudget => {
                    self.give_up(&path);
                    return Ok(None);
                }
                Step::End => match self.at_end(&path)? {
                    true => continue,
                    false => return Ok(None),
                },
                Step::Frame(h) => {
                    let Some(open) = self.open.as_mut() else {
                        return Ok(None);
                    };
                    let pos = open.pos;
                    let total = FRAME_HEADER_LEN + h.payload_len() as usize;
                    let payload = &open.bytes(pos, total)[FRAME_HEADER_LEN..];
                    let decoded = if self.histograms {
                        Record::decode(h.kind, payload)
                    } else {
                        Record::decode_without_histogram(h.kind, payload)
                    };
                    match decoded {
                        Ok(mut record) => {
                            open.pos += FrameHeader::frame_len(h.payload_len());
                            open.next_seq = h.seq.get() + 1;
                            open.resync = false;
                            open.tail_memo = None;
                            match &mut record {
                                Record::Dictionary(entries) => {
                                    for e in entries {
                                        open.names.insert(e.id, Arc::clone(&e.name));
                                    }
                                }
                                Record::Window(w) => {
                                    w.op = match open.names.get(&w.op_id) {
                                        Some(n) => Arc::clone(n),
                                        None => Arc::from(format!("op{}", w.op_id)),
                                    };
                                }
                                _ => {}
                            }
                            self.integrity.records += 1;
                            self.clear_tail(&path);
                            return Ok(Some(Entry {
                                segment: self.segments[self.cur].seq,
                                offset: pos,
                                seq: h.seq.get(),
                                record,
                            }));
                        }
                        Err(e) => format!("kind {} payload does not decode: {e}", h.kind),
                    }
                }
                Step::Damaged(reason) => reason,
            };
            if !self.after_damage(&path, reason)? {
                return Ok(None);
            }
        }
    }

    /// The written part of the segment ends at the current position (zero length word or
    /// end of file). True when reading goes on at a later frame (after a gap).
    fn at_end(&mut self, path: &Path) -> Result<bool, LogError> {
        let last = self.cur + 1 >= self.segments.len();
        let Some(open) = self.open.as_ref() else {
            return Ok(false);
        };
        let pos = open.pos;
        let committed = open.committed_end();
        let below = pos < committed;
        if below || (!open.sealed() && (!last || self.final_pass)) {
            // Valid frames after zeros: their writer wrote them, so what lies between was
            // written too and is lost.
            match self.scan(pos)? {
                Scan::Found(at, seq) => {
                    self.clear_tail(path);
                    self.integrity.missing.push(Damage {
                        segment: path.to_owned(),
                        offset: pos,
                        len: at - pos,
                        reason: "zeroed bytes before valid frames".into(),
                    });
                    self.resume(at, seq);
                    return Ok(true);
                }
                Scan::OverBudget => {
                    self.give_up(path);
                    return Ok(false);
                }
                Scan::None => {}
            }
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(false);
        };
        self.integrity.torn_tails.retain(|d| d.segment != path);
        if below {
            open.finished = true;
            let truncated = open.len < committed;
            self.integrity.missing.push(Damage {
                segment: path.to_owned(),
                offset: pos,
                len: committed - pos,
                reason: if truncated {
                    format!("segment truncated below its committed length {committed}")
                } else {
                    format!("zeroed bytes below the committed length {committed}")
                },
            });
            return Ok(false);
        }
        let sealed = open.sealed();
        let unsealed = self.integrity.unsealed.iter().any(|p| p == path);
        if sealed && unsealed {
            self.integrity.unsealed.retain(|p| p != path);
        } else if !sealed && !unsealed {
            self.integrity.unsealed.push(path.to_owned());
        }
        Ok(false)
    }

    /// Damage at the current position: finds the next valid frame and reports the bytes in
    /// between. True when reading goes on.
    fn after_damage(&mut self, path: &Path, reason: String) -> Result<bool, LogError> {
        let Some(open) = self.open.as_ref() else {
            return Ok(false);
        };
        let start = open.pos;
        let mut header = [0_u8; FRAME_HEADER_LEN];
        let n =
            read_at(&open.file, &mut header, start).map_err(|e| LogError::io(path, "read", e))?;
        if n == FRAME_HEADER_LEN && open.tail_memo == Some((start, header, open.len)) {
            // The same torn tail as last time: nothing new to search.
            return Ok(false);
        }
        let committed = open.committed_end();
        let v1 = open.version < 2;
        match self.scan(start + FRAME_ALIGN as u64)? {
            Scan::OverBudget => {
                self.give_up(path);
                Ok(false)
            }
            Scan::Found(at, seq) => {
                self.clear_tail(path);
                self.integrity.corrupt.push(Damage {
                    segment: path.to_owned(),
                    offset: start,
                    len: at - start,
                    reason,
                });
                self.resume(at, seq);
                Ok(true)
            }
            Scan::None => {
                let Some(open) = self.open.as_mut() else {
                    return Ok(false);
                };
                let len = open.len;
                self.integrity.torn_tails.retain(|d| d.segment != path);
                if !v1 && start < committed {
                    // The writer had completed and committed this frame.
                    open.finished = true;
                    let truncated = len < committed;
                    let d = Damage {
                        segment: path.to_owned(),
                        offset: start,
                        len: committed.max(len) - start,
                        reason: if truncated {
                            format!("segment truncated below its committed length {committed}: {reason}")
                        } else {
                            format!("committed frame damaged: {reason}")
                        },
                    };
                    if truncated {
                        self.integrity.missing.push(d);
                    } else {
                        self.integrity.corrupt.push(d);
                    }
                } else {
                    if n == FRAME_HEADER_LEN {
                        open.tail_memo = Some((start, header, len));
                    }
                    self.integrity.torn_tails.push(Damage {
                        segment: path.to_owned(),
                        offset: start,
                        len: len.saturating_sub(start),
                        reason,
                    });
                }
                Ok(false)
            }
        }
    }

    /// Ends the current segment at its current position because checking more frames would
    /// pass its budget: the rest of the file is one corrupt range.
    fn give_up(&mut self, path: &Path) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        open.finished = true;
        let pos = open.pos;
        let len = open.len.max(open.committed_end());
        self.integrity.torn_tails.retain(|d| d.segment != path);
        self.integrity.unsealed.retain(|p| p != path);
        self.integrity.corrupt.push(Damage {
            segment: path.to_owned(),
            offset: pos,
            len: len.saturating_sub(pos),
            reason: format!(
                "overlapping frames: checking them would cost more than {} bytes; not read",
                open.budget()
            ),
        });
    }

    /// Continues reading at the valid frame `at` with sequence `seq` found after damage.
    fn resume(&mut self, at: u64, seq: u64) {
        if let Some(open) = self.open.as_mut() {
            open.pos = at;
            open.next_seq = seq;
            open.resync = true;
            open.tail_memo = None;
        }
    }

    /// Forgets a torn tail or unsealed mark reported earlier for `path` (a live writer
    /// finished the frame, or appended more).
    fn clear_tail(&mut self, path: &Path) {
        self.integrity.torn_tails.retain(|d| d.segment != path);
        self.integrity.unsealed.retain(|p| p != path);
    }

    /// Finds the first valid frame at or after `from` (at [`FRAME_ALIGN`] steps) whose
    /// sequence number is at least the expected one and no larger than the frames that fit
    /// in between allow. Reads the file forward through the segment's cache (so bytes
    /// already read for the damaged frame are not read again), skipping the holes of a
    /// sparse file; the CRC and decoding of each candidate are charged to the segment's
    /// budget.
    fn scan(&mut self, from: u64) -> Result<Scan, LogError> {
        let path = self.segments[self.cur].path.clone();
        let Some(open) = self.open.as_mut() else {
            return Ok(Scan::None);
        };
        let len = open.len;
        let base_seq = open.next_seq;
        let damage_at = open.pos;
        let align = FRAME_ALIGN as u64;
        let header_len = FRAME_HEADER_LEN as u64;
        let mut at = from.div_ceil(align) * align;
        let mut crc_buf = Vec::new();
        while at + header_len <= len {
            if !open.covers(at, FRAME_HEADER_LEN) {
                // Holes of a sparse file hold no frame: skip to the next data.
                match next_data(&open.file, at) {
                    Some(d) if d > at => {
                        at = d.div_ceil(align) * align;
                        if at + header_len > len {
                            break;
                        }
                    }
                    Some(_) => {}
                    None => break,
                }
                if !open.fill(&path, at, FRAME_HEADER_LEN)? {
                    break;
                }
            }
            let bytes = open.bytes(at, FRAME_HEADER_LEN);
            if bytes[..8] == [0; 8] {
                // A zero length word: no frame starts here.
                at += align;
                continue;
            }
            let h: FrameHeader = bytemuck::pod_read_unaligned(bytes);
            let plen = h.payload_len();
            let seq = h.seq.get();
            // At most one frame per 24 bytes between the damage and here.
            let max_seq = base_seq.saturating_add((at - damage_at) / header_len + 1);
            if h.len.get() != 0
                && h.len_valid()
                && !h.in_progress()
                && h.reserved == [0; 3]
                && h.reserved2 == [0; 4]
                && plen <= MAX_PAYLOAD
                && at + FrameHeader::frame_len(plen) <= len
                && (base_seq..=max_seq).contains(&seq)
            {
                let total = FRAME_HEADER_LEN + plen as usize;
                if !open.charge(2 * total as u64) {
                    return Ok(Scan::OverBudget);
                }
                let ok = if total <= CHUNK {
                    open.fill(&path, at, total)?
                        && h.compute_crc(&open.bytes(at, total)[FRAME_HEADER_LEN..]) == h.crc.get()
                } else {
                    open.examined += u64::from(plen);
                    crc_matches(&open.file, &h, at, &mut crc_buf)
                        .map_err(|e| LogError::io(&path, "read", e))?
                        && open.fill(&path, at, total)?
                };
                if ok && Record::decode(h.kind, &open.bytes(at, total)[FRAME_HEADER_LEN..]).is_ok()
                {
                    return Ok(Scan::Found(at, seq));
                }
            }
            at += align;
        }
        Ok(Scan::None)
    }
}

impl Iterator for Reader {
    type Item = Result<Record, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().transpose().map(|r| r.map(|e| e.record))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::log::format::{CommitSlot, FrameHeader, U32Le};
    use crate::log::{LogConfig, Writer};

    /// A directory of its own under the system's temporary directory, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("ringmeter-reader-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Self(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Writes `n` records of `payload` bytes into one segment of `size` bytes and returns
    /// its path.
    fn segment(dir: &Path, size: u64, n: usize, payload: usize) -> PathBuf {
        let mut cfg = LogConfig::new(dir);
        cfg.segment_size = size;
        let mut w = Writer::open(cfg).unwrap();
        let rec = Record::Unknown {
            kind: 200,
            payload: vec![7; payload],
        };
        for _ in 0..n {
            w.append(&rec).unwrap();
        }
        let path = w.segment_path().unwrap().to_owned();
        drop(w);
        path
    }

    /// Reads the whole log as finished; returns the records, the report and the work done.
    fn read(dir: &Path) -> (u64, Integrity, u64) {
        let mut r = Reader::open(dir).unwrap();
        r.expect_no_writer(true);
        let mut records = 0;
        while r.next_entry().unwrap().is_some() {
            records += 1;
        }
        (records, r.integrity().clone(), r.examined())
    }

    /// Replaces the commit block with "nothing committed", so that every frame is looked at
    /// as data a writer may not have committed.
    fn uncommit(bytes: &mut [u8]) {
        bytes[COMMIT_BLOCK_AT..FIRST_FRAME_V2].fill(0);
    }

    /// A frame header claiming `len` bytes with sequence `seq` and a CRC that cannot match.
    fn bogus(len: u32, seq: u64) -> [u8; FRAME_HEADER_LEN] {
        let mut h = FrameHeader::new(200, seq, &[]);
        h.len = U32Le::new(len);
        h.crc = U32Le::new(h.crc.get() ^ 1);
        bytemuck::cast(h)
    }

    /// The most work reading a segment of `n` bytes may cost (see [`work_bound`]), about
    /// 36 bytes per byte; re-checking every candidate frame would cost about n²/48.
    fn linear_bound(n: u64) -> u64 {
        work_bound(n, 1)
    }

    /// Frames crafted so that each claims the rest of the segment: checking every one of
    /// them reads the rest of the file again (about n²/48 bytes). Recovery checks them only
    /// up to a budget linear in the file, then reports the rest as one corrupt range.
    #[test]
    fn overlapping_frames_cost_linear_work() {
        let dir = Dir::new("overlap");
        let size = 256 << 10;
        let seg = segment(&dir.0, size, 1, 8);
        let mut bytes = std::fs::read(&seg).unwrap();
        uncommit(&mut bytes);
        let n = bytes.len() as u64;
        let mut at = FIRST_FRAME_V2;
        while at + FRAME_HEADER_LEN <= bytes.len() {
            let len = (n - at as u64 - 8) as u32;
            bytes[at..at + FRAME_HEADER_LEN].copy_from_slice(&bogus(len, 0));
            at += FRAME_HEADER_LEN;
        }
        std::fs::write(&seg, &bytes).unwrap();
        let (records, integrity, examined) = read(&dir.0);
        assert_eq!(records, 0);
        assert_eq!(integrity.verdict(), Verdict::Corrupt, "{integrity:?}");
        let bound = linear_bound(n);
        assert!(
            examined <= bound,
            "{examined} bytes examined for a file of {n} (bound {bound})"
        );
    }

    /// Valid frames, each followed by a damaged one that claims the rest of the segment:
    /// the damaged frames are where reading looks first, not where it scans.
    #[test]
    fn damaged_frames_claiming_the_rest_cost_linear_work() {
        let dir = Dir::new("claim");
        let size = 256 << 10;
        let seg = segment(&dir.0, size, 1, 8);
        let mut bytes = std::fs::read(&seg).unwrap();
        uncommit(&mut bytes);
        let n = bytes.len() as u64;
        let payload = [7_u8; 8];
        let mut at = FIRST_FRAME_V2;
        let mut seq = 0;
        while at + 2 * FRAME_HEADER_LEN + payload.len() <= bytes.len() {
            let good = FrameHeader::new(200, seq, &payload);
            bytes[at..at + FRAME_HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&good));
            bytes[at + FRAME_HEADER_LEN..at + FRAME_HEADER_LEN + 8].copy_from_slice(&payload);
            at += FRAME_HEADER_LEN + 8;
            seq += 1;
            let len = (n - at as u64 - 8) as u32;
            bytes[at..at + FRAME_HEADER_LEN].copy_from_slice(&bogus(len, seq));
            at += FRAME_HEADER_LEN;
        }
        std::fs::write(&seg, &bytes).unwrap();
        let (records, integrity, examined) = read(&dir.0);
        assert!(records > 0);
        assert_eq!(integrity.verdict(), Verdict::Corrupt, "{integrity:?}");
        let bound = linear_bound(n);
        assert!(
            examined <= bound,
            "{examined} bytes examined for a file of {n} (bound {bound})"
        );
    }

    /// Every other frame of a segment damaged: every record in between is read, and each
    /// byte is read about once (not once per damaged frame, which a fresh read-ahead per
    /// recovery would cost).
    #[test]
    fn every_other_frame_damaged_is_read_once() {
        let dir = Dir::new("every-other");
        let seg = segment(&dir.0, 2 << 20, 8000, 200);
        let offsets: Vec<u64> = {
            let mut r = Reader::open(&seg).unwrap();
            std::iter::from_fn(|| r.next_entry().unwrap().map(|e| e.offset)).collect()
        };
        assert_eq!(offsets.len(), 8000);
        let mut bytes = std::fs::read(&seg).unwrap();
        for &o in offsets.iter().step_by(2) {
            bytes[o as usize + 100] ^= 1;
        }
        std::fs::write(&seg, &bytes).unwrap();
        let n = bytes.len() as u64;
        let (records, integrity, examined) = read(&dir.0);
        assert!(examined <= linear_bound(n));
        assert_eq!(records, 4000);
        assert_eq!(integrity.corrupt.len(), 4000, "{integrity:?}");
        // Read once, each frame checked at most three times (the damaged ones where they
        // are found and once more after a fresh look, the others by the scan and by the
        // read that returns them), plus the header looks of each recovery.
        assert!(
            examined <= 8 * n,
            "{examined} bytes examined for a file of {n}"
        );
    }

    /// A commit slot in front of a torn tail, for the budget's exemption of repeated looks.
    #[test]
    fn a_torn_tail_looked_at_again_costs_nothing_new() {
        let dir = Dir::new("tail-again");
        let seg = segment(&dir.0, 64 << 10, 4, 100);
        let mut bytes = std::fs::read(&seg).unwrap();
        let slot = CommitSlot::newest(&bytes[COMMIT_BLOCK_AT..FIRST_FRAME_V2]).unwrap();
        let end = slot.end.get() as usize;
        // Unsealed, with a damaged frame after the committed end: a torn tail.
        uncommit(&mut bytes);
        let fresh = CommitSlot::new(1, end as u64, 4, 0);
        bytes[COMMIT_BLOCK_AT + COMMIT_SLOT_LEN..FIRST_FRAME_V2]
            .copy_from_slice(bytemuck::bytes_of(&fresh));
        let payload = [9_u8; 1000];
        let mut h = FrameHeader::new(200, 4, &payload);
        h.crc = U32Le::new(h.crc.get() ^ 1);
        bytes[end..end + FRAME_HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&h));
        bytes[end + FRAME_HEADER_LEN..end + FRAME_HEADER_LEN + payload.len()]
            .copy_from_slice(&payload);
        std::fs::write(&seg, &bytes).unwrap();
        let mut r = Reader::open(&dir.0).unwrap();
        while r.next_entry().unwrap().is_some() {}
        assert_eq!(r.integrity().verdict(), Verdict::TornTail);
        let checked = r.open.as_ref().unwrap().checked;
        for _ in 0..100 {
            assert!(r.next_entry().unwrap().is_none());
        }
        assert_eq!(r.integrity().verdict(), Verdict::TornTail);
        assert_eq!(r.open.as_ref().unwrap().checked, checked);
    }
}
