//! The fixed-size record a hot-path call pushes into its thread's ring.

/// One timed call, as the hot path leaves it for the aggregator: 24 bytes, plain data.
///
/// Layout (`repr(C)`, native endianness, never persisted):
///
/// | bytes  | field   | meaning                                                          |
/// |--------|---------|------------------------------------------------------------------|
/// | 0..4   | `op`    | operation id inside its engine                                   |
/// | 4..8   | `flags` | [`Event::ERROR`], [`Event::PANIC`], [`Event::NANOS`]             |
/// | 8..16  | `start` | raw clock ticks at start, or a duration in ns with `NANOS`       |
/// | 16..24 | `end`   | raw clock ticks at end; 0 with `NANOS`                           |
///
/// Ticks become nanoseconds only on the aggregator thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Event {
    /// Operation id.
    pub op: u32,
    /// Bit set of `ERROR`, `PANIC`, `NANOS`.
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

    /// Whether this event counts as an error.
    #[inline]
    pub fn is_error(&self) -> bool {
        self.flags & (Self::ERROR | Self::PANIC) != 0
    }
}

const _: () = assert!(core::mem::size_of::<Event>() == 24);
