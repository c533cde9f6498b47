//! Alert notices: what a rule tells its listeners when it fires and when it clears.

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::rule::{quantile_label, Condition};

/// Whether a notice opens or closes an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertState {
    /// The condition has held for the rule's `for_windows` consecutive windows (and any
    /// cooldown is over). Sent once per breach, however long it lasts.
    Firing,
    /// The condition stopped holding after a firing notice (or the rule was removed).
    Resolved,
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Firing => "FIRING",
            Self::Resolved => "RESOLVED",
        })
    }
}

/// One alert notice for one rule and one operation.
///
/// Values are in the unit of the condition: a fraction for an error rate, nanoseconds for a
/// percentile, a count for slow calls, a score in deviations for an anomaly, a burn for a
/// budget (see [`Condition::threshold`]).
///
/// # Examples
/// A notice prints as one line, ready for a log:
/// ```
/// use std::sync::Arc;
/// use ringmeter::alert::{Alert, AlertState, Condition};
/// let a = Alert {
///     rule: Arc::from("db-errors"),
///     operation: Arc::from("db.query"),
///     state: AlertState::Firing,
///     condition: Condition::ErrorRate { above: 0.05 },
///     value: Some(0.125),
///     calls: 80,
///     window_start_unix_ns: 3_000_000_000,
///     window_end_unix_ns: 4_000_000_000,
///     since_unix_ns: 1_000_000_000,
///     windows_breached: 3,
/// };
/// assert_eq!(
///     a.to_string(),
///     "FIRING db-errors on db.query: error rate 0.125 > 0.05 (80 calls), 3 windows since 1000000000 ns"
/// );
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The rule's name.
    pub rule: Arc<str>,
    /// The operation's name.
    pub operation: Arc<str>,
    /// Firing or resolved.
    pub state: AlertState,
    /// The rule's condition, with its threshold ([`Condition::threshold`]).
    pub condition: Condition,
    /// The value observed in the window, in the condition's unit: for a firing notice the
    /// breaching value; for a resolved notice the value that no longer breaches. `None` when
    /// there is nothing to show: the operation saw no call in the window, a percentile rule
    /// saw no timed call, or the rule was removed.
    pub value: Option<f64>,
    /// Calls the operation saw in the window (recorded, unsampled and dropped); a resolved
    /// notice may come from a window with fewer than the rule's `min_calls`.
    pub calls: u64,
    /// Start of the window that produced the notice, in nanoseconds since the Unix epoch.
    pub window_start_unix_ns: u64,
    /// End of that window (exclusive), in nanoseconds since the Unix epoch.
    pub window_end_unix_ns: u64,
    /// Start of the first window of the breach: for a firing notice, of the run of
    /// consecutive breaching windows; for a resolved notice, of the run that just ended.
    pub since_unix_ns: u64,
    /// Consecutive breaching windows so far (firing), or in the run that ended (resolved).
    pub windows_breached: u32,
}

impl Alert {
    /// The condition's threshold, in the unit of [`value`](Self::value).
    pub fn threshold(&self) -> f64 {
        self.condition.threshold()
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} on {}: ", self.state, self.rule, self.operation)?;
        let value = self.value;
        match self.condition {
            Condition::ErrorRate { above } => {
                f.write_str("error rate ")?;
                show(f, value, |f, v| write!(f, "{v}"))?;
                write!(f, " {} {above}", relation(self))?;
            }
            Condition::Percentile { quantile, above_ns } => {
                write!(f, "p{} ", quantile_label(quantile))?;
                show(f, value, |f, v| {
                    write!(f, "{:?}", Duration::from_nanos(v.max(0.0) as u64))
                })?;
                write!(
                    f,
                    " {} {:?}",
                    relation(self),
                    Duration::from_nanos(above_ns)
                )?;
            }
            Condition::SlowCalls { above } => {
                f.write_str("slow calls ")?;
                show(f, value, |f, v| write!(f, "{v}"))?;
                write!(f, " {} {above}", relation(self))?;
            }
            Condition::Anomaly { signal, k } => {
                write!(f, "{signal} anomaly ")?;
                show(f, value, |f, v| write!(f, "{v:.3}"))?;
                write!(f, " {} {k} deviations", relation(self))?;
            }
            Condition::BudgetBurn {
                quantile,
                above_ns,
                period_ns,
                burn_above,
            } => {
                write!(
                    f,
                    "budget p{} <= {:?} over {:?}: burn ",
                    quantile_label(quantile),
                    Duration::from_nanos(above_ns),
                    Duration::from_nanos(period_ns)
                )?;
                show(f, value, |f, v| write!(f, "{v:.3}"))?;
                write!(f, " {} {burn_above}", relation(self))?;
            }
        }
        write!(
            f,
            " ({} calls), {} window{} since {} ns",
            self.calls,
            self.windows_breached,
            if self.windows_breached == 1 { "" } else { "s" },
            self.since_unix_ns
        )
    }
}

fn relation(a: &Alert) -> &'static str {
    match a.value {
        Some(v) if a.condition.breached(v) => ">",
        _ => "<=",
    }
}

fn show(
    f: &mut fmt::Formatter<'_>,
    value: Option<f64>,
    each: impl FnOnce(&mut fmt::Formatter<'_>, f64) -> fmt::Result,
) -> fmt::Result {
    match value {
        Some(v) => each(f, v),
        None => f.write_str("n/a"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Signal;

    #[test]
    fn notices_print_as_one_line() {
        let mut a = Alert {
            rule: Arc::from("lat"),
            operation: Arc::from("http.get"),
            state: AlertState::Resolved,
            condition: Condition::Percentile {
                quantile: 0.95,
                above_ns: 200_000_000,
            },
            value: Some(150_000_000.0),
            calls: 12,
            window_start_unix_ns: 10,
            window_end_unix_ns: 20,
            since_unix_ns: 0,
            windows_breached: 1,
        };
        assert_eq!(
            a.to_string(),
            "RESOLVED lat on http.get: p95 150ms <= 200ms (12 calls), 1 window since 0 ns"
        );
        a.value = None;
        a.condition = Condition::SlowCalls { above: 2 };
        assert_eq!(
            a.to_string(),
            "RESOLVED lat on http.get: slow calls n/a <= 2 (12 calls), 1 window since 0 ns"
        );
        assert_eq!(a.threshold(), 2.0);
        a.state = AlertState::Firing;
        a.value = Some(4.25);
        a.condition = Condition::Anomaly {
            signal: Signal::Latency { quantile: 0.99 },
            k: 3.0,
        };
        assert_eq!(
            a.to_string(),
            "FIRING lat on http.get: p99 anomaly 4.250 > 3 deviations (12 calls), 1 window since 0 ns"
        );
        a.value = Some(1.5);
        a.condition = Condition::BudgetBurn {
            quantile: 0.95,
            above_ns: 200_000_000,
            period_ns: 3_600_000_000_000,
            burn_above: 1.0,
        };
        assert_eq!(
            a.to_string(),
            "FIRING lat on http.get: budget p95 <= 200ms over 3600s: burn 1.500 > 1 (12 calls), 1 window since 0 ns"
        );
    }
}
