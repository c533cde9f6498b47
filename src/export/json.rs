//! Line-delimited JSON: one object per interval, one interval per line.
//!
//! # Schema
//! Every line is a JSON object with exactly these members, in this order:
//!
//! | member | type | meaning |
//! |---|---|---|
//! | `op` | string | operation name |
//! | `start_unix_ns` | integer | interval start, nanoseconds since the Unix epoch |
//! | `length_ns` | integer | interval length in nanoseconds |
//! | `count` | integer | calls recorded (their durations are in the histogram) |
//! | `errors` | integer | failed calls, including failures among dropped calls |
//! | `slow` | integer | recorded calls longer than the slow threshold |
//! | `dropped` | integer | calls lost to a full ring |
//! | `late` | integer | calls counted here after their own window had closed |
//! | `unsampled` | integer | calls skipped by sampling: counted, not timed |
//! | `min_ns`, `max_ns` | integer | exact shortest and longest recorded durations (0 when `count` is 0) |
//! | `mean_ns`, `stddev_ns` | number | mean and population standard deviation |
//! | `p50_ns`, `p90_ns`, `p95_ns`, `p99_ns`, `p999_ns` | integer | percentiles, within the histogram's precision |
//!
//! Integers are unsigned 64-bit: readers that parse JSON numbers as doubles (JavaScript) lose
//! precision above 2^53 (timestamps keep microseconds). New members may be added at the end
//! in later versions; existing ones keep their meaning.

use std::io::{self, Write};

use super::{Interval, COLUMNS};

/// Writes intervals as line-delimited JSON.
#[derive(Debug)]
pub struct JsonWriter<W: Write> {
    out: W,
}

impl<W: Write> JsonWriter<W> {
    /// A writer onto `out` (buffer it: each interval is several small writes).
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Writes one interval as one line.
    ///
    /// # Errors
    /// The output's I/O error.
    pub fn write(&mut self, i: &Interval) -> io::Result<()> {
        self.out.write_all(b"{\"op\":")?;
        write_str(&mut self.out, &i.op)?;
        for (name, v) in COLUMNS.iter().zip(i.columns()) {
            write!(self.out, ",\"{name}\":{v}")?;
        }
        self.out.write_all(b"}\n")
    }

    /// Flushes and returns the output.
    ///
    /// # Errors
    /// The output's I/O error.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes `s` as a JSON string.
pub(crate) fn write_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(b"\"")?;
    let mut rest = s;
    while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
        out.write_all(&rest.as_bytes()[..at])?;
        let c = rest[at..].chars().next().unwrap_or(' ');
        match c {
            '"' => out.write_all(b"\\\"")?,
            '\\' => out.write_all(b"\\\\")?,
            '\n' => out.write_all(b"\\n")?,
            '\r' => out.write_all(b"\\r")?,
            '\t' => out.write_all(b"\\t")?,
            c => write!(out, "\\u{:04x}", c as u32)?,
        }
        rest = &rest[at + 1..];
    }
    out.write_all(rest.as_bytes())?;
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use hdrhistogram::Histogram;

    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn one_line_per_interval() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
        h.record(1500).unwrap();
        let i = Interval::from_histogram("x.y", 5, 10, h);
        let mut w = JsonWriter::new(Vec::new());
        w.write(&i).unwrap();
        w.write(&i).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            "{\"op\":\"x.y\",\"start_unix_ns\":5,\"length_ns\":10,\"count\":1,\"errors\":0,\
             \"slow\":0,\"dropped\":0,\"late\":0,\"unsampled\":0,\"min_ns\":1500,\"max_ns\":1500,\
             \"mean_ns\":1500,\"stddev_ns\":0,\"p50_ns\":1500,\"p90_ns\":1500,\"p95_ns\":1500,\
             \"p99_ns\":1500,\"p999_ns\":1500}"
        );
    }
}
