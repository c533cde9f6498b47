//! The engine handle: it owns the hub the hot path shares, the aggregator behind its lock,
//! the published snapshot and the aggregator thread.
//!
//! This is the top of the library: everything below (`hub`, `op`, `local`, `aggregator`,
//! `log`, `export`) is reached from here and never reaches back. Its parts:
//! - [`builder`]: [`Builder`], the settings checked and turned into a running engine;
//! - [`run`]: the aggregator thread's loop;
//! - [`names`]: operation names, error kinds and handles;
//! - [`reconfig`]: rules, alert rules and configuration reloads;
//! - [`global`]: the process-wide engine and [`op!`](crate::op!);
//! - [`waits`]: the aggregator locks' wait-for graph, which turns a deadlock between
//!   callbacks into an error.

mod builder;
mod global;
mod names;
mod reconfig;
mod run;
mod waits;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::{self, JoinHandle};

use arc_swap::ArcSwap;

pub use builder::Builder;
pub use global::{global, init_global, OpCache};
pub use names::OVERFLOW_OP;

use crate::aggregator::{in_callback_of, Aggregator, Drained, Pass, Subscription};
use crate::clock::Clock;
#[cfg(not(loom))]
use crate::doorbell::Doorbell;
use crate::error::Error;
use crate::export::prom::{self, Format};
use crate::hub::Hub;
use crate::loom::{AtomicBool, Ordering};
use crate::metric::{Counter, Gauge};
use crate::report::{Snapshot, WindowReport};
use reconfig::ConfigState;
use run::Pauses;
use waits::{Holder, LockFailed, Locked, Refused};

/// Everything of one engine but its thread: shared by the handles and the aggregator thread.
struct Inner {
    /// What the hot path and the aggregator share.
    hub: Arc<Hub>,
    /// The aggregator; taken by its thread for each pass and by `flush` and `shutdown`,
    /// always through [`waits::lock`] (see [`Inner::lock_agg`]).
    agg: Mutex<Aggregator>,
    /// Which thread holds `agg`.
    holder: Arc<Holder>,
    /// The latest published snapshot.
    snapshot: ArcSwap<Snapshot>,
    /// Rule layers and start-up settings; taken after the hub's names when both are needed.
    config: Mutex<ConfigState>,
    stop: AtomicBool,
    /// Set when the last handle went away inside a window callback: the thread then runs the
    /// final pass itself before it exits.
    exit_alone: AtomicBool,
    /// Makes the next pass of the aggregator thread panic (feature `test-hooks`).
    inject_panic: AtomicBool,
}

/// Marks the aggregator dead in the hub if the pass it guards unwinds, so threads that
/// register later get a ring nobody is expected to read.
struct DeadOnUnwind<'a>(&'a Hub);

impl Drop for DeadOnUnwind<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.mark_aggregator_dead();
        }
    }
}

impl Inner {
    fn new(hub: Arc<Hub>, agg: Aggregator, config: ConfigState) -> Self {
        Self {
            hub,
            agg: Mutex::new(agg),
            holder: Arc::new(Holder::default()),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            config: Mutex::new(config),
            stop: AtomicBool::new(false),
            exit_alone: AtomicBool::new(false),
            inject_panic: AtomicBool::new(false),
        }
    }

    /// One aggregator pass; publishes the snapshot it produced, if any.
    fn pass(&self, agg: &mut Aggregator, mode: Pass) -> Drained {
        let _dead = DeadOnUnwind(&self.hub);
        // Relaxed: a test hook; the thread sees it at a later pass at worst.
        if mode == Pass::Tick && self.inject_panic.load(Ordering::Relaxed) {
            panic!("ringmeter: aggregator panic injected by a test");
        }
        let out = agg.pass(&self.hub, mode);
        if let Some(snapshot) = out.snapshot {
            self.snapshot.store(snapshot);
        }
        out.drained
    }

    /// The aggregator, unless it panicked, the caller is one of its callbacks, or waiting
    /// for it could deadlock (see [`waits`]).
    fn lock_agg(&self) -> Result<Locked<'_, Aggregator>, Error> {
        if in_callback_of(self.hub.key().id()) {
            return Err(Error::CalledFromCallback);
        }
        waits::lock(&self.agg, &self.holder).map_err(|e| match e {
            LockFailed::Refused(r) => refused(r),
            LockFailed::Poisoned => Error::AggregatorPanicked,
        })
    }

    /// Asks the aggregator thread to run the final pass itself and exit, for when the
    /// calling thread must not wait for it.
    fn detach(&self, thread: &JoinHandle<()>) {
        // Relaxed: read by the aggregator thread after the loop; the unpark wakes it.
        self.exit_alone.store(true, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        thread.thread().unpark();
    }

    /// Stops the aggregator thread (if `thread` holds it), then runs the final pass.
    fn shutdown(&self, thread: &Mutex<Option<JoinHandle<()>>>) -> Result<(), Error> {
        if in_callback_of(self.hub.key().id()) || self.holder.is_me() {
            return Err(Error::CalledFromCallback);
        }
        let mut slot = thread.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = slot.as_ref() {
            if h.thread().id() == thread::current().id() {
                // On the aggregator thread, between its passes (from a callback of another
                // engine flushed by this one's callback): it cannot join itself.
                return Err(Error::CalledFromCallback);
            }
        }
        let handle = slot.take();
        drop(slot);
        if let Some(h) = handle {
            let mut handle = Some(h);
            // The thread holds the aggregator lock during its passes, so waiting for it is
            // waiting for that lock.
            let joined = waits::wait_for(&self.holder, || {
                let h = handle.take()?;
                // Relaxed: see `run`; the join below synchronises.
                self.stop.store(true, Ordering::Relaxed);
                h.thread().unpark();
                Some(h.join())
            });
            match joined {
                Ok(Some(Ok(()))) | Ok(None) => {}
                Ok(Some(Err(_))) => return Err(Error::AggregatorPanicked),
                Err(r) => {
                    // Nothing was stopped: the thread stays for a later shutdown.
                    *thread.lock().unwrap_or_else(PoisonError::into_inner) = handle;
                    return Err(refused(r));
                }
            }
        }
        let mut agg = self.lock_agg()?;
        self.pass(&mut agg, Pass::Final);
        Ok(())
    }
}

/// The error of a refused wait.
fn refused(r: Refused) -> Error {
    match r {
        Refused::Reentrant => Error::CalledFromCallback,
        Refused::Cycle => Error::CallbackCycle,
    }
}

/// Owner of the aggregator thread; shuts it down when the last [`Engine`] clone goes away.
struct Handle {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let inner = &self.inner;
        let slot = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = slot.as_ref() {
            if h.thread().id() == thread::current().id()
                || waits::holds_any()
                || in_callback_of(inner.hub.key().id())
            {
                // The last handle went away inside a callback: on the aggregator thread
                // itself (which cannot join itself), or on a thread inside some engine's
                // pass, which must not wait for this engine's thread. The thread runs the
                // final pass and exits on its own.
                inner.detach(h);
                return;
            }
        }
        if let Err(Error::CallbackCycle | Error::CalledFromCallback) = inner.shutdown(&self.thread)
        {
            let slot = self
                .thread
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(h) = slot.as_ref() {
                inner.detach(h);
            }
        }
    }
}

/// A running metrics engine: per-thread rings, an aggregator thread, windows and snapshots.
///
/// `Engine` is a cheap handle (`Clone` shares it). Dropping the last handle shuts the engine
/// down as [`shutdown`](Self::shutdown) does; dropped inside a window or alert callback (of
/// any engine), it leaves the final pass to the engine's own thread instead of waiting for
/// it.
///
/// # Examples
/// ```
/// let engine = ringmeter::Engine::builder().start()?;
/// let op = engine.op("parse")?;
/// let n: u32 = op.time(|| "17".parse().unwrap());
/// engine.shutdown()?;
/// let snap = engine.snapshot();
/// assert_eq!(snap.totals("parse").unwrap().count, 1);
/// # assert_eq!(n, 17);
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[derive(Clone)]
pub struct Engine {
    handle: Arc<Handle>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("id", &self.inner().hub.key().id())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder with the default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Wraps `inner` in a handle, starting the aggregator thread unless `pauses` is `None`.
    fn launch(inner: Arc<Inner>, pauses: Option<Pauses>) -> Result<Self, Error> {
        let thread = match pauses {
            Some(pauses) => {
                let on_thread = Arc::clone(&inner);
                let handle = thread::Builder::new()
                    .name("ringmeter-aggregator".into())
                    .spawn(move || run::run(&on_thread, pauses))
                    .map_err(Error::Spawn)?;
                // Before the handle exists, so before any thread can register a ring; until
                // then the thread parks only briefly (see `run`). (Under loom the doorbell
                // takes loom's thread handle, which this thread is not: the loom build, which
                // is for the models only, leaves the engine without one.)
                #[cfg(not(loom))]
                inner
                    .hub
                    .install_doorbell(Doorbell::new(handle.thread().clone()));
                Some(handle)
            }
            None => None,
        };
        Ok(Self {
            handle: Arc::new(Handle {
                inner,
                thread: Mutex::new(thread),
            }),
        })
    }

    fn inner(&self) -> &Inner {
        &self.handle.inner
    }

    /// The Prometheus exposition of the latest snapshot in `format`: what `GET /metrics`
    /// serves (feature `http`). See `docs/exporting.md` for the metric families.
    ///
    /// # Examples
    /// ```
    /// use ringmeter::export::prom::Format;
    /// let engine = ringmeter::Engine::builder().start_manual()?;
    /// engine.op("db.query")?.record_ns(1_500);
    /// engine.flush()?;
    /// let text = String::from_utf8(engine.render_metrics(Format::Text)).unwrap();
    /// assert!(text.contains("ringmeter_calls_total{op=\"db.query\"} 1\n"));
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn render_metrics(&self, format: Format) -> Vec<u8> {
        prom::render(&self.snapshot(), format)
    }

    /// The counter `name{labels}`, registered on first use (see [`metric`](crate::metric)).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a name breaking the operation naming rules;
    /// [`Error::InvalidConfig`] for a bad or repeated label name, a gauge of the same name and
    /// labels, or more than [`MAX_SERIES`](crate::limits::MAX_SERIES) series (a refusal counted
    /// in [`REFUSED_REGISTRATIONS`](crate::metric::REFUSED_REGISTRATIONS)).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Result<Counter, Error> {
        self.register_counter(name, labels, name)
    }

    /// The gauge `name{labels}`, registered on first use (see [`metric`](crate::metric)).
    ///
    /// # Errors
    /// As [`counter`](Self::counter).
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Result<Gauge, Error> {
        self.register_gauge(name, labels, name)
    }

    /// Sets the help text of the counters or gauges named `name` in the exposition.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a name breaking the naming rules.
    pub fn describe(&self, name: &str, help: &str) -> Result<(), Error> {
        self.inner().hub.lock_metrics().describe(name, help)
    }

    /// The ring capacity in force (events per thread).
    pub fn ring_capacity(&self) -> usize {
        self.inner().hub.ring_capacity()
    }

    /// The latest published snapshot. Never blocks the aggregator or the hot path.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner().snapshot.load_full()
    }

    /// Aggregates every event recorded (on any thread) before this call and publishes a
    /// snapshot whose totals include the open windows. Closes windows that are due.
    ///
    /// # Errors
    /// [`Error::AggregatorPanicked`] if the aggregator panicked;
    /// [`Error::CalledFromCallback`] from a callback of this engine (directly, or through a
    /// callback of another engine that it flushed); [`Error::CallbackCycle`] from a callback
    /// when this engine's pass, on another thread, waits for the caller's engine.
    pub fn flush(&self) -> Result<(), Error> {
        let inner = self.inner();
        inner.pass(&mut *inner.lock_agg()?, Pass::Flush);
        Ok(())
    }

    /// Stops the aggregator thread, drains every ring, closes every open window (the current
    /// one partial) and publishes the final snapshot. Idempotent. Events recorded afterwards
    /// are still accepted and aggregated by later `flush` or `shutdown` calls.
    ///
    /// # Errors
    /// [`Error::AggregatorPanicked`] if the aggregator panicked; from a callback, as
    /// [`flush`](Self::flush) (the thread then keeps running, for a later `shutdown`).
    pub fn shutdown(&self) -> Result<(), Error> {
        self.inner().shutdown(&self.handle.thread)
    }

    /// Whether the aggregator thread is running.
    pub fn is_running(&self) -> bool {
        self.handle
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }

    /// A channel that receives every window closed from now on (see [`Subscription`]).
    /// `capacity` windows can wait in it before further ones are counted as missed.
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        match self.inner().lock_agg() {
            Ok(mut agg) => agg.subscribe(capacity),
            // The aggregator is dead (or this is its own callback): hand out a closed channel.
            Err(_) => Subscription::closed(),
        }
    }

    /// Runs `f` on the aggregator thread for every window closed from now on
    /// (see [`Builder::on_window`]).
    ///
    /// # Errors
    /// [`Error::AggregatorPanicked`] if the aggregator panicked; from a callback, as
    /// [`flush`](Self::flush).
    pub fn on_window(
        &self,
        f: impl FnMut(&Arc<WindowReport>) + Send + 'static,
    ) -> Result<(), Error> {
        self.inner().lock_agg()?.add_callback(Box::new(f));
        Ok(())
    }

    /// Number of rings the aggregator currently drains (threads that recorded and whose
    /// rings are not yet freed).
    pub fn rings(&self) -> usize {
        self.inner().lock_agg().map_or(0, |a| a.rings())
    }

    /// A weak handle, for window callbacks that need to reach their own engine.
    ///
    /// # Examples
    /// ```
    /// let engine = ringmeter::Engine::builder().start()?;
    /// let weak = engine.downgrade();
    /// engine.on_window(move |w| {
    ///     if let Some(engine) = weak.upgrade() {
    ///         let _ = engine.snapshot(); // fine; flush() here would be CalledFromCallback
    ///     }
    /// })?;
    /// drop(engine); // still shuts down: the callback holds no strong handle
    /// # Ok::<(), ringmeter::Error>(())
    /// ```
    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine {
            handle: Arc::downgrade(&self.handle),
        }
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Clock {
        self.inner().hub.key().clock()
    }

    /// Test hook (feature `test-hooks`, for ringmeter's own tests): makes the aggregator
    /// thread panic on its next pass.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn inject_aggregator_panic(&self) {
        // Relaxed: see `Inner::pass`; the unpark below wakes the thread to see it.
        self.inner().inject_panic.store(true, Ordering::Relaxed);
        if let Some(h) = self
            .handle
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            h.thread().unpark();
        }
    }
}

/// A handle that does not keep its engine alive; see [`Engine::downgrade`].
///
/// A window callback that needs its own engine should hold one of these: a strong [`Engine`]
/// captured by the callback would keep the engine (and its thread) alive forever.
#[derive(Clone, Debug)]
pub struct WeakEngine {
    handle: Weak<Handle>,
}

impl WeakEngine {
    /// The engine, if a strong handle still exists.
    pub fn upgrade(&self) -> Option<Engine> {
        self.handle.upgrade().map(|handle| Engine { handle })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn callbacks_cannot_reenter_their_engine() {
        let (clock, mock) = Clock::mock();
        let engine = Engine::builder().clock(clock).start_manual().unwrap();
        let (tx, rx) = mpsc::channel();
        let inner = engine.clone();
        let other = Engine::builder().start_manual().unwrap();
        engine
            .on_window(move |_| {
                let own = (inner.flush(), inner.shutdown(), inner.on_window(|_| {}));
                // Another engine is not affected.
                tx.send((own, other.flush().is_ok())).unwrap();
            })
            .unwrap();
        engine.op("a").unwrap().record_ns(1);
        mock.advance(Duration::from_secs(3));
        engine.flush().unwrap();
        let ((f, s, o), other_ok) = rx.try_recv().expect("callback ran");
        assert!(matches!(f, Err(Error::CalledFromCallback)));
        assert!(matches!(s, Err(Error::CalledFromCallback)));
        assert!(matches!(o, Err(Error::CalledFromCallback)));
        assert!(other_ok);
        engine.shutdown().unwrap();
    }

    #[test]
    fn last_handle_dropped_inside_a_callback_still_shuts_down() {
        let engine = Engine::builder()
            .window(Duration::from_millis(10))
            .grace(Duration::from_millis(1))
            .start()
            .unwrap();
        let windows = engine.subscribe(1024);
        let (to_main, from_cb) = mpsc::channel();
        let (to_cb, from_main) = mpsc::channel::<()>();
        let weak = engine.downgrade();
        let from_main = Mutex::new(from_main);
        engine
            .on_window(move |_| {
                if let Some(strong) = weak.upgrade() {
                    let _ = to_main.send(());
                    // Wait until the main thread has dropped its handle: ours is the last.
                    let _ = from_main
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(10));
                    drop(strong);
                }
            })
            .unwrap();
        engine.op("x").unwrap().record_ns(1);
        from_cb.recv_timeout(Duration::from_secs(10)).unwrap();
        drop(engine);
        to_cb.send(()).unwrap();
        // The thread runs its final pass and exits; the engine's state goes away and with it
        // the subscriber's sender.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match windows.receiver().recv_deadline(deadline) {
                Ok(_) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("engine still alive: {e:?}"),
            }
        }
    }

    /// An engine with its aggregator thread closing a window every 10 ms.
    fn fast_windows() -> Engine {
        Engine::builder()
            .window(Duration::from_millis(10))
            .grace(Duration::from_millis(1))
            .start()
            .unwrap()
    }

    /// Runs `f` on a thread of its own and waits at most 20 s for it: a deadlock fails the
    /// test instead of hanging it (the stuck thread is left behind).
    fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("deadlocked: no result within 20 s")
    }

    #[test]
    fn a_callback_reaching_its_engine_through_another_engine_is_refused() {
        let results = within_deadline(|| {
            let (clock, mock) = Clock::mock();
            let a = Engine::builder()
                .clock(clock.clone())
                .start_manual()
                .unwrap();
            let b = Engine::builder().clock(clock).start_manual().unwrap();
            let (tx, rx) = mpsc::channel();
            let (weak_a, weak_b) = (a.downgrade(), b.downgrade());
            let tx_a = tx.clone();
            // A's callback flushes B, whose callback (on the same thread) flushes A again.
            a.on_window(move |_| {
                if let Some(b) = weak_b.upgrade() {
                    let _ = tx_a.send(("b from a", b.flush()));
                }
            })
            .unwrap();
            b.on_window(move |_| {
                if let Some(a) = weak_a.upgrade() {
                    let _ = tx.send(("a from b", a.flush()));
                    let _ = tx.send(("a shutdown from b", a.shutdown()));
                    let _ = tx.send(("a on_window from b", a.on_window(|_| {})));
                }
            })
            .unwrap();
            a.op("x").unwrap().record_ns(1);
            b.op("y").unwrap().record_ns(1);
            mock.advance(Duration::from_secs(3));
            a.flush().unwrap();
            drop((a, b));
            rx.try_iter()
                .map(|(what, r)| (what, r.map_err(|e| e.to_string())))
                .collect::<Vec<_>>()
        });
        let refused = Error::CalledFromCallback.to_string();
        assert_eq!(
            results[..4],
            [
                ("a from b", Err(refused.clone())),
                ("a shutdown from b", Err(refused.clone())),
                ("a on_window from b", Err(refused)),
                ("b from a", Ok(())),
            ]
        );
        // The final pass of dropping A closes one more window of A (B has none left).
        assert_eq!(results[4..], [("b from a", Ok(()))]);
    }

    #[test]
    fn callbacks_of_two_engines_flushing_each_other_do_not_deadlock() {
        let results = within_deadline(|| {
            let (a, b) = (fast_windows(), fast_windows());
            // Both callbacks first meet, each inside its own engine's pass on its own
            // aggregator thread, then each flushes the other engine, once.
            let meet = Arc::new(std::sync::Barrier::new(2));
            let (tx, rx) = mpsc::channel();
            for (own, other, name) in [(&a, b.downgrade(), "a"), (&b, a.downgrade(), "b")] {
                let (meet, tx) = (Arc::clone(&meet), tx.clone());
                let mut done = false;
                own.on_window(move |_| {
                    if done {
                        return;
                    }
                    done = true;
                    meet.wait();
                    if let Some(other) = other.upgrade() {
                        let _ = tx.send((name, other.flush().map_err(|e| e.to_string())));
                    }
                })
                .unwrap();
            }
            drop(tx);
            a.op("x").unwrap().record_ns(1);
            b.op("y").unwrap().record_ns(1);
            let mut results: Vec<_> = rx.iter().take(2).map(|(_, r)| r).collect();
            results.sort();
            a.shutdown().unwrap();
            b.shutdown().unwrap();
            results
        });
        // The second of the two waits would close the cycle: it is refused, the first goes on.
        assert_eq!(results, [Ok(()), Err(Error::CallbackCycle.to_string())]);
    }

    #[test]
    fn a_shutdown_waiting_for_a_callback_that_waits_for_it_is_refused() {
        let results = within_deadline(|| {
            let (a, b) = (fast_windows(), fast_windows());
            let meet = Arc::new(std::sync::Barrier::new(2));
            let (tx, rx) = mpsc::channel();
            // A's callback shuts B down (joining B's thread) while B's callback flushes A.
            for (own, other, shut) in [(&a, b.downgrade(), true), (&b, a.downgrade(), false)] {
                let (meet, tx) = (Arc::clone(&meet), tx.clone());
                let mut done = false;
                own.on_window(move |_| {
                    if done {
                        return;
                    }
                    done = true;
                    meet.wait();
                    if let Some(other) = other.upgrade() {
                        let r = if shut {
                            other.shutdown()
                        } else {
                            other.flush()
                        };
                        let _ = tx.send(r.map_err(|e| e.to_string()));
                    }
                })
                .unwrap();
            }
            drop(tx);
            a.op("x").unwrap().record_ns(1);
            b.op("y").unwrap().record_ns(1);
            let mut results: Vec<_> = rx.iter().take(2).collect();
            results.sort();
            a.shutdown().unwrap();
            b.shutdown().unwrap();
            assert!(!a.is_running() && !b.is_running());
            results
        });
        assert_eq!(results, [Ok(()), Err(Error::CallbackCycle.to_string())]);
    }

    #[test]
    fn the_last_handle_dropped_on_its_own_thread_through_another_engine_detaches() {
        let (dropped, disconnected) = within_deadline(|| {
            let a = Engine::builder()
                .window(Duration::from_millis(10))
                .grace(Duration::from_millis(1))
                .start()
                .unwrap();
            let (clock, mock) = Clock::mock();
            let b = Engine::builder().clock(clock).start_manual().unwrap();
            b.op("y").unwrap().record_ns(1);
            mock.advance(Duration::from_secs(3));
            let windows = a.subscribe(1024);
            // B's callback holds A's last handle and drops it; B is flushed by A's callback,
            // so the drop runs on A's own aggregator thread.
            let last_a = Arc::new(Mutex::new(None::<Engine>));
            let (tx, rx) = mpsc::channel();
            let holder = Arc::clone(&last_a);
            b.on_window(move |_| {
                let taken = holder.lock().unwrap().take();
                if let Some(a) = taken {
                    drop(a);
                    let _ = tx.send(());
                }
            })
            .unwrap();
            let weak_b = b.downgrade();
            a.on_window(move |_| {
                if let Some(b) = weak_b.upgrade() {
                    let _ = b.flush();
                }
            })
            .unwrap();
            *last_a.lock().unwrap() = Some(a.clone());
            a.op("x").unwrap().record_ns(1);
            drop(a);
            let dropped = rx.recv_timeout(Duration::from_secs(10)).is_ok();
            // The thread ran its final pass and exited: the subscriber's sender is gone.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let disconnected = loop {
                match windows.receiver().recv_deadline(deadline) {
                    Ok(_) => continue,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break true,
                    Err(_) => break false,
                }
            };
            drop(b);
            (dropped, disconnected)
        });
        assert!(
            dropped,
            "the callback did not return from dropping the handle"
        );
        assert!(disconnected, "the engine is still alive");
    }

    #[test]
    fn overflow_op_is_reserved_and_counted() {
        let engine = Engine::builder().max_operations(1).start_manual().unwrap();
        engine.op("only").unwrap();
        assert!(matches!(
            engine.op("second"),
            Err(Error::TooManyOperations { limit: 1 })
        ));
        let overflow = engine.overflow_op();
        assert_eq!(overflow.id(), 0);
        assert_eq!(engine.op_name(overflow).as_deref(), Some(OVERFLOW_OP));
        overflow.record_ns(5);
        engine.shutdown().unwrap();
        assert_eq!(engine.snapshot().totals(OVERFLOW_OP).unwrap().count, 1);
    }

    #[test]
    fn a_pass_that_unwinds_marks_the_aggregator_dead() {
        let engine = Engine::builder().ring_capacity(1024).start().unwrap();
        let hub = Arc::clone(&engine.inner().hub);
        assert_eq!(hub.register_ring(1).capacity(), 1024);
        // What `inject_aggregator_panic` does, without the feature it sits behind.
        engine.inner().inject_panic.store(true, Ordering::Relaxed);
        if let Some(h) = engine.handle.thread.lock().unwrap().as_ref() {
            h.thread().unpark();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while engine.is_running() {
            assert!(
                std::time::Instant::now() < deadline,
                "the aggregator did not panic"
            );
            thread::sleep(Duration::from_millis(1));
        }
        // Nobody drains rings registered from now on: they are the two-slot kind.
        assert_eq!(hub.register_ring(2).capacity(), 2);
        assert!(matches!(engine.flush(), Err(Error::AggregatorPanicked)));
    }
}
