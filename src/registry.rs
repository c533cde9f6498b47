//! Registration of per-thread rings with the aggregator.
//!
//! A thread's first event for an engine creates a ring and hands its consumer end to the
//! engine through a short mutex-protected list; the aggregator adopts the list on its next pass.
//! The mutex is only taken on registration (once per thread and engine) and by the aggregator,
//! never on the hot path.

use crate::loom::Mutex;
use crate::ring::{self, Consumer, Producer};

/// Consumers of rings registered since the aggregator last looked.
pub struct Registry<T> {
    pending: Mutex<Vec<Consumer<T>>>,
}

impl<T: Copy> Registry<T> {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Creates a ring of `capacity` slots with drop counters for `keys` keys, hands its
    /// consumer to the aggregator and returns the producer.
    #[cfg_attr(not(loom), allow(dead_code))]
    pub fn register(&self, capacity: usize, keys: usize) -> Producer<T> {
        self.register_tagged(capacity, keys, 0, None)
    }

    /// [`register`](Self::register) with a tag and label for the consumer
    /// (see [`ring::channel_tagged`]).
    pub fn register_tagged(
        &self,
        capacity: usize,
        keys: usize,
        tag: u64,
        label: Option<std::sync::Arc<str>>,
    ) -> Producer<T> {
        let (producer, consumer) = ring::channel_tagged(capacity, keys, tag, label);
        // A poisoned lock only means another registering thread panicked mid-push of a Vec;
        // the Vec itself is still valid.
        let mut pending = match self.pending.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        pending.push(consumer);
        producer
    }

    /// Moves every newly registered consumer into `into`.
    pub fn adopt(&self, into: &mut Vec<Consumer<T>>) {
        let mut pending = match self.pending.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        into.append(&mut pending);
    }
}

impl<T: Copy> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}
