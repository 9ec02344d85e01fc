//! Owns moving a sealed batch to disk and onto the topic: trailer and index, pack files, ref.
//!
//! Runs on the producer's background thread (or inline): while it hashes, writes and syncs
//! one batch, the producer's thread encodes and hashes the next, so the two cores overlap.
//!
//! Invariants (the order of `flush_sealed`): pack and index are written, synced when the mode
//! asks, renamed (pack first) and their directory synced, *then* the ref is locked; if the
//! topic moved since the batch was built, the batch is rebuilt on the new head under the lock
//! and that pack written too (the stale one is never removed: a byte-identical pack of another
//! producer may have the same name); only then does
//! the ref move, synced when the mode asks. Batches are flushed strictly in order; after the
//! first failure every later batch is refused, never written past a gap.

use std::{
    path::PathBuf,
    sync::{
        mpsc::{self, Receiver, SyncSender},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use super::{batch::SealedBatch, Error, Flushed};
use crate::{
    git::odb::pack::write::{Compression, PackBuilder},
    git::refs::{Expected, RefStore},
    Durability, TopicName,
};

/// Everything a flush needs, cloned into the background thread.
#[derive(Debug, Clone)]
pub(crate) struct FlushContext {
    pub refs: RefStore,
    pub pack_dir: PathBuf,
    pub topic: TopicName,
    pub compression: Compression,
    pub durability: Durability,
    pub lock_timeout: Duration,
}

/// Frame `batch` into a pack (with `builder`), write it and move the topic to its tip; the
/// final ids, and the batch back (its buffers serve the next one).
pub(crate) fn flush_sealed(
    ctx: &FlushContext,
    batch: SealedBatch,
    builder: &mut PackBuilder,
) -> (Result<Flushed, Error>, Option<SealedBatch>) {
    match flush_sealed_inner(ctx, batch, builder) {
        Ok((flushed, batch)) => (Ok(flushed), Some(batch)),
        Err(err) => (Err(err), None),
    }
}

fn flush_sealed_inner(
    ctx: &FlushContext,
    mut batch: SealedBatch,
    builder: &mut PackBuilder,
) -> Result<(Flushed, SealedBatch), Error> {
    let sync = ctx.durability.syncs();
    batch
        .write(ctx.refs.fs(), &ctx.pack_dir, builder, ctx.compression, sync)
        .map_err(Error::Pack)?;
    let lock = ctx.refs.lock(&ctx.topic.ref_name(), ctx.lock_timeout)?;
    let current = lock.current()?;
    let (mut batch, rebuilt) = if current == batch.base {
        (batch, false)
    } else {
        // The pack just written stays: another producer may have written a byte-identical
        // pack (same messages, identity and second on the same head) under the same name, and
        // its ref may name it. Its objects are unreachable from here on; consolidation keeps
        // them, `git gc` prunes them.
        let mut rebuilt = batch.rebuilt_on(current).map_err(|source| Error::Rebuild {
            topic: ctx.topic.clone(),
            source,
        })?;
        rebuilt
            .write(ctx.refs.fs(), &ctx.pack_dir, builder, ctx.compression, sync)
            .map_err(Error::Pack)?;
        (rebuilt, true)
    };
    let tip = batch.tip().expect("BUG: a sealed batch holds a message");
    // On failure the pack stays: whether the ref moved is unknown, and an unnamed pack is
    // harmless. The producer is poisoned by its caller.
    lock.commit(Expected::from_current(current), &tip, sync)?;
    let ids = std::mem::take(&mut batch.ids);
    Ok((Flushed { ids, rebuilt }, batch))
}

/// A background thread flushing sealed batches in order.
#[derive(Debug)]
pub(crate) struct Pipeline {
    jobs: Option<SyncSender<SealedBatch>>,
    done: Receiver<(Result<Flushed, Error>, Option<SealedBatch>)>,
    in_flight: usize,
    thread: Option<JoinHandle<()>>,
}

/// Sealed batches queued beyond the one being flushed (bounds the producer's memory).
const QUEUE: usize = 1;

impl Pipeline {
    pub fn start(ctx: FlushContext) -> Self {
        let (jobs, job_rx) = mpsc::sync_channel::<SealedBatch>(QUEUE);
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("gitmq-flush-{}", ctx.topic))
            .spawn(move || {
                let mut builder = PackBuilder::new(ctx.compression);
                let mut failed: Option<Arc<Error>> = None;
                for batch in job_rx {
                    // After a failure, later batches are refused with it as their cause.
                    let (result, spare) = if let Some(cause) = &failed {
                        (Err(cause.clone()), None)
                    } else {
                        let (result, spare) = flush_sealed(&ctx, batch, &mut builder);
                        let result = result.map_err(|err| {
                            let cause = Arc::new(err);
                            failed = Some(cause.clone());
                            cause
                        });
                        (result, spare)
                    };
                    let result = result.map_err(|cause| Error::Poisoned {
                        topic: ctx.topic.clone(),
                        cause,
                    });
                    if done_tx.send((result, spare)).is_err() {
                        break;
                    }
                }
            })
            .expect("spawning the flush thread");
        Self {
            jobs: Some(jobs),
            done,
            in_flight: 0,
            thread: Some(thread),
        }
    }

    /// Queue `batch`; blocks while the queue is full. Whether it had room (the flush thread
    /// keeps up with the appending one).
    pub fn submit(&mut self, batch: SealedBatch) -> bool {
        let jobs = self.jobs.as_ref().expect("BUG: submit after shutdown");
        let had_room = match jobs.try_send(batch) {
            Ok(()) => true,
            Err(mpsc::TrySendError::Full(batch)) => {
                jobs.send(batch)
                    .expect("BUG: the flush thread outlives its sender");
                false
            }
            Err(mpsc::TrySendError::Disconnected(_)) => {
                panic!("BUG: the flush thread outlives its sender")
            }
        };
        self.in_flight += 1;
        had_room
    }

    /// Results that are ready (with their spare buffers), without waiting.
    pub fn ready(&mut self) -> Vec<(Result<Flushed, Error>, Option<SealedBatch>)> {
        let mut out = Vec::new();
        while let Ok(result) = self.done.try_recv() {
            self.in_flight -= 1;
            out.push(result);
        }
        out
    }

    /// Wait for every queued batch.
    pub fn drain(&mut self) -> Vec<(Result<Flushed, Error>, Option<SealedBatch>)> {
        let mut out = Vec::with_capacity(self.in_flight);
        while self.in_flight > 0 {
            let result = self
                .done
                .recv()
                .expect("BUG: the flush thread answers every job");
            self.in_flight -= 1;
            out.push(result);
        }
        out
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has flushed what was queued.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
