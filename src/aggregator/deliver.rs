//! Delivering: closed windows to subscribers and callbacks, alert notices to their
//! callbacks, and snapshots built for publication.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::{Aggregator, AlertCallback, WindowCallback};
use crate::alert::{Alert, AlertRule};
use crate::error::Error;
use crate::hist::buckets;
use crate::hub::Hub;
use crate::log::Record;
use crate::loom::{AtomicU64, Ordering};
use crate::report::{OpTotals, Snapshot, WindowReport};

/// Receives every closed window through a bounded channel.
///
/// A subscriber that falls behind misses windows rather than slowing the aggregator; the
/// count of missed windows is in [`Subscription::missed`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let (clock, mock) = ringmeter::Clock::mock();
/// let engine = ringmeter::Engine::builder().clock(clock).start_manual()?;
/// let windows = engine.subscribe(16);
/// let t = engine.op("step")?.start();
/// mock.advance_ns(10);
/// drop(t); // ends at 10 ns: window 0
/// mock.advance(Duration::from_secs(2));
/// engine.flush()?; // window 0 is past its end and grace: closed
/// let w = windows.try_recv().expect("a closed window");
/// assert_eq!((w.index, w.op("step").unwrap().stats.count), (0, 1));
/// # Ok::<(), ringmeter::Error>(())
/// ```
#[derive(Debug)]
pub struct Subscription {
    rx: Receiver<Arc<WindowReport>>,
    missed: Arc<AtomicU64>,
}

impl Subscription {
    /// Waits up to `timeout` for the next closed window.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Arc<WindowReport>> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next closed window if one is waiting.
    pub fn try_recv(&self) -> Option<Arc<WindowReport>> {
        self.rx.try_recv().ok()
    }

    /// The underlying channel, for `select!` and iteration.
    pub fn receiver(&self) -> &Receiver<Arc<WindowReport>> {
        &self.rx
    }

    /// Windows not delivered because the channel was full.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }
}

impl Subscription {
    /// A subscription that will never receive anything (its sender is already gone).
    pub(crate) fn closed() -> Self {
        let (_, rx) = crossbeam_channel::bounded(1);
        Self {
            rx,
            missed: Arc::new(AtomicU64::new(0)),
        }
    }
}

pub(super) struct Subscriber {
    tx: Sender<Arc<WindowReport>>,
    missed: Arc<AtomicU64>,
}

thread_local! {
    /// Id of the engine whose window callbacks run on this thread right now (0: none).
    static IN_CALLBACK: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

/// Marks the current thread as running engine `id`'s callbacks until dropped.
struct CallbackScope(u64);

impl CallbackScope {
    fn enter(id: u64) -> Self {
        Self(IN_CALLBACK.replace(id))
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        IN_CALLBACK.set(self.0);
    }
}

/// Whether the calling thread is inside a window callback of engine `id` (where taking the
/// aggregator's lock again would deadlock).
pub(crate) fn in_callback_of(id: u64) -> bool {
    IN_CALLBACK.get() == id
}

impl Aggregator {
    /// Adds a channel subscriber.
    pub(crate) fn subscribe(&mut self, capacity: usize) -> Subscription {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let missed = Arc::new(AtomicU64::new(0));
        self.subscribers.push(Subscriber {
            tx,
            missed: Arc::clone(&missed),
        });
        Subscription { rx, missed }
    }

    /// Adds a callback.
    pub(crate) fn add_callback(&mut self, f: WindowCallback) {
        self.callbacks.push(f);
    }

    /// Replaces the alert rules (already validated); notices of removed firing rules go out.
    pub(crate) fn set_alert_rules(&mut self, rules: Vec<AlertRule>) -> Result<(), Error> {
        let notices = self.alerts.set_rules(rules)?;
        self.notify(&notices);
        Ok(())
    }

    /// Adds an alert callback.
    pub(crate) fn add_alert_callback(&mut self, f: AlertCallback) {
        self.alert_callbacks.push(f);
    }

    /// Logs alert notices and hands them, as one group, to the alert callbacks.
    pub(super) fn notify(&mut self, notices: &[Alert]) {
        if notices.is_empty() {
            return;
        }
        if let Some(log) = &mut self.log {
            for n in notices {
                log.record(&Record::Alert(n.clone()));
            }
        }
        let _in_callback = CallbackScope::enter(self.engine_id);
        let mut i = 0;
        while i < self.alert_callbacks.len() {
            let cb = &mut self.alert_callbacks[i];
            if catch_unwind(AssertUnwindSafe(|| cb(notices))).is_err() {
                eprintln!("ringmeter: an alert callback panicked and was removed");
                drop(self.alert_callbacks.swap_remove(i));
            } else {
                i += 1;
            }
        }
    }

    /// Hands a closed window to callbacks and subscribers.
    pub(super) fn deliver(&mut self, report: &Arc<WindowReport>) {
        let _in_callback = CallbackScope::enter(self.engine_id);
        let mut i = 0;
        while i < self.callbacks.len() {
            let cb = &mut self.callbacks[i];
            if catch_unwind(AssertUnwindSafe(|| cb(report))).is_err() {
                eprintln!("ringmeter: a window callback panicked and was removed");
                drop(self.callbacks.swap_remove(i));
            } else {
                i += 1;
            }
        }
        self.subscribers
            .retain(|s| match s.tx.try_send(Arc::clone(report)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    let n = s.missed.load(Ordering::Relaxed);
                    // Only the aggregator writes this counter.
                    s.missed.store(n + 1, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
    }

    /// Publishes a snapshot. With `include_open`, totals also cover the open windows.
    pub(super) fn publish(&mut self, hub: &Hub, include_open: bool) -> Arc<Snapshot> {
        self.sequence += 1;
        let mut in_open: Vec<u32> = Vec::new();
        if include_open {
            for w in &self.windows {
                in_open.extend_from_slice(&w.touched);
            }
            in_open.sort_unstable();
            in_open.dedup();
        }
        let mut totals = Vec::new();
        let mut open_iter = in_open.iter().peekable();
        let ids = self
            .totals
            .len()
            .max(in_open.last().map_or(0, |&m| m as usize + 1));
        if ids > self.names.len() {
            hub.copy_names(&mut self.names);
        }
        for id in 0..ids as u32 {
            let has_open = open_iter.next_if(|&&o| o == id).is_some();
            let (stats, calls, counts) = if has_open {
                self.merged_with_open(id)
            } else {
                match self.totals.get(id as usize) {
                    Some(t) if !t.acc.is_empty() => {
                        (t.stats.clone(), t.acc.calls, t.buckets.clone())
                    }
                    _ => continue,
                }
            };
            let buckets = if counts.is_empty() {
                vec![0; self.bucket_bounds.len() + 1]
            } else {
                buckets::cumulative(&counts)
            };
            let name = self
                .names
                .get(id as usize)
                .cloned()
                .unwrap_or_else(|| Arc::from(format!("op{id}")));
            totals.push(OpTotals {
                id,
                name,
                stats,
                sum_ns: calls.sum,
                weight: calls.weight,
                buckets,
            });
        }
        let (counters, gauges) = hub.read_metrics();
        Arc::new(Snapshot {
            last_window: self.last_window.clone(),
            totals,
            windows_closed: self.windows_closed,
            sequence: self.sequence,
            log: self.log.as_ref().map(|l| l.status()),
            bucket_bounds_ns: Arc::clone(&self.bucket_bounds),
            counters,
            gauges,
            alerts: if self.alerts.is_empty() {
                Vec::new()
            } else {
                self.alerts.active()
            },
            process: self.last_window.as_ref().and_then(|w| w.process),
            budgets: if self.alerts.is_empty() {
                Vec::new()
            } else {
                self.alerts.budgets()
            },
        })
    }
}
