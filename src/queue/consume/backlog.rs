//! Owns [`Backlog`]: the messages of a topic after a stop up to a head, handed out oldest
//! first in bounded memory.
//!
//! Data flow: [`Backlog::plan()`] takes a long chain in gitmq's packs guessed from pack order
//! and checked on two cores (`git::guessed_chain`), when that holds; else it walks back once
//! from the head to the stop, keeping the id
//! and location of the last `segment_len` commits walked (the oldest segment) and the id at
//! the top of every newer segment -> [`Backlog::next_message()`] reads the oldest segment
//! front to back, each body read once, straight from its pack -> when a segment is done, the
//! next newer one is walked again from its top down to the previous top, and read the same
//! way. While at least `READ_AHEAD_MIN` messages of a segment are left and the machine has
//! a second core, the bodies are read on a worker thread ([`ReadAhead`]) a few batches
//! ahead of this one, which decodes and hands them out.
//!
//! Ids: the walk looked each commit up by its id, so the segment keeps it beside the
//! location: delivering a message reads its body once and nothing else (no look-ahead into
//! the next message for its first parent, no hashing).
//!
//! Invariants: memory is 36 bytes per message of one segment (a pack, an offset and an id;
//! loose objects' ids aside), plus one id per segment; a backlog shorter than a segment is
//! walked once, a longer one about twice; the walk of a later segment must retrace the first
//! walk exactly, or the backlog fails with [`Error::Diverged`] instead of delivering
//! something else.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::sync::Arc;

use gix_hash::ObjectId;

use super::read_ahead::{self, Locations, ReadAhead};
use crate::git::{
    guessed_chain::{guess_and_check, ChainSink},
    message::decode::decode,
    walk::{step_with, Error},
};
use crate::{
    git::message::MessageRef,
    git::odb::{pack::set::PackKey, Location, Odb},
    Message,
};

/// The default number of messages in one segment: 16 MiB of locations at most, and one
/// walk for any backlog shorter than that.
pub const DEFAULT_SEGMENT_LEN: usize = 1 << 20;
/// The longest segment (loose objects are numbered with a `u32`).
const MAX_SEGMENT_LEN: usize = u32::MAX as usize;

/// Read ahead on a second thread (see [`ReadAhead`]) when at least this many messages of a
/// segment are left to hand out and the machine has a second core: below that, starting a
/// thread costs more than it saves.
pub(super) const READ_AHEAD_MIN: usize = 4096;

/// The ids and locations of one segment, 36 bytes each: the ids of loose objects (rare) are
/// kept aside rather than widen every entry.
#[derive(Debug, Default, Clone)]
struct Segment {
    entries: Vec<Entry>,
    ids: Vec<ObjectId>,
    loose: Vec<ObjectId>,
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    Packed(PackKey, u64),
    /// An index into `loose`.
    Loose(u32),
}

impl Segment {
    fn push(&mut self, id: ObjectId, location: Location) {
        self.ids.push(id);
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

    fn get(&self, at: usize) -> Option<(ObjectId, Location)> {
        let location = match *self.entries.get(at)? {
            Entry::Packed(pack, offset) => Location::Packed { pack, offset },
            Entry::Loose(at) => Location::Loose(*self.loose.get(at as usize)?),
        };
        Some((*self.ids.get(at)?, location))
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.ids.clear();
        self.loose.clear();
    }

    /// Reverse the order (the walk collects newest first); loose ids keep their numbers.
    fn reverse(&mut self) {
        self.entries.reverse();
        self.ids.reverse();
    }
}

impl ChainSink for Segment {
    fn push(&mut self, id: ObjectId, location: Location) {
        Segment::push(self, id, location);
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, at: usize) -> Option<(ObjectId, Location)> {
        Segment::get(self, at)
    }
}

impl Locations for Segment {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn location(&self, at: usize) -> Option<Location> {
        self.get(at).map(|(_, location)| location)
    }
}

/// The messages after a stop up to a head, oldest first.
#[derive(Debug)]
pub struct Backlog {
    /// The tops of the segments newer than the current one; the next one is last.
    tops: Vec<ObjectId>,
    /// The current segment, oldest first (shared with its read-ahead).
    segment: Arc<Segment>,
    /// The bodies of `segment` from `cursor` on, read on a second thread; it holds the
    /// consumer's handle meanwhile.
    read_ahead: Option<ReadAhead>,
    /// A read-ahead could not start (one core, or no thread): read here only.
    no_read_ahead: bool,
    /// The next location of `segment` to decode.
    cursor: usize,
    /// The id of the newest message of `segment`.
    top: ObjectId,
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
        // A long backlog in gitmq's packs: the chain guessed from pack order and checked on
        // two cores (exact, or `None`: then the walk below).
        if let Some(mut segment) = guess_and_check::<Segment>(odb, head, stop, segment_len, scratch)
        {
            segment.reverse();
            let remaining = segment.len() as u64;
            return Ok(Self {
                tops: Vec::new(),
                segment: Arc::new(segment),
                read_ahead: None,
                no_read_ahead: false,
                cursor: 0,
                top: head,
                segment_len,
                remaining,
            });
        }
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
            segment.push(id, location);
            remaining += 1;
        }
        chain.finish(odb)?;
        segment.reverse();
        Ok(Self {
            tops,
            segment: Arc::new(segment),
            read_ahead: None,
            no_read_ahead: false,
            cursor: 0,
            top,
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
        #[allow(
            clippy::redundant_closure_for_method_calls,
            reason = "the method path is not general over the body's lifetime"
        )]
        self.read_next(odb, scratch, |message| message.into_owned())
    }

    /// Hand the next message, oldest first, borrowed, to `visit`, and return what it
    /// returned; `None` once all were handed out. Nothing is allocated per message: the
    /// body is read straight from its pack (or inflated into `scratch`), once.
    pub fn next_message_with<R>(
        &mut self,
        odb: &mut Odb,
        scratch: &mut Vec<u8>,
        visit: impl FnOnce(&MessageRef<'_>) -> R,
    ) -> Result<Option<R>, Error> {
        self.read_next(odb, scratch, |message| visit(&message))
    }

    fn read_next<R>(
        &mut self,
        odb: &mut Odb,
        scratch: &mut Vec<u8>,
        visit: impl FnOnce(MessageRef<'_>) -> R,
    ) -> Result<Option<R>, Error> {
        if self.cursor == self.segment.len() {
            self.stop_read_ahead(odb);
            if !self.walk_next_segment(odb, scratch)? {
                return Ok(None);
            }
        }
        if self.read_ahead.is_none()
            && !self.no_read_ahead
            && self.segment.len() - self.cursor >= READ_AHEAD_MIN
        {
            self.start_read_ahead(odb);
        }
        let (id, location) = self
            .segment
            .get(self.cursor)
            .expect("BUG: the cursor is inside the segment");
        let read = match self.read_ahead.as_mut() {
            Some(read_ahead) => read_ahead
                .next_body()
                .expect("BUG: the read-ahead reads to the segment's end"),
            None => odb.object_at(&location, scratch).map_err(Error::from),
        };
        let checked = read.and_then(|(kind, body)| {
            if kind != gix_object::Kind::Commit {
                return Err(Error::NotACommit { id, kind });
            }
            let message = decode(id, body)?;
            // The walk may have taken parents from git's commit-graph: the message before
            // this one must be its first parent as the commit itself says.
            if let Some(before) = self.cursor.checked_sub(1) {
                let expected = self.segment.get(before).map(|(id, _)| id);
                if message.parent != expected {
                    return Err(Error::Diverged { top: self.top });
                }
            }
            Ok(message)
        });
        match checked {
            Ok(message) => {
                self.cursor += 1;
                self.remaining = self.remaining.saturating_sub(1);
                Ok(Some(visit(message)))
            }
            Err(err) => {
                // The read-ahead moved past this message: the next try reads it here.
                self.stop_read_ahead(odb);
                Err(err)
            }
        }
    }

    /// Read the rest of the segment ahead on a second thread, if the machine has one.
    fn start_read_ahead(&mut self, odb: &mut Odb) {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        if cores < 2 {
            self.no_read_ahead = true;
            return;
        }
        // Bodies stored uncompressed (as gitmq writes them) cost less to read than to hand
        // out: one worker keeps up, a second would only take a core from the consumer
        // (measured: 1M messages 0.54 -> 0.68 s). Compressed ones (a pack git wrote): a
        // worker per core. The first body tells.
        let stored = self
            .segment
            .get(self.cursor)
            .and_then(|(_, location)| odb.is_stored_at(&location).ok())
            .unwrap_or(true);
        let workers = if stored {
            1
        } else {
            cores.min(read_ahead::WORKERS)
        };
        let read_ahead = ReadAhead::start(odb, Arc::clone(&self.segment), self.cursor, workers);
        if read_ahead.is_running() {
            self.read_ahead = Some(read_ahead);
        } else {
            self.no_read_ahead = true;
        }
    }

    /// Stop reading ahead and take the consumer's handle back.
    fn stop_read_ahead(&mut self, odb: &mut Odb) {
        if let Some(lent) = self.read_ahead.take().and_then(ReadAhead::finish) {
            *odb = lent;
        }
    }

    /// Walk the next newer segment, from its top down to the current top. `false` when
    /// there is none.
    fn walk_next_segment(&mut self, odb: &mut Odb, scratch: &mut Vec<u8>) -> Result<bool, Error> {
        let Some(top) = self.tops.pop() else {
            return Ok(false);
        };
        let stop = self.top;
        let segment = Arc::make_mut(&mut self.segment);
        segment.clear();
        let mut near = None;
        let mut next = Some(top);
        while let Some(id) = next {
            if id == stop {
                break;
            }
            if segment.len() == self.segment_len {
                return Err(Error::Diverged { top });
            }
            let (location, parent) = step_with(odb, &id, &mut near, scratch, true)?;
            segment.push(id, location);
            next = parent;
        }
        if next.is_none() {
            return Err(Error::Diverged { top });
        }
        segment.reverse();
        self.cursor = 0;
        self.top = top;
        Ok(true)
    }
}
