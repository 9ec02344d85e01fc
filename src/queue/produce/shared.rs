//! Owns sharing one [`Producer`] between threads: group commit.
//!
//! Each `publish` appends under a mutex and then waits until the batch holding its message is
//! acknowledged. Whichever waiting thread finds the batch due (full, lingered, or
//! `Durability::Each`) flushes it for everyone, so many threads share one pack, one ref update
//! and, in the syncing modes, one round of fsyncs.
//!
//! Invariants: a `publish` returns `Ok(id)` only for a message that is acknowledged, with its
//! final id (after any rebuild); if the flush of its batch fails, every caller waiting on that
//! batch gets the error and the producer stays poisoned.

use std::{
    collections::HashMap,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::Instant,
};

use gix_hash::ObjectId;

use super::{Error, Producer};
use crate::git::message::Envelope;

/// A [`Producer`] that many threads publish through at once; clones share it.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::{produce::SharedProducer, Repository, TopicName};
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = Repository::init(dir.path())?;
/// let shared = SharedProducer::new(repo.producer(&TopicName::new("events")?));
/// std::thread::scope(|s| {
///     for t in 0..4 {
///         let shared = shared.clone();
///         s.spawn(move || shared.publish(format!("from thread {t}").as_bytes()).unwrap());
///     }
/// });
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SharedProducer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    acknowledged: Condvar,
}

#[derive(Debug)]
struct State {
    producer: Producer,
    /// Sequence number of the next message appended.
    next_seq: u64,
    /// Sequence number of the first message of the open batch.
    batch_first_seq: u64,
    /// Final ids of flushed messages whose caller has not picked them up yet.
    ready: HashMap<u64, ObjectId>,
    /// Messages with a sequence number below this and not in `ready` failed with this error.
    failed_before: u64,
    failure: Option<Arc<Error>>,
}

impl SharedProducer {
    /// Share `producer` (its configuration applies: batch limits, linger, durability).
    pub fn new(producer: Producer) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    producer,
                    next_seq: 0,
                    batch_first_seq: 0,
                    ready: HashMap::new(),
                    failed_before: 0,
                    failure: None,
                }),
                acknowledged: Condvar::new(),
            }),
        }
    }

    /// Publish one message and wait until it is acknowledged; its final id.
    pub fn publish(&self, payload: &[u8]) -> Result<ObjectId, Error> {
        self.publish_inner(payload, None)
    }

    /// Publish one message with `envelope`'s stable id and headers and wait until it is
    /// acknowledged; its final id. Idempotent like [`Producer::publish_with()`]: a stable id
    /// in the window returns the original's final commit id.
    pub fn publish_with(&self, payload: &[u8], envelope: &Envelope) -> Result<ObjectId, Error> {
        self.publish_inner(payload, Some(envelope))
    }

    fn publish_inner(
        &self,
        payload: &[u8],
        envelope: Option<&Envelope>,
    ) -> Result<ObjectId, Error> {
        let mut state = self.lock();
        let stable = envelope.and_then(Envelope::id);
        if state.producer.known(stable)?.is_some() {
            // The original may still wait in a batch: flush it so its id is final.
            if state.producer.pending() > 0 {
                state = self.flush_locked(state);
            }
            if let Some(id) = state.producer.known(stable)? {
                return Ok(id);
            }
        }
        state.producer.append_unflushed(payload, envelope)?;
        let seq = state.next_seq;
        state.next_seq += 1;
        loop {
            if let Some(id) = state.ready.remove(&seq) {
                return Ok(id);
            }
            if seq < state.failed_before {
                if let Some(cause) = state.failure.clone() {
                    return Err(Error::Poisoned {
                        topic: state.producer.topic().clone(),
                        cause,
                    });
                }
            }
            if state.producer.pending() > 0 && state.producer.is_due() {
                state = self.flush_locked(state);
                continue;
            }
            state = match state.producer.linger_deadline() {
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    self.inner
                        .acknowledged
                        .wait_timeout(state, wait)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
                None => self
                    .inner
                    .acknowledged
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            };
        }
    }

    /// Flush whatever is pending now and wait for it.
    pub fn flush(&self) -> Result<(), Error> {
        let state = self.lock();
        let state = self.flush_locked(state);
        match &state.failure {
            Some(cause) if state.producer.is_poisoned() => Err(Error::Poisoned {
                topic: state.producer.topic().clone(),
                cause: cause.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn flush_locked<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let first = state.batch_first_seq;
        let count = state.producer.pending() as u64;
        match state.producer.flush() {
            Ok(flushed) => {
                for (i, id) in flushed.ids.into_iter().enumerate() {
                    state.ready.insert(first + i as u64, id);
                }
            }
            Err(err) => {
                state.producer.discard_batch();
                state.failed_before = first + count;
                state.failure = Some(match err {
                    Error::Poisoned { cause, .. } => cause,
                    err => Arc::new(err),
                });
            }
        }
        state.batch_first_seq = first + count;
        self.inner.acknowledged.notify_all();
        state
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
