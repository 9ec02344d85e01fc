//! Owns reading objects from one pack file ([`PackFile`]): opening and checking it against
//! its index, and reads by id or by index position, through a few large read windows
//! (`window.rs`), with a caller-owned [`DeltaBaseCache`] (`cache.rs`) that keeps delta bases
//! and recently read objects. Entry parsing, inflating and delta chains are in `entry.rs`.
//!
//! Invariants:
//! - A [`PackFile`] exists only once its index validated and the pack agrees with it: the
//!   header says `PACK`, version 2 and the index's object count, the file holds at least a
//!   header and a trailer, and the trailer equals the pack checksum recorded in the index.
//! - What is verified when. On open: the index's structure (magic, version, fan-out, length,
//!   ids sorted and in their buckets, large offsets in range: [`PackIndex`]) and the pack's
//!   header and trailer as above; neither file is hashed, as git does not hash them on open
//!   (`check_packed_git_idx`, `open_packed_git_1` in packfile.c): hashing a 1M-object index
//!   cost more than a quarter of reading the whole topic it indexes. On every read: an
//!   entry's header, its zlib stream (Adler-32, checked for stored entries as zlib checks it
//!   for deflated ones) and its declared size, every delta instruction against its base and
//!   result. On request only ([`PackFile::verify_checksum()`], as `git verify-pack` does):
//!   the SHA-1 of the whole pack and of the whole index against their trailers. A damaged
//!   CRC-32 table (which reads never use) or a wrong offset that still lands on a valid
//!   entry is caught there; a wrong offset elsewhere is a corrupt-entry error on read.
//! - Every size read from disk (entry sizes, delta result sizes) is checked against
//!   [`Options::max_object_size`] before anything is allocated for it, and an inflated
//!   entry must have exactly its declared size.
//! - Delta chains are resolved iteratively, at most [`Options::max_chain_len`] deep, so a
//!   cycle of REF_DELTA entries ends in an error, not a hang.
//! - A REF_DELTA whose base is not in the same pack is [`Error::BaseOutsidePack`]: git only
//!   keeps self-contained packs in `objects/pack/` (`index-pack --fix-thin` completes thin
//!   ones), so this is corruption, not something to resolve through other packs.
//! - Bytes come from a read-only mapping of the pack ([`Options::map`], the default; the
//!   crate's one `unsafe` block, with its SAFETY proof, is `window::map_pack`), or else from
//!   `pread` into [`Options::max_windows`] windows of [`Options::window_size`] bytes (see
//!   `window.rs`), so reading many small entries near each other costs one system call per
//!   window. Either way a read is bounded by the pack data. An entry larger than half a
//!   window is streamed through its own buffer instead, leaving the windows to the small
//!   entries.
//!
//! Entry layout (see [`super::format`]): a type+size header, then the base distance
//! (OFS_DELTA) or base id (REF_DELTA), then a zlib stream; git's reader is `unpack_entry` in
//! [`packfile.c`](https://github.com/git/git/blob/v2.47.0/packfile.c).

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

mod borrowed;
pub mod cache;
mod entry;
mod order;
mod window;

use std::{
    fs::File,
    io::{self, Read},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use flate2::Decompress;
use gix_hash::{oid, ObjectId};

pub use borrowed::VERIFY_STORED_CHECKSUM;
pub use cache::{DeltaBaseCache, DEFAULT_CACHE_BYTES};
use entry::Scratch;
use window::Windows;

use super::{
    delta,
    format::{read_u32, HASH_LEN, IDX_HEADER_LEN, PACK_HEADER_LEN, PACK_SIGNATURE, PACK_VERSION},
    index::{self, PackIndex},
};
use crate::{git::hash, git::odb::hand_inflate, git::odb::loose::DEFAULT_MAX_OBJECT_SIZE};

/// The default size of one read window (4 MiB).
pub const DEFAULT_WINDOW_SIZE: usize = 256 << 10;
/// The default number of read windows per pack.
pub const DEFAULT_MAX_WINDOWS: usize = 8;
/// The default longest delta chain followed (git's `repack --depth` tops out at 4095).
pub const DEFAULT_MAX_CHAIN_LEN: usize = 10_000;

/// The smallest window size used, whatever [`Options::window_size`] says.
const MIN_WINDOW_SIZE: usize = 4096;
/// The read size when streaming an entry too large for the windows.
const DIRECT_CHUNK_LEN: u64 = 1 << 20;
/// Index bytes per object at most: id, CRC, offset and a large offset.
const IDX_MAX_BYTES_PER_OBJECT: u64 = (HASH_LEN + 4 + 4 + 8) as u64;
/// Index bytes besides the per-object tables: header, fan-out and the two checksums.
const IDX_FIXED_LEN: u64 = (IDX_HEADER_LEN + 2 * HASH_LEN) as u64;

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
    /// Map each pack read-only instead of reading it into windows (see
    /// `read::window`'s header and its SAFETY proof). On by default; the environment
    /// variable `GITMQ_PACK_MMAP=0` turns it off (for comparisons).
    pub map: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            window_size: DEFAULT_WINDOW_SIZE,
            max_windows: DEFAULT_MAX_WINDOWS,
            max_object_size: DEFAULT_MAX_OBJECT_SIZE,
            max_chain_len: DEFAULT_MAX_CHAIN_LEN,
            verify_ids: false,
            map: map_by_default(),
        }
    }
}

/// Whether packs are mapped unless the options say otherwise: yes, unless
/// `GITMQ_PACK_MMAP=0` (read once per process).
fn map_by_default() -> bool {
    static MAP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MAP.get_or_init(|| std::env::var_os("GITMQ_PACK_MMAP").is_none_or(|v| v != "0"))
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
    /// The walk's prefix reads of compressed commits (`borrowed.rs`).
    prefix: Box<hand_inflate::PrefixDecoder>,
    /// Whole reads of small compressed objects (`entry.rs`).
    whole: Box<hand_inflate::WholeDecoder>,
    scratch: Scratch,
    /// Entries by offset, built on first use.
    order: Option<order::PackOrder>,
}

/// Lifecycle
impl PackFile {
    /// Open the pack at `pack_path` and the `.idx` beside it, with default [`Options`].
    pub fn open(pack_path: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::open_with(pack_path, Options::default())
    }

    /// Open the pack at `pack_path` and the `.idx` beside it. Neither file is hashed (see
    /// the module header for what is checked when).
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
                options.map,
            ),
            options,
            inflater: Decompress::new(true),
            prefix: Box::default(),
            whole: Box::default(),
            scratch: Scratch::default(),
            order: None,
        })
    }
}

/// The memory a pack whose index is `index_len` bytes may hold once in use, its windows at
/// their largest (see [`PackFile::footprint()`]): known from the index file's size before
/// opening it.
pub fn footprint_of(index_len: u64, options: Options) -> usize {
    let objects = index_len.saturating_sub(IDX_FIXED_LEN) / (HASH_LEN as u64 + 4 + 4);
    let order = order::bytes_for(u32::try_from(objects).unwrap_or(u32::MAX));
    let windows = options.window_size.max(MIN_WINDOW_SIZE) * options.max_windows.max(1);
    usize::try_from(index_len)
        .unwrap_or(usize::MAX)
        .saturating_add(order)
        .saturating_add(windows)
}

/// Read and validate the structure of the index of a pack of `pack_len` bytes (its checksum
/// is left to [`PackFile::verify_checksum()`]). Every object takes at least one pack byte,
/// so a longer index than that many objects need is refused unread.
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
    PackIndex::from_bytes_with_trusted_checksum(data).map_err(invalid)
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

    /// The memory this pack may hold: its index, its pack order (built on first use) and,
    /// unless they were released, its read windows at their largest.
    pub fn footprint(&self) -> usize {
        let index = self.index.byte_len();
        let windows = if self.windows.bytes() == 0 {
            0
        } else {
            (self.options.window_size.max(MIN_WINDOW_SIZE) * self.options.max_windows.max(1))
                .max(self.windows.mapped_len())
        };
        index + order::bytes_for(self.index.len()) + windows
    }

    /// Drop the read windows (they are read again when needed): the memory a pack holds
    /// while another one is being read.
    pub fn release_windows(&mut self) {
        self.windows.release();
    }

    /// Drop the read windows, handing their buffers to `next`'s windows (see
    /// [`PackSet`](super::set::PackSet): reads moving from this pack to `next`).
    pub(crate) fn hand_windows_to(&mut self, next: &mut PackFile) {
        next.windows.adopt_buffers(self.windows.take_buffers());
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

    /// Hash the whole index and the whole pack and compare each with its trailer (and the
    /// pack's with the checksum the index records): a full integrity check, which
    /// [`open()`](Self::open) skips because it reads every byte of both.
    pub fn verify_checksum(&self) -> Result<(), Error> {
        self.index
            .verify_checksum()
            .map_err(|source| Error::Index {
                path: self.path.with_extension("idx"),
                source,
            })?;
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
