//! The fixed-size record a hot-path call pushes into its thread's ring.

/// One call, as the hot path leaves it for the aggregator: 16 bytes, plain data, read through
/// its accessors.
///
/// Layout (`repr(C)`, two `u64` words so that the hot path builds it in two registers and
/// passes it in them; native endianness, never persisted):
///
/// | bytes  | field   | plain timed call            | [`NANOS`](Self::NANOS)  | [`TICKS`](Self::TICKS)     |
/// |--------|---------|-----------------------------|-------------------------|----------------------------|
/// | 0..8   | `a`     | raw clock ticks at the end  | duration in ns          | duration in ticks          |
/// | 8..12  | `b`     | duration in ticks (< 2^32)  | weight if `WEIGHTED`    | weight if `WEIGHTED`       |
/// | 12..14 | `op`    | operation id                | operation id            | operation id               |
/// | 14..16 | `flags` | see below                   |                         |                            |
///
/// `flags`: bits 0..4 [`ERROR`](Self::ERROR), [`PANIC`](Self::PANIC), [`NANOS`](Self::NANOS),
/// [`UNSAMPLED`](Self::UNSAMPLED); bits 4..12 the error kind (0: none); bit 12
/// [`WEIGHTED`](Self::WEIGHTED); bit 13 [`TICKS`](Self::TICKS); bits 14..16 zero.
///
/// A timed call takes the plain form unless it does not fit: a sampled call that stands for
/// several (its weight needs `b`) or a duration of 2^32 ticks or more (over a second). Those
/// take the `TICKS` form, which has no timestamp: like a `NANOS` event, it belongs to the window
/// open when the aggregator reads it. Ticks become nanoseconds only on the aggregator thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Event {
    /// End ticks (plain timed call) or a duration (`NANOS`: ns, `TICKS`: ticks).
    a: u64,
    /// `b` in bits 0..32: duration ticks (plain timed call) or the weight (with `WEIGHTED`;
    /// else 0); the operation id in bits 32..48; the flags in bits 48..64. One word, so that
    /// the hot path builds the event in two registers and writes it with two stores (three
    /// fields built in memory were four stores, a load and a store).
    w: u64,
}

impl Event {
    /// The call failed.
    pub const ERROR: u32 = 1;
    /// The call's guard was dropped while its thread was panicking (also counted as an error).
    pub const PANIC: u32 = 2;
    /// The event holds a duration in nanoseconds measured elsewhere; it has no timestamp and
    /// belongs to the window open when the aggregator reads it.
    pub const NANOS: u32 = 4;
    /// The failure of a call that was not sampled (and is already counted as unsampled): it
    /// adds an error, not a call. Always set together with `NANOS` and `ERROR`.
    pub const UNSAMPLED: u32 = 8;
    /// Position of the error kind (8 bits; 0: no kind).
    pub const KIND_SHIFT: u32 = 4;
    /// Mask of the error kind.
    pub const KIND_MASK: u32 = 0xff << Self::KIND_SHIFT;
    /// The event stands for several calls: `b` holds the weight. Only with `NANOS` or `TICKS`.
    pub const WEIGHTED: u32 = 1 << 12;
    /// A timed call that did not fit the plain form: the event holds its duration in ticks
    /// and no timestamp.
    pub const TICKS: u32 = 1 << 13;
    /// Flags that need the aggregator's slow path: an error note, an error kind, a weight, or
    /// a timed call without a timestamp.
    pub const SLOW: u32 = Self::UNSAMPLED | Self::KIND_MASK | Self::WEIGHTED | Self::TICKS;

    /// Position of the weight in the hot path's 32-bit flag word (bits 0..12 as in an event's
    /// flags, bits 12..32 the number of calls a sampled call stands for, 0 meaning 1).
    pub const WEIGHT_SHIFT: u32 = 12;
    /// Largest weight an event can carry.
    pub const MAX_WEIGHT: u32 = (1 << (32 - Self::WEIGHT_SHIFT)) - 1;
    /// The event flags in a flag word: bits 0..12.
    const WORD_FLAGS: u32 = (1 << Self::WEIGHT_SHIFT) - 1;

    /// A timed call of `op` from `start` to `end` ticks, from the hot path's flag `word`,
    /// when it fits the plain form: `word` carries no weight and the duration is below 2^32
    /// ticks (see [`fits`](Self::fits)); otherwise use [`timed_wide`](Self::timed_wide).
    #[inline(always)]
    pub fn timed(op: u32, word: u32, end: u64, duration: u64) -> Self {
        debug_assert!(Self::fits(word, duration));
        Self::pack(end, duration as u32, op, word)
    }

    /// Whether a timed call of flag `word` and `duration` ticks fits the plain form.
    #[inline(always)]
    pub fn fits(word: u32, duration: u64) -> bool {
        (duration >> 32) | u64::from(word >> Self::WEIGHT_SHIFT) == 0
    }

    /// A timed call that does not fit the plain form: `duration` ticks, no timestamp, the
    /// weight of `word` (durations beyond `u64` cannot occur; an end before the start, from
    /// two cores' clocks, counts as 0).
    pub fn timed_wide(op: u32, word: u32, start: u64, end: u64) -> Self {
        Self::wide(op, word, Self::TICKS, end.saturating_sub(start))
    }

    /// A call of `ns` nanoseconds measured elsewhere, from the hot path's flag `word` (errors,
    /// kind and weight; `NANOS` is added).
    #[inline(always)]
    pub fn nanos(op: u32, word: u32, ns: u64) -> Self {
        Self::wide(op, word, Self::NANOS, ns)
    }

    /// The `NANOS`/`TICKS` forms (`form`): `a` is the duration, `b` the weight of `word`.
    #[inline(always)]
    fn wide(op: u32, word: u32, form: u32, duration: u64) -> Self {
        let weight = word >> Self::WEIGHT_SHIFT;
        let (b, weighted) = if weight > 1 {
            (weight, Self::WEIGHTED)
        } else {
            (0, 0)
        };
        Self::pack(duration, b, op, (word & Self::WORD_FLAGS) | form | weighted)
    }

    /// The event of fields `a`, `b`, `op` and `flags` (bits 0..16 of each of the last two).
    #[inline(always)]
    fn pack(a: u64, b: u32, op: u32, flags: u32) -> Self {
        let op = u64::from(op as u16);
        let flags = u64::from(flags as u16);
        Self {
            a,
            w: u64::from(b) | op << 32 | flags << 48,
        }
    }

    /// Field `b`.
    #[inline(always)]
    fn b(&self) -> u32 {
        self.w as u32
    }

    /// The operation id.
    #[inline(always)]
    pub fn op(&self) -> u32 {
        u32::from((self.w >> 32) as u16)
    }

    /// The flags (`ERROR`, `PANIC`, `NANOS`, `UNSAMPLED`, the kind, `WEIGHTED`, `TICKS`).
    #[inline(always)]
    pub fn flags(&self) -> u32 {
        (self.w >> 48) as u32
    }

    /// Whether the event carries a timestamp (a plain timed call): then [`start`](Self::start)
    /// and [`end`](Self::end) are raw clock readings.
    #[inline(always)]
    pub fn has_timestamp(&self) -> bool {
        self.flags() & (Self::NANOS | Self::TICKS) == 0
    }

    /// Raw clock reading at the end of a timed call; 0 for an event without a timestamp.
    #[inline(always)]
    pub fn end(&self) -> u64 {
        if self.has_timestamp() {
            self.a
        } else {
            0
        }
    }

    /// Raw clock reading at the start of a timed call; for an event without a timestamp, the
    /// duration it holds (ns with `NANOS`, ticks with `TICKS`), so that `end - start` never
    /// goes below 0 and [`nanos`](Self::nanos) reads the same field.
    #[inline(always)]
    pub fn start(&self) -> u64 {
        if self.has_timestamp() {
            self.a.wrapping_sub(u64::from(self.b()))
        } else {
            self.a
        }
    }

    /// The duration of a `NANOS` event, in nanoseconds (what `start` held before events
    /// shrank; equal to [`start`](Self::start) for such events).
    #[inline(always)]
    pub fn nanos_value(&self) -> u64 {
        self.a
    }

    /// The duration in ticks of a timed call: `end - start` for a plain one, the held duration
    /// for a `TICKS` one; meaningless with `NANOS`.
    #[inline(always)]
    pub fn duration_ticks(&self) -> u64 {
        if self.flags() & Self::TICKS != 0 {
            self.a
        } else {
            u64::from(self.b())
        }
    }

    /// The operation id (bits 0–15) and the flags (bits 16–31) in one word, the upper half
    /// of the second: one 32-bit compare tells whether two events are of the same operation
    /// and form (the aggregator's runs).
    #[inline(always)]
    pub fn key(&self) -> u32 {
        (self.w >> 32) as u32
    }

    /// [`end`](Self::end) of an event known to have a timestamp (such as one whose flags
    /// have neither `NANOS` nor `TICKS`): no check.
    #[inline(always)]
    pub fn plain_end(&self) -> u64 {
        debug_assert!(self.has_timestamp());
        self.a
    }

    /// [`duration_ticks`](Self::duration_ticks) of an event known to have a timestamp: no
    /// check.
    #[inline(always)]
    pub fn plain_duration_ticks(&self) -> u64 {
        debug_assert!(self.has_timestamp());
        u64::from(self.b())
    }

    /// Whether this event counts as an error.
    #[inline(always)]
    pub fn is_error(&self) -> bool {
        self.w & (u64::from(Self::ERROR | Self::PANIC) << 48) != 0
    }

    /// The calls this event stands for (1 unless it was sampled from several).
    #[inline(always)]
    pub fn weight(&self) -> u64 {
        if self.flags() & Self::WEIGHTED != 0 {
            u64::from(self.b().max(1))
        } else {
            1
        }
    }

    /// The error kind code (0: none).
    #[inline]
    pub fn kind(&self) -> u8 {
        ((self.flags() & Self::KIND_MASK) >> Self::KIND_SHIFT) as u8
    }
}

const _: () = assert!(core::mem::size_of::<Event>() == 16);
// Every operation id, the reserved overflow one included, fits the 16-bit field.
const _: () = assert!(crate::limits::MAX_OPERATIONS <= u16::MAX as usize);

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn plain_timed_call_round_trips() {
        let kind = 7 << Event::KIND_SHIFT;
        let word = Event::ERROR | kind;
        let (start, end) = (1_000_000_007u64, 1_000_500_000u64);
        assert!(Event::fits(word, end - start));
        let ev = Event::timed(65_535, word, end, end - start);
        assert_eq!(ev.op(), 65_535);
        assert_eq!(ev.flags(), word);
        assert!(ev.has_timestamp());
        assert_eq!(
            (ev.start(), ev.end(), ev.duration_ticks()),
            (start, end, end - start)
        );
        assert_eq!((ev.weight(), ev.kind(), ev.is_error()), (1, 7, true));
        assert_eq!(ev.flags() & Event::SLOW, kind);
        let plain = Event::timed(12, Event::ERROR | Event::PANIC, end, 5);
        assert_eq!(plain.key(), 12 | (Event::ERROR | Event::PANIC) << 16);
        assert_eq!(ev.key(), 65_535 | word << 16);
    }

    #[test]
    fn calls_that_do_not_fit_take_the_ticks_form() {
        // A weight, or a duration of 2^32 ticks or more.
        let weighted = 16 << Event::WEIGHT_SHIFT;
        assert!(!Event::fits(weighted, 5));
        assert!(!Event::fits(0, 1 << 32));
        assert!(Event::fits(0, u64::from(u32::MAX)));
        let ev = Event::timed_wide(3, weighted | Event::PANIC, 100, 105);
        assert_eq!(ev.flags(), Event::PANIC | Event::TICKS | Event::WEIGHTED);
        assert!(!ev.has_timestamp());
        assert_eq!((ev.duration_ticks(), ev.weight(), ev.end()), (5, 16, 0));
        let ev = Event::timed_wide(3, 0, 10, 10 + (5 << 32));
        assert_eq!((ev.duration_ticks(), ev.weight()), (5 << 32, 1));
        assert_eq!(ev.flags(), Event::TICKS);
        // An end before the start (two cores' clocks) counts as 0.
        assert_eq!(Event::timed_wide(3, 0, 10, 4).duration_ticks(), 0);
        // Weight 1 from a sampler takes the wide form without the weight flag.
        let ev = Event::timed_wide(3, 1 << Event::WEIGHT_SHIFT, 0, 9);
        assert_eq!((ev.flags(), ev.weight()), (Event::TICKS, 1));
    }

    #[test]
    fn nanos_events_carry_their_weight() {
        let ev = Event::nanos(9, Event::ERROR, u64::MAX);
        assert_eq!((ev.op(), ev.flags()), (9, Event::ERROR | Event::NANOS));
        assert_eq!(
            (ev.nanos_value(), ev.start(), ev.end()),
            (u64::MAX, u64::MAX, 0)
        );
        assert_eq!(ev.weight(), 1);
        let ev = Event::nanos(9, Event::MAX_WEIGHT << Event::WEIGHT_SHIFT, 5);
        assert_eq!(ev.weight(), u64::from(Event::MAX_WEIGHT));
        assert_eq!(ev.flags(), Event::NANOS | Event::WEIGHTED);
        assert_eq!(ev.key(), 9 | (Event::NANOS | Event::WEIGHTED) << 16);
        let plain = Event::nanos(9, Event::ERROR, 5);
        assert_eq!(plain.key(), 9 | (Event::ERROR | Event::NANOS) << 16);
        let wide = Event::timed_wide(9, 0, 0, 1);
        assert_eq!(wide.key(), 9 | Event::TICKS << 16);
    }
}
