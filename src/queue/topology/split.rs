//! Owns [`split()`]: starting a new topic from part of another, carrying positions over.
//!
//! The new topic holds copies of the topic's messages from `at` (inclusive; the first
//! message if `None`) up to the topic's head when the split ran, keeping only those the
//! predicate accepts, oldest first; its first copy is a root. The topic itself, its
//! producers and its consumers are untouched: a split never removes anything (history is
//! append-only), and messages published to the topic afterwards do not reach the new topic.
//!
//! Positions: every consumer with a position `P` on the topic (on its first-parent chain)
//! gets a position on the new topic at the copy of the newest selected message at or before
//! `P`, so what it processed on the topic counts as processed on the new topic. A consumer
//! whose `P` is before `at`, or before every selected message, gets no position (it reads the
//! new topic from its first message); positions not on the topic's history are ignored.
//!
//! Order of writes: copies (packs), then the new positions (created by compare-and-swap:
//! must not exist, or already hold the same copy), then the new topic's ref (must not exist).
//! Copies are deterministic (same messages, root first), so a split interrupted before its
//! last ref move can simply run again. If another writer creates the new topic first, or
//! moving a position or the new topic's ref fails, the split fails and takes back the
//! positions it wrote
//! (unless the topic names its copies after all); a split cut short by a crash leaves them
//! for the next run, which completes it. No poisoning: a split keeps no state between calls.

use std::{collections::HashMap, time::Duration};

use gix_hash::ObjectId;

use super::Error;
use crate::{
    git::message::restack::restack,
    git::refs::Expected,
    queue::consume::{Backlog, DEFAULT_SEGMENT_LEN},
    ConsumerName, MessageRef, Repository, TopicName,
};

/// How long a split waits for a ref lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`split()`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The new topic's head.
    pub head: ObjectId,
    /// The copies, oldest first: (message on the topic, copy on the new topic).
    pub copies: Vec<(ObjectId, ObjectId)>,
    /// The positions created on the new topic.
    pub positions: Vec<(ConsumerName, ObjectId)>,
}

/// Start topic `into` with copies of `topic`'s messages from `at` (inclusive; `None`: from
/// the first) that `keep` accepts, and carry consumer positions over (see the module docs).
/// `at` must be on `topic`'s first-parent chain and `into` must not exist. Reads the whole
/// topic once; holds one id per selected message.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::{topology::split, ConsumerName, Repository, TopicName};
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = Repository::init(dir.path())?;
/// let (orders, big) = (TopicName::new("orders")?, TopicName::new("big-orders")?);
/// repo.producer(&orders).publish_batch([&b"small 1"[..], b"big 2", b"small 3", b"big 4"])?;
/// let reader = ConsumerName::new("r")?;
/// let mut consumer = repo.consumer(&reader, &orders)?;
/// consumer.poll(2)?; // small 1, big 2
/// consumer.commit()?;
///
/// let split = split(&repo, &orders, None, &big, |m| m.payload.starts_with(b"big"), true)?;
/// assert_eq!(split.copies.len(), 2);
/// let next = repo.consumer(&reader, &big)?.poll(10)?;
/// assert_eq!(next[0].payload, b"big 4", "big 2 was processed on orders");
/// # Ok(()) }
/// ```
pub fn split(
    repo: &Repository,
    topic: &TopicName,
    at: Option<ObjectId>,
    into: &TopicName,
    mut keep: impl FnMut(&MessageRef<'_>) -> bool,
    sync: bool,
) -> Result<Split, crate::Error> {
    if topic == into {
        return Err(Error::Exists {
            topic: into.clone(),
        }
        .into());
    }
    if repo.head(into)?.is_some() {
        return Err(Error::Exists {
            topic: into.clone(),
        }
        .into());
    }
    let mut by_position: HashMap<ObjectId, Vec<ConsumerName>> = HashMap::new();
    for (consumer, position_topic, id) in repo.positions()? {
        if &position_topic == topic {
            by_position.entry(id).or_default().push(consumer);
        }
    }
    let mut selected = Vec::new();
    let mut carried: Vec<(ConsumerName, usize)> = Vec::new();
    let mut started = at.is_none();
    if let Some(head) = repo.head(topic)? {
        let mut odb = repo.odb();
        let mut buf = Vec::new();
        let mut backlog = Backlog::plan(&mut odb, head, None, DEFAULT_SEGMENT_LEN, &mut buf)?;
        while let Some((id, kept)) =
            backlog.next_message_with(&mut odb, &mut buf, |m| (m.id, keep(m)))?
        {
            started |= Some(id) == at;
            if started && kept {
                selected.push(id);
            }
            if let (true, Some(consumers), Some(last)) =
                (started, by_position.get(&id), selected.len().checked_sub(1))
            {
                carried.extend(consumers.iter().map(|c| (c.clone(), last)));
            }
        }
    }
    if let (false, Some(at)) = (started, at) {
        return Err(crate::queue::consume::position::Error::NotOnTopic {
            id: at.to_string(),
            topic: topic.clone(),
        }
        .into());
    }
    if selected.is_empty() {
        return Err(Error::NothingSelected {
            topic: topic.clone(),
        }
        .into());
    }
    let restacked = restack(repo, None, &selected, sync)?;
    let head = restacked.tip().expect("BUG: something was selected");
    let mut positions = Vec::new();
    let moved = (|| {
        for (consumer, index) in carried {
            let copy = restacked.copies[index].new;
            let lock = repo
                .refs()
                .lock(&consumer.position_ref(into), LOCK_TIMEOUT)?;
            match lock.current()? {
                None => {
                    // Listed first: a commit that fails may have renamed it all the same.
                    positions.push((consumer, copy));
                    lock.commit(Expected::MustNotExist, &copy, sync)?;
                }
                // Left by an interrupted run of this same split.
                Some(existing) if existing == copy => positions.push((consumer, copy)),
                // Someone else's: leave it.
                Some(_) => {}
            }
        }
        repo.refs().lock(&into.ref_name(), LOCK_TIMEOUT)?.commit(
            Expected::MustNotExist,
            &head,
            sync,
        )
    })();
    if let Err(err) = moved {
        // Someone created the topic meanwhile, or a write failed: unless the topic names our
        // copies after all (renamed, then its sync failed), the positions written name
        // copies on no topic. Take them back (only if still ours).
        if repo.refs().find(&into.ref_name()).ok().flatten() != Some(head) {
            for (consumer, copy) in &positions {
                if let Ok(lock) = repo.refs().lock(&consumer.position_ref(into), LOCK_TIMEOUT) {
                    let _ = lock.delete(Expected::MustMatch(*copy), sync);
                }
            }
        }
        return Err(match err {
            crate::git::refs::Error::Changed { .. } => Error::Exists {
                topic: into.clone(),
            }
            .into(),
            err => err.into(),
        });
    }
    Ok(Split {
        head,
        copies: restacked.copies.iter().map(|c| (c.old, c.new)).collect(),
        positions,
    })
}
