//! RFC 3339 timestamps to and from nanoseconds since the Unix epoch, without a time-zone
//! database: output is always UTC (`Z`); input takes `Z` or a numeric offset.
//!
//! Days are converted with Howard Hinnant's `days_from_civil` / `civil_from_days`
//! algorithms (proleptic Gregorian calendar).

use std::fmt;

/// `unix_ns` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (milliseconds, UTC).
///
/// # Examples
/// ```
/// use ringmeter::export::time::format_rfc3339;
/// assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
/// assert_eq!(format_rfc3339(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123Z");
/// ```
pub fn format_rfc3339(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let ms = unix_ns % 1_000_000_000 / 1_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Why a timestamp was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeError {
    /// The text that was rejected.
    pub input: String,
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an RFC 3339 time at or after 1970 (like 2026-11-23T12:00:00Z or \
             2026-11-23T13:00:00.5+01:00)",
            self.input
        )
    }
}

impl std::error::Error for TimeError {}

/// Parses an RFC 3339 date-time (`2026-11-23T12:00:00Z`, `2026-11-23 12:00:00.25+01:00`)
/// into nanoseconds since the Unix epoch. A space may stand for the `T`; fractions are kept
/// to the nanosecond; a leap second (`:60`) is taken as the next second.
///
/// # Errors
/// [`TimeError`] for anything else, and for times before 1970 or after 2554.
///
/// # Examples
/// ```
/// use ringmeter::export::time::parse_rfc3339;
/// assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Ok(1_500_000_000));
/// assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Ok(0));
/// assert!(parse_rfc3339("yesterday").is_err());
/// ```
pub fn parse_rfc3339(text: &str) -> Result<u64, TimeError> {
    parse(text.trim()).ok_or_else(|| TimeError {
        input: text.to_owned(),
    })
}

fn parse(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[month as usize - 1]
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let mut at = 19;
    let mut frac_ns = 0i64;
    if b[at] == b'.' {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        let digits = &s[start..at];
        if digits.is_empty() {
            return None;
        }
        let kept = &digits[..digits.len().min(9)];
        frac_ns = kept.parse::<i64>().ok()? * 10i64.pow(9 - kept.len() as u32);
    }
    let offset_s = match &b[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(at + 1..at + 3)?, num(at + 4..at + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_s;
    let ns = i128::from(secs) * 1_000_000_000 + i128::from(frac_ns);
    u64::try_from(ns).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_whole_milliseconds() {
        for ns in [
            0u64,
            951_782_400_000_000_000, // 2000-02-29
            1_700_000_000_123_000_000,
            4_102_444_799_999_000_000,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ns)), Ok(ns), "{ns}");
        }
    }

    #[test]
    fn accepts_offsets_fractions_and_space() {
        assert_eq!(
            parse_rfc3339("2023-11-14 23:13:20.123456789+01:00"),
            Ok(1_700_000_000_123_456_789)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.1234567891Z"),
            Ok(1_700_000_000_123_456_789)
        );
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+1:00",
            "1969-12-31T23:59:59Z",
            "２023-11-14T22:13:20Z",
            "2023-11-14T22:13:20Zjunk",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?}");
        }
    }
}
