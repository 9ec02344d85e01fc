//! Owns one in-progress batch (messages encoded and hashed, their bodies back to back) and a
//! sealed one on its way to disk, which is framed into a pack on the flush thread.
//!
//! Invariants: `ids[i]` is message `i`, whose body is `raw[ends[i-1]..ends[i]]` and whose
//! parent is message `i - 1` (the first one's is `base`, the topic head the batch builds on);
//! the pack built from a sealed batch has the empty tree as its first entry, so every pack
//! gitmq writes is complete on its own (git fsck checks that trees exist), and the messages
//! after it in order.

use std::time::Instant;

use gix_hash::ObjectId;

use super::Signing;
use crate::{
    git::hash::{Hasher, OBJECT_HASH},
    git::message::restack,
    git::message::{CommitEncoder, Envelope},
    git::odb::pack::{
        deflate::{deflate_entries, RawObjects},
        write::{Compression, PackBuilder, SealedPack},
    },
    git::sign::copy::sign_copy,
};

/// Messages waiting to be sealed into one pack.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The topic head this batch builds on.
    pub base: Option<ObjectId>,
    /// Message ids, oldest first.
    pub ids: Vec<ObjectId>,
    /// Every message's commit body, back to back.
    raw: Vec<u8>,
    /// Where each body ends in `raw`.
    ends: Vec<usize>,
    /// When the first message arrived.
    pub started: Option<Instant>,
    /// The producer's key and mode, if it signs.
    pub signing: Option<Signing>,
}

/// A batch that takes no more messages: ready to be framed into a pack, written and named.
#[derive(Debug)]
pub(crate) struct SealedBatch {
    /// The topic head the batch was built on.
    pub base: Option<ObjectId>,
    /// Message ids, oldest first.
    pub ids: Vec<ObjectId>,
    raw: Vec<u8>,
    ends: Vec<usize>,
    signing: Option<Signing>,
}

impl Batch {
    pub fn new(base: Option<ObjectId>) -> Self {
        Self {
            base,
            ids: Vec::new(),
            raw: Vec::new(),
            ends: Vec::new(),
            started: None,
            signing: None,
        }
    }

    /// The newest message, or the base when the batch is empty.
    pub fn tip(&self) -> Option<ObjectId> {
        self.ids.last().copied().or(self.base)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn byte_len(&self) -> usize {
        self.raw.len()
    }

    /// Encode and hash one message (the payload was checked); its id.
    pub fn push(&mut self, encoder: &CommitEncoder, seconds: i64, payload: &[u8]) -> ObjectId {
        if self.ids.is_empty() {
            self.started = Some(Instant::now());
        }
        let parent = self.tip();
        let start = self.raw.len();
        encoder.encode(&mut self.raw, parent.as_deref(), seconds, payload);
        self.finish_push(start)
    }

    /// Like [`push()`](Self::push), with the stable id `id` (checked, or generated) and
    /// `envelope`'s headers.
    pub fn push_with(
        &mut self,
        encoder: &CommitEncoder,
        seconds: i64,
        id: Option<&str>,
        envelope: &Envelope,
        payload: &[u8],
    ) -> ObjectId {
        if self.ids.is_empty() {
            self.started = Some(Instant::now());
        }
        let parent = self.tip();
        let start = self.raw.len();
        encoder.trusted_encode_with_id(
            &mut self.raw,
            parent.as_deref(),
            seconds,
            id,
            envelope,
            payload,
        );
        self.finish_push(start)
    }

    /// Sign (in `each` mode) and hash the body written at `raw[start..]` and record it; its id.
    fn finish_push(&mut self, start: usize) -> ObjectId {
        if let Some(key) = Signing::each_key(self.signing.as_ref()) {
            key.sign_commit_at(&mut self.raw, start);
        }
        self.ends.push(self.raw.len());
        let body = &self.raw[start..];
        let mut hasher = Hasher::for_object(gix_object::Kind::Commit, body.len());
        hasher.update(body);
        let id = hasher.finalize();
        self.ids.push(id);
        id
    }

    /// Take the messages as a sealed batch and start over on its tip, writing the next
    /// bodies into `spare` (the buffer of a flushed batch: reusing it spares page faults).
    pub fn seal(&mut self, spare: Option<SealedBatch>) -> SealedBatch {
        let (mut raw, mut ends) = spare.map_or_else(Default::default, |s| (s.raw, s.ends));
        raw.clear();
        ends.clear();
        raw.reserve(self.raw.capacity());
        self.sign_tip();
        let tip = self.tip();
        let sealed = SealedBatch {
            base: self.base,
            ids: std::mem::take(&mut self.ids),
            raw: std::mem::replace(&mut self.raw, raw),
            ends: std::mem::replace(&mut self.ends, ends),
            signing: self.signing.clone(),
        };
        self.base = tip;
        self.started = None;
        sealed
    }
}

impl Batch {
    /// In `tip` mode, sign the last message (it ends the batch): its id changes.
    fn sign_tip(&mut self) {
        let Some(key) = Signing::tip_key(self.signing.as_ref()) else {
            return;
        };
        if self.ids.is_empty() {
            return;
        }
        let start = match self.ends.len() {
            0 | 1 => 0,
            n => self.ends[n - 2],
        };
        self.ends.pop();
        self.ids.pop();
        key.sign_commit_at(&mut self.raw, start);
        self.ends.push(self.raw.len());
        let body = &self.raw[start..];
        let mut hasher = Hasher::for_object(gix_object::Kind::Commit, body.len());
        hasher.update(body);
        self.ids.push(hasher.finalize());
    }
}

impl SealedBatch {
    /// The newest message.
    pub fn tip(&self) -> Option<ObjectId> {
        self.ids.last().copied().or(self.base)
    }

    fn body(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.raw[start..self.ends[i]]
    }

    /// Frame the batch into a pack with `builder` (emptied first): the empty tree, then every
    /// message, stored or deflated (on every core) per `compression`.
    pub fn pack(&self, builder: &mut PackBuilder, compression: Compression) -> SealedPack {
        builder.clear();
        builder.push(
            &ObjectId::empty_tree(OBJECT_HASH),
            gix_object::Kind::Tree,
            b"",
        );
        match compression {
            Compression::Stored => {
                for (i, id) in self.ids.iter().enumerate() {
                    builder.push(id, gix_object::Kind::Commit, self.body(i));
                }
            }
            Compression::Deflate(level) => {
                let threads = std::thread::available_parallelism().map_or(1, usize::from);
                let objects = RawObjects {
                    bodies: &self.raw,
                    ends: &self.ends,
                    ids: &self.ids,
                    kind: gix_object::Kind::Commit,
                };
                let (bytes, entries) =
                    deflate_entries(objects, u32::from(level.clamp(1, 9)), threads);
                builder.extend_raw(&bytes, &entries);
            }
        }
        builder.seal(Vec::new())
    }

    /// The same messages appended on `base` instead: new parents, new ids. Each copy is
    /// byte-exact but for its first parent line ([`restack::with_first_parent()`]): author,
    /// dates, stable id, headers and payload are kept; a signed message is re-signed with the
    /// producer's key ([`sign_copy()`]).
    pub fn rebuilt_on(&self, base: Option<ObjectId>) -> Result<SealedBatch, restack::Error> {
        let mut batch = Batch::new(base);
        batch.raw.reserve(self.raw.len() + self.ids.len() * 48);
        let key = self.signing.as_ref().map(|s| &*s.key);
        let mut copy = Vec::new();
        for (i, id) in self.ids.iter().enumerate() {
            let parent = batch.tip();
            restack::with_first_parent(id, self.body(i), parent.as_deref(), &mut copy)?;
            // This producer signed these bodies itself: re-sign without checking them.
            sign_copy(id, self.body(i), &mut copy, key, true);
            let start = batch.raw.len();
            batch.raw.extend_from_slice(&copy);
            batch.finish_push(start);
        }
        let mut sealed = batch.seal(None);
        sealed.signing.clone_from(&self.signing);
        Ok(sealed)
    }
}
