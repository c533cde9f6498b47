//! The engine's public behaviour, one test per rule: names, configuration, windows, delivery,
//! shutdown, thread exit, the global engine and isolation between engines.
//!
//! Window tests use [`Clock::mock`] with [`Builder::start_manual`]: nothing happens between
//! `flush()` calls, so every boundary is exact. A mock reading is nanoseconds since the Unix
//! epoch, so window `i` of a 1 s engine covers `[i s, (i + 1) s)`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ringmeter::{
    Builder, Clock, Engine, Error, MockClock, NameError, Op, MAX_NAME_LEN, MAX_OPERATIONS,
    MAX_RING_CAPACITY, OVERFLOW_OP,
};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

/// An engine without an aggregator thread on a mock clock at 0 (window 1 s, grace 100 ms).
fn manual(builder: Builder) -> (Engine, MockClock) {
    let (clock, mock) = Clock::mock();
    let engine = builder.clock(clock).start_manual().expect("valid settings");
    (engine, mock)
}

/// A timed call from now to `d` later, on the mock clock.
fn call(op: Op, mock: &MockClock, d: Duration) {
    let t = op.start();
    mock.advance(d);
    drop(t);
}

fn totals(engine: &Engine, name: &str) -> ringmeter::OpStats {
    engine
        .snapshot()
        .totals(name)
        .unwrap_or_else(|| panic!("no totals for {name}"))
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Names

#[test]
fn invalid_names_are_typed_errors_for_every_rule() {
    let (engine, _) = manual(Engine::builder());
    let long = "x".repeat(MAX_NAME_LEN + 1);
    let cases: [(&str, NameError); 8] = [
        ("", NameError::Empty),
        (&long, NameError::TooLong),
        ("9lives", NameError::BadStart),
        ("_x", NameError::BadStart),
        ("a b", NameError::BadChar(1)),
        ("db-query", NameError::BadChar(2)),
        ("a..b", NameError::BadDot),
        ("a.", NameError::BadDot),
    ];
    for (name, want) in cases {
        match engine.op(name) {
            Err(Error::InvalidName { name: got, reason }) => {
                assert_eq!(got, name, "the rejected name is handed back");
                assert_eq!(reason, want, "{name:?}");
            }
            other => panic!("{name:?}: expected InvalidName, got {other:?}"),
        }
    }
    // The longest allowed name is accepted.
    engine
        .op(&"x".repeat(MAX_NAME_LEN))
        .expect("128 bytes is allowed");
}

#[test]
fn names_with_the_same_prometheus_form_collide() {
    let (engine, _) = manual(Engine::builder());
    engine.op("db.query").unwrap();
    match engine.op("db_query") {
        Err(Error::NameCollision { name, existing }) => {
            assert_eq!((name.as_str(), existing.as_str()), ("db_query", "db.query"));
        }
        other => panic!("expected NameCollision, got {other:?}"),
    }
    // The other way round, and against the reserved operation.
    let (engine, _) = manual(Engine::builder());
    engine.op("db_query").unwrap();
    assert!(matches!(
        engine.op("db.query"),
        Err(Error::NameCollision { .. })
    ));
    assert!(matches!(
        engine.op("ringmeter_overflow"),
        Err(Error::NameCollision { existing, .. }) if existing == OVERFLOW_OP
    ));
}

#[test]
fn max_operations_limits_registrations_not_lookups() {
    let (engine, _) = manual(Engine::builder().max_operations(2));
    let a = engine.op("op.a").unwrap();
    engine.op("op.b").unwrap();
    match engine.op("op.c") {
        Err(Error::TooManyOperations { limit }) => assert_eq!(limit, 2),
        other => panic!("expected TooManyOperations, got {other:?}"),
    }
    // Names already registered still resolve, and the reserved operation is not counted.
    assert_eq!(engine.op("op.a").unwrap(), a);
    assert_eq!(engine.op(OVERFLOW_OP).unwrap(), engine.overflow_op());
}

#[test]
fn op_returns_the_same_handle_for_the_same_name() {
    let (engine, _) = manual(Engine::builder());
    let a = engine.op("cache.get").unwrap();
    let b = engine.op("cache.put").unwrap();
    assert_eq!(engine.op("cache.get").unwrap(), a);
    assert_eq!(engine.op("cache.get").unwrap().id(), a.id());
    assert_ne!(a.id(), b.id());
    assert_ne!(a.id(), 0, "id 0 is the reserved overflow operation");
    assert_eq!(engine.overflow_op().id(), 0);
    assert_eq!(engine.op_name(a).as_deref(), Some("cache.get"));
    // From another thread, too.
    let e = engine.clone();
    let c = thread::spawn(move || e.op("cache.get").unwrap())
        .join()
        .unwrap();
    assert_eq!(c, a);
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// Asserts that `builder` is rejected naming `key`, by both `start` and `start_manual`.
fn rejects(builder: impl Fn() -> Builder, key: &str) {
    for threaded in [false, true] {
        let result = if threaded {
            builder().start()
        } else {
            builder().start_manual()
        };
        match result {
            Err(e @ Error::InvalidConfig { .. }) => {
                let Error::InvalidConfig { key: got, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(got, key, "{builder:?}", builder = builder());
                assert!(e.to_string().contains(key), "message names the key: {e}");
            }
            other => panic!(
                "{:?}: expected InvalidConfig({key}), got {other:?}",
                builder()
            ),
        }
    }
}

fn accepts(builder: Builder) {
    let b = format!("{builder:?}");
    builder
        .start_manual()
        .unwrap_or_else(|e| panic!("{b}: {e}"));
}

#[test]
fn ring_capacity_must_be_a_power_of_two_in_range() {
    for bad in [0, 1, 3, 1000, 1025, MAX_RING_CAPACITY * 2, usize::MAX] {
        rejects(|| Engine::builder().ring_capacity(bad), "ring_capacity");
    }
    match Engine::builder().ring_capacity(1000).start_manual() {
        Err(Error::InvalidConfig { value, .. }) => assert!(value.contains("1000"), "{value}"),
        other => panic!("{other:?}"),
    }
    accepts(Engine::builder().ring_capacity(2));
    accepts(Engine::builder().ring_capacity(MAX_RING_CAPACITY));
}

#[test]
fn max_operations_must_be_in_range() {
    for bad in [0, MAX_OPERATIONS + 1] {
        rejects(|| Engine::builder().max_operations(bad), "max_operations");
    }
    accepts(Engine::builder().max_operations(1));
    accepts(Engine::builder().max_operations(MAX_OPERATIONS));
}

#[test]
fn window_must_be_between_a_millisecond_and_a_day() {
    let day = Duration::from_secs(86_400);
    for bad in [
        Duration::ZERO,
        Duration::from_micros(999),
        day + Duration::from_nanos(1),
    ] {
        rejects(
            || Engine::builder().window(bad).grace(Duration::ZERO),
            "window",
        );
    }
    accepts(Engine::builder().window(MS).grace(MS));
    accepts(Engine::builder().window(day));
}

#[test]
fn grace_must_not_exceed_the_window() {
    rejects(
        || {
            Engine::builder()
                .window(SEC)
                .grace(SEC + Duration::from_nanos(1))
        },
        "grace",
    );
    // The default grace (100 ms) is longer than a 20 ms window.
    rejects(|| Engine::builder().window(20 * MS), "grace");
    accepts(Engine::builder().window(SEC).grace(SEC));
    accepts(Engine::builder().grace(Duration::ZERO));
}

#[test]
fn drain_and_idle_intervals_must_be_in_range() {
    for bad in [Duration::from_micros(9), SEC + Duration::from_nanos(1)] {
        rejects(
            || Engine::builder().drain_interval(bad).idle_interval(SEC),
            "drain_interval",
        );
    }
    rejects(
        || Engine::builder().drain_interval(MS).idle_interval(MS / 2),
        "idle_interval",
    );
    rejects(
        || Engine::builder().idle_interval(SEC + Duration::from_nanos(1)),
        "idle_interval",
    );
    accepts(
        Engine::builder()
            .drain_interval(Duration::from_micros(10))
            .idle_interval(Duration::from_micros(10)),
    );
    accepts(Engine::builder().drain_interval(SEC).idle_interval(SEC));
}

#[test]
fn significant_digits_must_be_one_to_five() {
    for bad in [0, 6, u8::MAX] {
        rejects(
            || Engine::builder().significant_digits(bad),
            "significant_digits",
        );
    }
    accepts(Engine::builder().significant_digits(1));
    accepts(Engine::builder().significant_digits(5));
}

#[test]
fn highest_trackable_must_be_in_range() {
    for bad in [Duration::ZERO, Duration::from_nanos(999), Duration::MAX] {
        rejects(
            || Engine::builder().highest_trackable(bad),
            "highest_trackable",
        );
    }
    accepts(Engine::builder().highest_trackable(Duration::from_micros(1)));
}

// ---------------------------------------------------------------------------------------------
// Windows (mock clock, no aggregator thread)

#[test]
fn events_land_in_the_window_of_their_end_and_windows_close_after_grace() {
    let (engine, mock) = manual(Engine::builder());
    let op = engine.op("win.op").unwrap();
    let windows = engine.subscribe(16);

    mock.advance(200 * MS);
    call(op, &mock, 300 * MS); // 0.2 s .. 0.5 s: window 0
    mock.advance(400 * MS);
    call(op, &mock, 150 * MS); // 0.9 s .. 1.05 s: window 1, by its end

    // At 1.05 s, and 1 ns before 1.1 s, window 0 is still within its grace period.
    engine.flush().unwrap();
    mock.advance(50 * MS - Duration::from_nanos(1));
    engine.flush().unwrap();
    assert!(
        windows.try_recv().is_none(),
        "window 0 closed before its grace ran out"
    );
    let snap = engine.snapshot();
    assert_eq!(snap.windows_closed, 0);
    assert!(snap.last_window.is_none());
    assert_eq!(
        snap.totals("win.op").unwrap().count,
        2,
        "flush totals include open windows"
    );

    // At exactly end + grace it closes.
    mock.advance_ns(1);
    engine.flush().unwrap();
    let w0 = windows.try_recv().expect("window 0 closed at 1.1 s");
    assert_eq!(
        (w0.index, w0.start_unix_ns, w0.length_ns),
        (0, 0, 1_000_000_000)
    );
    let s0 = &w0.op("win.op").unwrap().stats;
    assert_eq!(
        (s0.count, s0.min_ns, s0.max_ns),
        (1, 300_000_000, 300_000_000)
    );
    assert!(windows.try_recv().is_none());
    let snap = engine.snapshot();
    assert_eq!(snap.windows_closed, 1);
    assert_eq!(snap.last_window.as_ref().unwrap().index, 0);

    mock.advance(SEC); // 2.1 s
    engine.flush().unwrap();
    let w1 = windows.try_recv().expect("window 1 closed at 2.1 s");
    assert_eq!((w1.index, w1.start_unix_ns), (1, 1_000_000_000));
    let s1 = &w1.op("win.op").unwrap().stats;
    assert_eq!(
        (s1.count, s1.min_ns, s1.max_ns, s1.late),
        (1, 150_000_000, 150_000_000, 0)
    );
}

#[test]
fn record_ns_goes_to_the_newest_open_window() {
    let (engine, mock) = manual(Engine::builder());
    let op = engine.op("win.external").unwrap();
    let windows = engine.subscribe(16);
    mock.advance(400 * MS);
    call(op, &mock, 100 * MS); // ends at 0.5 s: window 0
    engine.flush().unwrap(); // window 0 is open now

    // At 1.05 s window 0 is still open (grace), but a duration without a timestamp goes to the
    // window the clock is in.
    mock.advance(550 * MS);
    op.record_ns(777);
    engine.flush().unwrap();

    mock.advance(50 * MS); // 1.1 s
    engine.flush().unwrap();
    let w0 = windows.try_recv().expect("window 0");
    let s0 = &w0.op("win.external").unwrap().stats;
    assert_eq!((w0.index, s0.count, s0.max_ns), (0, 1, 100_000_000));

    mock.advance(SEC); // 2.1 s
    engine.flush().unwrap();
    let w1 = windows.try_recv().expect("window 1");
    let s1 = &w1.op("win.external").unwrap().stats;
    assert_eq!((w1.index, s1.count, s1.min_ns, s1.max_ns), (1, 1, 777, 777));
}

/// Makes one thread stop inside its next heap allocation until released.
///
/// A thread's first event for an engine registers its ring, which allocates; that happens
/// after the timer's end timestamp is read and before the event is pushed. Pausing there lets
/// the test close the event's window in between, which otherwise only a race could do.
struct PausingAlloc;

thread_local! {
    static PAUSE_IN_NEXT_ALLOC: Cell<bool> = const { Cell::new(false) };
}
static PAUSED: AtomicBool = AtomicBool::new(false);
static RELEASED: AtomicBool = AtomicBool::new(false);

// SAFETY: every request is passed to `System` unchanged; the pause only delays it.
unsafe impl GlobalAlloc for PausingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if PAUSE_IN_NEXT_ALLOC
            .try_with(|p| p.replace(false))
            .unwrap_or(false)
        {
            // Release: the timer's end reading, taken before this allocation, happens before
            // the test thread sees `PAUSED` and moves the clock on.
            PAUSED.store(true, Ordering::Release);
            // Acquire: pairs with the test's Release store of `RELEASED`.
            while !RELEASED.load(Ordering::Acquire) {
                thread::yield_now();
            }
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: PausingAlloc = PausingAlloc;

#[test]
fn a_late_event_is_counted_late_in_the_oldest_open_window() {
    let (engine, mock) = manual(Engine::builder());
    let op = engine.op("win.late").unwrap();
    let windows = engine.subscribe(16);

    // Started here (registering this thread's ring), ended on a thread without a ring yet.
    let t = op.start(); // at 0 s
    let (end_tx, end_rx) = mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        end_rx.recv().unwrap();
        PAUSE_IN_NEXT_ALLOC.with(|p| p.set(true));
        drop(t); // end read at 0.5 s, then the ring registration pauses
    });
    mock.advance(500 * MS);
    end_tx.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Acquire: pairs with the Release store in `PausingAlloc::alloc`.
    while !PAUSED.load(Ordering::Acquire) {
        assert!(
            Instant::now() < deadline,
            "the worker never reached its ring registration"
        );
        thread::sleep(MS);
    }

    // Window 0 closes while the event that ended in it is still on its way.
    mock.advance(700 * MS); // 1.2 s
    engine.flush().unwrap();
    let w0 = windows.try_recv().expect("window 0 closed");
    assert_eq!(w0.index, 0);
    assert!(w0.op("win.late").is_none());

    // Release: the window closed above happens before the paused thread goes on.
    RELEASED.store(true, Ordering::Release);
    worker.join().unwrap();
    engine.flush().unwrap();
    let t = totals(&engine, "win.late");
    assert_eq!((t.count, t.late), (1, 1));

    mock.advance(SEC); // 2.2 s: window 1 closes, holding the late event
    engine.flush().unwrap();
    let w1 = windows.try_recv().expect("window 1 closed");
    let s1 = &w1
        .op("win.late")
        .expect("the late event is in window 1")
        .stats;
    assert_eq!(
        (w1.index, s1.count, s1.late, s1.max_ns),
        (1, 1, 1, 500_000_000)
    );
}

#[test]
fn slow_calls_are_those_longer_than_the_threshold() {
    let (engine, mock) = manual(Engine::builder().slow_threshold(MS));
    let op = engine.op("win.slow").unwrap();
    call(op, &mock, MS / 2);
    call(op, &mock, MS); // exactly the threshold: not slow
    call(op, &mock, MS + Duration::from_nanos(1));
    call(op, &mock, 5 * MS);
    op.record(2 * MS);
    op.record_error_ns(10_000);
    engine.shutdown().unwrap();
    let t = totals(&engine, "win.slow");
    assert_eq!((t.count, t.slow, t.errors), (6, 3, 1));
    let w = engine.snapshot().last_window.clone().unwrap();
    assert_eq!(w.op("win.slow").unwrap().stats.slow, 3);
}

// ---------------------------------------------------------------------------------------------
// Delivery

#[test]
fn subscribers_and_callbacks_receive_every_closed_window() {
    let from_builder = Arc::new(Mutex::new(Vec::new()));
    let from_engine = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&from_builder);
    let (engine, mock) = manual(Engine::builder().on_window(move |w| {
        seen.lock().unwrap().push(w.index);
    }));
    let seen = Arc::clone(&from_engine);
    engine
        .on_window(move |w| seen.lock().unwrap().push(w.index))
        .unwrap();
    let windows = engine.subscribe(16);
    let op = engine.op("deliver.op").unwrap();

    call(op, &mock, MS); // window 0
    mock.advance(SEC + 100 * MS); // 1.101 s
    engine.flush().unwrap();
    call(op, &mock, MS); // window 1
    mock.advance(SEC); // 2.102 s
    engine.flush().unwrap();
    mock.advance(SEC); // 3.102 s: window 2 (empty) closes too
    engine.flush().unwrap();

    let received: Vec<u64> = windows.receiver().try_iter().map(|w| w.index).collect();
    assert_eq!(received, [0, 1, 2]);
    assert_eq!(*from_builder.lock().unwrap(), [0, 1, 2]);
    assert_eq!(*from_engine.lock().unwrap(), [0, 1, 2]);
    assert_eq!(windows.missed(), 0);
}

#[test]
fn a_full_subscription_counts_missed_windows() {
    let (engine, mock) = manual(Engine::builder());
    let windows = engine.subscribe(1);
    mock.advance(SEC + 100 * MS);
    for _ in 0..3 {
        engine.flush().unwrap(); // closes windows 0, 1, 2
        mock.advance(SEC);
    }
    assert_eq!(windows.missed(), 2);
    assert_eq!(windows.try_recv().map(|w| w.index), Some(0));
    assert!(windows.try_recv().is_none());
    engine.flush().unwrap(); // window 3 fits again
    assert_eq!(windows.try_recv().map(|w| w.index), Some(3));
    assert_eq!(windows.missed(), 2);
}

// ---------------------------------------------------------------------------------------------
// Shutdown

#[test]
fn shutdown_closes_the_partial_window_and_stops_the_thread() {
    let (clock, mock) = Clock::mock();
    let engine = Engine::builder().clock(clock).start().unwrap();
    assert!(engine.is_running());
    let windows = engine.subscribe(16);
    let op = engine.op("stop.op").unwrap();
    mock.advance(300 * MS);
    call(op, &mock, MS); // window 0, which is far from due
    engine.shutdown().unwrap();
    assert!(!engine.is_running());

    let w = windows.try_recv().expect("the partial window is delivered");
    assert_eq!(w.index, 0);
    assert_eq!(w.op("stop.op").unwrap().stats.count, 1);
    let snap = engine.snapshot();
    assert_eq!(snap.windows_closed, 1);
    assert_eq!(snap.last_window.as_ref().unwrap().index, 0);
    assert_eq!(snap.totals("stop.op").unwrap().count, 1);
}

/// A second `shutdown()` (or the drop after an explicit one) must change nothing.
#[test]
fn shutdown_is_idempotent() {
    let (engine, mock) = manual(Engine::builder());
    let windows = engine.subscribe(16);
    let op = engine.op("stop.twice").unwrap();
    call(op, &mock, MS);
    engine.shutdown().unwrap();
    let first = engine.snapshot();
    assert_eq!(windows.receiver().try_iter().count(), 1);

    engine.shutdown().unwrap();
    let second = engine.snapshot();
    assert_eq!(second.totals("stop.twice"), first.totals("stop.twice"));
    let again: Vec<u64> = windows.receiver().try_iter().map(|w| w.index).collect();
    assert!(again.is_empty(), "windows delivered again: {again:?}");
    assert_eq!(second.windows_closed, first.windows_closed, "no new window");

    // Dropping the engine after an explicit shutdown must not deliver anything either.
    drop(engine);
    let again: Vec<u64> = windows.receiver().try_iter().map(|w| w.index).collect();
    assert!(again.is_empty(), "windows delivered on drop: {again:?}");
}

#[test]
fn events_after_shutdown_are_aggregated_by_a_later_flush() {
    let (engine, mock) = manual(Engine::builder());
    let op = engine.op("stop.after").unwrap();
    call(op, &mock, MS);
    call(op, &mock, MS);
    engine.shutdown().unwrap();
    assert_eq!(totals(&engine, "stop.after").count, 2);

    for _ in 0..3 {
        call(op, &mock, MS);
    }
    op.record_error_ns(5);
    engine.flush().unwrap();
    let t = totals(&engine, "stop.after");
    assert_eq!((t.count, t.errors), (6, 1));
    engine.shutdown().unwrap();
    assert_eq!(totals(&engine, "stop.after").count, 6);
}

#[test]
fn dropping_the_last_clone_shuts_down() {
    let (clock, mock) = Clock::mock();
    let engine = Engine::builder().clock(clock).start().unwrap();
    let windows = engine.subscribe(16);
    let op = engine.op("stop.drop").unwrap();
    call(op, &mock, MS);
    call(op, &mock, MS);

    let other = engine.clone();
    drop(engine);
    assert!(other.is_running(), "a clone keeps the engine running");
    assert!(windows.try_recv().is_none());
    drop(other);

    // The mock clock never reached the end of window 0: only shutdown can have closed it.
    let w = windows
        .recv_timeout(Duration::from_secs(5))
        .expect("the final window");
    assert_eq!(w.index, 0);
    assert_eq!(w.op("stop.drop").unwrap().stats.count, 2);
    // Calls through a handle of a dropped engine are ignored without harm.
    op.record_ns(1);
    drop(op.start());
}

// ---------------------------------------------------------------------------------------------
// Threads and engines

#[test]
fn a_thread_that_exits_leaves_its_events_and_its_ring_is_freed() {
    let (engine, _mock) = manual(Engine::builder());
    let op = engine.op("exit.op").unwrap();
    assert_eq!(engine.rings(), 0);

    // A thread records, waits while the aggregator adopts its ring, records more and exits.
    let (recorded_tx, recorded_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        for _ in 0..10 {
            op.record_ns(5);
        }
        recorded_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        for _ in 0..5 {
            op.start().stop();
        }
    });
    recorded_rx.recv().unwrap();
    engine.flush().unwrap();
    assert_eq!(engine.rings(), 1);
    assert_eq!(totals(&engine, "exit.op").count, 10);
    go_tx.send(()).unwrap();
    worker.join().unwrap();
    engine.flush().unwrap();
    assert_eq!(totals(&engine, "exit.op").count, 15);
    assert_eq!(
        engine.rings(),
        0,
        "the abandoned ring is freed once drained"
    );

    // A thread that exits before the aggregator ever saw its ring.
    thread::spawn(move || {
        for _ in 0..7 {
            op.record_ns(5);
        }
    })
    .join()
    .unwrap();
    engine.flush().unwrap();
    assert_eq!(totals(&engine, "exit.op").count, 22);
    assert_eq!(engine.rings(), 0);
}

/// Records `n` calls of `op` when the thread's locals are destroyed.
struct RecordOnExit {
    op: Cell<Option<Op>>,
    n: u64,
}

impl Drop for RecordOnExit {
    fn drop(&mut self) {
        if let Some(op) = self.op.get() {
            for _ in 0..self.n {
                op.start().stop();
            }
        }
    }
}

thread_local! {
    static RECORD_ON_EXIT: RecordOnExit = const { RecordOnExit { op: Cell::new(None), n: 50 } };
}

/// A call made from another thread-local's destructor, before or after the thread's own ring
/// state is destroyed (the order is the platform's), is recorded or counted as dropped.
#[test]
fn calls_from_thread_local_destructors_are_accounted_for() {
    let (engine, _mock) = manual(Engine::builder());
    let op = engine.op("exit.dtor").unwrap();
    // Destructor registered before the thread's first event, then after it.
    for register_first in [true, false] {
        thread::spawn(move || {
            if register_first {
                RECORD_ON_EXIT.with(|r| r.op.set(Some(op)));
                op.record_ns(1);
            } else {
                op.record_ns(1);
                RECORD_ON_EXIT.with(|r| r.op.set(Some(op)));
            }
        })
        .join()
        .unwrap();
    }
    engine.flush().unwrap();
    let t = totals(&engine, "exit.dtor");
    assert_eq!(t.count + t.dropped, 2 * (1 + 50), "{t:?}");
    assert_eq!(t.errors, 0);
}

fn global_hit() -> Op {
    ringmeter::op!("itest.global.hit")
}

#[test]
fn the_global_engine_through_op_macro() {
    for _ in 0..10 {
        global_hit().time(|| ());
    }
    thread::spawn(|| global_hit().record_ns(1_000))
        .join()
        .unwrap();
    assert_eq!(
        global_hit(),
        ringmeter::global().op("itest.global.hit").unwrap(),
        "op! resolves through the global engine"
    );
    ringmeter::global().flush().unwrap();
    let t = ringmeter::global()
        .snapshot()
        .totals("itest.global.hit")
        .unwrap()
        .clone();
    assert_eq!(t.count, 11);
}

#[test]
fn init_global_after_global_use_is_refused() {
    let _ = ringmeter::global();
    assert!(matches!(
        ringmeter::init_global(Engine::builder()),
        Err(Error::GlobalAlreadyInitialized)
    ));
}

#[test]
fn engines_do_not_see_each_others_events() {
    let (a, _) = manual(Engine::builder());
    let (b, _) = manual(Engine::builder());
    let op_a = a.op("same.name").unwrap();
    let op_b = b.op("same.name").unwrap();
    assert_ne!(op_a, op_b);
    assert_eq!(b.op_name(op_a), None, "a handle belongs to one engine");
    a.op("only.a").unwrap().record_ns(1);

    // Interleaved on one thread (switching the thread's cached ring) and on another thread.
    let record = move || {
        for _ in 0..5 {
            op_a.record_ns(1);
            op_b.record_ns(2);
            op_b.record_ns(3);
        }
    };
    record();
    thread::spawn(record).join().unwrap();
    a.flush().unwrap();
    b.flush().unwrap();
    assert_eq!(totals(&a, "same.name").count, 10);
    let tb = totals(&b, "same.name");
    assert_eq!((tb.count, tb.min_ns, tb.max_ns), (20, 2, 3));
    assert!(b.snapshot().totals("only.a").is_none());
}

#[test]
fn an_idle_engine_publishes_windows_by_itself() {
    let engine = Engine::builder()
        .window(20 * MS)
        .grace(5 * MS)
        .start()
        .unwrap();
    let windows = engine.subscribe(64);
    let w = windows
        .recv_timeout(Duration::from_secs(5))
        .expect("a window closes within a few seconds without any call or flush");
    assert_eq!(w.length_ns, 20_000_000);
    assert!(w.ops.is_empty());
    // Subscribers get a window before the snapshot that counts it is published, so look at
    // the snapshot only once the engine has stopped.
    engine.shutdown().unwrap();
    assert!(engine.snapshot().windows_closed >= 2);
}
