//! Alert rules in the configuration file: an array of `[[alert]]` tables.
//!
//! ```toml
//! [[alert]]
//! name = "db-errors"          # required: 1 to 128 bytes of [A-Za-z0-9_.-], unique
//! op = "db.*"                 # required: an operation name or a glob with '*'
//! error_rate_above = 0.05     # the condition: exactly one of the keys below
//! for_windows = 3             # optional, default 1
//! cooldown_secs = 300         # optional, default 0
//! min_calls = 10              # optional, default 1
//! ```
//!
//! | key | value | condition |
//! |---|---|---|
//! | `error_rate_above` | a rate from 0 to 1 | error rate above it |
//! | `p50_above_ms`, `p90_above_ms`, `p95_above_ms`, `p99_above_ms`, `p999_above_ms` | milliseconds, 0 to 86400000 | that percentile above it |
//! | `percentile` with `above_ms` | a quantile in (0, 1], and milliseconds | that quantile above `above_ms` |
//! | `slow_calls_above` | an integer, 0 or more | more slow calls than that |
//! | `anomaly` | `"error_rate"`, `"p50"`, `"p90"`, `"p95"`, `"p99"`, `"p999"` or a quantile in (0, 1] | that signal more than `deviations` (default 3) robust deviations above its baseline |
//! | `budget_p50_ms` … `budget_p999_ms`, or `budget_quantile` with `budget_ms` | milliseconds, and a quantile in (0, 1) | a budget over `period_secs` (default 3600) whose burn is above `burn_above` (default 1) |
//!
//! `for_windows` is an integer from 1 to 4294967295, `cooldown_secs` seconds from 0 to
//! 31536000 (a year), `min_calls` an integer of 1 or more. Anomaly rules also take
//! `baseline_windows` (3 to 1024, default 30), `warmup_windows` (3 to the baseline's length,
//! default 10), `min_deviation_ms` (a latency's floor, default 0.001) or `min_deviation` (an
//! error rate's floor, default 0.01) and `min_relative_deviation` (default 0.1); budget rules
//! `period_secs` (above 0, at most a year) and `burn_above` (0 or more).

use std::time::Duration;

use super::rule::{AlertRule, Condition, Field, Signal};
use crate::error::Error;
use crate::limits::{DEFAULT_BUDGET_PERIOD, DEFAULT_DEVIATIONS};

/// The percentile shorthands and their quantiles.
const PERCENTILE_KEYS: [(&str, f64); 5] = [
    ("p50_above_ms", 0.5),
    ("p90_above_ms", 0.9),
    ("p95_above_ms", 0.95),
    ("p99_above_ms", 0.99),
    ("p999_above_ms", 0.999),
];

/// The budget shorthands and their quantiles.
const BUDGET_KEYS: [(&str, f64); 5] = [
    ("budget_p50_ms", 0.5),
    ("budget_p90_ms", 0.9),
    ("budget_p95_ms", 0.95),
    ("budget_p99_ms", 0.99),
    ("budget_p999_ms", 0.999),
];

/// The signals of `anomaly = "..."`.
const SIGNALS: [(&str, Signal); 6] = [
    ("error_rate", Signal::ErrorRate),
    ("p50", Signal::Latency { quantile: 0.5 }),
    ("p90", Signal::Latency { quantile: 0.9 }),
    ("p95", Signal::Latency { quantile: 0.95 }),
    ("p99", Signal::Latency { quantile: 0.99 }),
    ("p999", Signal::Latency { quantile: 0.999 }),
];

const CONDITION_KEYS: &str = "error_rate_above, p50_above_ms, p90_above_ms, p95_above_ms, \
     p99_above_ms, p999_above_ms, percentile with above_ms, slow_calls_above, anomaly, \
     budget_p50_ms to budget_p999_ms, budget_quantile with budget_ms";

const KNOWN_KEYS: &str = "name, op, error_rate_above, p50_above_ms, p90_above_ms, \
     p95_above_ms, p99_above_ms, p999_above_ms, percentile, above_ms, slow_calls_above, \
     anomaly, deviations, baseline_windows, warmup_windows, min_deviation_ms, min_deviation, \
     min_relative_deviation, budget_p50_ms, budget_p90_ms, budget_p95_ms, budget_p99_ms, \
     budget_p999_ms, budget_quantile, budget_ms, period_secs, burn_above, \
     for_windows, cooldown_secs, min_calls";

/// The longest percentile budget in the file: a day.
const MAX_MS: f64 = 86_400_000.0;
/// The longest cooldown in the file: a year.
const MAX_COOLDOWN_SECS: f64 = 31_536_000.0;

/// Parses the value of the configuration file's `alert` key: an array of tables, one rule
/// each. `file_label` prefixes the keys in errors (`app.toml: alert[0].for_windows`).
///
/// # Errors
/// [`Error::InvalidConfig`] naming the key for a value that is not an array of tables, an
/// unknown key, a value of the wrong type or out of range, a missing `name` or `op`, no
/// condition or more than one, or a name used twice.
pub(crate) fn from_toml(file_label: &str, value: &toml::Value) -> Result<Vec<AlertRule>, Error> {
    let list = value.as_array().ok_or_else(|| {
        Error::invalid(
            &format!("{file_label}: alert"),
            value,
            "an array of tables: [[alert]] with name, op and a condition",
        )
    })?;
    let mut rules: Vec<AlertRule> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let at = format!("{file_label}: alert[{i}]");
        let table = item.as_table().ok_or_else(|| {
            Error::invalid(
                &at,
                item,
                "a table: [[alert]] with name, op and a condition",
            )
        })?;
        let rule = rule_table(table, &at)?;
        if rules.iter().any(|r| r.name() == rule.name()) {
            return Err(Error::invalid(
                &format!("{at}.name"),
                format!("{:?}", rule.name()),
                "another [[alert]] has this name; names must be unique",
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// One `[[alert]]` table; `at` is its key for errors.
fn rule_table(t: &toml::Table, at: &str) -> Result<AlertRule, Error> {
    let key = |k: &str| format!("{at}.{k}");
    let mut name = None;
    let mut pattern = None;
    // The condition and the key that gave it.
    let mut condition: Option<(&str, Condition)> = None;
    let mut quantile: Option<f64> = None;
    let mut above_ms: Option<f64> = None;
    let mut for_windows = None;
    let mut cooldown = None;
    let mut min_calls = None;
    // Anomaly settings, with the key that gave them.
    let mut deviations: Option<(f64, &toml::Value)> = None;
    let mut baseline_windows = None;
    let mut warmup_windows = None;
    let mut min_deviation: Option<(&'static str, f64)> = None;
    let mut min_relative = None;
    // Budget settings.
    let mut budget_quantile: Option<f64> = None;
    let mut budget_ms: Option<f64> = None;
    let mut period: Option<(Duration, &toml::Value)> = None;
    let mut burn_above: Option<(f64, &toml::Value)> = None;
    let mut set_condition = |k: &'static str, c: Condition, v: &toml::Value| match condition {
        Some((first, _)) => Err(Error::invalid(
            &key(k),
            v,
            format!("exactly one condition per rule, and {first} is given too"),
        )),
        None => {
            condition = Some((k, c));
            Ok(())
        }
    };
    for (k, v) in t {
        match k.as_str() {
            "name" => name = Some(string(&key(k), v, "the rule's name (a string)")?),
            "op" => pattern = Some(string(&key(k), v, "an operation name or glob (a string)")?),
            "error_rate_above" => {
                let above = num(v)
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| Error::invalid(&key(k), v, "an error rate from 0 to 1"))?;
                set_condition("error_rate_above", Condition::ErrorRate { above }, v)?;
            }
            "slow_calls_above" => {
                let above = v
                    .as_integer()
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| Error::invalid(&key(k), v, "a count, 0 or more"))?;
                set_condition("slow_calls_above", Condition::SlowCalls { above }, v)?;
            }
            "percentile" => {
                let q = num(v).filter(|q| *q > 0.0 && *q <= 1.0).ok_or_else(|| {
                    Error::invalid(
                        &key(k),
                        v,
                        "a quantile above 0 and at most 1 (0.95 is the 95th percentile)",
                    )
                })?;
                quantile = Some(q);
                // The budget comes from above_ms, read in any order.
                set_condition(
                    "percentile",
                    Condition::Percentile {
                        quantile: q,
                        above_ns: 0,
                    },
                    v,
                )?;
            }
            "above_ms" => above_ms = Some(millis(&key(k), v)?),
            "for_windows" => {
                let n = v
                    .as_integer()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| Error::invalid(&key(k), v, "an integer from 1 to 4294967295"))?;
                for_windows = Some(n);
            }
            "cooldown_secs" => {
                let s = num(v)
                    .filter(|s| (0.0..=MAX_COOLDOWN_SECS).contains(s))
                    .ok_or_else(|| {
                        Error::invalid(&key(k), v, "seconds, from 0 to 31536000 (a year)")
                    })?;
                cooldown = Some(Duration::from_secs_f64(s));
            }
            "min_calls" => {
                let n = v
                    .as_integer()
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| Error::invalid(&key(k), v, "an integer, 1 or more"))?;
                min_calls = Some(n);
            }
            "anomaly" => {
                let signal = match v {
                    toml::Value::String(s) => SIGNALS.iter().find(|(n, _)| n == s).map(|s| s.1),
                    _ => num(v)
                        .filter(|q| *q > 0.0 && *q <= 1.0)
                        .map(|quantile| Signal::Latency { quantile }),
                }
                .ok_or_else(|| {
                    Error::invalid(
                        &key(k),
                        v,
                        "\"error_rate\", \"p50\", \"p90\", \"p95\", \"p99\", \"p999\" or a quantile above 0 and at most 1",
                    )
                })?;
                set_condition(
                    "anomaly",
                    Condition::Anomaly {
                        signal,
                        k: DEFAULT_DEVIATIONS,
                    },
                    v,
                )?;
            }
            "deviations" => {
                let d = num(v)
                    .filter(|d| *d > 0.0 && d.is_finite())
                    .ok_or_else(|| {
                        Error::invalid(&key(k), v, "a number of deviations above 0 (3 is usual)")
                    })?;
                deviations = Some((d, v));
            }
            "baseline_windows" => {
                baseline_windows = Some(
                    int_u32(v)
                        .ok_or_else(|| Error::invalid(&key(k), v, "from 3 to 1024 windows"))?,
                );
            }
            "warmup_windows" => {
                warmup_windows = Some(int_u32(v).ok_or_else(|| {
                    Error::invalid(&key(k), v, "from 3 windows to the baseline's length")
                })?);
            }
            "min_deviation_ms" | "min_deviation" => {
                let key_name = if k == "min_deviation" {
                    "min_deviation"
                } else {
                    "min_deviation_ms"
                };
                let x = num(v)
                    .filter(|x| *x >= 0.0 && x.is_finite())
                    .ok_or_else(|| Error::invalid(&key(k), v, "a floor of 0 or more"))?;
                if min_deviation.is_some() {
                    return Err(Error::invalid(
                        &key(k),
                        v,
                        "give one of min_deviation_ms (latency) and min_deviation (error rate)",
                    ));
                }
                min_deviation = Some((key_name, x));
            }
            "min_relative_deviation" => {
                min_relative = Some(num(v).filter(|x| *x >= 0.0 && x.is_finite()).ok_or_else(
                    || Error::invalid(&key(k), v, "a fraction of the median, 0 or more"),
                )?);
            }
            "budget_quantile" => {
                let q = num(v).filter(|q| *q > 0.0 && *q < 1.0).ok_or_else(|| {
                    Error::invalid(
                        &key(k),
                        v,
                        "a budget's quantile is above 0 and below 1 (0.95 allows 5% of calls above the limit)",
                    )
                })?;
                budget_quantile = Some(q);
                // The limit comes from budget_ms, read in any order.
                set_condition("budget_quantile", budget(q, 0.0), v)?;
            }
            "budget_ms" => budget_ms = Some(millis(&key(k), v)?),
            "period_secs" => {
                let s = num(v)
                    .filter(|s| *s > 0.0 && *s <= MAX_COOLDOWN_SECS)
                    .ok_or_else(|| {
                        Error::invalid(&key(k), v, "seconds, above 0 and at most 31536000 (a year)")
                    })?;
                period = Some((Duration::from_secs_f64(s), v));
            }
            "burn_above" => {
                let b = num(v)
                    .filter(|b| *b >= 0.0 && b.is_finite())
                    .ok_or_else(|| {
                        Error::invalid(
                            &key(k),
                            v,
                            "a burn of 0 or more (1: the allowance is used up)",
                        )
                    })?;
                burn_above = Some((b, v));
            }
            other => match PERCENTILE_KEYS.iter().find(|(pk, _)| *pk == other) {
                Some(&(pk, q)) => {
                    let ms = millis(&key(k), v)?;
                    set_condition(
                        pk,
                        Condition::Percentile {
                            quantile: q,
                            above_ns: ms_to_ns(ms),
                        },
                        v,
                    )?;
                }
                None if BUDGET_KEYS.iter().any(|(bk, _)| *bk == other) => {
                    let &(bk, q) = BUDGET_KEYS
                        .iter()
                        .find(|(bk, _)| *bk == other)
                        .expect("just found");
                    let ms = millis(&key(k), v)?;
                    set_condition(bk, budget(q, ms), v)?;
                }
                None => {
                    return Err(Error::invalid(
                        &key(k),
                        v,
                        format!("unknown key (known: {KNOWN_KEYS})"),
                    ))
                }
            },
        }
    }
    let name = name
        .ok_or_else(|| Error::invalid(&key("name"), "(missing)", "every [[alert]] needs a name"))?;
    let pattern = pattern.ok_or_else(|| {
        Error::invalid(
            &key("op"),
            "(missing)",
            "every [[alert]] needs op: an operation name or a glob with '*'",
        )
    })?;
    let (cond_key, mut condition) = condition.ok_or_else(|| {
        Error::invalid(
            at,
            "(no condition)",
            format!("every [[alert]] needs one condition: {CONDITION_KEYS}"),
        )
    })?;
    match (quantile, above_ms) {
        (Some(q), Some(ms)) => {
            condition = Condition::Percentile {
                quantile: q,
                above_ns: ms_to_ns(ms),
            }
        }
        (Some(q), None) => {
            return Err(Error::invalid(
                &key("percentile"),
                q,
                "percentile needs above_ms, the budget in milliseconds",
            ))
        }
        (None, Some(ms)) => return Err(Error::invalid(
            &key("above_ms"),
            ms,
            "above_ms needs percentile, the quantile it bounds (or use p95_above_ms and the like)",
        )),
        (None, None) => {}
    }
    match (budget_quantile, budget_ms) {
        (Some(q), Some(ms)) => condition = budget(q, ms),
        (Some(q), None) => {
            return Err(Error::invalid(
                &key("budget_quantile"),
                q,
                "budget_quantile needs budget_ms, the limit in milliseconds",
            ))
        }
        (None, Some(ms)) => {
            return Err(Error::invalid(
                &key("budget_ms"),
                ms,
                "budget_ms needs budget_quantile, the quantile it bounds (or use budget_p95_ms and the like)",
            ))
        }
        (None, None) => {}
    }
    match &mut condition {
        Condition::Anomaly { k, .. } => {
            if let Some((d, _)) = deviations {
                *k = d;
            }
        }
        Condition::BudgetBurn {
            period_ns,
            burn_above: level,
            ..
        } => {
            if let Some((d, _)) = period {
                *period_ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            }
            if let Some((b, _)) = burn_above {
                *level = b;
            }
        }
        _ => {}
    }
    let is_anomaly = matches!(condition, Condition::Anomaly { .. });
    let is_budget = matches!(condition, Condition::BudgetBurn { .. });
    for (k, v, applies) in [
        ("deviations", deviations.map(|d| d.1), is_anomaly),
        ("period_secs", period.map(|p| p.1), is_budget),
        ("burn_above", burn_above.map(|b| b.1), is_budget),
    ] {
        if let (Some(v), false) = (v, applies) {
            let what = if k == "deviations" {
                "this key applies to anomaly rules only"
            } else {
                "this key applies to budget rules only"
            };
            return Err(Error::invalid(&key(k), v, what));
        }
    }
    let min_deviation_key = match (&condition, min_deviation) {
        (Condition::Anomaly { signal, .. }, Some((given, _))) => {
            let want = match signal {
                Signal::ErrorRate => "min_deviation",
                _ => "min_deviation_ms",
            };
            if given != want {
                return Err(Error::invalid(
                    &key(given),
                    min_deviation.map_or(0.0, |m| m.1),
                    format!("this anomaly rule's floor is {want}"),
                ));
            }
            given
        }
        (_, Some((given, _))) => given,
        (_, None) => "min_deviation",
    };
    let mut rule = AlertRule::with_condition(name, pattern, condition);
    if let Some(n) = baseline_windows {
        rule = rule.baseline_windows(n);
    }
    if let Some(n) = warmup_windows {
        rule = rule.warmup_windows(n);
    }
    if let Some((given, x)) = min_deviation {
        rule = rule.min_deviation(if given == "min_deviation_ms" {
            x * 1e6
        } else {
            x
        });
    }
    if let Some(x) = min_relative {
        rule = rule.min_relative_deviation(x);
    }
    if let Some(n) = for_windows {
        rule = rule.for_windows(n);
    }
    if let Some(d) = cooldown {
        rule = rule.cooldown(d);
    }
    if let Some(n) = min_calls {
        rule = rule.min_calls(n);
    }
    rule.check().map_err(|(field, value, reason)| {
        let k = match field {
            Field::Name => "name",
            Field::Pattern => "op",
            Field::Threshold => cond_key,
            Field::Quantile => "percentile",
            Field::ForWindows => "for_windows",
            Field::MinCalls => "min_calls",
            Field::Deviations => "deviations",
            Field::BaselineWindows => "baseline_windows",
            Field::WarmupWindows => "warmup_windows",
            Field::MinDeviation => min_deviation_key,
            Field::MinRelativeDeviation => "min_relative_deviation",
            Field::Period => "period_secs",
            Field::BurnAbove => "burn_above",
        };
        Error::invalid(&key(k), value, reason)
    })?;
    Ok(rule)
}

fn string(k: &str, v: &toml::Value, what: &str) -> Result<String, Error> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::invalid(k, v, what))
}

fn num(v: &toml::Value) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

fn millis(k: &str, v: &toml::Value) -> Result<f64, Error> {
    num(v)
        .filter(|ms| (0.0..=MAX_MS).contains(ms))
        .ok_or_else(|| Error::invalid(k, v, "milliseconds, from 0 to 86400000 (a day)"))
}

fn ms_to_ns(ms: f64) -> u64 {
    (ms * 1e6).round() as u64
}

/// An integer that fits a `u32` (the range is checked with the rule).
fn int_u32(v: &toml::Value) -> Option<u32> {
    v.as_integer().and_then(|n| u32::try_from(n).ok())
}

/// A budget condition at `quantile` with a limit of `ms`, over the default period, burning
/// above 1 (the period and the level are set once the whole table is read).
fn budget(quantile: f64, ms: f64) -> Condition {
    Condition::BudgetBurn {
        quantile,
        above_ns: ms_to_ns(ms),
        period_ns: u64::try_from(DEFAULT_BUDGET_PERIOD.as_nanos()).unwrap_or(u64::MAX),
        burn_above: 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<AlertRule>, Error> {
        let table: toml::Table = text.parse().expect("valid TOML");
        from_toml("app.toml", table.get("alert").expect("an alert key"))
    }

    fn rejected(text: &str) -> (String, String, String) {
        match parse(text) {
            Err(Error::InvalidConfig { key, value, reason }) => (key, value, reason),
            other => panic!("expected InvalidConfig for {text}, got {other:?}"),
        }
    }

    #[test]
    fn every_condition_form_parses() {
        let rules = parse(
            r#"
            [[alert]]
            name = "db-errors"
            op = "db.*"
            error_rate_above = 0.05
            for_windows = 3
            cooldown_secs = 300
            min_calls = 10

            [[alert]]
            name = "checkout.p95"
            op = "http.checkout"
            p95_above_ms = 200

            [[alert]]
            name = "p80"
            op = "*"
            above_ms = 1.5
            percentile = 0.8

            [[alert]]
            name = "slow"
            op = "*.query"
            slow_calls_above = 0
            cooldown_secs = 0.5

            [[alert]]
            name = "rate-int"
            op = "x"
            error_rate_above = 1
            "#,
        )
        .unwrap();
        let want = vec![
            AlertRule::error_rate("db-errors", "db.*", 0.05)
                .for_windows(3)
                .cooldown(Duration::from_secs(300))
                .min_calls(10),
            AlertRule::percentile(
                "checkout.p95",
                "http.checkout",
                0.95,
                Duration::from_millis(200),
            ),
            AlertRule::percentile("p80", "*", 0.8, Duration::from_micros(1500)),
            AlertRule::slow_calls("slow", "*.query", 0).cooldown(Duration::from_millis(500)),
            AlertRule::error_rate("rate-int", "x", 1.0),
        ];
        assert_eq!(rules, want);
        for (key, q) in PERCENTILE_KEYS {
            let r = parse(&format!("[[alert]]\nname = \"a\"\nop = \"b\"\n{key} = 7\n")).unwrap();
            assert_eq!(
                r[0].condition(),
                Condition::Percentile {
                    quantile: q,
                    above_ns: 7_000_000
                }
            );
        }
        assert!(parse("alert = []").unwrap().is_empty());
    }

    #[test]
    fn anomaly_and_budget_rules_parse() {
        let rules = parse(
            r#"
            [[alert]]
            name = "p99-anomaly"
            op = "http.*"
            anomaly = "p99"
            for_windows = 3

            [[alert]]
            name = "errors-anomaly"
            op = "db.*"
            anomaly = "error_rate"
            deviations = 4.5
            baseline_windows = 60
            warmup_windows = 20
            min_deviation = 0.02
            min_relative_deviation = 0

            [[alert]]
            name = "p97-anomaly"
            op = "x"
            min_deviation_ms = 2.5
            anomaly = 0.97

            [[alert]]
            name = "checkout-budget"
            op = "http.checkout"
            budget_p95_ms = 200

            [[alert]]
            name = "q-budget"
            op = "x"
            budget_ms = 1.5
            period_secs = 60
            budget_quantile = 0.8
            burn_above = 2
            "#,
        )
        .unwrap();
        let want = vec![
            AlertRule::anomaly(
                "p99-anomaly",
                "http.*",
                Signal::Latency { quantile: 0.99 },
                3.0,
            )
            .for_windows(3),
            AlertRule::anomaly("errors-anomaly", "db.*", Signal::ErrorRate, 4.5)
                .baseline_windows(60)
                .warmup_windows(20)
                .min_deviation(0.02)
                .min_relative_deviation(0.0),
            AlertRule::anomaly("p97-anomaly", "x", Signal::Latency { quantile: 0.97 }, 3.0)
                .min_deviation(2_500_000.0),
            AlertRule::budget(
                "checkout-budget",
                "http.checkout",
                0.95,
                Duration::from_millis(200),
                Duration::from_secs(3600),
            ),
            AlertRule::budget(
                "q-budget",
                "x",
                0.8,
                Duration::from_micros(1500),
                Duration::from_secs(60),
            )
            .burn_above(2.0),
        ];
        assert_eq!(rules, want);
        for (key, q) in BUDGET_KEYS {
            let r = parse(&format!("[[alert]]\nname = \"a\"\nop = \"b\"\n{key} = 7\n")).unwrap();
            assert!(matches!(
                r[0].condition(),
                Condition::BudgetBurn { quantile, above_ns: 7_000_000, .. } if quantile == q
            ));
        }
    }

    #[test]
    fn bad_anomaly_and_budget_settings_name_the_key() {
        let head = "[[alert]]\nname = \"a\"\nop = \"db.*\"\n";
        let cases: Vec<(String, &str, &str)> = vec![
            (
                format!("{head}anomaly = \"p42\"\n"),
                "app.toml: alert[0].anomaly",
                "quantile",
            ),
            (
                format!("{head}anomaly = 1.5\n"),
                "app.toml: alert[0].anomaly",
                "quantile",
            ),
            (
                format!("{head}anomaly = \"p99\"\ndeviations = 0\n"),
                "app.toml: alert[0].deviations",
                "above 0",
            ),
            (
                format!("{head}anomaly = \"p99\"\ndeviations = nan\n"),
                "app.toml: alert[0].deviations",
                "above 0",
            ),
            (
                format!("{head}anomaly = \"p99\"\nbaseline_windows = 2\n"),
                "app.toml: alert[0].baseline_windows",
                "from 3 to 1024",
            ),
            (
                format!("{head}anomaly = \"p99\"\nbaseline_windows = 1025\n"),
                "app.toml: alert[0].baseline_windows",
                "from 3 to 1024",
            ),
            (
                format!("{head}anomaly = \"p99\"\nbaseline_windows = -1\n"),
                "app.toml: alert[0].baseline_windows",
                "from 3 to 1024",
            ),
            (
                format!("{head}anomaly = \"p99\"\nbaseline_windows = 5\nwarmup_windows = 6\n"),
                "app.toml: alert[0].warmup_windows",
                "baseline's length",
            ),
            (
                format!("{head}anomaly = \"p99\"\nwarmup_windows = 2\n"),
                "app.toml: alert[0].warmup_windows",
                "from 3",
            ),
            (
                format!("{head}anomaly = \"p99\"\nmin_deviation_ms = -1\n"),
                "app.toml: alert[0].min_deviation_ms",
                "0 or more",
            ),
            (
                format!("{head}anomaly = \"p99\"\nmin_deviation = 0.1\n"),
                "app.toml: alert[0].min_deviation",
                "min_deviation_ms",
            ),
            (
                format!("{head}anomaly = \"error_rate\"\nmin_deviation_ms = 1\n"),
                "app.toml: alert[0].min_deviation_ms",
                "is min_deviation",
            ),
            (
                format!("{head}anomaly = \"p99\"\nmin_relative_deviation = \"x\"\n"),
                "app.toml: alert[0].min_relative_deviation",
                "0 or more",
            ),
            (
                format!("{head}error_rate_above = 0.1\ndeviations = 3\n"),
                "app.toml: alert[0].deviations",
                "anomaly rules only",
            ),
            (
                format!("{head}error_rate_above = 0.1\nbaseline_windows = 30\n"),
                "app.toml: alert[0].baseline_windows",
                "anomaly rules only",
            ),
            (
                format!("{head}budget_p95_ms = 200\nwarmup_windows = 3\n"),
                "app.toml: alert[0].warmup_windows",
                "anomaly rules only",
            ),
            (
                format!("{head}anomaly = \"p99\"\nperiod_secs = 60\n"),
                "app.toml: alert[0].period_secs",
                "budget rules only",
            ),
            (
                format!("{head}slow_calls_above = 1\nburn_above = 2\n"),
                "app.toml: alert[0].burn_above",
                "budget rules only",
            ),
            (
                format!("{head}anomaly = \"p99\"\nerror_rate_above = 0.1\n"),
                "app.toml: alert[0].error_rate_above",
                "exactly one condition",
            ),
            (
                format!("{head}budget_p95_ms = 200\nanomaly = \"p99\"\n"),
                "app.toml: alert[0].anomaly",
                "exactly one condition",
            ),
            (
                format!("{head}budget_quantile = 1\nbudget_ms = 5\n"),
                "app.toml: alert[0].budget_quantile",
                "below 1",
            ),
            (
                format!("{head}budget_quantile = 0.9\n"),
                "app.toml: alert[0].budget_quantile",
                "needs budget_ms",
            ),
            (
                format!("{head}budget_ms = 5\nslow_calls_above = 1\n"),
                "app.toml: alert[0].budget_ms",
                "needs budget_quantile",
            ),
            (
                format!("{head}budget_p99_ms = -1\n"),
                "app.toml: alert[0].budget_p99_ms",
                "milliseconds",
            ),
            (
                format!("{head}budget_p99_ms = 5\nperiod_secs = 0\n"),
                "app.toml: alert[0].period_secs",
                "above 0",
            ),
            (
                format!("{head}budget_p99_ms = 5\nperiod_secs = 1e9\n"),
                "app.toml: alert[0].period_secs",
                "a year",
            ),
            (
                format!("{head}budget_p99_ms = 5\nburn_above = -0.5\n"),
                "app.toml: alert[0].burn_above",
                "0 or more",
            ),
        ];
        for (text, want_key, want_reason) in cases {
            let (key, _value, reason) = rejected(&text);
            assert_eq!(key, want_key, "{text}");
            assert!(reason.contains(want_reason), "{text}: {reason}");
        }
    }

    #[test]
    fn bad_tables_name_the_key() {
        let head = "[[alert]]\nname = \"a\"\nop = \"db.*\"\n";
        let cases: Vec<(String, &str, &str)> = vec![
            ("alert = 3".into(), "app.toml: alert", "array of tables"),
            ("alert = [1]".into(), "app.toml: alert[0]", "a table"),
            (
                format!("{head}error_rate_above = 0.1\ncolour = 1\n"),
                "app.toml: alert[0].colour",
                "unknown key",
            ),
            (
                format!("{head}error_rate_above = 0.1\nfor_windows = 0\n"),
                "app.toml: alert[0].for_windows",
                "from 1",
            ),
            (
                format!("{head}error_rate_above = 0.1\nfor_windows = \"3\"\n"),
                "app.toml: alert[0].for_windows",
                "integer",
            ),
            (
                format!("{head}error_rate_above = 0.1\nfor_windows = 2.5\n"),
                "app.toml: alert[0].for_windows",
                "integer",
            ),
            (
                format!("{head}error_rate_above = 0.1\nmin_calls = 0\n"),
                "app.toml: alert[0].min_calls",
                "1 or more",
            ),
            (
                format!("{head}error_rate_above = 0.1\ncooldown_secs = -1\n"),
                "app.toml: alert[0].cooldown_secs",
                "seconds",
            ),
            (
                format!("{head}error_rate_above = nan\n"),
                "app.toml: alert[0].error_rate_above",
                "from 0 to 1",
            ),
            (
                format!("{head}error_rate_above = 1.5\n"),
                "app.toml: alert[0].error_rate_above",
                "from 0 to 1",
            ),
            (
                format!("{head}error_rate_above = \"5%\"\n"),
                "app.toml: alert[0].error_rate_above",
                "from 0 to 1",
            ),
            (
                format!("{head}slow_calls_above = -1\n"),
                "app.toml: alert[0].slow_calls_above",
                "0 or more",
            ),
            (
                format!("{head}p95_above_ms = -5\n"),
                "app.toml: alert[0].p95_above_ms",
                "milliseconds",
            ),
            (
                format!("{head}p95_above_ms = inf\n"),
                "app.toml: alert[0].p95_above_ms",
                "milliseconds",
            ),
            (
                format!("{head}percentile = 0\nabove_ms = 5\n"),
                "app.toml: alert[0].percentile",
                "quantile",
            ),
            (
                format!("{head}percentile = 0.9\n"),
                "app.toml: alert[0].percentile",
                "needs above_ms",
            ),
            (
                format!("{head}above_ms = 5\nslow_calls_above = 1\n"),
                "app.toml: alert[0].above_ms",
                "needs percentile",
            ),
            (
                format!("{head}error_rate_above = 0.1\np99_above_ms = 5\n"),
                "app.toml: alert[0].p99_above_ms",
                "exactly one condition",
            ),
            (
                format!("{head}p99_above_ms = 5\npercentile = 0.9\nabove_ms = 1\n"),
                "app.toml: alert[0].percentile",
                "exactly one condition",
            ),
            (head.to_owned(), "app.toml: alert[0]", "needs one condition"),
            (
                "[[alert]]\nop = \"x\"\nslow_calls_above = 1\n".into(),
                "app.toml: alert[0].name",
                "needs a name",
            ),
            (
                "[[alert]]\nname = \"x\"\nslow_calls_above = 1\n".into(),
                "app.toml: alert[0].op",
                "needs op",
            ),
            (
                "[[alert]]\nname = \"a b\"\nop = \"x\"\nslow_calls_above = 1\n".into(),
                "app.toml: alert[0].name",
                "may only hold",
            ),
            (
                "[[alert]]\nname = 5\nop = \"x\"\nslow_calls_above = 1\n".into(),
                "app.toml: alert[0].name",
                "a string",
            ),
            (
                "[[alert]]\nname = \"a\"\nop = \"db-*\"\nslow_calls_above = 1\n".into(),
                "app.toml: alert[0].op",
                "pattern",
            ),
            (
                format!("{head}slow_calls_above = 1\n{head}slow_calls_above = 2\n"),
                "app.toml: alert[1].name",
                "unique",
            ),
        ];
        for (text, want_key, want_reason) in cases {
            let (key, _value, reason) = rejected(&text);
            assert_eq!(key, want_key, "{text}");
            assert!(reason.contains(want_reason), "{text}: {reason}");
        }
        let msg = parse(&format!("{head}error_rate_above = 0.1\nfor_windows = 0\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "invalid value 0 for app.toml: alert[0].for_windows: an integer from 1 to 4294967295"
        );
    }
}
