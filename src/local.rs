//! The calling thread's rings: one producer per engine this thread has recorded into.
//!
//! The hot path looks up its ring through a one-entry cache (the engine used last), so a
//! thread that records into one engine pays a thread-local read and a compare. The first event
//! of a thread for an engine registers a new ring (the only allocation, and the only lock, a
//! thread ever takes for recording). When the thread exits, its producers are dropped, which
//! marks their rings abandoned; the aggregator drains what is left and frees them.

use core::cell::{Cell, RefCell};
use core::ptr;

use crate::engine::EngineKey;
use crate::event::Event;
use crate::ring::Producer;

/// One registered ring.
struct Entry {
    /// Address of the engine's key; keys are never freed, so addresses are never reused.
    engine: usize,
    producer: Producer<Event>,
}

/// The one-entry cache the hot path reads: the engine used last and its entry.
///
/// It lives in its own thread-local with a `const` initialiser and no destructor, so reading
/// it is a plain thread-local load with no "initialised yet?" or "destroyed?" check. It is
/// valid whenever `engine != 0`: every place that frees an entry (orphan pruning, thread exit)
/// resets it first.
struct Hot {
    /// Address of the engine of `entry`, 0 for none.
    engine: Cell<usize>,
    /// The entry used last; an element of `Local::entries` whenever `engine != 0`.
    entry: Cell<*mut Entry>,
}

impl Hot {
    fn reset(&self) {
        self.engine.set(0);
        self.entry.set(ptr::null_mut());
    }
}

/// Per-thread ownership of the rings; touched only on the cold path.
struct Local {
    /// Entries owned through `Box::into_raw`; freed in `Drop`. Only this thread touches them.
    entries: RefCell<Vec<*mut Entry>>,
}

impl Local {
    const fn new() -> Self {
        Self {
            entries: RefCell::new(Vec::new()),
        }
    }

    /// The entry for `key`, registering a ring on first use, and makes it the cached one.
    /// Null if the engine is gone.
    #[cold]
    fn find_or_register(&self, hot: &Hot, key: &'static EngineKey) -> *mut Entry {
        let addr = key.addr();
        let mut entries = self.entries.borrow_mut();
        let found = entries.iter().copied().find(|&e| {
            // SAFETY: every pointer in `entries` came from `Box::into_raw` and is freed only in
            // `Drop`, so it is valid; only this thread reads it and no `&mut` to it is live here.
            let entry = unsafe { &*e };
            entry.engine == addr
        });
        let entry = match found {
            Some(e) => e,
            None => {
                let Some(shared) = key.shared() else {
                    return ptr::null_mut();
                };
                // The cached entry may be one of those freed below.
                hot.reset();
                // Rings of engines that no longer exist only cost memory: free them now.
                entries.retain(|&e| {
                    // SAFETY: as above; the pointer is valid and unaliased.
                    let orphaned = unsafe { &*e }.producer.is_orphaned();
                    if orphaned {
                        // SAFETY: `e` came from `Box::into_raw` and is removed from `entries` by
                        // this `retain`; the cache no longer points at it.
                        drop(unsafe { Box::from_raw(e) });
                    }
                    !orphaned
                });
                let producer = shared.register_ring();
                let e = Box::into_raw(Box::new(Entry {
                    engine: addr,
                    producer,
                }));
                entries.push(e);
                e
            }
        };
        hot.engine.set(addr);
        hot.entry.set(entry);
        entry
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // From here on the hot path misses the cache and finds `LOCAL` destroyed.
        HOT.with(Hot::reset);
        for e in self.entries.get_mut().drain(..) {
            // SAFETY: `e` came from `Box::into_raw` and is dropped exactly once, here.
            drop(unsafe { Box::from_raw(e) });
        }
    }
}

thread_local! {
    static HOT: Hot = const {
        Hot {
            engine: Cell::new(0),
            entry: Cell::new(ptr::null_mut()),
        }
    };
    static LOCAL: Local = const { Local::new() };
}

/// Pushes `ev` into the calling thread's ring for the engine of `key`.
///
/// A full ring counts the event as dropped in the ring. Where no ring can be had (the thread's
/// locals are being destroyed), the event is counted as dropped in the engine directly.
#[inline(always)]
pub(crate) fn push(key: &'static EngineKey, ev: Event) {
    let addr = key.addr();
    HOT.with(|hot| {
        if hot.engine.get() != addr {
            return push_cold(hot, key, ev);
        }
        // SAFETY: `hot.engine != 0`, so `hot.entry` is a live element of this thread's
        // `entries` (see `Hot`), and no other reference to it exists while this closure runs.
        let entry = unsafe { &mut *hot.entry.get() };
        if let Err(ev) = entry.producer.push(ev) {
            entry.producer.count_drop(ev.op as usize, ev.is_error());
        }
    });
}

/// `push` for a thread whose cached engine is another one (or none).
#[cold]
#[inline(never)]
fn push_cold(hot: &Hot, key: &'static EngineKey, ev: Event) {
    let Ok(entry) = LOCAL.try_with(|l| l.find_or_register(hot, key)) else {
        // The thread's locals are being destroyed: count the event in the engine.
        key.drop_without_ring(&ev);
        return;
    };
    if entry.is_null() {
        return; // the engine is gone: nobody is left to count this event
    }
    // SAFETY: `find_or_register` returned a live element of this thread's `entries`, and no
    // other reference to it exists here.
    let entry = unsafe { &mut *entry };
    if let Err(ev) = entry.producer.push(ev) {
        entry.producer.count_drop(ev.op as usize, ev.is_error());
    }
}
