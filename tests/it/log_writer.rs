//! Writer and reader behaviour: retention, permissions, typed errors, following a live log.

use std::time::{Duration, SystemTime};

use ringmeter::log::format::{segment_file_name, SegmentHeader, FORMAT_VERSION};
use ringmeter::log::{Health, LogConfig, LogError, Reader, Record, Writer};

use crate::util::log as log_util;

fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".rml"))
        .collect();
    v.sort();
    v
}

#[test]
fn retention_by_size_deletes_whole_oldest_segments() {
    let dir = log_util::TempDir::new("ret-size");
    let mut cfg = LogConfig::new(dir.path());
    cfg.segment_size = 4096;
    cfg.max_bytes = Some(3 * 4096);
    let mut w = Writer::open(cfg).unwrap();
    for r in log_util::sample_records(200) {
        w.append(&r).unwrap();
    }
    let current = w.segment_path().unwrap().to_owned();
    drop(w);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 3, "{files:?}");
    // The newest ones, contiguous, ending at the segment being written.
    let last = ringmeter::log::format::parse_segment_file_name(&files[2]).unwrap();
    assert_eq!(current.file_name().unwrap().to_str().unwrap(), files[2]);
    assert_eq!(files[0], segment_file_name(last - 2));
    let integrity = Reader::check(dir.path()).unwrap();
    assert_eq!(integrity.health(), Health::Clean);
    assert_eq!(integrity.segments, 3);
}

#[test]
fn retention_by_age_keeps_the_segment_being_written() {
    let dir = log_util::TempDir::new("ret-age");
    let mut cfg = LogConfig::new(dir.path());
    cfg.segment_size = 4096;
    cfg.max_age = Some(Duration::from_secs(3600));
    let mut w = Writer::open(cfg).unwrap();
    for r in log_util::sample_records(60) {
        w.append(&r).unwrap();
    }
    assert!(segment_files(dir.path()).len() > 2);
    w.apply_retention(SystemTime::now()).unwrap();
    assert!(segment_files(dir.path()).len() > 2, "nothing is old yet");
    w.apply_retention(SystemTime::now() + Duration::from_secs(7200))
        .unwrap();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(
        w.segment_path().unwrap().file_name().unwrap().to_str(),
        Some(&*files[0])
    );
}

#[cfg(unix)]
#[test]
fn files_and_directory_have_no_world_access() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = log_util::TempDir::new("perm");
    let dir = tmp.path().join("log");
    let w = Writer::open(LogConfig::new(&dir)).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir) & 0o007, 0);
    assert_eq!(mode(&dir) & 0o700, 0o700);
    let seg = w.segment_path().unwrap();
    assert_eq!(mode(seg) & 0o007, 0);
    assert_eq!(mode(seg) & 0o600, 0o600);
}

#[test]
fn reader_errors_are_typed() {
    let tmp = log_util::TempDir::new("errors");
    let missing = tmp.path().join("missing");
    assert!(matches!(
        Reader::open(&missing),
        Err(LogError::NotFound { .. })
    ));
    assert!(matches!(
        Reader::open(tmp.path()),
        Err(LogError::NotALog { .. })
    ));
    let stray = tmp.path().join("stray.txt");
    std::fs::write(&stray, vec![7_u8; 500]).unwrap();
    assert!(matches!(
        Reader::open(&stray),
        Err(LogError::NotALog { .. })
    ));

    // A segment of a newer format version.
    let dir = tmp.path().join("newer");
    let w = Writer::open(LogConfig::new(&dir)).unwrap();
    let seg = w.segment_path().unwrap().to_owned();
    drop(w);
    let mut bytes = std::fs::read(&seg).unwrap();
    let mut h: SegmentHeader = bytemuck::pod_read_unaligned(&bytes[..128]);
    h.version = ringmeter::log::format::U32Le::new(FORMAT_VERSION + 1);
    h.crc = ringmeter::log::format::U32Le::new(h.compute_crc());
    bytes[..128].copy_from_slice(bytemuck::bytes_of(&h));
    std::fs::write(&seg, &bytes).unwrap();
    match Reader::open(&dir) {
        Err(LogError::NewerVersion {
            found,
            supported,
            path,
        }) => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
            assert_eq!(path, seg);
        }
        other => panic!("{other:?}"),
    }
    // A single segment file opens as a log.
    let dir2 = tmp.path().join("single");
    let mut w = Writer::open(LogConfig::new(&dir2)).unwrap();
    w.append(&log_util::sample_records(0)[0]).unwrap();
    let seg = w.segment_path().unwrap().to_owned();
    drop(w);
    let (records, integrity) = Reader::read_all(&seg).unwrap();
    assert_eq!(records.len(), 1);
    assert!(integrity.is_clean());
}

#[test]
fn a_reader_follows_a_live_writer_across_segments() {
    let dir = log_util::TempDir::new("follow");
    let mut cfg = LogConfig::new(dir.path());
    cfg.segment_size = 4096;
    let mut w = Writer::open(cfg).unwrap();
    let records = log_util::sample_records(80);
    w.append(&records[0]).unwrap();
    let mut r = Reader::open(dir.path()).unwrap();
    let mut got = Vec::new();
    for chunk in records[1..].chunks(9) {
        for rec in r.by_ref() {
            got.push(rec.unwrap());
        }
        for rec in chunk {
            w.append(rec).unwrap();
        }
    }
    for rec in r.by_ref() {
        got.push(rec.unwrap());
    }
    assert_eq!(got.len(), records.len());
    assert!(r.integrity().is_clean(), "{:?}", r.integrity());
    assert!(r.integrity().segments > 3);
    assert!(matches!(got[0], Record::Dictionary(_)));
}
