//! Owns writing a pack of unbounded size to a temporary file, object by object, when the
//! object count is known only at the end: what a push sends (gitmq walks the history and
//! writes each commit as it reads it, so memory stays bounded however long the history).
//!
//! Layout: the 12-byte header (count patched in by [`PackSpool::finish()`]), entries of whole
//! objects in stored zlib blocks (no deltas: every pack is self-contained), the SHA-1 trailer.
//!
//! Invariants: the file is a temporary one in the directory given (named like every gitmq
//! temporary pack file, so a killed process's spool is found by
//! [`super::write::remove_stale_temp_files()`]) and removed when the [`PackSpool`] or the
//! [`SpooledPack`] drops; a finished spool is a complete, valid pack.

use std::{
    fs,
    io::{self, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use super::{
    format::{
        encode_entry_header, EntryKind, MAX_ENTRY_HEADER_LEN, PACK_HEADER_LEN, PACK_SIGNATURE,
        PACK_VERSION,
    },
    write::{append_zlib_stored, temp_path},
};
use crate::git::hash::Hasher;

/// A pack being written to a temporary file.
#[derive(Debug)]
pub struct PackSpool {
    file: Option<BufWriter<fs::File>>,
    path: PathBuf,
    count: u32,
    scratch: Vec<u8>,
}

/// A finished pack in a temporary file, removed on drop.
#[derive(Debug)]
pub struct SpooledPack {
    file: fs::File,
    path: PathBuf,
    /// Objects in the pack.
    pub count: u32,
    /// Its size, trailer included.
    pub len: u64,
}

impl PackSpool {
    /// Start a pack in a new temporary file in `dir`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        let path = temp_path(dir, "pack");
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let mut spool = Self {
            file: Some(BufWriter::with_capacity(1 << 16, file)),
            path,
            count: 0,
            scratch: Vec::new(),
        };
        spool.writer()?.write_all(&[0; PACK_HEADER_LEN])?;
        Ok(spool)
    }

    fn writer(&mut self) -> io::Result<&mut BufWriter<fs::File>> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the pack spool was already finished"))
    }

    /// Append a whole object.
    pub fn add(&mut self, kind: gix_object::Kind, body: &[u8]) -> io::Result<()> {
        let mut header = [0u8; MAX_ENTRY_HEADER_LEN];
        let header_len = encode_entry_header(&mut header, EntryKind::Base(kind), body.len() as u64);
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(header.get(..header_len).unwrap_or_default());
        append_zlib_stored(&mut scratch, body);
        let result = self.writer().and_then(|w| w.write_all(&scratch));
        self.scratch = scratch;
        result?;
        self.count = self
            .count
            .checked_add(1)
            .ok_or_else(|| io::Error::other("a pack holds fewer than 2^32 objects"))?;
        Ok(())
    }

    /// Patch the header, append the trailer and rewind: the pack, ready to be read from its
    /// start.
    pub fn finish(mut self) -> io::Result<SpooledPack> {
        let writer = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the pack spool was already finished"))?;
        let mut file = writer
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        let mut header = [0u8; PACK_HEADER_LEN];
        header[..4].copy_from_slice(&PACK_SIGNATURE);
        header[4..8].copy_from_slice(&PACK_VERSION.to_be_bytes());
        header[8..12].copy_from_slice(&self.count.to_be_bytes());
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header)?;
        file.seek(SeekFrom::Start(0))?;
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
            len += n as u64;
        }
        let trailer = hasher.finalize();
        file.write_all(trailer.as_bytes())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(SpooledPack {
            file,
            path: std::mem::take(&mut self.path),
            count: self.count,
            len: len + trailer.as_bytes().len() as u64,
        })
    }
}

impl Drop for PackSpool {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl SpooledPack {
    /// A second handle on the file, positioned at its start (for an HTTP body).
    pub fn reader(&self) -> io::Result<fs::File> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        Ok(file)
    }
}

impl Drop for SpooledPack {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spooled_pack_is_what_the_in_memory_builder_writes() {
        let dir = tempfile::tempdir().unwrap();
        let objects: [(gix_object::Kind, &[u8]); 2] = [
            (gix_object::Kind::Tree, b""),
            (gix_object::Kind::Blob, b"hello\n"),
        ];
        let mut spool = PackSpool::create(dir.path()).unwrap();
        let mut builder =
            super::super::write::PackBuilder::new(super::super::write::Compression::Stored);
        for (kind, body) in objects {
            spool.add(kind, body).unwrap();
            builder.add(crate::git::hash::object_id(kind, body), kind, body);
        }
        let spooled = spool.finish().unwrap();
        let mut bytes = Vec::new();
        spooled.reader().unwrap().read_to_end(&mut bytes).unwrap();
        let sealed = builder.seal(Vec::new());
        let files = sealed.finish();
        let mut expected = sealed.bytes.clone();
        expected.extend_from_slice(files.checksum.as_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(spooled.len, bytes.len() as u64);
        assert_eq!(spooled.count, 2);
        drop(spooled);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
