//! Owns loose objects: `objects/xx/<38 hex>`, each a zlib stream of `"<kind> <size>\0<body>"`.
//!
//! Invariants: an object file only ever appears under its final name complete (written to a
//! temporary file in the same fan-out directory, optionally synced, then renamed); a read checks
//! the declared size against a limit before allocating, inflates exactly that many bytes, and
//! verifies the id, so a corrupt or hostile file is an error, never a panic or a huge allocation.

use std::{
    fs,
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use flate2::{read::ZlibDecoder, write::ZlibEncoder, Compression};
use gix_hash::{oid, ObjectId};

use crate::git::{
    fs::{real, SharedFs, TempFile},
    hash,
    odb::stored,
};

/// The largest object body a read will allocate for, unless configured otherwise (256 MiB).
pub const DEFAULT_MAX_OBJECT_SIZE: u64 = 256 << 20;

/// The longest object header (`"commit 18446744073709551615\0"` is 28 bytes).
const MAX_HEADER_LEN: usize = 32;

/// Returned by [`LooseStore::write()`] and [`LooseStore::read()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file system refused.
    #[error("loose object I/O failed at {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The object file does not hold a valid object with this id.
    #[error("loose object {id} is corrupt: {reason}")]
    Corrupt {
        /// The object's id.
        id: ObjectId,
        /// What is wrong.
        reason: String,
    },
    /// The object declares a body larger than the read limit.
    #[error("loose object {id} declares {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The object's id.
        id: ObjectId,
        /// Its declared size.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// The loose half of an object database rooted at an `objects/` directory.
#[derive(Debug, Clone)]
pub struct LooseStore {
    objects_dir: PathBuf,
    max_object_size: u64,
    fs: SharedFs,
}

/// Lifecycle
impl LooseStore {
    /// The store in `objects_dir` (which must exist), written through the real file system.
    pub fn at(objects_dir: impl Into<PathBuf>) -> Self {
        Self::with_fs(objects_dir, real())
    }

    /// The store in `objects_dir` (which must exist), written through `fs`.
    pub fn with_fs(objects_dir: impl Into<PathBuf>, fs: SharedFs) -> Self {
        Self {
            objects_dir: objects_dir.into(),
            max_object_size: DEFAULT_MAX_OBJECT_SIZE,
            fs,
        }
    }

    /// Refuse to read objects whose body is larger than `limit` bytes.
    #[must_use]
    pub fn with_max_object_size(mut self, limit: u64) -> Self {
        self.max_object_size = limit;
        self
    }
}

/// Access
impl LooseStore {
    /// Where the object `id` lives, whether or not it exists.
    pub fn path_of(&self, id: &oid) -> PathBuf {
        let mut hex = [0u8; 40];
        let hex = id.hex_to_buf(&mut hex);
        self.objects_dir.join(&hex[..2]).join(&hex[2..])
    }

    /// The file system objects are written through.
    pub fn fs(&self) -> &SharedFs {
        &self.fs
    }

    /// Whether the object `id` exists as a loose object.
    pub fn contains(&self, id: &oid) -> bool {
        self.path_of(id).is_file()
    }

    /// Write an object of `kind` with `body` and return its id. An object that already exists is
    /// left as it is. With `sync`, the file is fsynced before its rename, and its fan-out
    /// directory is pushed to `dirs_to_sync` (once) for the caller to sync with
    /// [`sync_dirs()`](Self::sync_dirs) before acknowledging.
    pub fn write(
        &self,
        kind: gix_object::Kind,
        body: &[u8],
        sync: bool,
        dirs_to_sync: &mut Vec<PathBuf>,
    ) -> Result<ObjectId, Error> {
        let id = hash::object_id(kind, body);
        let path = self.path_of(&id);
        if path.is_file() {
            return Ok(id);
        }
        let dir = path
            .parent()
            .expect("BUG: an object path has a fan-out directory");
        match self.fs.create_dir(dir) {
            Ok(()) => {
                if sync && !dirs_to_sync.iter().any(|d| d == &self.objects_dir) {
                    dirs_to_sync.push(self.objects_dir.clone());
                }
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(io_err(dir)(err)),
        }
        let mut file = TempFile::create_in(&self.fs, dir, "obj").map_err(io_err(dir))?;
        let tmp = file.path().to_owned();
        let mut header = [0u8; 32];
        let header_len = hash::write_object_header(&mut header, kind, body.len());
        let mut encoder = ZlibEncoder::new(&mut file, Compression::fast());
        encoder
            .write_all(&header[..header_len])
            .and_then(|()| encoder.write_all(body))
            .and_then(|()| encoder.finish().map(drop))
            .map_err(io_err(&tmp))?;
        if sync {
            file.sync().map_err(io_err(&tmp))?;
        }
        // git makes object files read-only; a failure here changes nothing that matters.
        if let Ok(metadata) = file.file().metadata() {
            let mut permissions = metadata.permissions();
            permissions.set_readonly(true);
            let _ = file.file().set_permissions(permissions);
        }
        file.persist(&path).map_err(io_err(&path))?;
        if sync && !dirs_to_sync.iter().any(|d| d == dir) {
            dirs_to_sync.push(dir.to_owned());
        }
        Ok(id)
    }

    /// Sync (and drain) the directories [`write()`](Self::write) collected, children first.
    pub fn sync_dirs(&self, dirs: &mut Vec<PathBuf>) -> Result<(), Error> {
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs.drain(..) {
            self.fs.sync_dir(&dir).map_err(io_err(&dir))?;
        }
        Ok(())
    }

    /// Read the object `id` into `body` (cleared first) and return its kind, or `None` if there
    /// is no such loose object.
    pub fn read(&self, id: &oid, body: &mut Vec<u8>) -> Result<Option<gix_object::Kind>, Error> {
        let path = self.path_of(id);
        let compressed = match fs::read(&path) {
            Ok(data) => data,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_err(&path)(err)),
        };
        let kind = decode(id, &compressed, self.max_object_size, body)?;
        Ok(Some(kind))
    }
}

/// Inflate and check one loose object file's bytes into `body`; return the object's kind.
pub fn decode(
    id: &oid,
    compressed: &[u8],
    max_object_size: u64,
    body: &mut Vec<u8>,
) -> Result<gix_object::Kind, Error> {
    let corrupt = |reason: String| Error::Corrupt {
        id: id.to_owned(),
        reason,
    };
    let kind = match decode_stored(id, compressed, max_object_size, body)? {
        Some(kind) => kind,
        None => inflate(id, compressed, max_object_size, body)?,
    };
    let actual = hash::object_id(kind, body);
    if actual != id {
        return Err(corrupt(format!("content hashes to {actual}")));
    }
    Ok(kind)
}

/// The fast path for an object file made of stored zlib blocks (`core.compression=0`):
/// copy the body out. `None` for anything else, which [`inflate()`] reads. The Adler-32 is
/// not checked: the caller hashes the body and compares with the id, which is stronger.
fn decode_stored(
    id: &oid,
    compressed: &[u8],
    max_object_size: u64,
    body: &mut Vec<u8>,
) -> Result<Option<gix_object::Kind>, Error> {
    let Some(first) = stored::first_block(compressed) else {
        return Ok(None);
    };
    let header = first.get(..MAX_HEADER_LEN).unwrap_or(first);
    let Some(nul) = memchr::memchr(0, header) else {
        return Ok(None);
    };
    let Some((kind, size)) = header.get(..nul).and_then(parse_header) else {
        return Ok(None);
    };
    if size > max_object_size {
        return Err(Error::TooLarge {
            id: id.to_owned(),
            size,
            limit: max_object_size,
        });
    }
    let Some(expected) = usize::try_from(size)
        .ok()
        .and_then(|size| size.checked_add(nul + 1))
    else {
        return Ok(None);
    };
    match stored::parse(compressed, expected, false) {
        Ok(Some(stream)) if stream.stream_len() == compressed.len() => {
            body.clear();
            stream.copy_from_to(nul + 1, body);
            Ok(Some(kind))
        }
        _ => Ok(None),
    }
}

/// Inflate a loose object file with zlib into `body`: the general path.
fn inflate(
    id: &oid,
    compressed: &[u8],
    max_object_size: u64,
    body: &mut Vec<u8>,
) -> Result<gix_object::Kind, Error> {
    let corrupt = |reason: String| Error::Corrupt {
        id: id.to_owned(),
        reason,
    };
    let mut inflater = ZlibDecoder::new(compressed);
    let mut header = [0u8; MAX_HEADER_LEN];
    let mut filled = 0;
    let nul = loop {
        if let Some(at) = memchr::memchr(0, &header[..filled]) {
            break at;
        }
        if filled == header.len() {
            return Err(corrupt("object header is too long".into()));
        }
        let n = inflater
            .read(&mut header[filled..])
            .map_err(|err| corrupt(format!("zlib: {err}")))?;
        if n == 0 {
            return Err(corrupt("truncated before the end of the header".into()));
        }
        filled += n;
    };
    let (kind, size) = parse_header(&header[..nul]).ok_or_else(|| corrupt("bad header".into()))?;
    if size > max_object_size {
        return Err(Error::TooLarge {
            id: id.to_owned(),
            size,
            limit: max_object_size,
        });
    }
    let size = usize::try_from(size).map_err(|_| corrupt("size does not fit in memory".into()))?;
    body.clear();
    body.reserve_exact(size);
    body.extend_from_slice(&header[nul + 1..filled]);
    if body.len() > size {
        return Err(corrupt("more data than the header declares".into()));
    }
    // Read at most one byte past the declared size to detect trailing data.
    let mut limited = inflater.take((size - body.len()) as u64 + 1);
    limited
        .read_to_end(body)
        .map_err(|err| corrupt(format!("zlib: {err}")))?;
    if body.len() != size {
        return Err(corrupt(format!(
            "header declares {size} bytes, stream holds {}",
            body.len()
        )));
    }
    Ok(kind)
}

/// Parse `"<kind> <decimal size>"`.
fn parse_header(header: &[u8]) -> Option<(gix_object::Kind, u64)> {
    let space = memchr::memchr(b' ', header)?;
    let kind = gix_object::Kind::from_bytes(header.get(..space)?).ok()?;
    let digits = header.get(space + 1..)?;
    if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut size = 0u64;
    for d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        size = size * 10 + u64::from(d - b'0');
    }
    Some((kind, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LooseStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LooseStore::at(dir.path());
        (dir, store)
    }

    #[test]
    fn written_objects_read_back() {
        let (_dir, store) = store();
        let mut dirs = Vec::new();
        let id = store
            .write(gix_object::Kind::Blob, b"hello\n", true, &mut dirs)
            .unwrap();
        store.sync_dirs(&mut dirs).unwrap();
        assert_eq!(id.to_string(), "ce013625030ba8dba906f756967f9e9ca394464a");
        assert!(store.contains(&id));
        let mut body = Vec::new();
        assert_eq!(
            store.read(&id, &mut body).unwrap(),
            Some(gix_object::Kind::Blob)
        );
        assert_eq!(body, b"hello\n");
    }

    #[test]
    fn a_missing_object_is_none() {
        let (_dir, store) = store();
        let mut body = Vec::new();
        assert_eq!(
            store
                .read(&ObjectId::null(crate::git::hash::OBJECT_HASH), &mut body)
                .unwrap(),
            None
        );
    }

    fn compress(raw: &[u8]) -> Vec<u8> {
        let mut enc = ZlibEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(raw).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn corrupt_objects_are_errors() {
        let id = hash::object_id(gix_object::Kind::Blob, b"abc");
        let mut body = Vec::new();
        let cases: Vec<Vec<u8>> = vec![
            b"not zlib".to_vec(),
            compress(b"blob 3\0ab"),
            compress(b"blob 3\0abcd"),
            compress(b"blob 3\0abd"),
            compress(b"blob 03\0abc"),
            compress(b"blob x\0abc"),
            compress(b"bolb 3\0abc"),
            compress(b"blob 3"),
            compress(&[b'a'; 100]),
            Vec::new(),
        ];
        for case in cases {
            assert!(decode(&id, &case, 1 << 20, &mut body).is_err());
        }
        assert!(decode(&id, &compress(b"blob 3\0abc"), 1 << 20, &mut body).is_ok());
    }

    fn store_uncompressed(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        crate::git::odb::pack::write::append_zlib_stored(&mut out, raw);
        out
    }

    #[test]
    fn stored_objects_read_through_the_fast_path_and_broken_ones_still_fail() {
        let id = hash::object_id(gix_object::Kind::Blob, b"abc");
        let mut body = Vec::new();
        let file = store_uncompressed(b"blob 3\0abc");
        assert_eq!(
            decode(&id, &file, 1 << 20, &mut body).unwrap(),
            gix_object::Kind::Blob
        );
        assert_eq!(body, b"abc");
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut raw = format!("blob {}\0", big.len()).into_bytes();
        raw.extend_from_slice(&big);
        let big_id = hash::object_id(gix_object::Kind::Blob, &big);
        decode(&big_id, &store_uncompressed(&raw), 1 << 20, &mut body).unwrap();
        assert_eq!(body, big, "several stored blocks");
        for raw in [
            &b"blob 3\0ab"[..],
            b"blob 3\0abcd",
            b"blob 3\0abd",
            b"blob 3",
        ] {
            assert!(decode(&id, &store_uncompressed(raw), 1 << 20, &mut body).is_err());
        }
        let mut trailing = file.clone();
        trailing.push(0);
        assert!(
            decode(&id, &trailing, 1 << 20, &mut body).is_ok(),
            "bytes after the stream are left to zlib, which ignores them"
        );
        let mut nlen = file;
        nlen[5] ^= 1;
        assert!(decode(&id, &nlen, 1 << 20, &mut body).is_err());
        let err = decode(
            &id,
            &store_uncompressed(b"blob 99999999999\0abc"),
            1 << 20,
            &mut body,
        )
        .unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    }

    #[test]
    fn a_huge_declared_size_is_refused_before_allocating() {
        let id = hash::object_id(gix_object::Kind::Blob, b"abc");
        let mut body = Vec::new();
        let err = decode(
            &id,
            &compress(b"blob 99999999999999\0abc"),
            1 << 20,
            &mut body,
        )
        .unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    }
}
