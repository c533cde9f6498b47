//! One switch between `std` and [`loom`](https://docs.rs/loom) for everything the lock-free code
//! shares between threads.
//!
//! Under `RUSTFLAGS="--cfg loom"` the atomics, fences, `Arc`, `Mutex`, `UnsafeCell` and the
//! `Thread` handle below are loom's, so the model checker sees every access of the ring, of
//! thread registration and of the doorbell's park/unpark hand-off. Outside loom
//! they are the `std` types, plus an `UnsafeCell` wrapper with loom's closure API
//! (`with`/`with_mut`) so the same code compiles both ways (the pattern of tokio's
//! `src/loom/std/unsafe_cell.rs`).

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex};
#[cfg(loom)]
pub(crate) use loom::thread::Thread;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex};
#[cfg(not(loom))]
pub(crate) use std::thread::Thread;

/// `std::cell::UnsafeCell` with loom's closure-based access API.
///
/// `repr(transparent)`: it has the layout of `std::cell::UnsafeCell<T>`, hence of `T`, which
/// the ring relies on to hand out its slots as a slice of values (`ring::Consumer::drain_chunks`).
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

// The layout the attribute above promises, checked for a few shapes (the ring checks its own
// slot type per `T`).
#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, size_of};
    assert!(size_of::<UnsafeCell<u8>>() == size_of::<u8>());
    assert!(size_of::<UnsafeCell<[u64; 2]>>() == size_of::<[u64; 2]>());
    assert!(align_of::<UnsafeCell<[u64; 2]>>() == align_of::<[u64; 2]>());
    assert!(size_of::<UnsafeCell<u128>>() == size_of::<u128>());
    assert!(align_of::<UnsafeCell<u128>>() == align_of::<u128>());
};

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared raw pointer to the contents.
    #[inline(always)]
    #[allow(dead_code)] // used by the consumer side; kept for parity with loom's API
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with an exclusive raw pointer to the contents.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
