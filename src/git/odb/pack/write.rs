//! Owns building a pack in memory and writing it, with its v2 index, into `objects/pack/`.
//!
//! This is the producer's hot path, written by hand: a batch appends each object as an entry
//! (type+size header, then a zlib stream: stored blocks or deflate), recording its id, offset
//! and CRC-32; [`PackBuilder::seal()`] then knows the object count, so the header is written
//! once (no fast-import-style re-read); [`SealedPack::finish()`] computes the trailer SHA-1 in
//! one pass over the bytes in memory (on whichever thread flushes) and builds the index from the
//! recorded entries.
//!
//! Invariants: [`write_pack_files()`] writes the pack and index to temporary files, syncs them
//! when asked, renames the pack first and the index second (readers look for the index), and
//! syncs `objects/pack/` when asked, all before it returns: whoever moves a ref afterwards names
//! only objects in a complete, indexed pack.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use gix_hash::ObjectId;

use super::format::{
    encode_entry_header, EntryKind, FAN_LEN, HASH_LEN, IDX_V2_MAGIC, IDX_VERSION,
    LARGE_OFFSET_FLAG, MAX_ENTRY_HEADER_LEN, PACK_HEADER_LEN, PACK_SIGNATURE, PACK_VERSION,
};
use crate::git::hash::Hasher;

/// The largest payload of one stored (uncompressed) deflate block.
const MAX_STORED_BLOCK: usize = 65_535;
/// zlib header for a stream made of stored blocks (CMF 0x78, FLG 0x01: `(0x7801 % 31) == 0`).
const ZLIB_STORED_HEADER: [u8; 2] = [0x78, 0x01];

/// Returned by [`write_pack_files()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file system refused.
    #[error("writing pack files failed at {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// How object data is compressed inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Stored zlib blocks: valid zlib that any git reads, at memcpy speed. The default: for
    /// ~150-byte messages deflate costs 7x-20x more than everything else and saves 26-43%.
    #[default]
    Stored,
    /// Deflate at this level (1 fastest ... 9 smallest).
    Deflate(u8),
}

/// One entry of a pack as its index records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The object id.
    pub id: ObjectId,
    /// The entry's offset in the pack.
    pub offset: u64,
    /// CRC-32 of the entry's raw bytes (header and zlib stream).
    pub crc32: u32,
}

/// A pack being built in memory: entries are appended, then [`seal()`](Self::seal) seals it.
#[derive(Debug)]
pub struct PackBuilder {
    /// The pack's bytes so far, starting with a header whose count is filled in at the end.
    pack: Vec<u8>,
    entries: Vec<IndexEntry>,
    /// `None` for stored blocks.
    deflate: Option<flate2::Compress>,
    level: u32,
}

/// A pack whose header is final, whose trailer and index are not computed yet.
#[derive(Debug)]
pub struct SealedPack {
    /// The pack's bytes without the trailer.
    pub bytes: Vec<u8>,
    /// The entries in pack order.
    pub entries: Vec<IndexEntry>,
}

/// What [`SealedPack::finish()`] computes: the checksum that names the pack, and its index.
#[derive(Debug)]
pub struct PackFiles {
    /// The pack checksum (SHA-1 of [`SealedPack::bytes`]), which is also its trailer.
    pub checksum: ObjectId,
    /// The `.idx` file's bytes.
    pub index: Vec<u8>,
}

impl SealedPack {
    /// Hash the pack and build its index.
    pub fn finish(&self) -> PackFiles {
        let mut hasher = Hasher::new();
        hasher.update(&self.bytes);
        let checksum = hasher.finalize();
        let mut entries = self.entries.clone();
        let index = build_index(&mut entries, &checksum);
        PackFiles { checksum, index }
    }
}

/// Lifecycle
impl PackBuilder {
    /// An empty pack whose entries are compressed per `compression`.
    pub fn new(compression: Compression) -> Self {
        let mut pack = Vec::with_capacity(1 << 16);
        pack.extend_from_slice(&[0; PACK_HEADER_LEN]);
        Self {
            pack,
            entries: Vec::new(),
            level: match compression {
                Compression::Stored => 0,
                Compression::Deflate(level) => u32::from(level.clamp(1, 9)),
            },
            deflate: match compression {
                Compression::Stored => None,
                Compression::Deflate(level) => Some(flate2::Compress::new(
                    flate2::Compression::new(u32::from(level.min(9))),
                    true,
                )),
            },
        }
    }

    /// Forget every entry, keeping the allocations.
    pub fn clear(&mut self) {
        self.pack.truncate(PACK_HEADER_LEN);
        self.entries.clear();
    }
}

/// Building
impl PackBuilder {
    /// Append the object `id` of `kind` with `body`. The caller computed `id` from the same
    /// bytes (it hashes while it serializes); the builder does not check it.
    pub fn add(&mut self, id: ObjectId, kind: gix_object::Kind, body: &[u8]) {
        let start = self.pack.len();
        let mut header = [0u8; MAX_ENTRY_HEADER_LEN];
        let header_len = encode_entry_header(&mut header, EntryKind::Base(kind), body.len() as u64);
        self.pack.extend_from_slice(&header[..header_len]);
        match &mut self.deflate {
            None => append_zlib_stored(&mut self.pack, body),
            Some(deflate) => append_zlib_deflated(&mut self.pack, deflate, body),
        }
        let mut crc = flate2::Crc::new();
        crc.update(&self.pack[start..]);
        self.entries.push(IndexEntry {
            id,
            offset: start as u64,
            crc32: crc.sum(),
        });
    }

    /// Append an entry whose raw bytes (header and zlib stream) and CRC are already known, as
    /// when copying entries from another pack during consolidation.
    pub fn add_raw(&mut self, id: ObjectId, raw_entry: &[u8], crc32: u32) {
        let offset = self.pack.len() as u64;
        self.pack.extend_from_slice(raw_entry);
        self.entries.push(IndexEntry { id, offset, crc32 });
    }

    /// Append pre-built entries: `raw` holds them back to back, and `entries` their ids, CRCs
    /// and offsets relative to the start of `raw`.
    pub fn extend_raw(&mut self, raw: &[u8], entries: &[IndexEntry]) {
        let base = self.pack.len() as u64;
        self.pack.extend_from_slice(raw);
        self.entries.extend(entries.iter().map(|e| IndexEntry {
            offset: base + e.offset,
            ..*e
        }));
    }

    /// Seal the pack: write the header with the final count and hand the bytes over. The
    /// builder is left empty for the next batch, writing into `next_buffer` (pass a buffer
    /// of an earlier, written pack: reusing it spares the page faults of fresh memory).
    pub fn seal(&mut self, mut next_buffer: Vec<u8>) -> SealedPack {
        let count = u32::try_from(self.entries.len()).expect("BUG: a batch holds < 2^32 objects");
        self.pack[..4].copy_from_slice(&PACK_SIGNATURE);
        self.pack[4..8].copy_from_slice(&PACK_VERSION.to_be_bytes());
        self.pack[8..12].copy_from_slice(&count.to_be_bytes());
        next_buffer.clear();
        next_buffer.reserve(self.pack.capacity());
        next_buffer.extend_from_slice(&[0; PACK_HEADER_LEN]);
        let bytes = std::mem::replace(&mut self.pack, next_buffer);
        let entries = std::mem::take(&mut self.entries);
        SealedPack { bytes, entries }
    }

    /// Give back the bytes of a sealed pack that was written, to build the next one in
    /// (spares the page faults of fresh memory). Ignored unless the builder is empty.
    pub fn reuse(&mut self, mut bytes: Vec<u8>) {
        if self.entries.is_empty() && bytes.capacity() > self.pack.capacity() {
            bytes.clear();
            bytes.extend_from_slice(&[0; PACK_HEADER_LEN]);
            self.pack = bytes;
        }
    }

    /// The compression of new entries.
    pub fn deflate_level(&self) -> Option<u32> {
        self.deflate.as_ref().map(|_| self.level)
    }
}

/// Access
impl PackBuilder {
    /// How many objects were added.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no object was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pack's size so far, in bytes.
    pub fn byte_len(&self) -> usize {
        self.pack.len()
    }
}

/// Append `data` as a zlib stream of stored (uncompressed) deflate blocks.
pub fn append_zlib_stored(out: &mut Vec<u8>, data: &[u8]) {
    let blocks = data.len().div_ceil(MAX_STORED_BLOCK).max(1);
    out.reserve(2 + blocks * 5 + data.len() + 4);
    out.extend_from_slice(&ZLIB_STORED_HEADER);
    let mut chunks = data.chunks(MAX_STORED_BLOCK).peekable();
    if chunks.peek().is_none() {
        // An empty stream is one empty final block.
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let is_final = chunks.peek().is_none();
        let len = u16::try_from(chunk.len()).expect("chunks are at most 65,535 bytes");
        let [len_hi, len_lo] = len.to_be_bytes();
        let [nlen_hi, nlen_lo] = (!len).to_be_bytes();
        // Deflate stores LEN and NLEN least significant byte first.
        out.extend_from_slice(&[u8::from(is_final), len_lo, len_hi, nlen_lo, nlen_hi]);
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&zlib_rs::adler32::adler32(1, data).to_be_bytes());
}

/// Append `data` as a zlib stream compressed by `deflate` (which is reset first).
pub fn append_zlib_deflated(out: &mut Vec<u8>, deflate: &mut flate2::Compress, data: &[u8]) {
    deflate.reset();
    // zlib's compressBound for small inputs, plus room for the header and trailer.
    out.reserve(data.len() + data.len() / 1000 + 64);
    loop {
        let consumed = usize::try_from(deflate.total_in()).expect("fits: bounded by data.len()");
        let status = deflate
            .compress_vec(&data[consumed..], out, flate2::FlushCompress::Finish)
            .expect("BUG: deflate of an in-memory buffer cannot fail");
        if status == flate2::Status::StreamEnd {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
}

/// Build a v2 index for `entries` (sorted here by id) of the pack with `pack_checksum`.
pub fn build_index(entries: &mut [IndexEntry], pack_checksum: &ObjectId) -> Vec<u8> {
    entries.sort_unstable_by_key(|e| e.id);
    let n = entries.len();
    let mut out = Vec::with_capacity(8 + FAN_LEN * 4 + n * (HASH_LEN + 8) + 2 * HASH_LEN);
    out.extend_from_slice(&IDX_V2_MAGIC);
    out.extend_from_slice(&IDX_VERSION.to_be_bytes());
    let mut fan = [0u32; FAN_LEN];
    for entry in entries.iter() {
        fan[usize::from(entry.id.as_bytes()[0])] += 1;
    }
    let mut total = 0u32;
    for count in fan {
        total += count;
        out.extend_from_slice(&total.to_be_bytes());
    }
    for entry in entries.iter() {
        out.extend_from_slice(entry.id.as_bytes());
    }
    for entry in entries.iter() {
        out.extend_from_slice(&entry.crc32.to_be_bytes());
    }
    let mut large = Vec::new();
    for entry in entries.iter() {
        let small = match u32::try_from(entry.offset) {
            Ok(offset) if offset < LARGE_OFFSET_FLAG => offset,
            _ => {
                let slot = u32::try_from(large.len()).expect("fewer than 2^31 large offsets");
                large.push(entry.offset);
                LARGE_OFFSET_FLAG | slot
            }
        };
        out.extend_from_slice(&small.to_be_bytes());
    }
    for offset in large {
        out.extend_from_slice(&offset.to_be_bytes());
    }
    out.extend_from_slice(pack_checksum.as_bytes());
    let mut hasher = Hasher::new();
    hasher.update(&out);
    out.extend_from_slice(hasher.finalize().as_bytes());
    out
}

/// Where a written pack landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenPack {
    /// `objects/pack/pack-<checksum>.pack`.
    pub pack_path: PathBuf,
    /// `objects/pack/pack-<checksum>.idx`.
    pub index_path: PathBuf,
}

/// Write `sealed` and its `files` into `pack_dir` as `pack-<checksum>.{pack,idx}`: temporary
/// files, synced when `sync`, renamed pack first then index, and the directory synced when
/// `sync`.
pub fn write_pack_files(
    pack_dir: &Path,
    sealed: &SealedPack,
    files: &PackFiles,
    sync: bool,
) -> Result<WrittenPack, Error> {
    let name = format!("pack-{}", files.checksum);
    let pack_path = pack_dir.join(format!("{name}.pack"));
    let index_path = pack_dir.join(format!("{name}.idx"));
    let tmp_pack = temp_path(pack_dir, "pack");
    let tmp_index = temp_path(pack_dir, "idx");
    let result = (|| {
        write_file(&tmp_pack, &[&sealed.bytes, files.checksum.as_bytes()], sync)?;
        write_file(&tmp_index, &[&files.index], sync)?;
        fs::rename(&tmp_pack, &pack_path).map_err(io_err(&pack_path))?;
        fs::rename(&tmp_index, &index_path).map_err(io_err(&index_path))?;
        if sync {
            crate::git::fs::sync_dir(pack_dir).map_err(io_err(pack_dir))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp_pack);
        let _ = fs::remove_file(&tmp_index);
    }
    result.map(|()| WrittenPack {
        pack_path,
        index_path,
    })
}

fn write_file(path: &Path, parts: &[&[u8]], sync: bool) -> Result<(), Error> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err(path))?;
    for part in parts {
        file.write_all(part).map_err(io_err(path))?;
    }
    if sync {
        crate::git::fs::sync_file(&file).map_err(io_err(path))?;
    }
    Ok(())
}

/// A temporary file name in `dir` for a `kind` ("pack" or "idx") being written: git's
/// `tmp_pack_`/`tmp_idx_` prefixes and no `.pack`/`.idx` suffix, so neither git nor gitmq ever
/// takes it for a pack; the pid lets [`remove_stale_temp_files()`] tell whose it is.
pub fn temp_path(dir: &Path, kind: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        "{TEMP_PREFIX}{kind}_gitmq_{}_{n}",
        std::process::id()
    ))
}

/// Every temporary file gitmq writes in `objects/pack/` starts with this.
const TEMP_PREFIX: &str = "tmp_";

/// Remove temporary pack files that gitmq processes left behind when they were killed: those
/// whose writer's pid is no longer running (where `/proc` tells), or older than a day.
/// Returns how many were removed. Best effort: errors are ignored.
pub fn remove_stale_temp_files(pack_dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(pack_dir) else {
        return 0;
    };
    let proc_available = Path::new("/proc/self").exists();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        let Some((_, after)) = rest.split_once("_gitmq_") else {
            continue;
        };
        let pid = after.split('_').next().and_then(|p| p.parse::<u32>().ok());
        let dead = match pid {
            Some(pid) if proc_available => {
                pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
            }
            _ => false,
        };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(86_400));
        if (dead || old) && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::git::hash::object_id;

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(stream)
            .read_to_end(&mut out)
            .expect("valid zlib");
        out
    }

    #[test]
    fn stored_zlib_streams_inflate_back_for_any_size() {
        for len in [0, 1, 150, 65_535, 65_536, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
            let mut out = Vec::new();
            append_zlib_stored(&mut out, &data);
            assert_eq!(inflate(&out), data, "len {len}");
        }
    }

    #[test]
    fn deflated_entries_inflate_back() {
        let mut deflate = flate2::Compress::new(flate2::Compression::fast(), true);
        let big = vec![7u8; 100_000];
        for data in [&b""[..], b"hello hello hello hello", &big] {
            let mut out = Vec::new();
            append_zlib_deflated(&mut out, &mut deflate, data);
            assert_eq!(inflate(&out), data);
        }
    }

    #[test]
    fn finished_packs_have_the_right_count_trailer_and_sorted_index() {
        for compression in [Compression::Stored, Compression::Deflate(1)] {
            let mut builder = PackBuilder::new(compression);
            let bodies: Vec<Vec<u8>> = (0..50).map(|i| format!("blob {i}").into_bytes()).collect();
            for body in &bodies {
                builder.add(
                    object_id(gix_object::Kind::Blob, body),
                    gix_object::Kind::Blob,
                    body,
                );
            }
            let sealed = builder.seal(Vec::new());
            assert!(builder.is_empty(), "ready for the next batch");
            let files = sealed.finish();
            assert_eq!(&sealed.bytes[..4], b"PACK");
            assert_eq!(&sealed.bytes[8..12], &50u32.to_be_bytes());
            assert_eq!(
                crate::git::hash::Hasher::new().tap(&sealed.bytes),
                files.checksum.as_bytes()
            );
            let index = &files.index;
            let ids = &index[8 + 1024..8 + 1024 + 50 * 20];
            let mut sorted: Vec<&[u8]> = ids.chunks(20).collect();
            sorted.sort_unstable();
            assert_eq!(sorted.concat(), ids, "ids are sorted");
            assert_eq!(&index[8 + 255 * 4..8 + 256 * 4], &50u32.to_be_bytes());
        }
    }

    #[test]
    fn large_offsets_go_to_the_64_bit_table() {
        let id = ObjectId::empty_blob(crate::git::hash::OBJECT_HASH);
        let mut entries = vec![IndexEntry {
            id,
            offset: 5 << 30,
            crc32: 7,
        }];
        let index = build_index(&mut entries, &id);
        let offset_at = 8 + 1024 + 20 + 4;
        assert_eq!(
            &index[offset_at..offset_at + 4],
            &LARGE_OFFSET_FLAG.to_be_bytes()
        );
        assert_eq!(
            &index[offset_at + 4..offset_at + 12],
            &(5u64 << 30).to_be_bytes()
        );
    }

    trait Tap {
        fn tap(self, bytes: &[u8]) -> Vec<u8>;
    }
    impl Tap for crate::git::hash::Hasher {
        fn tap(mut self, bytes: &[u8]) -> Vec<u8> {
            self.update(bytes);
            self.finalize().as_bytes().to_vec()
        }
    }
}
