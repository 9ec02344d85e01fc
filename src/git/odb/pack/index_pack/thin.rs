//! Completing a thin pack, as `git index-pack --fix-thin` does: the REF_DELTA bases that the
//! received pack lacks are read from the local object database, appended to the pack as whole
//! objects, and the header count and trailer are rewritten, so the pack that lands in
//! `objects/pack/` (and its index) is self-contained.
//!
//! Byte layout of a completed pack (git's
//! [`builtin/index-pack.c`](https://github.com/git/git/blob/v2.47.0/builtin/index-pack.c):
//! `conclude_pack`, `fix_unresolved_deltas`, `append_obj_to_pack`, `write_compressed`, then
//! `fixup_pack_header_footer`):
//!
//! ```text
//! offset 0        "PACK", version 2, count = received count + appended bases   (rewritten)
//! offset 12       the received entries, byte for byte
//! len - 20        appended base 1: entry header (type, size), zlib stream     (the received
//!                 appended base 2 ...                                         trailer's place)
//! end             SHA-1 of everything before                                   (rewritten)
//! ```
//!
//! Order, as git's: the unresolved REF_DELTAs are visited in pack order; the first one whose
//! base is still missing has that base appended, then every delta reachable from it is
//! resolved (which may resolve later REF_DELTAs too, so they need no base of their own).
//! Encoding: git deflates an appended base with `core.compression` (its default is level 1)
//! through a 4,096-byte output buffer. gitmq writes level 0 (stored blocks, gitmq's default
//! compression for its own packs) through the same 4,096-byte buffer, which gives exactly the
//! bytes of `git -c core.compression=0 index-pack --fix-thin`. Deflating at level 1 could not
//! match git's bytes anyway: gitmq's zlib (zlib-rs) makes other, equally valid, level-1 streams
//! than the C zlib git links.
//!
//! Invariants: at most [`Limits::max_objects`] objects and [`Limits::max_pack_size`] bytes
//! after completion; a base is read whole (one object at a time, at most
//! [`Limits::max_object_size`]) and must hash to its id; a base found nowhere is
//! [`Error::MissingBase`], and (like every error of the indexer) leaves nothing in
//! `objects/pack/`. Re-hashing the completed pack reads it once more in
//! [`REHASH_CHUNK_LEN`] chunks (git does the same re-read).

use std::{fs::File, os::unix::fs::FileExt, path::Path};

use flate2::{Compress, Compression, FlushCompress, Status};
use gix_hash::ObjectId;

use super::{io_err, resolve::Resolver, Base, Entry, Error, IndexedPack, Limits};
use crate::git::{
    hash::{object_id, Hasher, ID_LEN},
    odb::{
        self,
        pack::format::{encode_entry_header, EntryKind, MAX_ENTRY_HEADER_LEN, PACK_HEADER_LEN},
        Odb,
    },
};

/// The output buffer git's `write_compressed` deflates through: zlib's stored-block sizes
/// depend on it, so the same size gives the same bytes.
const DEFLATE_OUT_LEN: usize = 4096;
/// The zlib level of appended bases: stored blocks, as gitmq's own packs by default.
const APPEND_LEVEL: u32 = 0;
/// Bytes written to the pack at a time while appending.
const WRITE_CHUNK_LEN: usize = 64 << 10;
/// Bytes read at a time when re-hashing the completed pack.
pub const REHASH_CHUNK_LEN: usize = 64 << 10;
/// Where the object count sits in the pack header.
const COUNT_OFFSET: u64 = 8;

/// Read a pack from `input` like [`index_pack()`](super::index_pack()) into `local`'s
/// `objects/pack/` (through `local`'s file system), and when it is thin, complete it with the
/// missing REF_DELTA bases read from `local` before indexing it, as
/// `git index-pack --fix-thin` does. A pack that is not thin is indexed exactly as
/// [`index_pack()`](super::index_pack()) indexes it. [`IndexedPack::local_bases`] says how
/// many objects were appended.
///
/// ```
/// use gitmq::git::odb::{pack::index_pack::{index_thin_pack, Limits}, Odb};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// std::fs::create_dir_all(dir.path().join("objects/pack"))?;
/// let mut local = Odb::at(dir.path().join("objects"));
/// // What a server sent (here an empty pack: "PACK", version 2, no objects, its SHA-1).
/// let mut pack = b"PACK\0\0\0\x02\0\0\0\0".to_vec();
/// let mut trailer = gitmq::git::hash::Hasher::new();
/// trailer.update(&pack);
/// pack.extend_from_slice(trailer.finalize().as_bytes());
/// let indexed = index_thin_pack(&pack[..], &mut local, &Limits::default(), true)?;
/// assert_eq!((indexed.objects, indexed.local_bases), (0, 0));
/// # Ok(()) }
/// ```
pub fn index_thin_pack(
    input: impl std::io::Read,
    local: &mut Odb,
    limits: &Limits,
    sync: bool,
) -> Result<IndexedPack, Error> {
    let fs = local.fs().clone();
    let pack_dir = local.objects_dir().join("pack");
    super::index(&fs, input, &pack_dir, limits, sync, Some(local))
}

/// The temporary pack as the stream pass left it.
pub(super) struct Pack<'a> {
    /// The file, open for reading and writing.
    pub file: &'a File,
    /// Its path, for errors.
    pub path: &'a Path,
    /// Its length, trailer included.
    pub len: u64,
}

/// What completing a thin pack changed.
#[derive(Debug)]
pub(super) struct Completed {
    /// The new trailer.
    pub checksum: ObjectId,
    /// The new length of the pack.
    pub bytes: u64,
    /// How many bases were appended.
    pub appended: u32,
}

/// Append the bases of the REF_DELTAs `resolver` left unresolved, taken from `local`, to the
/// temporary pack, resolving the deltas of each; then rewrite the header count and trailer.
pub(super) fn complete(
    pack: &Pack<'_>,
    entries: &mut Vec<Entry>,
    resolver: &mut Resolver<'_>,
    local: &mut Odb,
    limits: &Limits,
) -> Result<Completed, Error> {
    let trailer_at = pack
        .len
        .checked_sub(ID_LEN as u64)
        .expect("BUG: the stream pass read a trailer");
    let mut appender = Appender {
        file: pack.file,
        path: pack.path,
        at: trailer_at,
        pending: Vec::with_capacity(WRITE_CHUNK_LEN),
        compress: Compress::new(Compression::new(APPEND_LEVEL), true),
        out: vec![0; DEFLATE_OUT_LEN],
        crc: flate2::Crc::new(),
    };
    // The REF_DELTAs without an id, in pack order (git sorts its ref deltas by position).
    let waiting: Vec<(usize, ObjectId)> = entries
        .iter()
        .enumerate()
        .filter_map(|(index, entry)| match (entry.base, entry.id) {
            (Base::Id(base), None) => Some((index, base)),
            _ => None,
        })
        .collect();
    let mut local_bases = 0u32;
    let mut body = Vec::new();
    for (index, base) in waiting {
        let Some(delta) = entries.get(index) else {
            continue;
        };
        if delta.id.is_some() {
            // Resolved from a base appended before.
            continue;
        }
        let delta_offset = delta.offset;
        let kind = match local.read(&base, &mut body) {
            Ok(kind) => kind,
            Err(odb::Error::Missing { .. }) => {
                return Err(Error::MissingBase {
                    offset: delta_offset,
                    base,
                })
            }
            Err(source) => {
                return Err(Error::LocalBase {
                    base,
                    source: Box::new(source),
                })
            }
        };
        let size = body.len() as u64;
        if size > limits.max_object_size {
            return Err(Error::ObjectTooLarge {
                offset: appender.at,
                size,
                limit: limits.max_object_size,
            });
        }
        let actual = object_id(kind, &body);
        if actual != base {
            return Err(Error::CorruptLocalBase { base, actual });
        }
        if entries.len() >= usize::try_from(limits.max_objects).unwrap_or(usize::MAX) {
            return Err(Error::TooManyObjects {
                count: u32::try_from(entries.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(1),
                limit: limits.max_objects,
            });
        }
        let entry = appender.append(kind, &body, base, limits)?;
        let root = entries.len();
        entries.push(entry);
        local_bases += 1;
        resolver.resolve_from(entries, root, std::mem::take(&mut body))?;
    }
    appender.flush()?;
    let end = appender.at;
    if end.saturating_add(ID_LEN as u64) > limits.max_pack_size {
        return Err(Error::PackTooLarge {
            limit: limits.max_pack_size,
        });
    }

    let count = u32::try_from(entries.len()).expect("BUG: at most max_objects (u32) entries");
    write_at(pack, &count.to_be_bytes(), COUNT_OFFSET)?;
    let checksum = rehash(pack, end)?;
    write_at(pack, checksum.as_bytes(), end)?;
    let bytes = end + ID_LEN as u64;
    pack.file.set_len(bytes).map_err(io_err(pack.path))?;
    Ok(Completed {
        checksum,
        bytes,
        appended: local_bases,
    })
}

/// Writes appended entries at the end of the temporary pack.
struct Appender<'a> {
    file: &'a File,
    path: &'a Path,
    /// The pack offset of the next byte appended (pending bytes included).
    at: u64,
    /// Bytes not yet written; they start at `at - pending.len()`.
    pending: Vec<u8>,
    compress: Compress,
    out: Vec<u8>,
    crc: flate2::Crc,
}

impl Appender<'_> {
    /// Append `body` as a whole object of `kind`: entry header, then its zlib stream made the
    /// way git's `write_compressed` makes it.
    fn append(
        &mut self,
        kind: gix_object::Kind,
        body: &[u8],
        id: ObjectId,
        limits: &Limits,
    ) -> Result<Entry, Error> {
        let offset = self.at;
        self.crc = flate2::Crc::new();
        let mut header = [0u8; MAX_ENTRY_HEADER_LEN];
        let len = encode_entry_header(&mut header, EntryKind::Base(kind), body.len() as u64);
        self.push(header.get(..len).unwrap_or_default(), limits)?;
        let data_offset = self.at;

        self.compress.reset();
        loop {
            let consumed = usize::try_from(self.compress.total_in()).unwrap_or(usize::MAX);
            let before = self.compress.total_out();
            let status = self
                .compress
                .compress(
                    body.get(consumed..).unwrap_or_default(),
                    &mut self.out,
                    FlushCompress::Finish,
                )
                .map_err(|_| Error::BadEntry {
                    offset,
                    reason: "zlib failed to compress an appended base",
                })?;
            let produced = usize::try_from(self.compress.total_out() - before).unwrap_or(0);
            let chunk = std::mem::take(&mut self.out);
            let result = self.push(chunk.get(..produced).unwrap_or_default(), limits);
            self.out = chunk;
            result?;
            match status {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError if produced == 0 => {
                    return Err(Error::BadEntry {
                        offset,
                        reason: "zlib makes no progress compressing an appended base",
                    })
                }
                Status::Ok | Status::BufError => {}
            }
        }
        Ok(Entry {
            offset,
            data_offset,
            end: self.at,
            size: body.len() as u64,
            crc32: self.crc.sum(),
            base: Base::None,
            kind: Some(kind),
            id: Some(id),
        })
    }

    /// Append `bytes` to the pack (through the pending buffer), into the entry's CRC-32.
    fn push(&mut self, bytes: &[u8], limits: &Limits) -> Result<(), Error> {
        self.crc.update(bytes);
        self.at = self.at.saturating_add(bytes.len() as u64);
        if self.at.saturating_add(ID_LEN as u64) > limits.max_pack_size {
            return Err(Error::PackTooLarge {
                limit: limits.max_pack_size,
            });
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= WRITE_CHUNK_LEN {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        let start = self.at - self.pending.len() as u64;
        self.file
            .write_all_at(&self.pending, start)
            .map_err(io_err(self.path))?;
        self.pending.clear();
        Ok(())
    }
}

fn write_at(pack: &Pack<'_>, bytes: &[u8], offset: u64) -> Result<(), Error> {
    pack.file
        .write_all_at(bytes, offset)
        .map_err(io_err(pack.path))
}

/// The SHA-1 of the first `end` bytes of the pack, read back in chunks.
fn rehash(pack: &Pack<'_>, end: u64) -> Result<ObjectId, Error> {
    debug_assert!(end >= PACK_HEADER_LEN as u64);
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; REHASH_CHUNK_LEN];
    let mut at = 0u64;
    while at < end {
        let len = usize::try_from(end - at)
            .unwrap_or(usize::MAX)
            .min(REHASH_CHUNK_LEN);
        let chunk = buf.get_mut(..len).unwrap_or_default();
        pack.file
            .read_exact_at(chunk, at)
            .map_err(io_err(pack.path))?;
        hasher.update(chunk);
        at += len as u64;
    }
    Ok(hasher.finalize())
}

#[cfg(test)]
mod tests;
