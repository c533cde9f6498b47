//! Histogram plumbing shared by the aggregator, the window log and the exports: a leaf
//! module that depends on nothing else in the crate.
//!
//! | module | job |
//! |---|---|
//! | `codec` | HdrHistogram's V2 encoding, plain or compressed with deflate: [`Encoder`], bounded [`decode`] (or [`decode_pairs`], to the non-zero counts only), header [`peek`] |
//! | [`buckets`] | Prometheus bucket counts derived from an HdrHistogram |
//! | `layout` | HdrHistogram's counts-array layout: value to index and back ([`Layout`]) |
//! | `compact` | histograms without the full counts array: [`CompactHistogram`] (published windows), open windows' counts, totals' counts |
//! | `pool` | recycling of published histograms' buffers ([`PooledHistogram`], [`HistPool`]) |
//! | `quantiles` | the percentiles of window statistics ([`QUANTILES`], [`percentiles`]) |
//!
//! The codec implements HdrHistogram's "V2 compressed" encoding as its Java implementation
//! defines it (`AbstractHistogram.encodeIntoCompressedByteBuffer`, which deflates the V2
//! encoding of `encodeIntoByteBuffer`) and the Rust crate follows it
//! (`hdrhistogram::serialization::V2DeflateSerializer`): the compressed cookie `0x1c849314`
//! (`V2CompressedEncodingCookieBase` 0x1c849304 with the word-size bits 0x10), the big-endian
//! length of a zlib stream, then that stream of the V2 encoding, whose own cookie is
//! `0x1c849313`. The window log stores these bytes as they are and the interval log
//! (`.hlog`) carries them base64-encoded, so one encoder serves both and a stored histogram
//! can be exported without decoding it.

pub(crate) mod buckets;
mod codec;
mod compact;
mod layout;
mod pool;
#[cfg(all(test, not(loom)))]
mod props;
mod quantiles;

pub(crate) use codec::{
    add_counts, check_frame, decode, decode_pairs, encode_plain_compact, peek, walk_counts,
    Encoder, Header, HistEncodeError, HistRef,
};
pub(crate) use compact::{bump, CountsPool, RangeCounts, WindowCounts, LOG_CAPACITY};
pub use compact::{CompactHistogram, RecordedBucket};
pub(crate) use layout::{DenseCounter, IndexTable, Layout};
pub(crate) use pool::HistPool;
pub use pool::PooledHistogram;
pub use quantiles::QUANTILES;
pub(crate) use quantiles::{percentiles, Quantiles, RangeView};
