//! Counters and gauges: values that are not timed calls.
//!
//! An operation ([`Op`](crate::Op)) times calls through its thread's ring. A [`Counter`]
//! counts things that have no duration (bytes sent, cache evictions) and a [`Gauge`] holds a
//! level (queue depth, open connections). Both are one shared atomic each, updated with a
//! single Relaxed read-modify-write, so exact and cheap, but unlike an operation they are
//! shared between threads: keep them off paths that run millions of times per second on
//! several threads at once. The aggregator reads them at every publication
//! ([`Snapshot::counters`](crate::Snapshot::counters)) and, with a window log, at every window
//! close; the Prometheus exposition lists them after the operations.
//!
//! # Refused registrations
//!
//! An engine holds at most [`Builder::max_operations`](crate::Builder::max_operations)
//! operations and [`MAX_SERIES`] counter and gauge series. A registration the limit refuses
//! (an error from [`Engine::op`](crate::Engine::op), [`counter`](crate::Engine::counter) or
//! [`gauge`](crate::Engine::gauge), a no-op handle from the `metrics` facade) is counted, per
//! metric name and limit, in the counter [`REFUSED_REGISTRATIONS`]
//! (`ringmeter_refused_registrations_total{limit="operations"|"series",name="…"}` in the
//! exposition): a label used for a request id shows up there instead of vanishing. The
//! `name` is what the caller registered under (the operation or series name; for the
//! `metrics` facade, the metric name without its labels). At most
//! [`MAX_REFUSED_NAMES`] names are counted one by one,
//! refusals of any further name under [`OTHER_REFUSED`]. These series do not count against
//! [`MAX_SERIES`].
//!
//! A series is a name plus a set of labels. Names follow the operation naming rules
//! ([`validate_name`]) and are exposed in their Prometheus form (`.`
//! becomes `_`); label names are `[A-Za-z_][A-Za-z0-9_]*`, label values any text.
//!
//! # Examples
//! ```
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! let sent = engine.counter("net.bytes_sent", &[("peer", "db")])?;
//! let depth = engine.gauge("queue.depth", &[])?;
//! sent.increment(1500);
//! depth.set(12.0);
//! depth.decrement(2.0);
//! engine.flush()?;
//! let snap = engine.snapshot();
//! assert_eq!(snap.counters[0].value, 1500);
//! assert_eq!(&*snap.counters[0].name, "net_bytes_sent");
//! assert_eq!(snap.gauges[0].value, 10.0);
//! # Ok::<(), ringmeter::Error>(())
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Error;
use crate::limits::{MAX_NAME_LEN, MAX_REFUSED_NAMES};
use crate::loom::{AtomicU64, Ordering};
use crate::name::{prometheus_name, validate_name};

/// A label set: `(name, value)` pairs sorted by name, names unique.
pub type Labels = Arc<[(Arc<str>, Arc<str>)]>;

pub use crate::limits::MAX_SERIES;

/// Prometheus name of the counter of refused registrations (see
/// [Refused registrations](self#refused-registrations)); a program cannot register it.
pub const REFUSED_REGISTRATIONS: &str = "ringmeter_refused_registrations";

/// Help text of [`REFUSED_REGISTRATIONS`].
const REFUSED_HELP: &str =
    "Registrations refused by the engine's operation or series limit, by metric name";

/// The `name` label under which [`REFUSED_REGISTRATIONS`] counts the refusals of names past
/// the first [`MAX_REFUSED_NAMES`] (not a valid metric name,
/// so it never stands for one).
pub const OTHER_REFUSED: &str = "(other)";

/// The limit that refused a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    /// [`Builder::max_operations`](crate::Builder::max_operations).
    Operations = 0,
    /// [`MAX_SERIES`].
    Series = 1,
}

impl Limit {
    fn label(self) -> &'static str {
        match self {
            Limit::Operations => "operations",
            Limit::Series => "series",
        }
    }
}

/// Refused registrations per limit ([`Limit`] as index) and name: at most
/// [`MAX_REFUSED_NAMES`] names in all, the refusals of further names in `other`.
#[derive(Default)]
struct Refusals {
    by_name: [HashMap<Arc<str>, u64>; 2],
    other: [u64; 2],
}

impl Refusals {
    fn count(&mut self, limit: Limit, name: &str) {
        let mut end = name.len().min(MAX_NAME_LEN);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let name = &name[..end];
        if let Some(n) = self.by_name[limit as usize].get_mut(name) {
            *n = n.saturating_add(1);
        } else if self.by_name[0].len() + self.by_name[1].len() < MAX_REFUSED_NAMES {
            self.by_name[limit as usize].insert(Arc::from(name), 1);
        } else {
            let n = &mut self.other[limit as usize];
            *n = n.saturating_add(1);
        }
    }

    fn is_empty(&self) -> bool {
        self.by_name.iter().all(HashMap::is_empty) && self.other == [0; 2]
    }

    /// The refusals as counter values, unsorted.
    fn values(&self, help: Option<Arc<str>>) -> Vec<CounterValue> {
        let name: Arc<str> = Arc::from(REFUSED_REGISTRATIONS);
        let mut out = Vec::new();
        for limit in [Limit::Operations, Limit::Series] {
            let i = limit as usize;
            let other = (self.other[i] > 0).then(|| (Arc::from(OTHER_REFUSED), self.other[i]));
            let named = self.by_name[i].iter().map(|(n, v)| (Arc::clone(n), *v));
            for (n, value) in named.chain(other) {
                out.push(CounterValue {
                    name: Arc::clone(&name),
                    labels: Arc::from([
                        (Arc::from("limit"), Arc::from(limit.label())),
                        (Arc::from("name"), n),
                    ]),
                    help: help.clone(),
                    value,
                });
            }
        }
        out
    }
}

/// A counter's value at a publication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterValue {
    /// Prometheus name (`net_bytes_sent`); the exposition adds `_total` unless it ends so.
    pub name: Arc<str>,
    /// Labels, sorted by name.
    pub labels: Labels,
    /// Description given at registration or with [`Engine::describe`](crate::Engine::describe).
    pub help: Option<Arc<str>>,
    /// Count since registration.
    pub value: u64,
}

/// A gauge's value at a publication.
#[derive(Clone, Debug, PartialEq)]
pub struct GaugeValue {
    /// Prometheus name.
    pub name: Arc<str>,
    /// Labels, sorted by name.
    pub labels: Labels,
    /// Description, if one was given.
    pub help: Option<Arc<str>>,
    /// Level.
    pub value: f64,
}

/// A monotonic count; cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub struct Counter {
    cell: Arc<CounterCell>,
}

/// The shared value of a [`Counter`].
#[derive(Debug, Default)]
pub struct CounterCell(AtomicU64);

impl CounterCell {
    /// Adds `n`, stopping at `u64::MAX`: a count that wrapped would read as a small number
    /// (and as a counter reset to Prometheus).
    #[inline]
    fn add(&self, n: u64) {
        // Relaxed: the counter orders nothing else; the update only makes the add atomic.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_add(n))
            });
    }
}

impl Counter {
    /// Adds `n`; the count saturates at `u64::MAX` rather than wrapping.
    #[inline]
    pub fn increment(&self, n: u64) {
        self.cell.add(n);
    }

    /// Raises the count to `value` if it is below it (for counts kept elsewhere).
    #[inline]
    pub fn absolute(&self, value: u64) {
        self.cell.0.fetch_max(value, Ordering::Relaxed);
    }

    /// The current count.
    pub fn value(&self) -> u64 {
        self.cell.0.load(Ordering::Relaxed)
    }

    /// The shared cell (what the `metrics` facade backend hands out).
    #[cfg(feature = "metrics")]
    pub(crate) fn cell(&self) -> Arc<CounterCell> {
        Arc::clone(&self.cell)
    }
}

/// A level that goes up and down, stored as the bits of an `f64`; cheap to clone.
#[derive(Clone, Debug)]
pub struct Gauge {
    cell: Arc<GaugeCell>,
}

/// The shared value of a [`Gauge`].
#[derive(Debug, Default)]
pub struct GaugeCell(AtomicU64);

impl GaugeCell {
    fn add(&self, delta: f64) {
        let mut old = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(old) + delta).to_bits();
            // Relaxed: the gauge orders nothing else; the loop only makes the add atomic.
            match self
                .0
                .compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => old = now,
            }
        }
    }
}

impl Gauge {
    /// Sets the level.
    #[inline]
    pub fn set(&self, value: f64) {
        self.cell.0.store(value.to_bits(), Ordering::Relaxed);
    }

    /// Adds `delta`.
    pub fn increment(&self, delta: f64) {
        self.cell.add(delta);
    }

    /// Subtracts `delta`.
    pub fn decrement(&self, delta: f64) {
        self.cell.add(-delta);
    }

    /// The current level.
    pub fn value(&self) -> f64 {
        f64::from_bits(self.cell.0.load(Ordering::Relaxed))
    }

    /// The shared cell (what the `metrics` facade backend hands out).
    #[cfg(feature = "metrics")]
    pub(crate) fn cell(&self) -> Arc<GaugeCell> {
        Arc::clone(&self.cell)
    }
}

#[cfg(feature = "metrics")]
impl metrics::CounterFn for CounterCell {
    fn increment(&self, value: u64) {
        self.add(value);
    }

    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

#[cfg(feature = "metrics")]
impl metrics::GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        self.add(value);
    }

    fn decrement(&self, value: f64) {
        self.add(-value);
    }

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// Whether a series is a counter or a gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Counter,
    Gauge,
}

/// Every counter and gauge of an engine. Registration takes the engine's metric lock; the
/// aggregator takes it to read the values, updates never do.
#[derive(Default)]
pub(crate) struct Registry {
    index: HashMap<(Arc<str>, Labels), (Kind, usize)>,
    counters: Vec<(Arc<str>, Labels, Arc<CounterCell>)>,
    gauges: Vec<(Arc<str>, Labels, Arc<GaugeCell>)>,
    help: HashMap<Arc<str>, Arc<str>>,
    refusals: Refusals,
}

impl Registry {
    /// The counter `name{labels}`, registered on first use; a refusal by the series limit
    /// is counted under `refused_as`.
    pub(crate) fn counter(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        refused_as: &str,
    ) -> Result<Counter, Error> {
        let (name, labels) = key(name, labels)?;
        match self.index.get(&(name.clone(), labels.clone())) {
            Some(&(Kind::Counter, i)) => Ok(Counter {
                cell: Arc::clone(&self.counters[i].2),
            }),
            Some(_) => Err(Error::invalid(
                "counter",
                &*name,
                "already registered as a gauge",
            )),
            None => {
                self.check_room(&name, refused_as)?;
                let cell = Arc::new(CounterCell::default());
                self.index.insert(
                    (name.clone(), labels.clone()),
                    (Kind::Counter, self.counters.len()),
                );
                self.counters.push((name, labels, Arc::clone(&cell)));
                Ok(Counter { cell })
            }
        }
    }

    /// The gauge `name{labels}`, registered on first use; a refusal by the series limit is
    /// counted under `refused_as`.
    pub(crate) fn gauge(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        refused_as: &str,
    ) -> Result<Gauge, Error> {
        let (name, labels) = key(name, labels)?;
        match self.index.get(&(name.clone(), labels.clone())) {
            Some(&(Kind::Gauge, i)) => Ok(Gauge {
                cell: Arc::clone(&self.gauges[i].2),
            }),
            Some(_) => Err(Error::invalid(
                "gauge",
                &*name,
                "already registered as a counter",
            )),
            None => {
                self.check_room(&name, refused_as)?;
                let cell = Arc::new(GaugeCell::default());
                self.index.insert(
                    (name.clone(), labels.clone()),
                    (Kind::Gauge, self.gauges.len()),
                );
                self.gauges.push((name, labels, Arc::clone(&cell)));
                Ok(Gauge { cell })
            }
        }
    }

    /// Sets the description of every series named `name`.
    pub(crate) fn describe(&mut self, name: &str, help: &str) -> Result<(), Error> {
        let name = metric_name(name)?;
        self.help.insert(name, Arc::from(help));
        Ok(())
    }

    /// Counts a registration refused by `limit` under `name`.
    pub(crate) fn refuse(&mut self, limit: Limit, name: &str) {
        self.refusals.count(limit, name);
    }

    fn check_room(&mut self, name: &str, refused_as: &str) -> Result<(), Error> {
        if self.counters.len() + self.gauges.len() >= MAX_SERIES {
            self.refuse(Limit::Series, refused_as);
            return Err(Error::invalid(
                "counter or gauge",
                name,
                format!("an engine holds at most {MAX_SERIES} counter and gauge series"),
            ));
        }
        Ok(())
    }

    /// The values now, sorted by name and labels.
    pub(crate) fn read(&self) -> (Vec<CounterValue>, Vec<GaugeValue>) {
        let help = |n: &Arc<str>| self.help.get(n).cloned();
        let mut counters: Vec<CounterValue> = self
            .counters
            .iter()
            .map(|(name, labels, cell)| CounterValue {
                name: name.clone(),
                labels: labels.clone(),
                help: help(name),
                value: cell.0.load(Ordering::Relaxed),
            })
            .collect();
        counters.extend(self.refusals.values(Some(Arc::from(REFUSED_HELP))));
        counters.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        let mut gauges: Vec<GaugeValue> = self
            .gauges
            .iter()
            .map(|(name, labels, cell)| GaugeValue {
                name: name.clone(),
                labels: labels.clone(),
                help: help(name),
                value: f64::from_bits(cell.0.load(Ordering::Relaxed)),
            })
            .collect();
        gauges.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        (counters, gauges)
    }

    /// Whether any series exists (refused registrations count as one).
    pub(crate) fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.gauges.is_empty() && self.refusals.is_empty()
    }
}

/// The Prometheus form of a validated series name.
fn metric_name(name: &str) -> Result<Arc<str>, Error> {
    validate_name(name).map_err(|reason| Error::InvalidName {
        name: name.to_owned(),
        reason,
    })?;
    let prom = prometheus_name(name);
    if prom == REFUSED_REGISTRATIONS {
        return Err(Error::invalid(
            "counter or gauge",
            name,
            "the engine's own counter of refused registrations",
        ));
    }
    Ok(Arc::from(prom))
}

/// A validated, canonical series key.
fn key(name: &str, labels: &[(&str, &str)]) -> Result<(Arc<str>, Labels), Error> {
    let name = metric_name(name)?;
    let mut pairs: Vec<(Arc<str>, Arc<str>)> = Vec::with_capacity(labels.len());
    for &(k, v) in labels {
        let valid = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !k.starts_with("__")
            && !matches!(k, "op" | "le" | "quantile");
        if !valid {
            return Err(Error::invalid(
                "label name",
                k,
                "[A-Za-z_][A-Za-z0-9_]*, not starting with __, not op, le or quantile",
            ));
        }
        pairs.push((Arc::from(k), Arc::from(v)));
    }
    pairs.sort();
    if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(Error::invalid("labels", &*name, "each label name once"));
    }
    Ok((name, pairs.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_keyed_by_name_and_sorted_labels() {
        let mut r = Registry::default();
        let a = r
            .counter("req.count", &[("b", "2"), ("a", "1")], "req.count")
            .unwrap();
        let b = r
            .counter("req.count", &[("a", "1"), ("b", "2")], "req.count")
            .unwrap();
        a.increment(2);
        b.increment(3);
        assert_eq!(a.value(), 5);
        let g = r.gauge("depth", &[], "depth").unwrap();
        g.set(1.5);
        g.increment(1.0);
        g.decrement(0.25);
        let (c, gs) = r.read();
        assert_eq!(c.len(), 1);
        assert_eq!(&*c[0].name, "req_count");
        assert_eq!(&*c[0].labels[0].0, "a");
        assert_eq!(gs[0].value, 2.25);
    }

    #[test]
    fn counters_saturate_instead_of_wrapping() {
        let mut r = Registry::default();
        let c = r.counter("big", &[], "big").unwrap();
        c.increment(u64::MAX - 3);
        c.increment(2);
        assert_eq!(c.value(), u64::MAX - 1);
        c.increment(10);
        assert_eq!(c.value(), u64::MAX);
        c.increment(u64::MAX);
        assert_eq!(c.value(), u64::MAX);
        c.absolute(5);
        assert_eq!(c.value(), u64::MAX);
        #[cfg(feature = "metrics")]
        {
            use metrics::CounterFn;
            let cell = CounterCell::default();
            cell.increment(u64::MAX);
            cell.increment(9);
            assert_eq!(cell.0.load(Ordering::Relaxed), u64::MAX);
        }
        // From several threads at once.
        let shared = r.counter("shared", &[], "shared").unwrap();
        shared.increment(u64::MAX - 100);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..50).for_each(|_| shared.increment(1)));
            }
        });
        assert_eq!(shared.value(), u64::MAX);
        let (read, _) = r.read();
        assert!(read.iter().all(|c| c.value == u64::MAX), "{read:?}");
    }

    #[test]
    fn bad_names_labels_and_kind_clashes_are_errors() {
        let mut r = Registry::default();
        assert!(matches!(
            r.counter("9x", &[], "9x"),
            Err(Error::InvalidName { .. })
        ));
        assert!(r.counter("x", &[("bad-label", "v")], "x").is_err());
        assert!(r.counter("x", &[("__name__", "v")], "x").is_err());
        assert!(r.counter("x", &[("le", "v")], "x").is_err());
        assert!(r.counter("x", &[("a", "1"), ("a", "2")], "x").is_err());
        r.counter("x", &[], "x").unwrap();
        assert!(r.gauge("x", &[], "x").is_err());
        assert!(!r.is_empty());
    }

    #[test]
    fn refusals_are_counted_per_limit_and_name_in_a_bounded_table() {
        let mut r = Registry::default();
        for i in 0..MAX_SERIES {
            r.counter("req", &[("id", &i.to_string())], "req").unwrap();
        }
        // Full: each new series is refused and counted under the name given.
        for i in 0..5 {
            let id = format!("x{i}");
            assert!(r.counter("req", &[("id", &id)], "req").is_err());
            assert!(r.gauge("depth", &[("id", &id)], "queue.depth").is_err());
        }
        // A series already registered is still handed out.
        assert!(r.counter("req", &[("id", "7")], "req").is_ok());
        // Operations refused elsewhere; then more names than the table holds.
        r.refuse(Limit::Operations, "http.request");
        for i in 0..MAX_REFUSED_NAMES + 10 {
            r.refuse(Limit::Operations, &format!("op{i}"));
        }
        r.refuse(Limit::Operations, "http.request"); // known: still counted by name
        let (counters, _) = r.read();
        let refused: Vec<(String, String, u64)> = counters
            .iter()
            .filter(|c| &*c.name == REFUSED_REGISTRATIONS)
            .map(|c| {
                (
                    c.labels[0].1.to_string(),
                    c.labels[1].1.to_string(),
                    c.value,
                )
            })
            .collect();
        assert_eq!(refused.len(), MAX_REFUSED_NAMES + 1);
        let get = |limit: &str, name: &str| {
            refused
                .iter()
                .find(|(l, n, _)| l == limit && n == name)
                .map(|r| r.2)
        };
        assert_eq!(get("series", "req"), Some(5));
        assert_eq!(get("series", "queue.depth"), Some(5));
        assert_eq!(get("operations", "http.request"), Some(2));
        // 256 names: req, queue.depth, http.request and op0..op252; op253.. are "other".
        assert_eq!(get("operations", "op252"), Some(1));
        assert_eq!(get("operations", "op253"), None);
        assert_eq!(get("operations", OTHER_REFUSED), Some(13));
        let total: u64 = refused.iter().map(|r| r.2).sum();
        assert_eq!(total, 10 + 2 + MAX_REFUSED_NAMES as u64 + 10);
        // Sorted with the other counters; the name is reserved.
        assert!(counters
            .windows(2)
            .all(|w| (&w[0].name, &w[0].labels) <= (&w[1].name, &w[1].labels)));
        assert!(Registry::default()
            .counter("ringmeter.refused_registrations", &[], "x")
            .is_err());
    }

    #[test]
    fn absolute_only_raises() {
        let mut r = Registry::default();
        let c = r.counter("x", &[], "x").unwrap();
        c.absolute(10);
        c.absolute(3);
        assert_eq!(c.value(), 10);
    }
}
