//! Owns [`ReadAhead`]: delivery on several cores. The bodies of a backlog segment's messages
//! are read (from their packs: copied out of a read window, inflated, delta-resolved) on
//! worker threads, in delivery order, a batch at a time, while the consumer's thread decodes
//! and hands out the batch before. With [`WORKERS`] workers, the segment from the start
//! position is cut into stripes of [`STRIPE_MESSAGES`]; worker `k` reads stripes `k`,
//! `k + WORKERS`, ..., and the consumer takes the stripes from the workers in turn, so
//! nothing needs reordering. A second worker pays where bodies cost more to read than to
//! hand out: a pack git wrote, deflated, where one worker inflating was the bottleneck
//! (`gitmq consume --no-commit` of 1M messages in one `git fast-import` pack, two cores,
//! interleaved runs: one worker 5.9-6.7 s, two 3.1-3.3 s; `git log --reverse --format=%B`
//! 9.0-9.6 s). Where bodies are stored (gitmq's packs) the consumer's thread is the
//! bottleneck and a second worker only takes its core (0.54 -> 0.68 s): `Backlog` starts
//! one there.
//!
//! Invariants:
//! - The first worker reads with the consumer's own [`Odb`], lent to it (its packs, windows
//!   and delta-base cache; the [`Location`]s of the segment name packs of that handle) and
//!   handed back by [`ReadAhead::finish()`]; the others read with siblings of it
//!   ([`Odb::sibling()`]: the same packs under the same keys). Meanwhile the consumer holds
//!   a fresh handle on the same objects directory, which reads the same objects (a handle
//!   is only caches).
//! - Bodies come out exactly in segment order from the start position, one per location;
//!   the first error (in segment order) ends the stream in that message's place (the
//!   bodies before it are handed out first), and the worker that met it stops there.
//! - Memory: per worker at most [`IN_FLIGHT`] + 1 batches, plus the one being handed out,
//!   each of at most [`BATCH_MESSAGES`] messages and, but for a single larger message,
//!   [`BATCH_BYTES`] bytes.
//! - Dropping a `ReadAhead` stops and joins its workers: no thread outlives it.

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
/// Batches a worker reads ahead of the consumer, at most.
pub(super) const IN_FLIGHT: usize = 4;
/// Messages per stripe: the unit the workers take turns on.
pub(super) const STRIPE_MESSAGES: usize = BATCH_MESSAGES;
/// Workers, at most (fewer on a machine with fewer cores than this plus the consumer's, but
/// at least one).
pub(super) const WORKERS: usize = 2;

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
    /// The last batch of its stripe: the next comes from the next worker.
    ends_stripe: bool,
}

impl Batch {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.ends_stripe = false;
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

/// One worker as the consumer sees it.
#[derive(Debug)]
struct Worker {
    batches: mpsc::Receiver<Result<Batch, Error>>,
    recycle: mpsc::Sender<Batch>,
    thread: thread::JoinHandle<Odb>,
}

/// The read-ahead of one segment, from a start position to its end.
#[derive(Debug)]
pub(super) struct ReadAhead {
    /// In stripe order: worker `k` reads stripes `k`, `k + workers.len()`, ...
    workers: Vec<Worker>,
    /// The worker whose stripe is being handed out.
    turn: usize,
    current: Batch,
    /// The next message of `current` to hand out.
    next: usize,
}

/// Lifecycle
impl ReadAhead {
    /// Read the bodies of `segment` from `from` on new threads, with `odb` (lent: it is
    /// replaced by a fresh handle on the same objects until [`finish()`](Self::finish)),
    /// on at most `workers` of them (at least one is tried).
    pub(super) fn start<L: Locations>(
        odb: &mut Odb,
        segment: Arc<L>,
        from: usize,
        workers: usize,
    ) -> Self {
        let fresh = Odb::with_fs(odb.objects_dir().to_owned(), odb.fs().clone());
        let lent = std::mem::replace(odb, fresh);
        // The first worker takes the consumer's handle, the others siblings of it. A handle
        // that has not listed its packs has no sibling naming them by the same keys.
        let count = if lent.has_listed_packs() {
            workers.max(1)
        } else {
            1
        };
        let mut handles: Vec<Odb> = (1..count).map(|_| lent.sibling()).collect();
        handles.insert(0, lent);
        let mut spawned = Vec::with_capacity(count);
        for (k, handle) in handles.into_iter().enumerate() {
            let (send, batches) = mpsc::sync_channel(IN_FLIGHT);
            let (recycle, spare) = mpsc::channel();
            let stripes = Stripes {
                first: from + k * STRIPE_MESSAGES,
                step: count * STRIPE_MESSAGES,
            };
            let worker_segment = Arc::clone(&segment);
            let thread = thread::Builder::new()
                .name("gitmq-read-ahead".into())
                .spawn(move || read(handle, &*worker_segment, stripes, &send, &spare));
            match thread {
                Ok(thread) => spawned.push(Worker {
                    batches,
                    recycle,
                    thread,
                }),
                // No first worker: nothing was lent after all (the handle moved into the
                // closure is gone with it, the fresh one stays).
                Err(_) if k == 0 => return Self::running(Vec::new()),
                // A worker short: the stripes were dealt for `count`, so take the lent
                // handle back and start again with as many as did spawn.
                Err(_) => {
                    if let Some(lent) = Self::running(spawned).stop() {
                        *odb = lent;
                    }
                    return Self::start(odb, segment, from, k);
                }
            }
        }
        Self::running(spawned)
    }

    fn running(workers: Vec<Worker>) -> Self {
        Self {
            workers,
            turn: 0,
            current: Batch::default(),
            next: 0,
        }
    }

    /// Stop the workers and hand back the handle the first one read with (`None` if it
    /// never ran).
    pub(super) fn finish(mut self) -> Option<Odb> {
        self.stop()
    }

    fn stop(&mut self) -> Option<Odb> {
        let mut lent = None;
        for (k, worker) in std::mem::take(&mut self.workers).into_iter().enumerate() {
            // A worker blocked on a full channel wakes up to a closed one and returns.
            drop(worker.batches);
            match worker.thread.join() {
                Ok(odb) if k == 0 => lent = Some(odb),
                Ok(_) => {}
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        lent
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
        !self.workers.is_empty()
    }

    /// The next message's kind and body, in segment order; `None` past the segment's end.
    pub(super) fn next_body(&mut self) -> Option<Result<(gix_object::Kind, &[u8]), Error>> {
        if self.next == self.current.ends.len() {
            if self.current.ends_stripe {
                self.turn = (self.turn + 1) % self.workers.len().max(1);
            }
            let worker = self.workers.get(self.turn)?;
            let batch = match worker.batches.recv().ok()? {
                Ok(batch) => batch,
                Err(err) => return Some(Err(err)),
            };
            let done = std::mem::replace(&mut self.current, batch);
            let _ = worker.recycle.send(done);
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

/// The stripes one worker reads: those starting at `first`, `first + step`, ...
#[derive(Debug, Clone, Copy)]
struct Stripes {
    first: usize,
    step: usize,
}

/// A worker: read its stripes of `segment` into batches, until the segment's end, an error
/// (sent last) or the receiver is gone; hand the handle back.
fn read(
    mut odb: Odb,
    segment: &impl Locations,
    stripes: Stripes,
    send: &mpsc::SyncSender<Result<Batch, Error>>,
    spare: &mpsc::Receiver<Batch>,
) -> Odb {
    let mut scratch = Vec::new();
    let mut stripe = stripes.first;
    while stripe < segment.len() {
        let stripe_end = (stripe + STRIPE_MESSAGES).min(segment.len());
        let mut at = stripe;
        while at < stripe_end {
            let mut batch = spare.try_recv().unwrap_or_default();
            batch.clear();
            let mut failed = None;
            while at < stripe_end
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
            batch.ends_stripe = at == stripe_end;
            if !batch.ends.is_empty() && send.send(Ok(batch)).is_err() {
                return odb;
            }
            if let Some(err) = failed {
                let _ = send.send(Err(err.into()));
                return odb;
            }
        }
        stripe = stripe.saturating_add(stripes.step);
    }
    odb
}

#[cfg(test)]
mod tests {
    use crate::{ConsumerName, Repository, TopicName};

    /// More messages than a read-ahead needs to start, in several packs.
    fn topic(dir: &std::path::Path) -> (Repository, TopicName, Vec<Vec<u8>>) {
        topic_padded(dir, 0)
    }

    /// [`topic`], each payload `pad` bytes longer.
    fn topic_padded(dir: &std::path::Path, pad: usize) -> (Repository, TopicName, Vec<Vec<u8>>) {
        let repo = Repository::init(dir).unwrap();
        let topic = TopicName::new("t").unwrap();
        let payloads: Vec<Vec<u8>> = (0..3 * super::super::backlog::READ_AHEAD_MIN)
            .map(|i| format!("message {i} {}", "x".repeat(i % 300 + pad)).into_bytes())
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

    #[test]
    fn stripes_cut_into_several_batches_come_out_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // 256 bodies of over 1 KiB pass the batch's byte bound: a stripe is several batches.
        let (repo, topic, payloads) = topic_padded(dir.path(), 1100);
        const { assert!(super::STRIPE_MESSAGES * 1100 > super::BATCH_BYTES) };
        let mut consumer = repo
            .consumer(&ConsumerName::new("c").unwrap(), &topic)
            .unwrap();
        let mut seen = Vec::new();
        while consumer
            .poll_with(usize::MAX, |m| -> Result<(), crate::Error> {
                seen.push(m.payload.to_vec());
                Ok(())
            })
            .unwrap()
            > 0
        {}
        assert_eq!(seen, payloads, "the topic, oldest first, each message once");
    }

    #[test]
    fn an_error_in_the_second_workers_stripe_comes_after_every_message_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, topic, payloads) = topic(dir.path());
        // A message of the second stripe (the second worker's, when there are two): its
        // stored body is damaged in the pack, so its Adler-32 fails and zlib refuses it.
        let broken = super::STRIPE_MESSAGES + 7;
        let needle = format!("message {broken} ").into_bytes();
        let pack_dir = dir.path().join("objects/pack");
        let mut damaged = 0;
        for entry in std::fs::read_dir(&pack_dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "pack") {
                let mut bytes = std::fs::read(&path).unwrap();
                if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
                    bytes[at] ^= 0x20;
                    std::fs::write(&path, bytes).unwrap();
                    damaged += 1;
                }
            }
        }
        assert_eq!(damaged, 1, "the message's body is in one pack");
        let mut consumer = repo
            .consumer(&ConsumerName::new("c").unwrap(), &topic)
            .unwrap();
        let mut seen: Vec<Vec<u8>> = Vec::new();
        let failed = loop {
            match consumer.poll_with(1000, |m| -> Result<(), crate::Error> {
                seen.push(m.payload.to_vec());
                Ok(())
            }) {
                Ok(0) => break None,
                Ok(_) => {}
                Err(err) => break Some(err),
            }
        };
        assert!(failed.is_some(), "the damaged message is an error");
        assert_eq!(
            seen,
            payloads[..broken],
            "every message before it, in order, once"
        );
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
