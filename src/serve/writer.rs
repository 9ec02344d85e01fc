//! Owns publishing: one writer thread and one [`Producer`] per topic, fed by every HTTP
//! request that publishes to it (group commit).
//!
//! A writer takes the first job waiting, then every other job already queued (up to
//! [`CYCLE_BYTES`] / [`CYCLE_MESSAGES`]), appends their messages in arrival order into one
//! batch, flushes it (one pack, one ref update; in `batch` durability one round of fsyncs)
//! and answers each job with its final commit ids. While it flushes, new jobs queue up and
//! form the next batch, so the batch size follows the load: one message when idle, thousands
//! under load.
//!
//! Gathering: HTTP clients each wait for their answer before they publish again, so after a
//! cycle the clients just answered come back while the jobs queued meanwhile are taken. A
//! writer that took fewer jobs than there were clients at the end of its last cycle (jobs
//! answered plus jobs then queued) waits a little for the others ([`gather_for()`]: at most
//! half the last flush, at most [`MAX_GATHER`]) so that they share one flush instead of
//! splitting into two cohorts that alternate, each paying a whole flush.
//!
//! Invariants: a job is answered with ids only after the flush that holds its messages
//! returned (acknowledged, durable per the producer's durability); a job's messages are all in
//! one batch, so it is acknowledged or refused whole, never half done (messages are validated
//! before a job is queued; the producer's configuration never cuts a batch by itself); after
//! a failed flush every job of that batch is refused and a fresh producer takes over; when
//! the writers close, every job already queued is still appended, flushed and answered.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc, Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use bytes::Bytes;
use gix_hash::ObjectId;
use tokio::sync::oneshot;

use super::{error::ApiError, metrics::Metrics};
use crate::{git::message::Envelope, Durability, Producer, ProducerConfig, Repository, TopicName};

/// A batch stops taking queued jobs past this many payload bytes...
pub(crate) const CYCLE_BYTES: usize = 8 << 20;
/// ... or this many messages.
pub(crate) const CYCLE_MESSAGES: usize = 20_000;

/// The longest a writer waits for the clients of its last cycle to come back.
pub(crate) const MAX_GATHER: Duration = Duration::from_millis(5);

/// One message to publish (validated: no NUL, envelope well-formed).
#[derive(Debug)]
pub(crate) struct Item {
    pub payload: Bytes,
    pub envelope: Option<Envelope>,
}

/// One request's messages, published together.
#[derive(Debug)]
pub(crate) struct Job {
    pub items: Vec<Item>,
    pub reply: oneshot::Sender<Result<Vec<ObjectId>, ApiError>>,
}

/// Wakes long polls and event streams when a topic moves.
pub(crate) type OnMoved = Arc<dyn Fn(&TopicName) + Send + Sync>;

/// The writers of every topic published to so far.
pub(crate) struct Writers {
    repo: Repository,
    config: ProducerConfig,
    /// `Durability::Each`: every job is its own batch.
    job_per_batch: bool,
    topics: Mutex<HashMap<TopicName, Writer>>,
    closed: AtomicBool,
    metrics: Arc<Metrics>,
    on_moved: OnMoved,
}

struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Jobs sent and not yet taken by the writer.
    queued: Arc<AtomicUsize>,
    thread: JoinHandle<()>,
}

impl Writers {
    pub fn new(
        repo: Repository,
        durability: Durability,
        identity: crate::Identity,
        metrics: Arc<Metrics>,
        on_moved: OnMoved,
    ) -> Self {
        let mut config = ProducerConfig::default()
            .with_identity(identity)
            .with_durability(match durability {
                Durability::Each => Durability::Batch,
                other => other,
            });
        // The writer cuts batches at job boundaries itself; the producer never does.
        config.max_batch_messages = usize::MAX;
        config.max_batch_bytes = usize::MAX;
        config.linger = Duration::from_secs(24 * 3600);
        config.background_flush = false;
        Self {
            repo,
            config,
            job_per_batch: durability == Durability::Each,
            topics: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            metrics,
            on_moved,
        }
    }

    /// Queue `items` for `topic`; the receiver gets the final ids once they are acknowledged.
    pub fn submit(
        &self,
        topic: &TopicName,
        items: Vec<Item>,
    ) -> Result<oneshot::Receiver<Result<Vec<ObjectId>, ApiError>>, ApiError> {
        let (reply, answer) = oneshot::channel();
        let mut topics = self
            .topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.closed.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable(
                "the server is shutting down; nothing was published",
            ));
        }
        if !topics.contains_key(topic) {
            let writer = self.spawn(topic)?;
            topics.insert(topic.clone(), writer);
        }
        let writer = topics.get(topic).expect("BUG: inserted above");
        writer.queued.fetch_add(1, Ordering::SeqCst);
        writer.jobs.send(Job { items, reply }).map_err(|_| {
            writer.queued.fetch_sub(1, Ordering::SeqCst);
            ApiError::unavailable("the topic's writer stopped; nothing was published")
        })?;
        Ok(answer)
    }

    /// Stop taking jobs, then wait until every writer has flushed and answered what it took.
    pub fn close(&self) {
        let writers: Vec<Writer> = {
            let mut topics = self
                .topics
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.closed.store(true, Ordering::SeqCst);
            topics.drain().map(|(_, w)| w).collect()
        };
        for writer in writers {
            drop(writer.jobs);
            let _ = writer.thread.join();
        }
    }

    fn spawn(&self, topic: &TopicName) -> Result<Writer, ApiError> {
        let (jobs, queue) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut state = WriterState {
            queued: queued.clone(),
            clients: 0,
            last_flush: Duration::ZERO,
            repo: self.repo.clone(),
            topic: topic.clone(),
            config: self.config.clone(),
            producer: None,
            job_per_batch: self.job_per_batch,
            metrics: self.metrics.clone(),
            on_moved: self.on_moved.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("gitmq-serve-{topic}"))
            .spawn(move || state.run(&queue))
            .map_err(|err| ApiError::internal(format!("cannot start a writer thread: {err}")))?;
        Ok(Writer {
            jobs,
            queued,
            thread,
        })
    }
}

struct WriterState {
    /// Shared with [`Writer::queued`].
    queued: Arc<AtomicUsize>,
    /// Clients at the end of the last cycle: jobs answered plus jobs then queued.
    clients: usize,
    /// How long the last flush took.
    last_flush: Duration,
    repo: Repository,
    topic: TopicName,
    config: ProducerConfig,
    producer: Option<Producer>,
    job_per_batch: bool,
    metrics: Arc<Metrics>,
    on_moved: OnMoved,
}

/// Where a message's final id comes from.
#[derive(Clone, Copy)]
enum Slot {
    /// The n-th message appended in this cycle.
    Appended(usize),
    /// A stable id the producer had seen: the original's id (provisional if appended in this
    /// cycle).
    Duplicate(ObjectId),
}

impl WriterState {
    fn run(&mut self, queue: &mpsc::Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            let mut bytes = job_bytes(&first);
            let mut messages = first.items.len();
            let mut cycle = vec![first];
            let deadline = Instant::now() + gather_for(self.last_flush);
            while !self.job_per_batch && bytes < CYCLE_BYTES && messages < CYCLE_MESSAGES {
                let job = match queue.try_recv() {
                    Ok(job) => job,
                    Err(mpsc::TryRecvError::Disconnected) => break,
                    Err(mpsc::TryRecvError::Empty) => {
                        let now = Instant::now();
                        if cycle.len() >= self.clients || now >= deadline {
                            break;
                        }
                        match queue.recv_timeout(deadline - now) {
                            Ok(job) => job,
                            Err(_) => break,
                        }
                    }
                };
                self.queued.fetch_sub(1, Ordering::SeqCst);
                bytes += job_bytes(&job);
                messages += job.items.len();
                cycle.push(job);
            }
            let jobs = cycle.len();
            self.cycle(cycle);
            self.clients = jobs + self.queued.load(Ordering::SeqCst);
        }
    }

    /// Append every job's messages, flush once, answer every job.
    fn cycle(&mut self, jobs: Vec<Job>) {
        let mut cycle = Cycle::default();
        self.append(jobs, &mut cycle);
        let failed = self.flush(&mut cycle);
        if failed.is_none() && !cycle.acknowledged.is_empty() {
            self.metrics
                .published(&self.topic, cycle.acknowledged.len());
            (self.on_moved)(&self.topic);
        }
        let final_of = |slot: Slot| match slot {
            Slot::Appended(n) => cycle.acknowledged[n],
            Slot::Duplicate(id) if cycle.rebuilt => cycle
                .provisional
                .iter()
                .position(|p| *p == id)
                .map_or(id, |n| cycle.acknowledged[n]),
            Slot::Duplicate(id) => id,
        };
        for (job, answer) in std::mem::take(&mut cycle.answers) {
            let answer = match (answer, &failed) {
                (Err(err), _) => Err(err),
                (Ok(_), Some(err)) => Err(err.clone()),
                (Ok(slots), None) => Ok(slots.into_iter().map(final_of).collect()),
            };
            // The client may have gone: its messages are published all the same.
            let _ = job.reply.send(answer);
        }
    }

    /// Append the jobs' messages into the open batch, in order.
    fn append(&mut self, jobs: Vec<Job>, cycle: &mut Cycle) {
        if self.producer.is_none() {
            self.producer = Some(self.config.clone().open(&self.repo, &self.topic));
        }
        for job in jobs {
            if let Some(err) = &cycle.broken {
                cycle.answers.push((job, Err(err.clone())));
                continue;
            }
            let producer = self
                .producer
                .as_mut()
                .expect("BUG: opened above, taken only when the cycle is broken");
            let mut slots = Vec::with_capacity(job.items.len());
            let mut failure = None;
            for item in &job.items {
                let appended = match &item.envelope {
                    Some(envelope) => producer.append_with(&item.payload, envelope),
                    None => producer.append(&item.payload),
                };
                match appended {
                    Ok(appended) => {
                        if let Some(flushed) = appended.flushed {
                            cycle.rebuilt |= flushed.rebuilt;
                            cycle.acknowledged.extend(flushed.ids);
                        }
                        if appended.duplicate {
                            slots.push(Slot::Duplicate(appended.id));
                        } else {
                            slots.push(Slot::Appended(cycle.provisional.len()));
                            cycle.provisional.push(appended.id);
                        }
                    }
                    Err(err) => {
                        failure = Some(ApiError::from(err));
                        break;
                    }
                }
            }
            match failure {
                None => cycle.answers.push((job, Ok(slots))),
                // Nothing of this job was appended: refuse it alone.
                Some(err) if slots.is_empty() => cycle.answers.push((job, Err(err))),
                // Part of the job is in the open batch (only a failed first read of the
                // topic's stable ids can do this): the batch must not be written. The
                // producer is leaked rather than dropped, because dropping flushes.
                Some(err) => {
                    let err = ApiError::unavailable(format!(
                        "publish failed, nothing of this request was acknowledged: {}",
                        err.message
                    ));
                    std::mem::forget(self.producer.take());
                    cycle.answers.push((job, Err(err.clone())));
                    cycle.broken = Some(err);
                }
            }
        }
    }

    /// Flush the batch; the error every appended job gets, if it failed.
    fn flush(&mut self, cycle: &mut Cycle) -> Option<ApiError> {
        let flushed = match (&cycle.broken, self.producer.as_mut()) {
            (None, Some(producer)) if !cycle.provisional.is_empty() => {
                let started = Instant::now();
                let result = producer.flush();
                self.last_flush = started.elapsed();
                self.metrics.observe_flush(self.last_flush);
                result
            }
            _ => Ok(crate::produce::Flushed::default()),
        };
        match flushed {
            Ok(flushed) => {
                cycle.rebuilt |= flushed.rebuilt;
                cycle.acknowledged.extend(flushed.ids);
                (cycle.acknowledged.len() != cycle.provisional.len()).then(|| {
                    ApiError::internal(format!(
                        "BUG: {} messages appended, {} acknowledged",
                        cycle.provisional.len(),
                        cycle.acknowledged.len()
                    ))
                })
            }
            Err(err) => {
                // The producer is poisoned; the next cycle opens a fresh one (it reads the
                // topic's head again).
                self.producer = None;
                Some(ApiError::unavailable(format!(
                    "publish failed, nothing of this request was acknowledged: {}",
                    super::error::chain(&err)
                )))
            }
        }
    }
}

/// One batch in the making.
#[derive(Default)]
struct Cycle {
    /// Ids of the messages appended, as `append` handed them out.
    provisional: Vec<ObjectId>,
    /// Their final ids, in the same order, once flushed.
    acknowledged: Vec<ObjectId>,
    /// Whether another writer moved the topic, so final ids differ from provisional ones.
    rebuilt: bool,
    answers: Vec<(Job, Result<Vec<Slot>, ApiError>)>,
    /// Set when the batch must not be written; every job gets this error.
    broken: Option<ApiError>,
}

/// How long a writer may wait for more jobs after the last flush took `last_flush`: half of
/// it (a flush that costs little is not worth waiting for), at most [`MAX_GATHER`].
fn gather_for(last_flush: Duration) -> Duration {
    (last_flush / 2).min(MAX_GATHER)
}

fn job_bytes(job: &Job) -> usize {
    job.items.iter().map(|i| i.payload.len()).sum()
}
