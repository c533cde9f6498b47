//! The engine writes every closed window to its log with exact statistics, and survives an
//! unwritable log directory.

use std::time::Duration;

use ringmeter::log::{EngineEventKind, Health, Reader, Record};
use ringmeter::{Clock, Engine};

use crate::util::log as log_util;

#[test]
fn closed_windows_appear_in_the_log_with_exact_stats() {
    let dir = log_util::TempDir::new("engine");
    let (clock, mock) = Clock::mock();
    let engine = Engine::builder()
        .clock(clock)
        .log_dir(dir.path())
        .log_segment_size(8192)
        .start_manual()
        .unwrap();
    let windows = engine.subscribe(1024);
    let ops = [
        engine.op("db.query").unwrap(),
        engine.op("http.get").unwrap(),
        engine.op("cache.hit").unwrap(),
    ];
    for w in 0..12_u64 {
        for (k, op) in ops.iter().enumerate() {
            for i in 0..(w * 7 + k as u64) % 23 {
                if i % 5 == 0 {
                    op.record_error_ns(1_000 + i * 313 + w);
                } else {
                    op.record_ns(1_000 + i * 313 + w * 1_000_000);
                }
            }
        }
        mock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
    }
    engine.shutdown().unwrap();
    let status = engine.snapshot().log.clone().expect("log status");
    assert!(status.writing && status.last_error.is_none(), "{status:?}");

    let mut reports = Vec::new();
    while let Some(r) = windows.try_recv() {
        reports.push(r);
    }
    assert_eq!(status.windows_written, reports.len() as u64);
    let (records, integrity) = Reader::read_all(dir.path()).unwrap();
    assert!(integrity.is_clean(), "{integrity:?}");
    assert!(integrity.segments > 1, "the test should rotate segments");
    assert!(matches!(&records[0], Record::Event(e) if e.kind == EngineEventKind::Start));
    assert!(
        matches!(records.last(), Some(Record::Event(e)) if e.kind == EngineEventKind::Shutdown)
    );
    let logged: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Window(w) => Some(w),
            _ => None,
        })
        .collect();
    let expected: Vec<_> = reports
        .iter()
        .flat_map(|r| r.ops.iter().map(move |o| (r, o)))
        .collect();
    assert_eq!(logged.len(), expected.len());
    assert!(logged.len() > 20);
    for (w, (r, o)) in logged.iter().zip(&expected) {
        assert_eq!(&*w.op, &*o.name);
        assert_eq!(w.op_id, o.id);
        assert_eq!(w.index, r.index);
        assert_eq!(w.start_unix_ns, r.start_unix_ns);
        assert_eq!(w.length_ns, r.length_ns);
        assert_eq!(w.stats, o.stats);
        assert_eq!(w.histogram, *o.histogram);
        assert_eq!(w.slow_threshold_ns, 1_000_000_000);
    }
}

#[test]
fn an_unwritable_log_directory_is_reported_and_retried_while_the_engine_runs() {
    let tmp = log_util::TempDir::new("fault");
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let dir = blocker.join("log");
    let (clock, mock) = Clock::mock();
    let engine = Engine::builder()
        .clock(clock)
        .log_dir(&dir)
        .start_manual()
        .unwrap();
    let op = engine.op("db.query").unwrap();
    for _ in 0..3 {
        op.record_ns(5_000);
        mock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
    }
    let snap = engine.snapshot();
    let status = snap.log.clone().unwrap();
    assert!(!status.writing);
    assert!(
        status.last_error.as_deref().unwrap().contains("file"),
        "{status:?}"
    );
    assert_eq!(status.windows_written, 0);
    assert_eq!(status.windows_pending, snap.windows_closed);
    assert_eq!(snap.totals("db.query").unwrap().count, 3);

    // Clear the fault; after the back-off (real time, not the mock clock's) a window close
    // retries and writes the waiting windows. Close windows until one has.
    std::fs::remove_file(&blocker).unwrap();
    op.record_ns(7_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        mock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
        let status = engine.snapshot().log.clone().unwrap();
        if status.writing && status.windows_pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log was not retried within 30 s: {status:?}"
        );
        // Pacing only: the loop ends on the retry, not on this pause.
        std::thread::sleep(Duration::from_millis(20));
    }
    engine.shutdown().unwrap();
    let snap = engine.snapshot();
    let status = snap.log.clone().unwrap();
    assert!(status.writing, "{status:?}");
    assert_eq!(status.windows_written, snap.windows_closed);
    assert_eq!(status.windows_pending, 0);
    assert_eq!(status.windows_lost, 0);
    let (records, integrity) = Reader::read_all(&dir).unwrap();
    assert_eq!(integrity.health(), Health::Clean);
    let counts: u64 = records
        .iter()
        .filter_map(|r| match r {
            Record::Window(w) => Some(w.stats.count),
            _ => None,
        })
        .sum();
    assert_eq!(counts, 4);
}

#[test]
fn log_settings_are_validated() {
    for b in [
        Engine::builder().log_dir("x").log_segment_size(100),
        Engine::builder().log_dir("x").log_segment_size(2 << 30),
        Engine::builder().log_retention(Duration::ZERO, 1),
        Engine::builder().log_retention(Duration::from_secs(1), 0),
    ] {
        assert!(matches!(
            b.start_manual(),
            Err(ringmeter::Error::InvalidConfig { .. })
        ));
    }
}

#[test]
fn an_engine_without_a_log_reports_none() {
    let engine = Engine::builder().start_manual().unwrap();
    engine.flush().unwrap();
    assert!(engine.snapshot().log.is_none());
}

/// Unmounts on drop (nothing for `None`).
#[cfg(target_os = "linux")]
pub(crate) struct Mount(Option<std::path::PathBuf>);

#[cfg(target_os = "linux")]
impl Mount {
    pub(crate) fn new(path: Option<std::path::PathBuf>) -> Self {
        Self(path)
    }
}

#[cfg(target_os = "linux")]
impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::process::Command::new("umount").arg(p).status();
        }
    }
}

/// A full disk (a 128 KiB tmpfs; needs the right to mount: skipped without it, except under
/// `CI`, where it fails) is a fault:
/// reported, retried, never a crash, and the engine's numbers stay exact.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_a_fault_not_a_crash() {
    let tmp = log_util::TempDir::new("full");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=128k", "tmpfs"])
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        // Under CI the case must run: a runner that cannot mount fails it.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but a tmpfs cannot be mounted: the full-disk case cannot run"
        );
        eprintln!("skipped: cannot mount a tmpfs here (set CI to make this a failure)");
        return;
    }
    let _mount = Mount(Some(mnt.clone()));
    let dir = mnt.join("log");
    let (clock, mock) = Clock::mock();
    let engine = Engine::builder()
        .clock(clock)
        .log_dir(&dir)
        .log_segment_size(32 << 10)
        .start_manual()
        .unwrap();
    let ops: Vec<_> = (0..20)
        .map(|i| engine.op(&format!("op.{i}")).unwrap())
        .collect();
    for w in 0..30_u64 {
        for op in &ops {
            op.record_ns(1_000 + w);
        }
        mock.advance(Duration::from_secs(1));
        engine.flush().unwrap();
    }
    let snap = engine.snapshot();
    let status = snap.log.clone().unwrap();
    assert!(!status.writing, "{status:?}");
    assert!(status.faults >= 1);
    let err = status.last_error.as_deref().unwrap();
    assert!(err.contains("No space") || err.contains("28"), "{err}");
    assert!(status.windows_written > 0);
    assert_eq!(
        status.windows_written + status.windows_pending + status.windows_lost,
        snap.windows_closed
    );
    assert_eq!(snap.totals("op.0").unwrap().count, 30);
    engine.shutdown().unwrap();
    // What was written reads back, with at most a torn tail.
    let (records, integrity) = Reader::read_all(&dir).unwrap();
    assert!(integrity.health() <= Health::TornTail, "{integrity:?}");
    let windows = records
        .iter()
        .filter(|r| matches!(r, Record::Window(_)))
        .count() as u64;
    assert!(windows >= status.windows_written * 20 - 20, "{windows}");
}
