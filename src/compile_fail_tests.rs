//! Compile-time guarantees, checked as doctests (each `compile_fail` beside a compiling twin).
//!
//! This module exists only under `cfg(doctest)`. Every `compile_fail` example has a twin that
//! differs only in the point being made and must compile, so that an example cannot pass by
//! failing for an unrelated reason. (`Timer` is `#[must_use]`, but that is a lint, so it has
//! no example here.)
//!
//! # `Op` is `Copy`, `Send` and `Sync`; `Timer` is not `Copy`
//!
//! An operation handle is copied freely, into as many threads as needed:
//! ```
//! fn assert_copy_send_sync<T: Copy + Send + Sync + 'static>(_: &T) {}
//!
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! let op = engine.op("db.query")?;
//! assert_copy_send_sync(&op);
//! let copy = op;
//! let handles: Vec<_> = (0..2)
//!     .map(|_| std::thread::spawn(move || op.record_ns(1)))
//!     .collect();
//! for h in handles {
//!     h.join().unwrap();
//! }
//! copy.record_ns(1);
//! op.record_ns(1);
//! engine.flush()?;
//! assert_eq!(engine.snapshot().totals("db.query").unwrap().count, 4);
//! # Ok::<(), ringmeter::Error>(())
//! ```
//!
//! A guard is one call, so it cannot be copied (nor be stopped twice):
//! ```compile_fail,E0382
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! let op = engine.op("db.query")?;
//! let t = op.start();
//! let copy = t;
//! t.stop();
//! copy.stop();
//! # Ok::<(), ringmeter::Error>(())
//! ```
//! ```compile_fail,E0382
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! let t = engine.op("db.query")?.start();
//! t.stop();
//! t.stop();
//! # Ok::<(), ringmeter::Error>(())
//! ```
//!
//! # `Timer` is `Send` and `Sync`
//!
//! A guard may be started on one thread and dropped on another. The call is recorded into the
//! ring of the thread that drops it; its duration comes from clock readings taken on two
//! threads, so it relies on the TSC being synchronised across cores, as `quanta` assumes when
//! it uses the TSC at all (an end reading before the start counts as 0 ns).
//! ```
//! fn assert_send_sync<T: Send + Sync>(_: &T) {}
//!
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! let op = engine.op("handoff")?;
//! let mut t = op.start();
//! assert_send_sync(&t);
//! t.fail();
//! std::thread::spawn(move || drop(t)).join().unwrap();
//! engine.flush()?;
//! let stats = engine.snapshot().totals("handoff").unwrap().clone();
//! assert_eq!((stats.count, stats.errors), (1, 1));
//! # Ok::<(), ringmeter::Error>(())
//! ```
//!
//! The check above is not vacuous: the same helper rejects a guard behind an `Rc`.
//! ```compile_fail,E0277
//! fn assert_send_sync<T: Send + Sync>(_: &T) {}
//!
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! let t = std::rc::Rc::new(engine.op("handoff")?.start());
//! assert_send_sync(&t);
//! # Ok::<(), ringmeter::Error>(())
//! ```
//!
//! # `Engine` is `Clone`, `Send` and `Sync`
//!
//! Share an engine by reference with scoped threads, or move a clone into a thread:
//! ```
//! fn assert_clone_send_sync<T: Clone + Send + Sync + 'static>(_: &T) {}
//!
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! assert_clone_send_sync(&engine);
//! std::thread::scope(|s| {
//!     s.spawn(|| engine.op("scoped").unwrap().record_ns(1));
//! });
//! let clone = engine.clone();
//! std::thread::spawn(move || clone.flush()).join().unwrap()?;
//! assert_eq!(engine.snapshot().totals("scoped").unwrap().count, 1);
//! # Ok::<(), ringmeter::Error>(())
//! ```
//!
//! A thread that may outlive the engine cannot borrow it; it needs a clone:
//! ```compile_fail,E0373
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! std::thread::spawn(|| engine.flush()).join().unwrap()?;
//! # Ok::<(), ringmeter::Error>(())
//! ```
//!
//! and an `Rc` around it is not the way to share it between threads:
//! ```compile_fail,E0277
//! let engine = std::rc::Rc::new(ringmeter::Engine::builder().start_manual()?);
//! std::thread::spawn(move || engine.flush()).join().unwrap()?;
//! # Ok::<(), ringmeter::Error>(())
//! ```
//!
//! # `Snapshot` is `Send` and `Sync`, and immutable
//!
//! A snapshot can be handed to another thread and read there:
//! ```
//! fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}
//!
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! engine.op("read.me")?.record_ns(5);
//! engine.flush()?;
//! let snap = engine.snapshot();
//! assert_send_sync(&snap);
//! let count = std::thread::spawn(move || snap.totals("read.me").unwrap().count)
//!     .join()
//!     .unwrap();
//! assert_eq!(count, 1);
//! # Ok::<(), ringmeter::Error>(())
//! ```
//!
//! but not changed, since every reader shares it:
//! ```compile_fail,E0596
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! engine.flush()?;
//! let snap = engine.snapshot();
//! snap.totals.clear();
//! # Ok::<(), ringmeter::Error>(())
//! ```
//!
//! # `op!` checks its name at compile time
//!
//! A valid literal compiles:
//! ```
//! let op = ringmeter::op!("http.get_user");
//! assert_eq!(op.time(|| 7), 7);
//! ```
//!
//! an invalid literal is a compile error (here `BadChar`: a `-`),
//! ```compile_fail,E0080
//! let op = ringmeter::op!("http.get-user");
//! assert_eq!(op.time(|| 7), 7);
//! ```
//!
//! and so is a name that is not a literal (use `global().op(name)` for those). This is the
//! one example without an error code: rustc reports a macro call that matches no rule
//! ("no rules expected `name`") without one.
//! ```compile_fail
//! let name = "http.get_user";
//! let op = ringmeter::op!(name);
//! assert_eq!(op.time(|| 7), 7);
//! ```
//!
//! # `Error` is `#[non_exhaustive]`
//!
//! Matches on it need a wildcard arm, so new variants are not breaking changes (the error
//! below is rustc's "`&_` not covered": the wildcard, not a variant; `error.rs` has a test
//! that lists the variants without one, which stops compiling when a variant is added):
//! ```
//! fn describe(e: &ringmeter::Error) -> &'static str {
//!     match e {
//!         ringmeter::Error::InvalidName { .. } => "name",
//!         ringmeter::Error::AggregatorPanicked => "aggregator",
//!         _ => "other",
//!     }
//! }
//! assert_eq!(describe(&ringmeter::Error::AggregatorPanicked), "aggregator");
//! ```
//!
//! not even one that names every variant there is today (this list must hold them all, or
//! the example fails for a missing variant instead of for the missing wildcard):
//! ```compile_fail,E0004
//! fn describe(e: &ringmeter::Error) -> &'static str {
//!     match e {
//!         ringmeter::Error::InvalidName { .. } => "name",
//!         ringmeter::Error::NameCollision { .. } => "collision",
//!         ringmeter::Error::TooManyOperations { .. } => "full",
//!         ringmeter::Error::InvalidConfig { .. } => "config",
//!         ringmeter::Error::ConfigFile { .. } => "config file",
//!         ringmeter::Error::Spawn(_) => "spawn",
//!         ringmeter::Error::AggregatorPanicked => "aggregator",
//!         ringmeter::Error::GlobalAlreadyInitialized => "global",
//!         ringmeter::Error::CalledFromCallback => "callback",
//!         ringmeter::Error::CallbackCycle => "cycle",
//!         ringmeter::Error::Bind { .. } => "bind",
//!     }
//! }
//! ```
//!
//! # The published report types are `#[non_exhaustive]`
//!
//! `OpStats`, `Exemplar`, `OpWindow`, `WindowReport`, `OpTotals`, `Snapshot` and `LogStatus`
//! will grow: code outside the crate reads their fields and builds an `OpStats` from its
//! default, field by field,
//! ```
//! let mut stats = ringmeter::OpStats::default();
//! stats.count = 3;
//! stats.errors = 1;
//! assert_eq!(stats.calls(), 3);
//! ```
//! but cannot name every field in a struct expression (so a new field breaks nobody):
//! ```compile_fail,E0639
//! let stats = ringmeter::OpStats {
//!     count: 3,
//!     errors: 1,
//!     ..ringmeter::OpStats::default()
//! };
//! ```
//!
//! # `LocalOp` stays on its thread
//!
//! A handle bound to a thread is used where it was made:
//! ```
//! fn on_this_thread<T>(_: &T) {}
//!
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! let local = engine.op("db.query")?.local();
//! on_this_thread(&local);
//! local.record_ns(1);
//! # Ok::<(), ringmeter::Error>(())
//! ```
//! and cannot be sent to another one (make one there with `op.local()` instead):
//! ```compile_fail,E0277
//! fn to_another_thread<T: Send>(_: &T) {}
//!
//! let engine = ringmeter::Engine::builder().start_manual()?;
//! let local = engine.op("db.query")?.local();
//! to_another_thread(&local);
//! local.record_ns(1);
//! # Ok::<(), ringmeter::Error>(())
//! ```
