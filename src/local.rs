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

/// Per-thread state.
struct Local {
    /// Address of the engine of `hot`, 0 for none.
    hot_engine: Cell<usize>,
    /// The entry used last; null or an element of `entries`.
    hot: Cell<*mut Entry>,
    /// Entries owned through `Box::into_raw`; freed in `Drop`. Only this thread touches them.
    entries: RefCell<Vec<*mut Entry>>,
}

impl Local {
    const fn new() -> Self {
        Self {
            hot_engine: Cell::new(0),
            hot: Cell::new(ptr::null_mut()),
            entries: RefCell::new(Vec::new()),
        }
    }

    /// The entry for `key`, registering a ring on first use. Null if the engine is gone.
    #[cold]
    fn find_or_register(&self, key: &'static EngineKey) -> *mut Entry {
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
                // Rings of engines that no longer exist only cost memory: free them now.
                entries.retain(|&e| {
                    // SAFETY: as above; the pointer is valid and unaliased.
                    let orphaned = unsafe { &*e }.producer.is_orphaned();
                    if orphaned {
                        // SAFETY: `e` came from `Box::into_raw`, is removed from `entries` by this
                        // `retain` and may be the cached `hot`, which is reset below.
                        drop(unsafe { Box::from_raw(e) });
                    }
                    !orphaned
                });
                self.hot_engine.set(0);
                self.hot.set(ptr::null_mut());
                let producer = shared.register_ring();
                let e = Box::into_raw(Box::new(Entry {
                    engine: addr,
                    producer,
                }));
                entries.push(e);
                e
            }
        };
        self.hot_engine.set(addr);
        self.hot.set(entry);
        entry
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.hot.set(ptr::null_mut());
        for e in self.entries.get_mut().drain(..) {
            // SAFETY: `e` came from `Box::into_raw` and is dropped exactly once, here.
            drop(unsafe { Box::from_raw(e) });
        }
    }
}

thread_local! {
    static LOCAL: Local = const { Local::new() };
}

/// Pushes `ev` into the calling thread's ring for the engine of `key`.
///
/// A full ring counts the event as dropped in the ring. Where no ring can be had (the thread's
/// locals are being destroyed), the event is counted as dropped in the engine directly.
#[inline]
pub(crate) fn push(key: &'static EngineKey, ev: Event) {
    let addr = key.addr();
    let pushed = LOCAL
        .try_with(|l| {
            let mut entry = l.hot.get();
            if l.hot_engine.get() != addr {
                entry = l.find_or_register(key);
            }
            if entry.is_null() {
                return true; // the engine is gone: nobody is left to count this event
            }
            // SAFETY: `entry` is a live element of this thread's `entries` (freed only when the
            // thread-local is destroyed, and `try_with` fails from then on), and no other
            // reference to it exists while this closure runs.
            let entry = unsafe { &mut *entry };
            if let Err(ev) = entry.producer.push(ev) {
                entry.producer.count_drop(ev.op as usize, ev.is_error());
            }
            true
        })
        .unwrap_or(false);
    if !pushed {
        key.drop_without_ring(&ev);
    }
}
