//! Appending records to segment files, with rotation, retention, a durability policy and a
//! lock that keeps a directory to one writer.
//!
//! A segment is created under a temporary name at its full size (blocks reserved with
//! `fallocate`, or zeros written where that is not supported), given its header, synced,
//! renamed into place and the directory synced: a reader never sees a segment without its
//! header. It is then mapped (or, on copy-on-write filesystems where reserved blocks do not
//! stop a later write from needing new ones, written with `pwrite` so that a full disk is an
//! error and never a `SIGBUS`), and filled frame by frame. A frame is written in three
//! steps: its header with the in-progress bit set, the payload, then — after a release
//! fence — the length word without the bit. After each append the commit block records how
//! far the segment is complete; closing the segment seals it. A process killed at any point
//! leaves either nothing (a zero length word), an in-progress frame past the committed end
//! (a torn tail) or a complete frame.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memmap2::MmapMut;

use super::format::{
    segment_file_name, CommitSlot, FrameHeader, SegmentHeader, U32Le, FIRST_FRAME_V2,
    FRAME_HEADER_LEN, IN_PROGRESS, MAX_PAYLOAD, SEALED, SEGMENT_HEADER_LEN,
};
use super::reader::list_segments;
use super::record::{
    encode_dictionary, encode_event, encode_window, window_fields, EncodeError, EngineEvent,
    Record, RecordKind,
};
use super::LogError;
use crate::hist::Encoder;
use crate::report::WindowReport;

pub use crate::config::Durability;
pub use crate::limits::{DEFAULT_SEGMENT_SIZE, MIN_SEGMENT_SIZE};

/// Name of the lock file in a log directory; it holds the writer's process id.
pub const LOCK_FILE: &str = "writer.lock";

/// How the writer puts bytes into segment files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriteMode {
    /// A memory mapping, except on copy-on-write filesystems (btrfs, ZFS, bcachefs, XFS,
    /// whose reflinks make it copy-on-write), where reserving blocks does not stop a later
    /// store from needing new ones and a full disk would raise `SIGBUS`: `pwrite` there.
    #[default]
    Auto,
    /// Always a memory mapping.
    Map,
    /// Always `pwrite`.
    Pwrite,
}

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
    /// When written records are synced to disk.
    pub durability: Durability,
    /// Mapping or `pwrite`.
    pub write_mode: WriteMode,
}

impl LogConfig {
    /// A configuration for `dir` with the default segment size, no retention limits, OS
    /// write-back and the automatic write mode.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_size: DEFAULT_SEGMENT_SIZE,
            max_age: None,
            max_bytes: None,
            durability: Durability::default(),
            write_mode: WriteMode::default(),
        }
    }
}

/// How bytes reach the segment file.
enum Io {
    Map(MmapMut),
    Pwrite,
}

/// The segment being written.
struct Segment {
    path: PathBuf,
    seq: u64,
    /// Kept open for the mapping's lifetime; written directly in `Io::Pwrite` mode.
    file: File,
    io: Io,
    /// File size.
    size: u64,
    /// Offset of the next frame.
    pos: usize,
    /// Sequence number of the next frame.
    next_seq: u64,
    /// Generation of the last commit slot written.
    generation: u64,
    /// Offset from which bytes have not been synced yet.
    unsynced: usize,
    /// Whether the segment was sealed (nothing more is written to it).
    sealed: bool,
}

impl Segment {
    /// Writes `bytes` at `at` (within the file).
    fn put(&mut self, at: usize, bytes: &[u8]) -> Result<(), LogError> {
        match &mut self.io {
            Io::Map(map) => {
                map[at..at + bytes.len()].copy_from_slice(bytes);
                Ok(())
            }
            Io::Pwrite => write_all_at(&self.file, bytes, at as u64)
                .map_err(|e| LogError::io(&self.path, "write", e)),
        }
    }

    /// Records in the commit block how far the segment is complete (and whether sealed).
    fn commit(&mut self, flags: u32) -> Result<(), LogError> {
        self.generation += 1;
        let slot = CommitSlot::new(self.generation, self.pos as u64, self.next_seq, flags);
        // The frames land before the slot that commits them.
        fence(Ordering::Release);
        self.put(
            CommitSlot::offset(self.generation),
            bytemuck::bytes_of(&slot),
        )
    }

    /// Waits until the bytes written since the last sync, then the commit block, are on disk.
    fn sync(&mut self) -> Result<(), LogError> {
        let path = &self.path;
        match &self.io {
            Io::Map(map) => {
                if self.pos > self.unsynced {
                    map.flush_range(self.unsynced, self.pos - self.unsynced)
                        .map_err(|e| LogError::io(path, "msync", e))?;
                }
                map.flush_range(0, FIRST_FRAME_V2)
                    .map_err(|e| LogError::io(path, "msync", e))?;
            }
            Io::Pwrite => self
                .file
                .sync_data()
                .map_err(|e| LogError::io(path, "fdatasync", e))?,
        }
        self.unsynced = self.pos;
        Ok(())
    }

    /// Seals the segment and syncs all of it.
    fn seal(&mut self) -> Result<(), LogError> {
        if self.sealed {
            return Ok(());
        }
        self.commit(SEALED)?;
        self.sealed = true;
        self.unsynced = FIRST_FRAME_V2.min(self.unsynced);
        self.sync()
    }
}

/// Writes all of `buf` at `offset`.
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        let mut done = 0;
        while done < buf.len() {
            let n = std::os::windows::fs::FileExt::seek_write(
                file,
                &buf[done..],
                offset + done as u64,
            )?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            done += n;
        }
        Ok(())
    }
}

/// The advisory lock that keeps a log directory to one writer, held while it is alive.
struct DirLock {
    /// Closing it releases the lock (never unlocked explicitly: a forked child shares the
    /// lock with its parent, and an explicit unlock would release it for both).
    file: File,
    /// The process that took it.
    pid: u32,
}

impl Drop for DirLock {
    /// Empties the lock file before the lock goes, so that it names no process once no
    /// writer holds it (`log::writer_state` reads the process id of a lock it cannot see).
    /// A forked child's copy leaves it alone: the lock is still its parent's.
    fn drop(&mut self) {
        if std::process::id() == self.pid {
            let _ = self.file.set_len(0);
        }
    }
}

impl DirLock {
    /// Takes the lock of `dir` or names the process holding it.
    fn acquire(dir: &Path) -> Result<DirLock, LogError> {
        let path = dir.join(LOCK_FILE);
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o640);
        let file = opts
            .open(&path)
            .map_err(|e| LogError::io(&path, "open lock file", e))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: `flock` on a descriptor this function owns; no memory is passed.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if r != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    let mut text = String::new();
                    let _ = io::Read::read_to_string(&mut &file, &mut text);
                    return Err(LogError::Locked {
                        path,
                        pid: text.trim().parse().ok(),
                    });
                }
                return Err(LogError::io(&path, "lock", e));
            }
        }
        let pid = std::process::id();
        file.set_len(0)
            .and_then(|()| write_all_at(&file, format!("{pid}\n").as_bytes(), 0))
            .map_err(|e| LogError::io(&path, "write lock file", e))?;
        Ok(DirLock { file, pid })
    }
}

/// Fails with [`LogError::Locked`] if a writer (of this process or another) holds the lock
/// of `dir`. A directory that does not exist yet, or whose lock file cannot be opened, is
/// not reported here (opening the writer reports it).
pub(crate) fn check_dir_lock(dir: &Path) -> Result<(), LogError> {
    if !dir.is_dir() || !dir.join(LOCK_FILE).is_file() {
        return Ok(());
    }
    match DirLock::acquire(dir) {
        Err(e @ LogError::Locked { .. }) => Err(e),
        _ => Ok(()),
    }
}

/// Appends records to a log directory.
///
/// The engine runs one on its aggregator thread (see
/// [`Builder::log_dir`](crate::Builder::log_dir)); it is public for tools and tests that
/// write logs themselves. One writer per directory: [`Writer::open`] takes an advisory lock
/// (`flock` on [`LOCK_FILE`]) held until the writer is dropped.
///
/// After a `fork()`, the child's copy of a writer refuses to write ([`LogError::Forked`]):
/// the parent's segment is mapped shared, so a write by the child would land in it.
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
    last_sync: Instant,
    /// The process that opened the writer.
    pid: u32,
    _lock: DirLock,
}

impl core::fmt::Debug for Writer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Writer")
            .field("config", &self.config)
            .field("segment", &self.seg.as_ref().map(|s| &s.path))
            .field("pid", &self.pid)
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
    /// Opens (creating if needed) the log directory, takes its lock, and starts a new
    /// segment after the existing ones. Applies retention once.
    ///
    /// # Errors
    /// [`LogError::Locked`] when another writer holds the directory, [`LogError::Io`] when
    /// the directory or the segment cannot be created, sized or mapped.
    pub fn open(config: LogConfig) -> Result<Writer, LogError> {
        create_dir(&config.dir)?;
        let lock = DirLock::acquire(&config.dir)?;
        remove_stale_temporaries(&config.dir);
        let next_segment = match list_segments(&config.dir)?.last() {
            None => 0,
            Some((seq, _)) => seq.checked_add(1).ok_or_else(|| exhausted(&config.dir))?,
        };
        let mut w = Writer {
            config,
            seg: None,
            next_segment,
            known: Vec::new(),
            buf: Vec::with_capacity(4096),
            hist: Encoder::new(),
            host: host_name(),
            last_retention: SystemTime::now(),
            last_sync: Instant::now(),
            pid: std::process::id(),
            _lock: lock,
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

    /// Whether the current segment is written through a mapping (`false`: `pwrite`).
    pub fn is_mapped(&self) -> bool {
        self.seg
            .as_ref()
            .is_some_and(|s| matches!(s.io, Io::Map(_)))
    }

    /// Fails in a forked child: the parent's segment is not the child's to write.
    fn check_owner(&self) -> Result<(), LogError> {
        let now = std::process::id();
        if now == self.pid {
            return Ok(());
        }
        Err(LogError::Forked {
            path: self.config.dir.clone(),
            parent: self.pid,
            child: now,
        })
    }

    /// Appends one record (a dictionary, event or window record, or raw unknown kinds).
    ///
    /// Window records are written as they are: the caller must have written the dictionary
    /// entries their operation ids need in the same segment, or the reader names them
    /// `op<ID>`. [`Writer::append_window`] does that itself.
    ///
    /// # Errors
    /// [`LogError::Encode`] for a record too large to encode, [`LogError::Io`] when a new
    /// segment is needed and cannot be created or a write or sync fails,
    /// [`LogError::Forked`] in a forked child.
    pub fn append(&mut self, record: &Record) -> Result<(), LogError> {
        self.check_owner()?;
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
        self.committed()
    }

    /// Appends an engine event.
    ///
    /// # Errors
    /// As [`Writer::append`].
    pub fn append_event(&mut self, event: &EngineEvent) -> Result<(), LogError> {
        self.check_owner()?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let r = encode_event(event, &mut buf)
            .map_err(LogError::from)
            .and_then(|()| self.write_frame(RecordKind::Event as u8, &buf).map(|_| ()));
        self.buf = buf;
        r?;
        self.committed()
    }

    /// Appends one window record per operation of `report`, each preceded in its segment by
    /// the dictionary entry of its operation, commits them and syncs as the durability
    /// policy says.
    ///
    /// # Errors
    /// As [`Writer::append`]. Records written before the error stay written.
    pub fn append_window(&mut self, report: &WindowReport) -> Result<(), LogError> {
        self.check_owner()?;
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.append_window_inner(report, &mut buf);
        self.buf = buf;
        r?;
        self.committed()?;
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
            .is_some_and(|s| s.pos as u64 + len <= s.size)
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
                io::Error::other("no open segment"),
            ));
        };
        // Appending to a sealed segment (after a shutdown's seal) reopens it: the next
        // commit clears the seal.
        seg.sealed = false;
        let at = seg.pos;
        let header = FrameHeader::new(kind, seg.next_seq, payload);
        let mut marked = header;
        marked.len = U32Le::new(header.unpadded_len() | IN_PROGRESS);
        let h = FRAME_HEADER_LEN;
        match &mut seg.io {
            Io::Map(map) => {
                // `fits` checked that `at + flen <= map.len()`.
                let frame = &mut map[at..at + flen as usize];
                frame[..h].copy_from_slice(bytemuck::bytes_of(&marked));
                // The in-progress mark lands before the payload.
                fence(Ordering::Release);
                frame[h..h + payload.len()].copy_from_slice(payload);
                // Padding bytes are zero already (fresh segment, never reused).
                // Everything above lands before the length word that completes the frame.
                fence(Ordering::Release);
                frame[..4].copy_from_slice(bytemuck::bytes_of(&header.len));
            }
            Io::Pwrite => {
                let path = &seg.path;
                let io = |e| LogError::io(path, "write", e);
                // Header (marked) and payload in one write, then the length word.
                let mut whole = Vec::with_capacity(h + payload.len());
                whole.extend_from_slice(bytemuck::bytes_of(&marked));
                whole.extend_from_slice(payload);
                write_all_at(&seg.file, &whole, at as u64).map_err(io)?;
                write_all_at(&seg.file, bytemuck::bytes_of(&header.len), at as u64).map_err(io)?;
            }
        }
        seg.pos += flen as usize;
        seg.next_seq += 1;
        Ok(at)
    }

    /// Commits what was appended and syncs as the durability policy says.
    fn committed(&mut self) -> Result<(), LogError> {
        let Some(seg) = self.seg.as_mut() else {
            return Ok(());
        };
        seg.commit(0)?;
        let due = match self.config.durability {
            Durability::EachWindow => true,
            Durability::Every(d) => self.last_sync.elapsed() >= d,
            _ => false,
        };
        if due {
            seg.sync()?;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Writes everything back to the file and waits for it (`msync(MS_SYNC)` or
    /// `fdatasync`), whatever the durability policy.
    ///
    /// # Errors
    /// [`LogError::Io`] when the sync fails, [`LogError::Forked`] in a forked child.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.check_owner()?;
        if let Some(seg) = self.seg.as_mut() {
            seg.sync()?;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Seals the current segment (its writer is done with it) and syncs it. A later append
    /// reopens it (its commit clears the seal).
    ///
    /// # Errors
    /// [`LogError::Io`] when the write or the sync fails, [`LogError::Forked`] in a forked
    /// child.
    pub fn seal(&mut self) -> Result<(), LogError> {
        self.check_owner()?;
        match self.seg.as_mut() {
            Some(seg) => seg.seal(),
            None => Ok(()),
        }
    }

    /// Seals the current segment and starts the next, large enough for a frame of
    /// `min_frame` bytes; then applies retention.
    fn rotate(&mut self, min_frame: u64) -> Result<(), LogError> {
        if let Some(seg) = self.seg.as_mut() {
            seg.seal()?;
        }
        self.seg = None;
        self.known.clear();
        let seq = self.next_segment;
        let next = seq
            .checked_add(1)
            .ok_or_else(|| exhausted(&self.config.dir))?;
        let size = self
            .config
            .segment_size
            .max(MIN_SEGMENT_SIZE)
            .max(FIRST_FRAME_V2 as u64 + min_frame);
        let seg = create_segment(&self.config, seq, size, &self.host)?;
        // Only a segment that exists takes a number: a failed creation leaves no gap.
        self.next_segment = next;
        self.seg = Some(seg);
        self.apply_retention(SystemTime::now())?;
        Ok(())
    }

    /// Deletes whole segments, oldest first, that are past the configured age or make the
    /// log larger than the configured size. Only segments older than the one being written
    /// are candidates: those this writer sealed, and those of earlier writers, which cannot
    /// be live since this writer holds the directory's lock.
    ///
    /// A segment's age is counted from the creation of the segment after it (when it
    /// stopped receiving records).
    ///
    /// # Errors
    /// [`LogError::Io`] when the directory cannot be listed or a segment cannot be deleted.
    pub fn apply_retention(&mut self, now: SystemTime) -> Result<(), LogError> {
        self.check_owner()?;
        self.last_retention = now;
        let (max_age, max_bytes) = (self.config.max_age, self.config.max_bytes);
        if max_age.is_none() && max_bytes.is_none() {
            return Ok(());
        }
        let current = self.seg.as_ref().map_or(self.next_segment, |s| s.seq);
        // Regular files only: a directory or FIFO named like a segment is not deleted.
        let segs: Vec<(u64, PathBuf)> = list_segments(&self.config.dir)?
            .into_iter()
            .filter(|(_, p)| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
            .collect();
        let mut sizes = Vec::with_capacity(segs.len());
        let mut total = 0_u64;
        for (_, p) in &segs {
            let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            sizes.push(len);
            total += len;
        }
        let cutoff = max_age.and_then(|a| now.checked_sub(a)).map(unix_ns);
        for i in 0..segs.len() {
            let (seq, path) = &segs[i];
            if *seq >= current {
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
                Err(e) if e.kind() == io::ErrorKind::NotFound => total -= sizes[i],
                Err(e) => return Err(LogError::io(path, "delete segment", e)),
            }
        }
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Never in a forked child: the segment is the parent's.
        if self.check_owner().is_ok() {
            if let Some(seg) = self.seg.as_mut() {
                // Best effort; errors were reported by the last append.
                let _ = seg.seal();
            }
        }
    }
}

fn exhausted(dir: &Path) -> LogError {
    LogError::io(
        dir,
        "create segment",
        io::Error::other("segment sequence numbers exhausted (ffffffffffffffff reached)"),
    )
}

/// Removes segment files a writer left under their temporary name (killed while creating
/// them). Called with the directory's lock held.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name.strip_suffix(TEMP_SUFFIX) {
            if super::format::parse_segment_file_name(base).is_some() {
                let _ = std::fs::remove_file(ent.path());
            }
        }
    }
}

/// Suffix of a segment file while it is being created.
const TEMP_SUFFIX: &str = ".tmp";

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

/// Whether the filesystem holding `file` is copy-on-write (or may be): there, blocks
/// reserved in advance do not stop a later overwrite from needing new ones.
#[cfg(target_os = "linux")]
pub(crate) fn is_copy_on_write(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    const BTRFS: i64 = 0x9123_683e;
    const ZFS: i64 = 0x2fc1_2fc1;
    const XFS: i64 = 0x5846_5342;
    const BCACHEFS: i64 = 0xca45_1a4e;
    let mut st = core::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `st` is a valid, writable `statfs` buffer; the descriptor is open.
    let r = unsafe { libc::fstatfs(file.as_raw_fd(), st.as_mut_ptr()) };
    if r != 0 {
        return false;
    }
    // SAFETY: `fstatfs` succeeded, so it filled the buffer (which started zeroed anyway).
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let t = st.f_type as i64;
    [BTRFS, ZFS, XFS, BCACHEFS].contains(&t)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn is_copy_on_write(_file: &File) -> bool {
    false
}

/// Reserves the blocks of `file` up to `size` so that a full disk fails here: `fallocate`
/// where the filesystem supports it, zeros written through the file otherwise.
fn preallocate(file: &mut File, size: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let len = libc::off_t::try_from(size).map_err(|_| io::Error::other("segment too large"))?;
        // SAFETY: `fallocate` on a descriptor this function borrows; no memory is passed.
        let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(e);
        }
    }
    file.set_len(size)?;
    let zeros = vec![0_u8; 64 << 10];
    let mut left = size;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        io::Write::write_all(file, &zeros[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Syncs the directory entry of a new file.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Creates a segment under a temporary name at its full size with its header, syncs it,
/// renames it into place and syncs the directory; then maps it (or not, see [`WriteMode`]).
fn create_segment(
    config: &LogConfig,
    seq: u64,
    size: u64,
    host: &str,
) -> Result<Segment, LogError> {
    let name = segment_file_name(seq);
    let path = config.dir.join(&name);
    let tmp = config.dir.join(format!("{name}{TEMP_SUFFIX}"));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o640);
    let mut file = opts
        .open(&tmp)
        .map_err(|e| LogError::io(&tmp, "create segment", e))?;
    let fail = |op, e| {
        let _ = std::fs::remove_file(&tmp);
        LogError::io(&path, op, e)
    };
    // Make the blocks real, so a full disk fails here and not as SIGBUS in the mapping.
    preallocate(&mut file, size).map_err(|e| fail("preallocate", e))?;
    let header = SegmentHeader::new(seq, unix_ns(SystemTime::now()), std::process::id(), host);
    write_all_at(&file, bytemuck::bytes_of(&header), 0).map_err(|e| fail("write header", e))?;
    file.sync_data().map_err(|e| fail("fdatasync", e))?;
    if path.exists() {
        return Err(fail(
            "create segment",
            io::Error::from(io::ErrorKind::AlreadyExists),
        ));
    }
    std::fs::rename(&tmp, &path).map_err(|e| fail("rename", e))?;
    sync_dir(&config.dir).map_err(|e| LogError::io(&config.dir, "fsync directory", e))?;
    let mapped = match config.write_mode {
        WriteMode::Map => true,
        WriteMode::Pwrite => false,
        _ => !is_copy_on_write(&file),
    };
    let io = if mapped {
        // SAFETY: the mapping is sound as long as no one else truncates or writes the file
        // while it is mapped. This process created the file just now (`create_new`, mode
        // 0o640 in a 0o750 directory it holds the lock of), never shrinks it while the
        // mapping lives, and writes it only through this mapping; readers only read it.
        // Another process with write access truncating it would break this (as for every
        // memory-mapped file); see docs/log-format.md.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| LogError::io(&path, "mmap", e))?;
        Io::Map(map)
    } else {
        Io::Pwrite
    };
    Ok(Segment {
        path,
        seq,
        file,
        io,
        size,
        pos: FIRST_FRAME_V2,
        next_seq: 0,
        generation: 0,
        unsynced: FIRST_FRAME_V2,
        sealed: false,
    })
}
