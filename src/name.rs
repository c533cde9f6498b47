//! Operation names: what is allowed and how a name maps onto a Prometheus metric name.
//!
//! A name is 1 to [`MAX_NAME_LEN`] bytes of ASCII: it starts with a letter, continues with
//! letters, digits, `_` and `.`, has no two dots in a row and does not end with a dot
//! (`db.query`, `http.get_user`, `cache.l2.hit`). Its Prometheus form replaces each `.` with
//! `_` (`db_query`), which is always a valid metric name; two names with the same Prometheus
//! form (`db.query` and `db_query`) cannot both be registered with one engine.

use core::fmt;

use crate::limits::MAX_NAME_LEN;

/// Why a name was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    TooLong,
    /// The first character is not an ASCII letter.
    BadStart,
    /// A byte outside `[A-Za-z0-9_.]` at this offset.
    BadChar(usize),
    /// Two dots in a row, or a trailing dot.
    BadDot,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the name is empty"),
            Self::TooLong => write!(f, "the name is longer than {MAX_NAME_LEN} bytes"),
            Self::BadStart => f.write_str("the name must start with an ASCII letter"),
            Self::BadChar(at) => write!(f, "byte {at} is not an ASCII letter, digit, '_' or '.'"),
            Self::BadDot => f.write_str("the name has two dots in a row or ends with a dot"),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a name against the rules above. Usable in constant context, which is how
/// [`op!`](crate::op!) rejects a bad literal at compile time.
///
/// # Examples
/// ```
/// use ringmeter::{validate_name, NameError};
/// assert_eq!(validate_name("db.query"), Ok(()));
/// assert_eq!(validate_name("db..query"), Err(NameError::BadDot));
/// assert_eq!(validate_name("9lives"), Err(NameError::BadStart));
/// ```
pub const fn validate_name(name: &str) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    if bytes.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if !bytes[0].is_ascii_alphabetic() {
        return Err(NameError::BadStart);
    }
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'.' {
            if bytes[i - 1] == b'.' || i + 1 == bytes.len() {
                return Err(NameError::BadDot);
            }
        } else if !(b.is_ascii_alphanumeric() || b == b'_') {
            return Err(NameError::BadChar(i));
        }
        i += 1;
    }
    Ok(())
}

/// The Prometheus metric-name form of a valid name: dots become underscores.
///
/// # Examples
/// ```
/// assert_eq!(ringmeter::prometheus_name("db.query"), "db_query");
/// ```
pub fn prometheus_name(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        for ok in [
            "a",
            "db.query",
            "A9_x.y_z",
            "http.get_user",
            &"x".repeat(MAX_NAME_LEN),
        ] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(
            validate_name(&"x".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::TooLong)
        );
        assert_eq!(validate_name("_x"), Err(NameError::BadStart));
        assert_eq!(validate_name(".x"), Err(NameError::BadStart));
        assert_eq!(validate_name("a b"), Err(NameError::BadChar(1)));
        assert_eq!(validate_name("a-b"), Err(NameError::BadChar(1)));
        assert_eq!(validate_name("aé"), Err(NameError::BadChar(1)));
        assert_eq!(validate_name("a..b"), Err(NameError::BadDot));
        assert_eq!(validate_name("a."), Err(NameError::BadDot));
    }

    #[test]
    fn prometheus_form_is_a_valid_metric_name() {
        let p = prometheus_name("cache.l2.hit");
        assert_eq!(p, "cache_l2_hit");
        assert!(p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'));
    }
}
