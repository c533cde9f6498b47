//! Configuration from outside the program: environment variables and a TOML file.
//!
//! Both produce a [`Layer`]; the builder stacks them as file < environment < API.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Durability, Rule, Rules, Sampling};
use crate::alert::{self, AlertRule};
use crate::env::{
    CONFIG as ENV_CONFIG, ERROR_RATE_THRESHOLD as ENV_ERROR_RATE_THRESHOLD, LOG_DIR as ENV_LOG_DIR,
    RING_CAPACITY as ENV_RING_CAPACITY, SAMPLE_EVERY as ENV_SAMPLE_EVERY,
    SLOW_THRESHOLD_MS as ENV_SLOW_THRESHOLD_MS, WINDOW_SECS as ENV_WINDOW_SECS,
};
use crate::error::Error;
use crate::limits::{
    MAX_EXEMPLARS, MAX_RING_CAPACITY, MAX_RSS_GROWTH_WINDOWS, MAX_SAMPLE_EVERY,
    MIN_SAMPLE_PROBABILITY,
};
use crate::pattern::Pattern;

/// Environment variable naming the window log's durability policy (`os`, `window` or a
/// sync interval such as `250ms`; see `docs/log-format.md`).
pub(crate) const ENV_LOG_DURABILITY: &str = "RINGMETER_LOG_DURABILITY";

/// What one source sets. `None`: the source says nothing about it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Layer {
    pub(crate) window: Option<Duration>,
    pub(crate) ring_capacity: Option<usize>,
    pub(crate) log_dir: Option<PathBuf>,
    /// When the window log syncs (`log_durability`, `RINGMETER_LOG_DURABILITY`).
    pub(crate) log_durability: Option<Durability>,
    pub(crate) rules: Rules,
    /// Alert rules (`[[alert]]`; the configuration file only).
    pub(crate) alerts: Vec<AlertRule>,
    /// Whether process gauges are sampled (`process_gauges`).
    pub(crate) process_gauges: Option<bool>,
    /// Rises of resident memory that set the growth flag (`rss_growth_windows`; 0: off).
    pub(crate) rss_growth_windows: Option<u32>,
}

impl Layer {
    /// Stacks `over` on this layer.
    pub(crate) fn overlay(&mut self, over: &Layer) {
        self.window = over.window.or(self.window);
        self.ring_capacity = over.ring_capacity.or(self.ring_capacity);
        if over.log_dir.is_some() {
            self.log_dir.clone_from(&over.log_dir);
        }
        self.log_durability = over.log_durability.or(self.log_durability);
        self.rules.overlay(&over.rules);
        self.alerts.extend(over.alerts.iter().cloned());
        self.process_gauges = over.process_gauges.or(self.process_gauges);
        self.rss_growth_windows = over.rss_growth_windows.or(self.rss_growth_windows);
    }
}

/// Reads the environment variables through `var`; returns the layer and the configuration
/// file named by `RINGMETER_CONFIG`, if any.
pub(crate) fn from_env(
    var: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(Layer, Option<PathBuf>), Error> {
    let get = |name: &str| -> Result<Option<String>, Error> {
        match var(name) {
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|v| Error::invalid(name, v.to_string_lossy(), "not valid UTF-8")),
        }
    };
    let mut layer = Layer::default();
    let mut defaults = Rule::new();
    if let Some(v) = get(ENV_SLOW_THRESHOLD_MS)? {
        defaults = defaults.slow_threshold(millis(ENV_SLOW_THRESHOLD_MS, &v, parse_f64(&v))?);
    }
    if let Some(v) = get(ENV_WINDOW_SECS)? {
        layer.window = Some(seconds(ENV_WINDOW_SECS, &v, parse_f64(&v))?);
    }
    if let Some(v) = get(ENV_ERROR_RATE_THRESHOLD)? {
        defaults =
            defaults.error_rate_threshold(rate(ENV_ERROR_RATE_THRESHOLD, &v, parse_f64(&v))?);
    }
    if let Some(v) = get(ENV_SAMPLE_EVERY)? {
        defaults = defaults.sampling(every(ENV_SAMPLE_EVERY, &v, v.parse::<i64>().ok())?);
    }
    if let Some(v) = get(ENV_RING_CAPACITY)? {
        layer.ring_capacity = Some(capacity(ENV_RING_CAPACITY, &v, v.parse::<i64>().ok())?);
    }
    if let Some(v) = get(ENV_LOG_DIR)? {
        if v.is_empty() {
            return Err(Error::invalid(ENV_LOG_DIR, "\"\"", "a directory path"));
        }
        layer.log_dir = Some(PathBuf::from(v));
    }
    if let Some(v) = get(ENV_LOG_DURABILITY)? {
        layer.log_durability = Some(
            v.parse()
                .map_err(|reason: String| Error::invalid(ENV_LOG_DURABILITY, &v, reason))?,
        );
    }
    let config = match get(ENV_CONFIG)? {
        Some(v) if v.is_empty() => {
            return Err(Error::invalid(
                ENV_CONFIG,
                "\"\"",
                "the path of a TOML file",
            ))
        }
        Some(v) => Some(PathBuf::from(v)),
        None => None,
    };
    layer.rules = Rules::new().defaults(defaults);
    Ok((layer, config))
}

/// Reads and parses the TOML file at `path`.
pub(crate) fn from_file(path: &Path) -> Result<Layer, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    from_toml(&text, &path.display().to_string()).map_err(|e| match e {
        ParseError::Syntax(reason) => Error::ConfigFile {
            path: path.to_owned(),
            reason,
        },
        ParseError::Config(e) => e,
    })
}

/// Why a TOML text was refused.
#[derive(Debug)]
pub(crate) enum ParseError {
    /// Not TOML at all.
    Syntax(String),
    /// Valid TOML with a bad key or value.
    Config(Error),
}

/// Parses a configuration file's text; `origin` prefixes the keys in errors.
pub(crate) fn from_toml(text: &str, origin: &str) -> Result<Layer, ParseError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ParseError::Syntax(e.to_string().trim().to_owned()))?;
    let at = |key: &str| format!("{origin}: {key}");
    let cfg = |e| ParseError::Config(e);
    let mut layer = Layer::default();
    let mut top_defaults = Rule::new();
    let mut rules = Rules::new();
    for (key, value) in &table {
        let k = at(key);
        match key.as_str() {
            "window_secs" => layer.window = Some(seconds(&k, value, num(value)).map_err(cfg)?),
            "ring_capacity" => {
                layer.ring_capacity = Some(capacity(&k, value, value.as_integer()).map_err(cfg)?)
            }
            "log_dir" => match value.as_str() {
                Some(s) if !s.is_empty() => layer.log_dir = Some(PathBuf::from(s)),
                _ => {
                    return Err(cfg(Error::invalid(
                        &k,
                        value,
                        "a directory path (a string)",
                    )))
                }
            },
            "log_durability" => match value.as_str().map(str::parse::<Durability>) {
                Some(Ok(d)) => layer.log_durability = Some(d),
                Some(Err(reason)) => return Err(cfg(Error::invalid(&k, value, reason))),
                None => {
                    return Err(cfg(Error::invalid(
                        &k,
                        value,
                        "\"os\", \"window\" or a sync interval such as \"250ms\" (a string)",
                    )))
                }
            },
            "slow_threshold_ms" | "error_rate_threshold" | "sample_every" => {
                top_defaults = rule_field(top_defaults, key, value, &k).map_err(cfg)?;
            }
            "defaults" => {
                let t = value
                    .as_table()
                    .ok_or_else(|| cfg(Error::invalid(&k, value, "a table of rule settings")))?;
                rules = rules.defaults(rule_table(t, &k).map_err(cfg)?);
            }
            "rules" => {
                let t = value.as_table().ok_or_else(|| {
                    cfg(Error::invalid(
                        &k,
                        value,
                        "a table of pattern = {{ settings }}",
                    ))
                })?;
                for (pattern, r) in t {
                    let rk = at(&format!("rules.{pattern:?}"));
                    Pattern::parse(pattern)
                        .map_err(|reason| cfg(Error::invalid(&rk, pattern, reason)))?;
                    let rt = r
                        .as_table()
                        .ok_or_else(|| cfg(Error::invalid(&rk, r, "a table of rule settings")))?;
                    rules = rules.rule(pattern.clone(), rule_table(rt, &rk).map_err(cfg)?);
                }
            }
            "alert" => layer.alerts = alert::from_toml(origin, value).map_err(cfg)?,
            "process_gauges" => match value.as_bool() {
                Some(on) => layer.process_gauges = Some(on),
                None => return Err(cfg(Error::invalid(&k, value, "true or false"))),
            },
            "rss_growth_windows" => match value.as_integer().map(u32::try_from) {
                Some(Ok(n)) if n <= MAX_RSS_GROWTH_WINDOWS => layer.rss_growth_windows = Some(n),
                _ => {
                    return Err(cfg(Error::invalid(
                        &k,
                        value,
                        "an integer from 0 (off) to 100000",
                    )))
                }
            },
            _ => {
                return Err(cfg(Error::invalid(
                    &k,
                    value,
                    "unknown key (known: window_secs, ring_capacity, log_dir, log_durability, \
                     process_gauges, rss_growth_windows, slow_threshold_ms, \
                     error_rate_threshold, sample_every, [defaults], [rules.\"pattern\"], [[alert]])",
                )))
            }
        }
    }
    // The top-level shorthands are defaults too; an explicit [defaults] table wins.
    let mut all = Rules::new().defaults(top_defaults);
    all.overlay(&rules);
    layer.rules = all;
    Ok(layer)
}

/// A `[defaults]` or `[rules."pattern"]` table.
fn rule_table(t: &toml::Table, at: &str) -> Result<Rule, Error> {
    let sampling_keys = ["sample", "sample_every", "sample_probability"];
    if t.keys()
        .filter(|k| sampling_keys.contains(&k.as_str()))
        .count()
        > 1
    {
        return Err(Error::invalid(
            &format!("{at}.sample*"),
            "more than one",
            "at most one of sample, sample_every, sample_probability",
        ));
    }
    let mut rule = Rule::new();
    for (key, value) in t {
        rule = rule_field(rule, key, value, &format!("{at}.{key}"))?;
    }
    Ok(rule)
}

/// One rule setting; `k` is its full key for errors.
fn rule_field(rule: Rule, key: &str, value: &toml::Value, k: &str) -> Result<Rule, Error> {
    Ok(match key {
        "sample" => match value.as_str() {
            Some("all") => rule.sampling(Sampling::All),
            Some("count-only") => rule.sampling(Sampling::CountOnly),
            _ => return Err(Error::invalid(k, value, "\"all\" or \"count-only\"")),
        },
        "sample_every" => rule.sampling(every(k, value, value.as_integer())?),
        "sample_probability" => {
            let p = num(value).filter(|p| (MIN_SAMPLE_PROBABILITY..=1.0).contains(p));
            let p =
                p.ok_or_else(|| Error::invalid(k, value, "a probability from 0.000001 to 1"))?;
            rule.sampling(Sampling::Probability(p))
        }
        "slow_threshold_ms" => rule.slow_threshold(millis(k, value, num(value))?),
        "error_rate_threshold" => rule.error_rate_threshold(rate(k, value, num(value))?),
        "enabled" => match value.as_bool() {
            Some(b) => rule.enabled(b),
            None => return Err(Error::invalid(k, value, "true or false")),
        },
        "exemplars" => match value.as_integer() {
            Some(n) if (0..=MAX_EXEMPLARS as i64).contains(&n) => rule.exemplars(n as usize),
            _ => return Err(Error::invalid(k, value, "an integer from 0 to 64")),
        },
        _ => {
            return Err(Error::invalid(
                k,
                value,
                "unknown key (known: sample, sample_every, sample_probability, \
                 slow_threshold_ms, error_rate_threshold, enabled, exemplars)",
            ))
        }
    })
}

fn num(v: &toml::Value) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

fn parse_f64(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

fn millis(k: &str, shown: impl std::fmt::Display, v: Option<f64>) -> Result<Duration, Error> {
    v.filter(|ms| ms.is_finite() && *ms > 0.0 && *ms <= 86_400_000.0)
        .map(|ms| Duration::from_secs_f64(ms / 1e3))
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Error::invalid(k, shown, "milliseconds, more than 0 and at most a day"))
}

fn seconds(k: &str, shown: impl std::fmt::Display, v: Option<f64>) -> Result<Duration, Error> {
    v.filter(|s| s.is_finite() && *s >= 0.001 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| Error::invalid(k, shown, "seconds, from 0.001 to 86400"))
}

fn rate(k: &str, shown: impl std::fmt::Display, v: Option<f64>) -> Result<f64, Error> {
    v.filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| Error::invalid(k, shown, "a rate from 0 to 1"))
}

fn every(k: &str, shown: impl std::fmt::Display, v: Option<i64>) -> Result<Sampling, Error> {
    match v {
        Some(n) if (1..=i64::from(MAX_SAMPLE_EVERY)).contains(&n) => Ok(Sampling::Every(n as u32)),
        _ => Err(Error::invalid(k, shown, "an integer from 1 to 1000000")),
    }
}

fn capacity(k: &str, shown: impl std::fmt::Display, v: Option<i64>) -> Result<usize, Error> {
    match v {
        Some(n)
            if n >= 2 && n as u64 <= MAX_RING_CAPACITY as u64 && (n as u64).is_power_of_two() =>
        {
            Ok(n as usize)
        }
        _ => Err(Error::invalid(
            k,
            shown,
            "a power of two from 2 to 16777216",
        )),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<(Layer, Option<PathBuf>), Error> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        from_env(&|k| map.get(k).cloned())
    }

    fn key_of(e: Error) -> (String, String) {
        match e {
            Error::InvalidConfig { key, value, .. } => (key, value),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn log_durability_comes_from_the_environment_and_the_file() {
        let (layer, _) = env(&[(ENV_LOG_DURABILITY, "window")]).unwrap();
        assert_eq!(layer.log_durability, Some(Durability::EachWindow));
        let (layer, _) = env(&[(ENV_LOG_DURABILITY, "250ms")]).unwrap();
        assert_eq!(
            layer.log_durability,
            Some(Durability::Every(Duration::from_millis(250)))
        );
        assert_eq!(
            key_of(env(&[(ENV_LOG_DURABILITY, "sometimes")]).unwrap_err()),
            (ENV_LOG_DURABILITY.to_owned(), "sometimes".to_owned())
        );
        let layer = from_toml("log_durability = \"os\"", "f").ok().unwrap();
        assert_eq!(layer.log_durability, Some(Durability::OsWriteBack));
        assert!(from_toml("log_durability = 5", "f").is_err());
        assert!(from_toml("log_durability = \"0ms\"", "f").is_err());
        // The environment overrides the file.
        let mut file = from_toml("log_durability = \"os\"", "f").ok().unwrap();
        let (over, _) = env(&[(ENV_LOG_DURABILITY, "window")]).unwrap();
        file.overlay(&over);
        assert_eq!(file.log_durability, Some(Durability::EachWindow));
    }

    #[test]
    fn environment_variables_are_read() {
        let (layer, file) = env(&[
            (ENV_SLOW_THRESHOLD_MS, "250"),
            (ENV_WINDOW_SECS, "0.5"),
            (ENV_ERROR_RATE_THRESHOLD, "0.2"),
            (ENV_SAMPLE_EVERY, "8"),
            (ENV_RING_CAPACITY, "4096"),
            (ENV_LOG_DIR, "/tmp/x"),
            (ENV_CONFIG, "app.toml"),
        ])
        .unwrap();
        assert_eq!(layer.window, Some(Duration::from_millis(500)));
        assert_eq!(layer.ring_capacity, Some(4096));
        assert_eq!(layer.log_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(file, Some(PathBuf::from("app.toml")));
        let eff = layer.rules.compile().unwrap().resolve("any");
        assert_eq!(eff.slow_threshold, Duration::from_millis(250));
        assert_eq!(eff.error_rate_threshold, 0.2);
        assert_eq!(eff.sampling, Sampling::Every(8));
    }

    #[test]
    fn every_bad_environment_value_names_the_variable_and_value() {
        for (var, bad) in [
            (ENV_SLOW_THRESHOLD_MS, "fast"),
            (ENV_SLOW_THRESHOLD_MS, "-5"),
            (ENV_SLOW_THRESHOLD_MS, "NaN"),
            (ENV_SLOW_THRESHOLD_MS, "0"),
            (ENV_WINDOW_SECS, "0"),
            (ENV_WINDOW_SECS, "inf"),
            (ENV_ERROR_RATE_THRESHOLD, "1.5"),
            (ENV_ERROR_RATE_THRESHOLD, "NaN"),
            (ENV_SAMPLE_EVERY, "0"),
            (ENV_SAMPLE_EVERY, "2.5"),
            (ENV_SAMPLE_EVERY, "10000000"),
            (ENV_RING_CAPACITY, "1000"),
            (ENV_RING_CAPACITY, "-8"),
            (ENV_LOG_DIR, ""),
            (ENV_CONFIG, ""),
        ] {
            let (key, value) = key_of(env(&[(var, bad)]).unwrap_err());
            assert_eq!(key, var);
            assert!(value.contains(bad), "{var}: {value} should show {bad}");
        }
    }

    #[test]
    fn file_rules_and_shorthands_parse() {
        let layer = from_toml(
            r#"
window_secs = 2
ring_capacity = 16384
slow_threshold_ms = 40
[defaults]
exemplars = 2
[rules."db.*"]
sample_every = 100
slow_threshold_ms = 5.5
[rules."cache.get"]
sample = "count-only"
[rules."rare"]
sample_probability = 0.25
enabled = false
error_rate_threshold = 0.5
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(layer.window, Some(Duration::from_secs(2)));
        assert_eq!(layer.ring_capacity, Some(16384));
        let c = layer.rules.compile().unwrap();
        let db = c.resolve("db.query");
        assert_eq!(db.sampling, Sampling::Every(100));
        assert_eq!(db.slow_threshold, Duration::from_micros(5500));
        assert_eq!(db.exemplars, 2);
        assert_eq!(c.resolve("other").slow_threshold, Duration::from_millis(40));
        assert_eq!(c.resolve("cache.get").sampling, Sampling::CountOnly);
        let rare = c.resolve("rare");
        assert_eq!(rare.sampling, Sampling::Probability(0.25));
        assert!(!rare.enabled);
        assert_eq!(rare.error_rate_threshold, 0.5);
    }

    #[test]
    fn every_bad_file_value_names_the_key_and_value() {
        for (text, key, value) in [
            ("windw_secs = 1", "t: windw_secs", "1"),
            ("window_secs = -1", "t: window_secs", "-1"),
            ("ring_capacity = 3", "t: ring_capacity", "3"),
            (
                "[defaults]\nsample_every = 0",
                "t: defaults.sample_every",
                "0",
            ),
            ("[defaults]\nspeed = 1", "t: defaults.speed", "1"),
            (
                "[rules.\"db.*\"]\nsample_probability = 2.0",
                "t: rules.\"db.*\".sample_probability",
                "2.0",
            ),
            (
                "[rules.\"db.*\"]\nsample_probability = nan",
                "t: rules.\"db.*\".sample_probability",
                "nan",
            ),
            (
                "[rules.\"db.*\"]\nenabled = \"yes\"",
                "t: rules.\"db.*\".enabled",
                "yes",
            ),
            (
                "[rules.\"db.*\"]\nsample = \"some\"",
                "t: rules.\"db.*\".sample",
                "some",
            ),
            (
                "[rules.\"bad pattern\"]\nenabled = true",
                "t: rules.\"bad pattern\"",
                "bad pattern",
            ),
            (
                "[rules.\"x\"]\nsample_every = 2\nsample = \"all\"",
                "t: rules.\"x\".sample*",
                "more than one",
            ),
            (
                "[rules.\"x\"]\nerror_rate_threshold = -1",
                "t: rules.\"x\".error_rate_threshold",
                "-1",
            ),
            (
                "[rules.\"x\"]\nslow_threshold_ms = 0",
                "t: rules.\"x\".slow_threshold_ms",
                "0",
            ),
        ] {
            match from_toml(text, "t") {
                Err(ParseError::Config(e)) => {
                    let (k, v) = key_of(e);
                    assert_eq!(k, key, "{text}");
                    assert!(v.contains(value), "{text}: {v} should show {value}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            from_toml("window_secs = ", "t"),
            Err(ParseError::Syntax(_))
        ));
    }

    #[test]
    fn unreadable_file_is_a_typed_error_naming_the_path() {
        let missing = Path::new("/nonexistent/ringmeter.toml");
        match from_file(missing) {
            Err(Error::ConfigFile { path, .. }) => assert_eq!(path, missing),
            other => panic!("{other:?}"),
        }
    }
}
