//! Owns streaming the pack a fetch asked for: the header with the object count known from
//! the enumeration, each object read from the repository and written as a whole entry (no
//! deltas, so nothing depends on what the client has), the SHA-1 trailer hashed on the way,
//! all inside side-band-64k packets (or bare, for a v0 client without side-band).
//!
//! Layout (git's `gitprotocol-pack.txt` and `Documentation/gitformat-pack.txt`):
//!
//! ```text
//! "PACK" | version 2 (u32 BE) | object count (u32 BE)
//! per object: type+size header | zlib stream (stored blocks, or deflate at a level)
//! SHA-1 of everything before
//! ```
//!
//! Invariants: memory is one object and one packet, whatever the pack's size; the count in
//! the header is the number of entries written; if reading an object fails midway, the
//! client gets the error on band 3 (it then discards the pack) and the error is returned.

use std::io::Write;

use gix_hash::ObjectId;

use super::super::{commit::read_object, Error};
use crate::git::{
    hash::Hasher,
    odb::{
        pack::{
            format::{PACK_SIGNATURE, PACK_VERSION},
            write::{Compression, EntryEncoder},
        },
        Odb,
    },
    wire::sideband_writer::SidebandWriter,
};

/// The body of a fetch answer that carries a pack.
pub(crate) struct PackResponse {
    /// Packets before the pack (acknowledgments, shallow-info, `packfile`; v0: ACK/NAK).
    pub prefix: Vec<u8>,
    pub odb: Odb,
    pub objects: Vec<ObjectId>,
    /// Side-band packet payload size; `None`: the pack goes out bare (v0 without side-band).
    pub sideband: Option<usize>,
    /// Send progress text on band 2.
    pub progress: bool,
    pub compression: Compression,
}

impl PackResponse {
    pub(crate) fn object_count(&self) -> usize {
        self.objects.len()
    }

    /// Write the whole answer into `out`.
    pub(crate) fn write(mut self, out: &mut dyn Write) -> Result<(), Error> {
        out.write_all(&self.prefix).map_err(Error::WriteBody)?;
        let Some(max_payload) = self.sideband else {
            write_pack(&mut self.odb, &self.objects, self.compression, out)?;
            return out.flush().map_err(Error::WriteBody);
        };
        let mut band = SidebandWriter::new(out, max_payload);
        if self.progress {
            band.progress(&format!(
                "Enumerating objects: {}, done.\n",
                self.objects.len()
            ))
            .map_err(Error::WriteBody)?;
        }
        if let Err(err) = write_pack(&mut self.odb, &self.objects, self.compression, &mut band) {
            if !matches!(err, Error::WriteBody(_)) {
                // Best effort: the client may be gone already. It gets no server path.
                let text = match &err {
                    Error::Corrupt { .. } => err.to_string(),
                    _ => "reading the repository failed; the server's log has the details".into(),
                };
                let _ = band.error(&format!("gitmq upload-pack: {text}\n"));
                let _ = band.flush();
            }
            return Err(err);
        }
        if self.progress {
            band.progress(&format!(
                "Total {} (delta 0), reused 0 (delta 0), pack-reused 0\n",
                self.objects.len()
            ))
            .map_err(Error::WriteBody)?;
        }
        band.finish().map_err(Error::WriteBody)
    }
}

/// Hashes what it writes.
struct Hashing<'a> {
    out: &'a mut dyn Write,
    hasher: Hasher,
}

impl Hashing<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.hasher.update(bytes);
        self.out.write_all(bytes).map_err(Error::WriteBody)
    }
}

/// Write a pack of `objects` into `out`.
pub(crate) fn write_pack(
    odb: &mut Odb,
    objects: &[ObjectId],
    compression: Compression,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let count = u32::try_from(objects.len()).map_err(|_| Error::TooLarge {
        what: "objects in one pack",
        limit: u64::from(u32::MAX),
    })?;
    let mut out = Hashing {
        out,
        hasher: Hasher::new(),
    };
    let mut header = [0u8; 12];
    header[..4].copy_from_slice(&PACK_SIGNATURE);
    header[4..8].copy_from_slice(&PACK_VERSION.to_be_bytes());
    header[8..].copy_from_slice(&count.to_be_bytes());
    out.put(&header)?;
    let mut encoder = EntryEncoder::new(compression);
    let mut scratch = Vec::new();
    let mut entry = Vec::new();
    for id in objects {
        let (kind, body) = read_object(odb, id, &mut scratch)?;
        entry.clear();
        encoder.append(&mut entry, kind, body);
        out.put(&entry)?;
    }
    let Hashing { out, hasher } = out;
    out.write_all(hasher.finalize().as_bytes())
        .map_err(Error::WriteBody)
}

/// A writer that refuses everything (tests of the error path).
#[cfg(test)]
pub(crate) struct Broken;

#[cfg(test)]
impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::odb::pack::index_pack::{index_pack, Limits};

    #[test]
    fn a_written_pack_is_indexed_by_gitmq_s_own_indexer() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::Repository::init(dir.path().join("q.git")).unwrap();
        let topic = crate::TopicName::new("t").unwrap();
        let ids = repo
            .producer(&topic)
            .publish_batch([&b"one"[..], b"two", b"three"])
            .unwrap();
        let mut objects = ids.clone();
        objects.push(ObjectId::empty_tree(gix_hash::Kind::Sha1));
        for compression in [Compression::Stored, Compression::Deflate(1)] {
            let mut pack = Vec::new();
            write_pack(&mut repo.odb(), &objects, compression, &mut pack).unwrap();
            let out = tempfile::tempdir().unwrap();
            let indexed = index_pack(
                &crate::git::fs::real(),
                &pack[..],
                out.path(),
                &Limits::default(),
                false,
            )
            .unwrap();
            assert_eq!(indexed.objects, 4);
        }
        assert!(matches!(
            write_pack(&mut repo.odb(), &objects, Compression::Stored, &mut Broken),
            Err(Error::WriteBody(_))
        ));
    }
}
