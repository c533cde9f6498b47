//! Operation-name patterns of configuration rules: an exact name, or a glob where `*` matches
//! any run of characters (`db.*`, `*.query`, `http.*.get`, `*`).

use core::cmp::Ordering as CmpOrdering;
use core::fmt;

use crate::limits::MAX_NAME_LEN;

/// A validated rule pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Pattern {
    text: String,
}

impl Pattern {
    /// Validates `text`: 1 to [`MAX_NAME_LEN`] bytes of `[A-Za-z0-9_.*]`.
    pub(crate) fn parse(text: &str) -> Result<Self, &'static str> {
        if text.is_empty() {
            return Err("a pattern is an operation name or a glob with '*', and not empty");
        }
        if text.len() > MAX_NAME_LEN {
            return Err("a pattern is at most 128 bytes long");
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'*'))
        {
            return Err("a pattern may only hold ASCII letters, digits, '_', '.' and '*'");
        }
        if !text.contains('*') && crate::name::validate_name(text).is_err() {
            return Err("a pattern without '*' must be a valid operation name");
        }
        Ok(Self {
            text: text.to_owned(),
        })
    }

    /// Whether the pattern is an exact name.
    pub(crate) fn is_exact(&self) -> bool {
        !self.text.contains('*')
    }

    /// Whether `name` matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        glob(self.text.as_bytes(), name.as_bytes())
    }

    /// Orders patterns by specificity: an exact name above every glob, then more literal
    /// characters above fewer.
    pub(crate) fn specificity_cmp(&self, other: &Self) -> CmpOrdering {
        let key = |p: &Self| (p.is_exact(), p.text.bytes().filter(|&b| b != b'*').count());
        key(self).cmp(&key(other))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Glob match where `*` matches any run of bytes: the linear-time two-pointer algorithm with
/// backtracking to the last star.
fn glob(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if p < pat.len() && pat[p] == s[i] {
            p += 1;
            i += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&b| b == b'*')
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_documented() {
        let m = |p: &str, s: &str| Pattern::parse(p).unwrap().matches(s);
        assert!(m("db.*", "db.query"));
        assert!(m("db.*", "db.query.slow"));
        assert!(!m("db.*", "dbx"));
        assert!(m("*.query", "db.query"));
        assert!(m("*", "anything.at.all"));
        assert!(m("http.*.get", "http.users.get"));
        assert!(!m("http.*.get", "http.users.put"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("db.query", "db.query"));
        assert!(!m("db.query", "db.query2"));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in [
            "",
            "db query",
            "db.*-x",
            "9lives",
            "db..x",
            &"a".repeat(129),
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Pattern::parse("*").is_ok());
    }

    #[test]
    fn exact_beats_globs_and_longer_globs_beat_shorter() {
        let p = |s: &str| Pattern::parse(s).unwrap();
        assert_eq!(
            p("db.query").specificity_cmp(&p("db.quer*")),
            CmpOrdering::Greater
        );
        assert_eq!(p("db.q*").specificity_cmp(&p("db.*")), CmpOrdering::Greater);
        assert_eq!(p("*").specificity_cmp(&p("db.*")), CmpOrdering::Less);
        assert_eq!(p("db.*").specificity_cmp(&p("*.db")), CmpOrdering::Equal);
    }
}
