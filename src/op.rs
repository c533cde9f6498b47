//! The hot-path API: operation handles and the timing guard.

use core::fmt;
use std::time::Duration;

use crate::event::Event;
use crate::hub::EngineKey;
use crate::local;

/// A registered operation: a `Copy` handle resolved once by [`Engine::op`](crate::Engine::op)
/// or [`op!`](crate::op!).
///
/// Every recording method is wait-free: it reads the clock (for timed calls), writes one
/// 16-byte event into the calling thread's ring and never locks, allocates (after the thread's
/// first event) or blocks. When the ring is full the event is dropped and counted.
///
/// # Examples
/// ```
/// let engine = ringmeter::Engine::builder().start()?;
/// let query = engine.op("db.query")?;
///
/// let rows = query.time(|| 42);                   // closure
/// {
///     let mut t = query.start();                  // guard
///     if rows != 42 { t.fail(); }
/// }                                               // recorded here
/// let parsed = query.time_result(|| "7".parse::<u32>()); // Err counts as an error
/// query.record_ns(1_250);                         // measured elsewhere
///
/// engine.flush()?;
/// let stats = engine.snapshot().totals("db.query").unwrap().clone();
/// assert_eq!(stats.count, 4);
/// assert_eq!(stats.errors, 0);
/// # assert_eq!(parsed, Ok(7));
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Op {
    pub(crate) key: &'static EngineKey,
    pub(crate) id: u32,
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Op")
            .field("engine", &self.key.id())
            .field("id", &self.id)
            .finish()
    }
}

impl PartialEq for Op {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::eq(self.key, other.key) && self.id == other.id
    }
}

impl Eq for Op {}

impl Op {
    /// The operation's id inside its engine.
    pub fn id(self) -> u32 {
        self.id
    }

    /// Starts timing a call; the call is recorded when the returned guard is dropped.
    ///
    /// When the operation's [`Sampling`](crate::Sampling) skips this call, no clock is read:
    /// the call is counted as unsampled now and the guard only reports a failure.
    #[inline(always)]
    pub fn start(self) -> Timer {
        let flags = local::sample(self.key, self.id);
        let start = if flags & Event::UNSAMPLED == 0 {
            self.key.clock().raw()
        } else {
            0
        };
        Timer {
            op: self,
            flags,
            start,
        }
    }

    /// Times `f`. If `f` panics, the call is recorded as an error and the panic continues.
    #[inline]
    pub fn time<R>(self, f: impl FnOnce() -> R) -> R {
        let _t = self.start();
        f()
    }

    /// Times `f`; an `Err` is counted as an error. The result is returned unchanged.
    #[inline]
    pub fn time_result<T, E>(self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let mut t = self.start();
        let r = f();
        if r.is_err() {
            t.fail();
        }
        r
    }

    /// Records a call of `ns` nanoseconds measured elsewhere. It has no timestamp, so it
    /// belongs to the window open when the aggregator reads it.
    #[inline]
    pub fn record_ns(self, ns: u64) {
        self.push_nanos(ns, 0);
    }

    /// Records one call per value of `ns`, each lasting that many nanoseconds measured
    /// elsewhere: the same as [`record_ns`](Self::record_ns) for each value in turn, with the
    /// operation's rule looked up once. For a timed operation the values are written into the
    /// ring back to back and published with one store per run of free slots, so each costs
    /// a fraction of a separate `record_ns`; a count-only operation counts them all at once;
    /// an operation that samples decides value by value. As with `record_ns`, a value the
    /// ring has no room for is counted as dropped.
    ///
    /// # Examples
    /// ```
    /// let engine = ringmeter::Engine::builder().start_manual()?;
    /// let parse = engine.op("batch.parse")?;
    ///
    /// // Durations gathered elsewhere (from another process's log, say), recorded at once.
    /// let measured = [1_200, 950, 4_000, 1_100];
    /// parse.record_ns_many(&measured);
    ///
    /// engine.flush()?;
    /// assert_eq!(engine.snapshot().totals("batch.parse").unwrap().count, 4);
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    #[inline]
    pub fn record_ns_many(self, ns: &[u64]) {
        local::record_many(self.key, self.id, ns);
    }

    /// Records a call of duration `d` measured elsewhere (see [`record_ns`](Self::record_ns)).
    #[inline]
    pub fn record(self, d: Duration) {
        self.push_nanos(saturating_nanos(d), 0);
    }

    /// Records a failed call of `ns` nanoseconds measured elsewhere.
    #[inline]
    pub fn record_error_ns(self, ns: u64) {
        self.push_nanos(ns, Event::ERROR);
    }

    /// Records a failed call of duration `d` measured elsewhere.
    #[inline]
    pub fn record_error(self, d: Duration) {
        self.push_nanos(saturating_nanos(d), Event::ERROR);
    }

    /// Records a failed call of `ns` nanoseconds measured elsewhere, counted under `kind`.
    #[inline]
    pub fn record_error_kind_ns(self, ns: u64, kind: ErrorKind) {
        self.push_nanos(ns, Event::ERROR | kind.flags());
    }

    #[inline(always)]
    fn push_nanos(self, ns: u64, flags: u32) {
        local::record(self.key, self.id, ns, flags);
    }

    /// This operation bound to the calling thread: a handle for a loop of many pre-measured
    /// or counted calls, which finds the thread's ring once, here, instead of at every call.
    ///
    /// Calls through it record exactly what the same calls through the `Op` would (same
    /// ring, same rule read at every call, same counts). Its `record*` calls skip the
    /// per-call thread-local look-up, and in a loop the handle keeps the addresses of the
    /// ring, the rule word and the tally in registers: a count-only or pre-measured call
    /// then costs less than through the `Op` (figures in `docs/performance.md`, "Where the
    /// cycles go"). Timed calls ([`start`](LocalOp::start), [`time`](LocalOp::time)) are
    /// the `Op`'s, whose cost is the clock. The handle is not `Send`: make one per thread.
    ///
    /// # Examples
    /// ```
    /// let engine = ringmeter::Engine::builder().start()?;
    /// let parse = engine.op("batch.parse")?;
    ///
    /// let local = parse.local();
    /// for ns in [1_200, 950, 4_000] {
    ///     local.record_ns(ns);                // measured elsewhere
    /// }
    /// let n = local.time(|| 3);               // timed, as `Op::time`
    ///
    /// engine.flush()?;
    /// assert_eq!(engine.snapshot().totals("batch.parse").unwrap().count, 4);
    /// # assert_eq!(n, 3);
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn local(self) -> LocalOp {
        LocalOp {
            op: self,
            pinned: local::Pinned::new(self.key, self.id),
        }
    }
}

/// An [`Op`] bound to the thread that made it with [`Op::local`]: the same calls, its
/// `record*` calls without the per-call thread-local look-up.
///
/// It holds the thread's ring for the operation's engine (which stays allocated while any
/// handle holds it, even past the engine), the operation's rule word (read at every call, so
/// rule changes apply at once) and its tally. Where the thread could have no ring (the handle
/// was made while the thread's locals were being destroyed) its calls go through the `Op`.
///
/// Not `Send` or `Sync`: it belongs to its thread (make one per thread).
pub struct LocalOp {
    op: Op,
    pinned: Option<local::Pinned>,
}

impl fmt::Debug for LocalOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalOp")
            .field("op", &self.op)
            .field("pinned", &self.pinned.is_some())
            .finish()
    }
}

impl LocalOp {
    /// The operation this handle records into.
    pub fn op(&self) -> Op {
        self.op
    }

    /// As [`Op::record_ns`].
    #[inline]
    pub fn record_ns(&self, ns: u64) {
        self.push_nanos(ns, 0);
    }

    /// As [`Op::record`].
    #[inline]
    pub fn record(&self, d: Duration) {
        self.push_nanos(saturating_nanos(d), 0);
    }

    /// As [`Op::record_error_ns`].
    #[inline]
    pub fn record_error_ns(&self, ns: u64) {
        self.push_nanos(ns, Event::ERROR);
    }

    /// As [`Op::record_error`].
    #[inline]
    pub fn record_error(&self, d: Duration) {
        self.push_nanos(saturating_nanos(d), Event::ERROR);
    }

    /// As [`Op::start`], which it is: a timed call costs its two clock reads, beside which
    /// the look-up that the handle saves does not show, and the guard's own path keeps more
    /// in registers than one that also carries the handle's addresses (measured in
    /// `docs/performance.md`, "Where the cycles go").
    #[inline(always)]
    pub fn start(&self) -> Timer {
        self.op.start()
    }

    /// As [`Op::time`].
    #[inline]
    pub fn time<R>(&self, f: impl FnOnce() -> R) -> R {
        let _t = self.start();
        f()
    }

    /// As [`Op::time_result`].
    #[inline]
    pub fn time_result<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let mut t = self.start();
        let r = f();
        if r.is_err() {
            t.fail();
        }
        r
    }

    #[inline(always)]
    fn push_nanos(&self, ns: u64, flags: u32) {
        match &self.pinned {
            Some(p) => p.record(ns, flags),
            None => record_unpinned(self.op, ns, flags),
        }
    }
}

/// A handle's call where it holds no ring: through the `Op`, out of line, so that a loop over
/// a handle keeps the registers of its own path.
#[cold]
#[inline(never)]
fn record_unpinned(op: Op, ns: u64, flags: u32) {
    local::record(op.key, op.id, ns, flags);
}

/// A kind of failure, counted per operation and window
/// ([`OpWindow::error_kinds`](crate::OpWindow::error_kinds)); registered by name with
/// [`Engine::error_kind`](crate::Engine::error_kind). A small `Copy` code (up to 255 kinds per
/// engine), so marking a failure with a kind costs nothing extra. A kind belongs to the engine
/// that registered it.
///
/// # Examples
/// ```
/// let engine = ringmeter::Engine::builder().start_manual()?;
/// let timeout = engine.error_kind("timeout")?;
/// let op = engine.op("rpc.call")?;
/// op.start().fail_with(timeout);
/// engine.flush()?;
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub(crate) u8);

impl ErrorKind {
    /// The kind's code (1 to 255).
    pub fn code(self) -> u8 {
        self.0
    }

    #[inline(always)]
    fn flags(self) -> u32 {
        u32::from(self.0) << Event::KIND_SHIFT
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Guard returned by [`Op::start`]: records the call's duration when dropped.
///
/// Mark a failure with [`fail`](Self::fail). A guard dropped while its thread is panicking is
/// recorded as an error.
///
/// # Examples
/// ```
/// let engine = ringmeter::Engine::builder().start()?;
/// let op = engine.op("cache.get")?;
/// let mut t = op.start();
/// let hit = false;
/// if !hit {
///     t.fail();
/// }
/// t.stop();
/// engine.flush()?;
/// assert_eq!(engine.snapshot().totals("cache.get").unwrap().errors, 1);
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[must_use = "the call is timed until the guard is dropped; dropping it at once times nothing"]
pub struct Timer {
    op: Op,
    flags: u32,
    start: u64,
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("op", &self.op)
            .field("failed", &self.is_failed())
            .finish()
    }
}

impl Timer {
    /// Marks the call as failed.
    #[inline]
    pub fn fail(&mut self) {
        self.flags |= Event::ERROR;
    }

    /// Marks the call as failed with `kind` and ends it now.
    #[inline]
    pub fn fail_with(mut self, kind: ErrorKind) {
        self.flags = (self.flags & !Event::KIND_MASK) | Event::ERROR | kind.flags();
    }

    /// Marks the call as failed with `kind`, keeping the guard running.
    #[inline]
    pub fn set_error_kind(&mut self, kind: ErrorKind) {
        self.flags = (self.flags & !Event::KIND_MASK) | Event::ERROR | kind.flags();
    }

    /// Whether this call is timed (its operation's sampling picked it).
    pub fn is_sampled(&self) -> bool {
        self.flags & Event::UNSAMPLED == 0
    }

    /// Marks the call as failed when `failed` is true.
    #[inline]
    pub fn set_failed(&mut self, failed: bool) {
        if failed {
            self.fail();
        }
    }

    /// Whether the call is marked failed.
    pub fn is_failed(&self) -> bool {
        self.flags & Event::ERROR != 0
    }

    /// Ends the call now (the same as dropping the guard).
    #[inline]
    pub fn stop(self) {}

    /// Ends the call now as one that lasted `ticks` of the engine's clock instead of the time
    /// since [`Op::start`]: the busy time of a `tracing` span, which leaves out the intervals
    /// the span was not entered. The event is stamped with the current reading, as a dropped
    /// guard's is, and the call's sampling decision, failure and panic flag are kept.
    /// Returns the call's start and end readings when it was timed (the span ids' side path,
    /// `span_ids`).
    #[cfg(feature = "tracing")]
    pub(crate) fn stop_with_ticks(self, ticks: u64) -> Option<(u64, u64)> {
        self.stop_from(|end| end.saturating_sub(ticks))
    }

    /// Ends the call now, as dropping the guard does, and returns its start and end readings
    /// of the engine's clock when it was timed (for the `tracing` layer's span ids).
    #[cfg(feature = "tracing")]
    pub(crate) fn stop_timed(self) -> Option<(u64, u64)> {
        let start = self.start;
        self.stop_from(|_| start)
    }

    /// The steps of `drop`, with the start given by `start(end)`.
    #[cfg(feature = "tracing")]
    fn stop_from(self, start: impl FnOnce(u64) -> u64) -> Option<(u64, u64)> {
        let this = core::mem::ManuallyDrop::new(self);
        let mut flags = this.flags;
        if std::thread::panicking() {
            flags |= Event::PANIC;
        }
        if flags & Event::UNSAMPLED != 0 {
            if flags & (Event::ERROR | Event::PANIC) != 0 {
                local::note_unsampled_error(this.op.key, this.op.id, flags);
            }
            return None;
        }
        let end = this.op.key.clock().raw();
        let start = start(end);
        local::push_timed(this.op.key, this.op.id, flags, start, end);
        Some((start, end))
    }
}

impl Drop for Timer {
    /// Kept small so that LLVM inlines the drop glue into the caller: the panic check (once),
    /// the unsampled branch, the clock read and one call of `local::push_timed` with the event
    /// in registers. With the push inlined here too, the glue was too large to inline, and
    /// every guard was built in memory and dropped through a call that saved registers.
    #[inline(always)]
    fn drop(&mut self) {
        let mut flags = self.flags;
        if std::thread::panicking() {
            flags |= Event::PANIC;
        }
        if flags & Event::UNSAMPLED != 0 {
            // Counted when it started; only a failure is left to report.
            if flags & (Event::ERROR | Event::PANIC) != 0 {
                local::note_unsampled_error(self.op.key, self.op.id, flags);
            }
            return;
        }
        let end = self.op.key.clock().raw();
        local::push_timed(self.op.key, self.op.id, flags, self.start, end);
    }
}
