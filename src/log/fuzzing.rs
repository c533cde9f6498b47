//! Checks shared by the fuzz targets in `fuzz/` and the tests that replay their corpora.
//!
//! Each function feeds arbitrary bytes to a decoder and panics only if a property of the
//! decoder is broken (a panic inside the decoder is itself a failure). Not part of the
//! stable API.

use std::sync::atomic::{AtomicU64, Ordering};

use super::reader::work_bound;
use super::{Reader, Record};

/// Decodes `data[0]` as a record kind and the rest as its payload; a record that decodes
/// must re-encode to bytes that decode to the same bytes again.
///
/// # Panics
/// When a decoded record does not survive re-encoding.
pub fn check_record_bytes(data: &[u8]) {
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    let Ok(record) = Record::decode(kind, payload) else {
        return;
    };
    let mut once = Vec::new();
    let k = record
        .encode(&mut once)
        .expect("a decoded record re-encodes");
    assert_eq!(k, kind);
    let again = Record::decode(kind, &once).expect("a re-encoded record decodes");
    let mut twice = Vec::new();
    again
        .encode(&mut twice)
        .expect("a decoded record re-encodes");
    assert_eq!(once, twice, "re-encoding is stable");
}

/// Writes `data` as a segment file and reads it back as a log.
///
/// # Panics
/// When a returned record does not survive re-encoding, or the integrity report is
/// inconsistent with what was returned.
pub fn check_segment_bytes(data: &[u8]) {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ringmeter-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(super::format::segment_file_name(0));
    std::fs::write(&path, data).expect("temp file");
    for target in [&dir, &path] {
        let Ok(mut reader) = Reader::open(target) else {
            continue;
        };
        let mut records = 0;
        while let Ok(Some(e)) = reader.next_entry() {
            records += 1;
            let mut buf = Vec::new();
            e.record
                .encode(&mut buf)
                .expect("a decoded record re-encodes");
            assert!((e.offset as usize) < data.len());
        }
        assert_eq!(reader.integrity().records, records);
        // Linear work, however the bytes were crafted.
        let examined = reader.examined();
        let bound = work_bound(data.len() as u64, 1);
        assert!(
            examined <= bound,
            "{examined} bytes examined, bound {bound}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Inputs larger than this are ignored by [`check_dir_bytes`] (the size cap of the
/// `log_dir_reader` fuzz target).
pub const MAX_DIR_INPUT: usize = 1 << 20;

/// Separates the segment files in a [`check_dir_bytes`] input.
pub const SEGMENT_SEPARATOR: &[u8] = b"\n=ringmeter-segment=\n";

/// Splits `data` at [`SEGMENT_SEPARATOR`] into at most 8 segment files `seg-0…`, `seg-1…`, …
/// of one directory, reads it as a finished log and as a live one, and checks the report.
///
/// # Panics
/// When a returned record does not re-encode, the record count of the report differs from
/// what was returned, a live reader returns records a finished one does not (or a worse
/// verdict), or a reader comes back with more records after reporting the end.
pub fn check_dir_bytes(data: &[u8]) {
    if data.len() > MAX_DIR_INPUT {
        return;
    }
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ringmeter-fuzz-dir-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut rest = data;
    let mut seq = 0_u64;
    while seq < 8 {
        let (part, next) = match find(rest, SEGMENT_SEPARATOR) {
            Some(i) => (&rest[..i], Some(&rest[i + SEGMENT_SEPARATOR.len()..])),
            None => (rest, None),
        };
        let path = dir.join(super::format::segment_file_name(seq));
        std::fs::write(&path, part).expect("temp file");
        seq += 1;
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    let finished = read_dir_log(&dir, true);
    let live = read_dir_log(&dir, false);
    if let (Some(f), Some(l)) = (finished, live) {
        // A live reader stops at the newest segment's written end, where a finished one
        // also looks past zeros: it returns a prefix of the same records, and no more damage.
        assert!(
            l.0.len() <= f.0.len() && f.0[..l.0.len()] == l.0[..],
            "live reader differs"
        );
        assert!(
            f.1 >= l.1,
            "a finished read finds at least the damage a live one does"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads a log: the records' encodings and the verdict, `None` if it does not open.
fn read_dir_log(dir: &std::path::Path, finished: bool) -> Option<(Vec<Vec<u8>>, super::Verdict)> {
    let mut reader = Reader::open(dir).ok()?;
    reader.expect_no_writer(finished);
    let mut out = Vec::new();
    loop {
        match reader.next_entry() {
            Ok(Some(e)) => {
                let mut buf = Vec::new();
                e.record
                    .encode(&mut buf)
                    .expect("a decoded record re-encodes");
                out.push(buf);
            }
            Ok(None) => break,
            // A newer version: reading goes on past it.
            Err(super::LogError::NewerVersion { .. }) => continue,
            Err(e) => panic!("reading a log of regular files failed: {e}"),
        }
    }
    assert_eq!(reader.integrity().records, out.len() as u64);
    // Nothing more appears without a writer.
    assert!(matches!(reader.next_entry(), Ok(None)));
    // Linear work, however the bytes were crafted.
    let (total, files) = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .fold((0, 0), |(t, n), m| (t + m.len(), n + 1))
        })
        .unwrap_or((0, 0));
    let bound = work_bound(total, files);
    assert!(
        reader.examined() <= bound,
        "{} bytes examined, bound {bound}",
        reader.examined()
    );
    Some((out, reader.integrity().verdict()))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
