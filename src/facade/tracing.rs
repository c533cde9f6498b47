//! A [`tracing`] layer (feature `tracing`): the spans a program already has become timed calls
//! of operations, with no new instrumentation.
//!
//! Add a [`TracingLayer`] to a `tracing_subscriber` registry; each span closed is then one
//! call of an operation of the engine:
//!
//! | span | ringmeter |
//! |---|---|
//! | its name (`info_span!("db.query")`, an `#[instrument]`ed function's name) | the operation, registered on the callsite's first span ([`Engine::op`]) |
//! | the value of the field set by [`TracingLayer::name_field`] (e.g. `op = "db.query"`), when the span has one at creation | the operation instead of the name |
//! | created → closed (default), or the time it was entered ([`Timing`]) | the call's duration, read from the engine's clock |
//! | an event at `ERROR` level inside it, a field `error` (any value but `false`) | a failed call |
//! | a field `error.kind` or `error_kind` (`"timeout"`) | a failed call of that [`ErrorKind`] ([`Engine::error_kind`]) |
//! | closed while its thread panics | a failed call (as a dropped [`Timer`]) |
//!
//! **Timing.** By default a span is timed from its creation to its close (the last handle to it
//! dropped, so after every clone and every `Entered` guard), the duration a trace shows for it.
//! [`Timing::Busy`] times only the intervals the span was entered instead: for an
//! `async fn` under `#[instrument]` that is the time spent polling it, without the waits
//! between polls. A span entered on several threads at once (clones) counts the time at
//! least one of them was inside. Both read the engine's clock: a span is started with
//! [`Op::start`] when it is created and the guard is kept in the span's extensions until the
//! span closes, so the operation's rules apply as to any call: sampling decides at creation
//! whether the span is timed (an unsampled span reads no clock, even in busy mode, and is
//! counted as unsampled), count-only and disabled operations only count, slow thresholds and
//! exemplars see the span's duration. A span may be created, entered and closed on different
//! threads; its call goes into the ring of the thread that closes it.
//!
//! **Trace ids in exemplars.** A span with the fields `trace_id` (32 hex digits) and `span_id`
//! (16 hex digits), given at creation or recorded later (`trace_id = %id`, or
//! `tracing::field::Empty` then `span.record(..)`), hands them to the engine when it closes,
//! so an exemplar for that call ([`Exemplar::trace`](crate::Exemplar::trace)) carries them
//! to OTLP (`trace_id`/`span_id`) and to the OpenMetrics exemplars: a dashboard can go from a
//! slow bucket to the trace. The OpenTelemetry context that `tracing-opentelemetry` keeps in
//! a span's extensions is not read (it would tie the crate to one `opentelemetry` version):
//! record its ids as these fields. The ids go beside the ring, not in the event
//! (`docs/architecture.md`, §5.8); spans without them cost nothing more.
//!
//! **Errors.** Only the span an `ERROR` event is recorded in (the event's explicit parent, or
//! the thread's current span) is marked failed, not its parents: an error a retry loop logs
//! fails the attempt, and the caller's span only if it records one itself. A span cannot be
//! marked successful again once failed (`error = false` recorded later does not undo an
//! earlier `error = true`).
//!
//! **Names.** Operation names follow [`validate_name`](crate::validate_name) (`db.query`,
//! `handle_request`); a span whose name or name field is not a valid name, or that would
//! pass the engine's operation limit, is not timed: it is counted in
//! [`TracingLayer::refused_spans`] and in the engine's counter
//! `ringmeter.tracing_refused_spans` (in the exposition as
//! `ringmeter_tracing_refused_spans_total`), and the first refusal is reported on standard
//! error. Give such spans a name field (`info_span!("GET /users", op = "http.get_users")`).
//!
//! **Cost.** Per span: a lookup of the callsite's operation in a map read without a lock
//! (`arc-swap`), the engine's call start and end, and the registry's span bookkeeping (one
//! small allocation for the extension); the fields are visited only for callsites that
//! declare a field the layer reads. `on_enter`/`on_exit` do nothing in the default timing.
//! docs/performance.md ("Spans through `tracing`") compares the cost with other crates.
//!
//! Add one `TracingLayer` per subscriber: two layers (or clones of one) on the same registry
//! would share the spans' extension.
//!
//! # Examples
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! let subscriber = tracing_subscriber::registry().with(ringmeter::TracingLayer::new(&engine));
//! tracing::subscriber::with_default(subscriber, || {
//!     tracing::info_span!("db.query").in_scope(|| { /* the query */ });
//!     tracing::info_span!("db.query").in_scope(|| tracing::error!("connection reset"));
//!     tracing::info_span!("request", op = "http.get").in_scope(|| ()); // without name_field: "request"
//! });
//! engine.flush()?;
//! let snap = engine.snapshot();
//! let q = snap.totals("db.query").unwrap();
//! assert_eq!((q.count, q.errors), (2, 1));
//! assert_eq!(snap.totals("request").unwrap().count, 1);
//! # Ok::<(), ringmeter::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use arc_swap::ArcSwap;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::clock::Clock;
use crate::engine::Engine;
use crate::local::thread_number;
use crate::loom::{AtomicBool, AtomicU64, Ordering};
use crate::metric::Counter;
use crate::op::{ErrorKind, Op, Timer};
use crate::report::TraceContext;
use crate::span_ids::SpanCall;

/// The engine counter of spans that were not timed (see the module docs).
const REFUSED_COUNTER: &str = "ringmeter.tracing_refused_spans";

/// Refused names kept in a cache at most (each further one is looked up again; names that were
/// registered are bounded by the engine's operation limit).
const MAX_CACHED_REFUSALS: usize = 4096;

/// What a span's duration is (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timing {
    /// From the span's creation to its close: the span's lifetime, the duration a trace shows
    /// for it, including the time it waited between being entered (the default).
    #[default]
    Wall,
    /// The sum of the intervals the span was entered (`on_enter` to `on_exit`), as the `fmt`
    /// layer's `time.busy`; waits between polls of an instrumented future are left out.
    Busy,
}

/// A [`tracing_subscriber::Layer`] that times each span into an operation of an [`Engine`]
/// (see the [module docs](self)).
///
/// Cloning it is cheap; clones share their caches and their count of refused spans.
#[derive(Clone)]
pub struct TracingLayer {
    shared: Arc<Shared>,
    timing: Timing,
    name_field: Option<&'static str>,
}

impl fmt::Debug for TracingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingLayer")
            .field("engine", &self.shared.engine)
            .field("timing", &self.timing)
            .field("name_field", &self.name_field)
            .finish_non_exhaustive()
    }
}

/// What clones of a layer share.
struct Shared {
    engine: Engine,
    clock: Clock,
    /// Per span callsite (by the address of its `'static` metadata): its operation.
    sites: ArcSwap<SiteMap>,
    /// Held while a callsite is added to `sites`, so that no addition is lost.
    adding: Mutex<()>,
    /// Operations by the value of the name field.
    by_value: RwLock<HashMap<Box<str>, Option<Op>>>,
    /// Error kinds by the value of an `error.kind` field (`None`: refused by the engine).
    kinds: RwLock<HashMap<Box<str>, Option<ErrorKind>>>,
    refused: AtomicU64,
    /// `REFUSED_COUNTER`, unless the engine's series limit refused it too.
    refused_counter: Option<Counter>,
    reported: AtomicBool,
}

type SiteMap = HashMap<usize, Site, BuildHasherDefault<AddrHasher>>;

/// A span callsite, resolved once.
#[derive(Clone, Copy, Debug)]
struct Site {
    /// The operation named by the span's name; `None` when the engine refused it.
    op: Option<Op>,
    /// Whether the callsite declares a field the layer reads, so its values are visited.
    reads_fields: bool,
    /// Whether it declares a `trace_id` or `span_id` field.
    has_ids: bool,
    /// Whether it declares the name field: its span name is then registered (through the
    /// cache of names by value) only when a span leaves the field empty, so that a name no
    /// span is timed under takes no operation.
    named_by_field: bool,
}

/// Hashes the address of a callsite's metadata: one multiply (Fibonacci hashing), then its
/// well-mixed high bits folded into the low bits the table indexes by (aligned addresses in
/// steps of 8 to 256 bytes spread as random keys would; see the test).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 26) ^ (h >> 52);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// The layer's state of one span, in the span's extensions.
struct Timed {
    /// The `Shared` of the layer that timed the span (its address).
    owner: usize,
    timer: Timer,
    /// The span's ids, when its callsite declares `trace_id` or `span_id` (boxed, so that
    /// spans without them move no more bytes).
    ids: Option<Box<SpanIdFields>>,
    /// Busy timing: how many `on_enter`s are not matched by an `on_exit` yet.
    entered: u32,
    /// Busy timing: the clock when `entered` last went from 0 to 1.
    since: u64,
    /// Busy timing: the ticks of the intervals entered that have ended.
    busy: u64,
}

/// A span's `trace_id` and `span_id` fields and its operation.
struct SpanIdFields {
    op: Op,
    trace_id: Option<[u8; 16]>,
    span_id: Option<[u8; 8]>,
}

impl SpanIdFields {
    /// Keeps the ids `fields` recorded.
    fn note(&mut self, fields: &Fields) {
        self.trace_id = fields.trace_id.or(self.trace_id);
        self.span_id = fields.span_id.or(self.span_id);
    }

    /// Both ids, when both were recorded and are valid.
    fn trace(&self) -> Option<TraceContext> {
        TraceContext::new(self.trace_id?, self.span_id?)
    }
}

impl Timed {
    /// Busy timing: a span closed while still entered somewhere counts up to now.
    fn close_busy(&mut self, clock: &Clock) {
        if self.entered > 0 && self.timer.is_sampled() {
            let now = clock.raw();
            self.busy = self.busy.saturating_add(now.saturating_sub(self.since));
        }
    }
}

/// What a span's fields say.
#[derive(Default)]
struct Fields {
    /// The operation the name field named (`Some(None)`: one that was refused).
    op: Option<Option<Op>>,
    failed: bool,
    kind: Option<ErrorKind>,
    trace_id: Option<[u8; 16]>,
    span_id: Option<[u8; 8]>,
}

impl Fields {
    fn mark(&self, timer: &mut Timer) {
        if let Some(kind) = self.kind {
            timer.set_error_kind(kind);
        } else if self.failed {
            timer.fail();
        }
    }
}

/// A field the layer reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Name,
    Error,
    Kind,
    TraceId,
    SpanId,
}

/// `text` as `N` bytes of hex (either case), if it is exactly that.
fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

impl TracingLayer {
    /// A layer feeding `engine`, timing spans from creation to close ([`Timing::Wall`]) into
    /// operations named by the spans' names. It holds a handle, so the engine runs as long
    /// as the layer exists. It registers the engine counter `ringmeter.tracing_refused_spans`.
    ///
    /// # Examples
    /// ```
    /// use ringmeter::facade::tracing::Timing;
    /// use tracing_subscriber::layer::SubscriberExt;
    ///
    /// let engine = ringmeter::Engine::builder().start_manual()?;
    /// let layer = ringmeter::TracingLayer::new(&engine)
    ///     .timing(Timing::Busy)
    ///     .name_field("op");
    /// let subscriber = tracing_subscriber::registry().with(layer);
    /// tracing::subscriber::with_default(subscriber, || {
    ///     tracing::info_span!("GET /users", op = "http.get_users").in_scope(|| ());
    /// });
    /// engine.flush()?;
    /// assert_eq!(engine.snapshot().totals("http.get_users").unwrap().count, 1);
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn new(engine: &Engine) -> Self {
        Self {
            shared: Arc::new(Shared {
                engine: engine.clone(),
                clock: engine.clock().clone(),
                sites: ArcSwap::from_pointee(SiteMap::default()),
                adding: Mutex::new(()),
                by_value: RwLock::new(HashMap::new()),
                kinds: RwLock::new(HashMap::new()),
                refused: AtomicU64::new(0),
                refused_counter: engine.counter(REFUSED_COUNTER, &[]).ok(),
                reported: AtomicBool::new(false),
            }),
            timing: Timing::Wall,
            name_field: None,
        }
    }

    /// What a span's duration is: [`Timing::Wall`] (the default) or [`Timing::Busy`].
    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Names the operation of a span that has field `field` at creation by the field's value
    /// (a string, or any value through its `Display` form with `%`), instead of the span's
    /// name; spans without it, or where it is still empty, keep their name. Off by default.
    pub fn name_field(mut self, field: &'static str) -> Self {
        self.name_field = Some(field);
        self
    }

    /// Spans that were not timed because the engine refused their operation (an invalid name,
    /// a name colliding with another one's Prometheus form, the operation limit reached).
    pub fn refused_spans(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    fn owner(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    fn role(&self, name: &str) -> Option<Role> {
        match name {
            "error" => Some(Role::Error),
            "error.kind" | "error_kind" => Some(Role::Kind),
            "trace_id" => Some(Role::TraceId),
            "span_id" => Some(Role::SpanId),
            _ if self.name_field == Some(name) => Some(Role::Name),
            _ => None,
        }
    }

    /// The callsite's operation, resolved on its first span. (Not in `register_callsite`:
    /// tracing calls that for every callsite of the process, also those of spans a filter
    /// disables or that other subscribers see, whose names would fill the operation table.)
    #[inline]
    fn site(&self, meta: &'static Metadata<'static>) -> Site {
        let key = core::ptr::from_ref(meta) as usize;
        if let Some(site) = self.shared.sites.load().get(&key) {
            return *site;
        }
        self.add_site(meta, key)
    }

    #[cold]
    fn add_site(&self, meta: &'static Metadata<'static>, key: usize) -> Site {
        let shared = &*self.shared;
        let _adding = shared.adding.lock().unwrap_or_else(PoisonError::into_inner);
        let sites = shared.sites.load_full();
        if let Some(site) = sites.get(&key) {
            return *site;
        }
        let named_by_field = self
            .name_field
            .is_some_and(|f| meta.fields().field(f).is_some());
        let site = Site {
            op: if named_by_field {
                None
            } else {
                shared.engine.op(meta.name()).ok()
            },
            reads_fields: meta.fields().iter().any(|f| self.role(f.name()).is_some()),
            has_ids: meta
                .fields()
                .iter()
                .any(|f| matches!(f.name(), "trace_id" | "span_id")),
            named_by_field,
        };
        let mut new = SiteMap::clone(&sites);
        new.insert(key, site);
        shared.sites.store(Arc::new(new));
        site
    }

    /// The operation named `name` by a span's name field.
    fn op_by_value(&self, name: &str) -> Option<Op> {
        let shared = &*self.shared;
        if let Some(op) = shared
            .by_value
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return *op;
        }
        let op = shared.engine.op(name).ok();
        let mut map = shared
            .by_value
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if op.is_some() || map.len() < MAX_CACHED_REFUSALS {
            map.insert(name.into(), op);
        }
        op
    }

    /// The error kind named `name`; `None` when the engine refuses it (the span still fails).
    fn kind(&self, name: &str) -> Option<ErrorKind> {
        let shared = &*self.shared;
        if let Some(kind) = shared
            .kinds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return *kind;
        }
        let kind = shared.engine.error_kind(name).ok();
        let mut map = shared.kinds.write().unwrap_or_else(PoisonError::into_inner);
        if kind.is_some() || map.len() < MAX_CACHED_REFUSALS {
            map.insert(name.into(), kind);
        }
        kind
    }

    /// Counts a span not timed because operation `name` was refused; reports the first.
    #[cold]
    fn refuse(&self, name: &str) {
        let shared = &*self.shared;
        shared.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = &shared.refused_counter {
            c.increment(1);
        }
        if !shared.reported.swap(true, Ordering::Relaxed) {
            if let Err(e) = shared.engine.op(name) {
                eprintln!(
                    "ringmeter: span {name:?} not timed: {e} (further refusals are only counted in {REFUSED_COUNTER})"
                );
            }
        }
    }

    /// Visits `fields` of a span when its callsite declares one the layer reads.
    fn read(&self, values: impl FnOnce(&mut dyn Visit), at_creation: bool) -> Fields {
        let mut fields = Fields::default();
        values(&mut FieldVisitor {
            layer: self,
            fields: &mut fields,
            at_creation,
        });
        fields
    }

    /// Runs `f` on span `id`'s state when this layer timed it.
    fn with_timed<S>(&self, id: &Id, ctx: &Context<'_, S>, f: impl FnOnce(&mut Timed))
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(timed) = ext.get_mut::<Timed>() {
            if timed.owner == self.owner() {
                f(timed);
            }
        }
    }
}

/// Reads the fields of one span's values.
struct FieldVisitor<'a> {
    layer: &'a TracingLayer,
    fields: &'a mut Fields,
    /// Whether these are the values the span was created with (the only ones naming it).
    at_creation: bool,
}

impl FieldVisitor<'_> {
    fn text(&mut self, role: Role, value: &str) {
        match role {
            Role::Name if self.at_creation => {
                let op = self.layer.op_by_value(value);
                if op.is_none() {
                    self.layer.refuse(value);
                }
                self.fields.op = Some(op);
            }
            Role::Name => {}
            Role::Error => self.fields.failed = true,
            Role::Kind => {
                self.fields.failed = true;
                if let Some(kind) = self.layer.kind(value) {
                    self.fields.kind = Some(kind);
                }
            }
            Role::TraceId => self.fields.trace_id = hex_bytes(value),
            Role::SpanId => self.fields.span_id = hex_bytes(value),
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(role) = self.layer.role(field.name()) {
            self.text(role, value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        match self.layer.role(field.name()) {
            Some(Role::Error) => self.fields.failed |= value,
            Some(role) => self.text(role, if value { "true" } else { "false" }),
            None => {}
        }
    }

    fn record_error(&mut self, field: &Field, _value: &(dyn std::error::Error + 'static)) {
        if self.layer.role(field.name()) == Some(Role::Error) {
            self.fields.failed = true;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match self.layer.role(field.name()) {
            Some(Role::Error) => self.fields.failed = true,
            Some(role @ (Role::Kind | Role::Name)) => {
                if role == Role::Name && !self.at_creation {
                    return;
                }
                self.text(role, &format!("{value:?}"));
            }
            // `trace_id = %id` (Display) arrives here; `?id` of a string adds quotes.
            Some(role @ (Role::TraceId | Role::SpanId)) => {
                let text = format!("{value:?}");
                self.text(role, text.trim_matches('"'));
            }
            None => {}
        }
    }
}

impl<S> Layer<S> for TracingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        let site = self.site(meta);
        let fields = if site.reads_fields {
            self.read(|v| attrs.record(v), true)
        } else {
            Fields::default()
        };
        let op = match fields.op {
            Some(by_value) => by_value, // a refusal is already counted by the visitor
            None if site.named_by_field => self.op_by_value(meta.name()),
            None => site.op,
        };
        let Some(op) = op else {
            if fields.op.is_none() {
                self.refuse(meta.name());
            }
            return;
        };
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if ext.get_mut::<Timed>().is_some() {
            return; // another ringmeter layer on this subscriber times it
        }
        let mut timer = op.start();
        fields.mark(&mut timer);
        let ids = site.has_ids.then(|| {
            Box::new(SpanIdFields {
                op,
                trace_id: fields.trace_id,
                span_id: fields.span_id,
            })
        });
        ext.insert(Timed {
            owner: self.owner(),
            timer,
            ids,
            entered: 0,
            since: 0,
            busy: 0,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if !self.site(span.metadata()).reads_fields {
            return;
        }
        drop(span);
        let fields = self.read(|v| values.record(v), false);
        if fields.failed || fields.trace_id.is_some() || fields.span_id.is_some() {
            self.with_timed(id, &ctx, |t| {
                fields.mark(&mut t.timer);
                if let Some(ids) = &mut t.ids {
                    ids.note(&fields);
                }
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR {
            return;
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let id = span.id();
        drop(span);
        self.with_timed(&id, &ctx, |t| t.timer.fail());
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if self.timing != Timing::Busy {
            return;
        }
        self.with_timed(id, &ctx, |t| {
            if !t.timer.is_sampled() {
                return;
            }
            if t.entered == 0 {
                t.since = self.shared.clock.raw();
            }
            t.entered = t.entered.saturating_add(1);
        });
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if self.timing != Timing::Busy {
            return;
        }
        self.with_timed(id, &ctx, |t| {
            if !t.timer.is_sampled() || t.entered == 0 {
                return;
            }
            t.entered -= 1;
            if t.entered == 0 {
                let now = self.shared.clock.raw();
                t.busy = t.busy.saturating_add(now.saturating_sub(t.since));
            }
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let timed = {
            let mut ext = span.extensions_mut();
            match ext.get_mut::<Timed>() {
                Some(t) if t.owner == self.owner() => ext.remove::<Timed>(),
                _ => None,
            }
        };
        let Some(mut t) = timed else { return };
        let Some((op, trace)) = t.ids.as_ref().and_then(|i| Some((i.op, i.trace()?))) else {
            match self.timing {
                // The guard reads the clock and records the call as it is dropped.
                Timing::Wall => drop(t.timer),
                Timing::Busy => {
                    t.close_busy(&self.shared.clock);
                    t.timer.stop_with_ticks(t.busy);
                }
            }
            return;
        };
        // A span with ids: its call's clock readings go with them to the side path.
        let ticks = match self.timing {
            Timing::Wall => t.timer.stop_timed(),
            Timing::Busy => {
                t.close_busy(&self.shared.clock);
                t.timer.stop_with_ticks(t.busy)
            }
        };
        if let Some((start, end)) = ticks {
            let call = SpanCall {
                thread: thread_number(),
                start,
                end,
                trace_id: trace.trace_id,
                span_id: trace.span_id,
            };
            self.shared.engine.offer_span_ids(op, call);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::clock::Clock;

    #[test]
    fn addresses_spread_over_the_low_bits() {
        // 64 random keys fill about 40 of 64 buckets.
        for step in [8, 16, 48, 64, 128, 256] {
            let mut low = std::collections::HashSet::new();
            for i in 0..64usize {
                let mut h = AddrHasher::default();
                h.write_usize(0x5555_0000_1000 + i * step);
                low.insert(h.finish() & 63);
            }
            assert!(low.len() >= 34, "step {step}: {} buckets", low.len());
        }
    }

    #[test]
    fn a_callsite_is_resolved_once_and_cached() {
        let engine = Engine::builder().start_manual().unwrap();
        let layer = TracingLayer::new(&engine);
        let probe = layer.clone();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                tracing::info_span!("cached.site", error = tracing::field::Empty).in_scope(|| ());
            }
        });
        let sites = probe.shared.sites.load();
        let cached: Vec<&Site> = sites.values().filter(|s| s.op.is_some()).collect();
        assert_eq!(cached.len(), 1);
        assert!(cached[0].reads_fields);
        engine.flush().unwrap();
        assert_eq!(engine.snapshot().totals("cached.site").unwrap().count, 3);
    }

    #[test]
    fn busy_time_leaves_out_the_time_between_enters() {
        let (clock, mock) = Clock::mock();
        let engine = Engine::builder().clock(clock).start_manual().unwrap();
        let layer = TracingLayer::new(&engine).timing(Timing::Busy);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("polled");
            for _ in 0..3 {
                mock.advance(Duration::from_millis(10)); // waiting between polls
                let _e = span.enter();
                mock.advance(Duration::from_millis(1));
            }
        });
        engine.flush().unwrap();
        let s = engine.snapshot().totals("polled").unwrap().clone();
        assert_eq!((s.count, s.max_ns), (1, 3_000_000));
    }

    #[test]
    fn field_roles() {
        let engine = Engine::builder().start_manual().unwrap();
        let layer = TracingLayer::new(&engine).name_field("op");
        assert!(layer.role("error") == Some(Role::Error));
        assert!(layer.role("error.kind") == Some(Role::Kind));
        assert!(layer.role("error_kind") == Some(Role::Kind));
        assert!(layer.role("op") == Some(Role::Name));
        assert!(layer.role("user").is_none());
        assert!(TracingLayer::new(&engine).role("op").is_none());
    }
}
