//! Which windows a command reads: operation patterns, time arguments, and the read loop.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use ringmeter::export::time::{format_rfc3339, parse_rfc3339};
use ringmeter::export::Interval;
use ringmeter::log::{Reader, Record, Verdict};

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
}

/// Reads every window record of `dir` that `filter` selects, in log order, and hands it to
/// `each`, with its histogram decoded when `histograms` is set (otherwise the interval's
/// histogram is empty and its stored bytes are kept: what `Totals` and `Rollup` merge
/// fastest); `progress` is called with the number of records read so far. Warns on stderr when
/// the log is damaged. Fails when a pattern matches no operation of the log.
pub fn read(
    dir: &Path,
    filter: &Filter,
    histograms: bool,
    mut progress: impl FnMut(u64),
    mut each: impl FnMut(Interval) -> Result<()>,
) -> Result<ReadSummary> {
    let mut reader = open(dir)?;
    reader.decode_histograms(histograms);
    let mut summary = ReadSummary::default();
    let mut records = 0u64;
    for rec in reader.by_ref() {
        let rec = rec.with_context(|| format!("cannot read the log {}", dir.display()))?;
        records += 1;
        if records.is_multiple_of(1024) {
            progress(records);
        }
        let w = match rec {
            Record::Window(w) => w,
            // Read at a window's end: select it with the window it closed.
            Record::Series(r) if filter.time_matches(r.unix_ns.saturating_sub(1)) => {
                summary.series = Some(r);
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
    progress(records);
    warn_damage(dir, &reader);
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

/// Warns on stderr when a log read was damaged.
pub fn warn_damage(dir: &Path, reader: &Reader) {
    let i = reader.integrity();
    match i.verdict() {
        Verdict::Clean | Verdict::Unsealed => {}
        Verdict::TornTail => warn(format_args!(
            "ringmeter: note: {} ends in a torn tail (a writer stopped mid-record); \
             everything before it was read",
            dir.display()
        )),
        Verdict::RecordsMissing => warn(format_args!(
            "ringmeter: warning: {} is missing committed records ({} range(s) or file(s)); \
             see `ringmeter check {}`",
            dir.display(),
            i.missing.len(),
            dir.display()
        )),
        _ => warn(format_args!(
            "ringmeter: warning: {} has {} corrupt range(s), skipped; see `ringmeter check {}`",
            dir.display(),
            i.corrupt.len(),
            dir.display()
        )),
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
