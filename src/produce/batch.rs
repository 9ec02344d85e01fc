//! Owns one in-progress batch (messages encoded, hashed and appended to an in-memory pack) and
//! a sealed one on its way to disk.
//!
//! Invariants: `ids[i]` is message `i`, whose parent is message `i - 1`, and the first one's is
//! `base` (the topic head the batch builds on); the pack's first entry is the empty tree, so
//! every pack gitmq writes is complete on its own (git fsck checks that trees exist), and
//! entries `1..` are the messages in order.

use std::{io::Read, time::Instant};

use gix_hash::ObjectId;

use crate::{
    hash::{Hasher, OBJECT_HASH},
    message::{CommitEncoder, MessageRef},
    odb::pack::{
        deflate::{deflate_entries, RawObjects},
        format::decode_entry_header,
        write::{Compression, PackBuilder, SealedPack},
    },
};

/// Messages waiting to be sealed into one pack.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The topic head this batch builds on.
    pub base: Option<ObjectId>,
    /// Message ids, oldest first.
    pub ids: Vec<ObjectId>,
    pack: PackBuilder,
    /// With deflate: message bodies, compressed on every core at seal time.
    raw: Vec<u8>,
    raw_ends: Vec<usize>,
    compression: Compression,
    /// When the first message arrived.
    pub started: Option<Instant>,
    body: Vec<u8>,
}

/// A batch whose pack is sealed: ready for the trailer, the index, the disk and the ref.
#[derive(Debug)]
pub(crate) struct SealedBatch {
    /// The topic head the batch was built on.
    pub base: Option<ObjectId>,
    /// Message ids, oldest first.
    pub ids: Vec<ObjectId>,
    /// The pack: entry 0 is the empty tree, entries `1..` the messages.
    pub pack: SealedPack,
}

impl Batch {
    pub fn new(compression: Compression, base: Option<ObjectId>) -> Self {
        Self {
            base,
            ids: Vec::new(),
            pack: PackBuilder::new(compression),
            raw: Vec::new(),
            raw_ends: Vec::new(),
            compression,
            started: None,
            body: Vec::with_capacity(1024),
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
        self.pack.byte_len() + self.raw.len()
    }

    /// Encode, hash and append one message (the payload was checked); its id.
    pub fn push(&mut self, encoder: &CommitEncoder, seconds: i64, payload: &[u8]) -> ObjectId {
        if self.ids.is_empty() {
            let empty_tree = ObjectId::empty_tree(OBJECT_HASH);
            self.pack.add(empty_tree, gix_object::Kind::Tree, b"");
            self.started = Some(Instant::now());
        }
        let parent = self.tip();
        let id = match self.compression {
            Compression::Stored => {
                self.body.clear();
                encoder.encode(&mut self.body, parent.as_deref(), seconds, payload);
                let id = hash_commit(&self.body);
                self.pack.add(id, gix_object::Kind::Commit, &self.body);
                id
            }
            Compression::Deflate(_) => {
                let start = self.raw.len();
                encoder.encode(&mut self.raw, parent.as_deref(), seconds, payload);
                self.raw_ends.push(self.raw.len());
                hash_commit(&self.raw[start..])
            }
        };
        self.ids.push(id);
        id
    }

    /// Seal the pack (compressing on every core with deflate) and start over on its tip,
    /// writing the next pack into `spare` (a buffer of a written pack) if given.
    pub fn seal(&mut self, spare: Option<Vec<u8>>) -> SealedBatch {
        if let Compression::Deflate(level) = self.compression {
            let threads = std::thread::available_parallelism().map_or(1, usize::from);
            let objects = RawObjects {
                bodies: &self.raw,
                ends: &self.raw_ends,
                ids: &self.ids,
                kind: gix_object::Kind::Commit,
            };
            let (bytes, entries) = deflate_entries(objects, u32::from(level.clamp(1, 9)), threads);
            self.pack.extend_raw(&bytes, &entries);
            self.raw.clear();
            self.raw_ends.clear();
        }
        let tip = self.tip();
        let sealed = SealedBatch {
            base: self.base,
            ids: std::mem::take(&mut self.ids),
            pack: self.pack.seal(spare.unwrap_or_default()),
        };
        self.base = tip;
        self.started = None;
        sealed
    }
}

impl SealedBatch {
    /// The newest message.
    pub fn tip(&self) -> Option<ObjectId> {
        self.ids.last().copied().or(self.base)
    }

    /// The same messages (payloads and dates) appended on `base` instead: new parents, new ids.
    pub fn rebuilt_on(
        &self,
        base: Option<ObjectId>,
        encoder: &CommitEncoder,
        compression: Compression,
    ) -> Result<SealedBatch, String> {
        let mut batch = Batch::new(compression, base);
        let mut body = Vec::new();
        for (id, entry) in self.ids.iter().zip(self.pack.entries.iter().skip(1)) {
            read_entry(&self.pack.bytes, entry.offset, &mut body)?;
            let message = MessageRef::from_bytes(*id, &body).map_err(|e| e.to_string())?;
            let (seconds, payload) = (message.time.seconds, message.payload.to_vec());
            batch.push(encoder, seconds, &payload);
        }
        Ok(batch.seal(None))
    }
}

fn hash_commit(body: &[u8]) -> ObjectId {
    let mut hasher = Hasher::for_object(gix_object::Kind::Commit, body.len());
    hasher.update(body);
    hasher.finalize()
}

/// Inflate the entry at `offset` of a pack this process built.
fn read_entry(pack: &[u8], offset: u64, out: &mut Vec<u8>) -> Result<(), String> {
    let start = usize::try_from(offset).map_err(|e| e.to_string())?;
    let entry = pack.get(start..).ok_or("offset past the pack")?;
    let (_, size, header_len) = decode_entry_header(entry).ok_or("bad entry header")?;
    out.clear();
    let stream = entry.get(header_len..).ok_or("truncated entry")?;
    flate2::read::ZlibDecoder::new(stream)
        .take(size)
        .read_to_end(out)
        .map_err(|e| e.to_string())?;
    Ok(())
}
