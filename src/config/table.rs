//! The hand-off of per-operation sampling settings to the hot path.
//!
//! A configuration change stores each changed operation's [`Word`] and then bumps a
//! generation counter with `Release`. The hot path compares the generation its thread last
//! refreshed at with the current one (a `Relaxed` load of a read-mostly cache line, no
//! read-modify-write, no lock, no `arc-swap` load); only when they differ does it take the cold
//! path, which loads the generation with `Acquire` and copies the words into the thread's own
//! slots. A thread that saw generation `g` with `Acquire` therefore sees every word stored
//! before `g` was published. Writers are serialised by the engine's configuration lock.

use crate::loom::{AtomicU64, Ordering};

/// One operation's sampling setting as the hot path reads it: the mode in the low byte,
/// its parameter in the high 32 bits.
pub type Word = u64;

/// Every call timed.
pub const ALL: Word = 0;
const MODE_EVERY: u64 = 1;
const MODE_PROBABILITY: u64 = 2;
const MODE_COUNT_ONLY: u64 = 3;
const MODE_DISABLED: u64 = 4;

/// What the hot path does with a call, decoded from a [`Word`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Time every call.
    All,
    /// Time one call in `n`.
    Every(u32),
    /// Time a call with probability `threshold / 2^32`.
    Probability(u32),
    /// Time nothing; count calls and errors.
    CountOnly,
    /// Time nothing; count calls only.
    Disabled,
}

/// Encodes a mode.
pub fn encode(mode: Mode) -> Word {
    match mode {
        Mode::All | Mode::Every(0 | 1) => ALL,
        Mode::Every(n) => (u64::from(n) << 32) | MODE_EVERY,
        Mode::Probability(t) => (u64::from(t) << 32) | MODE_PROBABILITY,
        Mode::CountOnly => MODE_COUNT_ONLY,
        Mode::Disabled => MODE_DISABLED,
    }
}

/// Decodes a word written by [`encode`].
pub fn decode(word: Word) -> Mode {
    let param = (word >> 32) as u32;
    match word & 0xff {
        MODE_EVERY => Mode::Every(param),
        MODE_PROBABILITY => Mode::Probability(param),
        MODE_COUNT_ONLY => Mode::CountOnly,
        MODE_DISABLED => Mode::Disabled,
        _ => Mode::All,
    }
}

/// Per-operation words. The generation that announces their changes lives apart (in the
/// engine's key, next to what the hot path already reads) and is passed to
/// [`publish`](Self::publish) and [`read`](Self::read); it is bumped by writers, under the
/// configuration lock, after every batch of word stores.
pub struct Table {
    words: Box<[AtomicU64]>,
}

impl Table {
    /// A table of `len` operations, all [`ALL`].
    pub fn new(len: usize) -> Self {
        Self {
            words: (0..len).map(|_| AtomicU64::new(ALL)).collect(),
        }
    }

    /// Stores the `(op, word)` changes and publishes them as a new `generation`. Callers hold
    /// the configuration lock. Out-of-range ops are skipped.
    pub fn publish(
        &self,
        generation: &AtomicU64,
        changes: impl IntoIterator<Item = (usize, Word)>,
    ) {
        let mut any = false;
        for (op, word) in changes {
            if let Some(w) = self.words.get(op) {
                // Relaxed: published by the Release increment below.
                w.store(word, Ordering::Relaxed);
                any = true;
            }
        }
        if any {
            // Release: the word stores above happen before any Acquire load that sees this
            // generation (in `read`).
            generation.fetch_add(1, Ordering::Release);
        }
    }

    /// Calls `f(op, word)` for every operation and returns the generation the words are at
    /// least as new as.
    pub fn read(&self, generation: &AtomicU64, mut f: impl FnMut(usize, Word)) -> u64 {
        // Acquire: pairs with the Release increment in `publish`, so the words read below are
        // at least those of this generation.
        let generation = generation.load(Ordering::Acquire);
        for (op, w) in self.words.iter().enumerate() {
            f(op, w.load(Ordering::Relaxed));
        }
        generation
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for m in [
            Mode::All,
            Mode::Every(7),
            Mode::Every(1_000_000),
            Mode::Probability(1 << 31),
            Mode::CountOnly,
            Mode::Disabled,
        ] {
            assert_eq!(decode(encode(m)), m);
        }
        assert_eq!(decode(encode(Mode::Every(1))), Mode::All);
    }

    #[test]
    fn publish_bumps_the_generation_once_per_batch() {
        let t = Table::new(3);
        let g = AtomicU64::new(0);
        t.publish(
            &g,
            [(1, encode(Mode::CountOnly)), (2, encode(Mode::Every(3)))],
        );
        assert_eq!(g.load(Ordering::Relaxed), 1);
        t.publish(&g, [(9, ALL)]); // out of range: nothing to announce
        assert_eq!(g.load(Ordering::Relaxed), 1);
        let mut seen = Vec::new();
        assert_eq!(t.read(&g, |op, w| seen.push((op, decode(w)))), 1);
        assert_eq!(
            seen,
            [(0, Mode::All), (1, Mode::CountOnly), (2, Mode::Every(3))]
        );
    }
}
