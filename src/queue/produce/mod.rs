//! Owns appending messages to a topic: the [`Producer`] (one thread) and the
//! [`SharedProducer`] (many threads, group commit).
//!
//! Data flow: `append` -> encode the commit on the batch's tip -> SHA-1 (its id) -> append it
//! to the batch's in-memory pack -> (when the batch is full, lingered long enough, or on
//! `flush`) seal the pack: header count (and deflate on every core, if asked) -> hand it to
//! the flush thread, and start the next batch at once -> (flush thread) trailer SHA-1, v2
//! index -> write pack and index to temporary files -> (sync) -> rename pack, then index ->
//! (sync `objects/pack/`) -> lock the topic ref -> compare with the batch's base: if another
//! writer moved the topic, rebuild the batch on the new head (new ids) and write that pack
//! instead -> move the ref -> (sync) -> acknowledge the ids.
//!
//! Invariants: ids are acknowledged only after the ref names them; a ref never names an object
//! outside a complete, indexed pack; after a failed write, sync or ref update the producer is
//! poisoned and refuses further work, rather than guess what reached the disk.

mod batch;
mod flusher;
mod idempotence;
mod shared;
mod signing;
mod stable;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use gix_hash::ObjectId;

pub use idempotence::{Idempotence, MessageIds};
// The engine's types a producer's configuration and reports name.
pub use crate::git::odb::pack::{
    consolidate::{
        Error as ConsolidateError, Policy as ConsolidatePolicy, Report as ConsolidateReport,
    },
    midx::{
        chain::{Policy as MidxPolicy, Report as MidxReport},
        Error as MidxError,
    },
    write::Compression,
};
pub use shared::SharedProducer;
pub use signing::{SignMode, Signing};

use self::{
    batch::Batch,
    flusher::{flush_sealed, FlushContext, Pipeline},
    idempotence::{IdGenerator, Window},
};
use crate::{
    git::message::{self, restack, CommitEncoder, Envelope, Identity},
    git::odb::pack::{midx, write},
    Durability, Repository, TopicName,
};

/// How long a producer waits for another writer's ref lock before giving up, by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Returned by every [`Producer`] and [`SharedProducer`] operation.
///
/// A failure to write, sync or move the ref poisons the producer (fjall's and redb's rule: no
/// retry past a failed write or fsync, no acknowledgment after one): that call and every
/// later one return [`Error::Poisoned`] with the first failure as its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The payload was refused (it holds a NUL byte); nothing was appended.
    #[error(transparent)]
    Payload(#[from] message::Error),
    /// A batch could not be written or put on the topic: the producer is poisoned and refuses
    /// further work. Messages not acknowledged before are not on the topic; open a new
    /// producer.
    #[error("appending to topic {topic} failed and the producer is poisoned (reopen it): {cause}")]
    Poisoned {
        /// The topic.
        topic: TopicName,
        /// The first failure.
        #[source]
        cause: Arc<Error>,
    },
    /// Writing the batch's pack failed.
    #[error(transparent)]
    Pack(#[from] write::Error),
    /// Rebuilding a batch on the head another writer moved the topic to failed.
    #[error("rebuilding the batch on the new head of {topic} failed")]
    Rebuild {
        /// The topic.
        topic: TopicName,
        /// Why.
        source: restack::Error,
    },
    /// Reading or moving the topic's ref failed.
    #[error(transparent)]
    Refs(#[from] crate::git::refs::Error),
    /// Reading the topic's last messages (to learn their stable ids) failed.
    #[error(transparent)]
    Walk(#[from] crate::git::walk::Error),
}

impl From<crate::git::odb::Error> for Error {
    fn from(err: crate::git::odb::Error) -> Self {
        Error::Walk(err.into())
    }
}

/// How a producer batches and acknowledges.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Author and committer of every message.
    pub identity: Identity,
    /// When a message counts as acknowledged.
    pub durability: Durability,
    /// Stored blocks (default, fastest) or deflate.
    pub compression: Compression,
    /// A batch is flushed when it holds this many messages.
    pub max_batch_messages: usize,
    /// ... or this many bytes of pack.
    pub max_batch_bytes: usize,
    /// ... or when its first message is this old (checked on each append, and by
    /// [`Producer::flush_if_due()`]).
    pub linger: Duration,
    /// How long to wait for another writer's ref lock.
    pub lock_timeout: Duration,
    /// Flush on a background thread, overlapping the next batch's encoding with this batch's
    /// hashing, writing and syncing (default). Off: flushes run on the caller's thread.
    pub background_flush: bool,
    /// Keep the multi-pack-index chain covering the packs, in a background thread (every
    /// [`MidxPolicy::layer_packs`] batches), so lookups stay bounded however many packs a
    /// topic has; nothing in a pack is copied or hashed again. `None` leaves it alone.
    pub multi_pack_index: Option<midx::chain::Policy>,
    /// Which messages carry a stable id (default: only those given one).
    pub message_ids: MessageIds,
    /// Deduplicate messages appended with a stable id (default: on, see [`Idempotence`]);
    /// `None` appends every message.
    pub idempotence: Option<Idempotence>,
    /// Sign messages with an SSH key (feature `sign`; see [`Signing`]); `None` (default):
    /// unsigned.
    pub signing: Option<Signing>,
}

/// Building (a configuration is set before its producer exists: nothing set on a live
/// producer can drop what it holds)
impl ProducerConfig {
    /// Author and commit messages as `identity`.
    #[must_use]
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// Acknowledge messages per `durability`.
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Store or deflate entries per `compression`.
    #[must_use]
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Wait at most `timeout` for another writer's lock on the topic.
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Give messages without a given stable id a generated one, or not.
    #[must_use]
    pub fn with_message_ids(mut self, ids: MessageIds) -> Self {
        self.message_ids = ids;
        self
    }

    /// Deduplicate messages with stable ids per `idempotence` (`None`: never).
    #[must_use]
    pub fn with_idempotence(mut self, idempotence: Option<Idempotence>) -> Self {
        self.idempotence = idempotence;
        self
    }

    /// Sign messages per `signing` (see [`Signing`]).
    #[must_use]
    pub fn with_signing(mut self, signing: Signing) -> Self {
        self.signing = Some(signing);
        self
    }

    /// A producer appending to `topic` of `repo` with this configuration.
    ///
    /// ```
    /// # fn main() -> Result<(), gitmq::Error> {
    /// use gitmq::{Durability, Identity, ProducerConfig, Repository, TopicName};
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let repo = Repository::init(dir.path())?;
    /// let mut producer = ProducerConfig::default()
    ///     .with_identity(Identity::new("shop", "shop@example.com")?)
    ///     .with_durability(Durability::None)
    ///     .open(&repo, &TopicName::new("orders")?);
    /// producer.publish(b"first")?;
    /// # Ok(()) }
    /// ```
    pub fn open(self, repo: &Repository, topic: &TopicName) -> Producer {
        Producer::with_config(repo.clone(), topic.clone(), self)
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            identity: Identity::from_env(),
            durability: Durability::default(),
            compression: Compression::default(),
            max_batch_messages: 10_000,
            max_batch_bytes: 8 << 20,
            linger: Duration::from_millis(5),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            background_flush: true,
            multi_pack_index: Some(midx::chain::Policy::default()),
            message_ids: MessageIds::default(),
            idempotence: Some(Idempotence::default()),
            signing: None,
        }
    }
}

/// The outcome of a flush: the final ids of the batch's messages, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flushed {
    /// The acknowledged ids, in append order.
    pub ids: Vec<ObjectId>,
    /// True when another writer moved the topic since the batch began: the batch was rebuilt
    /// on the new head, so these ids differ from the ones `append` handed out.
    pub rebuilt: bool,
}

/// What [`Producer::append()`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The message's id in its batch: final unless the flush reports `rebuilt`.
    pub id: ObjectId,
    /// Messages acknowledged since the last report, this one among them or not: batches
    /// flushed because this append filled one (or it lingered long enough, or the durability
    /// is [`Durability::Each`], which acknowledges this message before returning).
    pub flushed: Option<Flushed>,
    /// True when the message's stable id was in the producer's idempotence window: nothing
    /// was appended, and `id` is the original message's commit id.
    pub duplicate: bool,
}

/// Appends messages to one topic in batches, each batch one pack and one ref update.
///
/// Messages are acknowledged when their batch is flushed: when it is full, has lingered, on
/// [`flush()`](Self::flush), or at once with [`Durability::Each`]. Dropping a producer flushes
/// what it holds, best effort; call `flush()` to learn the outcome.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::{Durability, Identity, Repository, TopicName};
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = Repository::init(dir.path())?;
/// let mut producer = gitmq::ProducerConfig::default()
///     .with_identity(Identity::new("shop", "shop@example.com")?)
///     .with_durability(Durability::None)
///     .open(&repo, &TopicName::new("orders")?);
/// let first = producer.append(b"first")?;     // in the batch, not yet acknowledged
/// assert!(first.flushed.is_none());
/// producer.append(b"second")?;
/// let flushed = producer.flush()?;           // one pack, one ref update
/// assert_eq!(flushed.ids[0], first.id);
/// assert_eq!(producer.publish_batch([&b"third"[..], b"fourth"])?.len(), 2);
/// # Ok(()) }
/// ```
///
/// A producer is configured before it exists ([`ProducerConfig::open()`]); a live producer has
/// no setters, so nothing can replace the batch it holds and drop messages appended but not
/// yet acknowledged:
///
/// ```compile_fail
/// # let dir = tempfile::tempdir().unwrap();
/// # let repo = gitmq::Repository::init(dir.path()).unwrap();
/// let mut producer = repo.producer(&gitmq::TopicName::new("t").unwrap());
/// producer.append(b"unflushed").unwrap();
/// let producer = producer.with_identity(gitmq::Identity::default()); // no such method
/// ```
#[derive(Debug)]
pub struct Producer {
    repo: Repository,
    topic: TopicName,
    config: ProducerConfig,
    encoder: CommitEncoder,
    batch: Batch,
    /// The first failure, once one poisoned the producer.
    poisoned: Option<Arc<Error>>,
    /// Whether the batch's base was read from the topic (done at the first append).
    base_read: bool,
    pipeline: Option<Pipeline>,
    /// Acknowledged batches not reported yet.
    acknowledged: Flushed,
    /// Flushed batches, whose buffers serve the next ones.
    spares: Vec<batch::SealedBatch>,
    /// Frames packs when flushing on this thread.
    inline_builder: Option<write::PackBuilder>,
    /// Batches acknowledged since the multi-pack-index was last updated.
    batches_since_index: usize,
    indexing: Option<std::thread::JoinHandle<Result<midx::chain::Report, midx::Error>>>,
    last_index_update: Option<Result<midx::chain::Report, Arc<midx::Error>>>,
    /// Sequence number of the next message appended, and of the next one acknowledged.
    next_seq: u64,
    acked_seq: u64,
    /// Stable ids remembered for idempotent publishing.
    window: Option<Window>,
    /// Generates stable ids when [`MessageIds::Generate`].
    generator: Option<IdGenerator>,
    id_buf: String,
}

/// Lifecycle
impl Producer {
    /// A producer for `topic` in `repo` with the default [`ProducerConfig`].
    pub fn new(repo: Repository, topic: TopicName) -> Self {
        Self::with_config(repo, topic, ProducerConfig::default())
    }

    /// A producer for `topic` in `repo` configured by `config`.
    pub fn with_config(repo: Repository, topic: TopicName, config: ProducerConfig) -> Self {
        let offset = gix_date::Time::now_local_or_utc().offset;
        let window = config.idempotence.map(Window::new);
        let generator = (config.message_ids == MessageIds::Generate).then(IdGenerator::new);
        let mut batch = Batch::new(None);
        batch.signing.clone_from(&config.signing);
        // Stored entries of messages nobody rewrites after encoding: framed as they come.
        batch.framed = config.compression == write::Compression::Stored && config.signing.is_none();
        batch.planned = config.max_batch_messages;
        Self {
            encoder: CommitEncoder::new(&config.identity, offset),
            batch,
            repo,
            topic,
            config,
            poisoned: None,
            base_read: false,
            pipeline: None,
            acknowledged: Flushed::default(),
            spares: Vec::new(),
            inline_builder: None,
            batches_since_index: 0,
            indexing: None,
            last_index_update: None,
            next_seq: 0,
            acked_seq: 0,
            window,
            generator,
            id_buf: String::new(),
        }
    }

    fn context(&self) -> FlushContext {
        FlushContext {
            refs: self.repo.refs().clone(),
            pack_dir: self.repo.git_dir().join("objects/pack"),
            topic: self.topic.clone(),
            compression: self.config.compression,
            durability: self.config.durability,
            lock_timeout: self.config.lock_timeout,
        }
    }
}

/// Appending
impl Producer {
    /// Add a message to the current batch and return its id; flushes when the batch is due
    /// and reports what was acknowledged meanwhile (see [`Appended::flushed`]).
    pub fn append(&mut self, payload: &[u8]) -> Result<Appended, Error> {
        let id = self.append_unflushed(payload, None)?;
        self.appended(id)
    }

    /// Flush as the configuration asks after appending the message `id`.
    fn appended(&mut self, id: ObjectId) -> Result<Appended, Error> {
        if self.config.durability == Durability::Each {
            return Ok(Appended {
                id,
                flushed: Some(self.flush()?),
                duplicate: false,
            });
        }
        if self.is_due() {
            self.submit()?;
        }
        self.collect(false)?;
        Ok(Appended {
            id,
            flushed: self.take_acknowledged(),
            duplicate: false,
        })
    }

    /// Add a message to the current batch without flushing (for [`SharedProducer`]).
    fn append_unflushed(
        &mut self,
        payload: &[u8],
        envelope: Option<&Envelope>,
    ) -> Result<ObjectId, Error> {
        self.check_poisoned()?;
        message::check_payload(payload)?;
        if !self.base_read {
            self.batch.base = self.repo.head(&self.topic)?;
            self.base_read = true;
            crate::git::fs::atomic::remove_stale_temp_files(
                &**self.repo.fs(),
                &self.repo.git_dir().join("objects/pack"),
            );
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let empty = Envelope::new();
        let envelope = match envelope {
            Some(envelope) => envelope,
            None if self.generator.is_none() => {
                return Ok(self.batch.push(&self.encoder, unix_seconds(), payload));
            }
            None => &empty,
        };
        let mut generated = std::mem::take(&mut self.id_buf);
        let stable = match (envelope.id(), self.generator.as_mut()) {
            (Some(id), _) => Some(id),
            (None, Some(generator)) => Some(generator.next_into(&mut generated)),
            (None, None) => None,
        };
        let id = self
            .batch
            .push_with(&self.encoder, unix_seconds(), stable, envelope, payload);
        self.id_buf = generated;
        if let (Some(stable), Some(window)) = (envelope.id(), self.window.as_mut()) {
            window.insert_pending(stable, seq, id);
        }
        Ok(id)
    }

    /// Flush the current batch if it is full or has lingered long enough; reports what was
    /// acknowledged meanwhile.
    pub fn flush_if_due(&mut self) -> Result<Option<Flushed>, Error> {
        if self.batch.len() > 0 && self.is_due() {
            self.submit()?;
        }
        self.collect(false)?;
        Ok(self.take_acknowledged())
    }

    /// Flush the current batch and wait for every batch in flight; everything acknowledged
    /// since the last report.
    pub fn flush(&mut self) -> Result<Flushed, Error> {
        self.check_poisoned()?;
        if self.batch.len() > 0 {
            self.submit()?;
        }
        self.collect(true)?;
        Ok(self.take_acknowledged().unwrap_or_default())
    }

    /// Append one message and flush: its final id, acknowledged.
    pub fn publish(&mut self, payload: &[u8]) -> Result<ObjectId, Error> {
        let appended = self.append(payload)?;
        let mut last = appended.flushed.and_then(|f| f.ids.last().copied());
        if let Some(id) = self.flush()?.ids.last() {
            last = Some(*id);
        }
        Ok(last.expect("BUG: a flush after an append acknowledges it"))
    }

    /// Append messages in order and flush; the final ids of everything acknowledged, these
    /// messages last. Batches are cut at the configured limits.
    pub fn publish_batch<I, P>(&mut self, payloads: I) -> Result<Vec<ObjectId>, Error>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let mut ids = Vec::new();
        for payload in payloads {
            if let Some(flushed) = self.append(payload.as_ref())?.flushed {
                ids.extend(flushed.ids);
            }
        }
        ids.extend(self.flush()?.ids);
        Ok(ids)
    }

    /// Drop the current batch's messages unacknowledged (after its flush failed).
    fn discard_batch(&mut self) {
        self.acked_seq += self.batch.len() as u64;
        if let Some(window) = self.window.as_mut() {
            window.forget_pending();
        }
        drop(self.batch.seal(None));
    }

    fn is_due(&self) -> bool {
        self.config.durability == Durability::Each
            || self.batch.len() >= self.config.max_batch_messages
            || self.batch.byte_len() >= self.config.max_batch_bytes
            || self
                .batch
                .started
                .is_some_and(|t| t.elapsed() >= self.config.linger)
    }

    /// Seal the current batch and flush it (on the background thread, or here).
    fn submit(&mut self) -> Result<(), Error> {
        let sealed = self.batch.seal(self.spares.pop());
        if !self.config.background_flush || self.config.durability == Durability::Each {
            let compression = self.config.compression;
            let context = self.context();
            let builder = self
                .inline_builder
                .get_or_insert_with(|| write::PackBuilder::new(compression));
            let (result, spare) = flush_sealed(&context, sealed, builder);
            self.keep_spare(spare);
            return self.record(result);
        }
        if self.pipeline.is_none() {
            self.pipeline = Some(Pipeline::start(self.context()));
        }
        let had_room = self
            .pipeline
            .as_mut()
            .expect("BUG: started above")
            .submit(sealed);
        // The flush thread keeps up: leave it the next batch's trailer, CRCs and index too
        // (see `batch`'s module header); when it falls behind, they come back here.
        self.batch.deferred = had_room;
        Ok(())
    }

    /// Take finished flushes from the background thread (all of them when `wait`).
    fn collect(&mut self, wait: bool) -> Result<(), Error> {
        let Some(pipeline) = self.pipeline.as_mut() else {
            return Ok(());
        };
        let results = if wait {
            pipeline.drain()
        } else {
            pipeline.ready()
        };
        let idle = pipeline.in_flight() == 0;
        let mut first_error = Ok(());
        for (result, spare) in results {
            self.keep_spare(spare);
            if let Err(err) = self.record(result) {
                if first_error.is_ok() {
                    first_error = Err(err);
                }
            }
        }
        // After a rebuild the open batch was built on a stale tip; restart it on the real one
        // when nothing is in flight and it is still empty (otherwise its flush rebuilds it).
        if idle && self.batch.len() == 0 && self.acknowledged.rebuilt {
            self.batch.base = self.acknowledged.ids.last().copied().or(self.batch.base);
        }
        first_error
    }

    fn keep_spare(&mut self, spare: Option<batch::SealedBatch>) {
        if let Some(spare) = spare {
            if self.spares.len() < 2 {
                self.spares.push(spare);
            }
        }
    }

    fn record(&mut self, result: Result<Flushed, Error>) -> Result<(), Error> {
        match result {
            Ok(flushed) => {
                if let Some(window) = self.window.as_mut() {
                    window.acknowledged(self.acked_seq, &flushed.ids);
                }
                self.acked_seq += flushed.ids.len() as u64;
                if self.acknowledged.ids.is_empty() {
                    // Hand the batch's ids over as they are: no copy.
                    self.acknowledged.ids = flushed.ids;
                } else {
                    self.acknowledged.ids.extend(flushed.ids);
                }
                self.acknowledged.rebuilt |= flushed.rebuilt;
                self.batches_since_index += 1;
                self.maybe_update_index();
                Ok(())
            }
            Err(err) => Err(self.poison(err)),
        }
    }

    /// Every `layer_packs` batches, update the multi-pack-index chain in a background thread
    /// unless an update is running.
    fn maybe_update_index(&mut self) {
        let Some(policy) = self.config.multi_pack_index else {
            return;
        };
        if self.indexing.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.finish_index_update();
        if self.batches_since_index < policy.layer_packs.max(1) {
            return;
        }
        self.batches_since_index = 0;
        let git_dir = self.repo.git_dir().to_owned();
        let fs = self.repo.fs().clone();
        let sync = self.config.durability.syncs();
        self.indexing = std::thread::Builder::new()
            .name("gitmq-midx".into())
            .spawn(move || midx::chain::update(&fs, &git_dir, policy, sync))
            .ok();
    }

    /// Wait for a running multi-pack-index update and keep its outcome.
    fn finish_index_update(&mut self) {
        if let Some(thread) = self.indexing.take() {
            self.last_index_update = Some(match thread.join() {
                Ok(result) => result.map_err(Arc::new),
                Err(_) => Err(Arc::new(midx::Error::Panicked)),
            });
        }
    }

    fn take_acknowledged(&mut self) -> Option<Flushed> {
        if self.acknowledged.ids.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.acknowledged))
    }

    fn check_poisoned(&self) -> Result<(), Error> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned {
                topic: self.topic.clone(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Poison the producer with `err` (unless an earlier failure did): the error to return.
    fn poison(&mut self, err: Error) -> Error {
        let cause = match err {
            Error::Poisoned { cause, .. } => cause,
            err => Arc::new(err),
        };
        Error::Poisoned {
            topic: self.topic.clone(),
            cause: self.poisoned.get_or_insert(cause).clone(),
        }
    }
}

/// Access
impl Producer {
    /// The topic this producer appends to.
    pub fn topic(&self) -> &TopicName {
        &self.topic
    }

    /// The configuration.
    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    /// How many messages wait in the current (open) batch.
    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// When the current batch is due by linger, if it holds messages.
    pub fn linger_deadline(&self) -> Option<Instant> {
        self.batch.started.map(|t| t + self.config.linger)
    }

    /// Whether an earlier failure poisoned this producer.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// The outcome of the last background multi-pack-index update that finished, if any.
    /// Best effort: a failure loses nothing (readers search packs one by one without it) and
    /// appending goes on.
    pub fn last_index_update(&self) -> Option<&Result<midx::chain::Report, Arc<midx::Error>>> {
        self.last_index_update.as_ref()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if self.poisoned.is_none() && self.batch.len() > 0 {
            let _ = self.flush();
        }
        self.finish_index_update();
    }
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
