//! The HdrHistogram interval log format (`.hlog`), version 1.3, as written by HdrHistogram's
//! Java `HistogramLogWriter` and read by its `HistogramLogProcessor`, by the Python
//! `hdrhistogram` package and by the Rust `hdrhistogram` crate.
//!
//! ```text
//! #[Logged with ringmeter 0.1.0]
//! #[Histogram log format version 1.3]
//! #[StartTime: 1700000000.000 (seconds since epoch), 2023-11-14T22:13:20.000Z]
//! #[BaseTime: 0.000 (seconds since epoch)]
//! #[MaxValueDivisor: 1000000.000]
//! "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
//! Tag=db.query,1700000000.000,1.000,0.187,HISTFAAAAC94nJNpmSzMwMDAzAABzFCaEUrz...
//! ```
//!
//! - Each interval is one line: optional `Tag=<operation>,`, the start in seconds since the
//!   epoch (absolute: the base time is 0), the length in seconds, the maximum in
//!   milliseconds (the value divided by 10^6, as Java does), and the histogram in
//!   nanoseconds, V2-encoded, deflated and base64-encoded (a histogram the window log
//!   stored plain is compressed here; a deflated one is copied as stored).
//! - Histograms stored plain, and decoded ones (a rollup's) once V2-encoded, are compressed
//!   with `fdeflate`: one deflate block with a fixed
//!   Huffman table and runs of zeros only, so there is no match finder whose tables a general
//!   compressor clears for every stream (128 KiB and more: most of the time of an export,
//!   where each histogram is a few hundred bytes). Its streams are about a third longer than
//!   deflate's default level on these histograms, and any zlib inflater reads them.
//! - Lines are tagged with the operation name by default. HdrHistogram's tools read only
//!   untagged lines unless given a tag (`HistogramLogProcessor -tag db.query`); an untagged
//!   log ([`HlogWriter::untagged`]) holds one operation.
//! - Other implementations decode the highest trackable value as a signed 64-bit number: a
//!   histogram whose range reaches beyond `i64::MAX` is re-encoded with that bound, values
//!   above it counted at it.

use std::fmt;
use std::io::{self, Write};
use std::mem;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hdrhistogram::Histogram;

use super::time::format_rfc3339;
use super::{ExportError, Interval};
use crate::hist::{peek, Encoder, HistRef};

/// The `Interval_Max` column is the maximum divided by this (nanoseconds to milliseconds).
pub const MAX_VALUE_DIVISOR: f64 = 1e6;

/// Cookie of HdrHistogram's plain V2 encoding (`V2EncodingCookieBase` with the word-size
/// bits), the form the window log stores small histograms in.
const V2_PLAIN_COOKIE: [u8; 4] = (0x1c84_9303_u32 | 0x10).to_be_bytes();

/// Cookie of the V2 + deflate encoding (`V2CompressedEncodingCookieBase` with the word-size
/// bits), the form the interval log carries.
const V2_COMPRESSED_COOKIE: [u8; 4] = (0x1c84_9304_u32 | 0x10).to_be_bytes();

/// Writes intervals as an HdrHistogram interval log.
///
/// # Examples
/// ```
/// use ringmeter::export::{hlog::HlogWriter, Interval};
/// use ringmeter::hdrhistogram::Histogram;
///
/// let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
/// h.record(187_000)?;
/// let mut out = Vec::new();
/// let mut log = HlogWriter::new(&mut out);
/// log.write(&Interval::from_histogram("db.query", 1_700_000_000_000_000_000, 1_000_000_000, h))?;
/// log.finish()?;
/// let text = String::from_utf8(out)?;
/// assert!(text.lines().last().unwrap().starts_with("Tag=db.query,1700000000.000,1.000,0.187,HISTF"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HlogWriter<W: Write> {
    out: W,
    tagged: bool,
    /// The one operation of an untagged log, once seen.
    only_op: Option<Arc<str>>,
    header_written: bool,
    /// One encoder for every histogram: the V2 serializer of decoded ones, the copy of stored
    /// deflated ones.
    encoder: Encoder,
    /// A decoded histogram's plain V2 encoding, before `compress_plain`.
    plain: Vec<u8>,
    /// The V2-deflate encoding: cookie, length, zlib stream.
    buf: Vec<u8>,
    /// `buf` in base64, and a line break.
    text: Vec<u8>,
}

impl<W: Write> HlogWriter<W> {
    /// A writer whose lines are tagged with their operation's name.
    pub fn new(out: W) -> Self {
        Self::with_tags(out, true)
    }

    /// A writer of untagged lines, which HdrHistogram's tools read without a `-tag` option;
    /// every interval must then be of the same operation.
    pub fn untagged(out: W) -> Self {
        Self::with_tags(out, false)
    }

    fn with_tags(out: W, tagged: bool) -> Self {
        Self {
            out,
            tagged,
            only_op: None,
            header_written: false,
            encoder: Encoder::new(),
            plain: Vec::new(),
            buf: Vec::new(),
            text: Vec::new(),
        }
    }

    fn header(&mut self, start_unix_ns: u64) -> io::Result<()> {
        if self.header_written {
            return Ok(());
        }
        self.header_written = true;
        writeln!(
            self.out,
            "#[Logged with ringmeter {}]",
            env!("CARGO_PKG_VERSION")
        )?;
        writeln!(self.out, "#[Histogram log format version 1.3]")?;
        writeln!(
            self.out,
            "#[StartTime: {} (seconds since epoch), {}]",
            Millis(start_unix_ns),
            format_rfc3339(start_unix_ns)
        )?;
        writeln!(self.out, "#[BaseTime: 0.000 (seconds since epoch)]")?;
        writeln!(self.out, "#[MaxValueDivisor: {MAX_VALUE_DIVISOR:.3}]")?;
        writeln!(
            self.out,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )
    }

    /// Writes one interval as one line (after the header, on the first call).
    ///
    /// # Errors
    /// [`ExportError::BadName`] for an operation name that cannot be a tag (with a comma,
    /// space or line break) or, in an untagged log, a second operation;
    /// [`ExportError::Serialize`] when the histogram cannot be encoded; I/O errors.
    pub fn write(&mut self, i: &Interval) -> Result<(), ExportError> {
        if self.tagged {
            if i.op.is_empty() || i.op.contains([',', ' ', '\r', '\n', '\t']) {
                return Err(ExportError::BadName(Arc::clone(&i.op)));
            }
        } else {
            match &self.only_op {
                Some(op) if *op != i.op => return Err(ExportError::BadName(Arc::clone(&i.op))),
                Some(_) => {}
                None => self.only_op = Some(Arc::clone(&i.op)),
            }
        }
        self.header(i.start_unix_ns)?;
        let max = if i.stats.count > 0 {
            i.stats.max_ns
        } else if i.histogram.is_empty() {
            0
        } else {
            i.histogram.max()
        };
        match &i.stored_histogram {
            Some(stored) if i.histogram.is_empty() => {
                // Written as stored if already deflated (a log of format version 2), else
                // compressed here, if other implementations can read its range. Only the
                // header is read first: of a deflated histogram, only its 40 bytes are
                // inflated (inflating it all was most of an `hlog` dump).
                match peek(stored) {
                    Ok(header) if header.high <= i64::MAX as u64 => {}
                    Ok(_) => {
                        return Err(ExportError::Serialize {
                            op: Arc::clone(&i.op),
                            reason: "its highest trackable value exceeds i64::MAX; decode and \
                                     re-encode it (with a rollup of one window length)"
                                .into(),
                        })
                    }
                    Err(reason) => {
                        return Err(ExportError::Serialize {
                            op: Arc::clone(&i.op),
                            reason: format!("the stored histogram is unreadable: {reason}"),
                        })
                    }
                }
                let mut encoded = mem::take(&mut self.buf);
                encoded.clear();
                let deflated = if stored.starts_with(&V2_PLAIN_COOKIE) {
                    compress_plain(stored, &mut encoded)
                } else {
                    self.encoder
                        .deflate_stored(stored, &mut encoded)
                        .map(drop)
                        .map_err(|e| e.to_string())
                };
                let written = match deflated {
                    Ok(()) => self.line(i, max, &encoded).map_err(ExportError::from),
                    Err(reason) => Err(ExportError::Serialize {
                        op: Arc::clone(&i.op),
                        reason,
                    }),
                };
                self.buf = encoded;
                written?;
            }
            _ => {
                let clamped;
                let h = if i.histogram.high() > i64::MAX as u64 {
                    clamped =
                        clamp_to_i64(&i.histogram).map_err(|reason| ExportError::Serialize {
                            op: Arc::clone(&i.op),
                            reason,
                        })?;
                    &clamped
                } else {
                    &i.histogram
                };
                self.encode(h).map_err(|reason| ExportError::Serialize {
                    op: Arc::clone(&i.op),
                    reason,
                })?;
                let encoded = mem::take(&mut self.buf);
                let written = self.line(i, max, &encoded);
                self.buf = encoded;
                written?;
            }
        }
        Ok(())
    }

    /// Writes one interval line with the encoded histogram `encoded`.
    fn line(&mut self, i: &Interval, max: u64, encoded: &[u8]) -> io::Result<()> {
        if self.tagged {
            write!(self.out, "Tag={},", i.op)?;
        }
        write!(
            self.out,
            "{},{},{:.3},",
            Millis(i.start_unix_ns),
            Millis(i.length_ns),
            max as f64 / MAX_VALUE_DIVISOR
        )?;
        // Encoded into a buffer of the exact length: cheaper than through a `String`.
        let len = base64::encoded_len(encoded.len(), true).ok_or(io::ErrorKind::InvalidInput)?;
        self.text.clear();
        self.text.resize(len + 1, b'\n');
        let written = BASE64
            .encode_slice(encoded, &mut self.text[..len])
            .map_err(|_| io::ErrorKind::InvalidInput)?;
        debug_assert_eq!(written, len);
        self.out.write_all(&self.text)
    }

    /// Encodes `h` into `buf` as HdrHistogram's V2 deflate encoding: plain V2, compressed as
    /// a stored plain histogram is (`compress_plain`; a general compressor's per-stream set-up
    /// cost more than the compression of a rollup's histogram).
    fn encode(&mut self, h: &Histogram<u64>) -> Result<(), String> {
        self.plain.clear();
        self.encoder
            .encode_plain(HistRef::Hdr(h), &mut self.plain)
            .map_err(|e| e.to_string())?;
        self.buf.clear();
        compress_plain(&self.plain, &mut self.buf)
    }

    /// Flushes and returns the output. A log without intervals gets no header.
    ///
    /// # Errors
    /// The output's I/O error.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> fmt::Debug for HlogWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HlogWriter")
            .field("tagged", &self.tagged)
            .field("only_op", &self.only_op)
            .finish_non_exhaustive()
    }
}

/// A copy of `h` with a highest trackable value of `i64::MAX`.
fn clamp_to_i64(h: &Histogram<u64>) -> Result<Histogram<u64>, String> {
    let high = i64::MAX as u64;
    let mut out = Histogram::new_with_bounds(h.low().min(high / 2), high, h.sigfig())
        .map_err(|e| format!("{e:?}"))?;
    for v in h.iter_recorded() {
        out.record_n(v.value_iterated_to().min(high), v.count_at_value())
            .map_err(|e| format!("{e:?}"))?;
    }
    Ok(out)
}

/// Appends the V2 + deflate encoding of `plain`, a checked plain V2 encoding, to `out`:
/// cookie, stream length, and a zlib stream from `fdeflate` (see the module docs).
fn compress_plain(plain: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let start = out.len();
    out.extend_from_slice(&V2_COMPRESSED_COOKIE);
    out.extend_from_slice(&[0; 4]);
    let mut z = fdeflate::Compressor::new(&mut *out).map_err(|e| e.to_string())?;
    z.write_data(plain).map_err(|e| e.to_string())?;
    z.finish().map_err(|e| e.to_string())?;
    let len =
        u32::try_from(out.len() - start - 8).map_err(|_| "histogram too large".to_string())?;
    out[start + 4..start + 8].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Nanoseconds as seconds with three decimals, truncated (`1700000000.000`).
struct Millis(u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:03}",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000 / 1_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(BASE64.encode(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn the_rust_reader_gets_the_histograms_back() {
        let mut a = Histogram::<u64>::new_with_bounds(1, 60 * S, 3).unwrap();
        a.record(1_000).unwrap();
        a.record(250_000).unwrap();
        let mut b = Histogram::<u64>::new_with_bounds(1, 60 * S, 3).unwrap();
        b.record(5).unwrap();
        let start = 1_700_000_000 * S + 500_000_000;
        let mut log = HlogWriter::new(Vec::new());
        log.write(&Interval::from_histogram("a.x", start, S, a.clone()))
            .unwrap();
        log.write(&Interval::from_histogram("b", start + S, S / 2, b.clone()))
            .unwrap();
        let text = log.finish().unwrap();
        let mut hists = Vec::new();
        for entry in IntervalLogIterator::new(&text) {
            if let LogEntry::Interval(i) = entry.unwrap() {
                let bytes = BASE64.decode(i.encoded_histogram()).unwrap();
                let h: Histogram<u64> = Deserializer::new()
                    .deserialize(&mut bytes.as_slice())
                    .unwrap();
                hists.push((
                    i.tag().map(|t| t.as_str().to_owned()),
                    i.start_timestamp().as_millis(),
                    i.duration().as_millis(),
                    i.max(),
                    h,
                ));
            }
        }
        assert_eq!(hists.len(), 2);
        assert_eq!(hists[0].0.as_deref(), Some("a.x"));
        assert_eq!(hists[0].1, 1_700_000_000_500);
        assert_eq!(hists[0].2, 1000);
        assert!((hists[0].3 - 0.25).abs() < 0.001);
        assert_eq!(hists[0].4, a);
        assert_eq!((hists[1].0.as_deref(), hists[1].2), (Some("b"), 500));
        assert_eq!(hists[1].4, b);
    }

    #[test]
    fn plain_stored_histograms_are_compressed_into_what_readers_decode() {
        use hdrhistogram::serialization::{Serializer, V2Serializer};

        let mut h = Histogram::<u64>::new_with_bounds(1, 60 * S, 3).unwrap();
        for v in [0, 1, 1_000, 1_001, 250_000, 59 * S] {
            h.record_n(v.max(1), v % 7 + 1).unwrap();
        }
        let mut plain = Vec::new();
        V2Serializer::new().serialize(&h, &mut plain).unwrap();
        assert!(plain.starts_with(&V2_PLAIN_COOKIE));
        let mut i = Interval::from_histogram("p", 0, S, Histogram::new(1).unwrap());
        i.stats.count = h.len();
        i.stats.max_ns = h.max();
        i.stored_histogram = Some(plain);
        let mut log = HlogWriter::new(Vec::new());
        log.write(&i).unwrap();
        assert!(log.buf.starts_with(&V2_COMPRESSED_COOKIE));
        let text = log.finish().unwrap();
        let entry = IntervalLogIterator::new(&text)
            .find_map(|e| match e.unwrap() {
                LogEntry::Interval(i) => Some(i),
                _ => None,
            })
            .unwrap();
        let bytes = BASE64.decode(entry.encoded_histogram()).unwrap();
        let got: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .unwrap();
        assert_eq!(got, h);
    }

    #[test]
    fn untagged_logs_hold_one_operation() {
        let h = Histogram::<u64>::new(2).unwrap();
        let mut log = HlogWriter::untagged(Vec::new());
        log.write(&Interval::from_histogram("a", 0, S, h.clone()))
            .unwrap();
        log.write(&Interval::from_histogram("a", S, S, h.clone()))
            .unwrap();
        assert!(matches!(
            log.write(&Interval::from_histogram("b", S, S, h.clone())),
            Err(ExportError::BadName(_))
        ));
        let text = String::from_utf8(log.finish().unwrap()).unwrap();
        assert!(text
            .lines()
            .last()
            .unwrap()
            .starts_with("1.000,1.000,0.000,HISTF"));
        let mut tagged = HlogWriter::new(Vec::new());
        assert!(tagged
            .write(&Interval::from_histogram("a b", 0, S, h))
            .is_err());
    }

    #[test]
    fn a_range_beyond_i64_is_clamped() {
        let mut h = Histogram::<u64>::new_with_bounds(1, u64::MAX, 2).unwrap();
        h.record(u64::MAX - 5).unwrap();
        h.record(7).unwrap();
        let c = clamp_to_i64(&h).unwrap();
        assert_eq!(c.high(), i64::MAX as u64);
        assert_eq!(c.len(), 2);
        assert!(c.max() >= (i64::MAX as u64) / 100 * 99);
    }

    #[test]
    fn stored_histograms_are_written_as_stored() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60 * S, 3).unwrap();
        h.record(1_234).unwrap();
        h.record(98_765).unwrap();
        let decoded = Interval::from_histogram("a", 0, S, h.clone());
        let mut log = HlogWriter::new(Vec::new());
        log.write(&decoded).unwrap();
        let stored = log.buf.clone();
        let mut from_log = decoded.clone();
        from_log.histogram = Histogram::new(1).unwrap();
        from_log.stored_histogram = Some(stored);
        log.write(&from_log).unwrap();
        let text = String::from_utf8(log.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().rev().take(2).collect();
        assert_eq!(lines[0], lines[1]);

        let mut wide = Histogram::<u64>::new_with_bounds(1, u64::MAX, 2).unwrap();
        wide.record(5).unwrap();
        let mut enc = HlogWriter::new(Vec::new());
        enc.encode(&wide).unwrap();
        let mut i = Interval::from_histogram("w", 0, S, Histogram::new(1).unwrap());
        i.stats.count = 1;
        i.stored_histogram = Some(enc.buf.clone());
        assert!(matches!(
            HlogWriter::new(Vec::new()).write(&i),
            Err(ExportError::Serialize { .. })
        ));
        i.stored_histogram = Some(b"junk".to_vec());
        assert!(HlogWriter::new(Vec::new()).write(&i).is_err());
    }
}
