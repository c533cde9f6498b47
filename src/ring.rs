//! Bounded single-producer single-consumer ring with exact, producer-written drop counters.
//!
//! The algorithm is the classic Lamport ring in the form rtrb (`src/lib.rs`, `Producer::push`)
//! uses: two monotonically increasing indices, `head` written only by the consumer and `tail`
//! written only by the producer, each on its own cache line; each side keeps a private copy of
//! its own index and a cached copy of the other side's, and reloads the other side's index
//! (with `Acquire`) only when the ring looks full or empty. A push is one slot write and one
//! `Release` store; no read-modify-write atomic is used on either side.
//!
//! A push into a full ring does not block: the value is handed back and the producer counts the
//! drop in a per-key counter that only it writes (`load` + `store`, never `fetch_add`). The
//! consumer reads those counters when the producer's running total changes, so every value
//! pushed is either popped or counted as dropped, exactly.
//!
//! When the producer is dropped (its thread exits) the ring is marked abandoned; the consumer
//! drains what is left, reads the final drop counts, and then frees the ring by dropping its
//! [`Consumer`].
//!
//! A consumer that sleeps between drains can give the producer a [`Doorbell`] and a high-water
//! mark ([`Producer::set_doorbell`]): the producer's check of `head` then also comes when the
//! ring looks `high_water` full, and if it is, the producer rings. The check rides on the
//! cached head: a push compares its tail with one precomputed position (`check_at`), as the
//! plain full check did, and reloads `head` only there.

use core::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use crate::doorbell::Doorbell;
use crate::loom::{Arc, AtomicBool, AtomicU64, AtomicUsize, Ordering, UnsafeCell};

/// Most values [`Consumer::drain_chunks`] hands over at once.
pub const CHUNK: usize = 1024;

/// A chunk is at most this fraction of the ring (`capacity / HELD_SHARE`, at least 1): its
/// slots stay unavailable to the producer until the consumer is done with them, so a large
/// chunk in a small ring would take a share of the producer's room while the consumer
/// works (or is descheduled) on it.
pub const HELD_SHARE: usize = 128;

/// The state both sides share.
struct Shared<T> {
    /// Index of the next slot the consumer reads. Written only by the consumer; never more
    /// than `tail`.
    head: CachePadded<AtomicUsize>,
    /// Index of the next slot the producer writes. Written only by the producer;
    /// `tail - head <= capacity` (wrapping arithmetic).
    tail: CachePadded<AtomicUsize>,
    /// Running total of drops, written only by the producer after the per-key counter.
    drops_total: CachePadded<AtomicU64>,
    /// Set once by the producer when it goes away; never cleared.
    abandoned: AtomicBool,
    /// `capacity - 1`; the capacity is a power of two.
    mask: usize,
    /// The slots. A slot in `head..tail` is initialised and owned by the consumer side;
    /// every other slot is owned by the producer side.
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    /// Per key, both drop counters in one word so that a scan sees a drop and its error flag
    /// together: dropped calls in the high half, dropped calls with the error flag in the low
    /// half, each wrapping at 2^32 (the consumer takes wrapping differences, so it only has to
    /// scan before either half laps). Written only by the producer.
    drops: Box<[AtomicU64]>,
    /// Per key, a running total the producer keeps for its own purposes (the engine counts
    /// unsampled calls here). Written only by the producer (`load` + `store`); the consumer
    /// reads it and takes differences.
    tallies: Box<[AtomicU64]>,
    /// What the producer side is (the engine puts its thread's number here); fixed at creation.
    tag: u64,
    /// Its name, if it has one; fixed at creation.
    label: Option<std::sync::Arc<str>>,
}

// SAFETY: a `Shared<T>` hands `T` values from one thread to another, which needs `T: Send`.
// The slots are only accessed under the head/tail protocol (see `Shared::slots`).
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: as above; the contents are plain `T` values plus atomics.
unsafe impl<T: Send> Send for Shared<T> {}

/// Creates a ring of `capacity` slots (a power of two, at least 1) with drop counters for
/// `keys` keys.
///
/// # Panics
/// If `capacity` is not a power of two. Callers validate capacities before they get here.
pub fn channel<T: Copy>(capacity: usize, keys: usize) -> (Producer<T>, Consumer<T>) {
    channel_tagged(capacity, keys, 0, None)
}

/// [`channel`] with a tag and a label that the consumer can read ([`Consumer::tag`]).
pub fn channel_tagged<T: Copy>(
    capacity: usize,
    keys: usize,
    tag: u64,
    label: Option<std::sync::Arc<str>>,
) -> (Producer<T>, Consumer<T>) {
    assert!(
        capacity.is_power_of_two(),
        "ring capacity must be a power of two"
    );
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let drops = (0..keys).map(|_| AtomicU64::new(0)).collect();
    let tallies = (0..keys).map(|_| AtomicU64::new(0)).collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        drops_total: CachePadded::new(AtomicU64::new(0)),
        abandoned: AtomicBool::new(false),
        mask: capacity - 1,
        slots,
        drops,
        tallies,
        tag,
        label,
    });
    let producer = Producer {
        slots: shared.slots.as_ptr(),
        mask: shared.mask,
        shared: Arc::clone(&shared),
        tail: 0,
        check_at: capacity,
        cached_head: 0,
        drops_total: 0,
        high_water: capacity,
        doorbell: None,
        rung_at: usize::MAX,
    };
    let consumer = Consumer {
        shared,
        head: 0,
        cached_tail: 0,
        seen_total: 0,
        seen: Vec::new(),
        seen_tallies: Vec::new(),
    };
    (producer, consumer)
}

/// Packs the two drop counters of a key into one word.
#[inline]
fn pack(dropped: u32, errors: u32) -> u64 {
    (u64::from(dropped) << 32) | u64::from(errors)
}

/// Splits a packed drop word into `(dropped, errors)`.
#[inline]
fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// The writing end. Owned by exactly one thread at a time.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// `shared.slots`' buffer, kept here so that a push finds its slot with one load fewer
    /// (not `shared`, then the buffer). Valid as long as `shared` is, which this side owns.
    slots: *const UnsafeCell<MaybeUninit<T>>,
    /// Copy of `shared.mask`, kept here so a push reads no shared memory but its slot.
    mask: usize,
    /// Private copy of `shared.tail`.
    tail: usize,
    /// The tail at which the next push reloads `head`: `cached_head + high_water` after a look
    /// that found fewer than `high_water` values waiting; `high_water` pushes on (at most to
    /// where the ring looks full) after one that found more; `tail` after one that found the
    /// ring full. Never behind `tail` (`check_at - tail <= capacity`), so a push compares the
    /// two for equality: one compare, where the plain full check took a subtraction and a
    /// compare. Without a doorbell `high_water` is the capacity, and this is the full check.
    check_at: usize,
    /// Last value of `shared.head` this side loaded; never ahead of the real head.
    cached_head: usize,
    /// Private copy of `shared.drops_total`.
    drops_total: u64,
    /// Values waiting at which a push rings `doorbell`: 1 to capacity; capacity without one.
    high_water: usize,
    /// Rung when a push finds `high_water` values or more waiting.
    doorbell: Option<Arc<Doorbell>>,
    /// The tail at the last ring, so that pushes into a full ring do not ring again and again.
    rung_at: usize,
}

// SAFETY: `slots` points into the `Shared<T>` that `shared` keeps alive, so moving the producer
// to another thread moves nothing the pointer does not; the rest is as `Arc<Shared<T>>`, which
// is `Send` for `T: Send`. Only one thread at a time holds the producer (it is not `Clone`).
unsafe impl<T: Send> Send for Producer<T> {}

impl<T: Copy> Producer<T> {
    /// Number of slots.
    #[cfg_attr(not(any(test, loom)), allow(dead_code))]
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }

    /// Rings `doorbell` whenever a push finds `high_water` or more values waiting (clamped to
    /// 1 to the capacity): when the ring crosses the mark, and then every `high_water` pushes
    /// while it stays past it (at most once per push position, so pushes into a full ring
    /// ring once).
    pub fn set_doorbell(&mut self, doorbell: Arc<Doorbell>, high_water: usize) {
        self.high_water = high_water.clamp(1, self.mask + 1);
        self.doorbell = Some(doorbell);
        // The next push looks at `head` and sets the next check for the new mark.
        self.check_at = self.tail;
    }

    /// Appends `value`, or hands it back if the ring is full. Never blocks.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        let tail = self.tail;
        if tail == self.check_at && !self.look_at_head(tail) {
            return Err(value);
        }
        self.write(tail, value);
        Ok(())
    }

    /// Appends `value` unless a look at `head` is due at this push (the ring may be full, or
    /// past its high-water mark): then writes nothing and returns `false`, and the caller
    /// calls [`push`](Self::push), which looks. Never blocks.
    ///
    /// The common case of `push` without the look, for a caller that keeps the look out of
    /// line as a tail call: a push that makes a call it returns from must save the registers
    /// live across it, on every push.
    #[inline(always)]
    pub fn push_unless_due(&mut self, value: T) -> bool {
        let tail = self.tail;
        if tail == self.check_at {
            return false;
        }
        self.write(tail, value);
        true
    }

    /// Appends up to `n` values, `f(0)`, `f(1)`, …, for as long as no look at `head` is due
    /// (see [`push_unless_due`](Self::push_unless_due)), and publishes them with one `Release`
    /// store. Returns how many were written: fewer than `n` when a look is due, and then the
    /// caller [`push`](Self::push)es the next one, which looks. Never blocks.
    ///
    /// The private tail stays in a register across the values, so each costs its slot's two
    /// stores and the index arithmetic, not a load of the tail the previous push stored.
    #[inline]
    pub fn push_many_unless_due(&mut self, n: usize, mut f: impl FnMut(usize) -> T) -> usize {
        let tail = self.tail;
        // Every position before `check_at` is writable without a look (see `check_at`).
        let k = n.min(self.check_at.wrapping_sub(tail));
        if k == 0 {
            return 0;
        }
        debug_assert!(self.check_at.wrapping_sub(self.cached_head) <= self.mask + 1);
        for i in 0..k {
            let at = tail.wrapping_add(i) & self.mask;
            // SAFETY: `slots` is the buffer of `shared.slots` (alive while `shared` is) and
            // `at <= mask < slots.len()`, so the offset stays inside it.
            let cell = unsafe { self.slots.add(at) };
            // SAFETY: `cell` points to a live slot of that buffer; the reference is shared, and
            // the cell is reached only through `with`/`with_mut` under the head/tail protocol.
            let cell = unsafe { &*cell };
            let value = f(i);
            cell.with_mut(|slot| {
                // SAFETY: `tail + i` is before `check_at`, so the slot is outside `head..tail`
                // and owned by the producer; the consumer does not touch it until the store
                // below publishes it.
                unsafe { slot.write(MaybeUninit::new(value)) }
            });
        }
        let next = tail.wrapping_add(k);
        self.tail = next;
        // Release: publishes the slot writes above to the consumer's Acquire load of `tail`.
        self.shared.tail.store(next, Ordering::Release);
        k
    }

    /// Writes `value` at `tail`, which the ring has room for, and publishes it.
    #[inline(always)]
    fn write(&mut self, tail: usize, value: T) {
        debug_assert_eq!(tail, self.tail);
        debug_assert!(tail.wrapping_sub(self.cached_head) <= self.mask);
        debug_assert!(self.check_at.wrapping_sub(tail) <= self.mask + 1);
        debug_assert_eq!(self.slots, self.shared.slots.as_ptr());
        debug_assert_eq!(self.shared.slots.len(), self.mask + 1);
        // SAFETY: `slots` is the buffer of `shared.slots` (alive while `shared` is) and
        // `tail & mask < capacity == slots.len()`, so the offset stays inside it.
        let cell = unsafe { self.slots.add(tail & self.mask) };
        // SAFETY: `cell` points to a live slot of that buffer; the reference is shared, and the
        // cell is reached only through `with`/`with_mut` under the head/tail protocol.
        let cell = unsafe { &*cell };
        cell.with_mut(|slot| {
            // SAFETY: `tail - head < capacity`, so this slot is outside `head..tail` and owned by
            // the producer; the consumer does not touch it until the store below publishes it.
            unsafe { slot.write(MaybeUninit::new(value)) }
        });
        let next = tail.wrapping_add(1);
        self.tail = next;
        // Release: publishes the slot write above to the consumer's Acquire load of `tail`.
        self.shared.tail.store(next, Ordering::Release);
    }

    /// The look at `head` at `check_at`: reloads it and sets the next check, ringing the
    /// doorbell if the ring is past its high-water mark. Returns whether there is room.
    ///
    /// Inline, as the plain full check was, and short: below the mark (the common case) it
    /// is a load, a compare and two stores. An outlined call taking the whole look cost the
    /// inlined push a register saved across it.
    #[inline(always)]
    fn look_at_head(&mut self, tail: usize) -> bool {
        // Acquire: the consumer's reads of the slots it released happen before we reuse them.
        self.cached_head = self.shared.head.load(Ordering::Acquire);
        let waiting = tail.wrapping_sub(self.cached_head);
        debug_assert!(waiting <= self.mask + 1);
        if waiting >= self.high_water {
            return self.past_high_water(tail, waiting);
        }
        self.check_at = self.cached_head.wrapping_add(self.high_water);
        true
    }

    /// The rest of [`look_at_head`](Self::look_at_head) when `waiting` (at least
    /// `high_water`) values are waiting: rings, and sets the next check. Returns whether
    /// there is room.
    #[cold]
    #[inline(never)]
    fn past_high_water(&mut self, tail: usize, waiting: usize) -> bool {
        if tail != self.rung_at {
            if let Some(bell) = &self.doorbell {
                self.rung_at = tail;
                // After the previous push's Release store of `tail`: the consumer that this
                // wakes, or whose re-check runs after the ring's fence, sees those values.
                bell.ring();
            }
        }
        if waiting > self.mask {
            // Full: the next push looks again.
            self.check_at = tail;
            return false;
        }
        // Look again after `high_water` more pushes (or where the ring looks full, if that is
        // sooner). A consumer that drains the ring and sleeps is then rung before the ring
        // holds `high_water` more than it left.
        self.check_at = tail.wrapping_add(self.high_water.min(self.mask + 1 - waiting));
        true
    }

    /// Counts one dropped value under `key` (`error` selects the second counter too).
    ///
    /// Keys outside the range given to [`channel`] are counted under the last key.
    #[cold]
    pub fn count_drop(&mut self, key: usize, error: bool) {
        self.count_lost(key, 1, u32::from(error));
    }

    /// Counts a dropped value that only carried an error (its call is counted elsewhere):
    /// the error counter of `key` moves, the dropped counter does not.
    #[cold]
    pub fn count_dropped_error(&mut self, key: usize) {
        self.count_lost(key, 0, 1);
    }

    fn count_lost(&mut self, key: usize, dropped: u32, error: u32) {
        let Some(last) = self.shared.drops.len().checked_sub(1) else {
            return;
        };
        let counter = &self.shared.drops[key.min(last)];
        // Only this side writes the counter, so load + store is an exact increment.
        let (d, errors) = unpack(counter.load(Ordering::Relaxed));
        let next = pack(d.wrapping_add(dropped), errors.wrapping_add(error));
        counter.store(next, Ordering::Relaxed);
        self.drops_total += 1;
        // Release: the per-key stores above are visible to a consumer that Acquire-loads this total.
        self.shared
            .drops_total
            .store(self.drops_total, Ordering::Release);
    }

    /// The tally of `key` (see [`tallies`](Self::tallies)).
    #[inline(always)]
    pub fn tally(&self, key: usize) -> Option<&AtomicU64> {
        self.shared.tallies.get(key)
    }

    /// Per-key running totals that only this side writes: update them with `load` +
    /// `store(Relaxed)`, never `fetch_add`. The consumer sees them through
    /// [`Consumer::take_tallies`].
    #[cfg_attr(not(any(test, loom)), allow(dead_code))]
    pub fn tallies(&self) -> &[AtomicU64] {
        &self.shared.tallies
    }

    /// Whether the consumer side has been dropped (its engine is gone).
    pub fn is_orphaned(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        // Release: every push and drop count of this side happens before the consumer's
        // Acquire load sees `abandoned == true`.
        self.shared.abandoned.store(true, Ordering::Release);
    }
}

/// The reading end. Owned by the aggregator.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Private copy of `shared.head`.
    head: usize,
    /// Last value of `shared.tail` this side loaded; never ahead of the real tail.
    cached_tail: usize,
    /// Drop total at the last scan of the per-key counters.
    seen_total: u64,
    /// Per key, the packed counter at the last scan.
    seen: Vec<u64>,
    /// Per key, the tally at the last read.
    seen_tallies: Vec<u64>,
}

impl<T: Copy> Consumer<T> {
    /// Removes the oldest value.
    #[cfg_attr(not(any(test, loom)), allow(dead_code))]
    pub fn pop(&mut self) -> Option<T> {
        let mut out = None;
        self.drain(1, |v| out = Some(v));
        out
    }

    /// Hands up to `max` values, oldest first, to `f`, one at a time. Returns how many were
    /// handed over.
    #[inline]
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        self.drain_chunks(max, |chunk| chunk.iter().for_each(|&v| f(v)))
    }

    /// Most values a chunk of [`drain_chunks`](Self::drain_chunks) holds: [`CHUNK`], or a
    /// [`HELD_SHARE`]th of the ring if that is less.
    pub fn chunk_len(&self) -> usize {
        ((self.shared.mask + 1) / HELD_SHARE).clamp(1, CHUNK)
    }

    /// Hands up to `max` values, oldest first, to `f` in chunks of at most
    /// [`chunk_len`](Self::chunk_len) values. A chunk is the values' own slots in the ring
    /// (never across the wrap, so the chunk that reaches the end of the buffer may be
    /// shorter), not a copy; its slots are released (one store) when `f` returns. Returns how
    /// many values were handed over.
    #[inline]
    pub fn drain_chunks(&mut self, max: usize, mut f: impl FnMut(&[T])) -> usize {
        if self.cached_tail.wrapping_sub(self.head) < max {
            // Acquire: the producer's slot writes published by its Release store of `tail`
            // happen before our reads of those slots.
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
        }
        let available = self.cached_tail.wrapping_sub(self.head);
        debug_assert!(available <= self.shared.mask + 1);
        let n = available.min(max);
        let chunk = self.chunk_len();
        let mut done = 0;
        while done < n {
            // The chunk: from `head` on, up to the end of the buffer at most.
            let at = self.head & self.shared.mask;
            let k = (n - done).min(chunk).min(self.shared.slots.len() - at);
            self.with_chunk(at, k, &mut f);
            self.head = self.head.wrapping_add(k);
            // Release: `f`'s reads of those slots happen before the producer reuses them.
            self.shared.head.store(self.head, Ordering::Release);
            done += k;
        }
        n
    }

    /// Calls `f` with the values in slots `at..at + k`, which lie in `head..tail` (so they are
    /// initialised, published by the producer's Release store of `tail` that `drain_chunks`
    /// Acquire-loaded, and not written by the producer before `head` moves past them).
    #[cfg(not(loom))]
    #[inline(always)]
    fn with_chunk(&self, at: usize, k: usize, f: &mut impl FnMut(&[T])) {
        let () = Self::SLOT_IS_T;
        let cells = &self.shared.slots[at..at + k];
        // SAFETY: `crate::loom::UnsafeCell` is `repr(transparent)` over `core::cell::UnsafeCell`,
        // which (like `MaybeUninit`) has the in-memory representation of its contents, so a slot
        // has the layout of `T` (`SLOT_IS_T` checks size and alignment) and the `k` slots are
        // `k` consecutive `T`s. They are initialised and nobody writes them while the slice
        // lives (see above; `head` moves only after `f` returns and the slice with it).
        let chunk = unsafe { core::slice::from_raw_parts(cells.as_ptr().cast::<T>(), k) };
        f(chunk);
    }

    /// Under loom every slot access goes through `UnsafeCell::with`, so the chunk is copied to
    /// the stack first; the slots are still released only after `f` returns, as above.
    #[cfg(loom)]
    fn with_chunk(&self, at: usize, k: usize, f: &mut impl FnMut(&[T])) {
        let mut buf = [MaybeUninit::<T>::uninit(); CHUNK];
        for (out, cell) in buf[..k].iter_mut().zip(&self.shared.slots[at..at + k]) {
            *out = cell.with(|slot| {
                // SAFETY: the slot lies in `head..tail`, so the producer initialised it and
                // published it with its Release store of `tail`, which we Acquire-loaded.
                unsafe { slot.read() }
            });
        }
        let init = buf[..k].as_ptr().cast::<T>();
        // SAFETY: the first `k` elements of `buf` were initialised by the loop above, and
        // `MaybeUninit<T>` has the layout of `T`.
        f(unsafe { core::slice::from_raw_parts(init, k) });
    }

    /// Compile-time check (per `T`) that a slot has the size and alignment of a `T`, which
    /// handing slots out as a `&[T]` relies on.
    #[cfg(not(loom))]
    const SLOT_IS_T: () = assert!(
        core::mem::size_of::<UnsafeCell<MaybeUninit<T>>>() == core::mem::size_of::<T>()
            && core::mem::align_of::<UnsafeCell<MaybeUninit<T>>>() == core::mem::align_of::<T>()
    );

    /// Whether the producer is gone. Once this returns `true`, a following
    /// [`drain`](Self::drain) and [`take_drops`](Self::take_drops) see everything it did.
    pub fn is_abandoned(&self) -> bool {
        // Acquire: pairs with the Release store in `Producer::drop`.
        self.shared.abandoned.load(Ordering::Acquire)
    }

    /// Calls `f(key, dropped, dropped_errors)` for every key whose counters moved since the last
    /// call, with the increments. Cheap when nothing was dropped.
    pub fn take_drops(&mut self, mut f: impl FnMut(usize, u64, u64)) {
        // Acquire: pairs with the producer's Release store of the total, so the per-key counters
        // read below are at least as new as this total.
        let total = self.shared.drops_total.load(Ordering::Acquire);
        if total == self.seen_total {
            return;
        }
        self.seen_total = total;
        if self.seen.len() < self.shared.drops.len() {
            self.seen.resize(self.shared.drops.len(), 0);
        }
        for (key, (counter, seen)) in self.shared.drops.iter().zip(&mut self.seen).enumerate() {
            let now = counter.load(Ordering::Relaxed);
            if now != *seen {
                let (d_now, e_now) = unpack(now);
                let (d_seen, e_seen) = unpack(*seen);
                f(
                    key,
                    u64::from(d_now.wrapping_sub(d_seen)),
                    u64::from(e_now.wrapping_sub(e_seen)),
                );
                *seen = now;
            }
        }
    }

    /// Calls `f(key, increment)` for every key in `keys` whose tally moved since the last
    /// call. Keys out of range are skipped.
    pub fn take_tallies(&mut self, keys: &[u32], mut f: impl FnMut(usize, u64)) {
        let tallies = &self.shared.tallies;
        if self.seen_tallies.len() < tallies.len() {
            self.seen_tallies.resize(tallies.len(), 0);
        }
        for &key in keys {
            let key = key as usize;
            let (Some(t), Some(seen)) = (tallies.get(key), self.seen_tallies.get_mut(key)) else {
                continue;
            };
            let now = t.load(Ordering::Relaxed);
            if now != *seen {
                f(key, now.wrapping_sub(*seen));
                *seen = now;
            }
        }
    }

    /// The tag given at creation.
    pub fn tag(&self) -> u64 {
        self.shared.tag
    }

    /// The label given at creation.
    pub fn label(&self) -> Option<&std::sync::Arc<str>> {
        self.shared.label.as_ref()
    }

    /// Whether no value is waiting (may turn false at any moment while the producer runs).
    #[allow(dead_code)] // the twin of `len`, for the loom-visible API
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of values waiting (a lower bound while the producer runs). Loads the tail
    /// afresh, so after a [`Doorbell::prepare_sleep`] it is the consumer's re-check.
    pub fn len(&self) -> usize {
        // Acquire: as in `drain`.
        self.shared
            .tail
            .load(Ordering::Acquire)
            .wrapping_sub(self.head)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn drain_chunks_hands_over_bounded_chunks_in_order_across_wrap() {
        for (capacity, chunk) in [(1 << 10, 8), (1 << 14, 128), (1 << 18, CHUNK), (2, 1)] {
            let (mut p, mut c) = channel::<usize>(capacity, 1);
            assert_eq!(c.chunk_len(), chunk, "capacity {capacity}");
            // Move the head near the end of the buffer, then fill across the wrap.
            let lead = capacity - capacity / 4 - 1;
            for v in 0..lead {
                p.push(v).unwrap();
            }
            assert_eq!(c.drain(lead, |_| {}), lead);
            for v in lead..lead + capacity {
                p.push(v).unwrap();
            }
            // `max` cuts a chunk short.
            let mut got = Vec::new();
            let mut sizes = Vec::new();
            let cut = chunk.min(3);
            assert_eq!(
                c.drain_chunks(cut, |ch| {
                    sizes.push(ch.len());
                    got.extend_from_slice(ch);
                }),
                cut
            );
            assert_eq!(sizes, [cut]);
            sizes.clear();
            let n = c.drain_chunks(usize::MAX, |ch| {
                sizes.push(ch.len());
                got.extend_from_slice(ch);
            });
            assert_eq!(n, capacity - cut);
            assert_eq!(got, (lead..lead + capacity).collect::<Vec<_>>());
            assert!(sizes.iter().all(|&k| (1..=chunk).contains(&k)), "{sizes:?}");
            // No chunk crosses the end of the buffer: the sizes add up to it exactly.
            let to_end = capacity - (lead + cut) % capacity;
            let mut sum = 0;
            assert!(
                to_end > n
                    || sizes.iter().any(|&k| {
                        sum += k;
                        sum == to_end
                    }),
                "capacity {capacity}: {sizes:?}"
            );
            // Every slot was released: the ring takes a full lap again.
            for v in 0..capacity {
                p.push(v).unwrap();
            }
            assert!(p.push(0).is_err());
        }
    }

    /// A batch is written up to where a look at `head` is due, across the wrap, and read back
    /// in order; the push after it looks (and finds the ring full, or rings the doorbell).
    #[test]
    fn push_many_writes_up_to_the_next_look_at_head() {
        let (mut p, mut c) = channel::<usize>(8, 1);
        for v in 0..5 {
            p.push(v).unwrap();
        }
        assert_eq!(c.drain(5, |_| {}), 5);
        // The next look is due where the ring looked full at the last look: 8 pushes in.
        assert_eq!(p.push_many_unless_due(10, |i| 100 + i), 3);
        assert_eq!(p.push_many_unless_due(10, |i| 200 + i), 0, "a look is due");
        p.push(103).unwrap(); // looks: 5 were drained, so there is room for 5 more
        assert_eq!(p.push_many_unless_due(10, |i| 104 + i), 4);
        assert!(p.push(0).is_err(), "full: 8 waiting");
        let mut got = Vec::new();
        assert_eq!(c.drain(usize::MAX, |v| got.push(v)), 8);
        assert_eq!(got, (100..108).collect::<Vec<_>>());
        assert_eq!(p.push_many_unless_due(0, |_| unreachable!()), 0);

        // With a doorbell, a batch stops at the high-water mark, and the push there rings.
        let (mut p, mut c) = channel::<usize>(16, 1);
        let bell = Arc::new(Doorbell::new(std::thread::current()));
        bell.prepare_sleep();
        p.set_doorbell(Arc::clone(&bell), 4);
        p.push(0).unwrap(); // the first push looks at `head` and sets the next look
        assert_eq!(p.push_many_unless_due(100, |i| 1 + i), 3);
        assert!(bell.is_sleeping());
        p.push(4).unwrap();
        assert!(!bell.is_sleeping(), "rung at the mark");
        assert_eq!(c.drain(usize::MAX, |_| {}), 5);
    }

    #[test]
    fn drain_chunks_releases_a_chunk_only_after_the_callback_returns() {
        let (mut p, mut c) = channel::<usize>(2 * CHUNK, 1);
        let len = c.chunk_len();
        for v in 0..2 * CHUNK {
            p.push(v).unwrap();
        }
        let mut seen = 0;
        c.drain_chunks(len, |chunk| {
            // The chunk is the ring's own slots: none of them may be refilled yet.
            assert_eq!(p.push(usize::MAX), Err(usize::MAX));
            assert_eq!(chunk, (0..len).collect::<Vec<_>>());
            seen += chunk.len();
        });
        assert_eq!(seen, len);
        for v in 0..len {
            p.push(v).unwrap();
        }
        assert!(p.push(0).is_err());
    }

    #[test]
    fn push_pop_in_order_across_wrap() {
        let (mut p, mut c) = channel::<u32>(4, 1);
        for round in 0..10u32 {
            for i in 0..3 {
                p.push(round * 10 + i).unwrap();
            }
            for i in 0..3 {
                assert_eq!(c.pop(), Some(round * 10 + i));
            }
            assert_eq!(c.pop(), None);
        }
    }

    #[test]
    fn full_ring_hands_value_back_and_counts_are_exact() {
        let (mut p, mut c) = channel::<u32>(2, 3);
        assert_eq!(p.capacity(), 2);
        p.push(1).unwrap();
        p.push(2).unwrap();
        assert_eq!(p.push(3), Err(3));
        p.count_drop(2, true);
        p.count_drop(0, false);
        p.count_drop(99, false); // clamped to the last key
        let mut seen = Vec::new();
        c.take_drops(|k, d, e| seen.push((k, d, e)));
        assert_eq!(seen, vec![(0, 1, 0), (2, 2, 1)]);
        c.take_drops(|_, _, _| panic!("no new drops"));
        assert_eq!(c.drain(10, |_| {}), 2);
        p.push(4).unwrap();
        assert_eq!(c.pop(), Some(4));
    }

    #[test]
    fn abandoned_after_producer_drop_and_orphan_detection() {
        let (mut p, mut c) = channel::<u8>(8, 1);
        p.push(7).unwrap();
        assert!(!c.is_abandoned());
        drop(p);
        assert!(c.is_abandoned());
        assert_eq!(c.pop(), Some(7));
        let (p, c) = channel::<u8>(8, 1);
        assert!(!p.is_orphaned());
        drop(c);
        assert!(p.is_orphaned());
    }

    #[test]
    fn doorbell_rings_once_per_crossing_of_the_high_water_mark() {
        let bell = Arc::new(Doorbell::new(std::thread::current()));
        let (mut p, mut c) = channel::<u32>(8, 1);
        p.set_doorbell(Arc::clone(&bell), 4);
        bell.prepare_sleep();
        for v in 0..4 {
            p.push(v).unwrap();
        }
        assert!(bell.is_sleeping(), "at the mark; the next push notices");
        p.push(4).unwrap();
        assert!(
            !bell.is_sleeping(),
            "the push that finds four waiting rings"
        );
        bell.prepare_sleep();
        for v in 5..8 {
            p.push(v).unwrap();
        }
        assert!(
            bell.is_sleeping(),
            "past the mark: no new ring until the ring looks full"
        );
        assert_eq!(p.push(8), Err(8));
        assert!(
            !bell.is_sleeping(),
            "the push that finds the ring full rings again"
        );
        bell.prepare_sleep();
        assert_eq!(p.push(9), Err(9));
        assert!(
            bell.is_sleeping(),
            "a full ring rings once, not on every push"
        );
        // The consumer drains: the next crossing rings again.
        assert_eq!(c.drain(usize::MAX, |_| {}), 8);
        for v in 0..4 {
            p.push(v).unwrap();
        }
        assert!(bell.is_sleeping());
        p.push(4).unwrap();
        assert!(!bell.is_sleeping());

        // A lower mark: while the consumer stays behind, every `high_water` pushes ring again.
        let (mut p, _c) = channel::<u32>(8, 1);
        p.set_doorbell(Arc::clone(&bell), 2);
        bell.prepare_sleep();
        p.push(0).unwrap();
        p.push(1).unwrap();
        assert!(bell.is_sleeping());
        p.push(2).unwrap();
        assert!(!bell.is_sleeping(), "two waiting: rung");
        bell.prepare_sleep();
        p.push(3).unwrap();
        assert!(bell.is_sleeping());
        p.push(4).unwrap();
        assert!(
            !bell.is_sleeping(),
            "two more pushes, still behind: rung again"
        );
        // The unparks went to this thread; do not leave a token behind.
        std::thread::park_timeout(std::time::Duration::from_millis(1));
    }

    #[test]
    fn drain_respects_max() {
        let (mut p, mut c) = channel::<u16>(8, 1);
        for i in 0..6 {
            p.push(i).unwrap();
        }
        let mut got = Vec::new();
        assert_eq!(c.drain(4, |v| got.push(v)), 4);
        assert_eq!(c.len(), 2);
        assert_eq!(c.drain(4, |v| got.push(v)), 2);
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    }
}

#[cfg(all(test, not(loom)))]
mod props {
    //! The ring against a `VecDeque` model under random sequences of operations.

    use std::collections::VecDeque;

    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    /// One step of a test run.
    #[derive(Clone, Debug)]
    enum Step {
        /// Push `value`; if the ring is full, count the drop under `key` as the hot path does.
        Push {
            value: u32,
            key: usize,
            error: bool,
        },
        Pop,
        Drain(usize),
        /// A drop counted directly, possibly under a key out of range (clamped to the last).
        CountDrop {
            key: usize,
            error: bool,
        },
        TakeDrops,
    }

    fn step(keys: usize) -> impl Strategy<Value = Step> {
        // Keys up to two past the last one, to exercise the clamp.
        let key = 0..keys + 2;
        prop_oneof![
            5 => (any::<u32>(), key.clone(), any::<bool>())
                .prop_map(|(value, key, error)| Step::Push { value, key, error }),
            2 => Just(Step::Pop),
            2 => (0usize..=9).prop_map(Step::Drain),
            1 => (key, any::<bool>()).prop_map(|(key, error)| Step::CountDrop { key, error }),
            1 => Just(Step::TakeDrops),
        ]
    }

    /// A capacity (1 to 64), a key count (1 to 4) and up to 300 steps.
    fn run() -> impl Strategy<Value = (usize, usize, Vec<Step>)> {
        (0u32..=6, 1usize..=4)
            .prop_flat_map(|(shift, keys)| (Just(1 << shift), Just(keys), vec(step(keys), 0..300)))
    }

    /// The model: the queue, and per key the `[dropped, dropped errors]` not yet taken.
    struct Model {
        queue: VecDeque<u32>,
        capacity: usize,
        drops: Vec<[u64; 2]>,
    }

    impl Model {
        fn count_drop(&mut self, key: usize, error: bool) {
            let last = self.drops.len() - 1;
            let d = &mut self.drops[key.min(last)];
            d[0] += 1;
            d[1] += u64::from(error);
        }

        /// The increments `take_drops` must report, in key order, and resets them.
        fn take_drops(&mut self) -> Vec<(usize, u64, u64)> {
            let out = self
                .drops
                .iter()
                .enumerate()
                .filter(|(_, d)| **d != [0, 0])
                .map(|(k, d)| (k, d[0], d[1]))
                .collect();
            self.drops.iter_mut().for_each(|d| *d = [0, 0]);
            out
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn ring_matches_vecdeque_model((capacity, keys, steps) in run()) {
            let (mut p, mut c) = channel::<u32>(capacity, keys);
            prop_assert_eq!(p.capacity(), capacity);
            let mut m = Model { queue: VecDeque::new(), capacity, drops: vec![[0, 0]; keys] };
            for s in steps {
                match s {
                    Step::Push { value, key, error } => match p.push(value) {
                        Ok(()) => {
                            prop_assert!(m.queue.len() < m.capacity, "push accepted into a full ring");
                            m.queue.push_back(value);
                        }
                        Err(back) => {
                            prop_assert_eq!(back, value);
                            prop_assert_eq!(m.queue.len(), m.capacity, "push refused below capacity");
                            p.count_drop(key, error);
                            m.count_drop(key, error);
                        }
                    },
                    Step::Pop => prop_assert_eq!(c.pop(), m.queue.pop_front()),
                    Step::Drain(max) => {
                        let mut got = Vec::new();
                        let n = c.drain(max, |v| got.push(v));
                        prop_assert_eq!(n, got.len());
                        // Exactly `min(max, waiting)`, oldest first.
                        prop_assert_eq!(n, max.min(m.queue.len()));
                        let want: Vec<u32> = m.queue.drain(..n).collect();
                        prop_assert_eq!(got, want);
                    }
                    Step::CountDrop { key, error } => {
                        p.count_drop(key, error);
                        m.count_drop(key, error);
                    }
                    Step::TakeDrops => {
                        let mut got = Vec::new();
                        c.take_drops(|k, d, e| got.push((k, d, e)));
                        prop_assert_eq!(got, m.take_drops());
                    }
                }
                prop_assert_eq!(c.len(), m.queue.len());
            }

            // The producer goes away: what is left is still there, in order, with its drops.
            prop_assert!(!c.is_abandoned());
            drop(p);
            prop_assert!(c.is_abandoned());
            let mut rest = Vec::new();
            while c.drain(usize::MAX, |v| rest.push(v)) > 0 {}
            prop_assert_eq!(rest, Vec::from(m.queue.clone()));
            let mut got = Vec::new();
            c.take_drops(|k, d, e| got.push((k, d, e)));
            prop_assert_eq!(got, m.take_drops());
            prop_assert_eq!(c.pop(), None);
        }
    }

    /// One step of a consumer that sleeps, and of its producer.
    #[derive(Clone, Debug)]
    enum BellStep {
        Push,
        /// Drain up to this many (only while awake).
        Drain(usize),
        /// Announce sleep, re-check, and sleep if the ring holds fewer than the low-water mark.
        Sleep,
        /// Wake without being rung (a timed wake-up).
        Wake,
    }

    /// A capacity (1 to 64), a high-water mark (1 to capacity), a low-water mark (1 to the
    /// high one) and up to 300 steps.
    fn bell_run() -> impl Strategy<Value = (usize, usize, usize, Vec<BellStep>)> {
        (0u32..=6)
            .prop_flat_map(|shift| {
                let cap = 1usize << shift;
                (Just(cap), 1..=cap)
            })
            .prop_flat_map(|(cap, high)| {
                let step = prop_oneof![
                    8 => Just(BellStep::Push),
                    2 => (1usize..=16).prop_map(BellStep::Drain),
                    2 => Just(BellStep::Sleep),
                    1 => Just(BellStep::Wake),
                ];
                (Just(cap), Just(high), 1..=high, vec(step, 0..300))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A consumer that sleeps only when its ring holds fewer than `low` values is rung
        /// before its ring holds `high + low - 1` values: the ring never holds more while it
        /// sleeps, and so no push fails while it sleeps if `high + low <= capacity`.
        #[test]
        fn a_sleeping_consumer_is_rung_before_its_ring_fills(
            (capacity, high, low, steps) in bell_run()
        ) {
            let bell = Arc::new(Doorbell::new(std::thread::current()));
            let (mut p, mut c) = channel::<u32>(capacity, 1);
            p.set_doorbell(Arc::clone(&bell), high);
            let bound = high + low - 1;
            for s in steps {
                match s {
                    BellStep::Push => {
                        let asleep = bell.is_sleeping();
                        let pushed = p.push(0).is_ok();
                        prop_assert!(
                            pushed || !asleep || high + low > capacity,
                            "the ring filled while its consumer slept"
                        );
                    }
                    BellStep::Drain(n) => {
                        if !bell.is_sleeping() {
                            c.drain(n, |_| {});
                        }
                    }
                    BellStep::Sleep => {
                        if !bell.is_sleeping() {
                            bell.prepare_sleep();
                            if c.len() >= low {
                                bell.awake();
                            }
                        }
                    }
                    BellStep::Wake => bell.awake(),
                }
                if bell.is_sleeping() {
                    let waiting = c.len();
                    prop_assert!(waiting <= bound, "{waiting} waiting while asleep (bound {bound})");
                }
            }
            std::thread::park_timeout(std::time::Duration::from_millis(1));
        }
    }

    /// With values waiting beyond the consumer's cached tail, `drain(max)` reloads the tail
    /// (as rtrb's `read_chunk` does) instead of stopping at the stale cached one.
    #[test]
    fn drain_reloads_a_stale_cached_tail() {
        let (mut p, mut c) = channel::<u32>(4, 1);
        p.push(1).unwrap();
        p.push(2).unwrap();
        assert_eq!(c.pop(), Some(1)); // caches tail = 2
        p.push(3).unwrap();
        assert_eq!(c.len(), 2);
        let mut got = Vec::new();
        c.drain(10, |v| got.push(v));
        assert_eq!(got, vec![2, 3]);
    }
}
