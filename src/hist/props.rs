//! Properties: every compact form answers as the `hdrhistogram::Histogram` fed the same
//! values does — percentiles, length, extremes, recorded buckets, Prometheus buckets and the
//! V2 and V2+deflate bytes, which decode back to it (in full, and as non-zero counts).

use hdrhistogram::serialization::{Serializer, V2DeflateSerializer, V2Serializer};
use hdrhistogram::Histogram;
use proptest::prelude::*;

use super::buckets;
use super::codec::{decode, decode_pairs, Encoder, HistRef};
use super::compact::{CompactHistogram, CountsPool, RangeCounts, WindowCounts};
use super::layout::Layout;
use super::quantiles::{Quantiles, RangeView};

/// Quantiles checked beside the reported ones, including the edges.
const CHECKED: [f64; 12] = [
    0.0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.999_99, 1.0,
];

/// Durations from every part of the range: single-unit buckets, wide ones, past the highest
/// trackable value and past the end of the counts array.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        0_u64..4_096,
        4_096_u64..10_000_000,
        10_000_000_u64..70_000_000_000,
        any::<u64>(),
    ]
}

/// Weights: mostly 1 (a run of the drain), some sampled calls standing for several.
fn weight() -> impl Strategy<Value = u64> {
    prop_oneof![8 => Just(1_u64), 1 => 2_u64..1_000, 1 => Just(1_u64 << 33)]
}

fn bounds() -> impl Strategy<Value = (u64, u8)> {
    prop_oneof![
        Just((60_000_000_000_u64, 3_u8)),
        Just((1_000_000, 2)),
        Just((1 << 24, 4)),
        Just((10_000, 1)),
    ]
}

fn v2_deflate(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut out).unwrap();
    out
}

fn check_against(c: &CompactHistogram, h: &Histogram<u64>) -> Result<(), TestCaseError> {
    prop_assert_eq!(c.len(), h.len());
    prop_assert_eq!(c.is_empty(), h.is_empty());
    prop_assert_eq!(c.min(), h.min());
    prop_assert_eq!(c.max(), h.max());
    for q in CHECKED {
        prop_assert_eq!(c.value_at_quantile(q), h.value_at_quantile(q), "q {}", q);
    }
    let ours = c.value_at_quantiles(&CHECKED);
    let theirs: Vec<u64> = h.value_at_quantiles(CHECKED).collect();
    prop_assert_eq!(ours, theirs);
    prop_assert_eq!(c.at_quantiles(), h.at_quantiles());
    let ours: Vec<(u64, u64)> = c
        .iter_recorded()
        .map(|b| (b.highest(), b.count()))
        .collect();
    let theirs: Vec<(u64, u64)> = h
        .iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect();
    prop_assert_eq!(ours, theirs);
    prop_assert!(c.to_hdrhistogram() == *h);
    prop_assert!(*c == *h);
    prop_assert_eq!(&CompactHistogram::from(h), c);
    let mut bytes = Vec::new();
    Encoder::new()
        .encode_any(HistRef::Compact(c), &mut bytes)
        .unwrap();
    prop_assert_eq!(&bytes, &v2_deflate(h));
    // The plain form the log stores: HdrHistogram's own V2 bytes, decoding to `h`, and
    // compressed on export into the bytes above.
    let mut enc = Encoder::new();
    let mut plain = Vec::new();
    enc.encode_plain(HistRef::Compact(c), &mut plain).unwrap();
    let mut theirs = Vec::new();
    V2Serializer::new().serialize(h, &mut theirs).unwrap();
    prop_assert_eq!(&plain, &theirs);
    prop_assert!(decode(&plain).unwrap() == *h);
    let mut deflated = Vec::new();
    enc.deflate_stored(&plain, &mut deflated).unwrap();
    prop_assert_eq!(&deflated, &bytes);
    let (mut from_plain, mut from_deflate) = (Vec::new(), Vec::new());
    decode_pairs(&plain, &mut from_plain).unwrap();
    decode_pairs(&bytes, &mut from_deflate).unwrap();
    let want: Vec<(u32, u64)> = c.pairs().map(|(i, n)| (i as u32, n)).collect();
    prop_assert_eq!(&from_plain, &want);
    prop_assert_eq!(&from_deflate, &want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// An open window's counts (log, then dense array with carries), closed into a compact
    /// histogram, and totals' range counts, against a `Histogram` fed the same values.
    #[test]
    fn compact_forms_answer_as_hdrhistogram(
        (high, digits) in bounds(),
        calls in prop::collection::vec((value(), weight()), 0..2_000),
    ) {
        let template = Histogram::<u64>::new_with_bounds(1, high, digits).unwrap();
        let layout = Layout::of(&template);
        let mut pool = CountsPool::new(&layout);
        let mut window = WindowCounts::default();
        let mut h = Histogram::new_from(&template);
        for &(v, w) in &calls {
            window.add(layout.index(v), w, &mut pool);
            h.saturating_record_n(v, w);
        }
        let c = window.take(layout, Default::default(), &mut Vec::new(), &mut pool);
        check_against(&c, &h)?;

        let mut totals = RangeCounts::default();
        totals.add_pairs(c.pairs());
        let view = RangeView(&layout, &totals);
        prop_assert_eq!(view.total(), h.len());
        prop_assert_eq!(view.at_quantiles(), h.at_quantiles());

        let bounds = [1_000, 10_000, 1_000_000, 1_000_000_000];
        let mut ours = vec![0; 5];
        let mut theirs = vec![0; 5];
        buckets::add_pairs(&bounds, &layout, c.pairs(), &mut ours);
        buckets::add(&bounds, &h, &mut theirs);
        prop_assert_eq!(ours, theirs);
    }
}

#[test]
fn an_empty_histogram_encodes_as_hdrhistograms() {
    let template = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let c = CompactHistogram::new_from(&template);
    check_against(&c, &template).unwrap();
}
