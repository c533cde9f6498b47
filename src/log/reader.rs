//! Reading a log directory: segments in sequence order, every frame validated, damage
//! reported and skipped.
//!
//! The reader uses ordinary file reads, never a mapping, so a writer appending to (or
//! retention deleting) the files at the same time cannot make it fault: at worst it sees a
//! frame half written, which looks like a torn tail until the writer finishes it.
//!
//! Recovery rules (also in `docs/log-format.md`): frames are read in order from the end of
//! the segment header. A zero length word ends the written part of the segment. A frame
//! whose length runs past the file, whose in-progress bit is set, whose CRC does not match,
//! whose sequence number is not the next one, or whose payload does not decode is damage.
//! After damage the reader scans forward at [`FRAME_ALIGN`] steps for a valid frame with a
//! higher sequence number: if it finds one, the bytes in between are a corrupt range and
//! reading resumes there; if not, the damage is the segment's torn tail.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{
    parse_segment_file_name, FrameHeader, SegmentHeader, FORMAT_VERSION, FRAME_ALIGN,
    FRAME_HEADER_LEN, MAGIC, MAX_PAYLOAD, SEGMENT_HEADER_LEN,
};
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

/// The overall state of a log, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// Every frame valid.
    Clean,
    /// Only torn tails: the end of a segment that a writer did not finish (expected after a
    /// crash; everything before it is intact).
    TornTail,
    /// At least one corrupt range: valid records follow damaged bytes.
    Corrupt,
}

/// What the reader has found so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Integrity {
    /// Segment files visited.
    pub segments: u64,
    /// Valid records returned.
    pub records: u64,
    /// Torn tails, at most one per segment.
    pub torn_tails: Vec<Damage>,
    /// Corrupt ranges, with valid records after them.
    pub corrupt: Vec<Damage>,
}

impl Integrity {
    /// Clean, torn tail or corrupt.
    pub fn health(&self) -> Health {
        if !self.corrupt.is_empty() {
            Health::Corrupt
        } else if !self.torn_tails.is_empty() {
            Health::TornTail
        } else {
            Health::Clean
        }
    }

    /// No damage found.
    pub fn is_clean(&self) -> bool {
        self.health() == Health::Clean
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
/// # Examples
/// See the [module documentation](super).
#[derive(Debug)]
pub struct Reader {
    root: PathBuf,
    /// Whether `root` is a directory (new segments are looked for) or a single segment file.
    is_dir: bool,
    segments: Vec<SegmentInfo>,
    /// Index in `segments` of the segment being read.
    cur: usize,
    /// State inside the current segment (`None`: not opened yet).
    open: Option<OpenSegment>,
    integrity: Integrity,
    /// Whether window records get their histogram decoded.
    histograms: bool,
}

#[derive(Debug)]
struct OpenSegment {
    file: File,
    /// Offset of the next frame.
    pos: u64,
    /// Sequence number the next frame must carry (after damage: at least this).
    next_seq: u64,
    /// Whether `next_seq` is a lower bound only (after damage).
    resync: bool,
    /// Operation names from this segment's dictionary records.
    names: HashMap<u32, Arc<str>>,
    /// File length when last looked at.
    len: u64,
    /// Cached file bytes starting at `chunk_at`. Complete frames never change, so cached
    /// bytes are only re-read when they end the data or look damaged (a live writer may
    /// have finished them since).
    chunk: Vec<u8>,
    chunk_at: u64,
}

/// Bytes read ahead per file read.
const CHUNK: usize = 1 << 20;

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
        // Bounded by the file's length, never by a length field alone.
        let want = (need.max(CHUNK) as u64).min(self.len - off) as usize;
        self.chunk.clear();
        self.chunk.resize(want, 0);
        let n =
            read_at(&self.file, &mut self.chunk, off).map_err(|e| LogError::io(path, "read", e))?;
        self.chunk.truncate(n);
        self.chunk_at = off;
        Ok(n >= need)
    }

    /// Cached bytes `[off, off + len)`; call after a successful `fill`.
    fn bytes(&self, off: u64, len: usize) -> &[u8] {
        let a = (off - self.chunk_at) as usize;
        &self.chunk[a..a + len]
    }

    /// Forgets the cache and re-reads the file length.
    fn invalidate(&mut self, path: &Path) -> Result<(), LogError> {
        self.chunk.clear();
        self.chunk_at = 0;
        self.len = self
            .file
            .metadata()
            .map_err(|e| LogError::io(path, "stat", e))?
            .len();
        Ok(())
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
    /// Fewer bytes than a header, or all zero: a segment its writer never finished creating.
    Unwritten,
    /// Not a segment header (bad magic or CRC).
    Bad(String),
}

fn check_header(bytes: &[u8], path: &Path) -> Result<HeaderCheck, LogError> {
    if bytes.len() < SEGMENT_HEADER_LEN || bytes.iter().all(|&b| b == 0) {
        return Ok(HeaderCheck::Unwritten);
    }
    let h: SegmentHeader = bytemuck::pod_read_unaligned(&bytes[..SEGMENT_HEADER_LEN]);
    if h.magic != MAGIC {
        return Ok(HeaderCheck::Bad("bad magic".into()));
    }
    if h.compute_crc() != h.crc.get() {
        return Ok(HeaderCheck::Bad("segment header CRC mismatch".into()));
    }
    if h.version.get() > FORMAT_VERSION {
        return Err(LogError::NewerVersion {
            path: path.to_owned(),
            found: h.version.get(),
            supported: FORMAT_VERSION,
        });
    }
    if h.header_len.get() as usize != SEGMENT_HEADER_LEN {
        return Ok(HeaderCheck::Bad("unexpected header length".into()));
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
}

impl Reader {
    /// Opens a log directory (or a single segment file).
    ///
    /// Reads nothing but the directory listing and the first segment's header; records are
    /// read as the iterator is advanced.
    ///
    /// # Errors
    /// [`LogError::NotFound`] for a missing path, [`LogError::NotALog`] for a directory
    /// without segment files or a file without the segment magic, [`LogError::NewerVersion`]
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
            cur: 0,
            open: None,
            integrity: Integrity::default(),
            histograms: true,
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
            let file =
                File::open(&reader.root).map_err(|e| LogError::io(&reader.root, "open", e))?;
            let mut head = [0_u8; SEGMENT_HEADER_LEN];
            let n =
                read_at(&file, &mut head, 0).map_err(|e| LogError::io(&reader.root, "read", e))?;
            match check_header(&head[..n], &reader.root)? {
                HeaderCheck::Valid(h) => reader.segments.push(SegmentInfo {
                    path: reader.root.clone(),
                    seq: h.segment_seq.get(),
                    created_unix_ns: h.created_unix_ns.get(),
                    pid: h.pid.get(),
                    host: h.host(),
                }),
                HeaderCheck::Unwritten | HeaderCheck::Bad(_) => {
                    return Err(LogError::NotALog {
                        path: reader.root,
                        reason: "no segment header".into(),
                    })
                }
            }
        }
        // Fail early on a newer version rather than after reading older segments.
        if reader.is_dir {
            reader.open_current()?;
        }
        Ok(reader)
    }

    /// Reads a whole log and returns its records and integrity report.
    ///
    /// # Errors
    /// As [`Reader::open`], and I/O errors while reading.
    pub fn read_all(path: impl AsRef<Path>) -> Result<(Vec<Record>, Integrity), LogError> {
        let mut r = Self::open(path)?;
        let records = r.by_ref().collect::<Result<Vec<_>, _>>()?;
        Ok((records, r.integrity.clone()))
    }

    /// Reads a whole log and returns its integrity report only.
    ///
    /// # Errors
    /// As [`Reader::open`], and I/O errors while reading.
    pub fn check(path: impl AsRef<Path>) -> Result<Integrity, LogError> {
        let mut r = Self::open(path)?;
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

    /// What has been found so far (complete once the iterator has returned `None`).
    pub fn integrity(&self) -> &Integrity {
        &self.integrity
    }

    /// The segments known so far, in order. Header fields are filled in once a segment has
    /// been opened.
    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
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
        let last = self.segments.last().map(|s| s.seq);
        for (seq, path) in list_segments(&self.root)? {
            if last.is_none_or(|l| seq > l) {
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
    /// segment of a newer format (reading stops there).
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
                    }
                    if self.cur + 1 >= self.segments.len() {
                        return Ok(None);
                    }
                    self.cur += 1;
                    self.open = None;
                }
            }
        }
    }

    /// Opens `segments[cur]` (skipping vanished, unwritten and foreign files); false when
    /// there is none left.
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
            let file = match File::open(&path) {
                Ok(f) => f,
                // Deleted by retention since the listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.segments.remove(self.cur);
                    continue;
                }
                Err(e) => return Err(LogError::io(&path, "open", e)),
            };
            let mut head = [0_u8; SEGMENT_HEADER_LEN];
            let n = read_at(&file, &mut head, 0).map_err(|e| LogError::io(&path, "read", e))?;
            let last = self.cur + 1 >= self.segments.len();
            let checked = match check_header(&head[..n], &path) {
                Ok(c) => c,
                Err(e) => {
                    // Reported once; the iteration goes on past it.
                    self.cur += 1;
                    return Err(e);
                }
            };
            match checked {
                HeaderCheck::Valid(h) => {
                    let info = &mut self.segments[self.cur];
                    info.created_unix_ns = h.created_unix_ns.get();
                    info.pid = h.pid.get();
                    info.host = h.host();
                    self.integrity.segments += 1;
                    let len = file
                        .metadata()
                        .map_err(|e| LogError::io(&path, "stat", e))?
                        .len();
                    self.open = Some(OpenSegment {
                        file,
                        pos: SEGMENT_HEADER_LEN as u64,
                        next_seq: 0,
                        resync: false,
                        names: HashMap::new(),
                        len,
                        chunk: Vec::new(),
                        chunk_at: 0,
                    });
                    return Ok(true);
                }
                HeaderCheck::Unwritten if last => {
                    // Its writer may be creating it right now: look again later.
                    return Ok(false);
                }
                HeaderCheck::Unwritten => {
                    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                    self.integrity.segments += 1;
                    self.integrity.torn_tails.push(Damage {
                        segment: path,
                        offset: 0,
                        len,
                        reason: "segment header never written".into(),
                    });
                }
                HeaderCheck::Bad(reason) => {
                    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                    self.integrity.segments += 1;
                    self.integrity.corrupt.push(Damage {
                        segment: path,
                        offset: 0,
                        len,
                        reason,
                    });
                }
            }
            self.cur += 1;
        }
    }

    /// Classifies the frame at the current position (its payload is then in the cache).
    fn look(&mut self) -> Result<Step, LogError> {
        let path = &self.segments[self.cur].path;
        let Some(open) = self.open.as_mut() else {
            return Ok(Step::End);
        };
        let pos = open.pos;
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
            let mut step = self.look()?;
            if !matches!(step, Step::Frame(_)) {
                // Before concluding anything, look at the file as it is now.
                if let Some(open) = self.open.as_mut() {
                    open.invalidate(&path)?;
                }
                step = self.look()?;
            }
            let seg_len = self.open.as_ref().map_or(0, |o| o.len);
            let reason = match step {
                Step::End => {
                    self.clear_torn(&path);
                    return Ok(None);
                }
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
                            self.clear_torn(&path);
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
            // Damage at `pos`: find the next valid frame.
            let Some(open) = self.open.as_mut() else {
                return Ok(None);
            };
            let start = open.pos;
            match self.scan(start, seg_len)? {
                Some((at, seq)) => {
                    self.clear_torn(&path);
                    self.integrity.corrupt.push(Damage {
                        segment: path,
                        offset: start,
                        len: at - start,
                        reason,
                    });
                    if let Some(open) = self.open.as_mut() {
                        open.pos = at;
                        open.next_seq = seq;
                        open.resync = true;
                    }
                }
                None => {
                    self.clear_torn(&path);
                    self.integrity.torn_tails.push(Damage {
                        segment: path,
                        offset: start,
                        len: seg_len - start,
                        reason,
                    });
                    return Ok(None);
                }
            }
        }
    }

    /// Forgets a torn tail reported earlier for `path` (a live writer finished the frame).
    fn clear_torn(&mut self, path: &Path) {
        self.integrity.torn_tails.retain(|d| d.segment != path);
    }

    /// Finds the first valid frame after `start` (at [`FRAME_ALIGN`] steps) whose sequence
    /// number is at least the expected one. Reads the rest of the segment, which is at most
    /// what the file holds.
    fn scan(&mut self, start: u64, seg_len: u64) -> Result<Option<(u64, u64)>, LogError> {
        let Some(open) = self.open.as_ref() else {
            return Ok(None);
        };
        let path = &self.segments[self.cur].path;
        let from = start + FRAME_ALIGN as u64;
        if from >= seg_len {
            return Ok(None);
        }
        let rest_len = usize::try_from(seg_len - from).unwrap_or(usize::MAX);
        let mut rest = vec![0_u8; rest_len];
        let n = read_at(&open.file, &mut rest, from).map_err(|e| LogError::io(path, "read", e))?;
        rest.truncate(n);
        let mut off = 0;
        while off + FRAME_HEADER_LEN <= rest.len() {
            let h: FrameHeader = bytemuck::pod_read_unaligned(&rest[off..off + FRAME_HEADER_LEN]);
            let plen = h.payload_len();
            let fits = FRAME_HEADER_LEN as u64 + u64::from(plen) <= (rest.len() - off) as u64;
            if h.len_valid()
                && !h.in_progress()
                && plen <= MAX_PAYLOAD
                && fits
                && h.seq.get() >= open.next_seq
            {
                let p = &rest[off + FRAME_HEADER_LEN..off + FRAME_HEADER_LEN + plen as usize];
                if h.compute_crc(p) == h.crc.get() && Record::decode(h.kind, p).is_ok() {
                    return Ok(Some((from + off as u64, h.seq.get())));
                }
            }
            off += FRAME_ALIGN;
        }
        Ok(None)
    }
}

impl Iterator for Reader {
    type Item = Result<Record, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().transpose().map(|r| r.map(|e| e.record))
    }
}
