//! The resolve pass of [`super::index_pack()`]: give every delta entry its kind and id by
//! applying it to its base, walking each base object's delta tree depth first; bases
//! appended to complete a thin pack (`thin.rs`) are walked the same way.
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

/// Which deltas hang off which entry: (base offset or base id, delta index), sorted for
/// lookups by base.
struct Links {
    by_offset: Vec<(u64, usize)>,
    by_id: Vec<(ObjectId, usize)>,
}

impl Links {
    /// The deltas not resolved yet whose base is `entry` (by its offset, and by its id once
    /// known). A delta whose result has its base's id (hostile, or a duplicate) is resolved
    /// already when its result is looked up, so it is not its own child: no endless walk.
    fn children_of(&self, entry: &Entry, entries: &[Entry]) -> Vec<usize> {
        let mut children: Vec<usize> = matching(&self.by_offset, &entry.offset);
        if let Some(id) = &entry.id {
            children.extend(matching(&self.by_id, id));
        }
        children.retain(|&child| entries.get(child).is_some_and(|e| e.id.is_none()));
        children
    }
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
    /// Resolve every delta reachable from the base object `root`, whose body is `body` and
    /// whose direct deltas are `children`, depth first.
    fn resolve_tree(
        &mut self,
        entries: &mut [Entry],
        root: usize,
        body: Vec<u8>,
        children: Vec<usize>,
        links: &Links,
    ) -> Result<(), Error> {
        let entry = entries
            .get(root)
            .expect("BUG: root indexes come from entries");
        let kind = entry.kind.expect("BUG: base entries have their kind");
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
            if entry.id.is_some() {
                // Resolved meanwhile through another base with the same id (a duplicate).
                continue;
            }
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
            let entry = entries
                .get(child)
                .expect("BUG: child indexes come from entries");
            let grandchildren = links.children_of(entry, entries);
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

/// The resolve pass: every delta of the pack, resolved from the base objects in the pack
/// ([`Resolver::resolve_in_pack()`]) and, for a thin pack, from bases appended to it
/// ([`Resolver::resolve_from()`]).
pub(super) struct Resolver<'a> {
    links: Links,
    walk: Walk<'a>,
    deltas: usize,
}

impl<'a> Resolver<'a> {
    /// Link every delta of `entries` (in pack order) to its base; an OFS_DELTA must point at
    /// the start of an entry.
    pub(super) fn new(
        file: &'a File,
        path: &'a Path,
        entries: &[Entry],
        limits: &'a Limits,
    ) -> Result<Self, Error> {
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
        by_offset.sort_unstable();
        by_id.sort_unstable();
        Ok(Self {
            deltas: by_offset.len() + by_id.len(),
            links: Links { by_offset, by_id },
            walk: Walk {
                file,
                path,
                limits,
                inflater: Decompress::new(true),
                scratch: Vec::new(),
                resolved: 0,
            },
        })
    }

    /// How many deltas are not resolved yet.
    pub(super) fn unresolved(&self) -> usize {
        self.deltas.saturating_sub(self.walk.resolved)
    }

    /// Resolve every delta reachable from a base object of the pack.
    pub(super) fn resolve_in_pack(&mut self, entries: &mut [Entry]) -> Result<(), Error> {
        if self.deltas == 0 {
            return Ok(());
        }
        for root in 0..entries.len() {
            let Some(entry) = entries.get(root) else {
                break;
            };
            if entry.base != Base::None {
                continue;
            }
            let children = self.links.children_of(entry, entries);
            if !children.is_empty() {
                let mut body = Vec::new();
                inflate_entry(
                    self.walk.file,
                    self.walk.path,
                    entry,
                    &mut self.walk.inflater,
                    &mut self.walk.scratch,
                    &mut body,
                )?;
                self.walk
                    .resolve_tree(entries, root, body, children, &self.links)?;
            }
        }
        Ok(())
    }

    /// Resolve every delta reachable from `entries[root]`, a base object whose body is
    /// `body` (one appended to complete a thin pack).
    pub(super) fn resolve_from(
        &mut self,
        entries: &mut [Entry],
        root: usize,
        body: Vec<u8>,
    ) -> Result<(), Error> {
        let entry = entries
            .get(root)
            .expect("BUG: the caller pushed the root entry");
        let children = self.links.children_of(entry, entries);
        if children.is_empty() {
            return Ok(());
        }
        self.walk
            .resolve_tree(entries, root, body, children, &self.links)
    }

    /// The number of deltas, or the error for those left unresolved: a REF_DELTA whose base
    /// is not in the pack ([`Error::BaseNotInPack`]), else a cycle.
    pub(super) fn finish(self, entries: &[Entry]) -> Result<u32, Error> {
        let unresolved = self.unresolved();
        if unresolved > 0 {
            let present: Vec<ObjectId> = {
                let mut ids: Vec<ObjectId> = entries.iter().filter_map(|e| e.id).collect();
                ids.sort_unstable();
                ids
            };
            for entry in entries {
                if let (Base::Id(base), None) = (entry.base, entry.id) {
                    if present.binary_search(&base).is_err() {
                        return Err(Error::BaseNotInPack {
                            offset: entry.offset,
                            base,
                        });
                    }
                }
            }
            return Err(Error::UnresolvedDeltas { count: unresolved });
        }
        Ok(u32::try_from(self.deltas).expect("BUG: at most max_objects (u32) entries"))
    }
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
