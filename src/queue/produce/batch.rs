//! Owns one in-progress batch (messages encoded and hashed) and a sealed one on its way to
//! disk.
//!
//! Two layouts of `raw`, chosen when the producer starts:
//! - **framed** (stored entries, no signing: the hot path): `raw` *is* the pack. Each message
//!   is framed as a stored-block entry, with its CRC-32, on the appending thread as it is
//!   appended; at seal the index is built up to the pack checksum. The pack's header is
//!   written first with the count of a full batch (`planned`), and the pack's trailer SHA-1
//!   is fed each entry as it is framed: when the batch is sealed full, as under load, its
//!   checksum is ready at seal; a batch cut early (linger, size, `flush`) gets its real count
//!   at seal and is hashed on the flush thread. The flush thread is left with the write (and
//!   the index's last 40 bytes): batch N+1 is encoded, hashed and framed on one core while
//!   batch N is written from the other.
//!   Where the flush thread keeps up (its queue had room when the last batch was handed
//!   over), a batch is `deferred`: its trailer SHA-1, entry CRC-32s and index are left to the
//!   flush thread too, and the appending thread only encodes, hashes ids and frames. Which
//!   thread is the slower one depends on the machine (on a quiet one the page-cache write is
//!   cheap and the appending thread is the bottleneck; on a loaded one the write is not), so
//!   the producer decides per batch from the queue it sees (`Producer::submit`).
//! - **bodies** (deflate, or signing, which rewrites bodies after they are encoded): the bodies
//!   back to back, framed (and deflated on every core) into a pack on the flush thread.
//!
//! Invariants: `ids[i]` is message `i`, whose parent is message `i - 1` (the first one's is
//! `base`, the topic head the batch builds on); its body is `raw[ends[i-1]..ends[i]]`
//! (bodies), or the data of the stored entry there (framed, where message 0's entry starts at
//! `first_entry`). Every pack built from a batch has the empty tree as its first entry, so
//! every pack gitmq writes is complete on its own (git fsck checks that trees exist), and the
//! messages after it in order.

use std::time::Instant;

use std::path::Path;

use gix_hash::ObjectId;

use super::Signing;
use crate::{
    git::fs::SharedFs,
    git::hash::{object_id, Hasher, OBJECT_HASH},
    git::message::restack,
    git::message::{CommitEncoder, Envelope},
    git::odb::pack::{
        deflate::{deflate_entries, RawObjects},
        format::{decode_entry_header, PACK_HEADER_LEN},
        write::{
            self, finish_index, index_body, pack_header, Compression, EntryEncoder, IndexEntry,
            PackBuilder, PackFiles, SealedPack, WrittenPack,
        },
    },
    git::odb::stored,
    git::sign::copy::sign_copy,
};

/// Messages waiting to be sealed into one pack.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The topic head this batch builds on.
    pub base: Option<ObjectId>,
    /// Message ids, oldest first.
    pub ids: Vec<ObjectId>,
    /// The pack being built (framed), or every message's commit body back to back.
    raw: Vec<u8>,
    /// Where each message's entry (framed) or body ends in `raw`.
    ends: Vec<usize>,
    /// When the first message arrived.
    pub started: Option<Instant>,
    /// The producer's key and mode, if it signs.
    pub signing: Option<Signing>,
    /// Whether `raw` is the pack itself (see the module header).
    pub framed: bool,
    /// Framed: the pack's entries in pack order (the empty tree first).
    entries: Vec<IndexEntry>,
    /// Framed: where message 0's entry starts.
    first_entry: usize,
    /// Framed: a message's body is encoded here, then framed into `raw`.
    scratch: Vec<u8>,
    stored: EntryEncoder,
    /// Framed: the messages of a full batch (the count written in the header up front).
    pub planned: usize,
    /// Framed: the pack's SHA-1 so far, while the header's count is `planned + 1`.
    trailer: Option<Hasher>,
    /// Framed: leave the trailer, the CRC-32s and the index to the flush thread (see the
    /// module header). Set while the batch is empty; the same for all of its messages.
    pub deferred: bool,
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
    framed: bool,
    /// Framed: the entries, sorted by id at seal.
    entries: Vec<IndexEntry>,
    first_entry: usize,
    /// Framed: the index up to the pack checksum, built at seal.
    index: Vec<u8>,
    /// Framed: the pack's checksum when it was hashed while the batch filled.
    checksum: Option<ObjectId>,
    /// Framed: the CRC-32s and the index are still to be computed (by [`write()`](Self::write)).
    deferred: bool,
}

impl Batch {
    /// An empty batch on `base`, in the bodies layout.
    pub fn new(base: Option<ObjectId>) -> Self {
        Self {
            base,
            ids: Vec::new(),
            raw: Vec::new(),
            ends: Vec::new(),
            started: None,
            signing: None,
            framed: false,
            entries: Vec::new(),
            first_entry: 0,
            scratch: Vec::new(),
            stored: EntryEncoder::new(Compression::Stored),
            planned: 0,
            trailer: None,
            deferred: false,
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
        self.push_encoded(|out, parent| encoder.encode(out, parent, seconds, payload))
    }

    /// Append the message `encode` writes (given the buffer and the parent) and hash it; its
    /// id.
    fn push_encoded(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>, Option<&gix_hash::oid>),
    ) -> ObjectId {
        if self.ids.is_empty() {
            self.started = Some(Instant::now());
        }
        let parent = self.tip();
        if self.framed {
            let mut body = std::mem::take(&mut self.scratch);
            body.clear();
            encode(&mut body, parent.as_deref());
            let id = self.push_framed(&body);
            self.scratch = body;
            return id;
        }
        let start = self.raw.len();
        encode(&mut self.raw, parent.as_deref());
        self.finish_push(start)
    }

    /// Framed: hash `body`, append it as a stored entry and record it; its id.
    fn push_framed(&mut self, body: &[u8]) -> ObjectId {
        if self.raw.is_empty() {
            // The header with a full batch's count (rewritten at seal if the batch is cut
            // early), then the empty tree.
            let full = u32::try_from(self.planned.saturating_add(1)).ok();
            let header = pack_header(full.unwrap_or(0));
            self.raw.extend_from_slice(&header);
            self.trailer = full.filter(|_| !self.deferred).map(|_| {
                let mut hasher = Hasher::new();
                hasher.update(&header);
                hasher
            });
            self.append_entry(
                ObjectId::empty_tree(OBJECT_HASH),
                gix_object::Kind::Tree,
                b"",
            );
            self.first_entry = self.raw.len();
        }
        let id = object_id(gix_object::Kind::Commit, body);
        self.append_entry(id, gix_object::Kind::Commit, body);
        self.ends.push(self.raw.len());
        self.ids.push(id);
        id
    }

    /// Framed: append the stored entry of `body` and record its offset and CRC-32 (0 in a
    /// deferred batch, until the flush thread computes it).
    fn append_entry(&mut self, id: ObjectId, kind: gix_object::Kind, body: &[u8]) {
        let start = self.raw.len();
        self.stored.append(&mut self.raw, kind, body);
        let entry = &self.raw[start..];
        if let Some(trailer) = &mut self.trailer {
            trailer.update(entry);
        }
        let crc32 = if self.deferred { 0 } else { crc32(entry) };
        self.entries.push(IndexEntry {
            id,
            offset: start as u64,
            crc32,
        });
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
        self.push_encoded(|out, parent| {
            encoder.trusted_encode_with_id(out, parent, seconds, id, envelope, payload);
        })
    }

    /// Bodies: sign (in `each` mode) and hash the body written at `raw[start..]` and record
    /// it; its id.
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
    ///
    /// Framed, the pack's header gets its count and the index is built up to the pack
    /// checksum here, on the appending thread.
    pub fn seal(&mut self, spare: Option<SealedBatch>) -> SealedBatch {
        let (mut raw, mut ends, mut entries, mut index) =
            spare.map_or_else(Default::default, |s| (s.raw, s.ends, s.entries, s.index));
        raw.clear();
        ends.clear();
        entries.clear();
        raw.reserve(self.raw.capacity());
        self.sign_tip();
        let trailer = self.trailer.take();
        let mut checksum = None;
        if self.framed && !self.ids.is_empty() {
            if self.ids.len() == self.planned {
                checksum = trailer.map(Hasher::finalize);
            } else {
                let count =
                    u32::try_from(self.entries.len()).expect("BUG: a batch holds < 2^32 messages");
                self.raw[..PACK_HEADER_LEN].copy_from_slice(&pack_header(count));
            }
            if !self.deferred {
                index_body(&mut self.entries, &mut index);
            }
        } else {
            index.clear();
        }
        let tip = self.tip();
        // The next batch's ids in one allocation, not a dozen growing ones.
        let next_ids = Vec::with_capacity(self.ids.capacity());
        let sealed = SealedBatch {
            base: self.base,
            ids: std::mem::replace(&mut self.ids, next_ids),
            raw: std::mem::replace(&mut self.raw, raw),
            ends: std::mem::replace(&mut self.ends, ends),
            signing: self.signing.clone(),
            framed: self.framed,
            entries: std::mem::replace(&mut self.entries, entries),
            first_entry: self.first_entry,
            index,
            checksum,
            deferred: self.framed && self.deferred,
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
        debug_assert!(
            !self.framed,
            "BUG: a signing producer uses the bodies layout"
        );
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

/// The CRC-32 of a pack entry's bytes, as its index records it.
fn crc32(entry: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(entry);
    crc.sum()
}

impl SealedBatch {
    /// The newest message.
    pub fn tip(&self) -> Option<ObjectId> {
        self.ids.last().copied().or(self.base)
    }

    /// Bodies: message `i`'s body.
    fn body(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.raw[start..self.ends[i]]
    }

    /// Message `i`'s body, appended to `out` (read back from its stored entry, framed).
    fn body_into(&self, i: usize, out: &mut Vec<u8>) {
        if !self.framed {
            out.extend_from_slice(self.body(i));
            return;
        }
        let start = if i == 0 {
            self.first_entry
        } else {
            self.ends[i - 1]
        };
        let entry = &self.raw[start..self.ends[i]];
        let (_, size, header_len) =
            decode_entry_header(entry).expect("BUG: the batch framed this entry itself");
        let size = usize::try_from(size).expect("BUG: the batch holds this body in memory");
        stored::parse(&entry[header_len..], size, true)
            .ok()
            .flatten()
            .expect("BUG: the batch stored this entry itself")
            .copy_to(out);
    }

    /// Write the batch's pack and index into `pack_dir` (see [`write::write_pack_files()`]),
    /// framing it with `builder` first unless it is framed already.
    pub fn write(
        &mut self,
        fs: &SharedFs,
        pack_dir: &Path,
        builder: &mut PackBuilder,
        compression: Compression,
        sync: bool,
    ) -> Result<WrittenPack, write::Error> {
        if !self.framed {
            let pack = self.pack(builder, compression);
            let files = pack.finish();
            let written = write::write_pack_files(fs, pack_dir, &pack, &files, sync);
            builder.reuse(pack.bytes);
            return written;
        }
        let checksum = self
            .checksum
            .take()
            .unwrap_or_else(|| crate::git::hash::pack_checksum(&self.raw));
        debug_assert_eq!(
            checksum,
            crate::git::hash::pack_checksum(&self.raw),
            "BUG: the trailer hashed while the batch filled is the pack's"
        );
        let mut index = std::mem::take(&mut self.index);
        if self.deferred {
            self.index_here(&mut index);
        }
        finish_index(&mut index, &checksum);
        let files = PackFiles { checksum, index };
        let written = write::write_pack_bytes(fs, pack_dir, &self.raw, &files, sync);
        self.index = files.index;
        written
    }

    /// Framed and deferred: the entries' CRC-32s (the entries are in pack order until
    /// [`index_body()`] sorts them: each one ends where the next begins, the last at the
    /// end of the pack data), then the index up to the pack checksum.
    fn index_here(&mut self, index: &mut Vec<u8>) {
        let mut end = self.raw.len();
        for entry in self.entries.iter_mut().rev() {
            let start = usize::try_from(entry.offset).expect("BUG: the entry is in memory");
            entry.crc32 = crc32(&self.raw[start..end]);
            end = start;
        }
        index_body(&mut self.entries, index);
        self.deferred = false;
    }

    /// Bodies: frame the batch into a pack with `builder` (emptied first): the empty tree,
    /// then every message, stored or deflated (on every core) per `compression`.
    fn pack(&self, builder: &mut PackBuilder, compression: Compression) -> SealedPack {
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
        let mut body = Vec::new();
        for (i, id) in self.ids.iter().enumerate() {
            let parent = batch.tip();
            body.clear();
            self.body_into(i, &mut body);
            restack::with_first_parent(id, &body, parent.as_deref(), &mut copy)?;
            // This producer signed these bodies itself: re-sign without checking them.
            sign_copy(id, &body, &mut copy, key, true);
            let start = batch.raw.len();
            batch.raw.extend_from_slice(&copy);
            batch.finish_push(start);
        }
        let mut sealed = batch.seal(None);
        sealed.signing.clone_from(&self.signing);
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::message::Identity;

    fn filled(framed: bool, planned: usize, n: usize) -> SealedBatch {
        filled_with(framed, false, planned, n)
    }

    fn filled_with(framed: bool, deferred: bool, planned: usize, n: usize) -> SealedBatch {
        let encoder = CommitEncoder::new(&Identity::default(), 0);
        let mut batch = Batch::new(None);
        batch.framed = framed;
        batch.deferred = deferred;
        batch.planned = planned;
        for i in 0..n {
            // Message 3 spans two stored blocks.
            let payload = if i == 3 {
                vec![b'x'; 70_000]
            } else {
                format!("message {i}").into_bytes()
            };
            batch.push(&encoder, 1_700_000_000, &payload);
        }
        batch.seal(None)
    }

    /// The pack bytes and checksum a batch writes, and its index.
    fn pack_of(batch: &mut SealedBatch) -> (Vec<u8>, PackFiles) {
        if batch.framed {
            let checksum = batch
                .checksum
                .unwrap_or_else(|| crate::git::hash::pack_checksum(&batch.raw));
            let mut index = batch.index.clone();
            if batch.deferred {
                batch.index_here(&mut index);
            }
            finish_index(&mut index, &checksum);
            (batch.raw.clone(), PackFiles { checksum, index })
        } else {
            let mut builder = PackBuilder::new(Compression::Stored);
            let pack = batch.pack(&mut builder, Compression::Stored);
            let files = pack.finish();
            (pack.bytes, files)
        }
    }

    #[test]
    fn a_framed_batch_is_byte_for_byte_the_pack_the_flush_thread_would_frame() {
        // Full (hashed while filling), cut early (header rewritten at seal), one message.
        for (planned, n) in [(50, 50), (50, 17), (10_000, 1)] {
            let mut bodies = filled(false, planned, n);
            let mut framed = filled(true, planned, n);
            assert_eq!(framed.ids, bodies.ids, "same ids, planned {planned}, n {n}");
            assert_eq!(
                framed.checksum.is_some(),
                planned == n,
                "only a full batch is hashed while it fills"
            );
            let (bodies_pack, bodies_files) = pack_of(&mut bodies);
            let (framed_pack, framed_files) = pack_of(&mut framed);
            assert_eq!(
                framed_pack, bodies_pack,
                "same pack bytes, planned {planned}, n {n}"
            );
            assert_eq!(
                framed_files.checksum,
                crate::git::hash::pack_checksum(&framed_pack),
                "the checksum is the pack's SHA-1"
            );
            assert_eq!(framed_files.checksum, bodies_files.checksum);
            assert_eq!(framed_files.index, bodies_files.index, "same index");
        }
    }

    #[test]
    fn a_deferred_batch_is_byte_for_byte_the_pack_and_index_of_one_finished_on_the_appending_thread(
    ) {
        for (planned, n) in [(50, 50), (50, 17), (10_000, 1)] {
            let mut here = filled_with(true, false, planned, n);
            let mut deferred = filled_with(true, true, planned, n);
            assert!(deferred.deferred && deferred.checksum.is_none());
            assert!(deferred.entries.iter().all(|e| e.crc32 == 0), "no CRC yet");
            let (here_pack, here_files) = pack_of(&mut here);
            let (deferred_pack, deferred_files) = pack_of(&mut deferred);
            assert_eq!(deferred_pack, here_pack, "planned {planned}, n {n}");
            assert_eq!(deferred_files.checksum, here_files.checksum);
            assert_eq!(deferred_files.index, here_files.index, "same index");
        }
    }

    #[test]
    fn a_framed_batch_gives_back_each_message_body_for_a_rebuild() {
        let bodies = filled(false, 20, 20);
        let framed = filled(true, 20, 20);
        for i in 0..20 {
            let (mut from_bodies, mut from_framed) = (Vec::new(), vec![7]);
            bodies.body_into(i, &mut from_bodies);
            framed.body_into(i, &mut from_framed);
            assert_eq!(
                from_framed[1..],
                from_bodies[..],
                "body {i}, appended to `out`"
            );
        }
        let base = ObjectId::empty_blob(OBJECT_HASH);
        let (a, b) = (
            bodies.rebuilt_on(Some(base)).expect("rebuild"),
            framed.rebuilt_on(Some(base)).expect("rebuild"),
        );
        assert_eq!(a.ids, b.ids, "the same messages rebuilt on the same head");
    }
}
