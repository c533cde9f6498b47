//! What happens when the aggregator thread panics.
//!
//! The aggregator panics while holding its state lock, which poisons it. From then on:
//! - recording threads are unaffected: their rings fill up and further calls are dropped and
//!   counted in the ring, without blocking or panicking (the counts are never read again);
//! - `flush()`, `shutdown()` and `on_window()` return [`Error::AggregatorPanicked`];
//! - `snapshot()` keeps returning the last snapshot published before the panic;
//! - `subscribe()` hands out a channel on which nothing ever arrives, and `rings()` reads 0;
//! - dropping the engine does not panic, and handles kept after that still do no harm.
//!
//! The panic is triggered with the hidden test hook `Engine::inject_aggregator_panic`; the
//! thread's panic message ("aggregator panic injected by a test") on stderr is expected.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ringmeter::{Engine, Error};

const CAPACITY: usize = 1024;

#[test]
fn user_threads_keep_running_after_the_aggregator_panics() {
    let engine = Engine::builder()
        .ring_capacity(CAPACITY)
        .start()
        .expect("start");
    let op = engine.op("survivor.op").unwrap();
    for i in 0..100 {
        op.record_ns(i);
    }
    op.time(|| ());
    engine.flush().expect("the aggregator is healthy");
    let before = engine.snapshot();
    assert_eq!(before.totals("survivor.op").unwrap().count, 101);

    engine.inject_aggregator_panic();
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.is_running() {
        assert!(Instant::now() < deadline, "the aggregator did not stop");
        thread::sleep(Duration::from_millis(1));
    }

    // Ten rings' worth of calls, on this thread (whose ring already exists) and on new threads
    // (whose rings are registered after the panic), through every recording API.
    let calls = 10 * CAPACITY as u64;
    let record = move || {
        for i in 0..calls {
            match i % 4 {
                0 => op.record_ns(i),
                1 => op.time(|| ()),
                2 => {
                    let mut t = op.start();
                    t.fail();
                }
                _ => {
                    let r: Result<(), ()> = op.time_result(|| Err(()));
                    assert!(r.is_err());
                }
            }
        }
    };
    record();
    let workers: Vec<_> = (0..2).map(|_| thread::spawn(record)).collect();
    for w in workers {
        w.join().expect("recording never panics");
    }
    // Registering operations still works: names do not live under the aggregator's lock.
    engine.op("survivor.late_name").unwrap().record_ns(1);

    assert!(matches!(engine.flush(), Err(Error::AggregatorPanicked)));
    assert!(matches!(engine.shutdown(), Err(Error::AggregatorPanicked)));
    assert!(matches!(engine.shutdown(), Err(Error::AggregatorPanicked)));
    assert!(matches!(
        engine.on_window(|_| {}),
        Err(Error::AggregatorPanicked)
    ));

    let after = engine.snapshot();
    assert!(
        Arc::ptr_eq(&before, &after),
        "the last published snapshot stays"
    );
    assert_eq!(after.totals("survivor.op").unwrap().count, 101);

    let windows = engine.subscribe(4);
    assert!(windows.recv_timeout(Duration::from_millis(50)).is_none());
    assert_eq!(engine.rings(), 0);

    let clone = engine.clone();
    drop(engine);
    drop(clone); // the last handle: its shutdown fails quietly
    op.record_ns(1); // a handle that outlived its engine is harmless
}

#[test]
fn an_engine_whose_aggregator_panicked_can_be_dropped_at_once() {
    let engine = Engine::builder().start().expect("start");
    engine.op("short.op").unwrap().record_ns(1);
    engine.inject_aggregator_panic();
    // Dropping joins the (panicking or panicked) thread and must not propagate its panic.
    drop(engine);
}
