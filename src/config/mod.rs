//! Per-operation rules: sampling, slow threshold, error-rate threshold, exemplars, on/off.
//!
//! A [`Rules`] value holds defaults for every operation plus rules by exact name or by glob
//! pattern (`db.*`). Each field of a rule is optional; an operation's [`EffectiveRule`] is
//! built field by field, like CSS: start from the built-in defaults, apply the rule set's
//! defaults, then every matching pattern from the least to the most specific, so a field set
//! by a more specific rule wins. An exact name is more specific than any glob; between globs,
//! the one with more literal (non-`*`) characters is more specific; between equally specific
//! globs, the one added later wins.
//!
//! Rules come from three layers, each stacked on the one below: the configuration file
//! (`RINGMETER_CONFIG`), the environment variables, and the API ([`Builder::rule`],
//! [`Engine::set_rules`]). See `docs/configuration.md`.
//!
//! [`Builder::rule`]: crate::Builder::rule
//! [`Engine::set_rules`]: crate::Engine::set_rules

mod durability;
pub(crate) mod source;
pub use durability::Durability;
pub mod table;

use std::fmt;
use std::time::Duration;

use crate::error::Error;
use crate::limits::{
    DEFAULT_SLOW_THRESHOLD, MAX_EXEMPLARS, MAX_SAMPLE_EVERY, MIN_SAMPLE_PROBABILITY,
};
use crate::pattern::Pattern;

/// Which calls of an operation are timed.
///
/// A call that is not sampled reads no clock and pushes no event: it is only counted (in
/// [`OpStats::unsampled`](crate::OpStats::unsampled)), and its failure, if any, is still
/// counted as an error. A sampled call's duration enters the window's histogram with a weight:
/// the number of calls of its thread it stands for (itself plus the unsampled calls before it),
/// so histogram totals estimate every call, not only the sampled ones.
///
/// # Examples
/// ```
/// use ringmeter::{Engine, Rule, Sampling};
/// let engine = Engine::builder()
///     .rule("cache.get", Rule::new().sampling(Sampling::Every(100)))
///     .start_manual()?;
/// let get = engine.op("cache.get")?;
/// for _ in 0..1_000 {
///     get.time(|| ());
/// }
/// engine.flush()?;
/// let s = engine.snapshot().totals("cache.get").unwrap().clone();
/// assert_eq!((s.count, s.unsampled), (10, 990)); // every call counted, 1 in 100 timed
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Sampling {
    /// Every call is timed (the default).
    #[default]
    All,
    /// One call in `n` per thread is timed (1 to [`MAX_SAMPLE_EVERY`]; 1 is `All`).
    Every(u32),
    /// Each call is timed with probability `p` ([`MIN_SAMPLE_PROBABILITY`] to 1), drawn per
    /// thread as geometric gaps between timed calls.
    Probability(f64),
    /// No call is timed; calls and errors are counted.
    CountOnly,
}

impl Sampling {
    fn check(self, key: &str) -> Result<Self, Error> {
        match self {
            Self::Every(n) if !(1..=MAX_SAMPLE_EVERY).contains(&n) => Err(Error::invalid(
                key,
                n,
                "an integer from 1 to 1000000 (1 in N calls is timed)",
            )),
            Self::Probability(p) if !(MIN_SAMPLE_PROBABILITY..=1.0).contains(&p) => Err(
                Error::invalid(key, p, "a probability from 0.000001 to 1 (NaN is not one)"),
            ),
            s => Ok(s),
        }
    }
}

impl fmt::Display for Sampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Every(n) => write!(f, "every {n}"),
            Self::Probability(p) => write!(f, "probability {p}"),
            Self::CountOnly => f.write_str("count-only"),
        }
    }
}

/// Settings for the operations a pattern matches; every field is optional and an unset field
/// falls through to less specific rules and the defaults (see the module docs).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use ringmeter::{Rule, Sampling};
/// let hot = Rule::new()
///     .sampling(Sampling::Probability(0.01))
///     .slow_threshold(Duration::from_micros(200))
///     .exemplars(3);
/// assert_eq!(hot.sampling_setting(), Some(Sampling::Probability(0.01)));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    sampling: Option<Sampling>,
    slow_threshold: Option<Duration>,
    enabled: Option<bool>,
    error_rate_threshold: Option<f64>,
    exemplars: Option<usize>,
}

impl Rule {
    /// A rule that sets nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Which calls are timed.
    pub fn sampling(mut self, s: Sampling) -> Self {
        self.sampling = Some(s);
        self
    }

    /// Calls longer than this count as slow (more than 0; built-in default 1 s).
    pub fn slow_threshold(mut self, d: Duration) -> Self {
        self.slow_threshold = Some(d);
        self
    }

    /// `false` turns the operation off: its calls are counted (as unsampled) and nothing else
    /// is done, not even counting errors; its windows say `enabled: false`.
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = Some(on);
        self
    }

    /// Error rate (0 to 1) above which a window is flagged
    /// ([`OpWindow::error_rate_exceeded`](crate::OpWindow::error_rate_exceeded)); built-in
    /// default 0.1.
    pub fn error_rate_threshold(mut self, rate: f64) -> Self {
        self.error_rate_threshold = Some(rate);
        self
    }

    /// How many of the slowest calls each window keeps (0 to [`MAX_EXEMPLARS`]; built-in
    /// default 5).
    pub fn exemplars(mut self, k: usize) -> Self {
        self.exemplars = Some(k);
        self
    }

    /// The sampling this rule sets, if any.
    pub fn sampling_setting(&self) -> Option<Sampling> {
        self.sampling
    }

    /// The slow threshold this rule sets, if any.
    pub fn slow_threshold_setting(&self) -> Option<Duration> {
        self.slow_threshold
    }

    /// Fields of `over` replace this rule's.
    fn overlay(&mut self, over: &Rule) {
        self.sampling = over.sampling.or(self.sampling);
        self.slow_threshold = over.slow_threshold.or(self.slow_threshold);
        self.enabled = over.enabled.or(self.enabled);
        self.error_rate_threshold = over.error_rate_threshold.or(self.error_rate_threshold);
        self.exemplars = over.exemplars.or(self.exemplars);
    }

    /// Checks every field set; `at` names the rule in errors (`defaults`, `rules."db.*"`).
    fn check(&self, at: &str) -> Result<(), Error> {
        if let Some(s) = self.sampling {
            s.check(&format!("{at}.sampling"))?;
        }
        if let Some(d) = self.slow_threshold {
            if d.is_zero() {
                return Err(Error::invalid(
                    &format!("{at}.slow_threshold"),
                    format_args!("{d:?}"),
                    "more than 0",
                ));
            }
        }
        if let Some(r) = self.error_rate_threshold {
            if !(0.0..=1.0).contains(&r) {
                return Err(Error::invalid(
                    &format!("{at}.error_rate_threshold"),
                    r,
                    "a rate from 0 to 1 (NaN is not one)",
                ));
            }
        }
        if let Some(k) = self.exemplars {
            if k > MAX_EXEMPLARS {
                return Err(Error::invalid(&format!("{at}.exemplars"), k, "0 to 64"));
            }
        }
        Ok(())
    }
}

/// An operation's settings once every rule has been applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EffectiveRule {
    /// Which calls are timed.
    pub sampling: Sampling,
    /// Calls longer than this count as slow.
    pub slow_threshold: Duration,
    /// Whether the operation is on.
    pub enabled: bool,
    /// Error rate above which a window is flagged.
    pub error_rate_threshold: f64,
    /// Slowest calls kept per window.
    pub exemplars: usize,
}

impl Default for EffectiveRule {
    fn default() -> Self {
        Self {
            sampling: Sampling::All,
            slow_threshold: DEFAULT_SLOW_THRESHOLD,
            enabled: true,
            error_rate_threshold: 0.1,
            exemplars: 5,
        }
    }
}

impl EffectiveRule {
    fn apply(&mut self, r: &Rule) {
        if let Some(s) = r.sampling {
            self.sampling = s;
        }
        if let Some(d) = r.slow_threshold {
            self.slow_threshold = d;
        }
        if let Some(e) = r.enabled {
            self.enabled = e;
        }
        if let Some(t) = r.error_rate_threshold {
            self.error_rate_threshold = t;
        }
        if let Some(k) = r.exemplars {
            self.exemplars = k;
        }
    }

    /// The slow threshold in nanoseconds.
    pub(crate) fn slow_ns(&self) -> u64 {
        u64::try_from(self.slow_threshold.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A rule set: defaults for every operation plus rules by exact name or glob pattern.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use ringmeter::{Engine, Rule, Rules, Sampling};
/// let engine = Engine::builder().start_manual()?;
/// engine.set_rules(
///     Rules::new()
///         .defaults(Rule::new().slow_threshold(Duration::from_millis(100)))
///         .rule("db.*", Rule::new().sampling(Sampling::Every(10)))
///         .rule("db.migrate", Rule::new().sampling(Sampling::All)),
/// )?;
/// let migrate = engine.rule_of(engine.op("db.migrate")?).unwrap();
/// assert_eq!(migrate.sampling, Sampling::All); // the exact name beats `db.*`
/// assert_eq!(migrate.slow_threshold, Duration::from_millis(100));
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rules {
    defaults: Rule,
    /// In the order added; a pattern added twice is merged into its first place.
    rules: Vec<(String, Rule)>,
}

impl Rules {
    /// An empty rule set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the defaults for every operation (merged into any defaults set before).
    pub fn defaults(mut self, rule: Rule) -> Self {
        self.defaults.overlay(&rule);
        self
    }

    /// Adds a rule for the operations `pattern` matches: an exact name or a glob with `*`.
    /// A pattern given twice merges the two rules, the later one's fields winning. Patterns
    /// and values are checked when the set is used ([`Engine::set_rules`](crate::Engine::set_rules),
    /// [`Builder::start`](crate::Builder::start)).
    pub fn rule(mut self, pattern: impl Into<String>, rule: Rule) -> Self {
        self.add(pattern.into(), rule);
        self
    }

    fn add(&mut self, pattern: String, rule: Rule) {
        match self.rules.iter_mut().find(|(p, _)| *p == pattern) {
            Some((_, r)) => r.overlay(&rule),
            None => self.rules.push((pattern, rule)),
        }
    }

    /// Whether the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.defaults == Rule::default() && self.rules.is_empty()
    }

    /// Stacks `over` on this set: its defaults' fields and its rules' fields win.
    pub(crate) fn overlay(&mut self, over: &Rules) {
        self.defaults.overlay(&over.defaults);
        for (p, r) in &over.rules {
            self.add(p.clone(), r.clone());
        }
    }

    /// Validates every pattern and value and prepares the set for lookups.
    pub(crate) fn compile(&self) -> Result<CompiledRules, Error> {
        self.defaults.check("defaults")?;
        let mut rules = Vec::with_capacity(self.rules.len());
        for (order, (p, r)) in self.rules.iter().enumerate() {
            let at = format!("rules.{p:?}");
            let pattern = Pattern::parse(p).map_err(|reason| Error::invalid(&at, p, reason))?;
            r.check(&at)?;
            rules.push((pattern, r.clone(), order));
        }
        // Least specific first, so applying them in order lets the most specific win; equally
        // specific ones in the order added.
        rules.sort_by(|a, b| a.0.specificity_cmp(&b.0).then(a.2.cmp(&b.2)));
        Ok(CompiledRules {
            defaults: self.defaults.clone(),
            rules: rules.into_iter().map(|(p, r, _)| (p, r)).collect(),
        })
    }
}

/// A validated rule set, ordered for resolution.
#[derive(Clone, Debug, Default)]
pub(crate) struct CompiledRules {
    defaults: Rule,
    /// Least specific first.
    rules: Vec<(Pattern, Rule)>,
}

impl CompiledRules {
    /// The rules as `key=value` lines, for the log's engine events.
    pub(crate) fn describe(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut rule = |at: &str, r: &Rule| {
            if let Some(v) = r.sampling {
                let _ = writeln!(out, "{at}.sampling={v}");
            }
            if let Some(v) = r.slow_threshold {
                let _ = writeln!(out, "{at}.slow_threshold_ns={}", v.as_nanos());
            }
            if let Some(v) = r.enabled {
                let _ = writeln!(out, "{at}.enabled={v}");
            }
            if let Some(v) = r.error_rate_threshold {
                let _ = writeln!(out, "{at}.error_rate_threshold={v}");
            }
            if let Some(v) = r.exemplars {
                let _ = writeln!(out, "{at}.exemplars={v}");
            }
        };
        rule("defaults", &self.defaults);
        for (p, r) in &self.rules {
            rule(&format!("rules.{:?}", p.to_string()), r);
        }
        out.trim_end().to_owned()
    }

    /// The settings of operation `name`.
    pub(crate) fn resolve(&self, name: &str) -> EffectiveRule {
        let mut eff = EffectiveRule::default();
        eff.apply(&self.defaults);
        for (p, r) in &self.rules {
            if p.matches(name) {
                eff.apply(r);
            }
        }
        eff
    }
}

/// The rule-set layers of an engine: file < environment < API.
#[derive(Clone, Debug, Default)]
pub(crate) struct Layers {
    /// The configuration file, if one is used (`RINGMETER_CONFIG` or `Builder::config_file`).
    pub(crate) file_path: Option<std::path::PathBuf>,
    pub(crate) file: source::Layer,
    pub(crate) env: source::Layer,
    pub(crate) api: source::Layer,
}

impl Layers {
    /// The three layers stacked.
    pub(crate) fn effective(&self) -> source::Layer {
        let mut l = self.file.clone();
        l.overlay(&self.env);
        l.overlay(&self.api);
        l
    }
}

/// What the aggregator needs of the configuration, published through `arc-swap`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Resolved {
    /// The rules in force; the aggregator resolves and caches each operation's rule from them.
    pub(crate) compiled: std::sync::Arc<CompiledRules>,
    /// Error kind names by code; code 0 is no kind.
    pub(crate) kinds: Vec<std::sync::Arc<str>>,
}

/// The hot path's word for a rule.
pub(crate) fn word_of(rule: &EffectiveRule) -> table::Word {
    use table::Mode;
    if !rule.enabled {
        return table::encode(Mode::Disabled);
    }
    table::encode(match rule.sampling {
        Sampling::All => Mode::All,
        Sampling::Every(n) => Mode::Every(n),
        Sampling::Probability(p) if p >= 1.0 => Mode::All,
        Sampling::Probability(p) => Mode::Probability((p * 4_294_967_296.0) as u32),
        Sampling::CountOnly => Mode::CountOnly,
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn most_specific_field_wins_and_unset_fields_fall_through() {
        let rules = Rules::new()
            .defaults(Rule::new().slow_threshold(Duration::from_millis(5)))
            .rule("*", Rule::new().exemplars(1))
            .rule("db.*", Rule::new().sampling(Sampling::Every(10)))
            .rule("db.q*", Rule::new().sampling(Sampling::Every(20)))
            .rule("db.query", Rule::new().enabled(false))
            .compile()
            .unwrap();
        let q = rules.resolve("db.query");
        assert_eq!(q.sampling, Sampling::Every(20));
        assert!(!q.enabled);
        assert_eq!(q.exemplars, 1);
        assert_eq!(q.slow_threshold, Duration::from_millis(5));
        assert_eq!(rules.resolve("db.x").sampling, Sampling::Every(10));
        assert_eq!(rules.resolve("web").sampling, Sampling::All);
    }

    #[test]
    fn equally_specific_globs_resolve_in_the_order_added() {
        let rules = Rules::new()
            .rule("db.*", Rule::new().sampling(Sampling::Every(2)))
            .rule("*.db", Rule::new().sampling(Sampling::Every(3)));
        let c = rules.compile().unwrap();
        assert_eq!(c.resolve("db.db").sampling, Sampling::Every(3));
    }

    #[test]
    fn overlay_merges_fields_of_the_same_pattern() {
        let mut base = Rules::new().rule("a", Rule::new().exemplars(2).enabled(false));
        base.overlay(&Rules::new().rule("a", Rule::new().exemplars(7)));
        let e = base.compile().unwrap().resolve("a");
        assert_eq!((e.exemplars, e.enabled), (7, false));
    }

    #[test]
    fn every_bad_value_names_its_key_and_value() {
        let cases: Vec<(Rules, &str, &str)> = vec![
            (
                Rules::new().rule("a", Rule::new().sampling(Sampling::Probability(f64::NAN))),
                "rules.\"a\".sampling",
                "NaN",
            ),
            (
                Rules::new().rule("a", Rule::new().sampling(Sampling::Probability(1.5))),
                "rules.\"a\".sampling",
                "1.5",
            ),
            (
                Rules::new().defaults(Rule::new().sampling(Sampling::Probability(0.0))),
                "defaults.sampling",
                "0",
            ),
            (
                Rules::new().defaults(Rule::new().sampling(Sampling::Every(0))),
                "defaults.sampling",
                "0",
            ),
            (
                Rules::new().defaults(Rule::new().error_rate_threshold(-0.1)),
                "defaults.error_rate_threshold",
                "-0.1",
            ),
            (
                Rules::new().defaults(Rule::new().slow_threshold(Duration::ZERO)),
                "defaults.slow_threshold",
                "0ns",
            ),
            (
                Rules::new().rule("bad pattern", Rule::new()),
                "rules.\"bad pattern\"",
                "bad pattern",
            ),
            (
                Rules::new().defaults(Rule::new().exemplars(65)),
                "defaults.exemplars",
                "65",
            ),
        ];
        for (rules, key, value) in cases {
            match rules.compile() {
                Err(Error::InvalidConfig {
                    key: k, value: v, ..
                }) => {
                    assert_eq!(k, key);
                    assert!(v.contains(value), "{v} should contain {value}");
                }
                other => panic!("{key}: {other:?}"),
            }
        }
    }
}
