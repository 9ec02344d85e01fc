//! Owns appending messages to a topic: the [`Producer`].
//!
//! Data flow of one batch: take the topic ref's lock (bounded wait) -> read the head under the
//! lock -> encode each message as a commit on the previous one -> write it as a loose object
//! (fsynced in the syncing modes) -> sync the touched directories -> move the ref by
//! compare-and-swap (fsynced in the syncing modes) -> hand back the ids.
//!
//! Invariants: ids are returned only after the ref names them (acknowledged); holding the ref
//! lock while building the batch means two producers on one topic, threads or processes,
//! serialize and never lose a message; objects are always durable before the ref that names
//! them.

use std::time::Duration;

use gix_hash::ObjectId;

use crate::{
    message::{self, Identity},
    odb::LooseStore,
    refs::Expected,
    Durability, Repository, TopicName,
};

/// How long a producer waits for another writer's ref lock before giving up, by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Appends messages to one topic.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::{Durability, Identity, Repository, TopicName};
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = Repository::init(dir.path())?;
/// let mut producer = repo
///     .producer(&TopicName::new("orders")?)
///     .with_identity(Identity::new("shop", "shop@example.com")?)
///     .with_durability(Durability::None);
/// let ids = producer.publish_batch([&b"first"[..], b"second"])?;
/// assert_eq!(ids.len(), 2);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Producer {
    repo: Repository,
    topic: TopicName,
    identity: Identity,
    durability: Durability,
    lock_timeout: Duration,
    body: Vec<u8>,
}

/// Lifecycle
impl Producer {
    /// A producer for `topic` in `repo`, with [`Identity::from_env()`] and [`Durability::Batch`].
    pub fn new(repo: Repository, topic: TopicName) -> Self {
        Self {
            repo,
            topic,
            identity: Identity::from_env(),
            durability: Durability::default(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            body: Vec::new(),
        }
    }

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

    /// Wait at most `timeout` for another writer's lock on the topic.
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }
}

/// Appending
impl Producer {
    /// Append one message; its id once it is on the topic (and durable per the mode).
    pub fn publish(&mut self, payload: &[u8]) -> Result<ObjectId, crate::Error> {
        let ids = self.append(std::iter::once(payload))?;
        Ok(ids[0])
    }

    /// Append messages in order and return their ids once all are on the topic. With
    /// [`Durability::Each`] every message is acknowledged on its own; otherwise the whole batch
    /// moves the topic once, and is durable together.
    pub fn publish_batch<I, P>(&mut self, payloads: I) -> Result<Vec<ObjectId>, crate::Error>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        if self.durability == Durability::Each {
            let mut ids = Vec::new();
            for payload in payloads {
                ids.push(self.publish(payload.as_ref())?);
            }
            return Ok(ids);
        }
        self.append(payloads)
    }

    fn append<I, P>(&mut self, payloads: I) -> Result<Vec<ObjectId>, crate::Error>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        let sync = self.durability.syncs();
        let lock = self
            .repo
            .refs()
            .lock(&self.topic.ref_name(), self.lock_timeout)?;
        let head = lock.current()?;
        let time = gix_date::Time::now_local_or_utc();
        let loose = self.repo.odb().loose();
        let mut dirs = Vec::new();
        let mut ids = Vec::new();
        let mut parent = head;
        for payload in payloads {
            message::check_payload(payload.as_ref())?;
            self.body.clear();
            message::encode(
                &mut self.body,
                parent.as_deref(),
                &self.identity,
                time,
                payload.as_ref(),
            );
            let id = loose.write(gix_object::Kind::Commit, &self.body, sync, &mut dirs)?;
            ids.push(id);
            parent = Some(id);
        }
        let Some(new_head) = parent.filter(|_| !ids.is_empty()) else {
            return Ok(ids);
        };
        LooseStore::sync_dirs(&mut dirs)?;
        lock.commit(Expected::from_current(head), &new_head, sync)?;
        Ok(ids)
    }
}

/// Access
impl Producer {
    /// The topic this producer appends to.
    pub fn topic(&self) -> &TopicName {
        &self.topic
    }
}
