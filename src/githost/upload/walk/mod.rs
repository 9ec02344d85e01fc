//! Owns the commit walk of a fetch: which commits the client lacks, given what it wants and
//! the commits both sides have (git's `limit_list` with two colours, without its date slop).
//!
//! Algorithm: one priority queue, newest committer time first; at equal times interesting
//! commits (reached from a want) go before uninteresting ones (reached from a common commit),
//! then first pushed first. An uninteresting commit marks its parents uninteresting; an
//! interesting one is sent and queues its parents, unless they are uninteresting already. The
//! walk stops as soon as no interesting commit is left in the queue. With dates that grow along
//! history this finds exactly the commits reachable from the wants and from no common commit.
//! When dates are equal (a fast producer writes thousands of messages in one second) the tie
//! rule still stops a linear topic at its first common commit, so "one new message" costs one
//! step, not a walk of the whole history (the trap that makes git's server slow there).
//!
//! Invariants: every commit reachable from a want and not from a common commit is sent (dates
//! only decide how much extra may be sent when clocks disagree); a commit in the repository's
//! shallow list is sent without its parents and reported as a boundary; a commit the client
//! says it has shallow (client `shallow` lines) stops the uninteresting colour, since the
//! client lacks its parents; a parent missing on the interesting side is
//! [`Error::Corrupt`](super::super::Error::Corrupt), on the uninteresting side it is ignored.

use std::collections::{BinaryHeap, HashMap, HashSet};

use gix_hash::ObjectId;

use super::super::{commit, Error};
use crate::git::odb::{self, Odb};

/// A commit the walk decided to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub id: ObjectId,
    pub tree: ObjectId,
}

/// The outcome of [`walk()`].
#[derive(Debug, Default)]
pub(crate) struct CommitWalk {
    /// Commits to send, newest first.
    pub sent: Vec<Sent>,
    /// Root trees of common commits next to sent ones: the client has everything they reach.
    pub edge_trees: Vec<ObjectId>,
    /// Sent commits that are shallow here (their parents are not sent).
    pub boundaries: Vec<ObjectId>,
    /// Whether a sent commit has no parents (and is not shallow): the wants reach history the
    /// client did not say it has, so negotiating further may still help.
    pub reached_root: bool,
}

const UNINTERESTING: u8 = 1;
/// Queued (or popped) as interesting.
const QUEUED: u8 = 2;
const SENT: u8 = 4;

/// One queue entry.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    time: i64,
    interesting: bool,
    /// Later entries sort lower at equal time and colour.
    seq: u64,
    id: ObjectId,
    /// `None`: the commit is missing (only on the uninteresting side).
    info: Option<commit::CommitInfo>,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.time
            .cmp(&other.time)
            .then(self.interesting.cmp(&other.interesting))
            .then(other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

struct Walker<'a> {
    odb: &'a mut Odb,
    flags: HashMap<ObjectId, u8>,
    queue: BinaryHeap<Entry>,
    /// Entries in `queue` that are interesting and not yet marked uninteresting.
    interesting: usize,
    seq: u64,
    body: Vec<u8>,
}

impl Walker<'_> {
    /// Read the commit `id` (its parents cleared when it is shallow here); `None` if missing.
    fn read(&mut self, id: ObjectId) -> Result<Option<commit::CommitInfo>, Error> {
        let parsed = match commit::read_object(self.odb, &id, &mut self.body) {
            Ok((gix_object::Kind::Commit, body)) => commit::parse(body),
            Ok(_) => {
                return Err(Error::Corrupt {
                    reason: "a commit's parent is not a commit",
                    id,
                })
            }
            Err(odb::Error::Missing { .. }) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let mut info = parsed.ok_or(Error::Corrupt {
            reason: "a commit is malformed",
            id,
        })?;
        if self.odb.is_shallow(&id)? {
            info.parents.clear();
        }
        Ok(Some(info))
    }

    fn push(&mut self, id: ObjectId, interesting: bool, info: Option<commit::CommitInfo>) {
        self.seq += 1;
        if interesting {
            self.interesting += 1;
        }
        self.queue.push(Entry {
            time: info.as_ref().map_or(i64::MIN, |i| i.time),
            interesting,
            seq: self.seq,
            id,
            info,
        });
    }

    /// Mark `id` uninteresting and queue it to pass the colour on; `false` if it already was.
    fn mark_uninteresting(&mut self, id: ObjectId) -> Result<bool, Error> {
        let flags = self.flags.entry(id).or_default();
        if *flags & UNINTERESTING != 0 {
            return Ok(false);
        }
        let was_queued = *flags & (QUEUED | SENT) == QUEUED;
        *flags |= UNINTERESTING;
        if was_queued {
            // Its interesting entry is still queued and will be skipped.
            self.interesting -= 1;
        }
        let info = self.read(id)?;
        self.push(id, false, info);
        Ok(true)
    }
}

/// Walk from `wants` (commits) against `commons` (commits both sides have).
pub(crate) fn walk(
    odb: &mut Odb,
    wants: &[ObjectId],
    commons: &[ObjectId],
    client_shallow: &HashSet<ObjectId>,
) -> Result<CommitWalk, Error> {
    let mut walker = Walker {
        odb,
        flags: HashMap::new(),
        queue: BinaryHeap::new(),
        interesting: 0,
        seq: 0,
        body: Vec::new(),
    };
    for &id in commons {
        walker.mark_uninteresting(id)?;
    }
    for &id in wants {
        let flags = walker.flags.entry(id).or_default();
        if *flags & (UNINTERESTING | QUEUED) != 0 {
            continue;
        }
        *flags |= QUEUED;
        let info = walker.read(id)?.ok_or(Error::Corrupt {
            reason: "a wanted commit is missing",
            id,
        })?;
        walker.push(id, true, Some(info));
    }

    let mut out = CommitWalk::default();
    let mut sent_parents: Vec<(usize, Vec<ObjectId>)> = Vec::new();
    while walker.interesting > 0 {
        let Some(entry) = walker.queue.pop() else {
            break;
        };
        let flags = walker.flags.get(&entry.id).copied().unwrap_or_default();
        if entry.interesting {
            if flags & UNINTERESTING != 0 {
                continue; // counted off when it was marked
            }
            walker.interesting -= 1;
        }
        let Some(info) = entry.info else {
            continue;
        };
        if !entry.interesting || flags & UNINTERESTING != 0 {
            if client_shallow.contains(&entry.id) {
                continue;
            }
            for &parent in &info.parents {
                walker.mark_uninteresting(parent)?;
            }
            continue;
        }
        walker.flags.insert(entry.id, flags | SENT);
        if walker.odb.is_shallow(&entry.id)? {
            out.boundaries.push(entry.id);
        }
        sent_parents.push((out.sent.len(), info.parents.clone()));
        out.sent.push(Sent {
            id: entry.id,
            tree: info.tree,
        });
        for &parent in &info.parents {
            let flags = walker.flags.entry(parent).or_default();
            if *flags & (UNINTERESTING | QUEUED) != 0 {
                continue;
            }
            *flags |= QUEUED;
            let info = walker.read(parent)?.ok_or(Error::Corrupt {
                reason: "a commit's parent is missing (and not shallow)",
                id: parent,
            })?;
            walker.push(parent, true, Some(info));
        }
    }

    finish(walker, &mut out, &sent_parents);
    Ok(out)
}

/// Drop sent commits that were marked uninteresting after they were sent (clock skew), and
/// find the edges: uninteresting parents of sent commits, whose trees the client has.
fn finish(walker: Walker<'_>, out: &mut CommitWalk, sent_parents: &[(usize, Vec<ObjectId>)]) {
    let flags = walker.flags;
    let keep: Vec<bool> = out
        .sent
        .iter()
        .map(|s| flags.get(&s.id).is_none_or(|f| f & UNINTERESTING == 0))
        .collect();
    let mut edges = HashSet::new();
    for (index, parents) in sent_parents {
        if !keep.get(*index).copied().unwrap_or(false) {
            continue;
        }
        for parent in parents {
            if flags.get(parent).is_some_and(|f| f & UNINTERESTING != 0) {
                edges.insert(*parent);
            }
        }
    }
    // A root that stays home does not make the walk reach a root.
    let boundaries: HashSet<ObjectId> = out.boundaries.iter().copied().collect();
    out.reached_root = sent_parents.iter().any(|(index, parents)| {
        parents.is_empty()
            && keep.get(*index).copied().unwrap_or(false)
            && out
                .sent
                .get(*index)
                .is_some_and(|s| !boundaries.contains(&s.id))
    });
    let mut index = 0;
    out.sent.retain(|_| {
        index += 1;
        keep.get(index - 1).copied().unwrap_or(true)
    });
    out.boundaries
        .retain(|id| flags.get(id).is_none_or(|f| f & UNINTERESTING == 0));
    let mut body = Vec::new();
    let odb = walker.odb;
    for id in edges {
        if let Ok(gix_object::Kind::Commit) = odb.read(&id, &mut body) {
            if let Some(info) = commit::parse(&body) {
                out.edge_trees.push(info.tree);
            }
        }
    }
    out.edge_trees.sort_unstable();
    out.edge_trees.dedup();
}

#[cfg(test)]
mod tests;
