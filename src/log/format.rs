//! Fixed on-disk structures of the window log: the segment header and the frame header.
//!
//! Both are `bytemuck::Pod` structs made only of byte arrays, so they have alignment 1, no
//! padding, and the same little-endian layout on every platform. `docs/log-format.md`
//! specifies them byte by byte.

use bytemuck::{Pod, Zeroable};

/// First eight bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"RINGMLOG";

/// The format version this crate writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Size of [`SegmentHeader`] in bytes; the first frame starts here.
pub const SEGMENT_HEADER_LEN: usize = 128;

/// Size of [`FrameHeader`] in bytes.
pub const FRAME_HEADER_LEN: usize = 24;

/// Frames start at multiples of this many bytes from the start of the segment.
pub const FRAME_ALIGN: usize = 8;

/// Bit of the frame length word set while the frame is being written.
pub const IN_PROGRESS: u32 = 1 << 31;

/// Largest payload a frame may carry.
pub const MAX_PAYLOAD: u32 = (1 << 30) - FRAME_HEADER_LEN as u32;

/// Bytes reserved for the host name in the segment header.
pub const HOST_LEN: usize = 64;

/// Segment file names: `PREFIX`, sixteen hex digits of the segment sequence, `SUFFIX`.
pub const SEGMENT_PREFIX: &str = "seg-";
/// See [`SEGMENT_PREFIX`].
pub const SEGMENT_SUFFIX: &str = ".rml";

/// A little-endian `u32` with alignment 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(transparent)]
pub struct U32Le([u8; 4]);

impl U32Le {
    /// Stores `v`.
    pub const fn new(v: u32) -> Self {
        Self(v.to_le_bytes())
    }
    /// The stored value.
    pub const fn get(self) -> u32 {
        u32::from_le_bytes(self.0)
    }
}

/// A little-endian `u64` with alignment 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(transparent)]
pub struct U64Le([u8; 8]);

impl U64Le {
    /// Stores `v`.
    pub const fn new(v: u64) -> Self {
        Self(v.to_le_bytes())
    }
    /// The stored value.
    pub const fn get(self) -> u64 {
        u64::from_le_bytes(self.0)
    }
}

/// The fixed header at offset 0 of every segment file (128 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct SegmentHeader {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`FORMAT_VERSION`] of the writer.
    pub version: U32Le,
    /// [`SEGMENT_HEADER_LEN`]: where the first frame starts.
    pub header_len: U32Le,
    /// Segment sequence number; also in the file name. Increases by one per new segment.
    pub segment_seq: U64Le,
    /// Creation time, nanoseconds since the Unix epoch (wall clock).
    pub created_unix_ns: U64Le,
    /// Process id of the writer.
    pub pid: U32Le,
    /// Bytes of `host` in use.
    pub host_len: U32Le,
    /// Host name, UTF-8, zero-padded (cut at [`HOST_LEN`] bytes).
    pub host: [u8; HOST_LEN],
    /// Zero.
    pub reserved: [u8; 20],
    /// CRC32C of the 124 bytes before this field.
    pub crc: U32Le,
}

const _: () = assert!(core::mem::size_of::<SegmentHeader>() == SEGMENT_HEADER_LEN);

impl SegmentHeader {
    /// A header for a new segment, with its CRC.
    pub fn new(segment_seq: u64, created_unix_ns: u64, pid: u32, host: &str) -> Self {
        let mut h = Self::zeroed();
        h.magic = MAGIC;
        h.version = U32Le::new(FORMAT_VERSION);
        h.header_len = U32Le::new(SEGMENT_HEADER_LEN as u32);
        h.segment_seq = U64Le::new(segment_seq);
        h.created_unix_ns = U64Le::new(created_unix_ns);
        h.pid = U32Le::new(pid);
        // Cut at a character boundary so the stored name stays UTF-8.
        let mut n = host.len().min(HOST_LEN);
        while !host.is_char_boundary(n) {
            n -= 1;
        }
        h.host[..n].copy_from_slice(&host.as_bytes()[..n]);
        h.host_len = U32Le::new(n as u32);
        h.crc = U32Le::new(h.compute_crc());
        h
    }

    /// CRC32C of every byte before the `crc` field.
    pub fn compute_crc(&self) -> u32 {
        let bytes = bytemuck::bytes_of(self);
        crc32c::crc32c(&bytes[..SEGMENT_HEADER_LEN - 4])
    }

    /// The host name (lossy if the stored bytes are not UTF-8).
    pub fn host(&self) -> String {
        let n = (self.host_len.get() as usize).min(HOST_LEN);
        String::from_utf8_lossy(&self.host[..n]).into_owned()
    }
}

/// The fixed header in front of every record's payload (24 bytes).
///
/// The CRC covers this header (with `crc` set to zero and the [`IN_PROGRESS`] bit clear)
/// followed by the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct FrameHeader {
    /// Frame length without padding: [`FRAME_HEADER_LEN`] plus the payload length, with
    /// [`IN_PROGRESS`] set while the frame is being written. Zero marks the end of the
    /// written part of a segment.
    pub len: U32Le,
    /// Record kind (see [`RecordKind`](super::RecordKind)).
    pub kind: u8,
    /// Zero.
    pub reserved: [u8; 3],
    /// Record sequence number inside the segment: 0 for the first frame, then +1 per frame.
    pub seq: U64Le,
    /// CRC32C over the header (this field zero, `IN_PROGRESS` clear) and the payload.
    pub crc: U32Le,
    /// Zero.
    pub reserved2: [u8; 4],
}

const _: () = assert!(core::mem::size_of::<FrameHeader>() == FRAME_HEADER_LEN);

impl FrameHeader {
    /// A complete header for `payload` with its CRC.
    pub fn new(kind: u8, seq: u64, payload: &[u8]) -> Self {
        let mut h = Self {
            len: U32Le::new((FRAME_HEADER_LEN + payload.len()) as u32),
            kind,
            reserved: [0; 3],
            seq: U64Le::new(seq),
            crc: U32Le::new(0),
            reserved2: [0; 4],
        };
        h.crc = U32Le::new(h.compute_crc(payload));
        h
    }

    /// The length word without the [`IN_PROGRESS`] bit: header plus payload bytes.
    pub fn unpadded_len(&self) -> u32 {
        self.len.get() & !IN_PROGRESS
    }

    /// Payload length (0 for a length word below [`FRAME_HEADER_LEN`], which is invalid).
    pub fn payload_len(&self) -> u32 {
        self.unpadded_len().saturating_sub(FRAME_HEADER_LEN as u32)
    }

    /// Whether the length word is at least a header (ignoring [`IN_PROGRESS`]).
    pub fn len_valid(&self) -> bool {
        self.unpadded_len() as usize >= FRAME_HEADER_LEN
    }

    /// Whether the [`IN_PROGRESS`] bit is set.
    pub fn in_progress(&self) -> bool {
        self.len.get() & IN_PROGRESS != 0
    }

    /// The CRC this header and `payload` should carry.
    pub fn compute_crc(&self, payload: &[u8]) -> u32 {
        let mut h = *self;
        h.crc = U32Le::new(0);
        h.len = U32Le::new(self.unpadded_len());
        let c = crc32c::crc32c(bytemuck::bytes_of(&h));
        crc32c::crc32c_append(c, payload)
    }

    /// Bytes the whole frame occupies, padding to [`FRAME_ALIGN`] included.
    pub fn frame_len(payload_len: u32) -> u64 {
        let raw = FRAME_HEADER_LEN as u64 + u64::from(payload_len);
        raw.div_ceil(FRAME_ALIGN as u64) * FRAME_ALIGN as u64
    }
}

/// File name of segment `seq`.
pub fn segment_file_name(seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{seq:016x}{SEGMENT_SUFFIX}")
}

/// Segment sequence from a file name, if it is a segment's.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let hex = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}
