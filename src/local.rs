//! The calling thread's rings: one producer per engine this thread has recorded into.
//!
//! The hot path looks up its ring through a one-entry cache (the engine used last), so a
//! thread that records into one engine pays a thread-local read and a compare; the cache also
//! holds the addresses of the engine's rule words and of the ring's tallies, so that deciding
//! a call's fate and counting an unsampled call reach no further than the cache. The first event
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
    /// The engine's per-operation sampling words, read in place by the hot path (through
    /// `Hot::words`); this keeps them alive. As long as the ring's tallies and `slots`.
    rules: Arc<Table>,
    /// Per operation: this thread's sampling state. Same length as the ring's tallies.
    slots: Box<[Slot]>,
    /// The ring's tallies (`producer.tallies()`), `slots.len()` of them; valid as long as
    /// `producer` is, which this entry owns.
    tallies: *const AtomicU64,
    /// xorshift64* state for probability sampling; never 0.
    rng: u64,
    /// Live [`Pinned`] reaches of this entry. A pinned entry is never freed by orphan pruning;
    /// at thread exit it is left to its last pin (`detached`).
    pins: u32,
    /// Set at thread exit when pins were live: the entry is no longer in `Local::entries`, and
    /// the last [`Pinned`] to go frees it.
    detached: bool,
}

/// One operation's sampling state on one thread, for the rules that sample (`Every`,
/// `Probability`); timed and count-only operations never reach it.
///
/// The ring's tally of the operation counts its unsampled calls on this thread (`u`); a call
/// is unsampled while `u < next_at`, and the sampled call that ends a gap stands for
/// `u - last + 1` calls.
#[derive(Clone, Copy)]
struct Slot {
    /// The word the gap was drawn under ([`table::ALL`] before the first): a call that reads
    /// another word from the table starts afresh (`Entry::retune`).
    word: Word,
    /// Tally value at which the next call is sampled.
    next_at: u64,
    /// Tally value at the last sampled call (or at the last rule change).
    last: u64,
}

impl Entry {
    /// Decides whether a call of `op` is timed, reading its rule from the table (the cold
    /// paths' version of what `sample` and `record` do inline): returns the flags for its
    /// event (its weight when sampled), [`Event::UNSAMPLED`] when it was only counted.
    fn decide(&mut self, op: u32) -> u32 {
        let Some(w) = self.rules.word(op as usize) else {
            return 0;
        };
        if w == table::ALL {
            return 0;
        }
        if w & table::COUNT != 0 {
            if let Some(t) = self.producer.tally(op as usize) {
                // Only this thread writes the tally: load + store is an exact increment.
                t.store(t.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            }
            return Event::UNSAMPLED;
        }
        self.sample_gap(op, w)
    }

    /// A call of `op`, whose rule `w` samples: unsampled (and counted) inside a gap, timed at
    /// its end. Returns the flags for its event, as [`decide`](Self::decide) does.
    #[inline(always)]
    fn sample_gap(&mut self, op: u32, w: Word) -> u32 {
        let Some(slot) = self.slots.get(op as usize) else {
            return 0;
        };
        let tally = self.tally(op as usize);
        let u = tally.load(Ordering::Relaxed);
        if slot.word != w || u >= slot.next_at {
            return self.retune_and_arm(op as usize, w, u);
        }
        // Only this thread writes the tally: load + store is an exact increment.
        tally.store(u + 1, Ordering::Relaxed);
        Event::UNSAMPLED
    }

    /// The ring's tally of `op`, which must be below `slots.len()`.
    #[inline(always)]
    fn tally(&self, op: usize) -> &AtomicU64 {
        debug_assert!(op < self.slots.len());
        // SAFETY: `tallies` points to `slots.len()` counters owned by the ring that `producer`
        // keeps alive, and the callers checked `op < slots.len()`: the offset stays inside them.
        let tally = in_register(unsafe { self.tallies.add(op) });
        // SAFETY: `tally` points to a live counter (see above), which nobody ever borrows
        // mutably: it is an atomic, read and written only through shared references.
        unsafe { &*tally }
    }

    /// A call of `op` under rule `w` at tally `u` that ends a gap, or the first under a rule
    /// this thread has not drawn a gap for: [`arm`](Self::arm), after starting afresh if the
    /// rule changed (a gap drawn under the old rule is not carried).
    #[cold]
    #[inline(never)]
    fn retune_and_arm(&mut self, op: usize, w: Word, u: u64) -> u32 {
        let slot = &mut self.slots[op];
        if slot.word != w {
            *slot = Slot {
                word: w,
                next_at: u,
                last: u,
            };
        }
        self.arm(op, u)
    }

    /// The end of a gap: samples this call and draws the next gap, or counts the call.
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
}

/// The one-entry cache the hot path reads: the engine used last, its entry, and two addresses
/// inside the entry's reach that every call needs, so that a call loads them from here rather
/// than through the entry.
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
    /// The first rule word of the entry's engine (`entry.rules.as_ptr()`), alive as long as
    /// the entry is; an operation's word is `op` words on (every `Op` of the engine has an id
    /// below the table's length).
    words: Cell<*const AtomicU64>,
    /// The entry's ring's first tally (`entry.tallies`): as many as there are rule words, or,
    /// for a ring with fewer, words that are all `ALL` (so that no call counts into one).
    tallies: Cell<*const AtomicU64>,
}

impl Hot {
    fn reset(&self) {
        self.engine.set(0);
        self.entry.set(ptr::null_mut());
        self.words.set(ptr::null());
        self.tallies.set(ptr::null());
    }

    /// The rule word of `op` in the cached engine's table. Callers checked that the cache
    /// holds an engine (`engine != 0`) and that `op` is an operation of that engine.
    #[inline(always)]
    fn word(&self, op: u32) -> Word {
        // SAFETY: `words` points to the first of the cached engine's rule words (see `words`),
        // kept alive by the cached entry; `op` is an operation of that engine, so below the
        // table's length (`Engine::op` gives out ids up to `max_operations`, and the table
        // holds `max_operations + 1` words): the offset stays inside the table.
        let word = unsafe { self.words.get().add(op as usize) };
        // SAFETY: `word` points to a live atomic, only ever reached through shared references.
        let word = unsafe { &*word };
        // Acquire: pairs with `Table::publish`'s Release, so that the aggregator's mark on this
        // operation's tally happens before this thread counts into it (and exits).
        word.load(Ordering::Acquire)
    }

    /// Counts an unsampled call of `op` in the cached ring's tally. Same contract as
    /// [`word`](Self::word).
    #[inline(always)]
    fn count(&self, op: u32) {
        self.count_many(op, 1);
    }

    /// Counts `n` unsampled calls of `op` in the cached ring's tally. Same contract as
    /// [`word`](Self::word).
    #[inline(always)]
    fn count_many(&self, op: u32, n: u64) {
        // SAFETY: `tallies` points to the cached ring's tallies, one per rule word (see
        // `tallies`), kept alive by the cached entry's producer; `op` is below their number
        // (see `word`).
        let tally = in_register(unsafe { self.tallies.get().add(op as usize) });
        // SAFETY: `tally` points to a live atomic, only ever reached through shared references.
        let tally = unsafe { &*tally };
        // Only this thread writes the tally: load + store is an exact increment.
        tally.store(tally.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

/// `p`, computed into a register of its own: the counter behind it is then incremented through
/// a plain `(reg)` address, not a `(base, index, 8)` one.
///
/// Each call increments its tally and the next call of the operation loads it again. Recent
/// x86-64 cores forward such a store to the next load of the same location without its full
/// latency, but only when the address is a register (or a register and a displacement): with
/// an indexed address every call waits for the previous call's store, about three times as
/// long (a loop of `incq (%rdx,%rsi,8)` against `add %rsi,%rdx; incq (%rdx)`, Intel Xeon VM,
/// see docs/performance.md). LLVM folds `base + op * 8` into the indexed form; an empty `asm`
/// statement that takes and returns the pointer in a register keeps it from doing so, and
/// emits no instruction of its own.
#[inline(always)]
// The pointer only passes through a register: the statement reads and writes no memory.
#[allow(clippy::pointers_in_nomem_asm_block)]
fn in_register<T>(p: *const T) -> *const T {
    #[cfg(target_arch = "x86_64")]
    {
        let mut p = p;
        // SAFETY: the template is a comment: no instruction runs, no memory, stack or flag is
        // touched, and the register holding `p` comes back unchanged.
        unsafe {
            core::arch::asm!(
                "/* {0} */",
                inout(reg) p,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        p
    }
    #[cfg(not(target_arch = "x86_64"))]
    p
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
    ///
    /// A call made while this runs on the same thread (by an allocator that records, when the
    /// ring is allocated) finds `entries` borrowed: it gets [`Lookup::NoRing`], so it is
    /// counted in the engine instead of panicking inside the allocator or registering again.
    #[cold]
    fn find_or_register(&self, hot: &Hot, key: &'static EngineKey) -> Lookup {
        let addr = key.addr();
        let Ok(mut entries) = self.entries.try_borrow_mut() else {
            return Lookup::NoRing;
        };
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
                    return Lookup::Gone;
                };
                // The cached entry may be one of those freed below.
                hot.reset();
                // Rings of engines that no longer exist only cost memory: free them now, unless
                // a `Pinned` still reaches them (they go at a later registration).
                entries.retain(|&e| {
                    // SAFETY: as above; the shared reference ends with this statement.
                    let orphaned = unsafe { &(*e).producer }.is_orphaned();
                    // SAFETY: as above; reading a field makes no reference.
                    let orphaned = orphaned && unsafe { (*e).pins } == 0;
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
                let mut rules = hub.rule_table();
                if slots.len() < rules.ops() {
                    // A ring without a tally per operation: the minimal ring of an engine whose
                    // aggregator died, whose pushes all drop. A table of its own, every word
                    // `ALL` and never published to, times every call, so that no call reaches
                    // for a tally the ring does not have (see `Hot::tallies`).
                    rules = Arc::new(Table::new(rules.ops()));
                }
                let entry = Entry {
                    engine: addr,
                    tallies,
                    producer,
                    rules,
                    slots,
                    rng: (thread.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ addr as u64) | 1,
                    pins: 0,
                    detached: false,
                };
                let e = Box::into_raw(Box::new(entry));
                entries.push(e);
                e
            }
        };
        let (words, tallies) = {
            // SAFETY: `entry` is a live element of `entries` (found or just pushed); the shared
            // reference ends with this block, and no `&mut` to the entry is live.
            let e = unsafe { &*entry };
            (e.rules.as_ptr(), e.tallies)
        };
        hot.engine.set(addr);
        hot.entry.set(entry);
        hot.words.set(words);
        hot.tallies.set(tallies);
        Lookup::Entry(entry)
    }
}

/// Where a cold path's look-up of its entry ends.
enum Lookup {
    /// This thread's entry for the engine, now the cached one.
    Entry(*mut Entry),
    /// No ring can be had: the thread's locals are being destroyed, or this thread is in the
    /// middle of registering one.
    NoRing,
    /// The engine is gone.
    Gone,
}

/// This thread's entry for the engine of `key` (registering a ring on first use), made the
/// cached one. Returns a raw pointer and keeps no reference: the caller makes the one `&mut`.
#[inline(always)]
fn lookup(hot: &Hot, key: &'static EngineKey) -> Lookup {
    LOCAL
        .try_with(|l| l.find_or_register(hot, key))
        .unwrap_or(Lookup::NoRing)
}

impl Drop for Local {
    fn drop(&mut self) {
        // From here on the hot path misses the cache and finds `LOCAL` destroyed (the runtime
        // marks it so before this runs), so a call made while the entries are freed (by another
        // thread-local's destructor, or an allocator that records) reaches none of them.
        HOT.with(Hot::reset);
        for e in self.entries.get_mut().drain(..) {
            // SAFETY: `e` came from `Box::into_raw` and is still owned here; reading a field
            // makes no reference, and none is live (this runs at thread exit, not inside a
            // call of this module).
            if unsafe { (*e).pins } > 0 {
                // A `Pinned` (held by another thread-local, say) still reaches it: the last
                // one frees it.
                // SAFETY: as above; writing a field makes no reference.
                unsafe { (*e).detached = true };
                continue;
            }
            // SAFETY: `e` came from `Box::into_raw` and is dropped exactly once, here. No
            // reference to it is live (see above), no `Pinned` reaches it, and the cache no
            // longer points at it.
            drop(unsafe { Box::from_raw(e) });
        }
    }
}

thread_local! {
    static HOT: Hot = const {
        Hot {
            engine: Cell::new(0),
            entry: Cell::new(ptr::null_mut()),
            words: Cell::new(ptr::null()),
            tallies: Cell::new(ptr::null()),
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
        return push_cold(key, ev);
    }
    // SAFETY: `hot.engine == addr != 0`, so `hot.entry` is a live element of this thread's
    // `entries` (see `Hot`). No other reference to it is live: `Hot` is not `Sync`, so only
    // this thread reaches it; this module holds an entry only within one call and hands it down
    // instead of looking it up again (callers of `push` hold none); and nothing called while
    // one is held re-enters this module (it neither allocates nor runs code of the user's).
    let entry = unsafe { &mut *hot.entry.get() };
    push_to(entry, ev);
}

/// [`push`] of a guard's event, out of line: the drop glue of `Timer` with `push` inlined is
/// too large for LLVM to inline into the caller, which then builds the guard in memory and
/// calls the glue, saving registers; this function takes the call in registers and needs no
/// stack frame (its slow paths, a call that does not fit the plain event form, a cache miss
/// and the ring's look at its head, are all tail calls), so the glue stays small enough to
/// inline.
#[inline(never)]
pub(crate) fn push_timed(key: &'static EngineKey, op: u32, word: u32, start: u64, end: u64) {
    let duration = end.wrapping_sub(start);
    if !Event::fits(word, duration) {
        return push_timed_wide(key, op, word, start, end);
    }
    push(key, Event::timed(op, word, end, duration));
}

/// [`push_timed`] of a call that does not fit the plain event form (a sampled call standing
/// for several, or a duration of 2^32 ticks or more).
#[cold]
#[inline(never)]
fn push_timed_wide(key: &'static EngineKey, op: u32, word: u32, start: u64, end: u64) {
    push(key, Event::timed_wide(op, word, start, end));
}

/// Counts an event the ring had no room for.
#[cold]
#[inline(never)]
fn count_drop(producer: &mut Producer<Event>, op: u32, flags: u32) {
    if flags & Event::UNSAMPLED != 0 {
        // The call is already counted as unsampled; only its failure is lost.
        producer.count_dropped_error(op as usize);
    } else {
        producer.count_drop(op as usize, flags & (Event::ERROR | Event::PANIC) != 0);
    }
}

/// Decides whether a call of `op` starting now is timed: returns the flags of its event (its
/// weight when sampled), or [`Event::UNSAMPLED`] when the call has been counted and must not
/// be timed.
///
/// The operation's rule word, read in place, decides: zero times the call (a compare and a
/// branch), a negative word counts it in the tally (three instructions more), a positive one
/// goes to the thread's gap state.
#[inline(always)]
pub(crate) fn sample(key: &'static EngineKey, op: u32) -> u32 {
    let hot = this_hot();
    if hot.engine.get() != key.addr() {
        return sample_cold(hot, key, op);
    }
    let w = hot.word(op);
    if w == table::ALL {
        return 0;
    }
    if w & table::COUNT != 0 {
        hot.count(op);
        return Event::UNSAMPLED;
    }
    // SAFETY: `hot.engine == addr != 0`, so `hot.entry` is a live element of this thread's
    // `entries` (see `Hot`); no other reference to it is live (see `push`).
    let entry = unsafe { &mut *hot.entry.get() };
    entry.sample_gap(op, w)
}

/// `sample` for a thread whose cached engine is another one (or none).
#[cold]
#[inline(never)]
fn sample_cold(hot: &Hot, key: &'static EngineKey, op: u32) -> u32 {
    let Lookup::Entry(entry) = lookup(hot, key) else {
        // No ring (the call will be counted as dropped when it ends) or no engine.
        return 0;
    };
    // SAFETY: `lookup` returned a live element of this thread's `entries` and holds no
    // reference to it any more; callers of `sample` hold none.
    let entry = unsafe { &mut *entry };
    entry.decide(op)
}

/// Records a call of `ns` nanoseconds measured elsewhere (`flags`: `ERROR` and a kind), unless
/// the operation's sampling skips it, in which case it is only counted.
///
/// Every call out of the fast paths is a tail call, so the fast paths save no registers. The
/// entry is reached once, here, and handed down to whatever pushes into its ring: looking it
/// up again through `HOT` further down would make a second `&mut` to it.
#[inline(always)]
pub(crate) fn record(key: &'static EngineKey, op: u32, ns: u64, flags: u32) {
    let hot = this_hot();
    if hot.engine.get() != key.addr() {
        return record_cold(hot, key, op, ns, flags);
    }
    let w = hot.word(op);
    if w == table::ALL {
        // SAFETY: `hot.engine == addr != 0`, so `hot.entry` is a live element of this thread's
        // `entries` (see `Hot`); no other reference to it is live (see `push`).
        let entry = unsafe { &mut *hot.entry.get() };
        return push_to(entry, Event::nanos(op, flags, ns));
    }
    if w & table::COUNT != 0 {
        hot.count(op);
        if flags & Event::ERROR != 0 {
            return note_unsampled_error_here(hot, op, flags);
        }
        return;
    }
    // SAFETY: as above.
    let entry = unsafe { &mut *hot.entry.get() };
    record_sampled(entry, op, ns, flags, w)
}

/// `record` of an operation whose rule `w` samples, through its thread's `entry`.
#[inline(always)]
fn record_sampled(entry: &mut Entry, op: u32, ns: u64, flags: u32, w: Word) {
    if let Some(slot) = entry.slots.get(op as usize) {
        let tally = entry.tally(op as usize);
        let u = tally.load(Ordering::Relaxed);
        if slot.word != w || u >= slot.next_at {
            return record_arm(entry, op, ns, flags, w, u);
        }
        // Only this thread writes the tally: load + store is an exact increment.
        tally.store(u + 1, Ordering::Relaxed);
        if flags & Event::ERROR != 0 {
            return push_unsampled_error(entry, op, flags);
        }
        return;
    }
    push_to(entry, Event::nanos(op, flags, ns));
}

/// One operation's reach into the calling thread's entry for its engine, resolved once: the
/// entry, the operation's rule word and its tally, so that a `record*` call through it
/// (`LocalOp`) makes no thread-local access and, used in a loop, keeps all three addresses in
/// registers.
///
/// A pinned entry stays alive as long as its pins: orphan pruning skips it, and at thread exit
/// (when a pin is held by another thread-local's value) the last pin frees it. The entry is
/// still reached through the cache by calls of plain `Op`s on this thread; each path makes
/// its one `&mut` to the entry only within a call, and calls do not nest (nothing called while
/// one is held runs the user's code or re-enters this module), so the two never overlap.
/// Not `Send`: the raw pointers keep it on its thread.
pub(crate) struct Pinned {
    entry: ptr::NonNull<Entry>,
    /// The operation's rule word in the entry's table (alive as long as the entry).
    word: *const AtomicU64,
    /// The operation's tally in the entry's ring, or null for a ring with fewer tallies than
    /// operations (whose table's words are all `ALL`, so no call counts into one).
    tally: *const AtomicU64,
    op: u32,
}

impl Pinned {
    /// Pins the calling thread's entry for the engine of `key` (registering its ring on first
    /// use) for operation `op`, which must be an operation of that engine. `None` when no ring
    /// can be had (the thread's locals are being destroyed, or the engine is gone).
    ///
    /// Inline, with the look-up out of line: the handle's addresses are then values in the
    /// caller's registers. Built by an out-of-line call, the handle lived in memory, and a
    /// loop that also wrote other memory reloaded its addresses at every call.
    #[inline]
    pub(crate) fn new(key: &'static EngineKey, op: u32) -> Option<Self> {
        let Lookup::Entry(entry) = lookup(this_hot(), key) else {
            return None;
        };
        let entry = ptr::NonNull::new(entry)?;
        let e = entry.as_ptr();
        // SAFETY: `lookup` returned a live element of this thread's `entries` and holds no
        // reference to it; no other is live (callers hold none). Writing a field makes none.
        unsafe { (*e).pins += 1 };
        let (word, tally) = {
            // SAFETY: as above; the shared reference ends with this block.
            let en = unsafe { &*e };
            // SAFETY: `op` is an operation of the engine, so below its table's length (see
            // `Hot::word`): the offset stays inside the table.
            let word = unsafe { en.rules.as_ptr().add(op as usize) };
            let tally = if (op as usize) < en.slots.len() {
                // SAFETY: `tallies` points to `slots.len()` counters of the ring `producer`
                // keeps alive, and `op` is below that: the offset stays inside them.
                unsafe { en.tallies.add(op as usize) }
            } else {
                ptr::null()
            };
            (word, tally)
        };
        Some(Self {
            entry,
            word,
            tally,
            op,
        })
    }

    /// The operation's rule word, read in place.
    #[inline(always)]
    fn word(&self) -> Word {
        // SAFETY: `word` points to a live atomic of the pinned entry's table, only ever
        // reached through shared references.
        let word = unsafe { &*self.word };
        // Acquire: as in `Hot::word`.
        word.load(Ordering::Acquire)
    }

    /// The pinned entry, for the length of one call of this module.
    ///
    /// # Safety
    /// No other reference to the entry may be live while the returned one is: callers make it
    /// inside one call and hand it down (see `Pinned`).
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    unsafe fn entry(&self) -> &mut Entry {
        // SAFETY: the entry is alive while pinned (see `Pinned`); the caller guarantees that
        // no other reference to it is live.
        unsafe { &mut *self.entry.as_ptr() }
    }

    /// Counts an unsampled call in the operation's tally.
    #[inline(always)]
    fn count(&self) {
        debug_assert!(!self.tally.is_null());
        // SAFETY: a word other than `ALL` was read, so the ring has a tally per operation and
        // `tally` points to this one's (see `tally`), kept alive by the pinned entry.
        let tally = unsafe { &*self.tally };
        // Only this thread writes the tally: load + store is an exact increment.
        tally.store(tally.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// [`record`] through the pinned entry.
    #[inline(always)]
    pub(crate) fn record(&self, ns: u64, flags: u32) {
        let w = self.word();
        let op = self.op;
        if w == table::ALL {
            // SAFETY: made within this call and handed down (see `entry`).
            return push_to(unsafe { self.entry() }, Event::nanos(op, flags, ns));
        }
        if w & table::COUNT != 0 {
            self.count();
            if flags & Event::ERROR != 0 {
                // SAFETY: as above.
                return push_unsampled_error(unsafe { self.entry() }, op, flags);
            }
            return;
        }
        // SAFETY: as above.
        record_sampled_out(unsafe { self.entry() }, op, ns, flags, w)
    }
}

/// [`record_sampled`] out of line, for [`Pinned::record`]: a loop through a handle then keeps
/// the registers its timed and count-only calls need (with the sampling path inline, LLVM
/// spilled the handle's addresses and reloaded them at every call).
#[inline(never)]
fn record_sampled_out(entry: &mut Entry, op: u32, ns: u64, flags: u32, w: Word) {
    record_sampled(entry, op, ns, flags, w);
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let e = self.entry.as_ptr();
        // SAFETY: the entry is alive while pinned; no reference to it is live (this runs
        // outside the calls of this module). Writing a field makes none.
        unsafe { (*e).pins -= 1 };
        // SAFETY: as above; reading a field makes no reference.
        let left = unsafe { (*e).pins };
        // SAFETY: as above.
        if left == 0 && unsafe { (*e).detached } {
            // SAFETY: a detached entry is no longer in `Local::entries` nor in the cache (see
            // `Local::drop`); this was its last pin, so nothing reaches it any more.
            drop(unsafe { Box::from_raw(e) });
        }
    }
}

/// Records one call of each duration in `values` (nanoseconds measured elsewhere), as
/// `record(key, op, v, 0)` for each value in turn would, deciding once for all of them: a
/// timed operation's values go into the ring in runs published with one store each (the
/// ring's tail kept in a register), a count-only operation's calls are counted with one
/// store, and a sampled operation's go through `record` one by one.
#[inline]
pub(crate) fn record_many(key: &'static EngineKey, op: u32, values: &[u64]) {
    let hot = this_hot();
    if hot.engine.get() == key.addr() {
        let w = hot.word(op);
        if w == table::ALL {
            // SAFETY: `hot.engine == addr != 0`, so `hot.entry` is a live element of this
            // thread's `entries` (see `Hot`); no other reference to it is live (see `push`).
            let entry = unsafe { &mut *hot.entry.get() };
            return push_many(entry, op, values);
        }
        if w & table::COUNT != 0 {
            return hot.count_many(op, values.len() as u64);
        }
    }
    record_each(key, op, values);
}

/// [`record_many`] of a timed operation: every value pushed, or counted as dropped.
fn push_many(entry: &mut Entry, op: u32, values: &[u64]) {
    let mut rest = values;
    loop {
        let written = entry
            .producer
            .push_many_unless_due(rest.len(), |i| Event::nanos(op, 0, rest[i]));
        rest = &rest[written..];
        let Some((&v, after)) = rest.split_first() else {
            return;
        };
        // A look at the ring's head is due: one push that looks (and rings, or counts a drop).
        push_due(entry, Event::nanos(op, 0, v));
        rest = after;
    }
}

/// [`record_many`] one value at a time (a cache miss, or an operation that samples).
#[inline(never)]
fn record_each(key: &'static EngineKey, op: u32, values: &[u64]) {
    for &v in values {
        record(key, op, v, 0);
    }
}

/// The failure note of a count-only `record*` call, through the entry `hot` caches (the
/// caller holds no reference to it).
#[cold]
#[inline(never)]
fn note_unsampled_error_here(hot: &Hot, op: u32, flags: u32) {
    // SAFETY: the caller found `hot.engine != 0`, so `hot.entry` is a live element of this
    // thread's `entries` (see `Hot`); no other reference to it is live: the caller made none.
    let entry = unsafe { &mut *hot.entry.get() };
    push_to(entry, unsampled_error(op, flags));
}

/// Pushes `ev` into `entry`'s ring, counting it as dropped if the ring is full.
///
/// The ring's look at its head (once per quarter ring of pushes) is an out-of-line tail call,
/// so a caller without a frame of its own (`push_timed`) still needs none.
#[inline(always)]
fn push_to(entry: &mut Entry, ev: Event) {
    if !entry.producer.push_unless_due(ev) {
        push_due(entry, ev);
    }
}

/// [`push_to`] at a push where the ring looks at its head.
#[cold]
#[inline(never)]
fn push_due(entry: &mut Entry, ev: Event) {
    if let Err(ev) = entry.producer.push(ev) {
        count_drop(&mut entry.producer, ev.op(), ev.flags());
    }
}

/// `record` at the end of a sampling gap, or under a rule this thread has not drawn a gap
/// for yet.
#[cold]
#[inline(never)]
fn record_arm(entry: &mut Entry, op: u32, ns: u64, flags: u32, w: Word, u: u64) {
    let s = entry.retune_and_arm(op as usize, w, u);
    if s & Event::UNSAMPLED != 0 {
        if flags & Event::ERROR != 0 {
            push_unsampled_error(entry, op, flags);
        }
        return;
    }
    push_to(entry, Event::nanos(op, flags | s, ns));
}

/// `record` for a thread whose cached engine is another one, or whose rules are stale.
#[cold]
#[inline(never)]
fn record_cold(hot: &Hot, key: &'static EngineKey, op: u32, ns: u64, flags: u32) {
    let entry = match lookup(hot, key) {
        Lookup::Entry(entry) => entry,
        // No ring can be had: count the call in the engine.
        Lookup::NoRing => return key.drop_without_ring(&Event::nanos(op, flags, ns)),
        Lookup::Gone => return, // nobody is left to count it
    };
    // SAFETY: `lookup` returned a live element of this thread's `entries` and holds no
    // reference to it any more; no caller holds one (callers hand theirs down, see `record`).
    let entry = unsafe { &mut *entry };
    let s = entry.decide(op);
    if s & Event::UNSAMPLED != 0 {
        if flags & Event::ERROR != 0 {
            push_unsampled_error(entry, op, flags);
        }
        return;
    }
    push_to(entry, Event::nanos(op, flags | s, ns));
}

/// The note that carries the failure of an unsampled call (already counted): an error (and its
/// kind, and whether it panicked), no call.
#[inline(always)]
fn unsampled_error(op: u32, flags: u32) -> Event {
    let word = (flags & (Event::ERROR | Event::PANIC | Event::KIND_MASK))
        | Event::ERROR
        | Event::UNSAMPLED;
    Event::nanos(op, word, 0)
}

/// Pushes the failure of an unsampled call into the ring of `entry`, the entry the caller
/// sampled the call with.
#[cold]
#[inline(never)]
fn push_unsampled_error(entry: &mut Entry, op: u32, flags: u32) {
    push_to(entry, unsampled_error(op, flags));
}

/// Sends the failure of an unsampled call (already counted) to the aggregator, for a caller
/// that holds no entry (a guard's `drop`).
#[cold]
#[inline(never)]
pub(crate) fn note_unsampled_error(key: &'static EngineKey, op: u32, flags: u32) {
    push(key, unsampled_error(op, flags));
}

/// `push` for a thread whose cached engine is another one (or none).
#[cold]
#[inline(never)]
fn push_cold(key: &'static EngineKey, ev: Event) {
    let hot = this_hot();
    match lookup(hot, key) {
        Lookup::Entry(entry) => {
            // SAFETY: `lookup` returned a live element of this thread's `entries` and holds no
            // reference to it any more; no caller holds one (see `push`).
            let entry = unsafe { &mut *entry };
            push_to(entry, ev);
        }
        // No ring can be had: count the event in the engine.
        Lookup::NoRing => key.drop_without_ring(&ev),
        Lookup::Gone => {} // nobody is left to count this event
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::clock::Clock;
    use crate::config::table::encode;
    use crate::config::Resolved;
    use crate::hub::{Hub, HubSettings, Names};

    /// Operations per test engine besides the reserved one.
    const OPS: u32 = 6;

    /// A hub whose operations `count_only` are `CountOnly`, the others timed.
    fn hub(ring_capacity: usize, count_only: &[u32]) -> Arc<Hub> {
        let hub = Hub::new(HubSettings {
            id: 0,
            clock: Clock::mock().0,
            ring_capacity,
            max_operations: OPS as usize,
            resolved: Arc::new(Resolved::default()),
            names: Names::new("overflow", "overflow".to_owned()),
        });
        hub.publish_rule_words(
            count_only
                .iter()
                .map(|&op| (op as usize, encode(Mode::CountOnly))),
        );
        hub
    }

    /// What one operation's calls came to in a hub's rings.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    struct Counts {
        /// Timed calls pushed (events without `UNSAMPLED`).
        timed: u64,
        /// Calls counted in the tally only.
        unsampled: u64,
        /// Failures pushed (timed or notes).
        errors: u64,
        /// Error kinds of the notes, in push order.
        kinds: Vec<u32>,
        /// Events the ring had no room for, and how many of them were failures.
        dropped: u64,
        dropped_errors: u64,
    }

    fn counts(c: &Counts) -> (u64, u64, u64, u64, u64) {
        (c.timed, c.unsampled, c.errors, c.dropped, c.dropped_errors)
    }

    /// Adopts `hub`'s new rings and reads everything they hold, per operation.
    fn drain(hub: &Hub) -> BTreeMap<u32, Counts> {
        let mut consumers = Vec::new();
        hub.registry.adopt(&mut consumers);
        let ops: Vec<u32> = (0..=OPS).collect();
        let mut out: BTreeMap<u32, Counts> = BTreeMap::new();
        for c in &mut consumers {
            c.drain(usize::MAX, |ev| {
                let o = out.entry(ev.op()).or_default();
                if ev.flags() & Event::UNSAMPLED == 0 {
                    o.timed += 1;
                } else {
                    assert_eq!(ev.flags() & Event::NANOS, Event::NANOS, "{ev:?}");
                    assert_eq!(ev.flags() & Event::WEIGHTED, 0, "a note adds no call");
                    o.kinds.push(u32::from(ev.kind()));
                }
                if ev.is_error() {
                    o.errors += 1;
                }
            });
            c.take_tallies(&ops, |op, n| {
                out.entry(op as u32).or_default().unsampled += n;
            });
            c.take_drops(|op, d, e| {
                let o = out.entry(op as u32).or_default();
                o.dropped += d;
                o.dropped_errors += e;
            });
        }
        out
    }

    /// Each path that notes an unsampled call's failure, one after the other on one thread:
    /// the note goes into the ring of the entry the call was sampled with, and every call and
    /// failure is counted exactly once.
    #[test]
    fn every_unsampled_failure_is_noted_once_through_the_entry_that_sampled_it() {
        let hub = hub(64, &[1, 2, 3, 4, 5]);
        let key = hub.key();
        let other = self::hub(64, &[]);
        let kind = 5 << Event::KIND_SHIFT;

        record(key, 1, 1, 0); // registers this thread's ring
                              // The end of op 2's first gap, in the fast path (`record_arm`).
        record(key, 2, 1, Event::ERROR);
        // Inside the gap (`record`), with a kind.
        record(key, 2, 1, Event::ERROR | kind);
        // A guard marked failed: counted at its start, noted at its end.
        assert_eq!(sample(key, 3), Event::UNSAMPLED);
        note_unsampled_error(key, 3, Event::UNSAMPLED | Event::ERROR);
        // A guard dropped while panicking (not marked failed).
        assert_eq!(sample(key, 3), Event::UNSAMPLED);
        note_unsampled_error(key, 3, Event::UNSAMPLED | Event::PANIC);
        // A call of another engine: the next call misses the cache (`record_cold`).
        record(other.key(), 1, 1, 0);
        record(key, 4, 1, Event::ERROR);
        record(other.key(), 1, 1, 0);
        assert_eq!(sample(key, 4), Event::UNSAMPLED); // `sample_cold`
        note_unsampled_error(key, 4, Event::UNSAMPLED | Event::ERROR | kind);
        // A rule change: the next call reads the new word and starts afresh (`record_arm`).
        hub.publish_rule_words([(6, encode(Mode::CountOnly))]);
        record(key, 6, 1, Event::ERROR);
        record(key, 6, 1, Event::ERROR);
        // Timed operations fail as timed calls.
        hub.publish_rule_words([(5, table::ALL)]);
        record(key, 5, 1, Event::ERROR);
        record(key, 1, 1, 0);

        let seen = drain(&hub);
        let of = |op| seen.get(&op).map(counts).unwrap_or_default();
        assert_eq!(of(1), (0, 2, 0, 0, 0));
        assert_eq!(of(2), (0, 2, 2, 0, 0));
        assert_eq!(seen[&2].kinds, [0, 5]);
        assert_eq!(of(3), (0, 2, 2, 0, 0));
        assert_eq!(of(4), (0, 2, 2, 0, 0));
        assert_eq!(seen[&4].kinds, [0, 5]);
        assert_eq!(of(5), (1, 0, 1, 0, 0));
        assert_eq!(of(6), (0, 2, 2, 0, 0));
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
        let seen = drain(&other);
        assert_eq!(seen[&1].timed, 2);
    }

    /// A call made while this thread is registering a ring (from an allocator that records,
    /// say) cannot reach its ring: it is counted in the engine, exactly, and the thread
    /// registers normally afterwards.
    #[test]
    fn a_call_made_during_a_registration_is_counted_in_the_engine() {
        let hub = hub(64, &[1]);
        let key = hub.key();
        LOCAL.with(|l| {
            let _registering = l.entries.borrow_mut();
            record(key, 2, 1, Event::ERROR);
            record(key, 2, 1, 0);
            record(key, 1, 1, Event::ERROR);
            assert_eq!(sample(key, 1), 0, "timed: no tally to count it in");
            push(key, Event::timed(1, 0, 2, 1));
            note_unsampled_error(key, 3, Event::UNSAMPLED | Event::ERROR);
        });
        let mut unringed = BTreeMap::new();
        hub.take_unringed(|op, dropped, errors| {
            unringed.insert(op, (dropped, errors));
        });
        assert_eq!(
            unringed,
            BTreeMap::from([(1, (2, 1)), (2, (2, 1)), (3, (0, 1))])
        );
        assert!(drain(&hub).is_empty(), "no ring was registered");
        record(key, 1, 1, 0);
        assert_eq!(counts(&drain(&hub)[&1]), (0, 1, 0, 0, 0));
    }

    /// The weights of the timed events of `op` in `hub`'s new rings, oldest first, and the
    /// calls its tallies counted.
    fn weights(hub: &Hub, op: u32) -> (Vec<u64>, u64) {
        let mut consumers = Vec::new();
        hub.registry.adopt(&mut consumers);
        let (mut weights, mut unsampled) = (Vec::new(), 0);
        for c in &mut consumers {
            c.drain(usize::MAX, |ev| {
                if ev.op() == op && ev.flags() & Event::UNSAMPLED == 0 {
                    weights.push(ev.weight());
                }
            });
            c.take_tallies(&[op], |_, n| unsampled += n);
        }
        (weights, unsampled)
    }

    /// A rule that changes is seen by the next call, through the operation's own word, on
    /// every path: a count-only operation becomes timed, a timed one count-only, and a
    /// sampling rule that comes back after a count-only spell starts a fresh gap (the calls
    /// counted in between are not folded into the next sampled call's weight).
    #[test]
    fn each_call_reads_its_operations_rule() {
        let hub = hub(64, &[1]);
        let key = hub.key();
        let every4 = encode(Mode::Every(4));
        record(key, 1, 1, 0); // registers; count-only
        assert_eq!(sample(key, 1), Event::UNSAMPLED);
        hub.publish_rule_words([(1, table::ALL)]);
        assert_eq!(sample(key, 1), 0, "timed from the next call on");
        record(key, 1, 1, 0);
        hub.publish_rule_words([(1, every4)]);
        // Every 4: timed (weight 1), three counted, timed standing for four, one counted.
        for _ in 0..6 {
            record(key, 1, 1, 0);
        }
        hub.publish_rule_words([(1, encode(Mode::CountOnly))]);
        for _ in 0..10 {
            assert_eq!(sample(key, 1), Event::UNSAMPLED);
        }
        hub.publish_rule_words([(1, every4)]);
        record(key, 1, 1, 0); // a fresh gap: timed, standing for itself
        assert_eq!(sample(key, 1), Event::UNSAMPLED);
        let (weights, unsampled) = weights(&hub, 1);
        assert_eq!(weights, [1, 1, 4, 1]);
        assert_eq!(unsampled, 2 + 4 + 10 + 1);
    }

    /// Operations of one engine under different rules, called in turn on one thread (so each
    /// call's word and tally are its own operation's): every call is timed or counted once.
    #[test]
    fn interleaved_operations_keep_their_own_rules_and_counts() {
        let hub = hub(1024, &[2, 4]);
        let key = hub.key();
        hub.publish_rule_words([(3, encode(Mode::Every(3)))]);
        for i in 0..30 {
            for op in 1..=4 {
                if i % 2 == 0 {
                    record(key, op, 5, 0);
                } else {
                    let _ = sample(key, op);
                }
            }
        }
        let mut consumers = Vec::new();
        hub.registry.adopt(&mut consumers);
        let mut timed = [0u64; 5];
        let mut weighted = [0u64; 5];
        let mut counted = [0u64; 5];
        for c in &mut consumers {
            c.drain(usize::MAX, |ev| {
                timed[ev.op() as usize] += 1;
                weighted[ev.op() as usize] += ev.weight();
            });
            c.take_tallies(&[1, 2, 3, 4], |op, n| counted[op] += n);
        }
        // `sample` pushes nothing (a guard's drop would): only the `record` halves are events.
        assert_eq!(timed[1], 15);
        assert_eq!(counted[1], 0);
        assert_eq!((timed[2], counted[2]), (0, 30));
        assert_eq!((timed[4], counted[4]), (0, 30));
        // Every 3: calls 0, 3, .., 27 of 30 timed, the others counted; the even ones are
        // `record`s, pushed: call 0 standing for itself, calls 6, 12, 18, 24 for three each.
        assert_eq!(counted[3], 20);
        assert_eq!((timed[3], weighted[3]), (5, 1 + 4 * 3));
    }

    /// A ring registered after the aggregator died has one tally, not one per operation: every
    /// call into it is timed (its push is dropped with the ring), none counts into a tally the
    /// ring does not have, whatever the operation's rule.
    #[test]
    fn a_ring_without_a_tally_per_operation_times_every_call() {
        let hub = hub(64, &[3, 4]);
        hub.publish_rule_words([(5, encode(Mode::Every(2)))]);
        hub.mark_aggregator_dead();
        let key = hub.key();
        record(key, 3, 1, Event::ERROR); // registers the minimal ring
        for op in [3, 4, 5] {
            assert_eq!(sample(key, op), 0, "op {op}");
            record(key, op, 1, 0);
            record_many(key, op, &[1, 2, 3]);
        }
        assert_eq!(sample(key, 3), 0);
    }

    /// A note that finds the ring full is counted as a dropped failure of a call that is
    /// already counted: the error stays, no call is added.
    #[test]
    fn a_note_that_finds_the_ring_full_counts_only_its_error() {
        let hub = hub(2, &[1]);
        let key = hub.key();
        record(key, 1, 1, Event::ERROR); // registers; the end of the first gap
        for _ in 0..4 {
            record(key, 1, 1, Event::ERROR); // inside the gap
        }
        record(key, 2, 1, Event::ERROR); // timed, and the ring is full
        assert_eq!(sample(key, 1), Event::UNSAMPLED);
        note_unsampled_error(key, 1, Event::UNSAMPLED | Event::ERROR);

        let seen = drain(&hub);
        assert_eq!(counts(&seen[&1]), (0, 6, 2, 0, 4));
        assert_eq!(counts(&seen[&2]), (0, 0, 0, 1, 1));
    }
}
