//! A doorbell: how producers wake a consumer thread that went to sleep, without a lost wake-up.
//!
//! The consumer polls its queues and parks when they are all near empty; a producer whose
//! queue fills past a high-water mark rings. The hand-off is Dekker's mutual exclusion
//! (E. W. Dijkstra, "Cooperating sequential processes", 1965) reduced to its store-fence-load
//! core, the form `std::thread::park` users such as crossbeam's `Parker` and tokio's
//! `Notify` rely on:
//!
//! - the consumer announces that it is going to sleep (`sleeping = true`), issues a `SeqCst`
//!   fence, then re-checks every queue ([`prepare_sleep`](Doorbell::prepare_sleep), then the
//!   caller's check); it parks only if they are all still near empty;
//! - a producer publishes its queue's tail (a `Release` store), issues a `SeqCst` fence, then
//!   reads `sleeping` and unparks the consumer if it is set ([`ring`](Doorbell::ring)).
//!
//! The two fences are ordered one way or the other: either the consumer's re-check sees the
//! producer's tail (and does not sleep), or the producer sees `sleeping` (and unparks). An
//! `unpark` that comes before the `park` makes the `park` return at once, which covers the
//! consumer that re-checked and is about to park.
//!
//! The doorbell knows nothing of what is queued or who owns it: it is a flag and the thread
//! to unpark.

use crossbeam_utils::CachePadded;

use crate::loom::{fence, AtomicBool, Ordering, Thread};

/// A flag a consumer raises before it parks, and the thread producers unpark when they find
/// it raised.
#[derive(Debug)]
pub struct Doorbell {
    /// Set by the consumer from just before its last check until it wakes; cleared by the
    /// consumer when it wakes, or by the producer that unparks it. Written only on those
    /// occasions, so producers reading it (rarely) share the line cheaply.
    sleeping: CachePadded<AtomicBool>,
    /// The consumer's thread.
    thread: Thread,
}

impl Doorbell {
    /// A doorbell that wakes `thread`, which is the only one that may call
    /// [`prepare_sleep`](Self::prepare_sleep) and [`awake`](Self::awake).
    pub fn new(thread: Thread) -> Self {
        Self {
            sleeping: CachePadded::new(AtomicBool::new(false)),
            thread,
        }
    }

    /// Producer side: wakes the consumer if it is asleep or about to be. Call it after the
    /// `Release` store that published what the consumer must see.
    pub fn ring(&self) {
        // SeqCst: orders the caller's earlier store of its tail before the load of `sleeping`
        // below, against the consumer's store of `sleeping` and its re-check of the tails
        // (`prepare_sleep`): one of the two sides sees the other's store.
        fence(Ordering::SeqCst);
        // Relaxed: the fence above orders it; the unpark carries the data (an unpark
        // synchronises with the park it ends). The load first, so that a producer that finds
        // the consumer awake writes nothing; the swap makes one producer of several unpark it.
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::Relaxed) {
            self.thread.unpark();
        }
    }

    /// Consumer side: announces that the consumer is going to sleep. The caller must then
    /// check every queue once more (loading each tail) and either park or call
    /// [`awake`](Self::awake).
    pub fn prepare_sleep(&self) {
        // Relaxed: ordered before the caller's re-check by the fence below.
        self.sleeping.store(true, Ordering::Relaxed);
        // SeqCst: the store above is ordered before the caller's loads of the tails, against
        // the producers' tail stores and loads of `sleeping` (`ring`).
        fence(Ordering::SeqCst);
    }

    /// Consumer side: the consumer is awake (it woke, or decided not to sleep).
    pub fn awake(&self) {
        // Relaxed: a producer that still sees `true` only unparks a thread that is awake,
        // which makes its next park return at once (one extra pass).
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Whether the consumer is announced as sleeping and no producer has woken it since.
    #[cfg_attr(not(any(test, loom)), allow(dead_code))]
    pub fn is_sleeping(&self) -> bool {
        // Relaxed: a hint for the consumer's own wait loop; the unpark synchronises.
        self.sleeping.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn ring_wakes_only_a_sleeping_consumer_and_clears_the_flag() {
        let bell = Doorbell::new(thread::current());
        bell.ring(); // awake: nothing happens
        assert!(!bell.is_sleeping());
        bell.prepare_sleep();
        assert!(bell.is_sleeping());
        bell.ring();
        assert!(
            !bell.is_sleeping(),
            "the producer that unparks clears the flag"
        );
        // The unpark came before the park: the park returns at once.
        let t0 = Instant::now();
        thread::park_timeout(Duration::from_secs(10));
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_parked_consumer_is_woken() {
        let (tx, rx) = std::sync::mpsc::channel();
        let consumer = thread::spawn(move || {
            let bell = Arc::new(Doorbell::new(thread::current()));
            bell.prepare_sleep();
            tx.send(Arc::clone(&bell)).unwrap();
            while bell.is_sleeping() {
                thread::park();
            }
        });
        let bell = rx.recv().unwrap();
        bell.ring();
        consumer.join().unwrap();
    }
}
