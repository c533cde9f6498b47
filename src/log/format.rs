//! Fixed on-disk structures of the window log: the segment header and the frame header.
//!
//! Both are `bytemuck::Pod` structs made only of byte arrays, so they have alignment 1, no
//! padding, and the same little-endian layout on every platform. `docs/log-format.md`
//! specifies them byte by byte.

use bytemuck::{Pod, Zeroable};

/// First eight bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"RINGMLOG";

/// The format version this crate writes and the newest it reads.
///
/// Version 2 added the [commit block](CommitSlot) after the header; version 1 segments
/// (frames right after the header) are still read. Version 3 stores window histograms in
/// HdrHistogram's plain V2 encoding instead of V2 + deflate (a reader of version 2 would
/// take its records for corrupt ones, so it is told by the version instead); its layout is
/// version 2's, and readers take either histogram form in any version.
pub const FORMAT_VERSION: u32 = 3;

/// The oldest format version this crate reads. Version 0 was never written.
pub const OLDEST_VERSION: u32 = 1;

/// Size of [`SegmentHeader`] in bytes.
pub const SEGMENT_HEADER_LEN: usize = 128;

/// Size of one [`CommitSlot`] in bytes.
pub const COMMIT_SLOT_LEN: usize = 32;

/// Offset of the commit block (two [`CommitSlot`]s) in a version 2 segment.
pub const COMMIT_BLOCK_AT: usize = SEGMENT_HEADER_LEN;

/// Offset of the first frame: [`SEGMENT_HEADER_LEN`] in version 1, after the commit block
/// in versions 2 and 3. The header's `header_len` field holds it.
pub const FIRST_FRAME_V2: usize = SEGMENT_HEADER_LEN + 2 * COMMIT_SLOT_LEN;

/// [`CommitSlot::flags`] bit: the writer closed the segment; nothing follows `end`.
pub const SEALED: u32 = 1;

/// Readers never look further into a segment file than this many bytes: the largest file a
/// writer creates (a 1 GiB segment, or one record of [`MAX_PAYLOAD`] bytes) plus slack.
pub const MAX_SEGMENT_FILE_LEN: u64 = (1 << 30) + (1 << 20);

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
    /// Where the first frame starts: [`FIRST_FRAME_V2`] (version 2) or
    /// [`SEGMENT_HEADER_LEN`] (version 1).
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
        h.header_len = U32Le::new(FIRST_FRAME_V2 as u32);
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

/// One of the two slots of a version 2 segment's commit block (32 bytes; the block is at
/// [`COMMIT_BLOCK_AT`]).
///
/// The writer updates the slot that does not hold the newest state after every append
/// (alternating, with a growing `generation`), so a write cut short by a kill or a power
/// loss leaves the other slot valid. Readers use the valid slot with the highest
/// generation; a segment whose slots are both zero has committed nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct CommitSlot {
    /// Grows by one per update; the slot written is `generation % 2`.
    pub generation: U64Le,
    /// Offset just past the last frame the writer completed.
    pub end: U64Le,
    /// Frames completed (the next frame's sequence number).
    pub records: U64Le,
    /// [`SEALED`] once the writer closed the segment.
    pub flags: U32Le,
    /// CRC32C of the 28 bytes before this field.
    pub crc: U32Le,
}

const _: () = assert!(core::mem::size_of::<CommitSlot>() == COMMIT_SLOT_LEN);
const _: () = assert!(FIRST_FRAME_V2.is_multiple_of(FRAME_ALIGN));

impl CommitSlot {
    /// A slot with its CRC.
    pub fn new(generation: u64, end: u64, records: u64, flags: u32) -> Self {
        let mut s = Self {
            generation: U64Le::new(generation),
            end: U64Le::new(end),
            records: U64Le::new(records),
            flags: U32Le::new(flags),
            crc: U32Le::new(0),
        };
        s.crc = U32Le::new(s.compute_crc());
        s
    }

    /// CRC32C of every byte before the `crc` field.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&bytemuck::bytes_of(self)[..COMMIT_SLOT_LEN - 4])
    }

    /// Whether the slot was written completely (non-zero generation, CRC matches).
    pub fn is_valid(&self) -> bool {
        self.generation.get() != 0 && self.compute_crc() == self.crc.get()
    }

    /// Whether the writer closed the segment.
    pub fn sealed(&self) -> bool {
        self.flags.get() & SEALED != 0
    }

    /// Offset of slot `generation % 2` in the segment file.
    pub fn offset(generation: u64) -> usize {
        COMMIT_BLOCK_AT + (generation % 2) as usize * COMMIT_SLOT_LEN
    }

    /// The newest valid slot of a commit block (`block`: [`COMMIT_SLOT_LEN`] × 2 bytes).
    pub fn newest(block: &[u8]) -> Option<CommitSlot> {
        block
            .chunks_exact(COMMIT_SLOT_LEN)
            .take(2)
            .map(bytemuck::pod_read_unaligned::<CommitSlot>)
            .filter(CommitSlot::is_valid)
            .max_by_key(|s| s.generation.get())
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
    // Exactly sixteen lower-case hex digits: `from_str_radix` alone would also take `+`
    // and upper case, so two names could mean one segment.
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_are_strict() {
        assert_eq!(
            parse_segment_file_name("seg-000000000000002a.rml"),
            Some(42)
        );
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        for bad in [
            "seg-000000000000002A.rml",
            "seg-+00000000000002a.rml",
            "seg-00000000000002a.rml",
            "seg-000000000000002a.rml.tmp",
            "seg-00000000000000 2a.rml",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_newest_valid_commit_slot_wins() {
        let a = CommitSlot::new(4, 1000, 7, 0);
        let b = CommitSlot::new(5, 1200, 9, SEALED);
        let mut block = [0_u8; 2 * COMMIT_SLOT_LEN];
        block[..32].copy_from_slice(bytemuck::bytes_of(&a));
        block[32..].copy_from_slice(bytemuck::bytes_of(&b));
        assert_eq!(CommitSlot::newest(&block), Some(b));
        block[40] ^= 1; // a torn write of the newer slot
        assert_eq!(CommitSlot::newest(&block), Some(a));
        assert_eq!(CommitSlot::newest(&[0; 64]), None);
    }
}
