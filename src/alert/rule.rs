//! Alert rules: what to watch (an operation pattern), when to fire (a condition held for a
//! number of consecutive windows) and how often to notify (a cooldown).

use core::fmt;
use std::time::Duration;

use crate::error::Error;
use crate::limits::{
    DEFAULT_BASELINE_WINDOWS, DEFAULT_MIN_RELATIVE_DEVIATION, DEFAULT_WARMUP_WINDOWS,
    MAX_BASELINE_WINDOWS, MAX_NAME_LEN,
};
use crate::pattern::Pattern;

/// What an [`Anomaly`](Condition::Anomaly) condition watches in each window.
///
/// # Examples
/// ```
/// use ringmeter::alert::Signal;
/// assert_eq!(Signal::Latency { quantile: 0.99 }.to_string(), "p99");
/// assert_eq!(Signal::ErrorRate.to_string(), "error rate");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Signal {
    /// The window's error rate (errors over calls, from 0 to 1).
    ErrorRate,
    /// The window's latency at `quantile`, in nanoseconds (read as the
    /// [`Percentile`](Condition::Percentile) condition reads it).
    Latency {
        /// The quantile, in (0, 1]: 0.99 is the 99th percentile.
        quantile: f64,
    },
}

impl fmt::Display for Signal {
    /// `error rate`, `p99`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ErrorRate => f.write_str("error rate"),
            Self::Latency { quantile } => write!(f, "p{}", quantile_label(quantile)),
        }
    }
}

/// What an alert rule compares with its threshold in each closed window. A window breaches
/// when the observed value is strictly above the threshold.
///
/// The observed value of [`Anomaly`](Self::Anomaly) is a score (how many robust deviations
/// the window's signal lies above its operation's baseline) and that of
/// [`BudgetBurn`](Self::BudgetBurn) the budget's burn; see docs/alerts.md.
///
/// # Examples
/// ```
/// use ringmeter::alert::Condition;
/// let c = Condition::Percentile { quantile: 0.95, above_ns: 200_000_000 };
/// assert_eq!(c.threshold(), 2e8);
/// assert!(c.breached(2.5e8) && !c.breached(2e8));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// The window's error rate ([`OpStats::error_rate`](crate::OpStats::error_rate): errors
    /// over calls, where calls count recorded, unsampled and dropped ones) is above `above`
    /// (a fraction from 0 to 1).
    ErrorRate {
        /// The threshold, a fraction from 0 to 1.
        above: f64,
    },
    /// The window's latency at `quantile` (read from its HdrHistogram and clamped to the
    /// window's exact minimum and maximum) is above `above_ns` nanoseconds. A window with no
    /// recorded (timed) call has no latency and does not breach.
    Percentile {
        /// The quantile, in (0, 1]: 0.95 is the 95th percentile.
        quantile: f64,
        /// The budget in nanoseconds.
        above_ns: u64,
    },
    /// The window's count of slow calls ([`OpStats::slow`](crate::OpStats::slow), calls
    /// longer than the operation's slow threshold) is above `above`.
    SlowCalls {
        /// The largest count that does not breach.
        above: u64,
    },
    /// The window's `signal` lies more than `k` robust deviations above the operation's
    /// baseline: the median of its last windows, with the deviation taken as 1.4826 times
    /// their median absolute deviation (MAD), but never below the rule's floors. The observed
    /// value is the score `(value - median) / deviation`; nothing is observed until the
    /// baseline holds the rule's warm-up windows. See
    /// [`AlertRule::anomaly`] for the baseline's settings.
    Anomaly {
        /// What is watched.
        signal: Signal,
        /// How many deviations above the baseline's median breach (above 0).
        k: f64,
    },
    /// A performance budget, "latency at `quantile` at most `above_ns` over a rolling
    /// `period_ns`", burns faster than `burn_above`. The burn is the share of the period's
    /// recorded calls slower than `above_ns`, divided by the share the budget allows,
    /// `1 - quantile`: 1 means the allowance is used up exactly (the period's latency at
    /// `quantile` is then at the limit); see [`BudgetBurn`](super::BudgetBurn) and
    /// docs/alerts.md.
    BudgetBurn {
        /// The budget's quantile, in (0, 1): 0.95 allows 5% of calls above `above_ns`.
        quantile: f64,
        /// The latency limit in nanoseconds.
        above_ns: u64,
        /// The rolling period in nanoseconds (a whole number of windows, rounded up).
        period_ns: u64,
        /// The burn above which a window breaches (the default, 1, breaches once the
        /// allowance is used up).
        burn_above: f64,
    },
}

impl Condition {
    /// The threshold in the unit of the observed value: a fraction for
    /// [`ErrorRate`](Self::ErrorRate), nanoseconds for [`Percentile`](Self::Percentile), a
    /// count for [`SlowCalls`](Self::SlowCalls), deviations (`k`) for
    /// [`Anomaly`](Self::Anomaly), a burn for [`BudgetBurn`](Self::BudgetBurn).
    pub fn threshold(&self) -> f64 {
        match *self {
            Self::ErrorRate { above } => above,
            Self::Percentile { above_ns, .. } => above_ns as f64,
            Self::SlowCalls { above } => above as f64,
            Self::Anomaly { k, .. } => k,
            Self::BudgetBurn { burn_above, .. } => burn_above,
        }
    }

    /// Whether an observed `value` (in the unit of [`threshold`](Self::threshold)) breaches:
    /// it is strictly above the threshold.
    pub fn breached(&self, value: f64) -> bool {
        value > self.threshold()
    }
}

impl fmt::Display for Condition {
    /// `error rate > 0.05`, `p95 > 200ms`, `slow calls > 10`, `p99 anomaly > 3 deviations`,
    /// `p95 <= 200ms over 1h burn > 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ErrorRate { above } => write!(f, "error rate > {above}"),
            Self::Percentile { quantile, above_ns } => write!(
                f,
                "p{} > {:?}",
                quantile_label(quantile),
                Duration::from_nanos(above_ns)
            ),
            Self::SlowCalls { above } => write!(f, "slow calls > {above}"),
            Self::Anomaly { signal, k } => write!(f, "{signal} anomaly > {k} deviations"),
            Self::BudgetBurn {
                quantile,
                above_ns,
                period_ns,
                burn_above,
            } => write!(
                f,
                "p{} <= {:?} over {:?} burn > {burn_above}",
                quantile_label(quantile),
                Duration::from_nanos(above_ns),
                Duration::from_nanos(period_ns)
            ),
        }
    }
}

/// `0.95` -> `95`, `0.999` -> `99.9`, `1` -> `100`.
pub(crate) fn quantile_label(q: f64) -> String {
    let pct = (q * 100.0 * 1e6).round() / 1e6;
    format!("{pct}")
}

/// One alert rule: a condition watched on every operation whose name matches a pattern.
///
/// The rule fires for an operation once the condition has held in `for_windows` consecutive
/// closed windows, notifies once while it keeps holding, and sends a resolved notice in the
/// first window where it does not hold (a window where the operation saw no call, or fewer
/// than `min_calls`, counts as not holding). After a resolved notice, a new firing notice for
/// the same rule and operation waits until `cooldown` has passed since the resolved notice.
///
/// The constructors and builder methods do not check their values: [`validate`](Self::validate)
/// does, and the engine calls it when it is given rules.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use ringmeter::alert::AlertRule;
///
/// let rule = AlertRule::percentile("checkout-latency", "http.*.checkout", 0.95, Duration::from_millis(200))
///     .for_windows(3)
///     .cooldown(Duration::from_secs(300))
///     .min_calls(20);
/// rule.validate()?;
/// assert_eq!((rule.name(), rule.pattern(), rule.windows_to_fire()), ("checkout-latency", "http.*.checkout", 3));
///
/// let bad = AlertRule::error_rate("db-errors", "db.*", f64::NAN);
/// assert!(bad.validate().is_err());
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRule {
    name: String,
    pattern: String,
    condition: Condition,
    for_windows: u32,
    cooldown: Duration,
    min_calls: u64,
    /// Anomaly rules only (`None`: the default).
    baseline_windows: Option<u32>,
    warmup_windows: Option<u32>,
    min_deviation: Option<f64>,
    min_relative_deviation: Option<f64>,
    /// A setting given to a rule whose condition does not use it (reported by `check`).
    stray: Option<Field>,
}

/// Which setting of a rule a validation error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Name,
    Pattern,
    /// The error rate, the percentile's budget or the slow-call count.
    Threshold,
    Quantile,
    ForWindows,
    MinCalls,
    /// An anomaly rule's `k`.
    Deviations,
    BaselineWindows,
    WarmupWindows,
    MinDeviation,
    MinRelativeDeviation,
    /// A budget's rolling period.
    Period,
    BurnAbove,
}

impl Field {
    /// The name of the setting in the API.
    fn api_name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Pattern => "pattern",
            Self::Threshold => "above",
            Self::Quantile => "quantile",
            Self::ForWindows => "for_windows",
            Self::MinCalls => "min_calls",
            Self::Deviations => "k",
            Self::BaselineWindows => "baseline_windows",
            Self::WarmupWindows => "warmup_windows",
            Self::MinDeviation => "min_deviation",
            Self::MinRelativeDeviation => "min_relative_deviation",
            Self::Period => "period",
            Self::BurnAbove => "burn_above",
        }
    }
}

/// A rejected setting: which one, the value as text, and what is allowed.
pub(crate) type Rejection = (Field, String, &'static str);

impl AlertRule {
    fn new(name: impl Into<String>, pattern: impl Into<String>, condition: Condition) -> Self {
        Self {
            name: name.into(),
            pattern: pattern.into(),
            condition,
            for_windows: 1,
            cooldown: Duration::ZERO,
            min_calls: 1,
            baseline_windows: None,
            warmup_windows: None,
            min_deviation: None,
            min_relative_deviation: None,
            stray: None,
        }
    }

    /// A rule that breaches when an operation's error rate in a window is above `above`
    /// (a fraction from 0 to 1). `pattern` is an operation name or a glob with `*`.
    pub fn error_rate(name: impl Into<String>, pattern: impl Into<String>, above: f64) -> Self {
        Self::new(name, pattern, Condition::ErrorRate { above })
    }

    /// A rule that breaches when an operation's latency at `quantile` (in (0, 1]) in a window
    /// is above `above`. Budgets beyond `u64::MAX` nanoseconds are capped there.
    pub fn percentile(
        name: impl Into<String>,
        pattern: impl Into<String>,
        quantile: f64,
        above: Duration,
    ) -> Self {
        let above_ns = u64::try_from(above.as_nanos()).unwrap_or(u64::MAX);
        Self::new(name, pattern, Condition::Percentile { quantile, above_ns })
    }

    /// A rule that breaches when an operation's count of slow calls in a window is above
    /// `above`.
    pub fn slow_calls(name: impl Into<String>, pattern: impl Into<String>, above: u64) -> Self {
        Self::new(name, pattern, Condition::SlowCalls { above })
    }

    /// A rule that breaches when an operation's `signal` in a window lies more than `k`
    /// deviations above its baseline ([`Condition::Anomaly`]).
    ///
    /// The baseline is per operation: the values of the signal in the operation's last
    /// [`baseline_windows`](Self::baseline_windows) windows (30 by default) that had at
    /// least [`min_calls`](Self::min_calls) calls (and, for a latency, a timed call), kept in
    /// a fixed ring. A window is compared with the baseline of the windows before it, then
    /// joins it. Its score is `(value - median) / deviation`, where the deviation is the
    /// largest of 1.4826 × MAD (the median absolute deviation, scaled to estimate a standard
    /// deviation), [`min_deviation`](Self::min_deviation) and
    /// [`min_relative_deviation`](Self::min_relative_deviation) × |median|, so a flat
    /// baseline (MAD 0) does not fire on noise. No window breaches until the baseline holds
    /// [`warmup_windows`](Self::warmup_windows) windows (10 by default, at most the
    /// baseline's length). Only departures upwards count (slower, or failing more).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use ringmeter::alert::{AlertRule, Signal};
    ///
    /// let rule = AlertRule::anomaly("api-p99-anomaly", "http.*", Signal::Latency { quantile: 0.99 }, 4.0)
    ///     .baseline_windows(60)
    ///     .warmup_windows(20)
    ///     .min_deviation(Duration::from_millis(2).as_nanos() as f64)
    ///     .for_windows(3);
    /// rule.validate()?;
    /// assert_eq!((rule.baseline_len(), rule.warmup_len(), rule.deviation_floor()), (60, 20, 2e6));
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn anomaly(
        name: impl Into<String>,
        pattern: impl Into<String>,
        signal: Signal,
        k: f64,
    ) -> Self {
        Self::new(name, pattern, Condition::Anomaly { signal, k })
    }

    /// A performance budget on every operation the pattern matches: latency at `quantile`
    /// at most `limit` over a rolling `period` ([`Condition::BudgetBurn`]). Its burn is
    /// published in every [`Snapshot`](crate::Snapshot) (`budgets`) and in the Prometheus
    /// exposition (`ringmeter_budget_burn`), and a window breaches when the burn is above
    /// [`burn_above`](Self::burn_above) (1 by default: the allowance is used up). Limits and
    /// periods beyond `u64::MAX` nanoseconds are capped there.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use ringmeter::alert::AlertRule;
    ///
    /// // p95 at most 200 ms over a rolling hour; alert when 2x the allowance is burnt.
    /// let rule = AlertRule::budget("checkout-p95", "http.checkout", 0.95,
    ///         Duration::from_millis(200), Duration::from_secs(3600))
    ///     .burn_above(2.0);
    /// rule.validate()?;
    /// assert_eq!(rule.condition().threshold(), 2.0);
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn budget(
        name: impl Into<String>,
        pattern: impl Into<String>,
        quantile: f64,
        limit: Duration,
        period: Duration,
    ) -> Self {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Self::new(
            name,
            pattern,
            Condition::BudgetBurn {
                quantile,
                above_ns: ns(limit),
                period_ns: ns(period),
                burn_above: 1.0,
            },
        )
    }

    /// A rule with any condition.
    pub fn with_condition(
        name: impl Into<String>,
        pattern: impl Into<String>,
        condition: Condition,
    ) -> Self {
        Self::new(name, pattern, condition)
    }

    /// Consecutive windows the condition must hold before the rule fires (at least 1; the
    /// default is 1: fire in the first breaching window).
    #[must_use]
    pub fn for_windows(mut self, n: u32) -> Self {
        self.for_windows = n;
        self
    }

    /// How long after a resolved notice a new firing notice for the same rule and operation
    /// is held back (default 0). Measured on window end times; if the condition still holds
    /// in the first window that ends once the cooldown is over, the rule fires then.
    #[must_use]
    pub fn cooldown(mut self, d: Duration) -> Self {
        self.cooldown = d;
        self
    }

    /// The fewest calls (recorded, unsampled and dropped) an operation must see in a window
    /// for the condition to be checked; a window with fewer counts as not breaching (at
    /// least 1; the default is 1).
    #[must_use]
    pub fn min_calls(mut self, n: u64) -> Self {
        self.min_calls = n;
        self
    }

    /// Anomaly rules: how many of the operation's last windows form its baseline (from 3 to
    /// 1024; the default is 30). Memory per (rule, operation) is 8 bytes per window.
    #[must_use]
    pub fn baseline_windows(mut self, n: u32) -> Self {
        self.baseline_windows = Some(n);
        self
    }

    /// Anomaly rules: windows the baseline must hold before a window can breach (from 3 to
    /// the baseline's length; the default is 10, or the baseline's length if shorter).
    #[must_use]
    pub fn warmup_windows(mut self, n: u32) -> Self {
        self.warmup_windows = Some(n);
        self
    }

    /// Anomaly rules: the smallest deviation, in the signal's unit (nanoseconds for a
    /// latency, a fraction for an error rate); the defaults are 1 µs (1000) and 0.01.
    #[must_use]
    pub fn min_deviation(mut self, floor: f64) -> Self {
        self.min_deviation = Some(floor);
        self
    }

    /// Anomaly rules: the smallest deviation as a fraction of the baseline's median (the
    /// default is 0.1: with `k` = 3, a flat baseline needs a rise of 30% to breach).
    #[must_use]
    pub fn min_relative_deviation(mut self, fraction: f64) -> Self {
        self.min_relative_deviation = Some(fraction);
        self
    }

    /// Budget rules: the burn above which a window breaches (0 or more; the default is 1).
    /// On a rule of another condition it is an error reported by [`validate`](Self::validate).
    #[must_use]
    pub fn burn_above(mut self, level: f64) -> Self {
        match &mut self.condition {
            Condition::BudgetBurn { burn_above, .. } => *burn_above = level,
            _ => self.stray = Some(Field::BurnAbove),
        }
        self
    }

    /// The baseline's length in windows (anomaly rules; set by
    /// [`baseline_windows`](Self::baseline_windows)).
    pub fn baseline_len(&self) -> u32 {
        self.baseline_windows.unwrap_or(DEFAULT_BASELINE_WINDOWS)
    }

    /// Windows the baseline needs before a window can breach (anomaly rules; set by
    /// [`warmup_windows`](Self::warmup_windows)).
    pub fn warmup_len(&self) -> u32 {
        self.warmup_windows
            .unwrap_or(DEFAULT_WARMUP_WINDOWS.min(self.baseline_len()))
    }

    /// The smallest deviation in the signal's unit (anomaly rules; set by
    /// [`min_deviation`](Self::min_deviation)).
    pub fn deviation_floor(&self) -> f64 {
        self.min_deviation.unwrap_or(match self.condition {
            Condition::Anomaly {
                signal: Signal::ErrorRate,
                ..
            } => 0.01,
            _ => 1_000.0,
        })
    }

    /// The smallest deviation as a fraction of the baseline's median (anomaly rules; set by
    /// [`min_relative_deviation`](Self::min_relative_deviation)).
    pub fn relative_deviation_floor(&self) -> f64 {
        self.min_relative_deviation
            .unwrap_or(DEFAULT_MIN_RELATIVE_DEVIATION)
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operation pattern: an operation name or a glob with `*`.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The condition.
    pub fn condition(&self) -> Condition {
        self.condition
    }

    /// Consecutive breaching windows needed to fire (set by [`for_windows`](Self::for_windows)).
    pub fn windows_to_fire(&self) -> u32 {
        self.for_windows
    }

    /// The cooldown after a resolved notice (set by [`cooldown`](Self::cooldown)).
    pub fn cooldown_period(&self) -> Duration {
        self.cooldown
    }

    /// The fewest calls in a window for the condition to be checked (set by
    /// [`min_calls`](Self::min_calls)).
    pub fn min_calls_per_window(&self) -> u64 {
        self.min_calls
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] with the key `alert."<name>".<setting>` (`alert.name` for a bad
    /// name) when the name is empty, longer than 128 bytes or holds anything but ASCII
    /// letters, digits, `_`, `.` and `-`; the pattern is not an operation name or glob; an
    /// error rate is NaN, negative or above 1; a quantile is NaN or outside (0, 1] (a
    /// budget's outside (0, 1)); `for_windows` or `min_calls` is 0; an anomaly's `k` is not
    /// above 0 and finite, its baseline outside 3 to 1024 windows, its warm-up outside 3 to
    /// the baseline's length, a floor negative or not finite; a budget's period is 0 or its
    /// `burn_above` negative or not finite; an anomaly or budget setting is given to a rule
    /// of another condition.
    pub fn validate(&self) -> Result<(), Error> {
        self.check().map_err(|(field, value, reason)| {
            let key = match field {
                Field::Name => "alert.name".to_owned(),
                f => format!("alert.{:?}.{}", self.name, f.api_name()),
            };
            Error::invalid(&key, value, reason)
        })
    }

    /// The first bad setting, if any.
    pub(crate) fn check(&self) -> Result<(), Rejection> {
        if let Err(reason) = check_name(&self.name) {
            return Err((Field::Name, format!("{:?}", self.name), reason));
        }
        if let Err(reason) = Pattern::parse(&self.pattern) {
            return Err((Field::Pattern, format!("{:?}", self.pattern), reason));
        }
        let check_quantile = |quantile: f64| {
            if quantile > 0.0 && quantile <= 1.0 {
                Ok(())
            } else {
                Err((
                    Field::Quantile,
                    quantile.to_string(),
                    "a quantile above 0 and at most 1 (0.95 is the 95th percentile)",
                ))
            }
        };
        match self.condition {
            Condition::ErrorRate { above } => {
                if !(0.0..=1.0).contains(&above) {
                    return Err((
                        Field::Threshold,
                        above.to_string(),
                        "an error rate from 0 to 1",
                    ));
                }
            }
            Condition::Percentile { quantile, .. } => check_quantile(quantile)?,
            Condition::SlowCalls { .. } => {}
            Condition::Anomaly { signal, k } => {
                if let Signal::Latency { quantile } = signal {
                    check_quantile(quantile)?;
                }
                if !(k > 0.0 && k.is_finite()) {
                    return Err((
                        Field::Deviations,
                        k.to_string(),
                        "a number of deviations above 0 (3 is usual)",
                    ));
                }
                self.check_baseline()?;
            }
            Condition::BudgetBurn {
                quantile,
                period_ns,
                burn_above,
                ..
            } => {
                if !(quantile > 0.0 && quantile < 1.0) {
                    return Err((
                        Field::Quantile,
                        quantile.to_string(),
                        "a budget's quantile is above 0 and below 1 (0.95 allows 5% of calls above the limit)",
                    ));
                }
                if period_ns == 0 {
                    return Err((
                        Field::Period,
                        "0".to_owned(),
                        "a rolling period longer than 0 (it is rounded up to whole windows)",
                    ));
                }
                if !(burn_above >= 0.0 && burn_above.is_finite()) {
                    return Err((
                        Field::BurnAbove,
                        burn_above.to_string(),
                        "a burn of 0 or more (1: the allowance is used up)",
                    ));
                }
            }
        }
        if let Some(field) = self.stray {
            return Err((
                field,
                format!("{:?}", self.condition),
                "this setting applies to budget rules only",
            ));
        }
        let is_anomaly = matches!(self.condition, Condition::Anomaly { .. });
        let anomaly_settings = [
            (Field::BaselineWindows, self.baseline_windows.is_some()),
            (Field::WarmupWindows, self.warmup_windows.is_some()),
            (Field::MinDeviation, self.min_deviation.is_some()),
            (
                Field::MinRelativeDeviation,
                self.min_relative_deviation.is_some(),
            ),
        ];
        if let Some((field, _)) = anomaly_settings.iter().find(|(_, set)| *set && !is_anomaly) {
            return Err((
                *field,
                format!("{:?}", self.condition),
                "this setting applies to anomaly rules only",
            ));
        }
        if self.for_windows == 0 {
            return Err((
                Field::ForWindows,
                "0".to_owned(),
                "at least 1 consecutive window",
            ));
        }
        if self.min_calls == 0 {
            return Err((
                Field::MinCalls,
                "0".to_owned(),
                "at least 1 call (a window without calls never breaches)",
            ));
        }
        Ok(())
    }

    /// The anomaly settings' ranges.
    fn check_baseline(&self) -> Result<(), Rejection> {
        let len = self.baseline_len();
        if !(3..=MAX_BASELINE_WINDOWS).contains(&len) {
            return Err((
                Field::BaselineWindows,
                len.to_string(),
                "from 3 to 1024 windows",
            ));
        }
        let warmup = self.warmup_len();
        if !(3..=len).contains(&warmup) {
            return Err((
                Field::WarmupWindows,
                warmup.to_string(),
                "from 3 windows to the baseline's length",
            ));
        }
        for (field, v) in [
            (Field::MinDeviation, self.deviation_floor()),
            (Field::MinRelativeDeviation, self.relative_deviation_floor()),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err((field, v.to_string(), "a floor of 0 or more"));
            }
        }
        Ok(())
    }

    /// The compiled pattern; only for a rule that passed [`check`](Self::check).
    pub(crate) fn compiled_pattern(&self) -> Pattern {
        Pattern::parse(&self.pattern).expect("validated rule")
    }
}

/// Alert rule names: 1 to 128 bytes of `[A-Za-z0-9_.-]`.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("an alert rule needs a name");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("an alert rule name is at most 128 bytes long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err("an alert rule name may only hold ASCII letters, digits, '_', '.' and '-'");
    }
    Ok(())
}

/// Checks a list of rules: each one, and that no two share a name.
pub(crate) fn validate_all(rules: &[AlertRule]) -> Result<(), Error> {
    for (i, rule) in rules.iter().enumerate() {
        rule.validate()?;
        if rules[..i].iter().any(|r| r.name == rule.name) {
            return Err(Error::invalid(
                "alert.name",
                format!("{:?}", rule.name),
                "two alert rules have this name; names must be unique",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(rule: AlertRule) -> (String, String, String) {
        match rule.validate() {
            Err(Error::InvalidConfig { key, value, reason }) => (key, value, reason),
            other => panic!("expected InvalidConfig for {rule:?}, got {other:?}"),
        }
    }

    #[test]
    fn good_rules_pass_with_defaults() {
        let r = AlertRule::error_rate("db-errors", "db.*", 0.05);
        r.validate().unwrap();
        assert_eq!((r.windows_to_fire(), r.min_calls_per_window()), (1, 1));
        assert_eq!(r.cooldown_period(), Duration::ZERO);
        assert_eq!(r.condition(), Condition::ErrorRate { above: 0.05 });
        for rule in [
            AlertRule::error_rate("a", "x", 0.0),
            AlertRule::error_rate("a", "x", 1.0),
            AlertRule::percentile("p.99_x-y", "*", 1.0, Duration::from_millis(5)),
            AlertRule::percentile("a", "http.*.get", 1e-9, Duration::ZERO),
            AlertRule::slow_calls("a", "db.query", 0).for_windows(u32::MAX),
            AlertRule::slow_calls(&*"n".repeat(128), "x", u64::MAX).min_calls(u64::MAX),
        ] {
            rule.validate().unwrap();
        }
        let p = AlertRule::percentile("a", "x", 0.5, Duration::MAX);
        assert_eq!(
            p.condition(),
            Condition::Percentile {
                quantile: 0.5,
                above_ns: u64::MAX
            }
        );
    }

    #[test]
    fn every_bad_value_is_named() {
        let cases: Vec<(AlertRule, &str, &str)> = vec![
            (AlertRule::error_rate("", "x", 0.1), "alert.name", "\"\""),
            (
                AlertRule::error_rate("a b", "x", 0.1),
                "alert.name",
                "\"a b\"",
            ),
            (
                AlertRule::error_rate("a/b", "x", 0.1),
                "alert.name",
                "\"a/b\"",
            ),
            (AlertRule::error_rate("é", "x", 0.1), "alert.name", "\"é\""),
            (
                AlertRule::error_rate("a", "", 0.1),
                "alert.\"a\".pattern",
                "\"\"",
            ),
            (
                AlertRule::error_rate("a", "db-*", 0.1),
                "alert.\"a\".pattern",
                "\"db-*\"",
            ),
            (
                AlertRule::error_rate("a", "x", f64::NAN),
                "alert.\"a\".above",
                "NaN",
            ),
            (
                AlertRule::error_rate("a", "x", -0.1),
                "alert.\"a\".above",
                "-0.1",
            ),
            (
                AlertRule::error_rate("a", "x", 1.5),
                "alert.\"a\".above",
                "1.5",
            ),
            (
                AlertRule::error_rate("a", "x", f64::INFINITY),
                "alert.\"a\".above",
                "inf",
            ),
            (
                AlertRule::percentile("a", "x", 0.0, Duration::ZERO),
                "alert.\"a\".quantile",
                "0",
            ),
            (
                AlertRule::percentile("a", "x", 1.01, Duration::ZERO),
                "alert.\"a\".quantile",
                "1.01",
            ),
            (
                AlertRule::percentile("a", "x", f64::NAN, Duration::ZERO),
                "alert.\"a\".quantile",
                "NaN",
            ),
            (
                AlertRule::percentile("a", "x", -0.5, Duration::ZERO),
                "alert.\"a\".quantile",
                "-0.5",
            ),
            (
                AlertRule::slow_calls("a", "x", 1).for_windows(0),
                "alert.\"a\".for_windows",
                "0",
            ),
            (
                AlertRule::slow_calls("a", "x", 1).min_calls(0),
                "alert.\"a\".min_calls",
                "0",
            ),
        ];
        for (rule, want_key, want_value) in cases {
            let (key, value, why) = reason(rule);
            assert_eq!((key.as_str(), value.as_str()), (want_key, want_value));
            assert!(!why.is_empty());
        }
        let long = AlertRule::error_rate("n".repeat(129), "x", 0.1);
        assert!(reason(long).2.contains("128"));
        let msg = AlertRule::error_rate("a", "x", f64::NAN)
            .validate()
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "invalid value NaN for alert.\"a\".above: an error rate from 0 to 1"
        );
    }

    #[test]
    fn anomaly_and_budget_settings_are_checked() {
        let lat = Signal::Latency { quantile: 0.99 };
        let ok = [
            AlertRule::anomaly("a", "x", lat, 3.0),
            AlertRule::anomaly("a", "x", Signal::ErrorRate, 0.1)
                .baseline_windows(3)
                .warmup_windows(3)
                .min_deviation(0.0)
                .min_relative_deviation(0.0),
            AlertRule::anomaly("a", "x", lat, 3.0).baseline_windows(1024),
            AlertRule::budget("b", "x", 0.5, Duration::ZERO, Duration::from_nanos(1)),
            AlertRule::budget("b", "x", 0.999, Duration::MAX, Duration::MAX).burn_above(0.0),
        ];
        for rule in ok {
            rule.validate().unwrap();
        }
        let day = Duration::from_secs(86_400);
        let ms = Duration::from_millis(200);
        let cases: Vec<(AlertRule, &str, &str)> = vec![
            (AlertRule::anomaly("a", "x", lat, 0.0), "k", "0"),
            (AlertRule::anomaly("a", "x", lat, f64::NAN), "k", "NaN"),
            (AlertRule::anomaly("a", "x", lat, f64::INFINITY), "k", "inf"),
            (
                AlertRule::anomaly("a", "x", Signal::Latency { quantile: 0.0 }, 3.0),
                "quantile",
                "0",
            ),
            (
                AlertRule::anomaly("a", "x", lat, 3.0).baseline_windows(2),
                "baseline_windows",
                "2",
            ),
            (
                AlertRule::anomaly("a", "x", lat, 3.0).baseline_windows(1025),
                "baseline_windows",
                "1025",
            ),
            (
                AlertRule::anomaly("a", "x", lat, 3.0).warmup_windows(31),
                "warmup_windows",
                "31",
            ),
            (
                AlertRule::anomaly("a", "x", lat, 3.0).warmup_windows(2),
                "warmup_windows",
                "2",
            ),
            (
                AlertRule::anomaly("a", "x", lat, 3.0).min_deviation(-1.0),
                "min_deviation",
                "-1",
            ),
            (
                AlertRule::anomaly("a", "x", lat, 3.0).min_relative_deviation(f64::NAN),
                "min_relative_deviation",
                "NaN",
            ),
            (AlertRule::budget("b", "x", 1.0, ms, day), "quantile", "1"),
            (AlertRule::budget("b", "x", 0.0, ms, day), "quantile", "0"),
            (
                AlertRule::budget("b", "x", 0.9, ms, Duration::ZERO),
                "period",
                "0",
            ),
            (
                AlertRule::budget("b", "x", 0.9, ms, day).burn_above(-1.0),
                "burn_above",
                "-1",
            ),
            (
                AlertRule::budget("b", "x", 0.9, ms, day).burn_above(f64::INFINITY),
                "burn_above",
                "inf",
            ),
        ];
        for (rule, field, value) in cases {
            let name = rule.name().to_owned();
            let (key, got, why) = reason(rule);
            assert_eq!(
                (key, got.as_str()),
                (format!("alert.{name:?}.{field}"), value)
            );
            assert!(!why.is_empty());
        }
        // Settings of one kind of rule on another are refused, not ignored.
        let stray = [
            (
                AlertRule::error_rate("a", "x", 0.1).burn_above(2.0),
                "burn_above",
                "budget",
            ),
            (
                AlertRule::anomaly("a", "x", lat, 3.0).burn_above(2.0),
                "burn_above",
                "budget",
            ),
            (
                AlertRule::slow_calls("a", "x", 1).baseline_windows(30),
                "baseline_windows",
                "anomaly",
            ),
            (
                AlertRule::error_rate("a", "x", 0.1).warmup_windows(5),
                "warmup_windows",
                "anomaly",
            ),
            (
                AlertRule::budget("a", "x", 0.9, ms, day).min_deviation(1.0),
                "min_deviation",
                "anomaly",
            ),
            (
                AlertRule::percentile("a", "x", 0.9, ms).min_relative_deviation(0.1),
                "min_relative_deviation",
                "anomaly",
            ),
        ];
        for (rule, field, kind) in stray {
            let (key, _, why) = reason(rule);
            assert_eq!(key, format!("alert.\"a\".{field}"));
            assert!(why.contains(kind), "{why}");
        }
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let rules = [
            AlertRule::error_rate("a", "x", 0.1),
            AlertRule::slow_calls("a", "y", 1),
        ];
        let e = validate_all(&rules).unwrap_err().to_string();
        assert!(e.contains("\"a\"") && e.contains("unique"), "{e}");
        validate_all(&rules[..1]).unwrap();
    }

    #[test]
    fn conditions_display_and_compare_strictly() {
        let p = Condition::Percentile {
            quantile: 0.999,
            above_ns: 200_000_000,
        };
        assert_eq!(p.to_string(), "p99.9 > 200ms");
        assert_eq!(
            Condition::ErrorRate { above: 0.05 }.to_string(),
            "error rate > 0.05"
        );
        assert_eq!(
            Condition::SlowCalls { above: 3 }.to_string(),
            "slow calls > 3"
        );
        assert!(!Condition::SlowCalls { above: 3 }.breached(3.0));
        assert!(Condition::SlowCalls { above: 3 }.breached(4.0));
        assert_eq!(quantile_label(0.95), "95");
        assert_eq!(quantile_label(1.0), "100");
        assert_eq!(quantile_label(0.5), "50");
    }
}
