//! Owns [`Backlog`]: the messages of a topic after a stop up to a head, handed out oldest
//! first in bounded memory.
//!
//! Data flow: [`Backlog::plan()`] walks back once from the head to the stop, keeping the
//! locations of the last `segment_len` commits walked (the oldest segment) and the id at the
//! top of every newer segment -> [`Backlog::next_message()`] reads the oldest segment front
//! to back, each body read once, straight from its pack -> when a segment is done, the next
//! newer one is walked again from its top down to the previous top, and read the same way.
//!
//! Ids: only segment tops are kept. A message's id is the first parent of the message after
//! it, which is decoded (one message of look-ahead) before the message is handed out; the
//! newest message of a segment is the segment's top.
//!
//! Invariants: memory is 16 bytes per message of one segment (a pack and an offset; loose
//! objects' ids aside), plus one id per segment; a backlog shorter than a segment is walked once, a longer one about twice; the
//! walk of a later segment must retrace the first walk exactly, or the backlog fails with
//! [`Error::Diverged`] instead of delivering something else.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use gix_hash::ObjectId;

use crate::git::{
    message::{
        decode::decode,
        parent::{first_parent, FIRST_PARENT_PREFIX_LEN},
    },
    walk::{step, Error},
};
use crate::{
    git::hash::{object_id, OBJECT_HASH},
    git::message::MessageRef,
    git::odb::{pack::set::PackKey, Location, Odb},
    Message,
};

/// The default number of messages in one segment: 16 MiB of locations at most, and one
/// walk for any backlog shorter than that.
pub const DEFAULT_SEGMENT_LEN: usize = 1 << 20;
/// The longest segment (loose objects are numbered with a `u32`).
const MAX_SEGMENT_LEN: usize = u32::MAX as usize;

/// The locations of one segment, 16 bytes each: the ids of loose objects (rare) are kept
/// aside rather than widen every entry.
#[derive(Debug, Default)]
struct Segment {
    entries: Vec<Entry>,
    loose: Vec<ObjectId>,
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    Packed(PackKey, u64),
    /// An index into `loose`.
    Loose(u32),
}

impl Segment {
    fn push(&mut self, location: Location) {
        let entry = match location {
            Location::Packed { pack, offset } => Entry::Packed(pack, offset),
            Location::Loose(id) => {
                let at = u32::try_from(self.loose.len()).expect("BUG: segments are clamped");
                self.loose.push(id);
                Entry::Loose(at)
            }
        };
        self.entries.push(entry);
    }

    fn get(&self, at: usize) -> Option<Location> {
        Some(match *self.entries.get(at)? {
            Entry::Packed(pack, offset) => Location::Packed { pack, offset },
            Entry::Loose(at) => Location::Loose(*self.loose.get(at as usize)?),
        })
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.loose.clear();
    }

    /// Reverse the order (the walk collects newest first); loose ids keep their numbers.
    fn reverse(&mut self) {
        self.entries.reverse();
    }
}

/// The messages after a stop up to a head, oldest first.
#[derive(Debug)]
pub struct Backlog {
    /// The tops of the segments newer than the current one; the next one is last.
    tops: Vec<ObjectId>,
    /// The current segment, oldest first.
    segment: Segment,
    /// The next location of `segment` to decode.
    cursor: usize,
    /// The id of the newest message of `segment`.
    top: ObjectId,
    /// The oldest message not handed out, decoded, its id not known yet.
    held: Option<Message>,
    segment_len: usize,
    remaining: u64,
}

/// Lifecycle
impl Backlog {
    /// Walk back from `head` to `stop` (exclusive; `None`: to the first message) and plan
    /// delivering what lies between in segments of at most `segment_len` messages.
    /// [`Error::NotOnTopic`] if the walk never meets `stop`, [`Error::Pruned`] if `stop` is
    /// older than a shallow boundary the chain ends at.
    pub fn plan(
        odb: &mut Odb,
        head: ObjectId,
        stop: Option<ObjectId>,
        segment_len: usize,
        scratch: &mut Vec<u8>,
    ) -> Result<Self, Error> {
        let segment_len = segment_len.clamp(1, MAX_SEGMENT_LEN);
        let mut tops = Vec::new();
        let mut segment = Segment::default();
        let mut top = head;
        let mut remaining = 0u64;
        let mut chain = crate::git::walk::Chain::new(head, stop);
        while let Some((id, location)) = chain.next(odb, scratch)? {
            if segment.len() == segment_len {
                tops.push(top);
                segment.clear();
                top = id;
            }
            segment.push(location);
            remaining += 1;
        }
        chain.finish(odb)?;
        segment.reverse();
        Ok(Self {
            tops,
            segment,
            cursor: 0,
            top,
            held: None,
            segment_len,
            remaining,
        })
    }
}

/// Access
impl Backlog {
    /// How many messages are left to hand out.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether every message was handed out.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The next message, oldest first; `None` once all were handed out.
    pub fn next_message(
        &mut self,
        odb: &mut Odb,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<Message>, Error> {
        if self.held.is_none() {
            if self.cursor == self.segment.len() && !self.walk_next_segment(odb, scratch)? {
                return Ok(None);
            }
            self.held = Some(self.decode_next(odb, scratch)?);
        }
        let (mut message, id) = if self.cursor < self.segment.len() {
            let next = self.decode_next(odb, scratch)?;
            let id = next.parent.ok_or(Error::Diverged { top: self.top })?;
            let message = self.held.replace(next).expect("BUG: held is set above");
            (message, id)
        } else {
            let message = self.held.take().expect("BUG: held is set above");
            (message, self.top)
        };
        message.id = id;
        self.remaining = self.remaining.saturating_sub(1);
        Ok(Some(message))
    }

    /// Hand the next message, oldest first, borrowed, to `visit`, and return what it
    /// returned; `None` once all were handed out. Nothing is allocated per message: the
    /// body is read straight from its pack, and its id comes from the next message's
    /// first lines (read ahead, not decoded).
    pub fn next_message_with<R>(
        &mut self,
        odb: &mut Odb,
        scratch: &mut Vec<u8>,
        visit: impl FnOnce(&MessageRef<'_>) -> R,
    ) -> Result<Option<R>, Error> {
        if let Some(mut held) = self.held.take() {
            // Left by next_message(): its id is the next message's parent.
            let id = match self.segment.get(self.cursor) {
                Some(next) => self.parent_at(odb, &next, scratch)?,
                None => self.top,
            };
            held.id = id;
            self.remaining = self.remaining.saturating_sub(1);
            return Ok(Some(visit(&held.as_message_ref())));
        }
        if self.cursor == self.segment.len() && !self.walk_next_segment(odb, scratch)? {
            return Ok(None);
        }
        let location = self
            .segment
            .get(self.cursor)
            .expect("BUG: the cursor is inside the segment");
        let id = match self.segment.get(self.cursor + 1) {
            Some(next) => self.parent_at(odb, &next, scratch)?,
            None => self.top,
        };
        let (kind, body) = odb.object_at(&location, scratch)?;
        if kind != gix_object::Kind::Commit {
            return Err(Error::NotACommit { id, kind });
        }
        let message = decode(id, body)?;
        self.cursor += 1;
        self.remaining = self.remaining.saturating_sub(1);
        Ok(Some(visit(&message)))
    }

    /// The first parent of the commit at `location`: the id of the message before it.
    fn parent_at(
        &self,
        odb: &mut Odb,
        location: &Location,
        scratch: &mut Vec<u8>,
    ) -> Result<ObjectId, Error> {
        let (_, prefix) = odb.object_prefix_at(location, FIRST_PARENT_PREFIX_LEN, scratch)?;
        first_parent(prefix)
            .ok()
            .flatten()
            .ok_or(Error::Diverged { top: self.top })
    }

    /// Decode the message at the cursor and move past it. Its id is left unknown (null):
    /// the next message names it.
    fn decode_next(&mut self, odb: &mut Odb, scratch: &mut Vec<u8>) -> Result<Message, Error> {
        let location = self
            .segment
            .get(self.cursor)
            .expect("BUG: called with the cursor inside the segment");
        let (kind, body) = odb.object_at(&location, scratch)?;
        if kind != gix_object::Kind::Commit {
            let id = object_id(kind, body);
            return Err(Error::NotACommit { id, kind });
        }
        let message = match decode(ObjectId::null(OBJECT_HASH), body) {
            Ok(message) => message.into_owned(),
            // Only now is the id worth computing: the error names the broken commit.
            Err(_) => decode(object_id(kind, body), body)?.into_owned(),
        };
        self.cursor += 1;
        Ok(message)
    }

    /// Walk the next newer segment, from its top down to the current top. `false` when
    /// there is none.
    fn walk_next_segment(&mut self, odb: &mut Odb, scratch: &mut Vec<u8>) -> Result<bool, Error> {
        let Some(top) = self.tops.pop() else {
            return Ok(false);
        };
        let stop = self.top;
        self.segment.clear();
        let mut near = None;
        let mut next = Some(top);
        while let Some(id) = next {
            if id == stop {
                break;
            }
            if self.segment.len() == self.segment_len {
                return Err(Error::Diverged { top });
            }
            let (location, parent) = step(odb, &id, &mut near, scratch)?;
            self.segment.push(location);
            next = parent;
        }
        if next.is_none() {
            return Err(Error::Diverged { top });
        }
        self.segment.reverse();
        self.cursor = 0;
        self.top = top;
        Ok(true)
    }
}
