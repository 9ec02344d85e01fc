//! Owns turning a pack received from a remote into a pack and v2 index in `objects/pack/`
//! (what `git index-pack --stdin` does), with every size from the wire bounded by [`Limits`].
//!
//! Two passes, as git's [`index-pack.c`](https://github.com/git/git/blob/v2.47.0/builtin/index-pack.c):
//!
//! 1. **Stream** (`stream.rs`): read the pack once from any [`Read`], copying its bytes into
//!    a temporary file (`tmp_pack_gitmq_*`) while hashing them for the trailer and taking
//!    each entry's CRC-32. Base objects are inflated straight into their object hash, so
//!    their ids are known without keeping their bodies; delta entries are inflated only to
//!    find their end. Every entry's offsets, size and base are recorded (about 80 bytes each).
//! 2. **Resolve** (`resolve.rs`): for each base object that has deltas against it (by
//!    offset for OFS_DELTA, by id for REF_DELTA), re-read it from the temporary file and
//!    walk its delta tree depth first, applying each delta with [`super::delta::apply()`]
//!    and hashing the result. Queue packs have almost no deltas, so this pass is mostly idle.
//!
//! Then the index is built with [`super::write::build_index()`] and the files land in git's
//! order: temporary pack and index written (and synced, with `sync`), pack renamed to
//! `pack-<checksum>.pack`, index renamed to `pack-<checksum>.idx`, directory synced.
//!
//! Invariants: nothing is allocated from a size on the wire before it is checked against
//! [`Limits`]; a hostile, truncated or corrupt pack is an [`Error`], never a panic, and leaves
//! no file behind in `objects/pack/` (temporary files are removed on every error path); the
//! trailer must equal the SHA-1 of the bytes before it, and nothing may follow it. A thin
//! pack (REF_DELTA bases outside the pack) is refused by [`index_pack()`] with
//! [`Error::BaseNotInPack`]; [`index_thin_pack()`] completes it from the local object
//! database first, as `git index-pack --fix-thin` does (`thin.rs`), so what lands in
//! `objects/pack/` is always self-contained.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

mod resolve;
mod stream;
#[cfg(test)]
mod tests;
mod thin;

pub use thin::index_thin_pack;

use std::{
    io::{self, Read},
    path::{Path, PathBuf},
};

use gix_hash::ObjectId;

use super::{
    delta,
    write::{build_index, install, IndexEntry, WrittenPack},
};
use crate::git::{
    fs::{SharedFs, TempFile},
    odb::loose::DEFAULT_MAX_OBJECT_SIZE,
};

/// The default largest pack accepted (8 GiB).
pub const DEFAULT_MAX_PACK_SIZE: u64 = 8 << 30;
/// The default most objects in one pack (about 800 MB of bookkeeping at the limit).
pub const DEFAULT_MAX_OBJECTS: u32 = 10_000_000;
/// The default most bases held at once while resolving deltas (git's `repack --depth` tops
/// out at 4095).
pub const DEFAULT_MAX_CHAIN_LEN: usize = 10_000;
/// The default most bytes of base bodies held at once while resolving deltas (1 GiB).
pub const DEFAULT_MAX_RESOLVE_MEMORY: u64 = 1 << 30;

/// Bounds on what a received pack may make gitmq allocate or store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest object, delta or delta result, in bytes.
    pub max_object_size: u64,
    /// The largest pack, in bytes.
    pub max_pack_size: u64,
    /// The most objects in the pack.
    pub max_objects: u32,
    /// The most bases (with deltas still to resolve) held at once.
    pub max_chain_len: usize,
    /// The most bytes of those bases held at once.
    pub max_resolve_memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_object_size: DEFAULT_MAX_OBJECT_SIZE,
            max_pack_size: DEFAULT_MAX_PACK_SIZE,
            max_objects: DEFAULT_MAX_OBJECTS,
            max_chain_len: DEFAULT_MAX_CHAIN_LEN,
            max_resolve_memory: DEFAULT_MAX_RESOLVE_MEMORY,
        }
    }
}

/// Returned by [`index_pack()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local file system refused.
    #[error("indexing a received pack failed at {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Reading the incoming pack failed.
    #[error("reading the pack failed at byte {offset}")]
    Read {
        /// Bytes of the pack read before the failure.
        offset: u64,
        /// The cause.
        source: io::Error,
    },
    /// The pack ended early.
    #[error("the pack is truncated at byte {offset}")]
    Truncated {
        /// Bytes of the pack received.
        offset: u64,
    },
    /// The header is not `PACK`, version 2.
    #[error("the pack header is invalid: {reason}")]
    BadHeader {
        /// What is wrong.
        reason: &'static str,
    },
    /// The header announces more objects than allowed.
    #[error("the pack announces {count} objects, more than the limit of {limit}")]
    TooManyObjects {
        /// The count in the header.
        count: u32,
        /// The limit.
        limit: u32,
    },
    /// The pack is longer than allowed.
    #[error("the pack exceeds the limit of {limit} bytes")]
    PackTooLarge {
        /// The limit.
        limit: u64,
    },
    /// An entry declares a size above the limit.
    #[error(
        "the pack entry at byte {offset} declares {size} bytes, more than the limit of {limit}"
    )]
    ObjectTooLarge {
        /// The entry's offset.
        offset: u64,
        /// The declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An entry is malformed.
    #[error("the pack entry at byte {offset} is invalid: {reason}")]
    BadEntry {
        /// The entry's offset.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// An entry's zlib stream is corrupt.
    #[error("the pack entry at byte {offset} has a corrupt zlib stream")]
    Zlib {
        /// The entry's offset.
        offset: u64,
        /// The cause.
        source: flate2::DecompressError,
    },
    /// An entry inflates to another size than its header says.
    #[error("the pack entry at byte {offset} declares {declared} bytes but inflates to {actual}")]
    SizeMismatch {
        /// The entry's offset.
        offset: u64,
        /// The declared size.
        declared: u64,
        /// The inflated size (so far).
        actual: u64,
    },
    /// The trailer is not the SHA-1 of the pack.
    #[error("the pack checksum does not match: trailer {trailer}, content {actual}")]
    ChecksumMismatch {
        /// The trailer received.
        trailer: ObjectId,
        /// The SHA-1 of the bytes received.
        actual: ObjectId,
    },
    /// Bytes follow the trailer.
    #[error("unexpected data after the pack trailer at byte {offset}")]
    TrailingData {
        /// Where the trailer ended.
        offset: u64,
    },
    /// A delta does not apply to its base.
    #[error("the delta at byte {offset} does not apply")]
    Delta {
        /// The entry's offset.
        offset: u64,
        /// The cause.
        source: delta::Error,
    },
    /// A REF_DELTA's base is not in the pack (a thin pack given to [`index_pack()`], which
    /// has no local objects to complete it with).
    #[error("the delta at byte {offset} needs base {base}, which is not in the pack")]
    BaseNotInPack {
        /// The entry's offset.
        offset: u64,
        /// The missing base.
        base: ObjectId,
    },
    /// A thin pack's REF_DELTA base is neither in the pack nor in the local repository.
    #[error(
        "the thin pack's delta at byte {offset} needs base {base}, which is neither in the pack \
         nor in the local repository"
    )]
    MissingBase {
        /// The delta entry's offset.
        offset: u64,
        /// The missing base.
        base: ObjectId,
    },
    /// Reading a thin pack's base from the local repository failed.
    #[error("reading base {base} of a thin pack from the local repository failed")]
    LocalBase {
        /// The base.
        base: ObjectId,
        /// The cause.
        source: Box<crate::git::odb::Error>,
    },
    /// A local object read to complete a thin pack does not hash to its id.
    #[error("local object {base} is corrupt: its content hashes to {actual}")]
    CorruptLocalBase {
        /// The base, as the delta names it.
        base: ObjectId,
        /// What its content hashes to.
        actual: ObjectId,
    },
    /// Deltas that reach no base object (a cycle of REF_DELTAs).
    #[error("{count} deltas could not be resolved (their bases form a cycle)")]
    UnresolvedDeltas {
        /// How many.
        count: usize,
    },
    /// Resolving a delta tree needs more bases held at once than allowed.
    #[error(
        "resolving the deltas through byte {offset} needs more than {limit} bases or {memory} \
         bytes held at once"
    )]
    ChainTooLong {
        /// An entry on the chain.
        offset: u64,
        /// The limit on bases held.
        limit: usize,
        /// The limit on their bytes.
        memory: u64,
    },
    /// The same object appears twice.
    #[error("object {id} appears twice in the pack")]
    Duplicate {
        /// The object.
        id: ObjectId,
    },
    /// Putting the indexed pack in place failed.
    #[error(transparent)]
    Install(#[from] super::write::Error),
}

impl Error {
    /// Whether fetching again may succeed (the stream broke; the pack itself was not bad).
    pub fn is_spurious(&self) -> bool {
        matches!(self, Error::Read { .. } | Error::Truncated { .. })
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// What an entry is, as far as the stream pass knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    /// A whole object; its id is known after the stream pass.
    None,
    /// A delta against the entry at this offset.
    Offset(u64),
    /// A delta against the object with this id.
    Id(ObjectId),
}

/// One entry as recorded by the stream pass.
#[derive(Debug, Clone)]
struct Entry {
    /// Where the entry's header starts.
    offset: u64,
    /// Where its zlib stream starts.
    data_offset: u64,
    /// Where its zlib stream ends (the next entry's offset).
    end: u64,
    /// The inflated size of the zlib stream (object body or delta).
    size: u64,
    crc32: u32,
    base: Base,
    /// The object's kind: known for base objects, set for deltas when resolved.
    kind: Option<gix_object::Kind>,
    /// The object's id: known for base objects, set for deltas when resolved.
    id: Option<ObjectId>,
}

/// A received pack, indexed and in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    /// The pack checksum (its trailer), which names its files.
    pub checksum: ObjectId,
    /// How many objects the pack holds.
    pub objects: u32,
    /// How many of them were stored as deltas.
    pub deltas: u32,
    /// The pack's size in bytes (as written: with the bases appended to a thin pack).
    pub bytes: u64,
    /// How many objects were appended from the local repository to complete a thin pack.
    pub local_bases: u32,
    /// Where the pack and index landed; `None` for a pack without objects, which is not kept.
    pub written: Option<WrittenPack>,
}

/// Read a pack from `input`, check it, compute every object's id, and write it with its v2
/// index into `pack_dir` (`objects/pack`). With `sync`, the files and the directory are
/// fsynced before this returns, so a ref may name the objects at once.
pub fn index_pack(
    fs: &SharedFs,
    input: impl Read,
    pack_dir: &Path,
    limits: &Limits,
    sync: bool,
) -> Result<IndexedPack, Error> {
    index(fs, input, pack_dir, limits, sync, None)
}

/// [`index_pack()`], completing a thin pack from `local` (see [`index_thin_pack()`]) when it
/// is given.
fn index(
    fs: &SharedFs,
    input: impl Read,
    pack_dir: &Path,
    limits: &Limits,
    sync: bool,
    local: Option<&mut crate::git::odb::Odb>,
) -> Result<IndexedPack, Error> {
    let file = TempFile::create_in(fs, pack_dir, "pack").map_err(io_err(pack_dir))?;
    let mut streamed = stream::read_pack(input, file, limits)?;
    let tmp_pack = streamed.file.path().to_owned();
    let mut entries = std::mem::take(&mut streamed.entries);
    let mut resolver = resolve::Resolver::new(streamed.file.file(), &tmp_pack, &entries, limits)?;
    resolver.resolve_in_pack(&mut entries)?;
    let mut local_bases = 0;
    if let Some(local) = local.filter(|_| resolver.unresolved() > 0) {
        let pack = thin::Pack {
            file: streamed.file.file(),
            path: &tmp_pack,
            len: streamed.bytes,
        };
        let completed = thin::complete(&pack, &mut entries, &mut resolver, local, limits)?;
        (streamed.checksum, streamed.bytes) = (completed.checksum, completed.bytes);
        local_bases = completed.appended;
    }
    let deltas = resolver.finish(&entries)?;
    let objects = u32::try_from(entries.len()).expect("BUG: at most max_objects (u32) entries");

    let mut index_entries = entries
        .iter()
        .map(|e| IndexEntry {
            id: e
                .id
                .expect("BUG: resolve_deltas leaves every entry with an id"),
            offset: e.offset,
            crc32: e.crc32,
        })
        .collect::<Vec<_>>();
    drop(entries);
    let index = build_index(&mut index_entries, &streamed.checksum);
    if let Some(pair) = index_entries
        .windows(2)
        .find(|w| w.first().map(|e| e.id) == w.get(1).map(|e| e.id))
    {
        let id = pair.first().map(|e| e.id).expect("BUG: windows of 2");
        return Err(Error::Duplicate { id });
    }
    let result = IndexedPack {
        checksum: streamed.checksum,
        objects,
        deltas,
        bytes: streamed.bytes,
        local_bases,
        written: None,
    };
    if objects == 0 {
        return Ok(result);
    }
    let written = install(fs, pack_dir, streamed.file, &result.checksum, &index, sync)?;
    Ok(IndexedPack {
        written: Some(written),
        ..result
    })
}
