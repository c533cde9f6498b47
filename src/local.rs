//! The calling thread's rings: one producer per engine this thread has recorded into.
//!
//! The hot path looks up its ring through a one-entry cache (the engine used last), so a
//! thread that records into one engine pays a thread-local read and a compare. The first event
//! of a thread for an engine registers a new ring (the only allocation, and the only lock, a
//! thread ever takes for recording). When the thread exits, its producers are dropped, which
//! marks their rings abandoned; the aggregator drains what is left and frees them.

use core::cell::{Cell, RefCell};
use core::ptr;

use crate::config::table::{self, Mode, Table, Word};
use crate::event::Event;
use crate::hub::EngineKey;
use crate::loom::{Arc, AtomicU64, Ordering};
use crate::ring::Producer;

/// One registered ring, with this thread's sampling state for its engine.
struct Entry {
    /// Address of the engine's key; keys are never freed, so addresses are never reused.
    engine: usize,
    producer: Producer<Event>,
    /// The engine's per-operation sampling words.
    rules: Arc<Table>,
    /// Generation of `rules` that `slots` reflect.
    generation: u64,
    /// Whether every slot times every call (then the hot path skips the slots).
    all: bool,
    /// Per operation: this thread's sampling state. Same length as the ring's tallies.
    slots: Box<[Slot]>,
    /// The ring's tallies (`producer.tallies()`), `slots.len()` of them; valid as long as
    /// `producer` is, which this entry owns.
    tallies: *const AtomicU64,
    /// xorshift64* state for probability sampling; never 0.
    rng: u64,
}

/// One operation's sampling state on one thread.
///
/// The ring's tally of the operation counts its unsampled calls on this thread (`u`); a call
/// is unsampled while `u < next_at`, and the sampled call that ends a gap stands for
/// `u - last + 1` calls.
#[derive(Clone, Copy)]
struct Slot {
    /// The operation's sampling word; [`table::ALL`] times every call.
    word: Word,
    /// Tally value at which the next call is sampled.
    next_at: u64,
    /// Tally value at the last sampled call (or at the last rule change).
    last: u64,
}

impl Entry {
    /// Decides whether the call about to start is timed: returns the flags for its event
    /// (its weight when sampled, [`Event::UNSAMPLED`] when only counted).
    #[inline(always)]
    fn sample(&mut self, op: u32) -> u32 {
        let Some(slot) = self.slots.get(op as usize) else {
            return 0;
        };
        if slot.word == table::ALL {
            return 0;
        }
        let tally = self.tally(op as usize);
        let u = tally.load(Ordering::Relaxed);
        if u < slot.next_at {
            // Only this thread writes the tally: load + store is an exact increment.
            tally.store(u + 1, Ordering::Relaxed);
            return Event::UNSAMPLED;
        }
        self.arm(op as usize, u)
    }

    /// The ring's tally of `op`, which must be below `slots.len()`.
    #[inline(always)]
    fn tally(&self, op: usize) -> &AtomicU64 {
        debug_assert!(op < self.slots.len());
        // SAFETY: `tallies` points to `slots.len()` counters owned by the ring that `producer`
        // keeps alive, and the callers checked `op < slots.len()`: the offset stays inside them.
        let tally = unsafe { self.tallies.add(op) };
        // SAFETY: `tally` points to a live counter (see above), which nobody ever borrows
        // mutably: it is an atomic, read and written only through shared references.
        unsafe { &*tally }
    }

    /// The end of a gap: samples this call and draws the next gap, or counts the call.
    #[cold]
    #[inline(never)]
    fn arm(&mut self, op: usize, u: u64) -> u32 {
        let max_gap = u64::from(Event::MAX_WEIGHT) - 1;
        let slot = &mut self.slots[op];
        let gap = match table::decode(slot.word) {
            Mode::All => return 0,
            Mode::Every(n) => u64::from(n.max(1)) - 1,
            Mode::Probability(threshold) => {
                // Bernoulli sampling as geometric gaps: P(gap = k) = (1 - p)^k p.
                let p = f64::from(threshold) / 4_294_967_296.0;
                let x = self.rng;
                let x = x ^ (x >> 12);
                let x = x ^ (x << 25);
                let x = x ^ (x >> 27);
                self.rng = x;
                let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
                let uniform = (r as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
                let g = (uniform.ln() / (1.0 - p).ln()).floor();
                if g.is_finite() && g >= 0.0 {
                    (g as u64).min(max_gap)
                } else {
                    0
                }
            }
            Mode::CountOnly | Mode::Disabled => {
                slot.next_at = u64::MAX;
                if let Some(t) = self.producer.tally(op) {
                    t.store(u + 1, Ordering::Relaxed);
                }
                return Event::UNSAMPLED;
            }
        };
        let weight = (u - slot.last + 1).min(u64::from(Event::MAX_WEIGHT)) as u32;
        slot.last = u;
        slot.next_at = u.saturating_add(gap.min(max_gap));
        weight << Event::WEIGHT_SHIFT
    }

    /// Copies the engine's current sampling words into the slots.
    #[cold]
    fn refresh(&mut self, key: &'static EngineKey) {
        let (slots, producer) = (&mut self.slots, &self.producer);
        let mut all = true;
        self.generation = self.rules.read(key.generation_atomic(), |op, word| {
            all &= word == table::ALL;
            if let Some(slot) = slots.get_mut(op) {
                if slot.word != word {
                    let u = producer.tally(op).map_or(0, |t| t.load(Ordering::Relaxed));
                    // The next call decides afresh; gaps under the old rule are not carried.
                    *slot = Slot {
                        word,
                        next_at: u,
                        last: u,
                    };
                }
            }
        });
        self.all = all;
    }

    /// What `Hot::all_generation` is for this entry.
    fn all_generation(&self) -> u64 {
        if self.all {
            self.generation
        } else {
            u64::MAX
        }
    }
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
    /// The entry's `generation`.
    generation: Cell<u64>,
    /// The entry's `generation` if all its operations time every call, else `u64::MAX`
    /// (generations never reach it): equal to the engine's generation exactly when a call
    /// can skip the sampling slots.
    all_generation: Cell<u64>,
}

impl Hot {
    fn reset(&self) {
        self.engine.set(0);
        self.entry.set(ptr::null_mut());
        self.generation.set(u64::MAX);
        self.all_generation.set(u64::MAX);
    }
}

/// This thread's number, given out on first use (0 while its thread-locals are destroyed).
pub(crate) fn thread_number() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    thread_local! {
        static NUMBER: Cell<u64> = const { Cell::new(0) };
    }
    NUMBER
        .try_with(|n| {
            if n.get() == 0 {
                n.set(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            }
            n.get()
        })
        .unwrap_or(0)
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
            // SAFETY: every pointer in `entries` came from `Box::into_raw` and is freed only
            // after its removal from `entries`, so `e` is valid; reading a field makes no
            // reference, and no `&mut` to the entry is live (callers hold none).
            let engine = unsafe { (*e).engine };
            engine == addr
        });
        let entry = match found {
            Some(e) => e,
            None => {
                let Some(hub) = key.hub() else {
                    return ptr::null_mut();
                };
                // The cached entry may be one of those freed below.
                hot.reset();
                // Rings of engines that no longer exist only cost memory: free them now.
                entries.retain(|&e| {
                    // SAFETY: as above; the shared reference ends with this statement.
                    let orphaned = unsafe { &(*e).producer }.is_orphaned();
                    if orphaned {
                        // SAFETY: `e` came from `Box::into_raw` and is removed from `entries` by
                        // this `retain`; the cache no longer points at it and nothing else does.
                        drop(unsafe { Box::from_raw(e) });
                    }
                    !orphaned
                });
                let thread = thread_number();
                let producer = hub.register_ring(thread);
                let slots = vec![
                    Slot {
                        word: table::ALL,
                        next_at: 0,
                        last: 0,
                    };
                    producer.tallies().len()
                ]
                .into_boxed_slice();
                let tallies = producer.tallies().as_ptr();
                let mut entry = Entry {
                    engine: addr,
                    tallies,
                    producer,
                    rules: hub.rule_table(),
                    generation: u64::MAX,
                    all: true,
                    slots,
                    rng: (thread.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ addr as u64) | 1,
                };
                entry.refresh(key);
                let e = Box::into_raw(Box::new(entry));
                entries.push(e);
                e
            }
        };
        let (generation, all_generation) = {
            // SAFETY: `entry` is a live element of `entries` (found or just pushed); the shared
            // reference ends with this block, and no `&mut` to the entry is live.
            let e = unsafe { &*entry };
            (e.generation, e.all_generation())
        };
        hot.engine.set(addr);
        hot.entry.set(entry);
        hot.generation.set(generation);
        hot.all_generation.set(all_generation);
        entry
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // From here on the hot path misses the cache and finds `LOCAL` destroyed (the runtime
        // marks it so before this runs), so a call made while the entries are freed (by another
        // thread-local's destructor, or an allocator that records) reaches none of them.
        HOT.with(Hot::reset);
        for e in self.entries.get_mut().drain(..) {
            // SAFETY: `e` came from `Box::into_raw` and is dropped exactly once, here. No
            // reference to it is live: this runs at thread exit, not inside a call of this
            // module, and the cache no longer points at it.
            drop(unsafe { Box::from_raw(e) });
        }
    }
}

thread_local! {
    static HOT: Hot = const {
        Hot {
            engine: Cell::new(0),
            entry: Cell::new(ptr::null_mut()),
            generation: Cell::new(u64::MAX),
            all_generation: Cell::new(u64::MAX),
        }
    };
    static LOCAL: Local = const { Local::new() };
}

/// This thread's hot-path cache.
///
/// A plain address computation: `HOT` has a `const` initialiser and no destructor, so taking
/// its address involves no lazy-initialisation or liveness check, and keeping the closure
/// given to `LocalKey::with` this small keeps the callers' fast paths inlined (a larger closure
/// body was left out of line, a call per event).
#[inline(always)]
fn this_hot() -> &'static Hot {
    let hot: *const Hot = HOT.with(|h| h as *const Hot);
    // SAFETY: `HOT` lives until this thread exits and is never destroyed before (it has no
    // destructor); `Hot` is not `Sync`, so the reference cannot leave this thread.
    unsafe { &*hot }
}

/// Pushes `ev` into the calling thread's ring for the engine of `key`.
///
/// A full ring counts the event as dropped in the ring. Where no ring can be had (the thread's
/// locals are being destroyed), the event is counted as dropped in the engine directly.
#[inline(always)]
pub(crate) fn push(key: &'static EngineKey, ev: Event) {
    let addr = key.addr();
    let hot = this_hot();
    if hot.engine.get() != addr {
        return push_cold(hot, key, ev);
    }
    // SAFETY: `hot.engine != 0`, so `hot.entry` is a live element of this thread's
    // `entries` (see `Hot`), and no other reference to it exists while this call runs.
    let entry = unsafe { &mut *hot.entry.get() };
    if let Err(ev) = entry.producer.push(ev) {
        count_drop(&mut entry.producer, &ev);
    }
}

/// Counts an event the ring had no room for.
#[cold]
#[inline(never)]
fn count_drop(producer: &mut Producer<Event>, ev: &Event) {
    if ev.flags & Event::UNSAMPLED != 0 {
        // The call is already counted as unsampled; only its failure is lost.
        producer.count_dropped_error(ev.op as usize);
    } else {
        producer.count_drop(ev.op as usize, ev.is_error());
    }
}

/// Decides whether a call of `op` starting now is timed: returns the flags of its event (its
/// weight when sampled), or [`Event::UNSAMPLED`] when the call has been counted and must not
/// be timed.
#[inline(always)]
pub(crate) fn sample(key: &'static EngineKey, op: u32) -> u32 {
    let addr = key.addr();
    let hot = this_hot();
    if hot.engine.get() != addr {
        return sample_cold(hot, key, op);
    }
    let generation = key.generation();
    if hot.all_generation.get() == generation {
        return 0; // every operation of this engine times every call
    }
    if hot.generation.get() != generation {
        return sample_cold(hot, key, op);
    }
    // SAFETY: `hot.engine != 0`, so `hot.entry` is a live element of this thread's
    // `entries` (see `Hot`), and no other reference to it exists while this call runs.
    let entry = unsafe { &mut *hot.entry.get() };
    entry.sample(op)
}

/// `sample` for a thread whose cached engine is another one, or whose rules are stale.
#[cold]
#[inline(never)]
fn sample_cold(hot: &Hot, key: &'static EngineKey, op: u32) -> u32 {
    let Ok(entry) = LOCAL.try_with(|l| l.find_or_register(hot, key)) else {
        return 0; // no ring can be had: the event will be counted as dropped
    };
    if entry.is_null() {
        return 0;
    }
    // SAFETY: `find_or_register` returned a live element of this thread's `entries`, and no
    // other reference to it exists here.
    let entry = unsafe { &mut *entry };
    if entry.generation != key.generation() {
        entry.refresh(key);
        hot.generation.set(entry.generation);
        hot.all_generation.set(entry.all_generation());
    }
    entry.sample(op)
}

/// Records a call of `ns` nanoseconds measured elsewhere (`flags`: `ERROR` and a kind), unless
/// the operation's sampling skips it, in which case it is only counted.
///
/// Every call out of the fast paths is a tail call, so the fast paths save no registers.
#[inline(always)]
pub(crate) fn record(key: &'static EngineKey, op: u32, ns: u64, flags: u32) {
    let addr = key.addr();
    let hot = this_hot();
    if hot.engine.get() != addr {
        return record_cold(hot, key, op, ns, flags);
    }
    let ev = Event {
        op,
        flags: flags | Event::NANOS,
        start: ns,
        end: 0,
    };
    let generation = key.generation();
    if hot.all_generation.get() == generation {
        // SAFETY: `hot.engine != 0`, so `hot.entry` is a live element of this thread's
        // `entries` (see `Hot`), and no other reference to it exists while it is used.
        let entry = unsafe { &mut *hot.entry.get() };
        return push_to(entry, ev);
    }
    if hot.generation.get() != generation {
        return record_cold(hot, key, op, ns, flags);
    }
    // SAFETY: as above.
    let entry = unsafe { &mut *hot.entry.get() };
    if let Some(slot) = entry.slots.get(op as usize) {
        if slot.word != table::ALL {
            let tally = entry.tally(op as usize);
            let u = tally.load(Ordering::Relaxed);
            if u >= slot.next_at {
                return record_arm(entry, key, op, ns, flags, u);
            }
            // Only this thread writes the tally: load + store is an exact increment.
            tally.store(u + 1, Ordering::Relaxed);
            if flags & Event::ERROR != 0 {
                return note_unsampled_error(key, op, flags);
            }
            return;
        }
    }
    push_to(entry, ev);
}

/// Pushes `ev` into `entry`'s ring, counting it as dropped if the ring is full.
#[inline(always)]
fn push_to(entry: &mut Entry, ev: Event) {
    if let Err(ev) = entry.producer.push(ev) {
        count_drop(&mut entry.producer, &ev);
    }
}

/// `record` at the end of a sampling gap.
#[cold]
#[inline(never)]
fn record_arm(entry: &mut Entry, key: &'static EngineKey, op: u32, ns: u64, flags: u32, u: u64) {
    let s = entry.arm(op as usize, u);
    if s & Event::UNSAMPLED != 0 {
        if flags & Event::ERROR != 0 {
            note_unsampled_error(key, op, flags);
        }
        return;
    }
    let ev = Event {
        op,
        flags: flags | s | Event::NANOS,
        start: ns,
        end: 0,
    };
    if let Err(ev) = entry.producer.push(ev) {
        count_drop(&mut entry.producer, &ev);
    }
}

/// `record` for a thread whose cached engine is another one, or whose rules are stale.
#[cold]
#[inline(never)]
fn record_cold(hot: &Hot, key: &'static EngineKey, op: u32, ns: u64, flags: u32) {
    let s = sample_cold(hot, key, op);
    if s & Event::UNSAMPLED != 0 {
        if flags & Event::ERROR != 0 {
            note_unsampled_error(key, op, flags);
        }
        return;
    }
    push(
        key,
        Event {
            op,
            flags: flags | s | Event::NANOS,
            start: ns,
            end: 0,
        },
    );
}

/// Sends the failure of an unsampled call (already counted) to the aggregator.
#[cold]
#[inline(never)]
pub(crate) fn note_unsampled_error(key: &'static EngineKey, op: u32, flags: u32) {
    push(
        key,
        Event {
            op,
            flags: (flags & (Event::ERROR | Event::PANIC | Event::KIND_MASK))
                | Event::ERROR
                | Event::NANOS
                | Event::UNSAMPLED,
            start: 0,
            end: 0,
        },
    );
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
        count_drop(&mut entry.producer, &ev);
    }
}
