//! The damage suite: a log broken in each way a crash, a full disk, an operator or bit rot
//! can break it, and the verdict the reader gives for each. Every read runs under a timeout
//! (no hang) and every file is small or sparse (bounded memory).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use ringmeter::log::format::{
    segment_file_name, CommitSlot, FrameHeader, SegmentHeader, U32Le, U64Le, COMMIT_BLOCK_AT,
    COMMIT_SLOT_LEN, IN_PROGRESS,
};
use ringmeter::log::{Entry, Integrity, LogConfig, LogError, Reader, Record, Verdict, Writer};

use crate::util::log as log_util;

/// Reads the whole log under a timeout; returns the entries and the report.
pub(crate) fn read(dir: &Path) -> (Vec<Entry>, Integrity) {
    let (tx, rx) = mpsc::channel();
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        let r = (|| -> Result<_, LogError> {
            let mut r = Reader::open(&dir)?;
            r.expect_no_writer(true);
            let mut out = Vec::new();
            while let Some(e) = r.next_entry()? {
                out.push(e);
            }
            Ok((out, r.integrity().clone()))
        })();
        let _ = tx.send(r);
    });
    // Generous for an unoptimised build on a loaded machine; a reader that hangs, or re-reads
    // a segment per damaged frame, takes far longer.
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the reader finished within 60 s")
        .expect("the log opens")
}

fn config(dir: &Path, segment_size: u64) -> LogConfig {
    let mut cfg = LogConfig::new(dir);
    cfg.segment_size = segment_size;
    cfg
}

/// A log of `n` sample records in 4 KiB segments, written and sealed; its segment files.
fn sealed_log(dir: &Path, n: usize) -> Vec<PathBuf> {
    let mut w = Writer::open(config(dir, 4096)).unwrap();
    for r in log_util::sample_records(n) {
        w.append(&r).unwrap();
    }
    drop(w);
    segments(dir)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rml"))
        .collect();
    v.sort();
    v
}

/// Offsets of the frames in a segment file, from a clean read of it.
fn frames(seg: &Path) -> Vec<u64> {
    let mut r = Reader::open(seg).unwrap();
    let mut out = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        out.push(e.offset);
    }
    out
}

fn newest_slot(bytes: &[u8]) -> CommitSlot {
    CommitSlot::newest(&bytes[COMMIT_BLOCK_AT..COMMIT_BLOCK_AT + 2 * COMMIT_SLOT_LEN]).unwrap()
}

/// Writes `bytes` at `at` without reading the whole (possibly huge, sparse) file.
fn patch(path: &Path, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, at).unwrap();
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

const N: usize = 30;

fn all_records() -> usize {
    log_util::sample_records(N).len()
}

#[test]
fn a_sealed_log_is_clean() {
    let tmp = log_util::TempDir::new("dmg-clean");
    let segs = sealed_log(tmp.path(), N);
    assert!(segs.len() >= 3, "{segs:?}");
    let (got, integrity) = read(tmp.path());
    assert_eq!(integrity.verdict(), Verdict::Clean, "{integrity:?}");
    assert_eq!(got.len(), all_records());
}

#[test]
fn a_live_or_killed_writer_leaves_an_unsealed_intact_log() {
    let tmp = log_util::TempDir::new("dmg-live");
    let mut w = Writer::open(config(tmp.path(), 4096)).unwrap();
    for r in log_util::sample_records(N) {
        w.append(&r).unwrap();
    }
    let (got, integrity) = read(tmp.path());
    assert_eq!(integrity.verdict(), Verdict::Unsealed, "{integrity:?}");
    assert_eq!(
        integrity.unsealed,
        vec![w.segment_path().unwrap().to_owned()]
    );
    assert_eq!(got.len(), all_records());
    // A writer that never closes (as after SIGKILL): the same.
    std::mem::forget(w);
    assert_eq!(read(tmp.path()).1.verdict(), Verdict::Unsealed);
}

#[test]
fn a_zeroed_length_word_before_valid_frames_is_records_missing() {
    let tmp = log_util::TempDir::new("dmg-zero-len");
    let segs = sealed_log(tmp.path(), N);
    let offs = frames(&segs[0]);
    assert!(offs.len() >= 3);
    patch(&segs[0], offs[1], &[0; 4]);
    let (got, integrity) = read(tmp.path());
    assert_eq!(
        integrity.verdict(),
        Verdict::RecordsMissing,
        "{integrity:?}"
    );
    assert_eq!(
        got.len(),
        all_records() - 1,
        "only the zeroed frame is lost"
    );
    assert_eq!(integrity.missing[0].offset, offs[1]);
}

#[test]
fn a_zeroed_range_is_records_missing() {
    let tmp = log_util::TempDir::new("dmg-zero-range");
    let segs = sealed_log(tmp.path(), N);
    let offs = frames(&segs[1]);
    let (a, b) = (offs[0], offs[offs.len() - 1]);
    patch(&segs[1], a, &vec![0; (b - a) as usize]);
    let (got, integrity) = read(tmp.path());
    assert_eq!(
        integrity.verdict(),
        Verdict::RecordsMissing,
        "{integrity:?}"
    );
    // The last frame of the segment is read after the gap.
    assert!(got.iter().any(|e| e.offset == b && e.segment == 1));
}

#[test]
fn truncations_below_the_committed_length_are_records_missing() {
    for (tag, cut) in [
        ("at a frame boundary", None),
        ("to the header", Some(128_u64)),
        ("into the commit block", Some(150)),
        ("to nothing", Some(0)),
    ] {
        for first in [true, false] {
            let tmp = log_util::TempDir::new("dmg-trunc");
            let segs = sealed_log(tmp.path(), N);
            let seg = if first {
                &segs[0]
            } else {
                segs.last().unwrap()
            };
            let at = cut.unwrap_or_else(|| frames(seg)[2]);
            truncate(seg, at);
            let (_, integrity) = read(tmp.path());
            assert_eq!(
                integrity.verdict(),
                Verdict::RecordsMissing,
                "{tag}, first segment {first}: {integrity:?}"
            );
        }
    }
}

#[test]
fn truncating_the_unused_tail_of_a_sealed_segment_is_clean() {
    let tmp = log_util::TempDir::new("dmg-trunc-tail");
    let segs = sealed_log(tmp.path(), N);
    let last = segs.last().unwrap();
    let end = newest_slot(&std::fs::read(last).unwrap()).end.get();
    truncate(last, end);
    let (got, integrity) = read(tmp.path());
    assert_eq!(integrity.verdict(), Verdict::Clean, "{integrity:?}");
    assert_eq!(got.len(), all_records());
}

#[test]
fn a_segment_missing_from_the_sequence_is_records_missing() {
    let tmp = log_util::TempDir::new("dmg-gap");
    let segs = sealed_log(tmp.path(), N);
    std::fs::remove_file(&segs[1]).unwrap();
    let (_, integrity) = read(tmp.path());
    assert_eq!(
        integrity.verdict(),
        Verdict::RecordsMissing,
        "{integrity:?}"
    );
    assert!(integrity.missing[0]
        .reason
        .contains("missing from the sequence"));
    // The oldest segment going (as retention does) is not damage.
    let tmp = log_util::TempDir::new("dmg-front");
    let segs = sealed_log(tmp.path(), N);
    std::fs::remove_file(&segs[0]).unwrap();
    assert_eq!(read(tmp.path()).1.verdict(), Verdict::Clean);
}

#[test]
fn a_zero_length_last_segment_is_records_missing() {
    let tmp = log_util::TempDir::new("dmg-empty-last");
    let segs = sealed_log(tmp.path(), N);
    let next = tmp.path().join(segment_file_name(segs.len() as u64));
    std::fs::write(&next, b"").unwrap();
    let (got, integrity) = read(tmp.path());
    assert_eq!(
        integrity.verdict(),
        Verdict::RecordsMissing,
        "{integrity:?}"
    );
    assert_eq!(got.len(), all_records());
}

#[cfg(unix)]
#[test]
fn files_replaced_by_links_fifos_and_directories_are_records_missing_without_hanging() {
    use std::os::unix::fs::symlink;
    type Replace = fn(&Path, &Path);
    let cases: [(&str, Replace); 4] = [
        ("dangling symlink", |seg, dir| {
            symlink(dir.join("nowhere"), seg).unwrap();
        }),
        ("symlink loop", |seg, dir| {
            let other = dir.join("loop");
            symlink(seg, &other).unwrap();
            symlink(&other, seg).unwrap();
        }),
        ("FIFO", |seg, _| {
            let c = std::ffi::CString::new(seg.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        }),
        ("directory", |seg, _| std::fs::create_dir(seg).unwrap()),
    ];
    for (name, replace) in cases {
        for first in [true, false] {
            let tmp = log_util::TempDir::new("dmg-special");
            let segs = sealed_log(tmp.path(), N);
            let seg = if first {
                &segs[0]
            } else {
                segs.last().unwrap()
            };
            std::fs::remove_file(seg).unwrap();
            replace(seg, tmp.path());
            let (_, integrity) = read(tmp.path());
            assert_eq!(
                integrity.verdict(),
                Verdict::RecordsMissing,
                "{name} as the first segment {first}: {integrity:?}"
            );
            // A reader that expects a live writer neither blocks nor spins, and reports
            // the file once.
            let (tx, rx) = mpsc::channel();
            let dir = tmp.path().to_owned();
            std::thread::spawn(move || {
                let mut r = Reader::open(&dir).unwrap();
                for _ in 0..3 {
                    while r.next_entry().unwrap().is_some() {}
                }
                let _ = tx.send(r.integrity().missing.len());
            });
            let missing = rx.recv_timeout(Duration::from_secs(20)).expect("no hang");
            assert_eq!(missing, 1, "{name}");
        }
    }
}

#[test]
fn bit_rot_in_the_completed_last_frame_is_corrupt_not_a_torn_tail() {
    for sealed in [true, false] {
        let tmp = log_util::TempDir::new("dmg-rot-last");
        let mut w = Writer::open(config(tmp.path(), 4096)).unwrap();
        for r in log_util::sample_records(N) {
            w.append(&r).unwrap();
        }
        let seg = w.segment_path().unwrap().to_owned();
        if sealed {
            drop(w);
        } else {
            std::mem::forget(w); // as if killed
        }
        let last = *frames(&seg).last().unwrap();
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[last as usize + 20] ^= 0x10; // in the frame's CRC field
        std::fs::write(&seg, bytes).unwrap();
        let (_, integrity) = read(tmp.path());
        assert_eq!(
            integrity.verdict(),
            Verdict::Corrupt,
            "sealed {sealed}: {integrity:?}"
        );
    }
}

#[test]
fn a_flipped_byte_in_a_middle_frame_is_corrupt() {
    let tmp = log_util::TempDir::new("dmg-flip");
    let segs = sealed_log(tmp.path(), N);
    let offs = frames(&segs[0]);
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    bytes[offs[1] as usize + 20] ^= 1;
    std::fs::write(&segs[0], bytes).unwrap();
    let (got, integrity) = read(tmp.path());
    assert_eq!(integrity.verdict(), Verdict::Corrupt, "{integrity:?}");
    assert_eq!(got.len(), all_records() - 1);
}

#[test]
fn an_uncommitted_frame_in_progress_is_a_torn_tail() {
    let tmp = log_util::TempDir::new("dmg-torn");
    let mut w = Writer::open(config(tmp.path(), 1 << 20)).unwrap();
    for r in log_util::sample_records(5) {
        w.append(&r).unwrap();
    }
    let seg = w.segment_path().unwrap().to_owned();
    std::mem::forget(w); // as if killed
                         // As if killed inside the last append: the frame still marked in progress and the
                         // commit block not updated yet.
    let offs = frames(&seg);
    let last = *offs.last().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let slot = newest_slot(&bytes);
    let h: FrameHeader = bytemuck::pod_read_unaligned(&bytes[last as usize..last as usize + 24]);
    let marked = U32Le::new(h.len.get() | IN_PROGRESS);
    bytes[last as usize..last as usize + 4].copy_from_slice(bytemuck::bytes_of(&marked));
    let g = slot.generation.get() + 1;
    let back = CommitSlot::new(g, last, slot.records.get() - 1, 0);
    let at = CommitSlot::offset(g);
    bytes[at..at + COMMIT_SLOT_LEN].copy_from_slice(bytemuck::bytes_of(&back));
    std::fs::write(&seg, bytes).unwrap();
    let (got, integrity) = read(tmp.path());
    assert_eq!(integrity.verdict(), Verdict::TornTail, "{integrity:?}");
    assert_eq!(got.len(), offs.len() - 1);
}

#[test]
fn bad_headers_are_corrupt() {
    type Edit = fn(&mut SegmentHeader);
    let edits: [(&str, Edit); 2] = [
        ("version 0", |h| h.version = U32Le::new(0)),
        ("sequence differs from the name", |h| {
            h.segment_seq = U64Le::new(h.segment_seq.get() + 7)
        }),
    ];
    for (name, edit) in edits {
        let tmp = log_util::TempDir::new("dmg-header");
        let segs = sealed_log(tmp.path(), N);
        let mut bytes = std::fs::read(&segs[1]).unwrap();
        let mut h: SegmentHeader = bytemuck::pod_read_unaligned(&bytes[..128]);
        edit(&mut h);
        h.crc = U32Le::new(h.compute_crc());
        bytes[..128].copy_from_slice(bytemuck::bytes_of(&h));
        std::fs::write(&segs[1], bytes).unwrap();
        let (_, integrity) = read(tmp.path());
        assert_eq!(
            integrity.verdict(),
            Verdict::Corrupt,
            "{name}: {integrity:?}"
        );
    }
}

#[test]
fn segment_names_that_are_not_lower_case_hex_are_not_read() {
    let tmp = log_util::TempDir::new("dmg-names");
    let segs = sealed_log(tmp.path(), N);
    let n = segs.len() as u64;
    for name in [
        format!("seg-{:016X}.rml", n + 10),
        format!("seg-+{n:015x}.rml"),
    ] {
        std::fs::copy(&segs[0], tmp.path().join(name)).unwrap();
    }
    let (got, integrity) = read(tmp.path());
    assert_eq!(integrity.verdict(), Verdict::Clean, "{integrity:?}");
    assert_eq!(got.len(), all_records());
}

#[test]
fn a_huge_sparse_segment_is_read_in_bounded_time_and_memory() {
    let tmp = log_util::TempDir::new("dmg-sparse");
    let segs = sealed_log(tmp.path(), N);
    let last = segs.last().unwrap();
    let end = newest_slot(&std::fs::read(last).unwrap()).end.get();
    // After the last frame, a length word claiming nearly 1 GiB, in a file of 1 TiB
    // (sparse), unsealed so that the reader looks past the committed end.
    let mut big = FrameHeader::new(200, 999, &[]);
    big.len = U32Le::new((1 << 30) - 8);
    patch(last, end, bytemuck::bytes_of(&big));
    truncate(last, 1 << 40);
    let mut block = vec![0_u8; 2 * COMMIT_SLOT_LEN];
    let slot = CommitSlot::new(1, end, 0, 0);
    block[32..].copy_from_slice(bytemuck::bytes_of(&slot));
    patch(last, COMMIT_BLOCK_AT as u64, &block);
    let (got, integrity) = read(tmp.path());
    // The part past any segment's size is corrupt; every record is still read.
    assert_eq!(integrity.verdict(), Verdict::Corrupt, "{integrity:?}");
    assert_eq!(got.len(), all_records());
}

#[test]
fn many_damaged_frames_are_recovered_in_one_pass() {
    // Every other frame damaged in one 4 MiB segment: recovery that re-read the rest of the
    // segment per damaged frame would read about 1000 × 2 MiB.
    let tmp = log_util::TempDir::new("dmg-many");
    let mut w = Writer::open(config(tmp.path(), 4 << 20)).unwrap();
    let rec = Record::Unknown {
        kind: 200,
        payload: vec![7; 2000],
    };
    for _ in 0..2000 {
        w.append(&rec).unwrap();
    }
    let seg = w.segment_path().unwrap().to_owned();
    drop(w);
    let offs = frames(&seg);
    let mut bytes = std::fs::read(&seg).unwrap();
    for o in offs.iter().step_by(2) {
        bytes[*o as usize + 100] ^= 1;
    }
    std::fs::write(&seg, bytes).unwrap();
    let (got, integrity) = read(tmp.path());
    assert_eq!(integrity.verdict(), Verdict::Corrupt);
    assert_eq!(got.len(), 1000);
    assert_eq!(integrity.corrupt.len(), 1000);
}

#[test]
fn a_format_version_1_log_is_still_read() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/log-v1");
    let (got, integrity) = read(&root);
    assert_eq!(got.len(), 6);
    // Version 1 carries no seal: intact at best.
    assert_eq!(integrity.verdict(), Verdict::Unsealed, "{integrity:?}");
}
