//! The resolve pass of [`super::index_pack()`]: give every delta entry its kind and id by
//! applying it to its base, walking each base object's delta tree depth first.
//!
//! Invariants: a base body is read back from the temporary pack only if some delta needs it;
//! the walk keeps the bodies of the bases on the current path that still have deltas to
//! resolve (a base is dropped as its last delta is applied, so a linear chain holds one
//! body), at most [`Limits::max_chain_len`] of them and [`Limits::max_resolve_memory`]
//! bytes; every size was checked against [`Limits::max_object_size`] by
//! the stream pass or is checked by [`delta::apply()`] before allocating.

use std::{fs::File, os::unix::fs::FileExt, path::Path};

use flate2::{Decompress, FlushDecompress, Status};
use gix_hash::ObjectId;

use super::{io_err, Base, Entry, Error, Limits};
use crate::{git::hash::object_id, git::odb::pack::delta};

/// Compressed bytes read back from the temporary pack at a time.
const READ_CHUNK_LEN: usize = 64 << 10;

/// One level of the depth-first walk: a resolved object and the deltas against it.
struct Frame {
    kind: gix_object::Kind,
    body: Vec<u8>,
    children: Vec<usize>,
    next: usize,
}

/// The state of the resolve pass shared by every delta tree.
struct Walk<'a> {
    file: &'a File,
    path: &'a Path,
    limits: &'a Limits,
    inflater: Decompress,
    scratch: Vec<u8>,
    resolved: usize,
}

impl Walk<'_> {
    /// Resolve every delta reachable from the base object `root`, whose direct deltas are
    /// `children`, depth first.
    fn resolve_tree(
        &mut self,
        entries: &mut [Entry],
        root: usize,
        children: Vec<usize>,
        children_of: &dyn Fn(&Entry) -> Vec<usize>,
    ) -> Result<(), Error> {
        let entry = entries
            .get(root)
            .expect("BUG: root indexes come from entries");
        let kind = entry.kind.expect("BUG: base entries have their kind");
        let mut body = Vec::new();
        inflate_entry(
            self.file,
            self.path,
            entry,
            &mut self.inflater,
            &mut self.scratch,
            &mut body,
        )?;
        let mut held = body.len();
        let mut stack = vec![Frame {
            kind,
            body,
            children,
            next: 0,
        }];
        while let Some(frame) = stack.last_mut() {
            let Some(&child) = frame.children.get(frame.next) else {
                held -= frame.body.len();
                stack.pop();
                continue;
            };
            frame.next += 1;
            let entry = entries
                .get(child)
                .expect("BUG: child indexes come from entries");
            let mut delta_data = Vec::new();
            inflate_entry(
                self.file,
                self.path,
                entry,
                &mut self.inflater,
                &mut self.scratch,
                &mut delta_data,
            )?;
            let mut result = Vec::new();
            delta::apply(
                &frame.body,
                &delta_data,
                self.limits.max_object_size,
                &mut result,
            )
            .map_err(|source| Error::Delta {
                offset: entry.offset,
                source,
            })?;
            let kind = frame.kind;
            if frame.next == frame.children.len() {
                // The base's last delta: drop the base now, so a linear chain holds one body.
                held -= frame.body.len();
                stack.pop();
            }
            let id = object_id(kind, &result);
            let entry = entries
                .get_mut(child)
                .expect("BUG: child indexes come from entries");
            entry.kind = Some(kind);
            entry.id = Some(id);
            self.resolved += 1;
            let grandchildren = children_of(entry);
            if !grandchildren.is_empty() {
                held += result.len();
                if stack.len() >= self.limits.max_chain_len
                    || held as u64 > self.limits.max_resolve_memory
                {
                    return Err(Error::ChainTooLong {
                        offset: entry.offset,
                        limit: self.limits.max_chain_len,
                        memory: self.limits.max_resolve_memory,
                    });
                }
                stack.push(Frame {
                    kind,
                    body: result,
                    children: grandchildren,
                    next: 0,
                });
            }
        }
        Ok(())
    }
}

/// Resolve every delta in `entries` (in pack order); the number of deltas.
pub(super) fn resolve_deltas(
    file: &File,
    path: &Path,
    entries: &mut [Entry],
    limits: &Limits,
) -> Result<u32, Error> {
    // (base offset or base id, delta index), sorted for lookups by base.
    let mut by_offset: Vec<(u64, usize)> = Vec::new();
    let mut by_id: Vec<(ObjectId, usize)> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        match entry.base {
            Base::None => {}
            Base::Offset(base) => {
                if entries.binary_search_by_key(&base, |e| e.offset).is_err() {
                    return Err(Error::BadEntry {
                        offset: entry.offset,
                        reason: "delta base offset is not the start of an entry",
                    });
                }
                by_offset.push((base, index));
            }
            Base::Id(id) => by_id.push((id, index)),
        }
    }
    let deltas = by_offset.len() + by_id.len();
    if deltas == 0 {
        return Ok(0);
    }
    by_offset.sort_unstable();
    by_id.sort_unstable();
    let children_of = |entry: &Entry| -> Vec<usize> {
        let mut children: Vec<usize> = matching(&by_offset, &entry.offset);
        if let Some(id) = &entry.id {
            children.extend(matching(&by_id, id));
        }
        children
    };

    let mut walk = Walk {
        file,
        path,
        limits,
        inflater: Decompress::new(true),
        scratch: Vec::new(),
        resolved: 0,
    };
    for root in 0..entries.len() {
        let Some(entry) = entries.get(root) else {
            break;
        };
        if entry.base != Base::None {
            continue;
        }
        let children = children_of(entry);
        if !children.is_empty() {
            walk.resolve_tree(entries, root, children, &children_of)?;
        }
    }
    let resolved = walk.resolved;

    if resolved < deltas {
        let present: Vec<ObjectId> = {
            let mut ids: Vec<ObjectId> = entries.iter().filter_map(|e| e.id).collect();
            ids.sort_unstable();
            ids
        };
        for entry in entries.iter() {
            if let (Base::Id(base), None) = (entry.base, entry.id) {
                if present.binary_search(&base).is_err() {
                    return Err(Error::BaseNotInPack {
                        offset: entry.offset,
                        base,
                    });
                }
            }
        }
        return Err(Error::UnresolvedDeltas {
            count: deltas - resolved,
        });
    }
    Ok(u32::try_from(deltas).expect("BUG: at most max_objects (u32) entries"))
}

/// The second elements of the pairs in sorted `pairs` whose first element is `key`.
fn matching<K: Ord>(pairs: &[(K, usize)], key: &K) -> Vec<usize> {
    let start = pairs.partition_point(|(k, _)| k < key);
    pairs
        .get(start..)
        .unwrap_or_default()
        .iter()
        .take_while(|(k, _)| k == key)
        .map(|&(_, index)| index)
        .collect()
}

/// Inflate `entry`'s zlib stream from the temporary pack into `out` (exactly its size, which
/// the stream pass checked against the limit).
fn inflate_entry(
    file: &File,
    path: &Path,
    entry: &Entry,
    inflater: &mut Decompress,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let size = usize::try_from(entry.size).map_err(|_| Error::ObjectTooLarge {
        offset: entry.offset,
        size: entry.size,
        limit: usize::MAX as u64,
    })?;
    out.clear();
    // One spare byte, so a stream that inflates past its size shows as too long.
    out.reserve_exact(size.saturating_add(1));
    inflater.reset(true);
    let corrupt = |reason| Error::BadEntry {
        offset: entry.offset,
        reason,
    };
    let mut at = entry.data_offset;
    let mut ended = false;
    while at < entry.end && !ended {
        let len = usize::try_from(entry.end - at)
            .unwrap_or(usize::MAX)
            .min(READ_CHUNK_LEN);
        scratch.resize(len, 0);
        file.read_exact_at(scratch, at).map_err(io_err(path))?;
        let mut input: &[u8] = scratch;
        while !input.is_empty() {
            let before = inflater.total_in();
            let status = inflater
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|source| Error::Zlib {
                    offset: entry.offset,
                    source,
                })?;
            let consumed = usize::try_from(inflater.total_in() - before).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            if status == Status::StreamEnd {
                ended = true;
                break;
            }
            if consumed == 0 {
                return Err(corrupt("zlib stream inflates past its size"));
            }
        }
        at += len as u64;
    }
    if !ended || out.len() != size {
        return Err(corrupt("zlib stream inflates to another size on re-read"));
    }
    Ok(())
}
