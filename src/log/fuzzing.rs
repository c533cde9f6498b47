//! Checks shared by the fuzz targets in `fuzz/` and the tests that replay their corpora.
//!
//! Each function feeds arbitrary bytes to a decoder and panics only if a property of the
//! decoder is broken (a panic inside the decoder is itself a failure). Not part of the
//! stable API.

use std::sync::atomic::{AtomicU64, Ordering};

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
    }
    let _ = std::fs::remove_dir_all(&dir);
}
