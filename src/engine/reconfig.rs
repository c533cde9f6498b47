//! Reconfiguration at run time: rules, alert rules and configuration-file reloads, and the
//! publication of rules to the hot path and the aggregator.

use std::path::PathBuf;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Duration;

use super::{Engine, Inner};
use crate::alert::{Alert, AlertRule, Evaluator};
use crate::config::source;
use crate::config::table;
use crate::config::{word_of, CompiledRules, Durability, Layers, Resolved, Rule, Rules};
use crate::error::Error;
use crate::hub::Names;
use crate::limits::{DEFAULT_RING_CAPACITY, DEFAULT_WINDOW};

/// The configuration an engine runs with.
pub(super) struct ConfigState {
    pub(super) layers: Layers,
    pub(super) compiled: Arc<CompiledRules>,
    /// Start-up-only settings in force (a reload may not change them).
    pub(super) window: Duration,
    pub(super) ring_capacity: usize,
    pub(super) log_dir: Option<PathBuf>,
    pub(super) log_durability: Durability,
    /// The process gauges' settings as given (`None`: the default).
    pub(super) process_gauges: Option<bool>,
    pub(super) rss_growth_windows: Option<u32>,
}

impl Inner {
    pub(super) fn lock_config(&self) -> MutexGuard<'_, ConfigState> {
        // Every update of the state is built aside and assigned at the end, so a poisoned
        // lock still holds a consistent state.
        self.config.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the rules in force for every registered operation (at start).
    pub(super) fn apply_rules_in_force(&self) {
        let names = self.hub.lock_names();
        let config = self.lock_config();
        self.apply_rules(&names, &config.compiled);
    }

    /// Resolves every registered operation against `compiled`, publishes the rules to the
    /// aggregator and then the changed sampling words to the hot path.
    fn apply_rules(&self, names: &Names, compiled: &Arc<CompiledRules>) {
        let old = self.hub.resolved();
        let new = Resolved {
            compiled: Arc::clone(compiled),
            kinds: old.kinds.clone(),
        };
        let mut changes = Vec::new();
        for (id, name) in names.list.iter().enumerate() {
            let word = word_of(&compiled.resolve(name));
            if word != word_of(&old.compiled.resolve(name)) {
                changes.push((id, word));
            }
            if word != table::ALL {
                self.hub.mark_tally(id);
            }
        }
        self.hub.store_resolved(Arc::new(new));
        self.hub.publish_rule_words(changes);
    }

    /// Publishes the sampling word of a newly registered operation (O(1) unless it skips
    /// calls, which also adds it to the tallies the aggregator reads).
    pub(super) fn add_op_rule(&self, id: u32, name: &str) {
        let word = word_of(&self.lock_config().compiled.resolve(name));
        if word == table::ALL {
            return;
        }
        self.hub.mark_tally(id as usize);
        self.hub.publish_rule_words([(id as usize, word)]);
    }

    /// Makes `layers` the configuration if its rules compile and its start-up-only settings
    /// are those in force.
    fn reconfigure(&self, layers: Layers) -> Result<(), Error> {
        let names = self.hub.lock_names();
        let mut config = self.lock_config();
        let eff = layers.effective();
        let compiled = Arc::new(eff.rules.compile()?);
        let window = eff.window.unwrap_or(DEFAULT_WINDOW);
        let ring = eff.ring_capacity.unwrap_or(DEFAULT_RING_CAPACITY);
        let fixed = "only read at start; restart the engine to change it";
        if window != config.window {
            return Err(Error::invalid("window", format_args!("{window:?}"), fixed));
        }
        if ring != config.ring_capacity {
            return Err(Error::invalid("ring_capacity", ring, fixed));
        }
        if eff.log_dir != config.log_dir {
            let shown = eff.log_dir.as_deref().map(|p| p.display().to_string());
            return Err(Error::invalid("log_dir", format_args!("{shown:?}"), fixed));
        }
        let durability = eff.log_durability.unwrap_or_default();
        if durability != config.log_durability {
            return Err(Error::invalid(
                "log_durability",
                format_args!("{durability:?}"),
                fixed,
            ));
        }
        if eff.process_gauges != config.process_gauges {
            return Err(Error::invalid(
                "process_gauges",
                format_args!("{:?}", eff.process_gauges),
                fixed,
            ));
        }
        if eff.rss_growth_windows != config.rss_growth_windows {
            return Err(Error::invalid(
                "rss_growth_windows",
                format_args!("{:?}", eff.rss_growth_windows),
                fixed,
            ));
        }
        self.apply_rules(&names, &compiled);
        config.layers = layers;
        config.compiled = compiled;
        Ok(())
    }
}

impl Engine {
    /// Replaces the rules set through the API ([`Builder::rule`](crate::Builder::rule), earlier `set_rules` calls)
    /// with `rules`; the configuration file's and the environment's rules stay below them.
    /// Every thread sees the new sampling at its next call, without a lock; the aggregator
    /// applies slow thresholds and the rest from its next pass. No event is lost.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad pattern or value; the rules in force stay.
    ///
    /// # Examples
    /// ```
    /// use ringmeter::{Engine, Rule, Rules, Sampling};
    /// let engine = Engine::builder().start_manual()?;
    /// let op = engine.op("db.query")?;
    /// engine.set_rules(Rules::new().rule("db.*", Rule::new().sampling(Sampling::CountOnly)))?;
    /// op.time(|| ()); // counted, not timed
    /// engine.flush()?;
    /// assert_eq!(engine.snapshot().totals("db.query").unwrap().unsampled, 1);
    /// let bad = Rules::new().rule("db.*", Rule::new().sampling(Sampling::Probability(f64::NAN)));
    /// assert!(engine.set_rules(bad).is_err());
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn set_rules(&self, rules: Rules) -> Result<(), Error> {
        let mut layers = self.inner().lock_config().layers.clone();
        layers.api.rules = rules;
        self.inner().reconfigure(layers)
    }

    /// Adds (or merges into) one API rule; see [`set_rules`](Self::set_rules).
    ///
    /// # Errors
    /// As [`set_rules`](Self::set_rules).
    pub fn set_rule(&self, pattern: &str, rule: Rule) -> Result<(), Error> {
        let mut layers = self.inner().lock_config().layers.clone();
        layers.api.rules = std::mem::take(&mut layers.api.rules).rule(pattern, rule);
        self.inner().reconfigure(layers)
    }

    /// Re-reads the configuration file ([`Builder::config_file`](crate::Builder::config_file) or `RINGMETER_CONFIG`) and
    /// applies its rules, still below the environment and the API. Settings read only at start
    /// (window, ring capacity, log directory, log durability) must be unchanged.
    ///
    /// # Errors
    /// [`Error::ConfigFile`] if the file cannot be read or parsed, [`Error::InvalidConfig`]
    /// for a bad key or value, a changed start-up setting, or no file to reload. On any
    /// error the configuration in force stays.
    pub fn reload_config(&self) -> Result<(), Error> {
        let mut layers = self.inner().lock_config().layers.clone();
        let Some(path) = layers.file_path.clone() else {
            return Err(Error::invalid(
                "config_file",
                "none",
                "the engine was started without a configuration file (RINGMETER_CONFIG or Builder::config_file)",
            ));
        };
        layers.file = source::from_file(&path)?;
        let alerts = layers.effective().alerts;
        Evaluator::new(alerts.clone())?;
        let mut agg = self.inner().lock_agg()?;
        self.inner().reconfigure(layers)?;
        agg.set_alert_rules(alerts)
    }

    /// Replaces the alert rules given through the API ([`Builder::alert`](crate::Builder::alert), earlier calls);
    /// the configuration file's `[[alert]]` rules stay. Rules whose name and definition are
    /// unchanged keep their state; a removed rule that was firing sends resolved notices.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad rule or two rules of one name (the rules in force
    /// stay); [`Error::CalledFromCallback`] from a window or alert callback.
    pub fn set_alert_rules(&self, rules: Vec<AlertRule>) -> Result<(), Error> {
        let mut layers = self.inner().lock_config().layers.clone();
        layers.api.alerts = rules;
        let alerts = layers.effective().alerts;
        Evaluator::new(alerts.clone())?;
        let mut agg = self.inner().lock_agg()?;
        self.inner().reconfigure(layers)?;
        agg.set_alert_rules(alerts)
    }

    /// Adds an alert callback (see [`Builder::on_alert`](crate::Builder::on_alert)).
    ///
    /// # Errors
    /// [`Error::AggregatorPanicked`]; [`Error::CalledFromCallback`] from a callback.
    pub fn on_alert(&self, f: impl FnMut(&[Alert]) + Send + 'static) -> Result<(), Error> {
        self.inner().lock_agg()?.add_alert_callback(Box::new(f));
        Ok(())
    }

    /// The window length in force.
    pub fn window(&self) -> Duration {
        self.inner().lock_config().window
    }

    /// The log directory configured (builder, `RINGMETER_LOG_DIR` or the configuration file).
    pub fn log_dir(&self) -> Option<PathBuf> {
        self.inner().lock_config().log_dir.clone()
    }
}
