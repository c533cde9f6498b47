//! The hand-off of per-operation sampling settings to the hot path.
//!
//! A configuration change stores each changed operation's [`Word`] into a table that the hot
//! path reads directly: every call loads its operation's word (one load of a read-mostly line,
//! no read-modify-write, no lock, no `arc-swap` load) and acts on it. [`ALL`] (zero) times the
//! call; a word with [`COUNT`] (the sign bit) set only counts it; any other word samples, and
//! the thread compares it with the word its own gap state was drawn under, starting a new gap
//! when they differ. Each operation's word is complete in itself; a thread that still sees the
//! old word acts on the old rule for a call or two more, as it would had the change come a
//! moment later. The words are stored with `Release` and loaded with `Acquire` (a plain load
//! on x86-64) for what the configuring thread did before: it marks the operation's tally as
//! one the aggregator must read, and a thread that counts a call under the new word must not
//! exit, and have its ring freed, before the aggregator can see that mark.
//!
//! Every stored word other than [`ALL`] carries the number of the change that stored it
//! (23 bits), so that a thread sees an operation's rule as changed even when the same mode
//! comes back (`Every(4)`, then `CountOnly`, then `Every(4)` again): the count-only calls in
//! between moved the thread's tally without touching its gap state. Writers are serialised by
//! the engine's configuration lock.

use crate::loom::{AtomicU64, Ordering};

/// One operation's sampling setting as the hot path reads it: the mode in bits 0–7, its
/// parameter in bits 8–39, the number of the change that stored it in bits 40–62, and
/// [`COUNT`] in bit 63 for the modes that time nothing.
pub type Word = u64;

/// Every call timed.
pub const ALL: Word = 0;
/// Set in the words of the modes that time no call ([`Mode::CountOnly`], [`Mode::Disabled`]):
/// the sign bit, so that one `test` of the word tells all three cases apart (zero: timed;
/// negative: counted; positive: sampled).
pub const COUNT: Word = 1 << 63;
const MODE_EVERY: u64 = 1;
const MODE_PROBABILITY: u64 = 2;
const MODE_COUNT_ONLY: u64 = 3;
const MODE_DISABLED: u64 = 4;
const PARAM_SHIFT: u32 = 8;
const CHANGE_SHIFT: u32 = 40;
const CHANGE_MASK: u64 = (1 << 23) - 1;

/// Words of padding on either side of the table, so that no other allocation shares a cache
/// line (or the line pair an adjacent-line prefetcher fetches) with words every call reads.
const PAD: usize = 16;

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
        Mode::Every(n) => (u64::from(n) << PARAM_SHIFT) | MODE_EVERY,
        Mode::Probability(t) => (u64::from(t) << PARAM_SHIFT) | MODE_PROBABILITY,
        Mode::CountOnly => COUNT | MODE_COUNT_ONLY,
        Mode::Disabled => COUNT | MODE_DISABLED,
    }
}

/// Decodes a word written by [`encode`] (with or without the number of its change).
pub fn decode(word: Word) -> Mode {
    let param = (word >> PARAM_SHIFT) as u32;
    match word & 0xff {
        MODE_EVERY => Mode::Every(param),
        MODE_PROBABILITY => Mode::Probability(param),
        MODE_COUNT_ONLY => Mode::CountOnly,
        MODE_DISABLED => Mode::Disabled,
        _ => Mode::All,
    }
}

/// Per-operation words, read by the hot path in place.
pub struct Table {
    /// `PAD` words, the table's `len` words, `PAD` words.
    words: Box<[AtomicU64]>,
    /// Changes published so far; written by [`publish`](Self::publish) only.
    changes: AtomicU64,
}

impl Table {
    /// A table of `len` operations, all [`ALL`].
    pub fn new(len: usize) -> Self {
        Self {
            words: (0..len + 2 * PAD).map(|_| AtomicU64::new(ALL)).collect(),
            changes: AtomicU64::new(0),
        }
    }

    /// Number of operations.
    pub fn ops(&self) -> usize {
        self.words.len() - 2 * PAD
    }

    /// The word of operation `op`, if it is in the table. The hot path reads the same word
    /// through [`as_ptr`](Self::as_ptr).
    pub fn word(&self, op: usize) -> Option<Word> {
        // Acquire: pairs with `publish`'s Release (see the module docs).
        (op < self.ops()).then(|| self.words[PAD + op].load(Ordering::Acquire))
    }

    /// The word of operation 0; operation `op`'s word is `op` words on. Valid while the table
    /// is; each word is read with an `Acquire` load, as [`word`](Self::word) does.
    pub fn as_ptr(&self) -> *const AtomicU64 {
        self.words[PAD..].as_ptr()
    }

    /// Stores the `(op, word)` changes, each stamped with the number of this change. Callers
    /// hold the configuration lock. Out-of-range ops are skipped.
    pub fn publish(&self, changes: impl IntoIterator<Item = (usize, Word)>) {
        // Writers are serialised, so a load and a store count the changes exactly.
        let change = self.changes.load(Ordering::Relaxed).wrapping_add(1);
        self.changes.store(change, Ordering::Relaxed);
        let stamp = (change & CHANGE_MASK) << CHANGE_SHIFT;
        for (op, word) in changes {
            if op < self.ops() {
                let word = if word == ALL { ALL } else { word | stamp };
                // Release: what the caller did before (the aggregator's mark on the operation's
                // tally) happens before the calls of any thread that acts on this word.
                self.words[PAD + op].store(word, Ordering::Release);
            }
        }
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
    fn the_sign_and_zero_of_a_word_tell_its_kind() {
        for n in [2, 7, u32::MAX] {
            let w = encode(Mode::Every(n)) | (CHANGE_MASK << CHANGE_SHIFT);
            assert!((w as i64) > 0, "Every({n}) samples");
            let w = encode(Mode::Probability(n)) | (CHANGE_MASK << CHANGE_SHIFT);
            assert!((w as i64) > 0, "Probability({n}) samples");
        }
        for m in [Mode::CountOnly, Mode::Disabled] {
            assert!((encode(m) as i64) < 0, "{m:?} only counts");
            assert_eq!(encode(m) & COUNT, COUNT);
        }
        assert_eq!(encode(Mode::All), 0);
    }

    #[test]
    fn publish_stamps_every_change_so_a_returning_mode_is_seen() {
        let t = Table::new(3);
        assert_eq!(t.ops(), 3);
        let every3 = encode(Mode::Every(3));
        t.publish([(1, encode(Mode::CountOnly)), (2, every3)]);
        let first = t.word(2).unwrap();
        assert_eq!(decode(first), Mode::Every(3));
        t.publish([(2, encode(Mode::CountOnly))]);
        t.publish([(2, every3), (9, every3)]); // 9 is out of range: skipped
        let again = t.word(2).unwrap();
        assert_eq!(decode(again), Mode::Every(3));
        assert_ne!(
            first, again,
            "the same mode, published again, is a new word"
        );
        assert_eq!(t.word(9), None);
        t.publish([(1, ALL)]);
        let seen: Vec<Mode> = (0..3).map(|op| decode(t.word(op).unwrap())).collect();
        assert_eq!(seen, [Mode::All, Mode::All, Mode::Every(3)]);
        assert_eq!(t.word(1), Some(ALL), "ALL stays zero");
        // SAFETY: operation 2 is in the table, so the offset stays inside its words.
        let word = unsafe { t.as_ptr().add(2) };
        // SAFETY: `word` points to a live word of `t`, read through a shared reference.
        let through_ptr = unsafe { &*word }.load(Ordering::Relaxed);
        assert_eq!(through_ptr, again);
    }
}
