//! Owns writing a pack straight to a file, one object at a time, for packs too large to build
//! in memory (a [`prune`](crate::queue::prune) rewrites every object a repository keeps).
//!
//! Data flow: [`PackStream::create()`] writes the header with the object count, known up
//! front, to a `tmp_pack_` file -> [`PackStream::add()`] appends each object as a stored or
//! deflated entry, hashing and CRC-ing it as it goes -> [`PackStream::finish()`] writes the
//! trailer, builds the v2 index, syncs both when asked, renames the pack then the index, and
//! syncs `objects/pack/`.
//!
//! Invariants: exactly the announced number of objects, or [`Error::Count`] and nothing
//! renamed; on any error the temporary files are removed, so `objects/pack/` only ever gains a
//! complete, indexed pack (as [`write_pack_files()`](super::write::write_pack_files)).

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use gix_hash::{oid, ObjectId};

use super::{
    format::{encode_entry_header, EntryKind, MAX_ENTRY_HEADER_LEN, PACK_SIGNATURE, PACK_VERSION},
    write::{
        append_zlib_deflated, append_zlib_stored, build_index, temp_path, Compression, IndexEntry,
        WrittenPack,
    },
};
use crate::git::hash::Hasher;

/// Returned by [`PackStream`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file system refused.
    #[error("writing a pack failed at {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// More or fewer objects than announced were added.
    #[error("a pack announced {announced} objects but {added} were added")]
    Count {
        /// The count in the header.
        announced: u32,
        /// The objects added.
        added: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// A pack being written to a temporary file in `objects/pack/`.
pub struct PackStream {
    pack_dir: PathBuf,
    tmp: PathBuf,
    out: Option<io::BufWriter<fs::File>>,
    hasher: Hasher,
    written: u64,
    announced: u32,
    entries: Vec<IndexEntry>,
    entry: Vec<u8>,
    deflate: Option<flate2::Compress>,
}

impl std::fmt::Debug for PackStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackStream")
            .field("tmp", &self.tmp)
            .field("announced", &self.announced)
            .field("added", &self.entries.len())
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

/// Lifecycle
impl PackStream {
    /// Start a pack of exactly `count` objects in `pack_dir`.
    pub fn create(pack_dir: &Path, count: u32, compression: Compression) -> Result<Self, Error> {
        let tmp = temp_path(pack_dir, "pack");
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        let mut stream = Self {
            pack_dir: pack_dir.to_owned(),
            out: Some(io::BufWriter::with_capacity(1 << 20, file)),
            tmp,
            hasher: Hasher::new(),
            written: 0,
            announced: count,
            entries: Vec::with_capacity(count as usize),
            entry: Vec::new(),
            deflate: match compression {
                Compression::Stored => None,
                Compression::Deflate(level) => Some(flate2::Compress::new(
                    flate2::Compression::new(u32::from(level.clamp(1, 9))),
                    true,
                )),
            },
        };
        let mut header = Vec::with_capacity(super::format::PACK_HEADER_LEN);
        header.extend_from_slice(&PACK_SIGNATURE);
        header.extend_from_slice(&PACK_VERSION.to_be_bytes());
        header.extend_from_slice(&count.to_be_bytes());
        stream.write(&header)?;
        Ok(stream)
    }

    /// Append the object `id` of `kind` with `body` (the caller vouches that `id` is its
    /// hash: it was read by id from the object database).
    pub fn add(&mut self, id: &oid, kind: gix_object::Kind, body: &[u8]) -> Result<(), Error> {
        let mut entry = std::mem::take(&mut self.entry);
        entry.clear();
        let mut header = [0u8; MAX_ENTRY_HEADER_LEN];
        let len = encode_entry_header(&mut header, EntryKind::Base(kind), body.len() as u64);
        entry.extend_from_slice(header.get(..len).expect("BUG: the header fits its buffer"));
        match &mut self.deflate {
            None => append_zlib_stored(&mut entry, body),
            Some(deflate) => append_zlib_deflated(&mut entry, deflate, body),
        }
        let mut crc = flate2::Crc::new();
        crc.update(&entry);
        self.entries.push(IndexEntry {
            id: id.to_owned(),
            offset: self.written,
            crc32: crc.sum(),
        });
        let result = self.write(&entry);
        self.entry = entry;
        result
    }

    /// Write the trailer and the index, and rename both into place (syncing when `sync`).
    pub fn finish(mut self, sync: bool) -> Result<(WrittenPack, ObjectId), Error> {
        if self.entries.len() as u64 != u64::from(self.announced) {
            return Err(Error::Count {
                announced: self.announced,
                added: self.entries.len() as u64,
            });
        }
        let checksum = std::mem::take(&mut self.hasher).finalize();
        let tmp = self.tmp.clone();
        let mut out = self.out.take().expect("BUG: finish() runs once");
        out.write_all(checksum.as_bytes()).map_err(io_err(&tmp))?;
        let file = out.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
        if sync {
            crate::git::fs::sync_file(&file).map_err(io_err(&tmp))?;
        }
        drop(file);
        let index = build_index(&mut self.entries, &checksum);
        let tmp_index = temp_path(&self.pack_dir, "idx");
        let name = format!("pack-{checksum}");
        let pack_path = self.pack_dir.join(format!("{name}.pack"));
        let index_path = self.pack_dir.join(format!("{name}.idx"));
        let result = (|| {
            let mut file = fs::File::create(&tmp_index).map_err(io_err(&tmp_index))?;
            file.write_all(&index).map_err(io_err(&tmp_index))?;
            if sync {
                crate::git::fs::sync_file(&file).map_err(io_err(&tmp_index))?;
            }
            fs::rename(&tmp, &pack_path).map_err(io_err(&pack_path))?;
            fs::rename(&tmp_index, &index_path).map_err(io_err(&index_path))?;
            if sync {
                crate::git::fs::sync_dir(&self.pack_dir).map_err(io_err(&self.pack_dir))?;
            }
            Ok(())
        })();
        if let Err(err) = result {
            let _ = fs::remove_file(&tmp_index);
            return Err(err);
        }
        Ok((
            WrittenPack {
                pack_path,
                index_path,
            },
            checksum,
        ))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.out
            .as_mut()
            .expect("BUG: written before finish()")
            .write_all(bytes)
            .map_err(io_err(&self.tmp))
    }
}

/// Access
impl PackStream {
    /// Bytes written so far.
    pub fn byte_len(&self) -> u64 {
        self.written
    }
}

impl Drop for PackStream {
    fn drop(&mut self) {
        // Not finished (an error, or dropped): the temporary file goes. After finish() it
        // was renamed, and removing the old name finds nothing.
        if self.out.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{git::hash::object_id, git::odb::Odb};

    #[test]
    fn a_streamed_pack_reads_back_and_a_short_count_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        let pack_dir = objects.join("pack");
        fs::create_dir_all(&pack_dir).unwrap();
        for compression in [Compression::Stored, Compression::Deflate(6)] {
            let bodies: Vec<Vec<u8>> = (0..20).map(|i| format!("blob {i}").into_bytes()).collect();
            let mut stream = PackStream::create(&pack_dir, 20, compression).unwrap();
            for body in &bodies {
                let id = object_id(gix_object::Kind::Blob, body);
                stream.add(&id, gix_object::Kind::Blob, body).unwrap();
            }
            stream.finish(true).unwrap();
            let mut odb = Odb::at(&objects);
            let mut out = Vec::new();
            for body in &bodies {
                let id = object_id(gix_object::Kind::Blob, body);
                assert_eq!(odb.read(&id, &mut out).unwrap(), gix_object::Kind::Blob);
                assert_eq!(&out, body);
            }
        }
        let before = fs::read_dir(&pack_dir).unwrap().count();
        let stream = PackStream::create(&pack_dir, 2, Compression::Stored).unwrap();
        assert!(matches!(stream.finish(false), Err(Error::Count { .. })));
        assert_eq!(
            fs::read_dir(&pack_dir).unwrap().count(),
            before,
            "tmp removed"
        );
    }
}
