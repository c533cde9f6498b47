//! Process gauges: resident and virtual memory, heap in use, CPU time, threads and file
//! descriptors of the running process, read once per window by the aggregator when it
//! closes the window (never by the hot path), and the flag raised when resident memory keeps
//! rising.
//!
//! | type | role |
//! |---|---|
//! | [`ProcessSample`] | one reading; every figure is `None` where the platform does not give it |
//! | [`ProcessReader`] | reads the figures from the operating system (`/proc/self` on Linux, through the `procfs` crate) |
//! | [`ProcessStats`] | what a [`WindowReport`](crate::WindowReport) and a [`Snapshot`](crate::Snapshot) carry: the sample, when it was taken, the growth flag |
//!
//! The engine reads through a [`ProcessReader`] unless the program gives its own sampler
//! ([`Builder::process_sampler`](crate::Builder::process_sampler)): that is how a program
//! adds the heap figure of its allocator, and how tests feed made-up samples.
//!
//! **Growth flag.** A window whose resident memory is above the previous window's is a rise;
//! one below it is a fall; an equal one is neither. The flag is set while the rises since the
//! last fall (or since the figure was last unavailable) number at least
//! [`Builder::rss_growth_windows`](crate::Builder::rss_growth_windows) (default
//! [`DEFAULT_RSS_GROWTH_WINDOWS`](crate::limits::DEFAULT_RSS_GROWTH_WINDOWS); 0 turns the
//! flag off).
//!
//! This module imports nothing from the crate: the report types, the log and the exports read
//! its types.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// One reading of the process's resources. A figure the platform (or the sampler) does not
/// give is `None`.
///
/// # Examples
/// ```
/// use ringmeter::ProcessSample;
/// let s = ProcessSample::default().with_resident_bytes(64 << 20).with_threads(4);
/// assert_eq!((s.resident_bytes, s.threads, s.open_fds), (Some(64 << 20), Some(4), None));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ProcessSample {
    /// Resident set size: bytes of the process's memory in RAM (Linux: `/proc/self/stat`
    /// `rss` × page size).
    pub resident_bytes: Option<u64>,
    /// Virtual memory size in bytes (Linux: `vsize`).
    pub virtual_bytes: Option<u64>,
    /// Bytes of heap in use, as the program's allocator reports them. The engine cannot know
    /// which global allocator a program uses, so it reads none itself: a program supplies the
    /// figure through [`Builder::process_sampler`](crate::Builder::process_sampler).
    pub heap_bytes: Option<u64>,
    /// CPU time spent in user mode by all threads, in nanoseconds (Linux: `utime`, whose
    /// resolution is a clock tick, usually 10 ms).
    pub cpu_user_ns: Option<u64>,
    /// CPU time spent in the kernel on the process's behalf, in nanoseconds (Linux: `stime`).
    pub cpu_system_ns: Option<u64>,
    /// Threads of the process.
    pub threads: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors (`None` also when unlimited).
    pub max_fds: Option<u64>,
    /// When the process started, in nanoseconds since the Unix epoch (Linux: to the clock
    /// tick).
    pub start_unix_ns: Option<u64>,
}

impl ProcessSample {
    /// One reading of the running process (a new [`ProcessReader`]; keep one for repeated
    /// readings, it keeps `/proc/self` open).
    pub fn read() -> Self {
        ProcessReader::new().read()
    }

    /// User and system CPU time together, if both are known.
    pub fn cpu_ns(&self) -> Option<u64> {
        Some(self.cpu_user_ns?.saturating_add(self.cpu_system_ns?))
    }

    /// The same sample with `resident_bytes` set.
    pub fn with_resident_bytes(mut self, bytes: u64) -> Self {
        self.resident_bytes = Some(bytes);
        self
    }

    /// The same sample with `virtual_bytes` set.
    pub fn with_virtual_bytes(mut self, bytes: u64) -> Self {
        self.virtual_bytes = Some(bytes);
        self
    }

    /// The same sample with `heap_bytes` set: for a sampler that adds its allocator's figure
    /// to [`ProcessReader::read`].
    ///
    /// # Examples
    /// ```
    /// use ringmeter::ProcessReader;
    /// let mut os = ProcessReader::new();
    /// let engine = ringmeter::Engine::builder()
    ///     // e.g. jemalloc's `stats.allocated`, or a counting global allocator
    ///     .process_sampler(move || os.read().with_heap_bytes(12_345))
    ///     .start_manual()?;
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn with_heap_bytes(mut self, bytes: u64) -> Self {
        self.heap_bytes = Some(bytes);
        self
    }

    /// The same sample with the CPU times set, in nanoseconds.
    pub fn with_cpu_ns(mut self, user_ns: u64, system_ns: u64) -> Self {
        self.cpu_user_ns = Some(user_ns);
        self.cpu_system_ns = Some(system_ns);
        self
    }

    /// The same sample with `threads` set.
    pub fn with_threads(mut self, threads: u64) -> Self {
        self.threads = Some(threads);
        self
    }

    /// The same sample with `open_fds` and `max_fds` set (`max` `None`: unlimited).
    pub fn with_fds(mut self, open: u64, max: Option<u64>) -> Self {
        self.open_fds = Some(open);
        self.max_fds = max;
        self
    }

    /// The same sample with `start_unix_ns` set.
    pub fn with_start_unix_ns(mut self, unix_ns: u64) -> Self {
        self.start_unix_ns = Some(unix_ns);
        self
    }
}

/// The process figures published with one closed window.
///
/// # Examples
/// ```
/// let engine = ringmeter::Engine::builder().start_manual()?;
/// engine.op("job")?.record_ns(10);
/// engine.shutdown()?; // closes the window: the process is sampled
/// let p = engine.snapshot().process.expect("process gauges are on by default");
/// # #[cfg(target_os = "linux")]
/// assert!(p.sample.resident_bytes.unwrap() > 0);
/// assert!(!p.rss_growing);
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ProcessStats {
    /// When the sample was taken: the window's end, in nanoseconds since the Unix epoch (on
    /// the engine clock's scale, like the window).
    pub unix_ns: u64,
    /// The figures.
    pub sample: ProcessSample,
    /// Rises of `sample.resident_bytes` from window to window since the last fall (or since
    /// it was last unavailable); equal windows neither add nor reset.
    pub rss_rises: u32,
    /// Whether `rss_rises` has reached the engine's
    /// [`rss_growth_windows`](crate::Builder::rss_growth_windows) (never when that is 0).
    pub rss_growing: bool,
}

impl ProcessStats {
    /// A sample taken at `unix_ns`, with its growth figures.
    pub fn new(unix_ns: u64, sample: ProcessSample, rss_rises: u32, rss_growing: bool) -> Self {
        Self {
            unix_ns,
            sample,
            rss_rises,
            rss_growing,
        }
    }
}

/// Reads the running process's figures from the operating system.
///
/// On Linux every figure but the heap comes from `/proc/self` (`stat`, `limits`, and the
/// `fd` directory) through the `procfs` crate; the directory is opened once, when the reader
/// is made. On other platforms every figure is `None`.
#[derive(Debug)]
pub struct ProcessReader {
    #[cfg(target_os = "linux")]
    linux: Option<linux::Reader>,
}

impl Default for ProcessReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessReader {
    /// A reader of the running process.
    pub fn new() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            linux: linux::Reader::new(),
        }
    }

    /// One reading. A figure that cannot be read (an unsupported platform, `/proc` not
    /// mounted) is `None`; reading never fails.
    pub fn read(&mut self) -> ProcessSample {
        #[cfg(target_os = "linux")]
        if let Some(r) = &self.linux {
            return r.read();
        }
        ProcessSample::default()
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use procfs::process::{LimitValue, Process};

    use super::ProcessSample;

    /// `/proc/self`, opened once, and the constants that turn its figures into units.
    #[derive(Debug)]
    pub(super) struct Reader {
        process: Process,
        page_size: u64,
        ns_per_tick: u64,
        boot_unix_ns: Option<u64>,
    }

    impl Reader {
        pub(super) fn new() -> Option<Self> {
            let process = Process::myself().ok()?;
            let ticks = procfs::ticks_per_second().max(1);
            Some(Self {
                process,
                page_size: procfs::page_size(),
                ns_per_tick: 1_000_000_000 / ticks,
                boot_unix_ns: procfs::boot_time_secs()
                    .ok()
                    .map(|s| s.saturating_mul(1_000_000_000)),
            })
        }

        pub(super) fn read(&self) -> ProcessSample {
            let mut s = ProcessSample::default();
            if let Ok(stat) = self.process.stat() {
                s.resident_bytes = Some(stat.rss.saturating_mul(self.page_size));
                s.virtual_bytes = Some(stat.vsize);
                s.cpu_user_ns = Some(stat.utime.saturating_mul(self.ns_per_tick));
                s.cpu_system_ns = Some(stat.stime.saturating_mul(self.ns_per_tick));
                s.threads = u64::try_from(stat.num_threads).ok();
                s.start_unix_ns = self
                    .boot_unix_ns
                    .map(|b| b.saturating_add(stat.starttime.saturating_mul(self.ns_per_tick)));
            }
            s.open_fds = self
                .process
                .fd_count()
                .ok()
                .and_then(|n| u64::try_from(n).ok());
            if let Ok(limits) = self.process.limits() {
                if let LimitValue::Value(v) = limits.max_open_files.soft_limit {
                    s.max_fds = Some(v);
                }
            }
            s
        }
    }
}

/// A source of samples: the OS reader or the program's own.
pub(crate) type Sampler = Box<dyn FnMut() -> ProcessSample + Send>;

/// The growth flag's state: the previous resident figure and the rises since the last fall.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Growth {
    /// Rises that set the flag; 0: never.
    windows: u32,
    last: Option<u64>,
    rises: u32,
}

impl Growth {
    pub(crate) fn new(windows: u32) -> Self {
        Self {
            windows,
            ..Self::default()
        }
    }

    /// Takes the next window's resident figure; returns the rises so far and the flag.
    pub(crate) fn observe(&mut self, resident: Option<u64>) -> (u32, bool) {
        match (self.last, resident) {
            (Some(last), Some(now)) if now > last => self.rises = self.rises.saturating_add(1),
            (Some(last), Some(now)) if now < last => self.rises = 0,
            (Some(_), Some(_)) => {}
            _ => self.rises = 0,
        }
        self.last = resident;
        (self.rises, self.windows > 0 && self.rises >= self.windows)
    }
}

/// The aggregator's process gauges: a sampler and the growth state.
pub(crate) struct ProcessGauges {
    /// `None` after the program's sampler panicked: the figures are absent from then on.
    sampler: Option<Sampler>,
    growth: Growth,
}

impl ProcessGauges {
    /// Gauges read by `sampler` (the OS reader when `None`), flagging growth after
    /// `growth_windows` rises (0: never).
    pub(crate) fn new(sampler: Option<Sampler>, growth_windows: u32) -> Self {
        let sampler = sampler.unwrap_or_else(|| {
            let mut os = ProcessReader::new();
            Box::new(move || os.read())
        });
        Self {
            sampler: Some(sampler),
            growth: Growth::new(growth_windows),
        }
    }

    /// Samples the process for the window ending at `unix_ns`. A sampler that panics is
    /// dropped (reported once on stderr); later windows carry an empty sample.
    pub(crate) fn sample(&mut self, unix_ns: u64) -> ProcessStats {
        let sample = match self.sampler.as_mut() {
            Some(f) => match catch_unwind(AssertUnwindSafe(f)) {
                Ok(s) => s,
                Err(_) => {
                    eprintln!(
                        "ringmeter: the process sampler panicked; process figures are absent \
                         from now on"
                    );
                    self.sampler = None;
                    ProcessSample::default()
                }
            },
            None => ProcessSample::default(),
        };
        let (rss_rises, rss_growing) = self.growth.observe(sample.resident_bytes);
        ProcessStats {
            unix_ns,
            sample,
            rss_rises,
            rss_growing,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Gauges fed by a list of resident figures.
    fn fed(windows: u32, rss: &[Option<u64>]) -> Vec<(u32, bool)> {
        let queue = Arc::new(Mutex::new(rss.to_vec()));
        let q = Arc::clone(&queue);
        let mut g = ProcessGauges::new(
            Some(Box::new(move || {
                let next = q.lock().unwrap().remove(0);
                let s = ProcessSample::default();
                match next {
                    Some(b) => s.with_resident_bytes(b),
                    None => s,
                }
            })),
            windows,
        );
        (0..rss.len() as u64)
            .map(|t| {
                let p = g.sample(t);
                assert_eq!(p.unix_ns, t);
                (p.rss_rises, p.rss_growing)
            })
            .collect()
    }

    #[test]
    fn the_flag_rises_after_n_rises_and_drops_at_a_fall() {
        let got = fed(3, &[10, 11, 12, 13, 14, 9, 10].map(Some));
        assert_eq!(
            got,
            [
                (0, false),
                (1, false),
                (2, false),
                (3, true),
                (4, true),
                (0, false),
                (1, false)
            ]
        );
    }

    #[test]
    fn equal_windows_neither_count_nor_reset_and_absence_resets() {
        let rss = [Some(5), Some(6), Some(6), Some(7), None, Some(8), Some(9)];
        let got = fed(2, &rss);
        assert_eq!(
            got,
            [
                (0, false),
                (1, false),
                (1, false),
                (2, true),
                (0, false),
                (0, false),
                (1, false)
            ]
        );
    }

    #[test]
    fn zero_windows_never_flag() {
        let got = fed(0, &[1, 2, 3, 4, 5].map(Some));
        assert!(got.iter().all(|&(_, g)| !g));
        assert_eq!(got.last(), Some(&(4, false)));
    }

    #[test]
    fn a_panicking_sampler_is_dropped_and_later_samples_are_empty() {
        let mut calls = 0;
        let mut g = ProcessGauges::new(
            Some(Box::new(move || {
                calls += 1;
                assert!(calls < 2, "sampler failure on purpose");
                ProcessSample::default().with_threads(1)
            })),
            1,
        );
        assert_eq!(g.sample(1).sample.threads, Some(1));
        assert_eq!(g.sample(2).sample, ProcessSample::default());
        assert_eq!(g.sample(3).sample, ProcessSample::default());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_os_reader_gives_every_figure_but_the_heap_on_linux() {
        let s = ProcessReader::new().read();
        assert!(s.resident_bytes.unwrap() > 0);
        assert!(s.virtual_bytes.unwrap() >= s.resident_bytes.unwrap());
        assert!(s.threads.unwrap() >= 1);
        assert!(s.open_fds.unwrap() >= 1);
        assert!(s.cpu_user_ns.is_some() && s.cpu_system_ns.is_some());
        assert!(s.max_fds.is_none_or(|m| m >= s.open_fds.unwrap()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let start = s.start_unix_ns.unwrap();
        assert!(start <= now && now - start < 86_400 * 1_000_000_000);
        assert_eq!(s.heap_bytes, None);
    }
}
