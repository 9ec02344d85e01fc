//! Owns walking a topic's history: the first-parent chain from its head back to a stop (a
//! consumer's position), and delivering what lies between oldest first ([`Backlog`]).
//!
//! Order: a topic's messages are its head's first-parent chain, oldest first. A merge commit
//! on that chain (a joined topic) is one message, delivered in its place on the chain with
//! its own payload; the commits it merged in are not walked (they belong to other topics).
//!
//! Invariants:
//! - The walk follows first parents only and never consults commit dates, so equal or
//!   backwards timestamps cannot reorder or slow it.
//! - A step reads only a commit's first two lines ([`parent::first_parent()`]); each commit
//!   is located once per walk, and a [`Backlog`] reads each message's body once to deliver
//!   it.
//! - Memory is bounded by the segment limit, not the backlog: a backlog longer than that
//!   keeps one id per segment and walks each later segment again when it is reached.

pub mod backlog;
pub mod decode;
pub mod parent;

use gix_hash::ObjectId;

pub use backlog::{Backlog, DEFAULT_SEGMENT_LEN};

use crate::{
    message::MessageRef,
    odb::{pack::set::Near, Location, Odb},
    Message,
};

/// Returned by [`ids_after()`], [`count_after()`], [`read_message()`] and [`Backlog`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading an object failed.
    #[error(transparent)]
    Odb(#[from] crate::odb::Error),
    /// A commit did not decode.
    #[error(transparent)]
    Message(#[from] crate::message::Error),
    /// A commit's first lines are not a tree and a first parent.
    #[error("commit {id} is corrupt")]
    Parent {
        /// The commit.
        id: ObjectId,
        /// What is wrong.
        source: parent::Malformed,
    },
    /// An object on the chain is not a commit.
    #[error("object {id} on the topic's history is a {kind}, not a commit")]
    NotACommit {
        /// The object.
        id: ObjectId,
        /// Its kind.
        kind: gix_object::Kind,
    },
    /// The stop (a consumer's position) is not on the first-parent chain of the head.
    #[error("position {stop} is not on the topic's history (head {head}): was the topic rewritten or pruned?")]
    NotOnTopic {
        /// The stop that was never reached.
        stop: ObjectId,
        /// The head the walk started from.
        head: ObjectId,
    },
    /// A walk that must retrace an earlier one did not (the repository changed under it,
    /// or a commit is corrupt).
    #[error("the history below {top} changed while it was being read")]
    Diverged {
        /// Where the retraced walk started.
        top: ObjectId,
    },
}

/// One step back: where `id` is stored, and its first parent. `near` is where the previous
/// step found its commit, and becomes where this one found `id`.
pub fn step(
    odb: &mut Odb,
    id: &ObjectId,
    near: &mut Option<Near>,
    scratch: &mut Vec<u8>,
) -> Result<(Location, Option<ObjectId>), Error> {
    let (location, found) = odb.locate_near(id, *near)?;
    *near = found;
    let (kind, prefix) =
        odb.object_prefix_at(&location, parent::FIRST_PARENT_PREFIX_LEN, scratch)?;
    if kind != gix_object::Kind::Commit {
        return Err(Error::NotACommit { id: *id, kind });
    }
    let parent =
        parent::first_parent(prefix).map_err(|source| Error::Parent { id: *id, source })?;
    Ok((location, parent))
}

/// How many messages follow `stop` (exclusive) up to `head` (inclusive); with `stop ==
/// None`, the whole chain. O(count) time, O(1) memory.
pub fn count_after(
    odb: &mut Odb,
    head: ObjectId,
    stop: Option<ObjectId>,
    scratch: &mut Vec<u8>,
) -> Result<u64, Error> {
    let mut count = 0;
    let mut near = None;
    let mut next = Some(head);
    while let Some(id) = next {
        if Some(id) == stop {
            return Ok(count);
        }
        next = step(odb, &id, &mut near, scratch)?.1;
        count += 1;
    }
    match stop {
        Some(stop) => Err(Error::NotOnTopic { stop, head }),
        None => Ok(count),
    }
}

/// The ids of the messages after `stop` (exclusive) up to `head` (inclusive), oldest first.
/// With `stop == None`, the whole chain. Holds every id: prefer a [`Backlog`] to read a long
/// history.
pub fn ids_after(
    odb: &mut Odb,
    head: ObjectId,
    stop: Option<ObjectId>,
    buf: &mut Vec<u8>,
) -> Result<Vec<ObjectId>, Error> {
    let mut ids = Vec::new();
    let mut near = None;
    let mut next = Some(head);
    while let Some(id) = next {
        if Some(id) == stop {
            ids.reverse();
            return Ok(ids);
        }
        next = step(odb, &id, &mut near, buf)?.1;
        ids.push(id);
    }
    if let Some(stop) = stop {
        return Err(Error::NotOnTopic { stop, head });
    }
    ids.reverse();
    Ok(ids)
}

/// Read and decode the message `id`.
pub fn read_message(odb: &mut Odb, id: ObjectId, buf: &mut Vec<u8>) -> Result<Message, Error> {
    odb.read_commit(&id, buf)?;
    Ok(MessageRef::from_bytes(id, buf)?.into_owned())
}
