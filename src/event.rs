//! The fixed-size record a hot-path call pushes into its thread's ring.

/// One timed call, as the hot path leaves it for the aggregator: 24 bytes, plain data.
///
/// Layout (`repr(C)`, native endianness, never persisted):
///
/// | bytes  | field   | meaning                                                          |
/// |--------|---------|------------------------------------------------------------------|
/// | 0..4   | `op`    | operation id inside its engine                                   |
/// | 4..8   | `flags` | bits 0..4: [`Event::ERROR`], [`Event::PANIC`], [`Event::NANOS`],  |
/// |        |         | [`Event::UNSAMPLED`]; bits 4..12: error kind (0: none);          |
/// |        |         | bits 12..32: sampling weight (0 means 1)                         |
/// | 8..16  | `start` | raw clock ticks at start, or a duration in ns with `NANOS`       |
/// | 16..24 | `end`   | raw clock ticks at end; 0 with `NANOS`                           |
///
/// Ticks become nanoseconds only on the aggregator thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Event {
    /// Operation id.
    pub op: u32,
    /// Bit set of `ERROR`, `PANIC`, `NANOS`, `UNSAMPLED`, plus the error kind and the weight.
    pub flags: u32,
    /// Start ticks, or the duration in nanoseconds when `NANOS` is set.
    pub start: u64,
    /// End ticks; unused when `NANOS` is set.
    pub end: u64,
}

impl Event {
    /// The call failed.
    pub const ERROR: u32 = 1;
    /// The call's guard was dropped while its thread was panicking (also counted as an error).
    pub const PANIC: u32 = 2;
    /// `start` holds a duration in nanoseconds measured elsewhere; the event has no timestamp
    /// and belongs to the window open when the aggregator reads it.
    pub const NANOS: u32 = 4;
    /// The failure of a call that was not sampled (and is already counted as unsampled): it
    /// adds an error, not a call. Always set together with `NANOS` and `ERROR`.
    pub const UNSAMPLED: u32 = 8;
    /// Position of the error kind (8 bits; 0: no kind).
    pub const KIND_SHIFT: u32 = 4;
    /// Mask of the error kind.
    pub const KIND_MASK: u32 = 0xff << Self::KIND_SHIFT;
    /// Position of the weight: the number of calls this sampled call stands for (20 bits;
    /// 0 means 1).
    pub const WEIGHT_SHIFT: u32 = 12;
    /// Mask of the weight.
    pub const WEIGHT_MASK: u32 = !((1 << Self::WEIGHT_SHIFT) - 1);
    /// Largest weight an event can carry.
    pub const MAX_WEIGHT: u32 = (1 << (32 - Self::WEIGHT_SHIFT)) - 1;
    /// Flags that need the aggregator's slow path (an error note or an error kind).
    pub const SPECIAL: u32 = Self::UNSAMPLED | Self::KIND_MASK;

    /// Whether this event counts as an error.
    #[inline]
    pub fn is_error(&self) -> bool {
        self.flags & (Self::ERROR | Self::PANIC) != 0
    }

    /// The calls this event stands for (1 unless it was sampled from several).
    #[inline(always)]
    pub fn weight(&self) -> u64 {
        u64::from((self.flags >> Self::WEIGHT_SHIFT).max(1))
    }

    /// The error kind code (0: none).
    #[inline]
    pub fn kind(&self) -> u8 {
        ((self.flags & Self::KIND_MASK) >> Self::KIND_SHIFT) as u8
    }
}

const _: () = assert!(core::mem::size_of::<Event>() == 24);
