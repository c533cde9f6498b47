//! The window log's durability policy: a setting of the builder, the configuration file and
//! the environment, used by the log's writer (`crate::log::Durability` is its public name).

use std::time::Duration;

/// When the writer waits for written records to reach the disk. What survives a process
/// kill and a power loss under each policy is in `docs/log-format.md`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// Leave write-back to the operating system (the default): no sync per window; a
    /// segment is synced when it is sealed (rotation, shutdown). A process kill loses
    /// nothing; a power loss can lose the records of roughly the last 30 s (the kernel's
    /// write-back delay) and the segments' tails.
    #[default]
    OsWriteBack,
    /// Sync after every append (`msync(MS_SYNC)` on the new bytes, then on the commit block;
    /// `fdatasync` when writing with `pwrite`): a window is on disk when its append returns.
    EachWindow,
    /// Sync at the first append at least this long after the previous sync.
    Every(Duration),
}

impl core::fmt::Display for Durability {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OsWriteBack => f.write_str("os"),
            Self::EachWindow => f.write_str("window"),
            Self::Every(d) => write!(f, "{}ms", d.as_millis()),
        }
    }
}

impl core::str::FromStr for Durability {
    type Err = String;

    /// `os`, `window`, or a sync interval in milliseconds (`250ms` or `250`, at least 1).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "os" => Ok(Self::OsWriteBack),
            "window" => Ok(Self::EachWindow),
            other => {
                let n = other.strip_suffix("ms").unwrap_or(other).trim();
                match n.parse::<u64>() {
                    Ok(ms) if ms >= 1 => Ok(Self::Every(Duration::from_millis(ms))),
                    _ => Err("\"os\", \"window\" or a sync interval such as \"250ms\"".into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print_back() {
        for (text, d) in [
            ("os", Durability::OsWriteBack),
            ("window", Durability::EachWindow),
            ("250ms", Durability::Every(Duration::from_millis(250))),
        ] {
            assert_eq!(text.parse::<Durability>(), Ok(d));
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(
            " 40 ".parse::<Durability>(),
            Ok(Durability::Every(Duration::from_millis(40)))
        );
        for bad in ["", "0ms", "-5ms", "always", "1s"] {
            assert!(bad.parse::<Durability>().is_err(), "{bad}");
        }
    }
}
