//! Recovery: truncate a log or flip bytes anywhere; the reader never panics, returns every
//! record before the damage, returns nothing that was not written, and gives the verdict
//! the damage calls for (never "clean" when a record is missing).

use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use ringmeter::log::format::{CommitSlot, COMMIT_BLOCK_AT, COMMIT_SLOT_LEN, SEGMENT_HEADER_LEN};
use ringmeter::log::{Entry, LogConfig, Reader, Record, Verdict, Writer};

use crate::util::log as log_util;

/// Writes `n` sample records with small segments and returns the clean entries and the
/// segment files.
fn write_log(dir: &std::path::Path, n: usize) -> (Vec<Entry>, Vec<PathBuf>) {
    let mut cfg = LogConfig::new(dir);
    cfg.segment_size = 4096;
    let mut w = Writer::open(cfg).unwrap();
    for r in log_util::sample_records(n) {
        w.append(&r).unwrap();
    }
    drop(w);
    let entries = read_entries(dir);
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rml"))
        .collect();
    segs.sort();
    (entries.0, segs)
}

fn read_entries(dir: &std::path::Path) -> (Vec<Entry>, ringmeter::log::Integrity) {
    let mut r = Reader::open(dir).unwrap();
    r.expect_no_writer(true);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        out.push(e);
    }
    (out, r.integrity().clone())
}

/// A window whose dictionary entry was damaged comes back as `op<ID>`; otherwise equal.
fn same(got: &Entry, want: &Entry) -> bool {
    if (got.segment, got.offset, got.seq) != (want.segment, want.offset, want.seq) {
        return false;
    }
    match (&got.record, &want.record) {
        (Record::Window(g), Record::Window(w)) if *g.op == *format!("op{}", g.op_id) => {
            let mut g = g.clone();
            g.op = Arc::clone(&w.op);
            *g == **w
        }
        (g, w) => g == w,
    }
}

/// Checks the recovery property for a log damaged in segment `seg` from offset `from` on.
fn check(clean: &[Entry], got: &[Entry], seg: u64, from: u64, frame_ends: &[u64]) {
    // Nothing invented: every record returned is one written, at the same place, in order.
    let mut i = 0;
    for g in got {
        while i < clean.len() && !same(g, &clean[i]) {
            i += 1;
        }
        assert!(i < clean.len(), "record not in the clean log: {g:?}");
        i += 1;
    }
    // Everything before the damage is there, and every other segment is intact.
    for (e, end) in clean.iter().zip(frame_ends) {
        if e.segment != seg || *end <= from {
            assert!(
                got.iter().any(|g| same(g, e)),
                "lost record at segment {} offset {}",
                e.segment,
                e.offset
            );
        }
    }
}

/// Offset up to which a segment file's writer committed frames.
fn committed_end(bytes: &[u8]) -> u64 {
    let block = &bytes[COMMIT_BLOCK_AT..COMMIT_BLOCK_AT + 2 * COMMIT_SLOT_LEN];
    let slot = CommitSlot::newest(block).expect("a written segment has a commit slot");
    assert!(
        slot.sealed(),
        "the writer was dropped: every segment is sealed"
    );
    slot.end.get()
}

/// Whether every record of `clean` is in `got`.
fn nothing_lost(clean: &[Entry], got: &[Entry]) -> bool {
    clean.iter().all(|e| got.iter().any(|g| same(g, e)))
}

/// Frame end offsets (padding included) of the clean entries.
fn frame_ends(clean: &[Entry]) -> Vec<u64> {
    clean
        .iter()
        .map(|e| {
            let mut buf = Vec::new();
            e.record.encode(&mut buf).unwrap();
            e.offset + ringmeter::log::format::FrameHeader::frame_len(buf.len() as u32)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn truncation_anywhere_loses_only_the_tail(n in 5..40_usize, seg_pick in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
        let dir = log_util::TempDir::new("trunc");
        let (clean, segs) = write_log(dir.path(), n);
        let seg_i = seg_pick.index(segs.len());
        let len = std::fs::metadata(&segs[seg_i]).unwrap().len();
        let end = committed_end(&std::fs::read(&segs[seg_i]).unwrap());
        let at = cut.index(len as usize + 1) as u64;
        std::fs::OpenOptions::new().write(true).open(&segs[seg_i]).unwrap().set_len(at).unwrap();
        let (got, integrity) = match Reader::open(dir.path()) {
            Ok(_) => read_entries(dir.path()),
            Err(e) => {
                // Only a single, emptied segment may make the directory unreadable.
                prop_assert!(segs.len() == 1, "{e}");
                return Ok(());
            }
        };
        check(&clean, &got, seg_i as u64, at, &frame_ends(&clean));
        // Cut at or past the committed end: only the unused zero tail went, every segment
        // is sealed. Below it: committed records are gone.
        let want = if at >= end { Verdict::Clean } else { Verdict::RecordsMissing };
        prop_assert_eq!(integrity.verdict(), want, "cut at {} of {} (committed {}): {:?}", at, len, end, integrity);
        prop_assert_eq!(nothing_lost(&clean, &got), at >= end);
    }

    #[test]
    fn flipped_bytes_anywhere_lose_only_what_they_hit(
        n in 5..40_usize,
        seg_pick in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1..=255_u8), 1..6),
    ) {
        let dir = log_util::TempDir::new("flip");
        let (clean, segs) = write_log(dir.path(), n);
        let seg_i = seg_pick.index(segs.len());
        let mut bytes = std::fs::read(&segs[seg_i]).unwrap();
        let end = committed_end(&bytes);
        let mut first = u64::MAX;
        for (at, x) in &flips {
            let at = at.index(bytes.len());
            bytes[at] ^= x;
            first = first.min(at as u64);
        }
        std::fs::write(&segs[seg_i], &bytes).unwrap();
        let (got, integrity) = match Reader::open(dir.path()) {
            Ok(_) => read_entries(dir.path()),
            Err(e) => {
                prop_assert!(segs.len() == 1 && first < 128, "{e}");
                return Ok(());
            }
        };
        let ends = frame_ends(&clean);
        check(&clean, &got, seg_i as u64, first, &ends);
        let verdict = integrity.verdict();
        if !nothing_lost(&clean, &got) {
            prop_assert!(verdict >= Verdict::RecordsMissing, "records lost, verdict {:?}: {:?}", verdict, integrity);
        }
        let hit = |lo: u64, hi: u64| flips.iter().any(|(at, _)| (lo..hi).contains(&(at.index(bytes.len()) as u64)));
        if hit(0, SEGMENT_HEADER_LEN as u64) || hit(COMMIT_BLOCK_AT as u64, (COMMIT_BLOCK_AT + 2 * COMMIT_SLOT_LEN) as u64) {
            // A header or commit slot fails its CRC.
            prop_assert_eq!(verdict, Verdict::Corrupt, "{:?}", integrity);
        } else if first >= end {
            // Only bytes past the sealed end: not data.
            prop_assert_eq!(verdict, Verdict::Clean, "{:?}", integrity);
        } else {
            // Committed frames hit: their CRC fails (or, if only padding was hit, nothing
            // is lost). Sealed segments never have a torn tail.
            prop_assert!(
                verdict >= Verdict::RecordsMissing || (verdict == Verdict::Clean && nothing_lost(&clean, &got)),
                "{:?}", integrity
            );
        }
    }
}
