//! Operation names, error kinds and counter and gauge series: registering them and handing
//! out their handles; registrations refused by a limit are counted (see
//! [Refused registrations](crate::metric#refused-registrations)).

use std::sync::Arc;

use super::Engine;
use crate::config::{EffectiveRule, Resolved};
use crate::error::Error;
use crate::metric::{Counter, Gauge, Limit};
use crate::name::{prometheus_name, validate_name};
use crate::op::{ErrorKind, Op};
#[cfg(feature = "tracing")]
use crate::span_ids::SpanCall;

/// Name of the reserved operation (id 0) that [`op!`](crate::op!) falls back to when an
/// engine's operation table is full, so that no call goes uncounted.
pub const OVERFLOW_OP: &str = "ringmeter.overflow";

fn checked(name: &str) -> Result<(), Error> {
    validate_name(name).map_err(|reason| Error::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

impl Engine {
    /// The handle of operation `name`, registering it on first use.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::NameCollision`] (same Prometheus name as another
    /// operation) or [`Error::TooManyOperations`] (a refusal counted in
    /// [`REFUSED_REGISTRATIONS`](crate::metric::REFUSED_REGISTRATIONS)).
    pub fn op(&self, name: &str) -> Result<Op, Error> {
        self.register_op(name, name)
    }

    /// As [`op`](Self::op), counting a refusal by the operation limit under `refused_as`
    /// (the `metrics` facade's metric name, whose labels made `name`).
    pub(crate) fn register_op(&self, name: &str, refused_as: &str) -> Result<Op, Error> {
        checked(name)?;
        let inner = self.inner();
        let hub = &inner.hub;
        let key = hub.key();
        let mut names = hub.lock_names();
        if let Some(&id) = names.by_name.get(name) {
            return Ok(Op { key, id });
        }
        let prom = prometheus_name(name);
        if let Some(existing) = names.by_prometheus.get(&prom) {
            return Err(Error::NameCollision {
                name: name.to_owned(),
                existing: existing.to_string(),
            });
        }
        // Id 0 is the reserved overflow operation.
        let limit = hub.max_operations();
        if names.list.len() > limit {
            drop(names); // never both locks at once
            hub.lock_metrics().refuse(Limit::Operations, refused_as);
            return Err(Error::TooManyOperations { limit });
        }
        let id = names.list.len() as u32;
        let name: Arc<str> = Arc::from(name);
        names.list.push(Arc::clone(&name));
        names.by_name.insert(Arc::clone(&name), id);
        names.by_prometheus.insert(prom, Arc::clone(&name));
        inner.add_op_rule(id, &name);
        Ok(Op { key, id })
    }

    /// The counter `name{labels}` ([`Engine::counter`]), counting a refusal by the series
    /// limit under `refused_as`.
    pub(crate) fn register_counter(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        refused_as: &str,
    ) -> Result<Counter, Error> {
        let hub = &self.inner().hub;
        hub.lock_metrics().counter(name, labels, refused_as)
    }

    /// The gauge `name{labels}` ([`Engine::gauge`]), counting a refusal by the series limit
    /// under `refused_as`.
    pub(crate) fn register_gauge(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        refused_as: &str,
    ) -> Result<Gauge, Error> {
        let hub = &self.inner().hub;
        hub.lock_metrics().gauge(name, labels, refused_as)
    }

    /// Leaves the trace and span ids of a call of `op` for the exemplars (the `tracing`
    /// layer's side path, see [`crate::span_ids`]).
    #[cfg(feature = "tracing")]
    pub(crate) fn offer_span_ids(&self, op: Op, call: SpanCall) {
        self.inner().hub.span_ids().offer(op.id, call);
    }

    /// The error kind called `name`, registering it on first use (at most 255 per engine).
    ///
    /// # Errors
    /// [`Error::InvalidName`] if `name` breaks the operation naming rules,
    /// [`Error::InvalidConfig`] when the engine already has 255 kinds.
    pub fn error_kind(&self, name: &str) -> Result<ErrorKind, Error> {
        checked(name)?;
        let inner = self.inner();
        let _config = inner.lock_config();
        let current = inner.hub.resolved();
        if let Some(code) = current.kinds.iter().position(|k| &**k == name) {
            return Ok(ErrorKind(code as u8));
        }
        let code = current.kinds.len();
        if code > usize::from(u8::MAX) {
            return Err(Error::invalid(
                "error_kind",
                name,
                "an engine has at most 255 error kinds",
            ));
        }
        let mut new = Resolved::clone(&current);
        new.kinds.push(Arc::from(name));
        inner.hub.store_resolved(Arc::new(new));
        Ok(ErrorKind(code as u8))
    }

    /// The reserved operation [`OVERFLOW_OP`].
    pub fn overflow_op(&self) -> Op {
        Op {
            key: self.inner().hub.key(),
            id: 0,
        }
    }

    /// The name of `op`, if it belongs to this engine.
    pub fn op_name(&self, op: Op) -> Option<Arc<str>> {
        let hub = &self.inner().hub;
        if !core::ptr::eq(op.key, hub.key()) {
            return None;
        }
        hub.lock_names().list.get(op.id as usize).cloned()
    }

    /// The settings in force for `op`, if it belongs to this engine.
    pub fn rule_of(&self, op: Op) -> Option<EffectiveRule> {
        let name = self.op_name(op)?;
        Some(self.inner().hub.resolved().compiled.resolve(&name))
    }
}
