//! Which windows a command reads: operation patterns, time arguments, and the read loop.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use ringmeter::export::time::{format_rfc3339, parse_rfc3339};
use ringmeter::export::Interval;
use ringmeter::log::{Reader, Record, Verdict, WriterState};
use ringmeter::ProcessStats;

use crate::cli::Selection;
use crate::out::warn;
use crate::usage;

/// An operation-name glob: `*` matches any run of characters, `?` one character.
#[derive(Clone, Debug)]
pub struct Glob(Vec<u8>);

impl Glob {
    /// Parses a pattern; it may hold the characters of operation names plus `*` and `?`.
    pub fn parse(pattern: &str) -> Result<Glob> {
        if pattern.is_empty() {
            usage!("the operation pattern is empty");
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '?')))
        {
            usage!(
                "bad operation pattern {pattern:?}: {c:?} is not allowed (operation names \
                 hold ASCII letters, digits, '_' and '.'; '*' and '?' are wildcards)"
            );
        }
        Ok(Glob(pattern.as_bytes().to_vec()))
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        // Iterative wildcard matching with one backtrack point (linear in practice).
        let (p, s) = (&self.0, name.as_bytes());
        let (mut pi, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
                pi += 1;
                si += 1;
            } else if pi < p.len() && p[pi] == b'*' {
                star = Some((pi, si));
                pi += 1;
            } else if let Some((sp, ss)) = star {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Parses a time argument against `now_ns`: RFC 3339, `now`, `@SECONDS`, or `-N<unit>`
/// with unit `s`, `m`, `h` or `d`.
pub fn parse_time(arg: &str, now_ns: u64) -> Result<u64> {
    let t = arg.trim();
    if t == "now" {
        return Ok(now_ns);
    }
    if let Some(secs) = t.strip_prefix('@') {
        return match secs
            .parse::<u64>()
            .ok()
            .and_then(|s| s.checked_mul(1_000_000_000))
        {
            Some(ns) => Ok(ns),
            None => usage!("bad time {arg:?}: @ takes whole seconds since the Unix epoch"),
        };
    }
    if let Some(rel) = t.strip_prefix('-') {
        return match parse_duration(rel) {
            Some(d) => Ok(now_ns.saturating_sub(d)),
            None => {
                usage!("bad relative time {arg:?}: write -N followed by s, m, h or d (like -10m)")
            }
        };
    }
    match parse_rfc3339(t) {
        Ok(ns) => Ok(ns),
        Err(e) => usage!("bad time: {e}; relative times look like -10m, -2h, -1d"),
    }
}

/// `N` followed by `s`, `m`, `h` or `d`, in nanoseconds (at least 1 s).
pub fn parse_duration(text: &str) -> Option<u64> {
    let unit = match text.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(unit)?
        .checked_mul(1_000_000_000)
        .filter(|&ns| ns > 0)
}

/// A validated selection.
#[derive(Clone, Debug)]
pub struct Filter {
    pattern: Option<(String, Glob)>,
    /// Windows starting at or after this are kept.
    pub since: u64,
    /// Windows starting at or after this are left out.
    pub until: u64,
}

impl Filter {
    /// Validates the options.
    pub fn new(sel: &Selection) -> Result<Filter> {
        Self::from_parts(
            sel.op.as_deref(),
            sel.since.as_deref(),
            sel.until.as_deref(),
        )
    }

    /// Windows starting at or after `since_ns`, of every operation.
    pub fn since_ns(since_ns: u64) -> Filter {
        Filter {
            pattern: None,
            since: since_ns,
            until: u64::MAX,
        }
    }

    /// Validates a pattern and an optional range.
    pub fn from_parts(
        op: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
    ) -> Result<Filter> {
        let now = now_ns();
        let pattern = match op {
            Some(p) => Some((p.to_owned(), Glob::parse(p)?)),
            None => None,
        };
        let since_ns = since.map(|s| parse_time(s, now)).transpose()?.unwrap_or(0);
        let until_ns = until
            .map(|s| parse_time(s, now))
            .transpose()?
            .unwrap_or(u64::MAX);
        if since_ns >= until_ns {
            usage!(
                "bad time range: --since {} is not before --until {}",
                format_rfc3339(since_ns),
                format_rfc3339(until_ns)
            );
        }
        Ok(Filter {
            pattern,
            since: since_ns,
            until: until_ns,
        })
    }

    /// Whether operation `name` is selected.
    pub fn op_matches(&self, name: &str) -> bool {
        self.pattern.as_ref().is_none_or(|(_, g)| g.matches(name))
    }

    /// Whether a window starting at `start_unix_ns` is selected.
    pub fn time_matches(&self, start_unix_ns: u64) -> bool {
        (self.since..self.until).contains(&start_unix_ns)
    }

    /// The pattern as given.
    pub fn pattern(&self) -> Option<&str> {
        self.pattern.as_ref().map(|(p, _)| p.as_str())
    }
}

/// Opens a log, with the path in the message of any error.
pub fn open(dir: &Path) -> Result<Reader> {
    Reader::open(dir).with_context(|| format!("cannot read the log {}", dir.display()))
}

/// Looks whether a writer holds the log now, and has `reader` read it as finished when
/// none does: a closed log's newest segment never grows again, so an empty, zeroed or
/// unsealed end of it is reported rather than waited on. Returns what it found.
pub fn expect_writer_if_live(reader: &mut Reader) -> WriterState {
    let state = reader.writer_state();
    reader.expect_no_writer(state == WriterState::Closed);
    state
}

/// The exit code for the damage the reads of this process went past: `check`'s code of
/// the worst verdict (`4` corrupt, `5` records missing), 0 for none. Set by [`warn_damage`].
static DAMAGE_EXIT: AtomicU8 = AtomicU8::new(0);

/// See [`DAMAGE_EXIT`].
pub fn damage_exit() -> u8 {
    DAMAGE_EXIT.load(Ordering::Relaxed)
}

/// The findings already reported on stderr, so that a command that reads on (`tail`)
/// reports each once.
#[derive(Debug, Default)]
pub struct Reported {
    torn: usize,
    missing: usize,
    corrupt: usize,
    killed: bool,
    /// Whether the log is followed as it grows (`tail`).
    following: bool,
}

impl Reported {
    /// For a command that follows a log: a live writer's record in progress looks torn
    /// until it is finished, so only a closed log's torn tails are reported.
    pub fn following() -> Self {
        Self {
            following: true,
            ..Self::default()
        }
    }
}

/// What a read found.
#[derive(Debug, Default)]
pub struct ReadSummary {
    /// Every operation seen in a window record, selected or not.
    pub ops: BTreeSet<Arc<str>>,
    /// Window records selected.
    pub selected: u64,
    /// First selected start and last selected end.
    pub span: Option<(u64, u64)>,
    /// The last counter and gauge values in the time range.
    pub series: Option<ringmeter::log::SeriesRecord>,
    /// The process records in the time range.
    pub process: Option<ProcessRange>,
}

/// The process records (one per window close) of a time range.
#[derive(Debug)]
pub struct ProcessRange {
    /// The earliest.
    pub first: ProcessStats,
    /// The latest.
    pub last: ProcessStats,
    /// How many there are.
    pub samples: u64,
    /// The highest resident memory among them.
    pub max_resident: Option<u64>,
    /// How many had the growth flag set.
    pub growing: u64,
}

impl ProcessRange {
    fn add(range: &mut Option<ProcessRange>, p: ProcessStats) {
        let r = range.get_or_insert(ProcessRange {
            first: p,
            last: p,
            samples: 0,
            max_resident: None,
            growing: 0,
        });
        if p.unix_ns < r.first.unix_ns {
            r.first = p;
        }
        if p.unix_ns >= r.last.unix_ns {
            r.last = p;
        }
        r.samples += 1;
        r.max_resident = r.max_resident.max(p.sample.resident_bytes);
        r.growing += u64::from(p.rss_growing);
    }
}

/// How far a read of a log has come (for the progress bar).
#[derive(Clone, Copy, Debug)]
pub struct Position {
    /// Records read.
    pub records: u64,
    /// Bytes of the segments read, up to the current record.
    pub bytes: u64,
    /// Bytes of all the segments listed when the read started (0 when unknown).
    pub total_bytes: u64,
}

/// Reads every window record of `dir` that `filter` selects, in log order, and hands it to
/// `each`, with its histogram decoded when `histograms` is set (otherwise the interval's
/// histogram is empty and its stored bytes are kept: what `Totals` and `Rollup` merge
/// fastest); `progress` is called every 1024 records with how far the read has come. Warns on stderr when
/// the log is damaged. Fails when a pattern matches no operation of the log.
pub fn read(
    dir: &Path,
    filter: &Filter,
    histograms: bool,
    mut progress: impl FnMut(Position),
    mut each: impl FnMut(Interval) -> Result<()>,
) -> Result<ReadSummary> {
    let mut reader = open(dir)?;
    let state = expect_writer_if_live(&mut reader);
    reader.decode_histograms(histograms);
    // The segments' sizes as listed at the start, for the share read so far (a live writer's
    // later bytes and segments only make the share lag).
    let sizes: Vec<(u64, u64)> = reader
        .segments()
        .iter()
        .map(|s| (s.seq, std::fs::metadata(&s.path).map_or(0, |m| m.len())))
        .collect();
    let mut pos = Position {
        records: 0,
        bytes: 0,
        total_bytes: sizes.iter().map(|s| s.1).sum(),
    };
    let mut summary = ReadSummary::default();
    loop {
        let entry = reader
            .next_entry()
            .with_context(|| format!("cannot read the log {}", dir.display()))?;
        let Some(entry) = entry else { break };
        pos.records += 1;
        if pos.records.is_multiple_of(1024) {
            let before: u64 = sizes
                .iter()
                .take_while(|s| s.0 < entry.segment)
                .map(|s| s.1)
                .sum();
            pos.bytes = (before + entry.offset).min(pos.total_bytes);
            progress(pos);
        }
        let rec = entry.record;
        let w = match rec {
            Record::Window(w) => w,
            // Read at a window's end: select it with the window it closed.
            Record::Series(r) if filter.time_matches(r.unix_ns.saturating_sub(1)) => {
                summary.series = Some(r);
                continue;
            }
            Record::Process(p) if filter.time_matches(p.unix_ns.saturating_sub(1)) => {
                ProcessRange::add(&mut summary.process, p);
                continue;
            }
            _ => continue,
        };
        if !summary.ops.contains(&w.op) {
            summary.ops.insert(Arc::clone(&w.op));
        }
        if !filter.op_matches(&w.op) || !filter.time_matches(w.start_unix_ns) {
            continue;
        }
        summary.selected += 1;
        let end = w.end_unix_ns();
        summary.span = Some(match summary.span {
            None => (w.start_unix_ns, end),
            Some((s, e)) => (s.min(w.start_unix_ns), e.max(end)),
        });
        each(Interval::from_record(*w))?;
    }
    pos.bytes = pos.total_bytes;
    progress(pos);
    warn_damage(dir, &reader, state, &mut Reported::default());
    if let Some(p) = filter.pattern() {
        if !summary.ops.iter().any(|o| filter.op_matches(o)) {
            let known: Vec<&str> = summary.ops.iter().map(|o| &**o).collect();
            usage!(
                "no operation in {} matches {p:?} (operations: {})",
                dir.display(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    Ok(summary)
}

/// No window of a log is in the selected range: exit code 1 from `stats` and `dump` alike.
#[derive(Debug)]
pub struct NoWindows {
    dir: PathBuf,
    /// Whether the log holds no window record at all.
    log_empty: bool,
}

impl std::fmt::Display for NoWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no window of {} is in the selected range{}",
            self.dir.display(),
            if self.log_empty {
                " (the log holds no window yet)"
            } else {
                ""
            }
        )
    }
}

impl std::error::Error for NoWindows {}

/// The first selected start and last selected end of a read.
///
/// # Errors
/// [`NoWindows`] when the read selected none.
pub fn require_windows(dir: &Path, summary: &ReadSummary) -> Result<(u64, u64)> {
    summary.span.ok_or_else(|| {
        anyhow::Error::new(NoWindows {
            dir: dir.to_owned(),
            log_empty: summary.ops.is_empty(),
        })
    })
}

/// Warns on stderr about what a read of `dir` found and `reported` does not hold yet:
/// damage (recorded for the exit code, see [`damage_exit`]), a torn tail, and a log that
/// no writer holds whose newest segment is not sealed (its writer was killed: the windows
/// it had not yet written are missing).
pub fn warn_damage(dir: &Path, reader: &Reader, state: WriterState, reported: &mut Reported) {
    let i = reader.integrity();
    let code = match i.verdict() {
        Verdict::RecordsMissing => 5,
        Verdict::Clean | Verdict::Unsealed | Verdict::TornTail => 0,
        _ => 4,
    };
    DAMAGE_EXIT.fetch_max(code, Ordering::Relaxed);
    if i.corrupt.len() > reported.corrupt {
        reported.corrupt = i.corrupt.len();
        warn(format_args!(
            "ringmeter: warning: {} has {} corrupt range(s), skipped; see `ringmeter check {}`",
            dir.display(),
            i.corrupt.len(),
            dir.display()
        ));
    }
    if i.missing.len() > reported.missing {
        reported.missing = i.missing.len();
        warn(format_args!(
            "ringmeter: warning: {} is missing committed records ({} range(s) or file(s)); \
             see `ringmeter check {}`",
            dir.display(),
            i.missing.len(),
            dir.display()
        ));
    }
    if i.torn_tails.len() > reported.torn && (!reported.following || state == WriterState::Closed) {
        reported.torn = i.torn_tails.len();
        warn(format_args!(
            "ringmeter: note: {} ends in a torn tail (a writer stopped mid-record); \
             everything before it was read",
            dir.display()
        ));
    }
    if state == WriterState::Closed && !i.unsealed.is_empty() && !reported.killed {
        reported.killed = true;
        warn(format_args!(
            "ringmeter: warning: {} was not closed by its writer (no process holds its lock and \
             {} segment(s) are not sealed): the writer was killed or its machine stopped, and \
             the windows it had not yet written are missing",
            dir.display(),
            i.unsealed.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let g = |p: &str| Glob::parse(p).unwrap();
        assert!(g("db.*").matches("db.query"));
        assert!(!g("db.*").matches("db"));
        assert!(g("*").matches(""));
        assert!(g("*.get").matches("cache.l2.get"));
        assert!(g("c?che.*t").matches("cache.get"));
        assert!(!g("cache").matches("cache.get"));
        assert!(g("a*b*c").matches("aXbYbZc"));
        assert!(Glob::parse("").is_err());
        assert!(Glob::parse("db[0]").is_err());
        assert!(Glob::parse("db query").is_err());
    }

    #[test]
    fn times() {
        let now = 1_000_000 * 1_000_000_000;
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("-10m", now).unwrap(), now - 600_000_000_000);
        assert_eq!(parse_time("-1d", now).unwrap(), now - 86_400_000_000_000);
        assert_eq!(parse_time("@5", now).unwrap(), 5_000_000_000);
        assert_eq!(
            parse_time("1970-01-01T00:00:01Z", now).unwrap(),
            1_000_000_000
        );
        for bad in ["-10", "-m", "-10x", "-1.5h", "yesterday", "@-1", ""] {
            assert!(parse_time(bad, now).is_err(), "{bad:?}");
        }
        assert_eq!(parse_duration("5m"), Some(300_000_000_000));
        assert_eq!(parse_duration("0s"), None);
    }
}
