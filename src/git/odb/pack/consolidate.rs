//! Owns consolidation: merging small packs into larger ones so the pack count stays low
//! (tiered, like an LSM tree's compaction: `min_packs` small packs become one, until packs
//! reach `max_objects` and are final).
//!
//! Data flow: take `<git dir>/gitmq-consolidate.lock` (skip if another process holds it) ->
//! list packs with an index and no `.keep` -> keep those below `max_objects` -> once there
//! are `min_packs` of them, take the smallest ones up to `max_objects` objects in all -> merge
//! their (sorted) indexes to find duplicate ids without sorting -> copy their entries, raw and
//! in pack order, into one new pack (each entry's type checked: deltas are not copied, and its
//! CRC-32 checked against its index) -> trailer SHA-1, v2 index -> write, sync, rename pack
//! then index, sync the directory -> remove the old packs, index first. Repeat while enough
//! small packs remain.
//!
//! Cost: each merge level copies and re-hashes the data once (on CPUs without SHA extensions
//! about 1 us per ~300-byte message); with the defaults a message is copied about
//! log_32(1M / batch) times, ~1.3 times for batches of 10,000. The pack count stays below
//! `min_packs` + objects / `max_objects`.
//!
//! Invariants: every object of a removed pack is in the new pack, which is complete and
//! indexed before anything is removed; a reader that has an old pack open keeps reading it
//! (Unix keeps unlinked files alive), and a reader that lists it later finds it gone and
//! rescans into the new pack. Nothing is removed when anything fails. A new pack named like one
//! it merged (the same objects in the same order, after an interrupted merge) is that pack,
//! and stays. No poisoning: each call re-lists the packs.

use std::{
    fs,
    io::{self, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    format::{decode_entry_header, EntryKind, HASH_LEN},
    index::PackIndex,
    write::{Compression, PackStream},
};
use crate::git::fs::{LockError, LockFile, SharedFs};

/// The lock file, in the git directory, held while packs are merged (or pruned).
pub(crate) const LOCK_FILE: &str = "gitmq-consolidate.lock";

/// Returned by `consolidate()` (`Repository::consolidate()`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file system refused.
    #[error("consolidating packs failed at {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An index could not be read.
    #[error("reading the index {path} failed")]
    Index {
        /// The index file.
        path: PathBuf,
        /// The cause.
        source: super::index::Error,
    },
    /// A pack entry does not match its index (corruption): nothing was changed.
    #[error("pack {path} is corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// The pack file.
        path: PathBuf,
        /// The entry's offset.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// Writing the merged pack failed.
    #[error(transparent)]
    Write(#[from] super::write::Error),
    /// The thread running a background consolidation panicked (nothing was removed: old
    /// packs go only after the new one is complete).
    #[error("the consolidation thread panicked")]
    Panicked,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// When and how far packs are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Merge once there are this many packs below `max_objects` (at least 2).
    pub min_packs: usize,
    /// Packs with at least this many objects are final: never merged again. One merge
    /// writes at most about this many objects (bounding its work and memory: ~70 bytes per
    /// object while it runs).
    pub max_objects: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_packs: 32,
            max_objects: 1_000_000,
        }
    }
}

/// What `consolidate()` (`Repository::consolidate()`) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// How many packs were merged (0: nothing to do, or another process was at it).
    pub merged_packs: usize,
    /// Objects written into new packs (counted once per merge).
    pub objects: u64,
    /// Bytes written into new packs.
    pub bytes: u64,
    /// The last new pack, if one was written.
    pub new_pack: Option<PathBuf>,
    /// Packs left out because they hold deltas (written by git, not gitmq).
    pub skipped_with_deltas: usize,
}

/// One listed pack.
#[derive(Debug)]
struct Candidate {
    pack: PathBuf,
    index: PathBuf,
    objects: u64,
}

/// Merge packs of the repository at `git_dir` per `policy`; with `sync`, the new files are
/// fsynced before the old ones are removed.
pub fn consolidate(
    fs: &SharedFs,
    git_dir: &Path,
    policy: Policy,
    sync: bool,
) -> Result<Report, Error> {
    let Some(_lock) = try_lock(fs, git_dir, Duration::ZERO)? else {
        return Ok(Report::default());
    };
    let pack_dir = &git_dir.join("objects").join("pack");
    let mut candidates = list(pack_dir, policy.max_objects)?;
    let mut report = Report::default();
    loop {
        if candidates.len() < policy.min_packs.max(2) {
            return Ok(report);
        }
        candidates.sort_by_key(|c| c.objects);
        // The smallest packs, up to the ceiling in all (but at least two).
        let mut sum = 0u64;
        let last = candidates
            .iter()
            .position(|c| {
                sum += c.objects;
                sum > policy.max_objects
            })
            .map_or(candidates.len() - 1, |over| over.saturating_sub(1).max(1));
        let chosen: Vec<Candidate> = candidates.drain(..=last).collect();
        match merge(fs, pack_dir, &chosen, sync)? {
            Merged::Done(new_pack, objects, bytes) => {
                // The merged pack may have the name of one it merged (the same objects in the
                // same order: a merge interrupted before its old packs went, merged again):
                // that one is the result, and stays.
                for old in chosen.iter().filter(|old| old.pack != new_pack) {
                    let _ = fs.remove_file(&old.index);
                    let _ = fs.remove_file(&old.pack);
                }
                report.merged_packs += chosen.len();
                report.objects += objects;
                report.bytes += bytes;
                if objects < policy.max_objects {
                    candidates.push(Candidate {
                        index: new_pack.with_extension("idx"),
                        pack: new_pack.clone(),
                        objects,
                    });
                }
                report.new_pack = Some(new_pack);
            }
            Merged::HasDeltas(position) => {
                // Leave that pack alone and try again without it.
                report.skipped_with_deltas += 1;
                let mut chosen = chosen;
                chosen.remove(position);
                candidates.extend(chosen);
            }
        }
    }
}

fn list(pack_dir: &Path, max_objects: u64) -> Result<Vec<Candidate>, Error> {
    let mut out = Vec::new();
    for entry in fs::read_dir(pack_dir).map_err(io_err(pack_dir))? {
        let entry = entry.map_err(io_err(pack_dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name
            .strip_prefix("pack-")
            .and_then(|n| n.strip_suffix(".pack"))
        else {
            continue;
        };
        if stem.len() != 40 || !stem.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let pack = entry.path();
        let index = pack.with_extension("idx");
        if !index.is_file() || pack.with_extension("keep").exists() {
            continue;
        }
        let Some(objects) = index_object_count(&index)? else {
            continue;
        };
        if objects < max_objects {
            out.push(Candidate {
                pack,
                index,
                objects,
            });
        }
    }
    Ok(out)
}

/// The object count of a v2 index (fan-out entry 255), without reading the whole index.
fn index_object_count(path: &Path) -> Result<Option<u64>, Error> {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io_err(path)(err)),
    };
    let mut head = [0u8; 8 + 256 * 4];
    if file.read_exact(&mut head).is_err() || head[..4] != super::format::IDX_V2_MAGIC {
        return Ok(None);
    }
    let last = super::format::read_u32(&head, 8 + 255 * 4).unwrap_or(0);
    Ok(Some(u64::from(last)))
}

enum Merged {
    Done(PathBuf, u64, u64),
    /// The chosen pack at this position holds a delta.
    HasDeltas(usize),
}

/// One entry to copy, in pack order (20 bytes: one per object of the merged packs).
struct Entry {
    offset: u64,
    len: u32,
    pack: u32,
    position: u32,
}

fn merge(
    fs: &SharedFs,
    pack_dir: &Path,
    chosen: &[Candidate],
    sync: bool,
) -> Result<Merged, Error> {
    let mut indexes = Vec::with_capacity(chosen.len());
    for candidate in chosen {
        let data = fs::read(&candidate.index).map_err(io_err(&candidate.index))?;
        indexes.push(PackIndex::from_bytes(data).map_err(|source| Error::Index {
            path: candidate.index.clone(),
            source,
        })?);
    }
    let duplicate = merge_ids(&indexes);
    let mut entries = Vec::new();
    for (pack_no, (candidate, index)) in chosen.iter().zip(&indexes).enumerate() {
        let pack_len = fs::metadata(&candidate.pack)
            .map_err(io_err(&candidate.pack))?
            .len();
        let order = index.pack_order();
        for (i, &position) in order.iter().enumerate() {
            let offset = index.offset_at(position);
            let end = order
                .get(i + 1)
                .map_or(pack_len.saturating_sub(HASH_LEN as u64), |&next| {
                    index.offset_at(next)
                });
            if duplicate[pack_no][position as usize] {
                continue;
            }
            let corrupt = |reason| Error::Corrupt {
                path: candidate.pack.clone(),
                offset,
                reason,
            };
            entries.push(Entry {
                offset,
                len: u32::try_from(end.saturating_sub(offset))
                    .map_err(|_| corrupt("entry larger than 4 GiB"))?,
                pack: u32::try_from(pack_no).map_err(|_| corrupt("too many packs"))?,
                position,
            });
        }
    }

    let count = u32::try_from(entries.len()).map_err(|_| Error::Corrupt {
        path: pack_dir.to_owned(),
        offset: 0,
        reason: "more than 2^32 objects",
    })?;
    let stream = PackStream::create(fs, pack_dir, count, Compression::Stored)?;
    match copy_entries(stream, chosen, &indexes, &entries)? {
        Copied::Done(stream) => {
            let bytes = stream.byte_len() + HASH_LEN as u64;
            let (written, _) = stream.finish(pack_dir, sync)?;
            Ok(Merged::Done(written.pack_path, u64::from(count), bytes))
        }
        // The stream is dropped unfinished: its temporary file goes.
        Copied::Delta(pack_no) => Ok(Merged::HasDeltas(pack_no)),
    }
}

/// Merge the sorted ids of `indexes`: per pack, which positions repeat an id seen in an
/// earlier pack (the empty tree is in every gitmq pack). No sort: each index is sorted
/// already.
fn merge_ids(indexes: &[PackIndex]) -> Vec<Vec<bool>> {
    use std::{cmp::Reverse, collections::BinaryHeap};
    let mut duplicate: Vec<Vec<bool>> = indexes
        .iter()
        .map(|i| vec![false; i.len() as usize])
        .collect();
    let mut heads: BinaryHeap<Reverse<(&gix_hash::oid, u32, u32)>> = BinaryHeap::new();
    for (pack, index) in (0u32..).zip(indexes) {
        if !index.is_empty() {
            heads.push(Reverse((index.id_at(0), pack, 0)));
        }
    }
    let mut last: Option<&gix_hash::oid> = None;
    while let Some(Reverse((id, pack, position))) = heads.pop() {
        if last == Some(id) {
            duplicate[pack as usize][position as usize] = true;
        } else {
            last = Some(id);
        }
        let index = &indexes[pack as usize];
        if position + 1 < index.len() {
            heads.push(Reverse((index.id_at(position + 1), pack, position + 1)));
        }
    }
    duplicate
}

enum Copied {
    /// Every entry copied: the pack, to finish.
    Done(Box<PackStream>),
    /// This chosen pack holds a delta.
    Delta(usize),
}

/// Copy `entries` from their packs into `stream`, raw, checking each one's type and CRC-32.
fn copy_entries(
    mut stream: PackStream,
    chosen: &[Candidate],
    indexes: &[PackIndex],
    entries: &[Entry],
) -> Result<Copied, Error> {
    let mut reader: Option<(usize, io::BufReader<fs::File>, u64)> = None;
    let mut raw = Vec::new();
    for entry in entries {
        let pack_no = entry.pack as usize;
        let candidate = &chosen[pack_no];
        if reader.as_ref().is_none_or(|(pack, _, _)| *pack != pack_no) {
            let file = fs::File::open(&candidate.pack).map_err(io_err(&candidate.pack))?;
            reader = Some((pack_no, io::BufReader::with_capacity(1 << 20, file), 0));
        }
        let (_, input, position) = reader.as_mut().expect("BUG: opened above");
        if *position != entry.offset {
            input
                .seek(SeekFrom::Start(entry.offset))
                .map_err(io_err(&candidate.pack))?;
        }
        let corrupt = |reason| Error::Corrupt {
            path: candidate.pack.clone(),
            offset: entry.offset,
            reason,
        };
        let len = usize::try_from(entry.len).map_err(|_| corrupt("entry too large"))?;
        raw.resize(len, 0);
        input
            .read_exact(&mut raw)
            .map_err(io_err(&candidate.pack))?;
        *position = entry.offset + u64::from(entry.len);
        match decode_entry_header(&raw) {
            Some((EntryKind::Base(_), _, _)) => {}
            Some(_) => return Ok(Copied::Delta(pack_no)),
            None => return Err(corrupt("bad entry header")),
        }
        let mut crc = flate2::Crc::new();
        crc.update(&raw);
        let index = &indexes[pack_no];
        if crc.sum() != index.crc32_at(entry.position) {
            return Err(corrupt("CRC-32 does not match the index"));
        }
        stream
            .add_raw(index.id_at(entry.position), &raw, crc.sum())
            .map_err(io_err(&candidate.pack))?;
    }
    Ok(Copied::Done(Box::new(stream)))
}

/// Take the pack lock of the repository at `git_dir` (also taken by
/// [`crate::queue::prune`], so a prune and a consolidation never run at once), waiting up to
/// `timeout`; `None` if another live process holds it.
pub(crate) fn try_lock(
    fs: &SharedFs,
    git_dir: &Path,
    timeout: Duration,
) -> Result<Option<LockFile>, Error> {
    match LockFile::hold(fs, &git_dir.join(LOCK_FILE), timeout) {
        Ok(lock) => Ok(Some(lock)),
        Err(LockError::Locked { .. }) => Ok(None),
        Err(LockError::Io { path, source }) => Err(Error::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use gix_hash::ObjectId;

    use super::*;
    use crate::git::{
        hash::object_id,
        odb::pack::write::{build_index, IndexEntry},
    };

    fn index_of(bodies: &[&str]) -> PackIndex {
        let mut entries: Vec<IndexEntry> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| IndexEntry {
                id: object_id(gix_object::Kind::Blob, b.as_bytes()),
                offset: 12 + i as u64 * 10,
                crc32: 0,
            })
            .collect();
        let checksum = ObjectId::empty_tree(crate::git::hash::OBJECT_HASH);
        PackIndex::from_bytes(build_index(&mut entries, &checksum)).unwrap()
    }

    #[test]
    fn repeated_ids_are_flagged_in_later_packs_only() {
        let a = index_of(&["x", "y", "shared"]);
        let b = index_of(&["shared", "z"]);
        let indexes = [a, b];
        let duplicate = merge_ids(&indexes);
        assert_eq!(duplicate[0].iter().filter(|d| **d).count(), 0);
        assert_eq!(
            duplicate[1].iter().filter(|d| **d).count(),
            1,
            "'shared' repeats in b"
        );
    }
}
