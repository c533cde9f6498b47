//! Exact merging of intervals, and rollups of windows into longer periods.
//!
//! [`Totals`] and [`Rollup`] merge many windows per operation, so their histograms are kept
//! as HdrHistogram counts-array indices without the array: a window's stored histogram (read
//! from the log without decoding, [`Interval::stored_histogram`]) is read (a plain V2 one in
//! place, a deflated one inflated) straight into its non-zero `(index, count)` pairs, which are added into a dense `u64` range spanning only
//! the indices seen (`Sparse`). Indices are HdrHistogram's own ([`Layout`]), so adding pairs
//! is what `Histogram::add` does for two histograms of the same bounds, and the percentiles
//! and the histogram handed back are identical. Windows of other bounds fall back to
//! `Histogram::add` itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use hdrhistogram::Histogram;

use super::{set_percentiles, ExportError, Interval};
use crate::hist::{
    add_counts, decode, decode_pairs, encode_plain_compact, peek, percentiles, walk_counts,
    CompactHistogram, Header, Layout,
};

/// Adds `other` into `into`, exactly: histograms added; count, errors, slow, dropped and late
/// summed (and `unsampled`); minimum and maximum combined; mean and standard deviation combined from the two
/// (the parallel-variance formula); percentiles recomputed from the merged histogram. The
/// merged interval spans from the earlier start to the later end. A histogram read from the
/// log without decoding ([`Interval::stored_histogram`]) is decoded for the merge.
///
/// # Errors
/// [`ExportError::Merge`] when `other`'s histogram cannot be added (a lowest discernible
/// value or precision that differ, or stored bytes that do not decode); `into` is then
/// unchanged.
///
/// # Examples
/// ```
/// use ringmeter::export::{merge, Interval};
/// use ringmeter::hdrhistogram::Histogram;
///
/// let window = |start: u64, ns: u64| {
///     let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
///     h.record(ns).unwrap();
///     Interval::from_histogram("step", start, 1_000_000_000, h)
/// };
/// let mut a = window(0, 100);
/// merge(&mut a, &window(1_000_000_000, 900))?;
/// assert_eq!((a.stats.count, a.stats.min_ns, a.stats.max_ns), (2, 100, 900));
/// assert_eq!(a.length_ns, 2_000_000_000);
/// # Ok::<(), ringmeter::export::ExportError>(())
/// ```
pub fn merge(into: &mut Interval, other: &Interval) -> Result<(), ExportError> {
    let err = |reason: String| ExportError::Merge {
        op: Arc::clone(&into.op),
        reason,
    };
    if into.histogram.is_empty() {
        if let Some(bytes) = into.stored_histogram.take() {
            into.histogram = decode(&bytes).map_err(err)?;
        }
    }
    let decoded;
    let histogram = match &other.stored_histogram {
        Some(bytes) if other.histogram.is_empty() => {
            decoded = decode(bytes).map_err(err)?;
            &decoded
        }
        _ => &other.histogram,
    };
    add_full(into, histogram)?;
    into.stored_histogram = None;
    merge_stats(into, other);
    set_percentiles(&mut into.stats, &into.histogram);
    Ok(())
}

/// `Histogram::add` of `other` into `into.histogram`, growing it as needed.
fn add_full(into: &mut Interval, other: &Histogram<u64>) -> Result<(), ExportError> {
    if !other.is_empty() {
        into.histogram.auto(true);
        into.histogram.add(other).map_err(|e| ExportError::Merge {
            op: Arc::clone(&into.op),
            reason: format!("{e:?}"),
        })?;
    }
    Ok(())
}

/// Merges everything of `other` but its histogram into `into`.
fn merge_stats(into: &mut Interval, other: &Interval) {
    let (a, b) = (&mut into.stats, &other.stats);
    let (na, nb) = (a.count as f64, b.count as f64);
    if b.count > 0 {
        if a.count == 0 {
            a.min_ns = b.min_ns;
            a.max_ns = b.max_ns;
            a.mean_ns = b.mean_ns;
            a.stddev_ns = b.stddev_ns;
        } else {
            a.min_ns = a.min_ns.min(b.min_ns);
            a.max_ns = a.max_ns.max(b.max_ns);
            let n = na + nb;
            let delta = b.mean_ns - a.mean_ns;
            let m2 = a.stddev_ns * a.stddev_ns * na
                + b.stddev_ns * b.stddev_ns * nb
                + delta * delta * na * nb / n;
            a.mean_ns += delta * nb / n;
            a.stddev_ns = (m2 / n).max(0.0).sqrt();
        }
    }
    a.count = a.count.saturating_add(b.count);
    a.errors = a.errors.saturating_add(b.errors);
    a.slow = a.slow.saturating_add(b.slow);
    a.dropped = a.dropped.saturating_add(b.dropped);
    a.late = a.late.saturating_add(b.late);
    a.unsampled = a.unsampled.saturating_add(b.unsampled);
    let end = into.end_unix_ns().max(other.end_unix_ns());
    into.start_unix_ns = into.start_unix_ns.min(other.start_unix_ns);
    into.length_ns = end - into.start_unix_ns;
}

/// A histogram's bounds: lowest discernible value, highest trackable value, digits.
type Bounds = (u64, u64, u8);

/// Scratch space and layouts shared by the merges of one [`Totals`] or [`Rollup`].
#[derive(Debug, Default)]
struct Merger {
    /// The non-zero counts of the interval being added.
    pairs: Vec<(u32, u64)>,
    /// The layouts of the bounds seen so far (one or two in practice).
    layouts: Vec<(Bounds, Layout)>,
}

impl Merger {
    /// The layout of `bounds`, built once.
    fn layout(&mut self, bounds: Bounds) -> Result<Layout, String> {
        if let Some((_, l)) = self.layouts.iter().find(|(b, _)| *b == bounds) {
            return Ok(*l);
        }
        let template = Histogram::<u64>::new_with_bounds(bounds.0, bounds.1, bounds.2)
            .map_err(|e| format!("{e:?}"))?;
        let layout = Layout::of(&template);
        self.layouts.push((bounds, layout));
        Ok(layout)
    }

    /// Reads the bounds and non-zero counts of `i`'s histogram into `self.pairs`.
    fn read(&mut self, i: &Interval) -> Result<Bounds, String> {
        read_pairs(i, &mut self.pairs)
    }
}

/// Reads the bounds and non-zero counts of `i`'s histogram into `pairs`: straight from the
/// stored bytes when it was read without decoding.
fn read_pairs(i: &Interval, pairs: &mut Vec<(u32, u64)>) -> Result<Bounds, String> {
    match &i.stored_histogram {
        Some(bytes) if i.histogram.is_empty() => {
            let h = decode_pairs(bytes, pairs)?;
            // `decode_pairs` checked the digits (at most 5).
            Ok((h.low, h.high, h.digits as u8))
        }
        _ => {
            let h = &i.histogram;
            let layout = Layout::of(h);
            pairs.clear();
            pairs.extend(h.iter_recorded().map(|v| {
                (
                    layout.index(v.value_iterated_to()) as u32,
                    v.count_at_value(),
                )
            }));
            Ok((h.low(), h.high(), h.sigfig()))
        }
    }
}

/// The merged histogram of one operation (and period).
#[derive(Clone, Debug)]
enum Counts {
    /// Counts by HdrHistogram index over `[base, base + counts.len())`, for histograms of
    /// `bounds`.
    Sparse {
        bounds: Bounds,
        layout: Layout,
        base: u32,
        counts: Vec<u64>,
        /// Sum of `counts`, saturating (HdrHistogram's total count).
        total: u64,
    },
    /// Histograms of differing bounds, added as `Histogram::add` adds them.
    Full(Histogram<u64>),
}

impl Counts {
    /// Empty counts for histograms of `bounds`.
    fn new(bounds: Bounds, layout: Layout) -> Counts {
        Counts::Sparse {
            bounds,
            layout,
            base: 0,
            counts: Vec::new(),
            total: 0,
        }
    }

    /// Adds the non-zero counts `pairs` of `other`'s histogram, of `bounds`.
    fn add(
        &mut self,
        pairs: &[(u32, u64)],
        bounds: Bounds,
        other: &Interval,
    ) -> Result<(), String> {
        if pairs.is_empty() {
            return Ok(());
        }
        if let Counts::Sparse {
            bounds: own,
            base,
            counts,
            total,
            ..
        } = self
        {
            if *own == bounds {
                add_pairs(base, counts, total, pairs);
                return Ok(());
            }
        }
        // Other bounds: HdrHistogram's own addition, on full histograms.
        let mut full = std::mem::replace(self, Counts::Full(empty_histogram())).histogram();
        let decoded;
        let other = match &other.stored_histogram {
            Some(bytes) if other.histogram.is_empty() => {
                decoded = decode(bytes)?;
                &decoded
            }
            _ => &other.histogram,
        };
        full.auto(true);
        let added = full.add(other).map_err(|e| format!("{e:?}"));
        *self = Counts::Full(full);
        added
    }

    /// The non-zero counts as a compact histogram (`None` for `Full`).
    fn compact(&self) -> Option<CompactHistogram> {
        match self {
            Counts::Sparse {
                layout,
                base,
                counts,
                ..
            } => Some(compact(*layout, *base, counts)),
            Counts::Full(_) => None,
        }
    }

    /// The counts as an HdrHistogram.
    fn histogram(self) -> Histogram<u64> {
        match self {
            Counts::Sparse {
                layout,
                base,
                counts,
                ..
            } => compact(layout, base, &counts).to_hdrhistogram(),
            Counts::Full(h) => h,
        }
    }

    /// Adds the stored histogram of `other` straight from its bytes into the dense range (no
    /// list of pairs), all or nothing: false, with the counts as they were, when `other` is
    /// not a stored histogram of these counts' bounds, does not decode, or a count or the
    /// total would pass `u64::MAX` (which [`add`](Self::add) saturates, and this path leaves
    /// to it). The range widens as needed; a widening left by a refusal holds zeros only.
    fn add_stored(&mut self, other: &Interval) -> bool {
        let Counts::Sparse {
            bounds,
            base,
            counts,
            total,
            ..
        } = self
        else {
            return false;
        };
        let Some(bytes) = stored(other) else {
            return false;
        };
        let own = *bounds;
        match add_counts(bytes, |h| same_bounds(h, own), base, counts) {
            Ok(Some((sum, false))) => match total.checked_add(sum) {
                Some(t) => {
                    *total = t;
                    true
                }
                None => {
                    unwalk(bytes, own, *base, counts);
                    false
                }
            },
            Ok(None) => false,
            // Wrong part-way, or wrapped: walk the same bytes again and take back what was
            // added (wrapping subtraction undoes wrapping addition exactly).
            _ => {
                unwalk(bytes, own, *base, counts);
                false
            }
        }
    }

    /// Takes back a histogram that [`add_stored`](Self::add_stored) added.
    fn sub_stored(&mut self, other: &Interval) {
        if let (
            Counts::Sparse {
                bounds,
                base,
                counts,
                total,
                ..
            },
            Some(bytes),
        ) = (self, stored(other))
        {
            let sum = unwalk(bytes, *bounds, *base, counts);
            *total = total.wrapping_sub(sum);
        }
    }
}

/// The non-zero counts of the dense range `counts` starting at index `base`.
fn compact(layout: Layout, base: u32, counts: &[u64]) -> CompactHistogram {
    let pairs = counts
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c != 0)
        .map(|(k, &c)| (base + k as u32, c));
    CompactHistogram::from_sorted(layout, Vec::new(), Vec::new(), pairs)
}

/// Adds sorted `pairs` (not empty) into the dense range `counts` starting at index `base`,
/// widening it as needed.
fn add_pairs(base: &mut u32, counts: &mut Vec<u64>, total: &mut u64, pairs: &[(u32, u64)]) {
    let (lo, hi) = (pairs[0].0, pairs[pairs.len() - 1].0);
    if counts.is_empty() {
        *base = lo;
    }
    if lo < *base {
        counts.splice(0..0, std::iter::repeat_n(0, (*base - lo) as usize));
        *base = lo;
    }
    let len = (hi - *base) as usize + 1;
    if len > counts.len() {
        counts.resize(len, 0);
    }
    let mut sum = 0_u64;
    for &(i, c) in pairs {
        let slot = &mut counts[(i - *base) as usize];
        *slot = slot.saturating_add(c);
        sum = sum.saturating_add(c);
    }
    *total = total.saturating_add(sum);
}

/// One operation's (and period's) merge in progress: the merged interval without its
/// histogram (none before the first interval's statistics are in), and the histogram's
/// counts.
#[derive(Debug)]
struct Merged {
    interval: Option<Interval>,
    counts: Counts,
}

impl Merged {
    /// Starts a merge from `first`, whose histogram has the non-zero counts `pairs`.
    fn start(
        layout: Layout,
        bounds: Bounds,
        pairs: &[(u32, u64)],
        mut first: Interval,
    ) -> Result<Merged, String> {
        let mut counts = Counts::new(bounds, layout);
        counts.add(pairs, bounds, &first)?;
        first.histogram = empty_histogram();
        first.stored_histogram = None;
        Ok(Merged {
            interval: Some(first),
            counts,
        })
    }

    /// A merge of histograms of `bounds` with nothing in it yet.
    fn empty(bounds: Bounds, layout: Layout) -> Merged {
        Merged {
            interval: None,
            counts: Counts::new(bounds, layout),
        }
    }

    /// Adds `other`, whose histogram has the non-zero counts `pairs`.
    fn add(
        &mut self,
        pairs: &[(u32, u64)],
        bounds: Bounds,
        other: &Interval,
    ) -> Result<(), String> {
        self.counts.add(pairs, bounds, other)?;
        self.add_stats(other);
        Ok(())
    }

    /// Merges everything of `other` but its histogram (the first interval's statistics
    /// are taken as they are, as [`start`](Self::start) takes them).
    fn add_stats(&mut self, other: &Interval) {
        match &mut self.interval {
            Some(into) => merge_stats(into, other),
            None => {
                self.interval = Some(Interval {
                    op: Arc::clone(&other.op),
                    start_unix_ns: other.start_unix_ns,
                    length_ns: other.length_ns,
                    stats: other.stats.clone(),
                    histogram: empty_histogram(),
                    stored_histogram: None,
                });
            }
        }
    }

    /// The merged interval, with its histogram and percentiles (`None` when no interval
    /// was added). Unless `decoded`, a histogram of one bounds is handed back as stored
    /// bytes only ([`Interval::stored_histogram`], plain V2), without building its full
    /// counts array.
    fn finish(self, decoded: bool) -> Option<Interval> {
        let mut i = self.interval?;
        let s = &mut i.stats;
        match self.counts.compact() {
            Some(c) => {
                [s.p50_ns, s.p90_ns, s.p95_ns, s.p99_ns, s.p999_ns] =
                    percentiles(Some(&c), s.count, s.min_ns, s.max_ns);
                let mut bytes = Vec::new();
                if !decoded && encode_plain_compact(&c, &mut bytes).is_ok() {
                    i.stored_histogram = Some(bytes);
                } else {
                    i.histogram = c.to_hdrhistogram();
                }
            }
            None => {
                i.histogram = self.counts.histogram();
                set_percentiles(&mut i.stats, &i.histogram);
            }
        }
        Some(i)
    }
}

/// The merges in progress, by slot number (slots of finished merges are reused).
#[derive(Debug, Default)]
struct Slots {
    items: Vec<Option<Merged>>,
    free: Vec<usize>,
}

impl Slots {
    fn insert(&mut self, m: Merged) -> usize {
        match self.free.pop() {
            Some(k) => {
                self.items[k] = Some(m);
                k
            }
            None => {
                self.items.push(Some(m));
                self.items.len() - 1
            }
        }
    }

    fn get_mut(&mut self, k: usize) -> Option<&mut Merged> {
        self.items.get_mut(k)?.as_mut()
    }

    fn take(&mut self, k: usize) -> Option<Merged> {
        let m = self.items.get_mut(k)?.take();
        if m.is_some() {
            self.free.push(k);
        }
        m
    }
}

/// Working space of a batch added in place (`Totals::add_all`, `Rollup::push_all`).
#[derive(Debug, Default)]
struct Batch {
    /// (period start, operation name's address, position in the batch), sorted: the
    /// intervals grouped by where they go.
    order: Vec<(u64, usize, u32)>,
    /// The slot of each interval, by position.
    dest: Vec<usize>,
    /// Slots made by this batch (to drop again if it falls back).
    created: Vec<usize>,
}

impl Batch {
    /// Fills `order` from `(period start, interval)` and sorts it; `dest` is reset.
    fn group<'a>(&mut self, items: impl Iterator<Item = (u64, &'a Interval)>) {
        self.order.clear();
        self.order.extend(
            items
                .enumerate()
                .map(|(k, (start, i))| (start, Arc::as_ptr(&i.op).cast::<u8>() as usize, k as u32)),
        );
        self.order.sort_unstable();
        self.dest.clear();
        self.dest.resize(self.order.len(), usize::MAX);
        self.created.clear();
    }

    /// Adds the stored histograms of `intervals` into their slots' counts in `order`, so
    /// that each slot's counts stay in cache while its histograms are added one after the
    /// other (a day of windows of 100 operations spreads every operation's windows 100
    /// records apart); all or nothing: false, with every addition of the batch taken back,
    /// when one of them cannot be added in place (see `Counts::add_stored`). Integer
    /// addition without overflow does not depend on order, so the counts are those of
    /// adding the intervals one by one.
    fn add_histograms(&self, slots: &mut Slots, intervals: &[Interval]) -> bool {
        for (n, &(_, _, k)) in self.order.iter().enumerate() {
            let k = k as usize;
            let added = slots
                .get_mut(self.dest[k])
                .is_some_and(|m| m.counts.add_stored(&intervals[k]));
            if !added {
                for &(_, _, j) in &self.order[..n] {
                    let j = j as usize;
                    if let Some(m) = slots.get_mut(self.dest[j]) {
                        m.counts.sub_stored(&intervals[j]);
                    }
                }
                return false;
            }
        }
        true
    }
}

/// A new merge for `first`, the first interval of its operation (and period) in a batch:
/// counts of its stored histogram's bounds (`None` when it has none, or they do not read).
fn empty_for(first: &Interval, merger: &mut Merger) -> Option<Merged> {
    let header = peek(stored(first)?).ok()?;
    let bounds = header_bounds(&header);
    let layout = merger.layout(bounds).ok()?;
    Some(Merged::empty(bounds, layout))
}

/// The stored bytes of `i`'s histogram, when it was read from the log without decoding.
fn stored(i: &Interval) -> Option<&[u8]> {
    match &i.stored_histogram {
        Some(bytes) if i.histogram.is_empty() => Some(bytes),
        _ => None,
    }
}

/// Whether a stored histogram's header has these bounds.
fn same_bounds(h: &Header, bounds: Bounds) -> bool {
    (h.low, h.high, h.digits) == (bounds.0, bounds.1, u32::from(bounds.2))
}

/// The bounds of a stored histogram's header (whose digits `peek` checked: at most 5).
fn header_bounds(h: &Header) -> Bounds {
    (h.low, h.high, h.digits as u8)
}

/// Subtracts (wrapping) the counts of the stored histogram `bytes` from the dense range
/// `counts` starting at `base`, as far as its walk goes: the undo of an addition that walked
/// the same bytes (so every index is inside the range). Returns the sum of the counts
/// taken back (wrapping).
fn unwalk(bytes: &[u8], bounds: Bounds, base: u32, counts: &mut [u64]) -> u64 {
    let mut sum = 0_u64;
    let _ = walk_counts(
        bytes,
        |h| same_bounds(h, bounds),
        |i, c| {
            if let Some(slot) = counts.get_mut(i.wrapping_sub(base) as usize) {
                *slot = slot.wrapping_sub(c);
            }
            sum = sum.wrapping_add(c);
        },
    );
    sum
}

/// The smallest histogram: the placeholder of a merge in progress.
fn empty_histogram() -> Histogram<u64> {
    thread_local! {
        static EMPTY: Histogram<u64> = Histogram::new_with_max(2, 1).expect("valid bounds");
    }
    EMPTY.with(Histogram::clone)
}

fn merge_error(op: &Arc<str>, reason: String) -> ExportError {
    ExportError::Merge {
        op: Arc::clone(op),
        reason,
    }
}

/// Merges windows into periods aligned on the Unix epoch (a 1-minute rollup starts at each
/// whole minute), per operation.
///
/// Feed intervals in time order with [`push`](Rollup::push); each call hands back the
/// periods that ended before the interval pushed, and [`finish`](Rollup::finish) the rest.
/// Each result starts at its period's start and lasts the whole period. An interval that
/// arrives after its period was handed back starts a second result for that period.
/// Intervals read from the log without decoding their histograms
/// ([`Reader::decode_histograms(false)`](crate::log::Reader::decode_histograms)) are merged
/// fastest: their stored histograms are read into the non-zero counts only.
///
/// # Examples
/// ```
/// use ringmeter::export::{Interval, Rollup};
/// use ringmeter::hdrhistogram::Histogram;
///
/// const S: u64 = 1_000_000_000;
/// let window = |start: u64| {
///     let mut h = Histogram::<u64>::new_with_bounds(1, 60 * S, 3).unwrap();
///     h.record(start / S + 1).unwrap();
///     Interval::from_histogram("step", start, S, h)
/// };
/// let mut rollup = Rollup::new(60 * S);
/// let mut out = Vec::new();
/// for second in 0..90 {
///     out.extend(rollup.push(window(second * S))?);
/// }
/// out.extend(rollup.finish());
/// assert_eq!(out.len(), 2);
/// assert_eq!((out[0].stats.count, out[0].stats.max_ns), (60, 60));
/// assert_eq!((out[1].start_unix_ns, out[1].stats.count), (60 * S, 30));
/// # Ok::<(), ringmeter::export::ExportError>(())
/// ```
#[derive(Debug)]
pub struct Rollup {
    period_ns: u64,
    /// Open periods by (period start, operation): their slots.
    open: BTreeMap<(u64, Arc<str>), usize>,
    slots: Slots,
    merger: Merger,
    batch: Batch,
    /// The latest period start of an interval pushed.
    latest: Option<u64>,
    /// Whether the periods handed back carry decoded histograms.
    decoded: bool,
}

impl Rollup {
    /// A rollup into periods of `period_ns` nanoseconds (at least 1).
    pub fn new(period_ns: u64) -> Rollup {
        Rollup {
            period_ns: period_ns.max(1),
            open: BTreeMap::new(),
            slots: Slots::default(),
            merger: Merger::default(),
            batch: Batch::default(),
            latest: None,
            decoded: true,
        }
    }

    /// Whether the periods handed back carry their histogram decoded, as an HdrHistogram
    /// (the default), or, with `false`, as stored bytes only ([`Interval::stored_histogram`],
    /// plain HdrHistogram V2, the histogram left empty), as the log's reader hands back
    /// windows read without decoding: building each period's full counts array (216 KiB at
    /// 1 ns–60 s and 3 digits) costs as much as merging a minute of windows, and a caller
    /// that writes statistics and percentiles only needs none. Percentiles are the same
    /// either way; a period whose histograms had differing bounds, or a count past
    /// `i64::MAX`, is handed back decoded.
    pub fn decode_histograms(&mut self, decode: bool) -> &mut Self {
        self.decoded = decode;
        self
    }

    /// The period, in nanoseconds.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// The start of the period of `interval`, or the error of an interval that does not fit
    /// the periods.
    fn period_of(&self, interval: &Interval) -> Result<u64, ExportError> {
        let len = interval.length_ns;
        if len == 0 || len > self.period_ns || !self.period_ns.is_multiple_of(len) {
            return Err(ExportError::RollupPeriod {
                period_ns: self.period_ns,
                window_ns: len,
            });
        }
        Ok(interval.start_unix_ns - interval.start_unix_ns % self.period_ns)
    }

    /// Adds one interval; returns the periods (of every operation) that ended before it, in
    /// order of period then operation name.
    ///
    /// # Errors
    /// [`ExportError::RollupPeriod`] when the interval is longer than the period or the
    /// period is not a whole number of such intervals; [`ExportError::Merge`] when its
    /// histogram cannot be added to the period's (or its stored bytes do not decode).
    pub fn push(&mut self, interval: Interval) -> Result<Vec<Interval>, ExportError> {
        let start = self.period_of(&interval)?;
        self.latest = Some(self.latest.map_or(start, |l| l.max(start)));
        let bounds = self
            .merger
            .read(&interval)
            .map_err(|r| merge_error(&interval.op, r))?;
        let done = self.take_before(start);
        let open = self.open.get(&(start, Arc::clone(&interval.op))).copied();
        match open.and_then(|k| self.slots.get_mut(k)) {
            Some(period) => period
                .add(&self.merger.pairs, bounds, &interval)
                .map_err(|r| merge_error(&interval.op, r))?,
            None => {
                let op = Arc::clone(&interval.op);
                let layout = self
                    .merger
                    .layout(bounds)
                    .map_err(|r| merge_error(&op, r))?;
                let mut period = Merged::start(layout, bounds, &self.merger.pairs, interval)
                    .map_err(|r| merge_error(&op, r))?;
                if let Some(i) = &mut period.interval {
                    i.start_unix_ns = start;
                    i.length_ns = self.period_ns;
                }
                let k = self.slots.insert(period);
                self.open.insert((start, op), k);
            }
        }
        Ok(done)
    }

    /// Adds `intervals` in their order, as [`push`](Self::push) one by one would, and
    /// appends the periods each push hands back to `out`. Faster than one by one: when the
    /// intervals come in time order with histograms as stored, each period's histograms
    /// are added together, while its counts are in cache.
    ///
    /// # Errors
    /// As [`push`](Self::push); the intervals before the failing one are added, and the
    /// periods they ended are in `out`.
    pub fn push_all(
        &mut self,
        intervals: Vec<Interval>,
        out: &mut Vec<Interval>,
    ) -> Result<(), ExportError> {
        if self.push_all_in_place(&intervals, out) {
            return Ok(());
        }
        for i in intervals {
            out.extend(self.push(i)?);
        }
        Ok(())
    }

    /// [`push_all`](Self::push_all) of intervals in time order (no period start before the
    /// latest pushed) whose histograms are stored ones that add in place; false, with
    /// nothing changed, for any other batch.
    fn push_all_in_place(&mut self, intervals: &[Interval], out: &mut Vec<Interval>) -> bool {
        let mut starts = Vec::with_capacity(intervals.len());
        let mut latest = self.latest.unwrap_or(0);
        for i in intervals {
            match self.period_of(i) {
                Ok(start) if start >= latest => {
                    latest = start;
                    starts.push(start);
                }
                _ => return false,
            }
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.group(starts.iter().copied().zip(intervals));
        let mut made = Vec::new();
        let mut ok = true;
        let mut run = None;
        let mut slot = usize::MAX;
        for &(start, ptr, k) in &batch.order {
            let i = &intervals[k as usize];
            if run != Some((start, ptr)) {
                run = Some((start, ptr));
                let key = (start, Arc::clone(&i.op));
                slot = match self.open.get(&key) {
                    Some(&s) => s,
                    None => match empty_for(i, &mut self.merger) {
                        Some(m) => {
                            let s = self.slots.insert(m);
                            self.open.insert(key.clone(), s);
                            made.push(key);
                            batch.created.push(s);
                            s
                        }
                        None => {
                            ok = false;
                            break;
                        }
                    },
                };
            }
            batch.dest[k as usize] = slot;
        }
        ok = ok && batch.add_histograms(&mut self.slots, intervals);
        if !ok {
            for key in made {
                self.open.remove(&key);
            }
            for &s in &batch.created {
                self.slots.take(s);
            }
            self.batch = batch;
            return false;
        }
        let mut current = None;
        for ((i, &start), &slot) in intervals.iter().zip(&starts).zip(&batch.dest) {
            if current != Some(start) {
                current = Some(start);
                out.extend(self.take_before(start));
            }
            if let Some(period) = self.slots.get_mut(slot) {
                let first = period.interval.is_none();
                period.add_stats(i);
                if let (true, Some(p)) = (first, &mut period.interval) {
                    p.start_unix_ns = start;
                    p.length_ns = self.period_ns;
                }
            }
        }
        self.latest = Some(latest);
        self.batch = batch;
        true
    }

    /// The periods still open, in order of period then operation name.
    pub fn finish(mut self) -> Vec<Interval> {
        let open = std::mem::take(&mut self.open);
        let decoded = self.decoded;
        open.into_values()
            .filter_map(|k| self.slots.take(k).and_then(|m| m.finish(decoded)))
            .collect()
    }

    fn take_before(&mut self, start: u64) -> Vec<Interval> {
        let first_kept = self
            .open
            .keys()
            .position(|(s, _)| *s >= start)
            .unwrap_or(self.open.len());
        if first_kept == 0 {
            return Vec::new();
        }
        let kept = match self.open.keys().nth(first_kept) {
            Some(key) => self.open.split_off(&key.clone()),
            None => BTreeMap::new(),
        };
        let decoded = self.decoded;
        std::mem::replace(&mut self.open, kept)
            .into_values()
            .filter_map(|k| self.slots.take(k).and_then(|m| m.finish(decoded)))
            .collect()
    }
}

/// Totals per operation over any set of intervals, merged exactly as [`merge`] does, with
/// the percentiles computed once at the end. Intervals read from the log without decoding
/// their histograms are merged fastest (see [`Rollup`]).
///
/// # Examples
/// ```
/// use ringmeter::export::{Interval, Totals};
/// use ringmeter::hdrhistogram::Histogram;
///
/// let mut totals = Totals::new();
/// for (op, ns) in [("a", 10), ("b", 20), ("a", 30)] {
///     let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
///     h.record(ns).unwrap();
///     totals.add(Interval::from_histogram(op, 0, 1_000, h))?;
/// }
/// let out = totals.finish();
/// assert_eq!((&*out[0].op, out[0].stats.count, out[0].stats.max_ns), ("a", 2, 30));
/// assert_eq!(out[0].stats.p50_ns, 10);
/// # Ok::<(), ringmeter::export::ExportError>(())
/// ```
#[derive(Debug, Default)]
pub struct Totals {
    /// Each operation's slot.
    ops: BTreeMap<Arc<str>, usize>,
    slots: Slots,
    merger: Merger,
    batch: Batch,
}

impl Totals {
    /// No operation yet.
    pub fn new() -> Totals {
        Totals::default()
    }

    /// Adds one interval to its operation's total.
    ///
    /// # Errors
    /// [`ExportError::Merge`] when its histogram cannot be added (or its stored bytes do
    /// not decode).
    pub fn add(&mut self, interval: Interval) -> Result<(), ExportError> {
        let bounds = self
            .merger
            .read(&interval)
            .map_err(|r| merge_error(&interval.op, r))?;
        let pairs = std::mem::take(&mut self.merger.pairs);
        let added = self.add_read(interval, bounds, &pairs);
        self.merger.pairs = pairs;
        added
    }

    /// Adds `intervals` in their order, as [`add`](Self::add) one by one would. Stored
    /// histograms are added straight from their bytes, each operation's together while its
    /// counts are in cache; other batches (decoded histograms, other bounds, bytes that do
    /// not decode) are added one by one, with their histograms read on up to `threads`
    /// threads first. The result is the same for any number of threads.
    ///
    /// # Errors
    /// As [`add`](Self::add); the intervals before the failing one are added.
    pub fn add_all(&mut self, intervals: Vec<Interval>, threads: usize) -> Result<(), ExportError> {
        if self.add_all_in_place(&intervals) {
            return Ok(());
        }
        let threads = threads.clamp(1, 64);
        if threads == 1 || intervals.len() < 2 * threads {
            return intervals.into_iter().try_for_each(|i| self.add(i));
        }
        type Read = Result<(Bounds, Vec<(u32, u64)>), String>;
        let chunk = intervals.len().div_ceil(threads);
        let read: Vec<Read> = std::thread::scope(|s| {
            let workers: Vec<_> = intervals
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|i| {
                                let mut pairs = Vec::new();
                                read_pairs(i, &mut pairs).map(|b| (b, pairs))
                            })
                            .collect::<Vec<Read>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for (interval, r) in intervals.into_iter().zip(read) {
            let (bounds, pairs) = r.map_err(|reason| merge_error(&interval.op, reason))?;
            self.add_read(interval, bounds, &pairs)?;
        }
        Ok(())
    }

    /// [`add_all`](Self::add_all) of intervals whose histograms are stored ones that add in
    /// place; false, with nothing changed, for any other batch.
    fn add_all_in_place(&mut self, intervals: &[Interval]) -> bool {
        let mut batch = std::mem::take(&mut self.batch);
        batch.group(intervals.iter().map(|i| (0, i)));
        let mut made = Vec::new();
        let mut ok = true;
        let mut run = None;
        let mut slot = usize::MAX;
        for &(_, ptr, k) in &batch.order {
            let i = &intervals[k as usize];
            if run != Some(ptr) {
                run = Some(ptr);
                slot = match self.ops.get(&i.op) {
                    Some(&s) => s,
                    None => match empty_for(i, &mut self.merger) {
                        Some(m) => {
                            let s = self.slots.insert(m);
                            self.ops.insert(Arc::clone(&i.op), s);
                            made.push(Arc::clone(&i.op));
                            batch.created.push(s);
                            s
                        }
                        None => {
                            ok = false;
                            break;
                        }
                    },
                };
            }
            batch.dest[k as usize] = slot;
        }
        ok = ok && batch.add_histograms(&mut self.slots, intervals);
        if ok {
            for (i, &slot) in intervals.iter().zip(&batch.dest) {
                if let Some(total) = self.slots.get_mut(slot) {
                    total.add_stats(i);
                }
            }
        } else {
            for op in made {
                self.ops.remove(&op);
            }
            for &s in &batch.created {
                self.slots.take(s);
            }
        }
        self.batch = batch;
        ok
    }

    /// Adds `interval`, whose histogram has the non-zero counts `pairs` and `bounds`.
    fn add_read(
        &mut self,
        interval: Interval,
        bounds: Bounds,
        pairs: &[(u32, u64)],
    ) -> Result<(), ExportError> {
        let slot = self.ops.get(&interval.op).copied();
        match slot.and_then(|k| self.slots.get_mut(k)) {
            Some(total) => total
                .add(pairs, bounds, &interval)
                .map_err(|r| merge_error(&interval.op, r)),
            None => {
                let op = Arc::clone(&interval.op);
                let layout = self
                    .merger
                    .layout(bounds)
                    .map_err(|r| merge_error(&op, r))?;
                let total = Merged::start(layout, bounds, pairs, interval)
                    .map_err(|r| merge_error(&op, r))?;
                let k = self.slots.insert(total);
                self.ops.insert(op, k);
                Ok(())
            }
        }
    }

    /// Whether no interval was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// One interval per operation, in name order, with percentiles.
    pub fn finish(mut self) -> Vec<Interval> {
        let ops = std::mem::take(&mut self.ops);
        ops.into_values()
            .filter_map(|k| self.slots.take(k).and_then(|m| m.finish(true)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use hdrhistogram::Histogram;

    use super::*;
    use crate::report::OpStats;

    const S: u64 = 1_000_000_000;

    fn interval(op: &str, start: u64, values: &[u64], errors: u64) -> Interval {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60 * S, 3).unwrap();
        for &v in values {
            h.record(v).unwrap();
        }
        let mut i = Interval::from_histogram(op, start, S, h);
        let n = values.len() as f64;
        if !values.is_empty() {
            i.stats.min_ns = *values.iter().min().unwrap();
            i.stats.max_ns = *values.iter().max().unwrap();
            i.stats.mean_ns = values.iter().sum::<u64>() as f64 / n;
            let m = i.stats.mean_ns;
            i.stats.stddev_ns =
                (values.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n).sqrt();
        }
        set_percentiles(&mut i.stats, &i.histogram);
        i.stats.errors = errors;
        i.stats.dropped = 1;
        i
    }

    #[test]
    fn merge_equals_recomputation() {
        let a_vals = [5u64, 100, 2_000, 7];
        let b_vals = [40u64, 1_000_000, 3];
        let mut a = interval("x", 0, &a_vals, 1);
        let b = interval("x", S, &b_vals, 2);
        merge(&mut a, &b).unwrap();
        let all: Vec<u64> = a_vals.iter().chain(&b_vals).copied().collect();
        let whole = interval("x", 0, &all, 3);
        let (m, w) = (&a.stats, &whole.stats);
        assert_eq!((m.count, m.errors, m.dropped), (7, 3, 2));
        assert_eq!((m.min_ns, m.max_ns), (3, 1_000_000));
        assert!((m.mean_ns - w.mean_ns).abs() < 1e-6 * w.mean_ns);
        assert!((m.stddev_ns - w.stddev_ns).abs() < 1e-6 * w.stddev_ns);
        assert_eq!(
            (m.p50_ns, m.p90_ns, m.p99_ns, m.p999_ns),
            (w.p50_ns, w.p90_ns, w.p99_ns, w.p999_ns)
        );
        assert_eq!(a.histogram, whole.histogram);
        assert_eq!((a.start_unix_ns, a.length_ns), (0, 2 * S));
    }

    #[test]
    fn counts_near_u64_max_saturate() {
        let mut a = interval("x", 0, &[5, 7], 0);
        let mut b = interval("x", S, &[9], 0);
        for (i, stats) in [&mut a.stats, &mut b.stats].into_iter().enumerate() {
            stats.count = u64::MAX - 1 - i as u64;
            stats.errors = u64::MAX - 2;
            stats.slow = u64::MAX;
            stats.dropped = u64::MAX - 3;
            stats.late = u64::MAX / 2 + 1;
            stats.unsampled = u64::MAX;
        }
        let mut totals = Totals::new();
        totals.add(a.clone()).unwrap();
        totals.add(b.clone()).unwrap();
        let mut rollup = Rollup::new(2 * S);
        assert!(rollup.push(a).unwrap().is_empty());
        assert!(rollup.push(b).unwrap().is_empty());
        for merged in totals.finish().into_iter().chain(rollup.finish()) {
            let s = &merged.stats;
            assert_eq!(
                [s.count, s.errors, s.slow, s.dropped, s.late, s.unsampled],
                [u64::MAX; 6]
            );
            assert_eq!((s.min_ns, s.max_ns), (5, 9));
        }
    }

    #[test]
    fn merge_with_empty_sides() {
        let mut empty = interval("x", 0, &[], 0);
        let full = interval("x", 0, &[10, 20], 0);
        merge(&mut empty, &full).unwrap();
        assert_eq!(
            (empty.stats.min_ns, empty.stats.max_ns, empty.stats.count),
            (10, 20, 2)
        );
        let mut full2 = full.clone();
        merge(&mut full2, &interval("x", 0, &[], 0)).unwrap();
        assert_eq!(full2.stats.min_ns, 10);
        assert_eq!(OpStats::default().count, 0);
    }

    #[test]
    fn rollup_groups_by_period_and_op() {
        let mut r = Rollup::new(10 * S);
        let mut out = Vec::new();
        for s in 0..25 {
            out.extend(r.push(interval("b", s * S, &[s + 1], 0)).unwrap());
            if s % 2 == 0 {
                out.extend(r.push(interval("a", s * S, &[1], 0)).unwrap());
            }
        }
        out.extend(r.finish());
        let got: Vec<(u64, &str, u64)> = out
            .iter()
            .map(|i| (i.start_unix_ns / S, &*i.op, i.stats.count))
            .collect();
        assert_eq!(
            got,
            [
                (0, "a", 5),
                (0, "b", 10),
                (10, "a", 5),
                (10, "b", 10),
                (20, "a", 3),
                (20, "b", 5)
            ]
        );
        assert!(out.iter().all(|i| i.length_ns == 10 * S));
        assert_eq!(out[1].stats.max_ns, 10);
    }

    #[test]
    fn rollup_rejects_periods_that_do_not_fit() {
        let mut r = Rollup::new(S + S / 2);
        assert!(matches!(
            r.push(interval("a", 0, &[1], 0)),
            Err(ExportError::RollupPeriod { .. })
        ));
        let mut r = Rollup::new(S / 2);
        assert!(r.push(interval("a", 0, &[1], 0)).is_err());
    }

    mod props {
        use proptest::prelude::*;

        use super::*;
        use crate::hist::{Encoder, HistRef};

        /// `i` as read from the log without decoding: its histogram as stored bytes only, in
        /// the form the log writes (plain V2 for these small histograms) or, `deflated`, as
        /// logs of format version 2 hold it.
        fn stored(mut i: Interval, enc: &mut Encoder, deflated: bool) -> Interval {
            let mut bytes = Vec::new();
            if deflated {
                enc.encode(&i.histogram, &mut bytes).unwrap();
            } else {
                enc.encode_stored(HistRef::Hdr(&i.histogram), &mut bytes)
                    .unwrap();
            }
            i.stored_histogram = Some(bytes);
            i.histogram = empty_histogram();
            i
        }

        /// The window of one generated case: operation, values, highest trackable value
        /// in seconds, a count added at 1 µs, form, damage, and seconds since the window
        /// before (possibly back in time).
        type Window = (usize, Vec<u64>, u64, u64, bool, bool, u64);

        /// Stored windows of three operations (the first two sharing one name `Arc` each,
        /// as the reader hands them out; the third a new `Arc` per window).
        fn windows(cases: &[Window], enc: &mut Encoder) -> Vec<Interval> {
            let names: [Arc<str>; 2] = [Arc::from("a"), Arc::from("b")];
            let mut second = 10_u64;
            cases
                .iter()
                .map(|(op, values, high_s, big, deflated, damaged, step)| {
                    second = (second + step).saturating_sub(1);
                    // Operation "a" keeps one bounds and takes the counts that saturate
                    // (HdrHistogram's own percentiles overflow on them after an addition of
                    // other bounds).
                    let (high_s, big) = if *op == 0 { (60, *big) } else { (*high_s, 0) };
                    let mut h = Histogram::<u64>::new_with_bounds(1, high_s * S, 3).unwrap();
                    for &v in values {
                        h.saturating_record(v);
                    }
                    let mut i = Interval::from_histogram("c", second * S, S, h);
                    // After the statistics (HdrHistogram's mean overflows on such counts).
                    i.histogram.saturating_record_n(1_000, big);
                    i.stats.count = i.stats.count.saturating_add(big);
                    if let Some(name) = names.get(*op) {
                        i.op = Arc::clone(name);
                    }
                    let mut bytes = Vec::new();
                    enc.encode_stored(HistRef::Hdr(&i.histogram), &mut bytes)
                        .unwrap();
                    if *damaged {
                        // A varint cut short at the end: found after the counts before it.
                        let at = bytes.len() - 1;
                        bytes[at] = 0x80;
                    }
                    if *deflated {
                        let mut z = Vec::new();
                        enc.deflate_stored(&bytes, &mut z).unwrap();
                        bytes = z;
                    }
                    i.stored_histogram = Some(bytes);
                    i.histogram = empty_histogram();
                    i
                })
                .collect()
        }

        fn window() -> impl Strategy<Value = Window> {
            (
                0usize..3,
                proptest::collection::vec(
                    prop_oneof![1u64..100, 1u64..5_000_000, 1u64..(1u64 << 45)],
                    0..40,
                ),
                prop_oneof![8 => Just(60u64), 1 => Just(1)],
                prop_oneof![8 => Just(0u64), 1 => Just(u64::MAX / 4)],
                prop_oneof![4 => Just(false), 1 => Just(true)],
                prop_oneof![20 => Just(false), 1 => Just(true)],
                prop_oneof![8 => 0u64..3, 1 => Just(0u64)],
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Batches added in place (`Totals::add_all`, `Rollup::push_all`) give what
            /// adding the same windows one by one gives, bit for bit, and stop at the same
            /// window with the same error: windows of other bounds, damaged histograms,
            /// counts that saturate and windows back in time make them fall back.
            #[test]
            fn batches_equal_one_by_one(
                cases in proptest::collection::vec(window(), 1..40),
                size in 1usize..12,
            ) {
                let mut enc = Encoder::new();
                let all = windows(&cases, &mut enc);
                let mut one = Totals::new();
                let one_err = all.iter().try_for_each(|i| one.add(i.clone())).err();
                let mut batched = Totals::new();
                let batched_err = all
                    .chunks(size)
                    .try_for_each(|c| batched.add_all(c.to_vec(), 1))
                    .err();
                prop_assert_eq!(one_err.map(|e| e.to_string()), batched_err.map(|e| e.to_string()));
                let (one, batched) = (one.finish(), batched.finish());
                prop_assert_eq!(one.len(), batched.len());
                for (a, b) in one.iter().zip(&batched) {
                    prop_assert_eq!(&a.op, &b.op);
                    prop_assert_eq!(&a.histogram, &b.histogram);
                    prop_assert_eq!(&a.stats, &b.stats);
                    prop_assert_eq!((a.start_unix_ns, a.length_ns), (b.start_unix_ns, b.length_ns));
                }

                let mut one = Rollup::new(4 * S);
                let mut one_out = Vec::new();
                let one_err = all
                    .iter()
                    .try_for_each(|i| one.push(i.clone()).map(|d| one_out.extend(d)))
                    .err();
                let mut batched = Rollup::new(4 * S);
                let mut batched_out = Vec::new();
                let batched_err = all
                    .chunks(size)
                    .try_for_each(|c| batched.push_all(c.to_vec(), &mut batched_out))
                    .err();
                prop_assert_eq!(one_err.map(|e| e.to_string()), batched_err.map(|e| e.to_string()));
                one_out.extend(one.finish());
                batched_out.extend(batched.finish());
                prop_assert_eq!(one_out.len(), batched_out.len());
                // Periods handed back as stored bytes: the same statistics, and bytes
                // that decode to the same histogram.
                let mut bytes = Rollup::new(4 * S);
                bytes.decode_histograms(false);
                let mut bytes_out = Vec::new();
                let _ = all
                    .chunks(size)
                    .try_for_each(|c| bytes.push_all(c.to_vec(), &mut bytes_out));
                bytes_out.extend(bytes.finish());
                prop_assert_eq!(one_out.len(), bytes_out.len());
                for (a, b) in one_out.iter().zip(&bytes_out) {
                    prop_assert_eq!(&a.stats, &b.stats);
                    match &b.stored_histogram {
                        Some(s) => {
                            prop_assert!(b.histogram.is_empty());
                            prop_assert_eq!(&decode(s).unwrap(), &a.histogram);
                        }
                        None => prop_assert_eq!(&a.histogram, &b.histogram),
                    }
                }
                for (a, b) in one_out.iter().zip(&batched_out) {
                    prop_assert_eq!(&a.op, &b.op);
                    prop_assert_eq!(&a.histogram, &b.histogram);
                    prop_assert_eq!(&a.stats, &b.stats);
                    prop_assert_eq!((a.start_unix_ns, a.length_ns), (b.start_unix_ns, b.length_ns));
                }
            }

            /// Totals and rollups of stored windows (read as non-zero counts) give what
            /// adding the decoded histograms with `hdrhistogram` gives: the same histogram,
            /// so the same percentiles; windows of other bounds (a highest trackable value of
            /// 1 s or 1 h instead of 60 s) included.
            #[test]
            fn sparse_merge_equals_hdrhistogram_add(
                windows in proptest::collection::vec(
                    (
                        0u64..2,
                        proptest::collection::vec(
                            prop_oneof![1u64..100, 1u64..5_000_000, 1u64..(1u64 << 45)],
                            0..60,
                        ),
                        prop_oneof![8 => Just(60u64), 1 => Just(1), 1 => Just(3600)],
                        any::<bool>(),
                    ),
                    1..20,
                ),
            ) {
                let mut enc = Encoder::new();
                let mut totals = Totals::new();
                let mut batched = Totals::new();
                let mut batch = Vec::new();
                let mut rollup = Rollup::new(4 * S);
                let mut rolled = Vec::new();
                let mut want: BTreeMap<&str, Histogram<u64>> = BTreeMap::new();
                for (k, (op, values, high_s, keep)) in windows.iter().enumerate() {
                    let op = ["a", "b"][*op as usize];
                    let mut h = Histogram::<u64>::new_with_bounds(1, high_s * S, 3).unwrap();
                    for &v in values {
                        h.saturating_record(v);
                    }
                    let i = Interval::from_histogram(op, k as u64 * S, S, h.clone());
                    // Some windows come decoded, as a live report or an OTLP dump has them.
                    let i = if *keep { i } else { stored(i, &mut enc, k % 2 == 1) };
                    totals.add(i.clone()).unwrap();
                    batch.push(i.clone());
                    rolled.extend(rollup.push(i).unwrap());
                    match want.get_mut(op) {
                        Some(w) => {
                            if !h.is_empty() {
                                w.auto(true);
                                w.add(&h).unwrap();
                            }
                        }
                        None => {
                            want.insert(op, h);
                        }
                    }
                }
                rolled.extend(rollup.finish());
                batched.add_all(batch, 3).unwrap();
                let got = totals.finish();
                // Read on three threads: the same intervals, bit for bit.
                for (b, g) in batched.finish().iter().zip(&got) {
                    prop_assert_eq!(&b.histogram, &g.histogram);
                    prop_assert_eq!(&b.stats, &g.stats);
                }
                prop_assert_eq!(got.len(), want.len());
                for (g, (op, w)) in got.iter().zip(&want) {
                    prop_assert_eq!(&*g.op, *op);
                    prop_assert_eq!(&g.histogram, w);
                    prop_assert!(g.stored_histogram.is_none());
                    let mut expect = g.stats.clone();
                    set_percentiles(&mut expect, w);
                    prop_assert_eq!(
                        [g.stats.p50_ns, g.stats.p90_ns, g.stats.p95_ns, g.stats.p99_ns, g.stats.p999_ns],
                        [expect.p50_ns, expect.p90_ns, expect.p95_ns, expect.p99_ns, expect.p999_ns]
                    );
                }
                let rolled_calls: u64 = rolled.iter().map(|i| i.histogram.len()).sum();
                let want_calls: u64 = want.values().map(Histogram::len).sum();
                prop_assert_eq!(rolled_calls, want_calls);
            }

            /// Rolling windows up equals building each period from all of its values.
            #[test]
            fn rollup_equals_recomputation(
                windows in proptest::collection::vec(
                    (0u64..12, proptest::collection::vec(1u64..5_000_000, 0..40), 0u64..3),
                    1..30,
                ),
                period in 1u64..5,
            ) {
                let mut windows = windows;
                windows.sort_by_key(|w| w.0);
                let mut r = Rollup::new(period * S);
                let mut out = Vec::new();
                for (second, values, errors) in &windows {
                    out.extend(r.push(interval("x", second * S, values, *errors)).unwrap());
                }
                out.extend(r.finish());
                let mut expected: BTreeMap<u64, (Vec<u64>, u64)> = BTreeMap::new();
                for (second, values, errors) in &windows {
                    let e = expected.entry(second / period * period).or_default();
                    e.0.extend(values);
                    e.1 += errors;
                }
                prop_assert_eq!(out.len(), expected.len());
                for (got, (start, (values, errors))) in out.iter().zip(&expected) {
                    let whole = interval("x", start * S, values, *errors);
                    let (g, w) = (&got.stats, &whole.stats);
                    prop_assert_eq!(got.start_unix_ns, start * S);
                    prop_assert_eq!(got.length_ns, period * S);
                    prop_assert_eq!((g.count, g.errors, g.min_ns, g.max_ns), (w.count, w.errors, w.min_ns, w.max_ns));
                    prop_assert_eq!(
                        (g.p50_ns, g.p90_ns, g.p95_ns, g.p99_ns, g.p999_ns),
                        (w.p50_ns, w.p90_ns, w.p95_ns, w.p99_ns, w.p999_ns)
                    );
                    prop_assert!((g.mean_ns - w.mean_ns).abs() <= 1e-6 * w.mean_ns.max(1.0));
                    prop_assert!((g.stddev_ns - w.stddev_ns).abs() <= 1e-6 * w.mean_ns.max(1.0));
                    prop_assert_eq!(&got.histogram, &whole.histogram);
                }
            }
        }
    }
}
