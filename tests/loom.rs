//! loom models of the SPSC ring, of its doorbell and of ring registration.
//!
//! Each test checks one scenario exhaustively (up to loom's preemption bound) at several tiny
//! capacities, where the wrap-around and full-ring paths are hit within a few operations.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom`
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use ringmeter::doorbell::Doorbell;
use ringmeter::registry::Registry;
use ringmeter::ring::{self, Consumer};

/// Ring capacities every scenario runs at.
const CAPACITIES: [usize; 3] = [1, 2, 4];

/// A value tagged with the drop-counter key and error flag it would be counted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item {
    seq: usize,
    key: usize,
    error: bool,
}

impl Item {
    /// The `seq`-th value of a stream spread over `keys` keys, every third one an error
    /// (from the third on, so that at capacity 1 a plain drop precedes an error drop).
    fn nth(seq: usize, keys: usize) -> Self {
        Self {
            seq,
            key: seq % keys,
            error: seq % 3 == 2,
        }
    }
}

/// Per key: `[values, values with the error flag]`.
type PerKey = Vec<[u64; 2]>;

fn tally(per_key: &mut PerKey, item: Item) {
    per_key[item.key][0] += 1;
    per_key[item.key][1] += u64::from(item.error);
}

/// Adds the drops `c` reports to `dropped`, checking each report: it names a key that moved,
/// and no scan reports the error flag of a drop before the drop itself (what keeps a window's
/// `errors` within its `count + dropped`).
fn take_drops(c: &mut Consumer<Item>, dropped: &mut PerKey) {
    c.take_drops(|key, d, e| {
        assert!(
            d > 0 || e > 0,
            "take_drops reported a key that did not move"
        );
        dropped[key][0] += d;
        dropped[key][1] += e;
        assert!(
            dropped[key][1] <= dropped[key][0],
            "key {key}: {} error drops reported but only {} drops",
            dropped[key][1],
            dropped[key][0]
        );
    });
}

/// Pushes `values` in order, retrying on `Full` until each is accepted, the way the engine's
/// hot path pushes: `push_unless_due` (no look at `head`), and `push` (which looks) only where
/// a look is due.
fn push_all(p: &mut ring::Producer<usize>, values: std::ops::Range<usize>) {
    for v in values {
        if p.push_unless_due(v) {
            continue;
        }
        let mut pending = v;
        while let Err(back) = p.push(pending) {
            assert_eq!(back, v, "a full ring hands back the value pushed");
            pending = back;
            thread::yield_now();
        }
    }
}

/// Push/pop across wrap-around: the producer pushes more values than the ring holds, retrying
/// while it is full; the consumer pops them all, in order.
#[test]
fn push_pop_across_wrap_around() {
    for cap in CAPACITIES {
        loom::model(move || {
            let n = cap + 2;
            let (mut p, mut c) = ring::channel::<usize>(cap, 1);
            assert_eq!(p.capacity(), cap);
            let producer = thread::spawn(move || push_all(&mut p, 0..n));
            let mut next = 0;
            while next < n {
                match c.pop() {
                    Some(v) => {
                        assert_eq!(v, next, "values come out in push order");
                        next += 1;
                    }
                    None => thread::yield_now(),
                }
            }
            producer.join().unwrap();
            assert_eq!(c.pop(), None);
            assert_eq!(c.len(), 0);
        });
    }
}

/// Batches across wrap-around: the producer writes runs with `push_many_unless_due` (one
/// publication per run) and `push` where a look at `head` is due, retrying while the ring is
/// full; the consumer pops every value, in order, never one before its run is published.
#[test]
fn batches_across_wrap_around() {
    for cap in CAPACITIES {
        loom::model(move || {
            let n = cap + 2;
            let (mut p, mut c) = ring::channel::<usize>(cap, 1);
            let producer = thread::spawn(move || {
                let mut next = 0;
                while next < n {
                    let start = next;
                    next += p.push_many_unless_due(n - start, |i| start + i);
                    if next < n {
                        while p.push(next).is_err() {
                            thread::yield_now();
                        }
                        next += 1;
                    }
                }
            });
            let mut next = 0;
            while next < n {
                match c.pop() {
                    Some(v) => {
                        assert_eq!(v, next, "values come out in push order");
                        next += 1;
                    }
                    None => thread::yield_now(),
                }
            }
            producer.join().unwrap();
            assert_eq!(c.pop(), None);
        });
    }
}

/// Full-ring drop counting: the producer never retries and counts every value the full ring
/// hands back; the consumer drains and reads drop counts concurrently. After the producer is
/// joined, popped + dropped equals pushed per key, and dropped errors are exact.
#[test]
fn full_ring_drops_are_counted_exactly() {
    const KEYS: usize = 2;
    for cap in CAPACITIES {
        loom::model(move || {
            let n = cap + 2;
            let (mut p, mut c) = ring::channel::<Item>(cap, KEYS);
            let producer = thread::spawn(move || {
                let mut pushed = vec![[0u64; 2]; KEYS];
                let mut failed = vec![[0u64; 2]; KEYS];
                for seq in 0..n {
                    let item = Item::nth(seq, KEYS);
                    tally(&mut pushed, item);
                    if let Err(back) = p.push(item) {
                        assert_eq!(back, item);
                        p.count_drop(back.key, back.error);
                        tally(&mut failed, back);
                    }
                }
                (pushed, failed)
            });

            let mut popped = vec![[0u64; 2]; KEYS];
            let mut dropped = vec![[0u64; 2]; KEYS];
            let mut last_seq = None;
            let mut consume = |c: &mut Consumer<Item>, dropped: &mut PerKey| {
                c.drain(usize::MAX, |item| {
                    assert_eq!(item, Item::nth(item.seq, KEYS), "values arrive intact");
                    assert!(last_seq < Some(item.seq), "values arrive in push order");
                    last_seq = Some(item.seq);
                    tally(&mut popped, item);
                });
                take_drops(c, dropped);
            };
            // Two passes while the producer runs, one after it is joined.
            consume(&mut c, &mut dropped);
            consume(&mut c, &mut dropped);
            let (pushed, failed) = producer.join().unwrap();
            consume(&mut c, &mut dropped);

            assert_eq!(
                dropped, failed,
                "drop counts (and their error flags) are exact"
            );
            for key in 0..KEYS {
                for i in 0..2 {
                    assert_eq!(
                        popped[key][i] + dropped[key][i],
                        pushed[key][i],
                        "key {key}: every value is popped or counted as dropped"
                    );
                }
            }
        });
    }
}

/// A drop scan never reports a drop's error flag before the drop: the aggregator adds each
/// scan to the open window, so a split scan would put the error in one window and the drop in
/// a later one.
///
/// Both counters of a key live in one word (drops in the high half, errors in the low half),
/// written by one Relaxed store per drop, so a scan reads them together. With two separate
/// counters loom found, at capacity 1, a scan that acquired total 1 reporting key 0 as
/// `(dropped 0, errors 1)`.
#[test]
fn drop_errors_never_run_ahead_of_drops() {
    const KEYS: usize = 2;
    for cap in CAPACITIES {
        loom::model(move || {
            let n = cap + 2;
            let (mut p, mut c) = ring::channel::<Item>(cap, KEYS);
            let producer = thread::spawn(move || {
                for seq in 0..n {
                    if let Err(back) = p.push(Item::nth(seq, KEYS)) {
                        p.count_drop(back.key, back.error);
                    }
                }
            });
            let mut dropped = vec![[0u64; 2]; KEYS];
            take_drops(&mut c, &mut dropped);
            take_drops(&mut c, &mut dropped);
            producer.join().unwrap();
            take_drops(&mut c, &mut dropped);
            assert_eq!(dropped.iter().map(|d| d[0]).sum::<u64>(), 2);
        });
    }
}

/// Producer abandoned with events queued: it pushes (dropping what does not fit) and exits.
/// A consumer that reads `is_abandoned` before a drain and a drop scan, and stops after the
/// first pass that started with it set, has seen every value and every drop.
#[test]
fn abandoned_producer_leaves_nothing_behind() {
    for cap in CAPACITIES {
        loom::model(move || {
            let n = cap + 2;
            let (mut p, mut c) = ring::channel::<Item>(cap, 1);
            let producer = thread::spawn(move || {
                let mut accepted = Vec::new();
                for seq in 0..n {
                    let item = Item::nth(seq, 1);
                    match p.push(item) {
                        Ok(()) => accepted.push(item),
                        Err(back) => p.count_drop(back.key, back.error),
                    }
                }
                accepted
                // `p` is dropped here: the ring is marked abandoned.
            });

            let mut popped = Vec::new();
            let mut dropped = vec![[0u64; 2]; 1];
            loop {
                let gone = c.is_abandoned();
                c.drain(usize::MAX, |item| popped.push(item));
                take_drops(&mut c, &mut dropped);
                if gone {
                    break;
                }
                thread::yield_now();
            }
            // The checks below compare what the loop saw, before this join, with what the
            // producer did.
            let accepted = producer.join().unwrap();
            assert_eq!(
                popped, accepted,
                "every accepted value was popped, in order"
            );
            let mut failed = vec![[0u64; 2]; 1];
            for seq in 0..n {
                let item = Item::nth(seq, 1);
                if !accepted.contains(&item) {
                    tally(&mut failed, item);
                }
            }
            assert_eq!(dropped, failed, "every rejected value was counted");
            assert_eq!(c.pop(), None);
        });
    }
}

/// `(capacity, high-water mark)` of the doorbell models; the consumer's low-water mark is 1
/// (it sleeps only when its ring is empty).
const BELL_CASES: [(usize, usize); 3] = [(2, 1), (4, 1), (4, 2)];

/// The doorbell hand-off: a consumer that finds its ring below the low-water mark announces
/// that it sleeps, re-checks the ring and parks; a producer pushes `capacity + 2` values,
/// retrying while the ring is full: past the high-water mark, around the ring, and far enough
/// to fill it again after a consumer that drained it went back to sleep. A lost wake-up leaves
/// the consumer parked and the producer retrying on a full ring forever, which loom reports as
/// a model exceeding its branch limit; otherwise every value arrives, in order. The park is
/// modelled as "park until woken or the flag is cleared": the engine's timed park only adds
/// wake-ups.
///
/// Each of these breaks it: no fence in `Doorbell::ring` or in `Doorbell::prepare_sleep`, a
/// producer that rings only when it finds exactly `high` values waiting.
///
/// The producer's last act, once every value is in, is the one that ends a run in the engine
/// (`shutdown`): it sets `done` and unparks the consumer whatever it is doing, so a consumer
/// left asleep over a ring below the high-water mark (which the engine's timed park covers)
/// ends too. The consumer does not join the producer: loom cannot unpark a thread blocked in
/// `join` (it asserts), and runs every thread to its end anyway.
#[test]
fn a_producer_past_the_high_water_mark_wakes_a_sleeping_consumer() {
    for (cap, high) in BELL_CASES {
        loom::model(move || {
            let low = 1;
            let n = cap + 2;
            let bell = Arc::new(Doorbell::new(thread::current()));
            let (mut p, mut c) = ring::channel::<usize>(cap, 1);
            p.set_doorbell(Arc::clone(&bell), high);
            let done = Arc::new(AtomicBool::new(false));
            {
                let done = Arc::clone(&done);
                let consumer = thread::current();
                thread::spawn(move || {
                    push_all(&mut p, 0..n);
                    done.store(true, Ordering::Release);
                    consumer.unpark();
                });
            }
            let mut got = Vec::new();
            loop {
                c.drain(usize::MAX, |v| got.push(v));
                if got.len() == n {
                    break;
                }
                if c.len() >= low {
                    continue; // behind: drain again at once
                }
                bell.prepare_sleep();
                if c.len() >= low || done.load(Ordering::Acquire) {
                    bell.awake();
                    continue;
                }
                while bell.is_sleeping() && !done.load(Ordering::Acquire) {
                    thread::park();
                }
                bell.awake();
            }
            assert_eq!(got, (0..n).collect::<Vec<_>>(), "all values, in order");
        });
    }
}

/// Two rings, one doorbell: both producers push past the high-water mark while the consumer
/// goes to sleep over both rings; the swap in `ring` lets one of them unpark it, and neither
/// ring is left behind. Capacity 2, high-water mark 1 (three threads); no join, as above.
#[test]
fn two_producers_ring_one_doorbell() {
    loom::model(|| {
        let (cap, high, n) = (2, 1, 2);
        let bell = Arc::new(Doorbell::new(thread::current()));
        let done = Arc::new(AtomicUsize::new(0));
        let mut consumers = Vec::new();
        for _ in 0..2 {
            let (mut p, c) = ring::channel::<usize>(cap, 1);
            p.set_doorbell(Arc::clone(&bell), high);
            consumers.push(c);
            let done = Arc::clone(&done);
            let consumer = thread::current();
            thread::spawn(move || {
                push_all(&mut p, 0..n);
                // AcqRel: the last producer to finish sees the other's pushes too, and the
                // consumer that sees 2 sees both.
                if done.fetch_add(1, Ordering::AcqRel) == 1 {
                    consumer.unpark();
                }
            });
        }
        let mut got = [Vec::new(), Vec::new()];
        let finished = |done: &AtomicUsize| done.load(Ordering::Acquire) == 2;
        loop {
            for (c, got) in consumers.iter_mut().zip(&mut got) {
                c.drain(usize::MAX, |v| got.push(v));
            }
            if got.iter().all(|g| g.len() == n) {
                break;
            }
            if consumers.iter().any(|c| c.len() > 0) {
                continue;
            }
            bell.prepare_sleep();
            if consumers.iter().any(|c| c.len() > 0) || finished(&done) {
                bell.awake();
                continue;
            }
            while bell.is_sleeping() && !finished(&done) {
                thread::park();
            }
            bell.awake();
        }
        for g in got {
            assert_eq!(g, (0..n).collect::<Vec<_>>(), "all values, in order");
        }
    });
}

/// Registration concurrent with draining: a thread registers a ring and pushes into it while
/// the main thread adopts new rings and drains them until it has every value.
#[test]
fn registration_concurrent_with_draining() {
    for cap in CAPACITIES {
        loom::model(move || {
            let n = cap + 1;
            let registry = Arc::new(Registry::<usize>::new());
            let producer = {
                let registry = Arc::clone(&registry);
                thread::spawn(move || {
                    let mut p = registry.register(cap, 1);
                    push_all(&mut p, 0..n);
                })
            };

            let mut consumers = Vec::new();
            let mut got = Vec::new();
            // Bounded: every iteration that finds nothing yields to the producer, which
            // then makes progress; far fewer rounds than this always suffice.
            for _ in 0..8 * (n + 2) {
                registry.adopt(&mut consumers);
                assert!(consumers.len() <= 1, "one ring registered, adopted once");
                for c in &mut consumers {
                    c.drain(usize::MAX, |v| got.push(v));
                }
                if got.len() == n {
                    break;
                }
                thread::yield_now();
            }
            assert_eq!(got, (0..n).collect::<Vec<_>>(), "all values, in order");
            producer.join().unwrap();
            registry.adopt(&mut consumers);
            assert_eq!(consumers.len(), 1);
            let c = &mut consumers[0];
            assert!(c.is_abandoned());
            assert_eq!(c.pop(), None);
        });
    }
}

/// Two threads register at once while the main thread adopts and drains: both rings are
/// adopted exactly once and every value arrives. Capacity 1 only (three threads).
#[test]
fn concurrent_registrations_are_each_adopted_once() {
    loom::model(|| {
        let registry = Arc::new(Registry::<usize>::new());
        let producers: Vec<_> = (0..2)
            .map(|t| {
                let registry = Arc::clone(&registry);
                thread::spawn(move || {
                    let mut p = registry.register(1, 1);
                    p.push(t).unwrap();
                })
            })
            .collect();
        let mut consumers = Vec::new();
        let mut got = Vec::new();
        registry.adopt(&mut consumers);
        for c in &mut consumers {
            c.drain(usize::MAX, |v| got.push(v));
        }
        for p in producers {
            p.join().unwrap();
        }
        registry.adopt(&mut consumers);
        assert_eq!(consumers.len(), 2, "each ring adopted exactly once");
        for c in &mut consumers {
            c.drain(usize::MAX, |v| got.push(v));
            assert!(c.is_abandoned());
        }
        got.sort_unstable();
        assert_eq!(got, [0, 1]);
    });
}

/// A configuration change published while a thread reads the rules, as the hot path does: each
/// operation's word is read whole, the old one or the new one (never a mix, never another
/// operation's), and once the writer is joined, the new one; a mode published again is a new
/// word, so a reader that compares words sees the change.
#[test]
fn rule_words_are_read_whole() {
    use ringmeter::rule_table::{decode, encode, Mode, Table};
    loom::model(|| {
        let table = Arc::new(Table::new(2));
        let writer = {
            let table = Arc::clone(&table);
            thread::spawn(move || {
                table.publish([(0, encode(Mode::Every(3))), (1, encode(Mode::CountOnly))]);
            })
        };
        let new = [Mode::Every(3), Mode::CountOnly];
        let mut first = [0; 2];
        for (op, mode) in new.into_iter().enumerate() {
            first[op] = table.word(op).unwrap();
            let seen = decode(first[op]);
            assert!(seen == Mode::All || seen == mode, "op {op}: {seen:?}");
        }
        writer.join().unwrap();
        let every3 = table.word(0).unwrap();
        assert_eq!(decode(every3), Mode::Every(3));
        assert_eq!(decode(table.word(1).unwrap()), Mode::CountOnly);
        table.publish([(0, encode(Mode::Every(3)))]);
        assert_ne!(table.word(0).unwrap(), every3);
    });
}

/// A producer counts unsampled calls in its tallies (load + store, no read-modify-write) and
/// exits; the consumer, reading while it runs and once more after seeing it abandoned, sums
/// to exactly the calls counted.
#[test]
fn tallies_are_exact_across_producer_exit() {
    use loom::sync::atomic::Ordering;
    for capacity in [1, 2] {
        loom::model(move || {
            let (producer, mut consumer) = ring::channel::<Item>(capacity, 2);
            let t = thread::spawn(move || {
                let producer = producer;
                for key in [0usize, 1, 0] {
                    let tally = producer.tally(key).unwrap();
                    tally.store(tally.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                }
                drop(producer);
            });
            let mut sums = [0u64; 2];
            consumer.take_tallies(&[0, 1], |k, n| sums[k] += n);
            while !consumer.is_abandoned() {
                thread::yield_now();
            }
            consumer.take_tallies(&[0, 1], |k, n| sums[k] += n);
            assert_eq!(sums, [2, 1]);
            t.join().unwrap();
        });
    }
}
