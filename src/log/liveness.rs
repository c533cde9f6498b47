//! Whether a writer is live on a log directory, found without taking its lock.
//!
//! Every writer holds an advisory lock (`flock`) on [`LOCK_FILE`] for its whole life
//! (`writer.rs`). A reader must not take that lock to test it, even for an instant: a writer
//! starting in that instant would fail with `LogError::Locked`. On Linux the kernel lists
//! every `flock` lock in `/proc/locks` (what `lslocks` reads), so the reader looks there for
//! a lock on the lock file's inode. Elsewhere it cannot tell.

use std::path::Path;

use super::LOCK_FILE;

/// Whether a process holds a log directory's writer lock ([`LOCK_FILE`]), as far as the
/// system can tell without taking it. See [`writer_state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriterState {
    /// A writer holds the lock: the newest segment may still grow.
    Live {
        /// Its process id, when known.
        pid: Option<u32>,
    },
    /// No process holds the lock: the log is closed. Its newest segment never grows again
    /// (a new writer starts a new segment), so what it lacks now is missing: an unsealed
    /// newest segment means its writer was killed before it wrote its last windows.
    Closed,
    /// This system cannot tell (no `/proc/locks`): readers assume a writer may be live.
    Unknown,
}

/// Whether a writer holds the lock of the log directory `dir` (for a segment file, give its
/// directory).
///
/// - [`WriterState::Live`] when the kernel lists an `flock` lock on `dir/writer.lock`, or,
///   when it lists none, if the process whose id the lock file records is running (the lock
///   may be invisible from here, e.g. held in another mount or pid namespace): in doubt, a
///   writer is assumed.
/// - [`WriterState::Closed`] when no writer holds it, or when there is no lock file at all
///   (every writer of format version 2 creates one; a log without one was copied without
///   it or written by format version 1, whose writers took no lock).
/// - [`WriterState::Unknown`] off Linux, or when `/proc/locks` cannot be read.
///
/// The answer can be stale as soon as it is given: a writer may start or stop right after.
///
/// # Examples
/// ```
/// use ringmeter::log::{writer_state, Writer, LogConfig, WriterState};
/// let dir = std::env::temp_dir().join(format!("ringmeter-doc-state-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let writer = Writer::open(LogConfig::new(&dir)).unwrap();
/// # if cfg!(target_os = "linux") {
/// assert!(matches!(writer_state(&dir), WriterState::Live { .. }));
/// drop(writer);
/// assert_eq!(writer_state(&dir), WriterState::Closed);
/// # }
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn writer_state(dir: &Path) -> WriterState {
    #[cfg(target_os = "linux")]
    {
        linux::writer_state(dir)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        WriterState::Unknown
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    use super::{WriterState, LOCK_FILE};

    pub(super) fn writer_state(dir: &Path) -> WriterState {
        let path = dir.join(LOCK_FILE);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return WriterState::Closed,
            Err(_) => return WriterState::Unknown,
        };
        let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
            return WriterState::Unknown;
        };
        if let Some(pid) = flock_holder(&locks, meta.ino()) {
            return WriterState::Live { pid };
        }
        // Not listed: unless the recorded writer is still running, the log is closed.
        let recorded = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        match recorded {
            Some(pid) if pid != 0 && Path::new(&format!("/proc/{pid}")).exists() => {
                WriterState::Live { pid: Some(pid) }
            }
            _ => WriterState::Closed,
        }
    }

    /// The holder of an `flock` lock on inode `ino` in the text of `/proc/locks`: `Some` of
    /// its pid (`None` inside when the kernel shows none) if there is one.
    ///
    /// Lines read `1: FLOCK  ADVISORY  WRITE 4242 fd:00:1056936 0 EOF`; a process waiting
    /// for a lock has `->` after the number. The inode alone is compared, not the device:
    /// on btrfs `stat` reports a subvolume's device, not the one the kernel lists, and a
    /// lock on another file with the same inode number only makes the log look live.
    pub(super) fn flock_holder(locks: &str, ino: u64) -> Option<Option<u32>> {
        locks.lines().find_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let mut kind = fields.next()?;
            if kind == "->" {
                return None;
            }
            if kind != "FLOCK" {
                kind = "";
            }
            let _mode = fields.next()?;
            let _access = fields.next()?;
            let pid = fields.next()?.parse::<i64>().ok();
            let id = fields.next()?;
            let inode = id.rsplit(':').next()?.parse::<u64>().ok()?;
            (!kind.is_empty() && inode == ino)
                .then(|| pid.and_then(|p| u32::try_from(p).ok()).filter(|&p| p != 0))
        })
    }

    #[cfg(test)]
    mod tests {
        use super::flock_holder;

        #[test]
        fn proc_locks_lines() {
            let text = "1: POSIX  ADVISORY  WRITE 10 00:1a:77 0 EOF\n\
                        2: -> FLOCK  ADVISORY  WRITE 11 fd:00:77 0 EOF\n\
                        3: FLOCK  ADVISORY  WRITE 12 fd:00:78 0 EOF\n\
                        4: FLOCK  ADVISORY  WRITE 13 fd:00:77 0 EOF\n";
            assert_eq!(flock_holder(text, 77), Some(Some(13)));
            assert_eq!(flock_holder(text, 78), Some(Some(12)));
            assert_eq!(flock_holder(text, 79), None);
            assert_eq!(
                flock_holder("1: FLOCK ADVISORY WRITE 0 08:01:5 0 EOF", 5),
                Some(None)
            );
            assert_eq!(flock_holder("garbage\n\n1:", 5), None);
        }

        /// Without a lock listed, the process the lock file names decides: running (pid 1
        /// always is) means live, gone or unnamed means closed, as does no file at all.
        #[test]
        fn an_unlisted_lock_falls_back_to_the_recorded_process() {
            use super::super::{writer_state, WriterState, LOCK_FILE};
            let dir =
                std::env::temp_dir().join(format!("ringmeter-liveness-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            assert_eq!(writer_state(&dir), WriterState::Closed);
            let lock = dir.join(LOCK_FILE);
            for (text, want) in [
                ("1\n", WriterState::Live { pid: Some(1) }),
                ("4000000000\n", WriterState::Closed),
                ("", WriterState::Closed),
                ("not a pid", WriterState::Closed),
            ] {
                std::fs::write(&lock, text).unwrap();
                assert_eq!(writer_state(&dir), want, "{text:?}");
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
