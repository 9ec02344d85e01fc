//! Owns writing packs: one writer, [`PackWriter`], over the sink its bytes go to.
//!
//! | sink | count | hashed | finished by | used by |
//! |---|---|---|---|---|
//! | memory (`Vec<u8>`: [`PackBuilder`]) | at [`seal`](PackBuilder::seal) | after, on the flush thread ([`SealedPack::finish`]) | [`write_pack_files()`] | a producer's batch, restack |
//! | a file, count known ([`PackStream`]) | up front | while streaming | [`PackStream::finish()`] | prune's repack |
//! | a file, count unknown ([`PackStream::spool`]) | at the end (header patched) | re-read at the end | [`PackStream::spool_finish()`] | what a push sends |
//!
//! Every entry goes through [`zlib::EntryEncoder`] (compression decided in one place) and every
//! pack that lands in `objects/pack/` goes through [`install::install()`] (the one "finish the
//! temporary pack" step). The memory sink is the producer's hot path: an entry is encoded in
//! place at the end of the batch's buffer and nothing is copied again before the write.
//!
//! Invariants: a pack's header count is its number of entries (or [`Error::Count`] and
//! nothing installed); a pack is installed only complete, with its index; a temporary file
//! that is not installed is removed.

pub mod index;
pub mod install;
pub mod zlib;

use std::{
    io::{self, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use gix_hash::{oid, ObjectId};

pub use index::{build_index, finish_index, index_body, IndexEntry};
pub use install::{install, WrittenPack};
pub use zlib::{append_zlib_deflated, append_zlib_stored, Compression, EntryEncoder};

use super::format::{PACK_HEADER_LEN, PACK_SIGNATURE, PACK_VERSION};
use crate::git::{
    fs::{SharedFs, TempFile},
    hash::Hasher,
};

/// Returned by the pack writers.
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
    /// More or fewer objects than announced were added, or more than a pack can hold.
    #[error("a pack announced {announced} objects but {added} were added")]
    Count {
        /// The count in the header.
        announced: u32,
        /// The objects added.
        added: u64,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where a [`PackWriter`]'s bytes go.
pub trait PackSink {
    /// Append one entry: `encode` appends its bytes to the buffer it is given. Returns the
    /// entry's bytes (for its CRC-32).
    fn append_entry(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> io::Result<&[u8]>;
}

/// A pack's header with `count` objects.
pub fn pack_header(count: u32) -> [u8; PACK_HEADER_LEN] {
    let mut header = [0u8; PACK_HEADER_LEN];
    header[..4].copy_from_slice(&PACK_SIGNATURE);
    header[4..8].copy_from_slice(&PACK_VERSION.to_be_bytes());
    header[8..].copy_from_slice(&count.to_be_bytes());
    header
}

/// A pack being written: entries are encoded into the sink, their ids, offsets and CRC-32s
/// recorded for the index (unless the sink keeps none, as a push's spool).
#[derive(Debug)]
pub struct PackWriter<S> {
    sink: S,
    /// Bytes written so far, header included: the next entry's offset.
    offset: u64,
    /// Entries added, in pack order (`None`: not recorded).
    entries: Option<Vec<IndexEntry>>,
    /// Entries added (recorded or not).
    added: u64,
    encoder: EntryEncoder,
}

/// Building
impl<S: PackSink> PackWriter<S> {
    fn with_sink(sink: S, compression: Compression, record: bool) -> Self {
        Self {
            sink,
            offset: PACK_HEADER_LEN as u64,
            entries: record.then(Vec::new),
            added: 0,
            encoder: EntryEncoder::new(compression),
        }
    }

    /// Append the object `id` of `kind` with `body`. The caller vouches that `id` is its hash
    /// (it hashed while it serialized, or read the object by id).
    pub fn add(&mut self, id: &oid, kind: gix_object::Kind, body: &[u8]) -> io::Result<()> {
        let encoder = &mut self.encoder;
        let entry = self
            .sink
            .append_entry(|out| encoder.append(out, kind, body))?;
        let mut crc = flate2::Crc::new();
        crc.update(entry);
        let len = entry.len() as u64;
        self.record(id, len, crc.sum());
        Ok(())
    }

    /// Append an entry whose raw bytes (header and zlib stream) and CRC-32 are already known,
    /// as when copying entries from another pack.
    pub fn add_raw(&mut self, id: &oid, raw_entry: &[u8], crc32: u32) -> io::Result<()> {
        let len = self
            .sink
            .append_entry(|out| out.extend_from_slice(raw_entry))?
            .len() as u64;
        self.record(id, len, crc32);
        Ok(())
    }

    fn record(&mut self, id: &oid, len: u64, crc32: u32) {
        if let Some(entries) = &mut self.entries {
            entries.push(IndexEntry {
                id: id.to_owned(),
                offset: self.offset,
                crc32,
            });
        }
        self.offset += len;
        self.added += 1;
    }
}

/// Access
impl<S> PackWriter<S> {
    /// How many objects were added.
    pub fn len(&self) -> usize {
        usize::try_from(self.added).unwrap_or(usize::MAX)
    }

    /// Whether no object was added.
    pub fn is_empty(&self) -> bool {
        self.added == 0
    }

    /// The pack's size so far in bytes (header included, trailer not).
    pub fn byte_len(&self) -> u64 {
        self.offset
    }

    fn count(&self) -> Result<u32, Error> {
        u32::try_from(self.added).map_err(|_| Error::Count {
            announced: u32::MAX,
            added: self.added,
        })
    }
}

/// The memory sink: entries are encoded in place at the end of the buffer.
impl PackSink for Vec<u8> {
    fn append_entry(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> io::Result<&[u8]> {
        let start = self.len();
        encode(self);
        Ok(&self[start..])
    }
}

/// A pack being built in memory (a producer's batch): entries are appended, then
/// [`seal()`](Self::seal) writes the header with the final count.
pub type PackBuilder = PackWriter<Vec<u8>>;

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
        PackFiles::of(&self.bytes, &mut self.entries.clone())
    }
}

impl PackFiles {
    /// The checksum and index of the pack `bytes` (header final, no trailer) whose entries are
    /// `entries` (sorted by id here).
    pub fn of(bytes: &[u8], entries: &mut [IndexEntry]) -> Self {
        let mut hasher = Hasher::new();
        hasher.update(bytes);
        let checksum = hasher.finalize();
        let index = build_index(entries, &checksum);
        PackFiles { checksum, index }
    }
}

/// Lifecycle
impl PackBuilder {
    /// An empty pack in memory whose entries are compressed per `compression`.
    pub fn new(compression: Compression) -> Self {
        let mut pack = Vec::with_capacity(1 << 16);
        pack.extend_from_slice(&[0; PACK_HEADER_LEN]);
        Self::with_sink(pack, compression, true)
    }

    /// Forget every entry, keeping the allocations.
    pub fn clear(&mut self) {
        self.sink.truncate(PACK_HEADER_LEN);
        self.entries.get_or_insert_with(Vec::new).clear();
        self.offset = PACK_HEADER_LEN as u64;
        self.added = 0;
    }

    /// Append the object `id` of `kind` with `body` (in memory: cannot fail).
    pub fn push(&mut self, id: &oid, kind: gix_object::Kind, body: &[u8]) {
        self.add(id, kind, body)
            .expect("BUG: appending to memory cannot fail");
    }

    /// Append pre-built entries: `raw` holds them back to back, and `entries` their ids, CRCs
    /// and offsets relative to the start of `raw`.
    pub fn extend_raw(&mut self, raw: &[u8], entries: &[IndexEntry]) {
        let base = self.offset;
        self.sink.extend_from_slice(raw);
        self.entries
            .get_or_insert_with(Vec::new)
            .extend(entries.iter().map(|e| IndexEntry {
                offset: base + e.offset,
                ..*e
            }));
        self.offset += raw.len() as u64;
        self.added += entries.len() as u64;
    }

    /// Seal the pack: write the header with the final count and hand the bytes over. The
    /// builder is left empty for the next batch, writing into `next_buffer` (pass a buffer
    /// of an earlier, written pack: reusing it spares the page faults of fresh memory).
    pub fn seal(&mut self, mut next_buffer: Vec<u8>) -> SealedPack {
        let count = self.count().expect("BUG: a batch holds < 2^32 objects");
        self.sink[..PACK_HEADER_LEN].copy_from_slice(&pack_header(count));
        next_buffer.clear();
        next_buffer.reserve(self.sink.capacity());
        next_buffer.extend_from_slice(&[0; PACK_HEADER_LEN]);
        let bytes = std::mem::replace(&mut self.sink, next_buffer);
        let entries = self.entries.replace(Vec::new()).unwrap_or_default();
        self.offset = PACK_HEADER_LEN as u64;
        self.added = 0;
        SealedPack { bytes, entries }
    }

    /// Give back the bytes of a sealed pack that was written, to build the next one in
    /// (spares the page faults of fresh memory). Ignored unless the builder is empty.
    pub fn reuse(&mut self, mut bytes: Vec<u8>) {
        if self.is_empty() && bytes.capacity() > self.sink.capacity() {
            bytes.clear();
            bytes.extend_from_slice(&[0; PACK_HEADER_LEN]);
            self.sink = bytes;
        }
    }
}

/// Write `sealed` (with its `files`) into `pack_dir` as `pack-<checksum>.{pack,idx}` through
/// [`install()`]: temporary files, synced when `sync`, renamed pack first then index, and
/// the directory synced when `sync`.
pub fn write_pack_files(
    fs: &SharedFs,
    pack_dir: &Path,
    sealed: &SealedPack,
    files: &PackFiles,
    sync: bool,
) -> Result<WrittenPack, Error> {
    write_pack_bytes(fs, pack_dir, &sealed.bytes, files, sync)
}

/// [`write_pack_files()`] for a pack whose `bytes` (header final, no trailer) were built
/// elsewhere, as a producer's batch framed in place.
pub fn write_pack_bytes(
    fs: &SharedFs,
    pack_dir: &Path,
    bytes: &[u8],
    files: &PackFiles,
    sync: bool,
) -> Result<WrittenPack, Error> {
    let mut pack = TempFile::create_in(fs, pack_dir, "pack").map_err(io_err(pack_dir))?;
    let tmp = pack.path().to_owned();
    pack.write_all(bytes)
        .and_then(|()| pack.write_all(files.checksum.as_bytes()))
        .map_err(io_err(&tmp))?;
    install(fs, pack_dir, pack, &files.checksum, &files.index, sync)
}

/// The file sink: entries are encoded into a scratch buffer, hashed (when the count is known
/// up front) and written through a buffer into a temporary file.
#[derive(Debug)]
pub struct FileSink {
    out: BufWriter<TempFile>,
    /// The count in the header, when known up front.
    announced: Option<u32>,
    /// `None` while the header is not final (count unknown): hashed at the end.
    hasher: Option<Hasher>,
    scratch: Vec<u8>,
    path: PathBuf,
}

impl PackSink for FileSink {
    fn append_entry(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> io::Result<&[u8]> {
        self.scratch.clear();
        encode(&mut self.scratch);
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&self.scratch);
        }
        self.out.write_all(&self.scratch)?;
        Ok(&self.scratch)
    }
}

impl FileSink {
    fn create(fs: &SharedFs, dir: &Path, count: Option<u32>) -> Result<Self, Error> {
        let file = TempFile::create_in(fs, dir, "pack").map_err(io_err(dir))?;
        let path = file.path().to_owned();
        let mut sink = Self {
            out: BufWriter::with_capacity(1 << 20, file),
            announced: count,
            hasher: count.map(|_| Hasher::new()),
            scratch: Vec::new(),
            path,
        };
        let header = pack_header(count.unwrap_or(0));
        if let Some(hasher) = &mut sink.hasher {
            hasher.update(&header);
        }
        sink.out.write_all(&header).map_err(io_err(&sink.path))?;
        Ok(sink)
    }

    /// Flush the buffer and hand the temporary file over.
    fn into_file(self) -> Result<TempFile, Error> {
        let path = self.path;
        self.out
            .into_inner()
            .map_err(|err| io_err(&path)(err.into_error()))
    }
}

/// A pack written straight to a temporary file in `objects/pack/`, one object at a time, with
/// its object count known up front: for packs too large to build in memory (a
/// [`prune`](crate::queue::prune) rewrites every object a repository keeps).
pub type PackStream = PackWriter<FileSink>;

/// Lifecycle
impl PackStream {
    /// Start a pack of exactly `count` objects in `pack_dir`.
    pub fn create(
        fs: &SharedFs,
        pack_dir: &Path,
        count: u32,
        compression: Compression,
    ) -> Result<Self, Error> {
        Ok(Self::with_sink(
            FileSink::create(fs, pack_dir, Some(count))?,
            compression,
            true,
        ))
    }

    /// Start a pack whose count is known only at the end, stored entries, no index: what a
    /// push sends ([`spool_finish()`](Self::spool_finish) makes it a [`SpooledPack`]).
    pub fn spool(fs: &SharedFs, dir: &Path) -> Result<Self, Error> {
        Ok(Self::with_sink(
            FileSink::create(fs, dir, None)?,
            Compression::Stored,
            false,
        ))
    }

    /// Write the trailer and the index, and install both in `pack_dir` (syncing when
    /// `sync`). The announced count must match what was added.
    pub fn finish(mut self, pack_dir: &Path, sync: bool) -> Result<(WrittenPack, ObjectId), Error> {
        let announced = self
            .sink
            .announced
            .expect("BUG: finish() is for packs of known count; a spool has spool_finish()");
        if self.added != u64::from(announced) {
            return Err(Error::Count {
                announced,
                added: self.added,
            });
        }
        let checksum = self
            .sink
            .hasher
            .take()
            .expect("BUG: a pack of known count is hashed as it streams")
            .finalize();
        let fs = self.sink.out.get_ref().fs().clone();
        let mut file = self.sink.into_file()?;
        let tmp = file.path().to_owned();
        file.write_all(checksum.as_bytes()).map_err(io_err(&tmp))?;
        let mut entries = self.entries.take().unwrap_or_default();
        let index = build_index(&mut entries, &checksum);
        let written = install(&fs, pack_dir, file, &checksum, &index, sync)?;
        Ok((written, checksum))
    }

    /// Patch the header with the count, append the trailer and rewind: the pack, complete in
    /// its temporary file, ready to be read from its start.
    pub fn spool_finish(self) -> Result<SpooledPack, Error> {
        let count = self.count()?;
        let mut file = self.sink.into_file()?;
        let path = file.path().to_owned();
        let io = io_err(&path);
        (|| {
            let raw = file.file_mut();
            raw.seek(SeekFrom::Start(0))?;
            raw.write_all(&pack_header(count))?;
            raw.seek(SeekFrom::Start(0))?;
            Ok(())
        })()
        .map_err(io)?;
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut len = 0u64;
        loop {
            let n = file.file_mut().read(&mut buf).map_err(io_err(&path))?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
            len += n as u64;
        }
        let trailer = hasher.finalize();
        file.write_all(trailer.as_bytes()).map_err(io_err(&path))?;
        Ok(SpooledPack {
            file,
            count,
            len: len + trailer.as_bytes().len() as u64,
        })
    }
}

/// A finished pack in a temporary file (what a push sends), removed on drop.
#[derive(Debug)]
pub struct SpooledPack {
    file: TempFile,
    /// Objects in the pack.
    pub count: u32,
    /// Its size, trailer included.
    pub len: u64,
}

impl SpooledPack {
    /// A second handle on the file, positioned at its start (for an HTTP body).
    pub fn reader(&self) -> io::Result<std::fs::File> {
        let mut file = self.file.file().try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests;
