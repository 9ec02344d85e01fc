//! Owns git's multi-pack-index (MIDX): one sorted table of the objects of many packs, so a
//! lookup costs one search per MIDX layer instead of one per pack, and packs are never copied
//! or re-hashed to keep lookups fast (that was consolidation's job; see [`chain`]).
//!
//! Layout of one MIDX file (git's `Documentation/gitformat-pack.txt`, "multi-pack-index
//! files", and `gitformat-chunk.txt`; git's `midx.c`/`midx-write.c` at v2.47.3). All numbers
//! are big-endian:
//!
//! ```text
//! offset 0    "MIDX"                                MIDX_SIGNATURE
//! offset 4    u8 version = 1                        MIDX_VERSION
//! offset 5    u8 hash version (1 = SHA-1)           HASH_VERSION_SHA1
//! offset 6    u8 number of chunks C
//! offset 7    u8 number of base MIDX files = 0      (layers of a chain say 0 too)
//! offset 8    u32 number of packs P
//! offset 12   (C + 1) x { 4-byte chunk id, u64 offset }; the last id is 0 and its offset
//!             is where the last chunk ends
//! chunks, in the order gitmq writes them:
//!   PNAM  the packs' index names ("pack-<hex>.idx"), NUL-terminated, sorted, padded with
//!         NULs to a multiple of 4; pack-int-id i is the i-th name
//!   OIDF  256 x u32 fan-out: ids whose first byte <= i
//!   OIDL  N x 20-byte ids, strictly increasing
//!   OOFF  N x { u32 pack-int-id, u32 offset }; with LOFF present, an offset with the MSB set
//!         is an index into LOFF
//!   LOFF  (only when some offset is >= 2^31) M x u64 offsets
//! trailer     SHA-1 of everything before it (the file's checksum)
//! ```
//!
//! A chain (git 2.47's incremental MIDX) is `objects/pack/multi-pack-index.d/`: the file
//! `multi-pack-index-chain` lists layer checksums oldest first, one hex line each, and layer
//! `<checksum>` is `multi-pack-index-<checksum>.midx` there, a MIDX file as above whose
//! pack-int-ids count from 0 within the layer. When `objects/pack/multi-pack-index` exists,
//! git reads it and not the chain; gitmq's reader does the same, and gitmq's writer (like
//! `git multi-pack-index write --incremental`) removes it when it commits a chain.
//!
//! Modules: [`mod@write`] merges sorted sources (pack indexes, layers) into one MIDX file;
//! [`chain`] keeps the chain up to date (the producer's background step); [`read`] looks ids
//! up in it, in bounded memory (4 bytes per object, no file read whole).

pub mod chain;
pub mod read;
pub mod write;

use std::{
    io,
    path::{Path, PathBuf},
};

use gix_hash::ObjectId;

/// The first four bytes of a MIDX file.
pub const MIDX_SIGNATURE: [u8; 4] = *b"MIDX";
/// The only MIDX version git writes or reads.
pub const MIDX_VERSION: u8 = 1;
/// The hash version byte of a SHA-1 repository.
pub const HASH_VERSION_SHA1: u8 = 1;
/// Signature, versions, chunk count, base count and pack count.
pub const HEADER_LEN: usize = 12;
/// One table-of-contents row: chunk id and offset.
pub const TOC_ENTRY_LEN: usize = 12;
/// Chunks start at multiples of this.
pub const CHUNK_ALIGNMENT: usize = 4;
/// Pack names.
pub const CHUNK_PACK_NAMES: [u8; 4] = *b"PNAM";
/// Fan-out table.
pub const CHUNK_OID_FANOUT: [u8; 4] = *b"OIDF";
/// Sorted ids.
pub const CHUNK_OID_LOOKUP: [u8; 4] = *b"OIDL";
/// Pack-int-id and offset of each object.
pub const CHUNK_OBJECT_OFFSETS: [u8; 4] = *b"OOFF";
/// 64-bit offsets.
pub const CHUNK_LARGE_OFFSETS: [u8; 4] = *b"LOFF";
/// One OOFF row.
pub const OFFSET_ENTRY_LEN: usize = 8;
/// Set in an OOFF offset that indexes LOFF (when LOFF exists).
pub const LARGE_OFFSET_NEEDED: u32 = 0x8000_0000;
/// Most chunks a reader accepts (git writes at most 7).
pub const MAX_CHUNKS: usize = 32;

/// The single (non-incremental) MIDX, in `objects/pack`.
pub const MIDX_FILE: &str = "multi-pack-index";
/// The directory of a chain's layers, in `objects/pack`.
pub const CHAIN_DIR: &str = "multi-pack-index.d";
/// The chain file, in [`CHAIN_DIR`].
pub const CHAIN_FILE: &str = "multi-pack-index-chain";

/// `objects/pack/multi-pack-index.d/multi-pack-index-<checksum>.midx`.
pub fn layer_path(pack_dir: &Path, checksum: &ObjectId) -> PathBuf {
    pack_dir
        .join(CHAIN_DIR)
        .join(format!("multi-pack-index-{checksum}.midx"))
}

/// `objects/pack/multi-pack-index.d/multi-pack-index-chain`.
pub fn chain_path(pack_dir: &Path) -> PathBuf {
    pack_dir.join(CHAIN_DIR).join(CHAIN_FILE)
}

/// Returned by the MIDX writer and reader.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file system refused.
    #[error("multi-pack-index I/O failed at {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A pack index or MIDX file is not what its format says.
    #[error("{path} is not a valid {what}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// "pack index" or "multi-pack-index".
        what: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Another writer held a lock too long.
    #[error(transparent)]
    Lock(#[from] crate::git::fs::LockError),
    /// The thread running a background update panicked (the chain is as it was, or complete).
    #[error("the multi-pack-index thread panicked")]
    Panicked,
    /// More inputs, packs or objects than one MIDX file can name.
    #[error("a multi-pack-index cannot hold {what}")]
    TooLarge {
        /// What overflowed.
        what: &'static str,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

impl Error {
    fn corrupt(path: &Path, reason: &'static str) -> Self {
        Error::Corrupt {
            path: path.to_owned(),
            what: "multi-pack-index",
            reason,
        }
    }

    fn corrupt_idx(path: &Path, reason: &'static str) -> Self {
        Error::Corrupt {
            path: path.to_owned(),
            what: "pack index",
            reason,
        }
    }
}

/// The parsed head of a MIDX file: its pack names and where its chunks are.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    /// Pack index names, by pack-int-id.
    pub packs: Vec<String>,
    /// Objects (OIDF's last entry).
    pub count: u32,
    /// Where OIDL starts.
    pub ids_at: u64,
    /// Where OOFF starts.
    pub offsets_at: u64,
    /// Where LOFF starts and its entries, if present.
    pub large: Option<(u64, u64)>,
}

/// Read and check the head of the MIDX file `path` (header, chunk table, PNAM, OIDF), without
/// reading its ids: every size is checked against the file's length before anything is
/// allocated.
pub(crate) fn read_head(file: &std::fs::File, path: &Path) -> Result<Head, Error> {
    use std::os::unix::fs::FileExt;
    let bad = |reason| Error::corrupt(path, reason);
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut header = [0u8; HEADER_LEN];
    file.read_exact_at(&mut header, 0)
        .map_err(|_| bad("shorter than its header"))?;
    let [s0, s1, s2, s3, version, hash, chunks, _bases, p0, p1, p2, p3] = header;
    if [s0, s1, s2, s3] != MIDX_SIGNATURE {
        return Err(bad("bad signature"));
    }
    if version != MIDX_VERSION || hash != HASH_VERSION_SHA1 {
        return Err(bad("unknown version or hash"));
    }
    let chunks = usize::from(chunks);
    if chunks > MAX_CHUNKS {
        return Err(bad("too many chunks"));
    }
    let pack_count = u32::from_be_bytes([p0, p1, p2, p3]);
    let mut toc = vec![0u8; (chunks + 1) * TOC_ENTRY_LEN];
    file.read_exact_at(&mut toc, HEADER_LEN as u64)
        .map_err(|_| bad("shorter than its chunk table"))?;
    let trailer_at = len
        .checked_sub(super::format::HASH_LEN as u64)
        .ok_or_else(|| bad("shorter than its checksum"))?;
    let mut found: Vec<([u8; 4], u64, u64)> = Vec::with_capacity(chunks);
    for row in 0..chunks {
        let at = row * TOC_ENTRY_LEN;
        let id = toc
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .ok_or_else(|| bad("chunk table"))?;
        let start = super::format::read_u64(&toc, at + 4).ok_or_else(|| bad("chunk table"))?;
        let end = super::format::read_u64(&toc, at + TOC_ENTRY_LEN + 4)
            .ok_or_else(|| bad("chunk table"))?;
        if id == [0; 4] || start > end || end > trailer_at {
            return Err(bad("chunk offsets out of order or past the end"));
        }
        found.push((id, start, end - start));
    }
    let chunk = |id: [u8; 4]| found.iter().find(|c| c.0 == id).map(|c| (c.1, c.2));
    let (names_at, names_len) = chunk(CHUNK_PACK_NAMES).ok_or_else(|| bad("no PNAM chunk"))?;
    let (fan_at, fan_len) = chunk(CHUNK_OID_FANOUT).ok_or_else(|| bad("no OIDF chunk"))?;
    let (ids_at, ids_len) = chunk(CHUNK_OID_LOOKUP).ok_or_else(|| bad("no OIDL chunk"))?;
    let (offsets_at, offsets_len) =
        chunk(CHUNK_OBJECT_OFFSETS).ok_or_else(|| bad("no OOFF chunk"))?;
    if fan_len != 256 * 4 {
        return Err(bad("OIDF chunk has the wrong size"));
    }
    let mut fan_bytes = [0u8; 256 * 4];
    file.read_exact_at(&mut fan_bytes, fan_at)
        .map_err(io_err(path))?;
    let mut fan = [0u32; 256];
    let mut previous = 0;
    for (slot, bytes) in fan.iter_mut().zip(fan_bytes.chunks_exact(4)) {
        *slot = u32::from_be_bytes(bytes.try_into().expect("chunks of 4"));
        if *slot < previous {
            return Err(bad("fan-out decreases"));
        }
        previous = *slot;
    }
    let count = fan[255];
    if ids_len != u64::from(count) * super::format::HASH_LEN as u64
        || offsets_len != u64::from(count) * OFFSET_ENTRY_LEN as u64
    {
        return Err(bad("OIDL or OOFF size does not match the object count"));
    }
    let large = match chunk(CHUNK_LARGE_OFFSETS) {
        Some((at, size)) if size % 8 == 0 => Some((at, size / 8)),
        Some(_) => return Err(bad("LOFF size is not a multiple of 8")),
        None => None,
    };
    // PNAM: at most ~60 bytes a pack; bounded by the file's length (checked above).
    let mut names = vec![0u8; usize::try_from(names_len).map_err(|_| bad("PNAM too large"))?];
    file.read_exact_at(&mut names, names_at)
        .map_err(io_err(path))?;
    let mut packs = Vec::with_capacity(usize::try_from(pack_count).unwrap_or(0).min(1 << 20));
    let mut rest = names.as_slice();
    for _ in 0..pack_count {
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("PNAM chunk too short"))?;
        let (name, tail) = rest.split_at(end);
        let name = std::str::from_utf8(name).map_err(|_| bad("pack name not UTF-8"))?;
        if packs
            .last()
            .is_some_and(|last: &String| last.as_str() >= name)
        {
            return Err(bad("pack names out of order"));
        }
        packs.push(name.to_owned());
        rest = tail.get(1..).unwrap_or_default();
    }
    Ok(Head {
        packs,
        count,
        ids_at,
        offsets_at,
        large,
    })
}

#[cfg(test)]
mod tests;
