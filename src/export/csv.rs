//! CSV (RFC 4180): a header row, then one row per interval.
//!
//! The columns are those of the [JSON schema](super::json), in the same order:
//! `op,start_unix_ns,length_ns,count,errors,slow,dropped,late,unsampled,min_ns,max_ns,`
//! `mean_ns,stddev_ns,p50_ns,p90_ns,p95_ns,p99_ns,p999_ns`. Lines end with CRLF as the RFC asks; an
//! operation name with a comma, quote or line break is quoted.

use std::io::{self, Write};

use super::Interval;

/// The header row (without its line ending).
pub const HEADER: &str = "op,start_unix_ns,length_ns,count,errors,slow,dropped,late,\
                          unsampled,min_ns,max_ns,mean_ns,stddev_ns,p50_ns,p90_ns,p95_ns,p99_ns,p999_ns";

/// Writes intervals as CSV rows, after the header row.
#[derive(Debug)]
pub struct CsvWriter<W: Write> {
    out: W,
    header_written: bool,
}

impl<W: Write> CsvWriter<W> {
    /// A writer onto `out`; the header row is written with the first row, or by
    /// [`finish`](Self::finish) when there is none.
    pub fn new(out: W) -> Self {
        Self {
            out,
            header_written: false,
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.header_written = true;
            write!(self.out, "{HEADER}\r\n")?;
        }
        Ok(())
    }

    /// Writes one interval as one row.
    ///
    /// # Errors
    /// The output's I/O error.
    pub fn write(&mut self, i: &Interval) -> io::Result<()> {
        self.header()?;
        if i.op.contains([',', '"', '\r', '\n']) {
            write!(self.out, "\"{}\"", i.op.replace('"', "\"\""))?;
        } else {
            self.out.write_all(i.op.as_bytes())?;
        }
        for v in i.columns() {
            write!(self.out, ",{v}")?;
        }
        self.out.write_all(b"\r\n")
    }

    /// Writes the header if no row was written, flushes, and returns the output.
    ///
    /// # Errors
    /// The output's I/O error.
    pub fn finish(mut self) -> io::Result<W> {
        self.header()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use hdrhistogram::Histogram;

    use super::*;

    #[test]
    fn header_and_quoted_rows() {
        let h = Histogram::<u64>::new(3).unwrap();
        let mut w = CsvWriter::new(Vec::new());
        w.write(&Interval::from_histogram("a,\"b\"", 1, 2, h))
            .unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let rows: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(rows[0], HEADER);
        assert_eq!(rows[1], "\"a,\"\"b\"\"\",1,2,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0");
        assert_eq!(rows[2], "");
        assert_eq!(HEADER.split(',').count(), rows[1].split(',').count() - 1);
    }

    #[test]
    fn header_names_the_shared_columns() {
        assert_eq!(HEADER, format!("op,{}", super::super::COLUMNS.join(",")));
    }

    #[test]
    fn header_alone_when_empty() {
        let w = CsvWriter::new(Vec::new());
        assert_eq!(w.finish().unwrap(), format!("{HEADER}\r\n").into_bytes());
    }
}
