//! Writer and reader behaviour: retention, permissions, typed errors, following a live log.

use std::time::{Duration, SystemTime};

use ringmeter::log::format::{segment_file_name, SegmentHeader, FORMAT_VERSION};
use ringmeter::log::{
    Durability, Health, LogConfig, LogError, Reader, Record, Verdict, WriteMode, Writer,
};

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

#[test]
fn a_second_writer_is_refused_with_the_holders_pid() {
    let dir = log_util::TempDir::new("two-writers");
    let w = Writer::open(LogConfig::new(dir.path())).unwrap();
    match Writer::open(LogConfig::new(dir.path())) {
        Err(LogError::Locked { pid, path }) => {
            assert_eq!(pid, Some(std::process::id()));
            assert_eq!(path, dir.path().join(ringmeter::log::LOCK_FILE));
        }
        other => panic!("{other:?}"),
    }
    // An engine on the same directory fails to start, naming the holder.
    let err = ringmeter::Engine::builder()
        .log_dir(dir.path())
        .start_manual()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("log_dir"), "{text}");
    assert!(
        text.contains(&format!("process {}", std::process::id())),
        "{text}"
    );
    // Released when the writer goes.
    drop(w);
    let w = Writer::open(LogConfig::new(dir.path())).unwrap();
    drop(w);
    let integrity = Reader::check(dir.path()).unwrap();
    assert_eq!(integrity.verdict(), Verdict::Clean, "{integrity:?}");
}

#[test]
fn retention_deletes_only_older_regular_segment_files() {
    let dir = log_util::TempDir::new("ret-own");
    // A directory named like an old segment is not the writer's to delete.
    std::fs::create_dir(dir.path().join(segment_file_name(0))).unwrap();
    let mut cfg = LogConfig::new(dir.path());
    cfg.segment_size = 4096;
    cfg.max_bytes = Some(2 * 4096);
    let mut w = Writer::open(cfg).unwrap();
    for r in log_util::sample_records(100) {
        w.append(&r).unwrap();
    }
    assert!(dir.path().join(segment_file_name(0)).is_dir());
    let files = segment_files(dir.path());
    assert!(files.len() <= 3, "{files:?}");
    assert_eq!(
        w.segment_path().unwrap().file_name().unwrap().to_str(),
        files.last().map(String::as_str)
    );
}

#[test]
fn segments_appear_with_their_header_and_no_temporary_is_left() {
    let dir = log_util::TempDir::new("tmp-name");
    // A temporary left by a writer killed while creating a segment.
    let stale = dir.path().join(format!("{}.tmp", segment_file_name(3)));
    std::fs::write(&stale, b"").unwrap();
    let mut cfg = LogConfig::new(dir.path());
    cfg.segment_size = 4096;
    let mut w = Writer::open(cfg).unwrap();
    assert!(!stale.exists());
    for r in log_util::sample_records(40) {
        w.append(&r).unwrap();
        // Every segment visible under its name has its header.
        for name in segment_files(dir.path()) {
            let bytes = std::fs::read(dir.path().join(&name)).unwrap();
            let h: SegmentHeader = bytemuck::pod_read_unaligned(&bytes[..128]);
            assert_eq!(h.compute_crc(), h.crc.get(), "{name}");
        }
    }
    let all: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(all.is_empty(), "{all:?}");
}

#[test]
fn the_segment_number_does_not_wrap() {
    let dir = log_util::TempDir::new("wrap");
    std::fs::write(dir.path().join(segment_file_name(u64::MAX)), b"").unwrap();
    let err = Writer::open(LogConfig::new(dir.path())).unwrap_err();
    assert!(err.to_string().contains("exhausted"), "{err}");
    assert!(!dir.path().join(segment_file_name(0)).exists());
}

#[test]
fn pwrite_and_mapping_write_the_same_log() {
    let mut logs = Vec::new();
    for mode in [WriteMode::Map, WriteMode::Pwrite] {
        let dir = log_util::TempDir::new("pwrite");
        let mut cfg = LogConfig::new(dir.path());
        cfg.segment_size = 4096;
        cfg.write_mode = mode;
        cfg.durability = Durability::EachWindow;
        let mut w = Writer::open(cfg).unwrap();
        assert_eq!(w.is_mapped(), mode == WriteMode::Map);
        for r in log_util::sample_records(40) {
            w.append(&r).unwrap();
        }
        drop(w);
        let (records, integrity) = Reader::read_all(dir.path()).unwrap();
        assert_eq!(integrity.verdict(), Verdict::Clean, "{integrity:?}");
        logs.push(records);
    }
    assert!(logs[0] == logs[1], "the two modes read back differently");
    assert!(encoded(&logs[0]) == encoded(&log_util::sample_records(40)));
}

/// The records' encodings (operation names are not part of a window record).
fn encoded(records: &[Record]) -> Vec<Vec<u8>> {
    records
        .iter()
        .map(|r| {
            let mut b = Vec::new();
            r.encode(&mut b).unwrap();
            b
        })
        .collect()
}

#[test]
fn durability_reaches_the_writer_from_the_builder() {
    let dir = log_util::TempDir::new("durability");
    let (clock, mock) = ringmeter::Clock::mock();
    let engine = ringmeter::Engine::builder()
        .clock(clock)
        .log_dir(dir.path())
        .log_durability(Durability::Every(Duration::from_millis(5)))
        .start_manual()
        .unwrap();
    let op = engine.op("db.query").unwrap();
    for _ in 0..3 {
        op.record_ns(1_000);
        mock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
        std::thread::sleep(Duration::from_millis(6));
    }
    let status = engine.snapshot().log.clone().unwrap();
    assert!(status.writing, "{status:?}");
    drop(engine);
    let integrity = Reader::check(dir.path()).unwrap();
    assert_eq!(integrity.verdict(), Verdict::Clean, "{integrity:?}");
    assert!(ringmeter::Engine::builder()
        .log_dir(dir.path())
        .log_durability(Durability::Every(Duration::ZERO))
        .start_manual()
        .is_err());
}

/// Power loss under the sync-each-window policy: what was synced stays; of the pages
/// written since, any subset reaches the disk, in any order. Every synced record is read
/// back, nothing is invented, and if a committed record is lost the verdict says so (records
/// lost past the committed end may show as a corrupt range or not at all: they were never
/// committed).
#[test]
fn simulated_power_loss_keeps_what_was_synced() {
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let records = log_util::sample_records(60);
    for round in 0..40 {
        let dir = log_util::TempDir::new("power");
        let mut cfg = LogConfig::new(dir.path());
        cfg.segment_size = 64 << 10;
        cfg.durability = Durability::EachWindow;
        cfg.write_mode = if round % 2 == 0 {
            WriteMode::Map
        } else {
            WriteMode::Pwrite
        };
        let mut w = Writer::open(cfg).unwrap();
        let synced = 5 + (next() % 40) as usize;
        for r in &records[..synced] {
            w.append(r).unwrap();
        }
        let seg = w.segment_path().unwrap().to_owned();
        let on_disk = std::fs::read(&seg).unwrap();
        for r in &records[synced..] {
            w.append(r).unwrap();
        }
        let in_memory = std::fs::read(&seg).unwrap();
        std::mem::forget(w); // the machine stops: no seal, no unmapping
        let mut image = on_disk.clone();
        for (page, (old, new)) in image
            .chunks_mut(4096)
            .zip(on_disk.chunks(4096).zip(in_memory.chunks(4096)))
        {
            if old != new && next() % 2 == 0 {
                page.copy_from_slice(new);
            }
        }
        std::fs::write(&seg, &image).unwrap();
        let (got, integrity) = Reader::read_all(dir.path()).unwrap();
        assert!(got.len() >= synced, "round {round}: {integrity:?}");
        // The synced records first, then only records that were written, in order.
        let (got_b, all_b) = (encoded(&got), encoded(&records));
        assert!(
            got_b[..synced] == all_b[..synced],
            "round {round}: synced records differ"
        );
        let mut i = synced;
        for g in &got_b[synced..] {
            while i < all_b.len() && all_b[i] != *g {
                i += 1;
            }
            assert!(
                i < all_b.len(),
                "round {round}: a record that was never written"
            );
            i += 1;
        }
        let block = &image[128..192];
        let committed = ringmeter::log::format::CommitSlot::newest(block)
            .map_or(0, |s| s.records.get()) as usize;
        let verdict = integrity.verdict();
        assert_ne!(
            verdict,
            Verdict::Clean,
            "round {round}: the writer never sealed"
        );
        if got.len() < committed {
            // A committed record is gone: said so.
            assert!(
                verdict >= Verdict::RecordsMissing,
                "round {round}: {committed} committed, {} read: {integrity:?}",
                got.len()
            );
        }
        if got.len() == records.len() {
            assert_eq!(verdict, Verdict::Unsealed, "round {round}: {integrity:?}");
        }
    }
}

const FORK_ENV: &str = "RINGMETER_FORK_CHILD";

/// Runs only when re-executed by `a_forked_child_does_not_write_the_parents_segment`, in a
/// process of its own so that no other test's thread holds a lock across the fork.
#[cfg(unix)]
#[test]
fn fork_child() {
    let Ok(dir) = std::env::var(FORK_ENV) else {
        return;
    };
    let (clock, mock) = ringmeter::Clock::mock();
    let engine = ringmeter::Engine::builder()
        .clock(clock)
        .log_dir(&dir)
        .start_manual()
        .unwrap();
    let op = engine.op("parent.op").unwrap();
    op.record_ns(1_000);
    mock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    // SAFETY: this process runs this test alone; the child only uses this thread and ends
    // with `_exit`, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let child = engine.op("child.op").unwrap();
        child.record_ns(5);
        mock.advance(Duration::from_secs(1));
        let _ = engine.flush();
        let status = engine.snapshot().log.clone().unwrap();
        let refused = !status.writing
            && status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("fork"));
        // SAFETY: ends the child without running the parent's destructors or atexit hooks.
        unsafe { libc::_exit(if refused { 0 } else { 3 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child created above; `status` is a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child was not refused: status {status}"
    );
    op.record_ns(2_000);
    mock.advance(Duration::from_secs(1));
    engine.flush().unwrap();
    engine.shutdown().unwrap();
}

#[cfg(unix)]
#[test]
fn a_forked_child_does_not_write_the_parents_segment() {
    let tmp = log_util::TempDir::new("fork");
    let dir = tmp.path().join("log");
    let child_test = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::fork_child"),
        None => "fork_child".to_owned(),
    };
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &child_test, "--nocapture", "--test-threads=1"])
        .env(FORK_ENV, &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (records, integrity) = Reader::read_all(&dir).unwrap();
    assert_eq!(integrity.verdict(), Verdict::Clean, "{integrity:?}");
    let ops: Vec<String> = records
        .iter()
        .filter_map(|r| match r {
            Record::Window(w) => Some(w.op.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(ops, ["parent.op", "parent.op"]);
}

/// A directory the writer cannot write: opening fails with an I/O error; reading works.
#[cfg(target_os = "linux")]
#[test]
fn a_read_only_directory_is_an_error_for_the_writer_and_fine_for_readers() {
    let tmp = log_util::TempDir::new("ro");
    let dir = tmp.path().join("log");
    let w = Writer::open(LogConfig::new(&dir)).unwrap();
    drop(w);
    // Read-only for everyone, root included: a read-only bind mount where mounting is
    // allowed, file modes otherwise (which root ignores: then only the reader is checked).
    let mounted = std::process::Command::new("mount")
        .args(["--bind", "-o", "ro"])
        .arg(&dir)
        .arg(&dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _unmount = crate::log_engine::Mount::new(mounted.then(|| dir.clone()));
    let ro_enforced = mounted || {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        // SAFETY: `geteuid` has no preconditions.
        let euid = unsafe { libc::geteuid() };
        euid != 0
    };
    if ro_enforced {
        match Writer::open(LogConfig::new(&dir)) {
            Err(LogError::Io { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    let integrity = Reader::check(&dir).unwrap();
    assert_eq!(integrity.verdict(), Verdict::Clean, "{integrity:?}");
    if !mounted {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    }
}
