//! Owns walking a topic's history: the first-parent chain from its head back to a stop.
//!
//! Invariant: the walk follows first parents only (a merge from a joined topic contributes
//! the merge commit itself, whose payload is its message) and never consults commit dates,
//! so equal or backwards timestamps cannot reorder or slow it.

use gix_hash::ObjectId;

use crate::{message::MessageRef, odb::Odb, Message};

/// Returned by [`ids_after()`] and [`read_message()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading an object failed.
    #[error(transparent)]
    Odb(#[from] crate::odb::Error),
    /// A commit did not decode.
    #[error(transparent)]
    Message(#[from] crate::message::Error),
    /// The stop (a consumer's position) is not on the first-parent chain of the head.
    #[error("position {stop} is not on the topic's history (head {head}): was the topic rewritten or pruned?")]
    NotOnTopic {
        /// The stop that was never reached.
        stop: ObjectId,
        /// The head the walk started from.
        head: ObjectId,
    },
}

/// The ids of the messages after `stop` (exclusive) up to `head` (inclusive), oldest first.
/// With `stop == None`, the whole chain.
pub fn ids_after(
    odb: &mut Odb,
    head: ObjectId,
    stop: Option<ObjectId>,
    buf: &mut Vec<u8>,
) -> Result<Vec<ObjectId>, Error> {
    let mut ids = Vec::new();
    let mut next = Some(head);
    while let Some(id) = next {
        if Some(id) == stop {
            ids.reverse();
            return Ok(ids);
        }
        odb.read_commit(&id, buf)?;
        next = MessageRef::from_bytes(id, buf)?.parent;
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
