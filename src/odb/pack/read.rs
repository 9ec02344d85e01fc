//! Owns reading entries of one pack file: base objects and delta chains, through a few
//! large read windows, with a caller-owned delta-base cache.
//!
//! Invariants:
//! - A [`PackFile`] exists only once its index validated and the pack agrees with it: the
//!   header says `PACK`, version 2 and the index's object count, the file holds at least a
//!   header and a trailer, and the trailer equals the pack checksum recorded in the index.
//!   The whole pack is not hashed on open ([`PackFile::verify_checksum()`] does that); each
//!   entry is guarded by its zlib checksum and its declared size instead.
//! - Every size read from disk (entry sizes, delta result sizes) is checked against
//!   [`Options::max_object_size`] before anything is allocated for it, and an inflated
//!   entry must have exactly its declared size.
//! - Delta chains are resolved iteratively, at most [`Options::max_chain_len`] deep, so a
//!   cycle of REF_DELTA entries ends in an error, not a hang.
//! - A REF_DELTA whose base is not in the same pack is [`Error::BaseOutsidePack`]: git only
//!   keeps self-contained packs in `objects/pack/` (`index-pack --fix-thin` completes thin
//!   ones), so this is corruption, not something to resolve through other packs.
//! - No `unsafe` and no mmap: bytes come from `pread` into [`Options::max_windows`] windows
//!   of [`Options::window_size`] bytes (see `window.rs`), so reading many small entries near
//!   each other costs one system call per window. An entry larger than half a window is
//!   streamed through its own buffer instead, leaving the windows to the small entries.
//!
//! Entry layout (see [`super::format`]): a type+size header, then the base distance
//! (OFS_DELTA) or base id (REF_DELTA), then a zlib stream; git's reader is `unpack_entry` in
//! [`packfile.c`](https://github.com/git/git/blob/v2.47.0/packfile.c).

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

pub mod cache;
mod window;

use std::{
    fs::File,
    io::{self, Read},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use flate2::{Decompress, FlushDecompress, Status};
use gix_hash::{oid, ObjectId};

pub use cache::{DeltaBaseCache, DEFAULT_CACHE_BYTES};
use window::Windows;

use super::{
    delta,
    format::{
        decode_entry_header, decode_ofs_delta_distance, read_u32, EntryKind, HASH_LEN,
        IDX_HEADER_LEN, MAX_ENTRY_HEADER_LEN, PACK_HEADER_LEN, PACK_SIGNATURE, PACK_VERSION,
    },
    index::{self, PackIndex},
};
use crate::{hash, odb::loose::DEFAULT_MAX_OBJECT_SIZE};

/// The default size of one read window (4 MiB).
pub const DEFAULT_WINDOW_SIZE: usize = 4 << 20;
/// The default number of read windows per pack.
pub const DEFAULT_MAX_WINDOWS: usize = 8;
/// The default longest delta chain followed (git's `repack --depth` tops out at 4095).
pub const DEFAULT_MAX_CHAIN_LEN: usize = 10_000;

/// The smallest window size used, whatever [`Options::window_size`] says.
const MIN_WINDOW_SIZE: usize = 4096;
/// Bytes of an entry read before its zlib stream: the header and a base id (longer than
/// any base distance).
const ENTRY_PREFIX_LEN: usize = MAX_ENTRY_HEADER_LEN + HASH_LEN;
/// The read size when streaming an entry too large for the windows.
const DIRECT_CHUNK_LEN: u64 = 1 << 20;
/// Output room reserved past an entry's declared size: zlib decodes with its fast loop only
/// while at least 258 bytes (one longest match) of output room are left, so without slack
/// every small object would be decoded by the slow loop (measured: 1.4x slower on commits).
/// A valid stream never writes into it; a stream that does is refused as too long.
const INFLATE_SLACK: usize = 512;
/// Index bytes per object at most: id, CRC, offset and a large offset.
const IDX_MAX_BYTES_PER_OBJECT: u64 = (HASH_LEN + 4 + 4 + 8) as u64;
/// Index bytes besides the per-object tables: header, fan-out and the two checksums.
const IDX_FIXED_LEN: u64 = (IDX_HEADER_LEN + 2 * HASH_LEN) as u64;
/// Scratch buffers larger than this are shrunk after each read.
const SCRATCH_KEEP_LEN: usize = 8 << 20;

/// How a [`PackFile`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The size of one read window in bytes (at least 4 KiB is used).
    pub window_size: usize,
    /// How many windows a pack keeps (at least 1 is used).
    pub max_windows: usize,
    /// The largest object (and delta result) a read allocates for.
    pub max_object_size: u64,
    /// The most deltas followed to reach a base.
    pub max_chain_len: usize,
    /// Hash each object read and compare with its id (costs about as much as the read).
    pub verify_ids: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            window_size: DEFAULT_WINDOW_SIZE,
            max_windows: DEFAULT_MAX_WINDOWS,
            max_object_size: DEFAULT_MAX_OBJECT_SIZE,
            max_chain_len: DEFAULT_MAX_CHAIN_LEN,
            verify_ids: false,
        }
    }
}

/// Returned by [`PackFile::open()`], [`PackFile::read()`] and the other reads of a pack.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file system refused.
    #[error("pack I/O failed at {path}")]
    Io {
        /// The pack or index file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The index did not validate.
    #[error("pack index {path} is invalid")]
    Index {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        source: index::Error,
    },
    /// The pack is too short for a header and a trailer.
    #[error("pack {path} is {len} bytes, too short to be a pack")]
    TooShort {
        /// The pack file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The pack header is not `PACK`, version 2, with the index's object count.
    #[error("pack {path} has a bad header: {reason}")]
    BadHeader {
        /// The pack file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The pack's trailer (or, from [`PackFile::verify_checksum()`], its content) does not
    /// match the checksum its index records.
    #[error("pack {path} has checksum {pack}, its index expects {index}")]
    ChecksumMismatch {
        /// The pack file.
        path: PathBuf,
        /// The checksum the index records.
        index: ObjectId,
        /// The checksum found in (or computed from) the pack.
        pack: ObjectId,
    },
    /// An entry's header, base reference or zlib stream framing is broken.
    #[error("pack {path} is corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// The pack file.
        path: PathBuf,
        /// The entry's offset.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// An entry's zlib stream does not inflate.
    #[error("pack {path} entry at offset {offset} does not inflate")]
    Inflate {
        /// The pack file.
        path: PathBuf,
        /// The entry's offset.
        offset: u64,
        /// What zlib reported.
        source: flate2::DecompressError,
    },
    /// An entry declares a size above the limit.
    #[error("pack {path} entry at offset {offset} declares {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The pack file.
        path: PathBuf,
        /// The entry's offset.
        offset: u64,
        /// The declared size.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// A delta does not apply to its base.
    #[error("pack {path} delta at offset {offset} does not apply")]
    Delta {
        /// The pack file.
        path: PathBuf,
        /// The delta entry's offset.
        offset: u64,
        /// What is wrong.
        source: delta::Error,
    },
    /// More deltas than [`Options::max_chain_len`] lead to the base (or they form a cycle).
    #[error("pack {path} entry at offset {offset} has a delta chain longer than {limit}")]
    ChainTooLong {
        /// The pack file.
        path: PathBuf,
        /// The entry read.
        offset: u64,
        /// The limit in force.
        limit: usize,
    },
    /// A REF_DELTA names a base this pack does not hold (a thin pack, or a corrupt one).
    #[error("pack {path} delta at offset {offset} needs base {base}, which is not in the pack")]
    BaseOutsidePack {
        /// The pack file.
        path: PathBuf,
        /// The delta entry's offset.
        offset: u64,
        /// The missing base.
        base: ObjectId,
    },
    /// With [`Options::verify_ids`], the bytes read do not hash to the id asked for.
    #[error("pack {path} entry at offset {offset} should be {id}, its content hashes to {actual}")]
    IdMismatch {
        /// The pack file.
        path: PathBuf,
        /// The entry's offset.
        offset: u64,
        /// The id asked for.
        id: ObjectId,
        /// The id of what was read.
        actual: ObjectId,
    },
    /// [`PackFile::read_nth()`] was given a position past the index.
    #[error("pack {path} has {len} entries, there is no entry {position}")]
    NoSuchPosition {
        /// The pack file.
        path: PathBuf,
        /// The position asked for.
        position: u32,
        /// Entries in the pack.
        len: u32,
    },
}

impl Error {
    /// Whether the pack or its index does not exist (any more): a pack deleted by `git gc`
    /// or a repack after it was listed.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where an entry's object comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The zlib stream holds the object.
    Whole(gix_object::Kind),
    /// The zlib stream holds a delta against the entry at this offset.
    DeltaAt(u64),
    /// The zlib stream holds a delta against the object with this id.
    DeltaOf(ObjectId),
}

/// A parsed entry header.
#[derive(Debug, Clone, Copy)]
struct Entry {
    source: Source,
    /// The inflated size of the zlib stream (object or delta).
    size: u64,
    /// Where the zlib stream starts.
    data_at: u64,
}

/// One delta of a chain being resolved.
#[derive(Debug, Clone, Copy)]
struct Link {
    offset: u64,
    entry: Entry,
}

/// Buffers reused across reads.
#[derive(Debug, Default)]
struct Scratch {
    chain: Vec<Link>,
    base: Vec<u8>,
    result: Vec<u8>,
    delta: Vec<u8>,
}

impl Scratch {
    fn trim(&mut self) {
        for buf in [&mut self.base, &mut self.result, &mut self.delta] {
            if buf.capacity() > SCRATCH_KEEP_LEN {
                *buf = Vec::new();
            }
        }
    }
}

/// One open pack (`pack-<hash>.pack`) and its validated index.
#[derive(Debug)]
pub struct PackFile {
    path: PathBuf,
    file: File,
    len: u64,
    index: PackIndex,
    checksum: ObjectId,
    options: Options,
    windows: Windows,
    inflater: Decompress,
    scratch: Scratch,
}

/// Lifecycle
impl PackFile {
    /// Open the pack at `pack_path` and the `.idx` beside it, with default [`Options`].
    pub fn open(pack_path: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::open_with(pack_path, Options::default())
    }

    /// Open the pack at `pack_path` and the `.idx` beside it.
    pub fn open_with(pack_path: impl Into<PathBuf>, options: Options) -> Result<Self, Error> {
        let path = pack_path.into();
        let file = File::open(&path).map_err(io_err(&path))?;
        let len = file.metadata().map_err(io_err(&path))?.len();
        if len < (PACK_HEADER_LEN + HASH_LEN) as u64 {
            return Err(Error::TooShort { path, len });
        }
        let idx_path = path.with_extension("idx");
        let index = read_index(&idx_path, len)?;
        let mut header = [0u8; PACK_HEADER_LEN];
        file.read_exact_at(&mut header, 0).map_err(io_err(&path))?;
        let bad_header = |reason: String| Error::BadHeader {
            path: path.clone(),
            reason,
        };
        if header.get(..4) != Some(&PACK_SIGNATURE[..]) {
            return Err(bad_header("no PACK signature".into()));
        }
        let version = read_u32(&header, 4).expect("the header has 12 bytes");
        if version != PACK_VERSION {
            return Err(bad_header(format!("version {version} is not supported")));
        }
        let count = read_u32(&header, 8).expect("the header has 12 bytes");
        if count != index.len() {
            return Err(bad_header(format!(
                "it holds {count} objects, its index lists {}",
                index.len()
            )));
        }
        let mut trailer = [0u8; HASH_LEN];
        file.read_exact_at(&mut trailer, len - HASH_LEN as u64)
            .map_err(io_err(&path))?;
        let checksum = index.pack_checksum();
        if trailer != checksum.as_bytes() {
            return Err(Error::ChecksumMismatch {
                path,
                index: checksum,
                pack: ObjectId::from(trailer),
            });
        }
        Ok(Self {
            path,
            file,
            len,
            index,
            checksum,
            windows: Windows::new(
                options.window_size.max(MIN_WINDOW_SIZE),
                options.max_windows,
            ),
            options,
            inflater: Decompress::new(true),
            scratch: Scratch::default(),
        })
    }
}

/// Read and validate the index of a pack of `pack_len` bytes. Every object takes at least
/// one pack byte, so a longer index than that many objects need is refused unread.
fn read_index(idx_path: &Path, pack_len: u64) -> Result<PackIndex, Error> {
    let invalid = |source| Error::Index {
        path: idx_path.to_owned(),
        source,
    };
    let mut idx = File::open(idx_path).map_err(io_err(idx_path))?;
    let len = idx.metadata().map_err(io_err(idx_path))?.len();
    let max_objects = pack_len - (PACK_HEADER_LEN + HASH_LEN) as u64;
    let limit = max_objects
        .saturating_mul(IDX_MAX_BYTES_PER_OBJECT)
        .saturating_add(IDX_FIXED_LEN);
    if len > limit {
        return Err(invalid(index::Error::TooLong { len, limit }));
    }
    let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    idx.read_to_end(&mut data).map_err(io_err(idx_path))?;
    PackIndex::from_bytes(data).map_err(invalid)
}

/// Access
impl PackFile {
    /// The pack file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The validated index.
    pub fn index(&self) -> &PackIndex {
        &self.index
    }

    /// The pack checksum (its trailer, and the hash in its name).
    pub fn checksum(&self) -> &oid {
        &self.checksum
    }

    /// Whether the pack holds `id`.
    pub fn contains(&self, id: &oid) -> bool {
        self.index.lookup(id).is_some()
    }

    /// Read the object `id` into `out` (cleared first) and return its kind; `None` if the
    /// pack does not hold it.
    pub fn read(
        &mut self,
        id: &oid,
        out: &mut Vec<u8>,
        cache: &mut DeltaBaseCache,
    ) -> Result<Option<gix_object::Kind>, Error> {
        let Some(position) = self.index.lookup(id) else {
            return Ok(None);
        };
        let offset = self.index.offset_at(position);
        let kind = self.read_at(offset, out, cache)?;
        if self.options.verify_ids {
            self.verify_id(id, offset, kind, out)?;
        }
        Ok(Some(kind))
    }

    /// Read the object at `position` of the index into `out` (cleared first) and return its
    /// kind. Reading positions in [`PackIndex::pack_order()`] is the fastest way through a
    /// pack: it reads the windows front to back and finds delta bases in the cache.
    pub fn read_nth(
        &mut self,
        position: u32,
        out: &mut Vec<u8>,
        cache: &mut DeltaBaseCache,
    ) -> Result<gix_object::Kind, Error> {
        if position >= self.index.len() {
            return Err(Error::NoSuchPosition {
                path: self.path.clone(),
                position,
                len: self.index.len(),
            });
        }
        let offset = self.index.offset_at(position);
        let kind = self.read_at(offset, out, cache)?;
        if self.options.verify_ids {
            self.verify_id(self.index.id_at(position), offset, kind, out)?;
        }
        Ok(kind)
    }

    /// Hash the whole pack and compare with its trailer and index: a full integrity check,
    /// which [`open()`](Self::open) skips because it reads every byte.
    pub fn verify_checksum(&self) -> Result<(), Error> {
        let end = self.data_end();
        let mut hasher = hash::Hasher::new();
        let mut chunk = Vec::new();
        let mut at = 0;
        while at < end {
            let len = usize::try_from((end - at).min(DIRECT_CHUNK_LEN)).expect("at most 1 MiB");
            chunk.resize(len, 0);
            self.file
                .read_exact_at(&mut chunk, at)
                .map_err(io_err(&self.path))?;
            hasher.update(&chunk);
            at += len as u64;
        }
        let actual = hasher.finalize();
        if actual != self.checksum {
            return Err(Error::ChecksumMismatch {
                path: self.path.clone(),
                index: self.checksum,
                pack: actual,
            });
        }
        Ok(())
    }
}

/// Entries and chains
impl PackFile {
    fn verify_id(
        &self,
        id: &oid,
        offset: u64,
        kind: gix_object::Kind,
        body: &[u8],
    ) -> Result<(), Error> {
        let actual = hash::object_id(kind, body);
        if actual != id {
            return Err(Error::IdMismatch {
                path: self.path.clone(),
                offset,
                id: id.to_owned(),
                actual,
            });
        }
        Ok(())
    }

    /// Where entries end and the trailer begins.
    fn data_end(&self) -> u64 {
        self.len - HASH_LEN as u64
    }

    fn corrupt(&self, offset: u64, reason: &'static str) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            offset,
            reason,
        }
    }

    fn read_at(
        &mut self,
        offset: u64,
        out: &mut Vec<u8>,
        cache: &mut DeltaBaseCache,
    ) -> Result<gix_object::Kind, Error> {
        let entry = self.entry_at(offset)?;
        if let Source::Whole(kind) = entry.source {
            self.inflate(offset, entry, self.options.max_object_size, out)?;
            // The next delta read in pack order is likely to need it as its base.
            cache.insert(&self.checksum, offset, kind, out);
            return Ok(kind);
        }
        if let Some((kind, data)) = cache.get(&self.checksum, offset) {
            out.clear();
            out.extend_from_slice(data);
            return Ok(kind);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.resolve(offset, entry, out, cache, &mut scratch);
        scratch.trim();
        self.scratch = scratch;
        result
    }

    /// Parse the header of the entry at `offset`.
    fn entry_at(&mut self, offset: u64) -> Result<Entry, Error> {
        let data_end = self.data_end();
        if offset < PACK_HEADER_LEN as u64 || offset >= data_end {
            return Err(self.corrupt(offset, "entry offset is outside the pack data"));
        }
        let bytes = self
            .windows
            .slice(&self.file, data_end, offset, ENTRY_PREFIX_LEN)
            .map_err(io_err(&self.path))?;
        let parsed = decode_entry_header(bytes).and_then(|(kind, size, header_len)| {
            let rest = bytes.get(header_len..).unwrap_or_default();
            let (source, extra) = match kind {
                EntryKind::Base(kind) => (Ok(Source::Whole(kind)), 0),
                EntryKind::OfsDelta => {
                    let (distance, len) = decode_ofs_delta_distance(rest)?;
                    let base = offset
                        .checked_sub(distance)
                        .filter(|base| distance != 0 && *base >= PACK_HEADER_LEN as u64)
                        .map(Source::DeltaAt)
                        .ok_or("delta base offset is outside the pack data");
                    (base, len)
                }
                EntryKind::RefDelta => {
                    let id = ObjectId::from_bytes_or_panic(rest.get(..HASH_LEN)?);
                    (Ok(Source::DeltaOf(id)), HASH_LEN)
                }
            };
            Some((source, size, (header_len + extra) as u64))
        });
        let (source, size, prefix_len) =
            parsed.ok_or_else(|| self.corrupt(offset, "entry header is truncated or invalid"))?;
        let source = source.map_err(|reason| self.corrupt(offset, reason))?;
        Ok(Entry {
            source,
            size,
            data_at: offset + prefix_len,
        })
    }

    /// Resolve the delta chain starting with `entry` at `offset` into `out`.
    fn resolve(
        &mut self,
        offset: u64,
        entry: Entry,
        out: &mut Vec<u8>,
        cache: &mut DeltaBaseCache,
        scratch: &mut Scratch,
    ) -> Result<gix_object::Kind, Error> {
        let limit = self.options.max_object_size;
        scratch.chain.clear();
        let mut link = Link { offset, entry };
        let kind = loop {
            if scratch.chain.len() >= self.options.max_chain_len {
                return Err(Error::ChainTooLong {
                    path: self.path.clone(),
                    offset,
                    limit: self.options.max_chain_len,
                });
            }
            scratch.chain.push(link);
            let base_offset = match link.entry.source {
                Source::DeltaAt(base_offset) => base_offset,
                Source::DeltaOf(base) => match self.index.lookup(&base) {
                    Some(position) => self.index.offset_at(position),
                    None => {
                        return Err(Error::BaseOutsidePack {
                            path: self.path.clone(),
                            offset: link.offset,
                            base,
                        })
                    }
                },
                Source::Whole(_) => unreachable!("BUG: only deltas are pushed on the chain"),
            };
            if let Some((kind, data)) = cache.get(&self.checksum, base_offset) {
                scratch.base.clear();
                scratch.base.extend_from_slice(data);
                break kind;
            }
            let base = self.entry_at(base_offset)?;
            if let Source::Whole(kind) = base.source {
                self.inflate(base_offset, base, limit, &mut scratch.base)?;
                cache.insert(&self.checksum, base_offset, kind, &scratch.base);
                break kind;
            }
            link = Link {
                offset: base_offset,
                entry: base,
            };
        };
        // A delta's instructions are a little longer than its result at worst.
        let delta_limit = limit.saturating_mul(2).saturating_add(1024);
        while let Some(link) = scratch.chain.pop() {
            self.inflate(link.offset, link.entry, delta_limit, &mut scratch.delta)?;
            let last = scratch.chain.is_empty();
            let target = if last { &mut *out } else { &mut scratch.result };
            delta::apply(&scratch.base, &scratch.delta, limit, target).map_err(|source| {
                Error::Delta {
                    path: self.path.clone(),
                    offset: link.offset,
                    source,
                }
            })?;
            cache.insert(&self.checksum, link.offset, kind, target);
            if !last {
                std::mem::swap(&mut scratch.base, &mut scratch.result);
            }
        }
        Ok(kind)
    }

    /// Inflate the zlib stream of `entry` (at `offset`) into `out` (cleared first): exactly
    /// its declared size, which must not exceed `limit`.
    fn inflate(
        &mut self,
        offset: u64,
        entry: Entry,
        limit: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let too_large = || Error::TooLarge {
            path: self.path.clone(),
            offset,
            size: entry.size,
            limit,
        };
        if entry.size > limit {
            return Err(too_large());
        }
        let size = usize::try_from(entry.size).map_err(|_| too_large())?;
        out.clear();
        out.try_reserve_exact(size.saturating_add(INFLATE_SLACK))
            .map_err(|_| too_large())?;
        let data_end = self.data_end();
        let Self {
            file,
            windows,
            inflater,
            path,
            ..
        } = self;
        let corrupt = |reason| Error::Corrupt {
            path: path.clone(),
            offset,
            reason,
        };
        // An entry too big for the windows is streamed through its own buffer.
        let mut direct = (size > windows.max_want()).then(Vec::new);
        inflater.reset(true);
        let mut at = entry.data_at;
        loop {
            let input: &[u8] = match direct.as_mut() {
                Some(chunk) => {
                    let len = usize::try_from(data_end.saturating_sub(at).min(DIRECT_CHUNK_LEN))
                        .expect("at most 1 MiB");
                    chunk.resize(len, 0);
                    file.read_exact_at(chunk, at).map_err(io_err(path))?;
                    chunk
                }
                None => windows.slice(file, data_end, at, 1).map_err(io_err(path))?,
            };
            if input.is_empty() {
                return Err(corrupt("zlib stream runs past the end of the pack data"));
            }
            let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
            let status = if out.len() < size {
                inflater.decompress_vec(input, out, FlushDecompress::None)
            } else {
                // Full: any further byte is one too many, but the stream must still end.
                let mut tail = [0u8; 1];
                inflater.decompress(input, &mut tail, FlushDecompress::None)
            }
            .map_err(|source| Error::Inflate {
                path: path.clone(),
                offset,
                source,
            })?;
            let consumed = inflater.total_in() - in_before;
            at += consumed;
            if inflater.total_out() > size as u64 {
                return Err(corrupt("zlib stream is longer than the declared size"));
            }
            match status {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError => {
                    if consumed == 0 && inflater.total_out() == out_before {
                        return Err(corrupt("zlib stream makes no progress"));
                    }
                }
            }
        }
        if out.len() != size {
            return Err(corrupt("zlib stream is shorter than the declared size"));
        }
        Ok(())
    }
}
