//! Owns [`ReadAhead`]: delivery on two cores. The bodies of a backlog segment's messages are
//! read (from their packs: copied out of a read window, inflated, delta-resolved) on a second
//! thread, in delivery order, a batch at a time, while the consumer's thread decodes and
//! hands out the batch before.
//!
//! Invariants:
//! - The worker reads with the consumer's own [`Odb`], lent to it (its packs, windows and
//!   delta-base cache; the [`Location`]s of the segment name packs of that handle) and handed
//!   back by [`ReadAhead::finish()`]; meanwhile the consumer holds a fresh handle on the same
//!   objects directory, which reads the same objects (a handle is only caches).
//! - Bodies come out exactly in segment order from the start position, one per location;
//!   the first error ends the stream in that message's place (the bodies before it are
//!   handed out first), and the worker stops there.
//! - Memory: at most [`IN_FLIGHT`] + 2 batches, each of at most [`BATCH_MESSAGES`] messages
//!   and, but for a single larger message, [`BATCH_BYTES`] bytes.
//! - Dropping a `ReadAhead` stops and joins its worker: no thread outlives it.

use std::{
    sync::{mpsc, Arc},
    thread,
};

use crate::git::{
    odb::{Location, Odb},
    walk::Error,
};

/// Messages per batch at most.
pub(super) const BATCH_MESSAGES: usize = 256;
/// Body bytes per batch at most (a batch always takes at least one message).
pub(super) const BATCH_BYTES: usize = 256 << 10;
/// Batches read ahead of the one being handed out, at most.
pub(super) const IN_FLIGHT: usize = 4;

/// Where a segment's messages are stored, by position in delivery order.
pub(super) trait Locations: Send + Sync + 'static {
    /// How many messages.
    fn len(&self) -> usize;
    /// Where message `at` (below [`len()`](Self::len)) is stored.
    fn location(&self, at: usize) -> Option<Location>;
}

/// Bodies of consecutive messages, concatenated.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Per message: its kind and where its body ends in `bytes`.
    ends: Vec<(gix_object::Kind, usize)>,
}

impl Batch {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn get(&self, at: usize) -> Option<(gix_object::Kind, &[u8])> {
        let start = match at.checked_sub(1) {
            Some(before) => self.ends.get(before)?.1,
            None => 0,
        };
        let (kind, end) = *self.ends.get(at)?;
        Some((kind, self.bytes.get(start..end)?))
    }
}

/// The read-ahead of one segment, from a start position to its end.
#[derive(Debug)]
pub(super) struct ReadAhead {
    batches: Option<mpsc::Receiver<Result<Batch, Error>>>,
    recycle: mpsc::Sender<Batch>,
    worker: Option<thread::JoinHandle<Odb>>,
    current: Batch,
    /// The next message of `current` to hand out.
    next: usize,
}

/// Lifecycle
impl ReadAhead {
    /// Read the bodies of `segment` from `from` on a new thread, with `odb` (lent: it is
    /// replaced by a fresh handle on the same objects until [`finish()`](Self::finish)).
    pub(super) fn start<L: Locations>(odb: &mut Odb, segment: Arc<L>, from: usize) -> Self {
        let fresh = Odb::with_fs(odb.objects_dir().to_owned(), odb.fs().clone());
        let lent = std::mem::replace(odb, fresh);
        let (send, batches) = mpsc::sync_channel(IN_FLIGHT);
        let (recycle, spare) = mpsc::channel();
        let worker = thread::Builder::new()
            .name("gitmq-read-ahead".into())
            .spawn(move || read(lent, &*segment, from, &send, &spare));
        match worker {
            Ok(worker) => Self {
                batches: Some(batches),
                recycle,
                worker: Some(worker),
                current: Batch::default(),
                next: 0,
            },
            // No thread: nothing was lent after all (the handle moved into the closure is
            // gone with it, the fresh one stays).
            Err(_) => Self {
                batches: None,
                recycle,
                worker: None,
                current: Batch::default(),
                next: 0,
            },
        }
    }

    /// Stop the worker and hand back the handle it read with (`None` if it never ran).
    pub(super) fn finish(mut self) -> Option<Odb> {
        self.stop()
    }

    fn stop(&mut self) -> Option<Odb> {
        // A worker blocked on a full channel wakes up to a closed one and returns.
        self.batches = None;
        let worker = self.worker.take()?;
        match worker.join() {
            Ok(odb) => Some(odb),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        if !thread::panicking() {
            self.stop();
        }
    }
}

/// Access
impl ReadAhead {
    /// Whether a worker runs (spawning one may fail: then read without it).
    pub(super) fn is_running(&self) -> bool {
        self.worker.is_some()
    }

    /// The next message's kind and body, in segment order; `None` past the segment's end.
    pub(super) fn next_body(&mut self) -> Option<Result<(gix_object::Kind, &[u8]), Error>> {
        if self.next == self.current.ends.len() {
            let batches = self.batches.as_ref()?;
            let batch = match batches.recv().ok()? {
                Ok(batch) => batch,
                Err(err) => return Some(Err(err)),
            };
            let done = std::mem::replace(&mut self.current, batch);
            let _ = self.recycle.send(done);
            self.next = 0;
        }
        let at = self.next;
        self.next += 1;
        Some(Ok(self
            .current
            .get(at)
            .expect("BUG: a batch holds the messages it counts")))
    }
}

/// The worker: read `segment` from `at` to its end into batches, until done, an error (sent
/// last) or the receiver is gone; hand the handle back.
fn read(
    mut odb: Odb,
    segment: &impl Locations,
    mut at: usize,
    send: &mpsc::SyncSender<Result<Batch, Error>>,
    spare: &mpsc::Receiver<Batch>,
) -> Odb {
    let mut scratch = Vec::new();
    while at < segment.len() {
        let mut batch = spare.try_recv().unwrap_or_default();
        batch.clear();
        let mut failed = None;
        while at < segment.len()
            && batch.ends.len() < BATCH_MESSAGES
            && (batch.bytes.is_empty() || batch.bytes.len() < BATCH_BYTES)
        {
            let location = segment
                .location(at)
                .expect("BUG: positions below len() have a location");
            match odb.object_at(&location, &mut scratch) {
                Ok((kind, body)) => {
                    batch.bytes.extend_from_slice(body);
                    batch.ends.push((kind, batch.bytes.len()));
                    at += 1;
                }
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
        if !batch.ends.is_empty() && send.send(Ok(batch)).is_err() {
            return odb;
        }
        if let Some(err) = failed {
            let _ = send.send(Err(err.into()));
            return odb;
        }
    }
    odb
}

#[cfg(test)]
mod tests {
    use crate::{ConsumerName, Repository, TopicName};

    /// More messages than a read-ahead needs to start, in several packs.
    fn topic(dir: &std::path::Path) -> (Repository, TopicName, Vec<Vec<u8>>) {
        let repo = Repository::init(dir).unwrap();
        let topic = TopicName::new("t").unwrap();
        let payloads: Vec<Vec<u8>> = (0..3 * super::super::backlog::READ_AHEAD_MIN)
            .map(|i| format!("message {i} {}", "x".repeat(i % 300)).into_bytes())
            .collect();
        for chunk in payloads.chunks(2000) {
            repo.producer(&topic)
                .publish_batch(chunk.iter().map(Vec::as_slice))
                .unwrap();
        }
        (repo, topic, payloads)
    }

    #[test]
    fn a_read_ahead_hands_out_every_message_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, topic, payloads) = topic(dir.path());
        let mut consumer = repo
            .consumer(&ConsumerName::new("c").unwrap(), &topic)
            .unwrap();
        let mut seen = Vec::new();
        loop {
            let read = consumer
                .poll_with(1000, |m| -> Result<(), crate::Error> {
                    seen.push(m.payload.to_vec());
                    Ok(())
                })
                .unwrap();
            if read == 0 {
                break;
            }
        }
        assert_eq!(seen, payloads, "the topic, oldest first, each message once");
    }

    /// A handler's failure, or the consumer's.
    #[derive(Debug)]
    enum Failed {
        Handler,
        Consumer(#[allow(dead_code, reason = "shown by Debug")] super::super::Error),
    }

    impl From<super::super::Error> for Failed {
        fn from(err: super::super::Error) -> Self {
            Failed::Consumer(err)
        }
    }

    #[test]
    fn a_failed_visit_mid_read_ahead_hands_the_message_out_again_next() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, topic, payloads) = topic(dir.path());
        let mut consumer = repo
            .consumer(&ConsumerName::new("c").unwrap(), &topic)
            .unwrap();
        let mut seen: Vec<Vec<u8>> = Vec::new();
        let mut failed = false;
        loop {
            let result = consumer.poll_with(usize::MAX, |m| -> Result<(), Failed> {
                if seen.len() == 5000 && !failed {
                    failed = true;
                    return Err(Failed::Handler);
                }
                seen.push(m.payload.to_vec());
                Ok(())
            });
            match result {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) => assert!(matches!(err, Failed::Handler), "{err:?}"),
            }
        }
        assert!(failed);
        assert_eq!(
            seen, payloads,
            "the failed message came again, then the rest"
        );
        // The consumer's handle came back from the worker (or was replaced): it still reads.
        assert_eq!(consumer.lag().unwrap(), payloads.len());
    }
}
