//! The engine's side of the log: a [`Writer`] on the aggregator thread that survives faults.
//!
//! Fault policy (also in `docs/log-format.md`): when opening the log or writing a window
//! fails (unwritable directory, full disk, failed mapping), the writer is dropped, the
//! error goes into every [`Snapshot`](crate::Snapshot) ([`LogStatus::last_error`]) and is
//! printed once on stderr, and the engine goes on aggregating in memory. Closed windows
//! wait in memory (at most [`MAX_PENDING`]; older ones are dropped and counted in
//! [`LogStatus::windows_lost`]). A new writer (with a new segment) is tried at the first
//! window close at least [`FIRST_RETRY`] after the fault, then after doubling intervals up
//! to [`MAX_RETRY`]. On success the waiting windows are written, oldest first, and the
//! recovery is printed once. A window that failed half written is counted lost (its first
//! operations may be in the log). Only the aggregator thread does any of this.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::{EngineEvent, EngineEventKind};
use super::writer::{LogConfig, Writer};
use super::LogError;
use crate::report::{LogStatus, WindowReport};

pub use crate::limits::{FIRST_RETRY, MAX_PENDING, MAX_RETRY};

/// The log as the aggregator holds it.
pub(crate) struct LogSink {
    config: LogConfig,
    writer: Option<Writer>,
    status: Arc<LogStatus>,
    pending: VecDeque<Arc<WindowReport>>,
    retry_at: Instant,
    backoff: Duration,
}

impl LogSink {
    /// Opens the log and writes a start event (`now_ns`: the engine clock, `detail`: its
    /// configuration). A failure is recorded and retried later, never returned.
    pub(crate) fn new(config: LogConfig, now_ns: u64, detail: String) -> Self {
        let mut sink = Self {
            status: Arc::new(LogStatus {
                dir: config.dir.clone(),
                writing: false,
                last_error: None,
                faults: 0,
                windows_written: 0,
                windows_pending: 0,
                windows_lost: 0,
            }),
            config,
            writer: None,
            pending: VecDeque::new(),
            retry_at: Instant::now(),
            backoff: FIRST_RETRY,
        };
        match Writer::open(sink.config.clone()) {
            Ok(w) => {
                sink.writer = Some(w);
                Arc::make_mut(&mut sink.status).writing = true;
            }
            Err(e) => sink.fault(e),
        }
        sink.event(EngineEventKind::Start, now_ns, detail);
        sink
    }

    /// The current state.
    pub(crate) fn status(&self) -> Arc<LogStatus> {
        Arc::clone(&self.status)
    }

    /// Records a fault: drops the writer, reports once, schedules a retry.
    fn fault(&mut self, e: LogError) {
        let first = self.status.writing || self.status.faults == 0;
        self.writer = None;
        let msg = e.to_string();
        if first {
            eprintln!(
                "ringmeter: window log {}: {msg}; windows stay in memory, retrying with back-off",
                self.config.dir.display()
            );
        }
        let s = Arc::make_mut(&mut self.status);
        s.writing = false;
        s.faults += 1;
        s.last_error = Some(msg);
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_RETRY);
    }

    /// Tries to reopen the log if it is failing and the back-off has passed; true when a
    /// writer is open.
    fn ready(&mut self) -> bool {
        if self.writer.is_some() {
            return true;
        }
        if Instant::now() < self.retry_at {
            return false;
        }
        match Writer::open(self.config.clone()) {
            Ok(w) => {
                self.writer = Some(w);
                self.backoff = FIRST_RETRY;
                Arc::make_mut(&mut self.status).writing = true;
                eprintln!(
                    "ringmeter: window log {} is being written again",
                    self.config.dir.display()
                );
                true
            }
            Err(e) => {
                self.fault(e);
                false
            }
        }
    }

    /// Appends a closed window (after any that are waiting).
    pub(crate) fn window(&mut self, report: &Arc<WindowReport>) {
        self.pending.push_back(Arc::clone(report));
        if self.pending.len() > MAX_PENDING {
            self.pending.pop_front();
            Arc::make_mut(&mut self.status).windows_lost += 1;
        }
        if self.ready() {
            while let Some(r) = self.pending.pop_front() {
                let Some(w) = self.writer.as_mut() else { break };
                match w.append_window(&r) {
                    Ok(()) => Arc::make_mut(&mut self.status).windows_written += 1,
                    Err(e) => {
                        Arc::make_mut(&mut self.status).windows_lost += 1;
                        self.fault(e);
                        break;
                    }
                }
            }
        }
        let pending = self.pending.len() as u64;
        if self.status.windows_pending != pending {
            Arc::make_mut(&mut self.status).windows_pending = pending;
        }
    }

    /// Appends an engine event (dropped while the log is failing).
    pub(crate) fn event(&mut self, kind: EngineEventKind, unix_ns: u64, detail: String) {
        if let Some(w) = self.writer.as_mut() {
            let ev = EngineEvent {
                kind,
                unix_ns,
                detail,
            };
            if let Err(e) = w.append_event(&ev) {
                self.fault(e);
            }
        }
    }

    /// Appends a record other than a window (dropped while the log is failing, like events).
    pub(crate) fn record(&mut self, record: &super::Record) {
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.append(record) {
                self.fault(e);
            }
        }
    }

    /// Seals the segment and waits until it is on disk (at shutdown; anything appended
    /// later reopens it).
    pub(crate) fn flush(&mut self) {
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.seal() {
                self.fault(e);
            }
        }
    }
}
