//! Owns reading a topic as one named consumer: the [`Consumer`] and its position ref.
//!
//! Data flow: read the position ref `refs/gitmq/consumers/<consumer>/<topic>` -> walk the
//! topic's first-parent chain from its head back to the position -> deliver the messages after
//! it, oldest first -> [`Consumer::commit()`] moves the position to the last delivered message
//! by compare-and-swap.
//!
//! Invariants: at-least-once: what was delivered but not committed is delivered again by the
//! next consumer opened with the same name; the position only ever names a message of the
//! topic; a commit that finds the position moved by someone else fails rather than overwrite.

use std::{collections::VecDeque, time::Duration};

use gix_hash::ObjectId;

use crate::{refs::Expected, walk, ConsumerName, Message, Repository, TopicName};

/// Reads one topic as one named consumer, resuming from its committed position.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::{ConsumerName, Repository, TopicName};
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = Repository::init(dir.path())?;
/// let topic = TopicName::new("orders")?;
/// repo.producer(&topic).publish_batch([&b"a"[..], b"b"])?;
///
/// let mut consumer = repo.consumer(&ConsumerName::new("billing")?, &topic)?;
/// let messages = consumer.poll(10)?;
/// assert_eq!(messages.iter().map(|m| &m.payload[..]).collect::<Vec<_>>(), [b"a", b"b"]);
/// consumer.commit()?;
/// assert!(repo.consumer(&ConsumerName::new("billing")?, &topic)?.poll(10)?.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Consumer {
    repo: Repository,
    name: ConsumerName,
    topic: TopicName,
    position_ref: String,
    /// The committed position, as last read or written.
    committed: Option<ObjectId>,
    /// The last message handed out by `poll`.
    delivered: Option<ObjectId>,
    /// Messages known to follow `delivered`, oldest first.
    pending: VecDeque<ObjectId>,
    odb: crate::odb::Odb,
    buf: Vec<u8>,
}

/// Lifecycle
impl Consumer {
    /// Open consumer `name` on `topic`, at its committed position (the topic's start if none).
    pub fn open(
        repo: Repository,
        name: ConsumerName,
        topic: TopicName,
    ) -> Result<Self, crate::Error> {
        let position_ref = name.position_ref(&topic);
        let committed = repo.refs().find(&position_ref)?;
        Ok(Self {
            odb: repo.odb(),
            repo,
            name,
            topic,
            position_ref,
            committed,
            delivered: committed,
            pending: VecDeque::new(),
            buf: Vec::new(),
        })
    }
}

/// Consuming
impl Consumer {
    /// Up to `max` messages after the last one delivered, oldest first; empty when caught up.
    /// Reads the topic's head once per call when fewer than `max` messages are known.
    pub fn poll(&mut self, max: usize) -> Result<Vec<Message>, crate::Error> {
        if self.pending.len() < max {
            self.refill()?;
        }
        let mut messages = Vec::with_capacity(max.min(self.pending.len()));
        while messages.len() < max {
            let Some(id) = self.pending.pop_front() else {
                break;
            };
            messages.push(walk::read_message(&mut self.odb, id, &mut self.buf)?);
            self.delivered = Some(id);
        }
        Ok(messages)
    }

    /// Commit the position: everything delivered so far counts as processed.
    pub fn commit(&mut self) -> Result<(), crate::Error> {
        let Some(delivered) = self.delivered else {
            return Ok(());
        };
        if self.committed == Some(delivered) {
            return Ok(());
        }
        let lock = self
            .repo
            .refs()
            .lock(&self.position_ref, Duration::from_secs(10))?;
        lock.commit(Expected::from_current(self.committed), &delivered, true)?;
        self.committed = Some(delivered);
        Ok(())
    }

    /// How many messages follow the committed position (walks them: O(lag)).
    pub fn lag(&mut self) -> Result<usize, crate::Error> {
        match self.repo.head(&self.topic)? {
            None => Ok(0),
            Some(head) if Some(head) == self.committed => Ok(0),
            Some(head) => {
                Ok(walk::ids_after(&mut self.odb, head, self.committed, &mut self.buf)?.len())
            }
        }
    }

    fn refill(&mut self) -> Result<(), crate::Error> {
        let Some(head) = self.repo.head(&self.topic)? else {
            return Ok(());
        };
        let known_tip = self.pending.back().copied().or(self.delivered);
        if Some(head) == known_tip {
            return Ok(());
        }
        let ids = walk::ids_after(&mut self.odb, head, known_tip, &mut self.buf)?;
        self.pending.extend(ids);
        Ok(())
    }
}

/// Access
impl Consumer {
    /// The consumer's name.
    pub fn name(&self) -> &ConsumerName {
        &self.name
    }

    /// The topic it reads.
    pub fn topic(&self) -> &TopicName {
        &self.topic
    }

    /// The committed position: the last message processed, `None` before the first commit.
    pub fn position(&self) -> Option<ObjectId> {
        self.committed
    }
}

/// The number of messages on `topic` after `position`.
pub fn lag(
    repo: &Repository,
    topic: &TopicName,
    position: Option<ObjectId>,
    buf: &mut Vec<u8>,
) -> Result<usize, crate::Error> {
    match repo.head(topic)? {
        None => Ok(0),
        Some(head) if Some(head) == position => Ok(0),
        Some(head) => Ok(walk::ids_after(&mut repo.odb(), head, position, buf)?.len()),
    }
}
