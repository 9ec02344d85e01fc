//! The `floor` row of `gitmq bench append` (issue 11): the least work that stores the same
//! messages as gitmq does, in one plain loop on one thread and nothing else (no channel, no
//! batching logic, no ref, no lock, no rename): per message serialize the commit, hash it,
//! frame it as a stored-block entry with its CRC-32; per batch write the pack, its trailer and
//! its index. The producer, which does all that and more, is measured against it.

use std::{fs, io::Write, path::Path, time::Instant};

use gitmq::{
    git::hash::{Hasher, OBJECT_HASH},
    git::message::CommitEncoder,
    git::odb::pack::write::{append_zlib_stored, build_index, IndexEntry},
    Identity, ObjectId,
};

use crate::commands::Result;

/// Seconds to store `messages` in packs of `batch` messages under `dir`.
pub fn floor(dir: &Path, messages: &[Vec<u8>], batch: usize) -> Result<f64> {
    fs::create_dir_all(dir)?;
    let encoder = CommitEncoder::new(&Identity::default(), 0);
    let mut pack = Vec::with_capacity(batch * 400 + 64);
    let mut body = Vec::with_capacity(1024);
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(batch + 1);
    let mut parent: Option<ObjectId> = None;
    let seconds = 1_700_000_000;
    let start = Instant::now();
    for (n, chunk) in messages.chunks(batch.max(1)).enumerate() {
        pack.clear();
        entries.clear();
        pack.extend_from_slice(b"PACK\0\0\0\x02");
        let count = u32::try_from(chunk.len() + 1)?;
        pack.extend_from_slice(&count.to_be_bytes());
        // The empty tree (every gitmq pack holds it), then each message.
        push_entry(
            &mut pack,
            &mut entries,
            ObjectId::empty_tree(OBJECT_HASH),
            2,
            b"",
        );
        for message in chunk {
            body.clear();
            encoder.encode(&mut body, parent.as_deref(), seconds, message);
            let mut hasher = Hasher::for_object(gix_object::Kind::Commit, body.len());
            hasher.update(&body);
            let id = hasher.finalize();
            push_entry(&mut pack, &mut entries, id, 1, &body);
            parent = Some(id);
        }
        let mut hasher = Hasher::new();
        hasher.update(&pack);
        let checksum = hasher.finalize();
        pack.extend_from_slice(checksum.as_bytes());
        let index = build_index(&mut entries, &checksum);
        fs::File::create(dir.join(format!("{n}.pack")))?.write_all(&pack)?;
        fs::File::create(dir.join(format!("{n}.idx")))?.write_all(&index)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Frame `body` as a stored-block entry of type `kind` (1 commit, 2 tree) and record it.
fn push_entry(
    pack: &mut Vec<u8>,
    entries: &mut Vec<IndexEntry>,
    id: ObjectId,
    kind: u8,
    body: &[u8],
) {
    let start = pack.len();
    // Entry header: type and size, 4 bits then 7 bits a byte.
    let mut size = body.len();
    let mut byte = (kind << 4) | u8::try_from(size & 0x0f).expect("4 bits");
    size >>= 4;
    while size > 0 {
        pack.push(byte | 0x80);
        byte = u8::try_from(size & 0x7f).expect("7 bits");
        size >>= 7;
    }
    pack.push(byte);
    append_zlib_stored(pack, body);
    let mut crc = flate2::Crc::new();
    crc.update(&pack[start..]);
    entries.push(IndexEntry {
        id,
        offset: start as u64,
        crc32: crc.sum(),
    });
}
