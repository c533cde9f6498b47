//! The rows `dump --format json` and `--format csv` write: one [`Row`] per interval,
//! serialized by `serde_json` (one object per line) and `csv` (a header row, then one row per
//! interval, CRLF line endings). The members, their order and their meaning are the schema of
//! docs/cli.md, which `ringmeter::export::json` documents too.

use std::io::{self, Write};

use ringmeter::export::Interval;
use serde::{Serialize, Serializer};

/// One interval as the CLI's JSON and CSV carry it.
#[derive(Debug, Serialize)]
pub struct Row<'a> {
    op: &'a str,
    start_unix_ns: u64,
    length_ns: u64,
    count: u64,
    errors: u64,
    slow: u64,
    dropped: u64,
    late: u64,
    unsampled: u64,
    min_ns: u64,
    max_ns: u64,
    mean_ns: Number,
    stddev_ns: Number,
    p50_ns: u64,
    p90_ns: u64,
    p95_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
}

impl<'a> Row<'a> {
    /// The row of `i`.
    pub fn new(i: &'a Interval) -> Row<'a> {
        let s = &i.stats;
        Row {
            op: &i.op,
            start_unix_ns: i.start_unix_ns,
            length_ns: i.length_ns,
            count: s.count,
            errors: s.errors,
            slow: s.slow,
            dropped: s.dropped,
            late: s.late,
            unsampled: s.unsampled,
            min_ns: s.min_ns,
            max_ns: s.max_ns,
            mean_ns: Number(s.mean_ns),
            stddev_ns: Number(s.stddev_ns),
            p50_ns: s.p50_ns,
            p90_ns: s.p90_ns,
            p95_ns: s.p95_ns,
            p99_ns: s.p99_ns,
            p999_ns: s.p999_ns,
        }
    }
}

/// A mean or deviation: a whole number is written as an integer (`500500`, not `500500.0`),
/// anything else as the shortest decimal that reads back as the same `f64`, and a value that
/// is not finite (no calls) as 0, so that every reader of the schema's "number" accepts it.
#[derive(Clone, Copy, Debug)]
pub struct Number(pub f64);

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if !v.is_finite() {
            s.serialize_u64(0)
        } else if v.fract() == 0.0 && v.abs() < 9.0e18 {
            s.serialize_i64(v as i64)
        } else {
            s.serialize_f64(v)
        }
    }
}

/// Writes rows as line-delimited JSON.
pub struct JsonRows<W: Write> {
    out: W,
}

impl<W: Write> JsonRows<W> {
    /// Rows onto `out` (buffered by the caller).
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Writes `i` as one line.
    ///
    /// # Errors
    /// The output's I/O error.
    pub fn write(&mut self, i: &Interval) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, &Row::new(i))?;
        self.out.write_all(b"\n")
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

/// Writes rows as CSV: the header row (from [`Row`]'s member names) with the first row.
pub struct CsvRows<W: Write> {
    out: csv::Writer<W>,
}

impl<W: Write> CsvRows<W> {
    /// Rows onto `out`; RFC 4180: CRLF line endings, a field quoted only when it must be.
    pub fn new(out: W) -> Self {
        let out = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(out);
        Self { out }
    }

    /// Writes `i` as one row (after the header row, the first time).
    ///
    /// # Errors
    /// The output's I/O error.
    pub fn write(&mut self, i: &Interval) -> io::Result<()> {
        self.out.serialize(Row::new(i)).map_err(csv_error)
    }

    /// Flushes and returns the output.
    ///
    /// # Errors
    /// The output's I/O error.
    pub fn finish(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// The I/O error inside a `csv` error (a row of numbers and a name cannot fail otherwise).
fn csv_error(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use ringmeter::hdrhistogram::Histogram;

    use super::*;

    fn interval(op: &str, mean: f64) -> Interval {
        let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
        h.record(1500).unwrap();
        let mut i = Interval::from_histogram(op, 5, 10, h);
        i.stats.mean_ns = mean;
        i
    }

    #[test]
    fn json_numbers_as_the_schema_writes_them() {
        let mut w = JsonRows::new(Vec::new());
        for mean in [1500.0, 2.5, f64::NAN] {
            w.write(&interval("x.y", mean)).unwrap();
        }
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "{\"op\":\"x.y\",\"start_unix_ns\":5,\"length_ns\":10,\"count\":1,\"errors\":0,\
             \"slow\":0,\"dropped\":0,\"late\":0,\"unsampled\":0,\"min_ns\":1500,\"max_ns\":1500,\
             \"mean_ns\":1500,\"stddev_ns\":0,\"p50_ns\":1500,\"p90_ns\":1500,\"p95_ns\":1500,\
             \"p99_ns\":1500,\"p999_ns\":1500}"
        );
        assert!(lines[1].contains("\"mean_ns\":2.5,"));
        assert!(lines[2].contains("\"mean_ns\":0,"));
    }

    #[test]
    fn csv_header_once_and_quoted_names() {
        let mut w = CsvRows::new(Vec::new());
        w.write(&interval("a,\"b\"", 1.0)).unwrap();
        w.write(&interval("c", 1.0)).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], ringmeter::export::csv::HEADER);
        assert!(lines[1].starts_with("\"a,\"\"b\"\"\",5,10,1,"));
        assert!(lines[2].starts_with("c,5,10,1,"));
        assert_eq!(lines.len(), 4);
    }
}
