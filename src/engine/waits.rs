//! Deadlock detection for the aggregator locks of every engine in the process.
//!
//! Window and alert callbacks run inside their engine's aggregator lock (on its thread, or
//! on the thread of a `flush`). A callback that flushes, reconfigures or shuts down another
//! engine waits for that engine's lock, or for its thread; if that engine's callback, at the
//! same time, waits for the first engine, neither returns. This module keeps the wait-for
//! graph of those waits and refuses the wait that would close a cycle, so the call returns a
//! typed error instead of blocking forever (the classic wait-for graph of database lock
//! managers: a cycle check when a waiter enters the graph).
//!
//! - Each engine's lock has a [`Holder`]: the token of the thread holding it, 0 when none.
//! - Only a thread that already holds an aggregator lock can be part of a cycle, so only such
//!   threads register their waits, in [`WAITS`], under its mutex, after checking that the
//!   chain "holder of the lock waited for, the lock that thread waits for, its holder, …"
//!   does not lead back to them. The aggregator thread taking its own lock between passes
//!   holds none, so its loop never touches `WAITS`.
//! - The last thread to close a cycle always sees it: every other edge of the cycle was
//!   added before (a holder is stored before the holder's own wait is registered, and waits
//!   are registered under one mutex). A check never sees a cycle that does not exist: a
//!   holder is cleared before its lock is released, and a thread's wait, while registered,
//!   means the thread is blocked, so the stores the check reads are ordered before it by
//!   that mutex.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LockResult, Mutex, MutexGuard, PoisonError};

/// The token of the thread holding one engine's aggregator lock (0: none).
#[derive(Debug, Default)]
pub(super) struct Holder(AtomicU64);

impl Holder {
    /// Whether the calling thread holds the lock.
    pub(super) fn is_me(&self) -> bool {
        // Relaxed: only this thread's own stores can make it equal to this thread's token.
        self.0.load(Ordering::Relaxed) == token()
    }
}

/// Why a wait was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// The calling thread holds the lock itself (a callback reached back into the engine
    /// whose pass is running on this thread, directly or through other engines' callbacks).
    Reentrant,
    /// The holder waits, through a chain of others, for a lock the calling thread holds.
    Cycle,
}

thread_local! {
    /// This thread's token: nonzero, unique in the process.
    static TOKEN: Cell<u64> = const { Cell::new(0) };
    /// How many aggregator locks this thread holds.
    static HELD: Cell<u32> = const { Cell::new(0) };
}

/// The calling thread's token.
fn token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    TOKEN.with(|t| {
        if t.get() == 0 {
            // Relaxed: uniqueness needs only the atomicity of the add.
            t.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        t.get()
    })
}

/// Whether the calling thread holds any engine's aggregator lock: it is inside a pass, and
/// so possibly inside a window or alert callback.
pub(super) fn holds_any() -> bool {
    HELD.get() > 0
}

/// The waits in progress of threads that hold an aggregator lock: the thread's token and
/// the holder of what it waits for.
static WAITS: Mutex<Vec<(u64, Arc<Holder>)>> = Mutex::new(Vec::new());

fn waits() -> MutexGuard<'static, Vec<(u64, Arc<Holder>)>> {
    // The list is consistent at every unlock (no code that can panic runs under it).
    WAITS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `wait`, which blocks until the lock that `holder` describes is free (taking it, or
/// joining the only thread that takes it), unless waiting could deadlock.
///
/// # Errors
/// [`Refused`] without calling `wait` when the calling thread holds that lock, or when it
/// holds a lock that the holder waits for through a chain of waits.
pub(super) fn wait_for<R>(holder: &Arc<Holder>, wait: impl FnOnce() -> R) -> Result<R, Refused> {
    if holder.is_me() {
        return Err(Refused::Reentrant);
    }
    if !holds_any() {
        // No lock held: no cycle can pass through this thread.
        return Ok(wait());
    }
    let me = token();
    {
        let mut waits = waits();
        // Relaxed here and below: the stores these loads must see are ordered before them by
        // the `WAITS` mutex (module docs).
        let mut next = holder.0.load(Ordering::Relaxed);
        // A chain visits each waiting thread at most once unless it loops among others
        // (a cycle that does not include this thread, which its own members refuse).
        for _ in 0..=waits.len() {
            if next == 0 {
                break;
            }
            if next == me {
                return Err(Refused::Cycle);
            }
            match waits.iter().find(|(t, _)| *t == next) {
                Some((_, h)) => next = h.0.load(Ordering::Relaxed),
                None => break,
            }
        }
        waits.push((me, Arc::clone(holder)));
    }
    let r = wait();
    waits().retain(|(t, _)| *t != me);
    Ok(r)
}

/// An aggregator lock held, with its holder registered.
pub(super) struct Locked<'a, T> {
    // Declared first so it is dropped first: the holder is cleared before the lock is
    // released.
    _held: Held<'a>,
    guard: MutexGuard<'a, T>,
}

/// The holder registration of a [`Locked`].
struct Held<'a>(&'a Holder);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Relaxed: see `wait_for`.
        self.0 .0.store(0, Ordering::Relaxed);
        HELD.set(HELD.get() - 1);
    }
}

/// Why [`lock`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LockFailed {
    /// Waiting could deadlock.
    Refused(Refused),
    /// A thread panicked holding the lock.
    Poisoned,
}

/// Takes `mutex`, the aggregator lock that `holder` describes, through [`wait_for`].
///
/// # Errors
/// [`LockFailed::Refused`] as [`wait_for`]; [`LockFailed::Poisoned`].
pub(super) fn lock<'a, T>(
    mutex: &'a Mutex<T>,
    holder: &'a Arc<Holder>,
) -> Result<Locked<'a, T>, LockFailed> {
    let guard: LockResult<MutexGuard<'a, T>> =
        wait_for(holder, || mutex.lock()).map_err(LockFailed::Refused)?;
    let guard = guard.map_err(|_| LockFailed::Poisoned)?;
    // Relaxed: see `wait_for`.
    holder.0.store(token(), Ordering::Relaxed);
    HELD.set(HELD.get() + 1);
    Ok(Locked {
        _held: Held(holder),
        guard,
    })
}

impl<T> std::ops::Deref for Locked<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}
