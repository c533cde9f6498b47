//! Where every subcommand writes: one buffered writer for standard output or a `-o` file,
//! and messages on standard error.
//!
//! A shell closes a pipe early (`ringmeter stats DIR | head -1`) or hands over a full device
//! (`> /dev/full`). Nothing here panics on either: the first failed write is kept, and
//! `main` turns it into the exit status: a closed pipe on standard output ends the command
//! quietly with status 0 (what `head` asked for), any other write error ends it with one
//! message and status 1.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Bytes kept before they are written out.
const BUFFER: usize = 1 << 16;

/// The first write that failed in this process: where, and the error.
static FAILED: OnceLock<WriteFailure> = OnceLock::new();

/// A write that failed, as [`failure`] reports it.
#[derive(Debug)]
pub struct WriteFailure {
    /// Where the bytes were going.
    pub dest: Dest,
    /// The operating system's error.
    pub error: io::Error,
}

impl WriteFailure {
    /// Whether the reader of standard output went away (`EPIPE`): not an error of ours.
    pub fn is_closed_stdout(&self) -> bool {
        self.dest == Dest::Stdout && self.error.kind() == io::ErrorKind::BrokenPipe
    }
}

impl fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write to {}: {}", self.dest, self.error)
    }
}

/// The first write failure of the process, if any.
pub fn failure() -> Option<&'static WriteFailure> {
    FAILED.get()
}

/// Where output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// Standard output.
    Stdout,
    /// A file named with `-o`.
    File(PathBuf),
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Stdout => f.write_str("standard output"),
            Dest::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The buffered output of a subcommand. Every write error is recorded (see [`failure`])
/// before it is returned, so callers propagate it with `?` and need not tell it apart from
/// their other errors.
pub struct Out {
    dest: Dest,
    sink: Box<dyn Write>,
    buf: Vec<u8>,
    /// Whether write errors are only recorded, not returned (see [`Out::stdout_to_the_end`]).
    to_the_end: bool,
}

impl Out {
    /// Standard output.
    pub fn stdout() -> Out {
        Out::new(Dest::Stdout, Box::new(io::stdout()))
    }

    /// Standard output for a command whose result is its exit code (`check`): a failed
    /// write is recorded for `main` but not returned, so the command runs to its end. On a
    /// closed pipe the exit code is then the command's own; on any other write error it is 1.
    pub fn stdout_to_the_end() -> Out {
        let mut out = Out::stdout();
        out.to_the_end = true;
        out
    }

    /// A new file at `path` (truncated if it exists).
    pub fn create(path: &Path) -> anyhow::Result<Out> {
        let file = File::create(path)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {}", path.display(), e))?;
        Ok(Out::new(Dest::File(path.to_owned()), Box::new(file)))
    }

    fn new(dest: Dest, sink: Box<dyn Write>) -> Out {
        Out {
            dest,
            sink,
            buf: Vec::with_capacity(BUFFER),
            to_the_end: false,
        }
    }

    /// Drops what was written but not yet flushed.
    pub fn discard(&mut self) {
        self.buf.clear();
    }

    /// Records `error` (the first one of the process wins) and hands it back.
    fn fail(&self, error: io::Error) -> io::Error {
        let copy = match error.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(error.kind(), error.to_string()),
        };
        let _ = FAILED.set(WriteFailure {
            dest: self.dest.clone(),
            error: copy,
        });
        error
    }

    fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.sink.write_all(&self.buf);
        self.buf.clear();
        self.returned(r)
    }

    /// `r`, with its error recorded, and dropped when writing to the end.
    fn returned(&self, r: io::Result<()>) -> io::Result<()> {
        match r.map_err(|e| self.fail(e)) {
            Err(_) if self.to_the_end => Ok(()),
            r => r,
        }
    }
}

impl Write for Out {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= BUFFER {
            self.write_out()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()?;
        let r = self.sink.flush();
        self.returned(r)
    }
}

impl Drop for Out {
    /// Writes out what is left, on the way out of an early return; a failure is recorded
    /// for `main` to report.
    fn drop(&mut self) {
        if self.write_out().is_ok() {
            let _ = self.sink.flush().map_err(|e| self.fail(e));
        }
    }
}

/// Writes one line to `$out` (an [`Out`]) and returns from the enclosing function on error.
macro_rules! outln {
    ($out:expr) => {
        ::std::io::Write::write_all($out, b"\n")?
    };
    ($out:expr, $($arg:tt)*) => {{
        ::std::io::Write::write_fmt($out, format_args!($($arg)*))?;
        ::std::io::Write::write_all($out, b"\n")?
    }};
}
pub(crate) use outln;

/// Writes a message line to standard error. A closed or failing standard error is ignored:
/// there is nowhere left to say so.
pub fn warn(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}
