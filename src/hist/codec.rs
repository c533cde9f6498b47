//! HdrHistogram's V2 encoding, plain (what the window log stores since format version 3) or
//! compressed with deflate (what the log stored before, and what the HdrHistogram interval
//! log carries, base64-encoded).
//!
//! ```text
//! plain:  cookie 0x1c849313 (u32 BE) | payload length (u32 BE) | normalizing offset (u32 BE)
//!         | significant digits (u32 BE) | lowest (u64 BE) | highest (u64 BE)
//!         | integer-to-double ratio (f64 BE) | payload: counts as ZigZag LEB128 varints
//! deflate: cookie 0x1c849314 (u32 BE) | zlib stream length (u32 BE) | zlib stream of the plain form
//! ```
//!
//! Encoding keeps its buffers and compressor across calls ([`Encoder`]). Every reader takes
//! either form, told apart by the cookie. Reading never trusts a declared size:
//! [`check_frame`] checks the outer header alone (for the plain form, its header and length),
//! [`peek`] also inflates only the 40-byte inner header and checks its parameters, and
//! [`decode`] inflates the payload only after that, into a buffer that grows as data actually
//! inflates. The plain form is read in place, with no inflate: [`decode_pairs`] on it is a
//! walk over its varints, many times cheaper than inflating a small deflate stream (which
//! builds its Huffman tables for every histogram).

use std::cell::RefCell;
use std::fmt;

use flate2::{Compress, Compression, FlushCompress, Status};
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

use super::compact::CompactHistogram;
use crate::limits::MAX_HISTOGRAM_COUNTS;

/// A histogram to encode: an HdrHistogram, or the compact form of one (same bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) enum HistRef<'a> {
    /// A full HdrHistogram.
    Hdr(&'a Histogram<u64>),
    /// A compact histogram.
    Compact(&'a CompactHistogram),
}

/// Cookie of a V2 encoding compressed with deflate: HdrHistogram's
/// `V2CompressedEncodingCookieBase` with the word-size bits (0x10) its writers set.
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304 | 0x10;

/// Cookie of the plain V2 encoding inside the zlib stream (`V2EncodingCookieBase` | 0x10).
const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;

/// Histograms whose plain V2 encoding is at most this long are stored plain in the window
/// log; longer ones (thousands of filled buckets) deflated. Inflating a small stream costs
/// mostly its Huffman tables, which a reader would rebuild per histogram, and saves little;
/// a long one deflates to well under half, and reading its counts costs more than inflating.
pub(crate) const PLAIN_MAX: usize = 1024;

/// Length of the outer header: cookie and zlib stream length.
const FRAME_LEN: usize = 8;

/// Length of the inner V2 header that precedes the counts.
const HEADER_LEN: usize = 40;

/// Why a histogram could not be encoded.
#[derive(Debug)]
pub(crate) enum HistEncodeError {
    /// The V2 serializer failed.
    Serialize(String),
    /// The compressor failed.
    Deflate(String),
    /// The zlib stream is longer than its 32-bit length field; the bytes appended so far.
    TooLarge(usize),
}

impl fmt::Display for HistEncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Serialize(e) | Self::Deflate(e) => f.write_str(e),
            Self::TooLarge(_) => f.write_str("histogram too large"),
        }
    }
}

/// Serializes histograms in the V2 + deflate encoding (the bytes HdrHistogram's
/// `V2DeflateSerializer` writes) with buffers and a compressor kept across calls: setting up
/// a new compressor costs far more than compressing one histogram.
pub(crate) struct Encoder {
    v2: V2Serializer,
    plain: Vec<u8>,
    /// Made at the first compression: the plain form needs none.
    z: Option<Compress>,
}

impl Encoder {
    /// An encoder compressing at deflate's default level, with a zlib wrapper.
    pub(crate) fn new() -> Self {
        Self {
            v2: V2Serializer::new(),
            plain: Vec::new(),
            z: None,
        }
    }

    /// Appends `h` to `out` (cookie, compressed length, zlib stream); returns the bytes added.
    ///
    /// # Errors
    /// [`HistEncodeError`] when serializing or compressing fails, or the compressed stream
    /// does not fit its length field.
    #[cfg(test)]
    pub(crate) fn encode(
        &mut self,
        h: &Histogram<u64>,
        out: &mut Vec<u8>,
    ) -> Result<usize, HistEncodeError> {
        self.encode_any(HistRef::Hdr(h), out)
    }

    /// As [`encode`](Self::encode), for either form of histogram.
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    #[cfg(test)]
    pub(crate) fn encode_any(
        &mut self,
        h: HistRef<'_>,
        out: &mut Vec<u8>,
    ) -> Result<usize, HistEncodeError> {
        self.serialize(h)?;
        self.deflate_plain(out)
    }

    /// Appends the plain V2 encoding of `h` to `out` (cookie `0x1c849313`, header, varint
    /// counts: the bytes HdrHistogram's `V2Serializer` writes); returns the bytes added.
    ///
    /// # Errors
    /// [`HistEncodeError::Serialize`] when serializing fails.
    pub(crate) fn encode_plain(
        &mut self,
        h: HistRef<'_>,
        out: &mut Vec<u8>,
    ) -> Result<usize, HistEncodeError> {
        match h {
            HistRef::Hdr(h) => {
                let start = out.len();
                self.v2
                    .serialize(h, out)
                    .map_err(|e| HistEncodeError::Serialize(format!("{e:?}")))?;
                Ok(out.len() - start)
            }
            HistRef::Compact(h) => {
                let start = out.len();
                serialize_compact(h, out, start)?;
                Ok(out.len() - start)
            }
        }
    }

    /// Appends `h` in the form the window log stores: plain V2 ([`encode_plain`](Self::encode_plain))
    /// when that takes at most [`PLAIN_MAX`] bytes, else V2 + deflate; returns the bytes added.
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    pub(crate) fn encode_stored(
        &mut self,
        h: HistRef<'_>,
        out: &mut Vec<u8>,
    ) -> Result<usize, HistEncodeError> {
        self.serialize(h)?;
        if self.plain.len() <= PLAIN_MAX {
            out.extend_from_slice(&self.plain);
            Ok(self.plain.len())
        } else {
            self.deflate_plain(out)
        }
    }

    /// Appends the V2 + deflate form of `stored`, a histogram in either form (the plain one
    /// is compressed, the deflated one copied), checked as [`check_frame`] checks; returns
    /// the bytes added.
    ///
    /// # Errors
    /// [`HistEncodeError::Deflate`] when `stored` is not a well-formed histogram or
    /// compressing fails; [`HistEncodeError::TooLarge`] as for [`encode`](Self::encode).
    pub(crate) fn deflate_stored(
        &mut self,
        stored: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, HistEncodeError> {
        match stored_form(stored).map_err(HistEncodeError::Deflate)? {
            Stored::Deflate(_) => {
                out.extend_from_slice(stored);
                Ok(stored.len())
            }
            Stored::Plain(plain, _) => {
                self.plain.clear();
                self.plain.extend_from_slice(plain);
                self.deflate_plain(out)
            }
        }
    }

    /// Serializes `h` (plain V2) into `self.plain`.
    fn serialize(&mut self, h: HistRef<'_>) -> Result<(), HistEncodeError> {
        self.plain.clear();
        match h {
            HistRef::Hdr(h) => {
                self.v2
                    .serialize(h, &mut self.plain)
                    .map_err(|e| HistEncodeError::Serialize(format!("{e:?}")))?;
            }
            HistRef::Compact(h) => serialize_compact(h, &mut self.plain, 0)?,
        }
        Ok(())
    }

    /// Appends `self.plain` compressed: cookie, compressed length, zlib stream.
    fn deflate_plain(&mut self, out: &mut Vec<u8>) -> Result<usize, HistEncodeError> {
        let start = out.len();
        out.extend_from_slice(&V2_COMPRESSED_COOKIE.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        let z = self
            .z
            .get_or_insert_with(|| Compress::new(Compression::default(), true));
        z.reset();
        // zlib's worst case is a few bytes per 16 KiB over the input; grow if ever needed.
        out.reserve(self.plain.len() + self.plain.len() / 1000 + 64);
        loop {
            let consumed = usize::try_from(z.total_in()).unwrap_or(usize::MAX);
            let input = self.plain.get(consumed..).unwrap_or_default();
            let status = z
                .compress_vec(input, out, FlushCompress::Finish)
                .map_err(|e| HistEncodeError::Deflate(e.to_string()))?;
            if status == Status::StreamEnd {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        let clen = u32::try_from(out.len() - start - FRAME_LEN)
            .map_err(|_| HistEncodeError::TooLarge(out.len() - start))?;
        out[start + 4..start + FRAME_LEN].copy_from_slice(&clen.to_be_bytes());
        Ok(out.len() - start)
    }
}

/// Appends the plain V2 encoding of the compact histogram `h` to `out` (the bytes
/// HdrHistogram's `V2Serializer` writes for the same counts), whatever its length; returns
/// the bytes added.
///
/// # Errors
/// [`HistEncodeError::Serialize`] when a count exceeds `i64::MAX` (V2 cannot hold it).
pub(crate) fn encode_plain_compact(
    h: &CompactHistogram,
    out: &mut Vec<u8>,
) -> Result<usize, HistEncodeError> {
    let start = out.len();
    serialize_compact(h, out, start).inspect_err(|_| out.truncate(start))?;
    Ok(out.len() - start)
}

/// Appends the V2 encoding of `h` to `plain`, whose first `start` bytes are kept: the bytes
/// `V2Serializer` writes for the HdrHistogram holding the same counts (counts up to the
/// highest non-zero one; a run of more than one zero count as its negated length; ZigZag
/// LEB128-64b9B varints).
fn serialize_compact(
    h: &CompactHistogram,
    plain: &mut Vec<u8>,
    start: usize,
) -> Result<(), HistEncodeError> {
    plain.extend_from_slice(&V2_COOKIE.to_be_bytes());
    plain.extend_from_slice(&[0; 4]);
    plain.extend_from_slice(&0_u32.to_be_bytes());
    plain.extend_from_slice(&u32::from(h.sigfig()).to_be_bytes());
    plain.extend_from_slice(&h.low().to_be_bytes());
    plain.extend_from_slice(&h.high().to_be_bytes());
    plain.extend_from_slice(&1.0_f64.to_bits().to_be_bytes());
    let mut next = 0_usize;
    for (i, c) in h.pairs() {
        match i - next {
            0 => {}
            1 => varint(plain, 0),
            gap => varint(plain, zig_zag(-(gap as i64))),
        }
        let c = i64::try_from(c)
            .map_err(|_| HistEncodeError::Serialize("CountNotSerializable".into()))?;
        varint(plain, zig_zag(c));
        next = i + 1;
    }
    if next == 0 {
        // Empty: the count at index 0, zero.
        varint(plain, 0);
    }
    let len = u32::try_from(plain.len() - start - HEADER_LEN)
        .map_err(|_| HistEncodeError::TooLarge(plain.len() - start))?;
    plain[start + 4..start + 8].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// ZigZag: 0 to 0, -1 to 1, 1 to 2, -2 to 3.
fn zig_zag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// LEB128 with at most 9 bytes: the ninth holds the top 8 bits as they are.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    for _ in 0..8 {
        if v < 0x80 {
            out.push(v as u8);
            return;
        }
        out.push(0x80 | (v & 0x7f) as u8);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The parameters of a stored histogram, from its inner V2 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Length of the varint-encoded counts that follow the header.
    pub(crate) payload_len: u32,
    /// Significant value digits.
    pub(crate) digits: u32,
    /// Lowest discernible value.
    pub(crate) low: u64,
    /// Highest trackable value.
    pub(crate) high: u64,
}

/// A stored histogram, by form.
enum Stored<'a> {
    /// The plain V2 encoding (all of it, header included) and its checked header.
    Plain(&'a [u8], Header),
    /// The zlib stream of a V2 + deflate encoding.
    Deflate(&'a [u8]),
}

/// Tells the two forms apart by the cookie. The plain form's header is checked (parameters
/// bounded, payload exactly the rest of `bytes`); of the deflated form only the outer header
/// (a stream length that stays inside `bytes`).
fn stored_form(bytes: &[u8]) -> Result<Stored<'_>, String> {
    if bytes.len() < FRAME_LEN {
        return Err("histogram shorter than its header".into());
    }
    match be32(bytes, 0) {
        V2_COOKIE => {
            let head = bytes
                .get(..HEADER_LEN)
                .ok_or_else(|| "histogram shorter than its header".to_string())?;
            let header = check_header(head)?;
            if bytes.len() - HEADER_LEN != header.payload_len as usize {
                return Err(format!(
                    "histogram payload length {} is not the {} bytes stored",
                    header.payload_len,
                    bytes.len() - HEADER_LEN
                ));
            }
            Ok(Stored::Plain(bytes, header))
        }
        V2_COMPRESSED_COOKIE => zlib_stream(bytes).map(Stored::Deflate),
        cookie => Err(format!(
            "histogram cookie {cookie:#x} is not V2 or V2+deflate"
        )),
    }
}

/// Checks a stored histogram without inflating anything: for the V2 + deflate form its outer
/// header (its cookie, and a stream length that stays inside `bytes`); for the plain form its
/// header, as [`peek`] does, and that its payload is the rest of `bytes`.
///
/// # Errors
/// What is wrong, as a sentence for a decode error.
pub(crate) fn check_frame(bytes: &[u8]) -> Result<(), String> {
    stored_form(bytes).map(drop)
}

/// Reads the V2 header of a stored histogram (of the deflated form, inflating only its 40
/// bytes) and checks that its parameters describe a histogram of at most
/// [`MAX_HISTOGRAM_COUNTS`] counts.
///
/// # Errors
/// What is wrong, as a sentence for a decode or export error.
pub(crate) fn peek(bytes: &[u8]) -> Result<Header, String> {
    match stored_form(bytes)? {
        Stored::Plain(_, header) => Ok(header),
        Stored::Deflate(stream) => with_inflater(|state| {
            let mut head = [0; HEADER_LEN];
            inflate_header(state, stream, &mut head).map(|(header, _)| header)
        }),
    }
}

/// Decodes a stored histogram (either form) after checking, as [`peek`] does, that its
/// declared sizes are bounded.
///
/// # Errors
/// What is wrong, as a sentence for a decode error.
pub(crate) fn decode(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    let plain;
    let v2 = match stored_form(bytes)? {
        Stored::Plain(v2, _) => v2,
        Stored::Deflate(stream) => {
            plain = with_inflater(|state| -> Result<Vec<u8>, String> {
                let mut plain = vec![0; HEADER_LEN];
                let (header, read) = inflate_header(state, stream, &mut plain)?;
                let rest = stream.get(read..).unwrap_or_default();
                inflate_payload(state, rest, &mut plain, header.payload_len)?;
                Ok(plain)
            })?;
            &plain
        }
    };
    Deserializer::new()
        .deserialize(&mut &v2[..])
        .map_err(|e| format!("histogram does not decode: {e:?}"))
}

/// Decodes a stored histogram (either form) into its non-zero `(index, count)` pairs,
/// ascending, without building the full counts array: `pairs` is cleared, then filled; the
/// header is returned. Indices and counts are those `decode` would set in the HdrHistogram
/// (same bounds checks: an index past the counts array, a negative count or a normalizing
/// offset is an error). The plain form is read in place.
///
/// # Errors
/// What is wrong, as a sentence for a decode error.
pub(crate) fn decode_pairs(bytes: &[u8], pairs: &mut Vec<(u32, u64)>) -> Result<Header, String> {
    pairs.clear();
    walk_counts(bytes, |_| true, |i, c| pairs.push((i, c)))?
        .ok_or_else(|| "histogram header refused".to_string())
}

/// Calls `each(index, count)` for every non-zero count of a stored histogram (either form),
/// in ascending index order, without building a counts array or a list: the indices and
/// counts [`decode_pairs`] gives. `accept` sees the checked header first; when it returns
/// false nothing is walked and the answer is `Ok(None)`. The plain form is read in place,
/// the deflated one inflated into this thread's buffer.
///
/// # Errors
/// As [`decode_pairs`]. A payload found wrong part-way (a count past the counts array, a
/// varint cut short) fails after `each` has seen the counts before it: a caller that must
/// stay unchanged walks again to undo them (the same bytes fail at the same place).
#[inline]
pub(crate) fn walk_counts(
    bytes: &[u8],
    accept: impl FnOnce(&Header) -> bool,
    each: impl FnMut(u32, u64),
) -> Result<Option<Header>, String> {
    thread_local! {
        static PLAIN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    match stored_form(bytes)? {
        Stored::Plain(v2, header) => {
            if !accept(&header) {
                return Ok(None);
            }
            plain_counts(v2, header, each).map(Some)
        }
        Stored::Deflate(stream) => PLAIN.with(|plain| {
            let plain = &mut *plain.borrow_mut();
            plain.clear();
            plain.resize(HEADER_LEN, 0);
            let header = with_inflater(|state| -> Result<Option<Header>, String> {
                let (header, read) = inflate_header(state, stream, plain)?;
                if !accept(&header) {
                    return Ok(None);
                }
                let rest = stream.get(read..).unwrap_or_default();
                inflate_payload(state, rest, plain, header.payload_len)?;
                Ok(Some(header))
            })?;
            match header {
                Some(header) => plain_counts(plain, header, each).map(Some),
                None => Ok(None),
            }
        }),
    }
}

/// Walks the non-zero counts of `v2`, a plain V2 encoding whose header, `header`, was
/// checked, calling `each(index, count)` in ascending index order.
#[inline]
fn plain_counts(
    v2: &[u8],
    header: Header,
    mut each: impl FnMut(u32, u64),
) -> Result<Header, String> {
    if be32(v2, 8) != 0 {
        return Err("histogram has a normalizing offset".into());
    }
    if f64::from_bits(be64(v2, 32)) != 1.0 {
        return Err("histogram has an integer-to-double ratio other than 1".into());
    }
    // `check_header` checked the parameters: the length fits (and is below 2^32).
    let len = counts_len(header.low, header.high, header.digits).unwrap_or(0);
    let mut payload = &v2[HEADER_LEN..];
    let mut at = 0_u64;
    while let Some(&first) = payload.first() {
        // One-byte varints (counts below 64, runs of up to 64 zeros) are most of a sparse
        // histogram.
        let v = if first < 0x80 {
            payload = &payload[1..];
            u64::from(first)
        } else {
            let (v, n) = read_varint(payload)
                .ok_or_else(|| "histogram payload ends inside a count".to_string())?;
            payload = &payload[n..];
            v
        };
        if v & 1 == 1 {
            // ZigZag of a negative number -n: a run of n zero counts.
            at = at.saturating_add((v >> 1) + 1);
            continue;
        }
        let count = v >> 1;
        if count > 0 {
            if at >= len {
                return Err("histogram counts run past its counts array".into());
            }
            each(at as u32, count);
        }
        at += 1;
    }
    Ok(header)
}

/// Adds the counts of a stored histogram (either form) into a dense range of counts,
/// `counts[k]` holding index `*base + k`, widened as needed: what [`walk_counts`] adding
/// each count would do, faster (eight one-byte varints at a time, with no branch on a
/// count or a run). Additions wrap: the answer is the sum of the counts added and whether
/// any addition (or the sum) wrapped. `accept` sees the checked header first; when it
/// returns false nothing is added and the answer is `Ok(None)`.
///
/// # Errors
/// As [`walk_counts`], found part-way: the counts before the fault are added (a caller
/// that must stay unchanged takes them back by walking the same bytes again).
pub(crate) fn add_counts(
    bytes: &[u8],
    accept: impl FnOnce(&Header) -> bool,
    base: &mut u32,
    counts: &mut Vec<u64>,
) -> Result<Option<(u64, bool)>, String> {
    thread_local! {
        static PLAIN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    match stored_form(bytes)? {
        Stored::Plain(v2, header) => {
            if !accept(&header) {
                return Ok(None);
            }
            plain_add(v2, header, base, counts).map(Some)
        }
        Stored::Deflate(_) => {
            let mut adder = DenseAdder::new(base, counts);
            let header = walk_counts(bytes, accept, |i, c| adder.add(u64::from(i), c))?;
            Ok(header.map(|_| (adder.sum, adder.wrapped)))
        }
    }
}

/// Counts added into a dense range (see [`add_counts`]).
struct DenseAdder<'a> {
    base: &'a mut u32,
    counts: &'a mut Vec<u64>,
    sum: u64,
    wrapped: bool,
}

impl<'a> DenseAdder<'a> {
    fn new(base: &'a mut u32, counts: &'a mut Vec<u64>) -> Self {
        Self {
            base,
            counts,
            sum: 0,
            wrapped: false,
        }
    }

    /// Adds `c` (possibly 0) at index `i` (below the counts-array length when `c` > 0).
    #[inline(always)]
    fn add(&mut self, i: u64, c: u64) {
        let k = i.wrapping_sub(u64::from(*self.base)) as usize;
        let slot = match self.counts.get_mut(k) {
            Some(slot) => slot,
            None if c == 0 => return,
            None => self.widen(i as u32),
        };
        let (v, o) = slot.overflowing_add(c);
        *slot = v;
        let (s, p) = self.sum.overflowing_add(c);
        self.sum = s;
        self.wrapped |= o | p;
    }

    #[cold]
    #[inline(never)]
    fn widen(&mut self, i: u32) -> &mut u64 {
        let (base, counts) = (&mut *self.base, &mut *self.counts);
        if counts.is_empty() {
            *base = i;
            counts.push(0);
        } else if i < *base {
            counts.splice(0..0, std::iter::repeat_n(0, (*base - i) as usize));
            *base = i;
        } else {
            counts.resize((i - *base) as usize + 1, 0);
        }
        &mut counts[(i - *base) as usize]
    }
}

/// [`add_counts`] of `v2`, a plain V2 encoding whose header, `header`, was checked.
fn plain_add(
    v2: &[u8],
    header: Header,
    base: &mut u32,
    counts: &mut Vec<u64>,
) -> Result<(u64, bool), String> {
    if be32(v2, 8) != 0 {
        return Err("histogram has a normalizing offset".into());
    }
    if f64::from_bits(be64(v2, 32)) != 1.0 {
        return Err("histogram has an integer-to-double ratio other than 1".into());
    }
    // `check_header` checked the parameters: the length fits (and is below 2^32).
    let len = counts_len(header.low, header.high, header.digits).unwrap_or(0);
    let mut adder = DenseAdder::new(base, counts);
    let p = &v2[HEADER_LEN..];
    let mut at = 0_u64;
    let mut pos = 0;
    while let Some(word) = p.get(pos..pos + 8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        let high = w & 0x8080_8080_8080_8080;
        // One-byte varints before the first byte with its top bit set.
        let ones = if high == 0 {
            8
        } else {
            (high.trailing_zeros() / 8) as usize
        };
        for j in 0..ones {
            let v = (w >> (8 * j)) & 0xff;
            // Branch-free: a run moves `at` on by its length and adds 0 at `at`.
            let run = (v & 1).wrapping_neg();
            let half = v >> 1;
            let count = half & !run;
            if count > 0 && at >= len {
                return Err("histogram counts run past its counts array".into());
            }
            adder.add(at, count);
            at = at.saturating_add(1 + (half & run));
        }
        pos += ones;
        if ones < 8 {
            let (v, n) = read_varint(&p[pos..])
                .ok_or_else(|| "histogram payload ends inside a count".to_string())?;
            pos += n;
            step(&mut adder, &mut at, len, v)?;
        }
    }
    while pos < p.len() {
        let (v, n) = read_varint(&p[pos..])
            .ok_or_else(|| "histogram payload ends inside a count".to_string())?;
        pos += n;
        step(&mut adder, &mut at, len, v)?;
    }
    Ok((adder.sum, adder.wrapped))
}

/// One varint of [`plain_add`], ZigZag: a count (even) at `at`, or a run of zero counts
/// (odd).
#[inline]
fn step(adder: &mut DenseAdder<'_>, at: &mut u64, len: u64, v: u64) -> Result<(), String> {
    let half = v >> 1;
    if v & 1 == 1 {
        *at = at.saturating_add(half + 1);
        return Ok(());
    }
    if half > 0 && *at >= len {
        return Err("histogram counts run past its counts array".into());
    }
    adder.add(*at, half);
    *at += 1;
    Ok(())
}

/// Reads one LEB128-64b9B varint from the front of `b`; returns it and the bytes read, or
/// `None` when `b` ends inside it (HdrHistogram's reader fails there too).
#[inline]
fn read_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0_u64;
    for k in 0..8 {
        let byte = *b.get(k)?;
        v |= u64::from(byte & 0x7f) << (7 * k);
        if byte & 0x80 == 0 {
            return Some((v, k + 1));
        }
    }
    Some((v | u64::from(*b.get(8)?) << 56, 9))
}

/// The zlib stream of a V2+deflate histogram (its cookie already checked), after checking
/// that its length stays inside `bytes`.
fn zlib_stream(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < FRAME_LEN {
        return Err("histogram shorter than its header".into());
    }
    let clen = be32(bytes, 4) as usize;
    bytes
        .get(FRAME_LEN..FRAME_LEN.saturating_add(clen))
        .ok_or_else(|| "histogram's compressed length runs past the record".into())
}

/// Runs `f` with this thread's inflate state (about 11 KiB, set up once per thread rather than
/// once per histogram).
fn with_inflater<R>(f: impl FnOnce(&mut DecompressorOxide) -> R) -> R {
    thread_local! {
        static INFLATER: RefCell<Box<DecompressorOxide>> = RefCell::new(Box::default());
    }
    INFLATER.with(|state| f(&mut state.borrow_mut()))
}

/// Flags of every inflate call: a zlib stream, into one buffer that holds all output so far.
const INFLATE_FLAGS: u32 = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
    | inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;

/// Inflates the first 40 bytes of `stream` into `out[..40]` with `state` (reset here) and
/// checks them; returns the header and the stream bytes consumed, so that the payload can be
/// inflated on from there with the same state.
fn inflate_header(
    state: &mut DecompressorOxide,
    stream: &[u8],
    out: &mut [u8],
) -> Result<(Header, usize), String> {
    state.init();
    let head = &mut out[..HEADER_LEN];
    let (status, read, written) = decompress(state, stream, head, 0, INFLATE_FLAGS);
    let inflated = matches!(status, TINFLStatus::Done | TINFLStatus::HasMoreOutput);
    if !inflated || written != HEADER_LEN {
        return Err(format!("histogram header does not inflate ({status:?})"));
    }
    let header = check_header(head)?;
    Ok((header, read))
}

/// Checks a 40-byte V2 header: its cookie, parameters that describe a histogram of at most
/// [`MAX_HISTOGRAM_COUNTS`] counts, and a payload length those counts could need.
fn check_header(head: &[u8]) -> Result<Header, String> {
    if be32(head, 0) != V2_COOKIE {
        return Err("histogram inner cookie is not V2".into());
    }
    let header = Header {
        payload_len: be32(head, 4),
        digits: be32(head, 12),
        low: be64(head, 16),
        high: be64(head, 24),
    };
    let counts = counts_len(header.low, header.high, header.digits)
        .ok_or_else(|| "histogram parameters out of range".to_string())?;
    if counts > MAX_HISTOGRAM_COUNTS {
        return Err(format!("histogram declares {counts} counts"));
    }
    // Each count takes at most 9 bytes in V2's varint encoding.
    if u64::from(header.payload_len) > counts * 9 {
        return Err(format!(
            "histogram payload length {} too large",
            header.payload_len
        ));
    }
    Ok(header)
}

/// Inflates the `payload_len` bytes that follow the header (already in `plain`) from `rest`,
/// the stream after it. `plain` doubles only as inflated data fills it, so a declared length
/// alone never allocates; bytes past the declared length are not read.
fn inflate_payload(
    state: &mut DecompressorOxide,
    mut rest: &[u8],
    plain: &mut Vec<u8>,
    payload_len: u32,
) -> Result<(), String> {
    let total = HEADER_LEN + payload_len as usize;
    let mut pos = HEADER_LEN;
    while pos < total {
        if pos == plain.len() {
            plain.resize((plain.len() * 2).min(total), 0);
        }
        let (status, read, written) = decompress(state, rest, plain, pos, INFLATE_FLAGS);
        rest = rest.get(read..).unwrap_or_default();
        pos += written;
        match status {
            TINFLStatus::HasMoreOutput if written > 0 || pos == plain.len() => {}
            TINFLStatus::Done => break,
            _ => return Err(format!("histogram does not inflate ({status:?})")),
        }
    }
    if pos != total {
        return Err("histogram payload shorter than declared".into());
    }
    plain.truncate(total);
    Ok(())
}

/// Counts-array length of an HdrHistogram with these parameters (the formula of
/// `Histogram::new_with_bounds`), or `None` when they are invalid.
fn counts_len(low: u64, high: u64, digits: u32) -> Option<u64> {
    if low < 1 || digits > 5 || high < low.checked_mul(2)? {
        return None;
    }
    let largest_single_unit = 2 * 10_u64.pow(digits);
    let sub_bucket_count_magnitude = 64 - (largest_single_unit - 1).leading_zeros();
    let sub_bucket_half_count_magnitude = sub_bucket_count_magnitude.max(1) - 1;
    let unit_magnitude = 63 - low.leading_zeros();
    if unit_magnitude + sub_bucket_half_count_magnitude + 1 > 63 {
        return None;
    }
    let sub_bucket_count = 1_u64 << (sub_bucket_half_count_magnitude + 1);
    let mut smallest_untrackable = sub_bucket_count << unit_magnitude;
    let mut buckets = 1_u64;
    while smallest_untrackable <= high {
        if smallest_untrackable > u64::MAX / 2 {
            buckets += 1;
            break;
        }
        smallest_untrackable <<= 1;
        buckets += 1;
    }
    Some((buckets + 1) * (sub_bucket_count / 2))
}

/// The big-endian `u32` at `at` (the caller has checked the length).
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The big-endian `u64` at `at` (the caller has checked the length).
fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(high: u64, digits: u8) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, high, digits).unwrap();
        for v in 0..500 {
            h.saturating_record(1 + v * v * 1000);
        }
        h
    }

    #[test]
    fn encodings_are_what_hdrhistogram_reads() {
        let mut h = sample(60_000_000_000, 3);
        let mut enc = Encoder::new();
        for round in 0..3_u64 {
            h.record(1 + round).unwrap();
            let mut out = vec![7_u8; 3];
            let n = enc.encode(&h, &mut out).unwrap();
            assert_eq!(n, out.len() - 3);
            let back: Histogram<u64> = Deserializer::new().deserialize(&mut &out[3..]).unwrap();
            assert_eq!(back, h);
            assert_eq!(decode(&out[3..]).unwrap(), h);
        }
    }

    #[test]
    fn encodings_match_hdrhistogram_v2_deflate() {
        use hdrhistogram::serialization::V2DeflateSerializer;
        let h = sample(60_000_000_000, 3);
        let mut theirs = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&h, &mut theirs)
            .unwrap();
        let mut ours = Vec::new();
        Encoder::new().encode(&h, &mut ours).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn decode_pairs_gives_the_non_zero_counts_of_decode() {
        let mut enc = Encoder::new();
        let mut pairs = vec![(9, 9)];
        for (high, digits) in [(60_000_000_000, 3), (u64::MAX, 2), (1_000, 5)] {
            let mut h = sample(high, digits);
            h.saturating_record_n(high, 1 << 40);
            h.saturating_record(0);
            let mut out = Vec::new();
            enc.encode(&h, &mut out).unwrap();
            let header = decode_pairs(&out, &mut pairs).unwrap();
            assert_eq!((header.low, header.high), (1, high));
            let full = decode(&out).unwrap();
            let layout = super::super::layout::Layout::of(&full);
            let want: Vec<(u32, u64)> = full
                .iter_recorded()
                .map(|v| {
                    (
                        layout.index(v.value_iterated_to()) as u32,
                        v.count_at_value(),
                    )
                })
                .collect();
            assert_eq!(pairs, want);
            // Added into a dense range (twice: the second time onto the first), plain and
            // deflated: the same counts.
            let mut plain = Vec::new();
            enc.encode_plain(HistRef::Hdr(&h), &mut plain).unwrap();
            for bytes in [&plain, &out] {
                let (mut base, mut counts) = (0, Vec::new());
                for round in 1..=2 {
                    let (sum, wrapped) = add_counts(bytes, |_| true, &mut base, &mut counts)
                        .unwrap()
                        .unwrap();
                    assert!(!wrapped);
                    assert_eq!(sum, want.iter().map(|p| p.1).sum::<u64>());
                    let dense: Vec<(u32, u64)> = counts
                        .iter()
                        .enumerate()
                        .filter(|p| *p.1 != 0)
                        .map(|(k, &c)| (base + k as u32, c / round))
                        .collect();
                    assert_eq!(dense, want);
                }
            }
        }
        let mut empty = Vec::new();
        enc.encode(&Histogram::new_from(&sample(1_000, 2)), &mut empty)
            .unwrap();
        decode_pairs(&empty, &mut pairs).unwrap();
        assert!(pairs.is_empty());
        assert!(decode_pairs(&empty[..empty.len() - 1], &mut pairs).is_err());
    }

    #[test]
    fn the_plain_form_is_hdrhistograms_v2_and_reads_as_the_deflated_one() {
        use hdrhistogram::serialization::V2DeflateSerializer;
        let mut enc = Encoder::new();
        let mut pairs = Vec::new();
        let mut want = Vec::new();
        for (high, digits) in [(60_000_000_000, 3), (u64::MAX, 2), (1_000, 5)] {
            let mut h = sample(high, digits);
            h.saturating_record_n(high, 1 << 40);
            let mut plain = vec![1, 2];
            let n = enc.encode_plain(HistRef::Hdr(&h), &mut plain).unwrap();
            assert_eq!(n, plain.len() - 2);
            let plain = &plain[2..];
            let mut theirs = Vec::new();
            V2Serializer::new().serialize(&h, &mut theirs).unwrap();
            assert_eq!(plain, theirs);
            let back: Histogram<u64> = Deserializer::new().deserialize(&mut &plain[..]).unwrap();
            assert_eq!(decode(plain).unwrap(), back);
            check_frame(plain).unwrap();
            let header = peek(plain).unwrap();
            assert_eq!(
                (header.low, header.high, header.digits),
                (1, high, digits.into())
            );
            // Compressed on export into what HdrHistogram's deflating serializer writes.
            let mut deflated = Vec::new();
            enc.deflate_stored(plain, &mut deflated).unwrap();
            let mut theirs = Vec::new();
            V2DeflateSerializer::new()
                .serialize(&h, &mut theirs)
                .unwrap();
            assert_eq!(deflated, theirs);
            let mut copied = Vec::new();
            enc.deflate_stored(&deflated, &mut copied).unwrap();
            assert_eq!(copied, deflated);
            assert_eq!(decode(&deflated).unwrap(), back);
            decode_pairs(&deflated, &mut want).unwrap();
            assert_eq!(decode_pairs(plain, &mut pairs).unwrap(), header);
            assert_eq!(pairs, want);
        }
    }

    #[test]
    fn stored_histograms_are_plain_up_to_the_limit() {
        let mut enc = Encoder::new();
        let mut small = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        small.record_n(1_500, 3).unwrap();
        let big = sample(60_000_000_000, 3);
        for (h, plain) in [(&small, true), (&big, false)] {
            let mut out = Vec::new();
            let n = enc.encode_stored(HistRef::Hdr(h), &mut out).unwrap();
            assert_eq!(n, out.len());
            let mut v2 = Vec::new();
            V2Serializer::new().serialize(h, &mut v2).unwrap();
            assert_eq!(v2.len() <= PLAIN_MAX, plain);
            assert_eq!(be32(&out, 0) == V2_COOKIE, plain);
            assert_eq!(decode(&out).unwrap(), *h);
        }
    }

    #[test]
    fn damaged_plain_forms_are_refused() {
        let mut plain = Vec::new();
        Encoder::new()
            .encode_plain(HistRef::Hdr(&sample(60_000_000_000, 3)), &mut plain)
            .unwrap();
        let mut pairs = Vec::new();
        let mut longer = plain.clone();
        longer.push(0);
        let mut digits = plain.clone();
        digits[12..16].copy_from_slice(&6_u32.to_be_bytes());
        let mut huge = plain.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let mut past = plain.clone();
        // A zero run reaching past the counts array, then a count.
        past.truncate(HEADER_LEN);
        varint(&mut past, zig_zag(-1_000_000));
        varint(&mut past, zig_zag(3));
        let len = (past.len() - HEADER_LEN) as u32;
        past[4..8].copy_from_slice(&len.to_be_bytes());
        let mut cut_varint = plain.clone();
        cut_varint.truncate(HEADER_LEN);
        cut_varint.push(0x80);
        cut_varint[4..8].copy_from_slice(&1_u32.to_be_bytes());
        let mut negative = plain.clone();
        negative[8..12].copy_from_slice(&1_u32.to_be_bytes());
        for (bad, why) in [
            (&plain[..39], "shorter"),
            (&plain[..plain.len() - 1], "is not the"),
            (&longer[..], "is not the"),
            (&digits[..], "out of range"),
            (&huge[..], "too large"),
        ] {
            for err in [
                check_frame(bad).unwrap_err(),
                peek(bad).unwrap_err(),
                decode(bad).unwrap_err(),
                decode_pairs(bad, &mut pairs).unwrap_err(),
            ] {
                assert!(err.contains(why), "{err}");
            }
        }
        for (bad, why) in [
            (&past[..], "run past"),
            (&cut_varint[..], "ends inside"),
            (&negative[..], "normalizing offset"),
        ] {
            check_frame(bad).unwrap();
            assert!(decode(bad).is_err());
            let err = decode_pairs(bad, &mut pairs).unwrap_err();
            assert!(err.contains(why), "{err}");
            let err = add_counts(bad, |_| true, &mut 0, &mut Vec::new()).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn peek_reads_the_parameters_only() {
        let h = sample(u64::MAX, 2);
        let mut out = Vec::new();
        Encoder::new().encode(&h, &mut out).unwrap();
        let header = peek(&out).unwrap();
        assert_eq!((header.low, header.high, header.digits), (1, u64::MAX, 2));
        check_frame(&out).unwrap();
        // The payload is not inflated: a damaged payload still peeks.
        let last = out.len() - 1;
        out[last] ^= 0xff;
        assert_eq!(peek(&out).unwrap(), header);
    }

    #[test]
    fn damaged_frames_are_refused() {
        let mut out = Vec::new();
        Encoder::new()
            .encode(&sample(60_000_000_000, 3), &mut out)
            .unwrap();
        for bad in [
            &b"junk"[..],
            &out[..7],
            &out[..out.len() - 1],
            b"\x1c\x84\x93\x14\0\0\0\0",
        ] {
            assert!(decode(bad).is_err());
            assert!(peek(bad).is_err());
        }
        assert!(check_frame(&out[..out.len() - 1]).is_err());
        let mut wrong = out.clone();
        wrong[3] ^= 1;
        assert!(check_frame(&wrong)
            .unwrap_err()
            .contains("not V2 or V2+deflate"));
    }

    #[test]
    fn a_declared_payload_beyond_the_counts_is_refused() {
        // A V2 header declaring a payload longer than its counts could need, deflated by hand.
        let mut head = Vec::new();
        head.extend_from_slice(&V2_COOKIE.to_be_bytes());
        head.extend_from_slice(&u32::MAX.to_be_bytes());
        head.extend_from_slice(&0_u32.to_be_bytes());
        head.extend_from_slice(&3_u32.to_be_bytes());
        head.extend_from_slice(&1_u64.to_be_bytes());
        head.extend_from_slice(&1_000_u64.to_be_bytes());
        head.extend_from_slice(&1.0_f64.to_bits().to_be_bytes());
        let z = miniz_oxide::deflate::compress_to_vec_zlib(&head, 6);
        let mut bytes = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(z.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&z);
        assert!(peek(&bytes).unwrap_err().contains("too large"));
    }

    #[test]
    fn counts_len_matches_hdrhistogram() {
        for (low, high, d) in [
            (1, 60_000_000_000, 3),
            (1, u64::MAX, 5),
            (1, 2, 0),
            (1000, 1 << 40, 2),
            (1, i64::MAX as u64, 4),
        ] {
            let h = Histogram::<u64>::new_with_bounds(low, high, d as u8).unwrap();
            assert_eq!(counts_len(low, high, d), Some(h.distinct_values() as u64));
        }
    }
}
