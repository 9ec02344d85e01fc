//! Owns walking a topic's history: the first-parent chain from its head back to a stop (a
//! consumer's position), and the chain a consumer's backlog plans its oldest-first delivery with.
//!
//! Order: a topic's messages are its head's first-parent chain, oldest first. A merge commit
//! on that chain (a joined topic) is one message, delivered in its place on the chain with
//! its own payload; the commits it merged in are not walked (they belong to other topics).
//!
//! Invariants:
//! - The walk follows first parents only and never consults commit dates, so equal or
//!   backwards timestamps cannot reorder or slow it.
//! - A step reads only a commit's first two lines ([`first_parent()`](crate::git::message::parent::first_parent)); each commit
//!   is located once per walk, and a consumer's backlog reads each message's body once to deliver
//!   it.
//! - A shallow commit (listed in `<git dir>/shallow`, left by a [`prune`](crate::queue::prune)) ends
//!   the chain like a root: its absent parent is never looked up. A stop equal to that
//!   absent parent (a position at the last pruned message) counts as met; a stop older than
//!   the boundary is [`Error::Pruned`], never a missing-object error. A boundary set while a
//!   walk runs is found by reading the shallow file again when a parent is missing.
//! - Memory is bounded by the segment limit, not the backlog: a backlog longer than that
//!   keeps one id per segment and walks each later segment again when it is reached.

use gix_hash::ObjectId;

use crate::{
    git::hash::OBJECT_HASH,
    git::message::MessageRef,
    git::odb::{pack::set::Near, Location, Odb},
    Message,
};

/// Returned by [`ids_after()`], [`count_after()`], [`read_message()`], [`step_back()`],
/// and [`FirstParents`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading an object failed.
    #[error(transparent)]
    Odb(#[from] crate::git::odb::Error),
    /// A commit did not decode.
    #[error(transparent)]
    Message(#[from] crate::git::message::Error),
    /// A commit's first lines are not a tree and a first parent.
    #[error("commit {id} is corrupt")]
    Parent {
        /// The commit.
        id: ObjectId,
        /// What is wrong.
        source: crate::git::message::parent::Malformed,
    },
    /// An object on the chain is not a commit.
    #[error("object {id} on the topic's history is a {kind}, not a commit")]
    NotACommit {
        /// The object.
        id: ObjectId,
        /// Its kind.
        kind: gix_object::Kind,
    },
    /// The stop (a consumer's position) is not on the first-parent chain of the head.
    #[error("position {stop} is not on the topic's history (head {head}): was the topic rewritten or pruned?")]
    NotOnTopic {
        /// The stop that was never reached.
        stop: ObjectId,
        /// The head the walk started from.
        head: ObjectId,
    },
    /// The stop (a consumer's position) is older than the topic's kept history: the chain
    /// ends at the shallow boundary `at`, and `stop` was pruned.
    #[error("history pruned at {at}: position {stop} is older than the oldest message kept on the topic (head {head}); move the position (or prune with --force, which does)")]
    Pruned {
        /// The shallow boundary: the oldest message kept.
        at: ObjectId,
        /// The stop that was never reached.
        stop: ObjectId,
        /// The head the walk started from.
        head: ObjectId,
    },
    /// A walk that must retrace an earlier one did not (the repository changed under it,
    /// or a commit is corrupt).
    #[error("the history below {top} changed while it was being read")]
    Diverged {
        /// Where the retraced walk started.
        top: ObjectId,
    },
}

/// What one step back along a first-parent chain found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The commit is stored at `location`; the chain goes on to `parent` (`None`: a root).
    Commit {
        /// Where the commit is stored.
        location: Location,
        /// Its first parent.
        parent: Option<ObjectId>,
    },
    /// The commit is stored at `location` and is a shallow boundary: its first parent
    /// `pruned` (and everything older) was pruned, so the chain ends here.
    Boundary {
        /// Where the commit is stored.
        location: Location,
        /// Its first parent as written in the commit, absent from the repository.
        pruned: ObjectId,
    },
    /// The commit is absent because the one walked before it became a shallow boundary
    /// while this walk ran (a prune finished in between): the chain ended there.
    Beyond {
        /// The boundary: the commit walked before.
        boundary: ObjectId,
    },
}

/// One step back: where `id` is stored, and where the chain goes next. `near` is where the
/// previous step found its commit, and becomes where this one found `id`; `previous` is the
/// commit walked before (whose first parent is `id`). A commit listed in the shallow file
/// ends the chain ([`Step::Boundary`]); a missing `id` whose child `previous` turns out to be
/// shallow (the list is read again to find out) is [`Step::Beyond`].
pub fn step_back(
    odb: &mut Odb,
    id: &ObjectId,
    previous: Option<&ObjectId>,
    near: &mut Option<Near>,
    scratch: &mut Vec<u8>,
) -> Result<Step, Error> {
    step_back_with(odb, id, previous, near, scratch, false)
}

/// A walk takes its parents from git's commit-graph after this many steps: a short walk
/// does not read the graph file (its ids and first parents: 24 bytes per commit).
pub(crate) const GRAPH_AFTER_STEPS: u64 = 1024;

/// [`step_back()`], taking the first parent from git's commit-graph when `use_graph` and the
/// graph lists `id` with a parent (a root is confirmed from the commit itself): the commit is
/// then not read at all, which for a pack git wrote (deflated, deltas) is an inflation and a
/// delta chain saved. What the graph said is checked when the message is delivered (its
/// decoded first parent must be the id delivered before it).
pub(crate) fn step_back_with(
    odb: &mut Odb,
    id: &ObjectId,
    previous: Option<&ObjectId>,
    near: &mut Option<Near>,
    scratch: &mut Vec<u8>,
    use_graph: bool,
) -> Result<Step, Error> {
    let (location, found) = match odb.locate_near(id, *near) {
        Ok(found) => found,
        Err(crate::git::odb::Error::Missing { id: missing }) => {
            if let Some(previous) = previous {
                odb.reload_shallow()?;
                if odb.is_shallow(previous)? {
                    return Ok(Step::Beyond {
                        boundary: *previous,
                    });
                }
            }
            return Err(crate::git::odb::Error::Missing { id: missing }.into());
        }
        Err(err) => return Err(err.into()),
    };
    *near = found;
    if use_graph {
        if let crate::git::odb::commit_graph::FirstParent::Some(parent) = odb.graph_first_parent(id)
        {
            return Ok(if odb.is_shallow(id)? {
                Step::Boundary {
                    location,
                    pruned: parent,
                }
            } else {
                Step::Commit {
                    location,
                    parent: Some(parent),
                }
            });
        }
    }
    let (kind, prefix) = odb.object_prefix_at(
        &location,
        crate::git::message::parent::FIRST_PARENT_PREFIX_LEN,
        scratch,
    )?;
    if kind != gix_object::Kind::Commit {
        return Err(Error::NotACommit { id: *id, kind });
    }
    let parent = crate::git::message::parent::first_parent(prefix)
        .map_err(|source| Error::Parent { id: *id, source })?;
    Ok(match parent {
        Some(pruned) if odb.is_shallow(id)? => Step::Boundary { location, pruned },
        parent => Step::Commit { location, parent },
    })
}

/// One step back: where `id` is stored, and its first parent (`None` at a root or a shallow
/// boundary). See [`step_back()`], which tells those apart.
pub fn step(
    odb: &mut Odb,
    id: &ObjectId,
    near: &mut Option<Near>,
    scratch: &mut Vec<u8>,
) -> Result<(Location, Option<ObjectId>), Error> {
    step_with(odb, id, near, scratch, false)
}

/// [`step()`], with the commit-graph when `use_graph` (see [`step_back_with()`]).
pub(crate) fn step_with(
    odb: &mut Odb,
    id: &ObjectId,
    near: &mut Option<Near>,
    scratch: &mut Vec<u8>,
    use_graph: bool,
) -> Result<(Location, Option<ObjectId>), Error> {
    match step_back_with(odb, id, None, near, scratch, use_graph)? {
        Step::Commit { location, parent } => Ok((location, parent)),
        Step::Boundary { location, .. } => Ok((location, None)),
        Step::Beyond { .. } => {
            unreachable!("BUG: step_back() without `previous` never goes beyond")
        }
    }
}

/// The walk of a first-parent chain from a head down to a stop, one commit at a time: what
/// [`count_after()`], [`ids_after()`] and [`Backlog::plan()`] share.
#[derive(Debug)]
pub(crate) struct Chain {
    head: ObjectId,
    stop: Option<ObjectId>,
    next: Option<ObjectId>,
    previous: Option<ObjectId>,
    near: Option<Near>,
    /// The shallow boundary the chain ended at, if it did.
    boundary: Option<ObjectId>,
    /// Whether `stop` was met.
    stopped: bool,
    /// Steps taken (the commit-graph is used after [`GRAPH_AFTER_STEPS`]).
    steps: u64,
}

impl Chain {
    pub(crate) fn new(head: ObjectId, stop: Option<ObjectId>) -> Self {
        Self {
            head,
            stop,
            next: Some(head),
            previous: None,
            near: None,
            boundary: None,
            stopped: false,
            steps: 0,
        }
    }

    /// The next commit, newest first, with where it is stored; `None` at the stop, a root or
    /// a shallow boundary.
    pub(crate) fn next(
        &mut self,
        odb: &mut Odb,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<(ObjectId, Location)>, Error> {
        let Some(id) = self.next.take() else {
            return Ok(None);
        };
        if Some(id) == self.stop {
            self.stopped = true;
            return Ok(None);
        }
        self.steps += 1;
        let use_graph = self.steps > GRAPH_AFTER_STEPS;
        let previous = self.previous.as_ref();
        match step_back_with(odb, &id, previous, &mut self.near, scratch, use_graph)? {
            Step::Commit { location, parent } => {
                self.next = parent;
                self.previous = Some(id);
                Ok(Some((id, location)))
            }
            Step::Boundary { location, pruned } => {
                // A position at the last pruned message has read everything before the
                // boundary: it is met without its commit being read.
                self.stopped = Some(pruned) == self.stop;
                self.boundary = Some(id);
                Ok(Some((id, location)))
            }
            Step::Beyond { boundary } => {
                self.boundary = Some(boundary);
                Ok(None)
            }
        }
    }

    /// After the last [`next()`](Self::next): an error if there was a stop and the walk
    /// ended without meeting it. [`Error::Pruned`] when the stop is older than the
    /// boundary the chain ended at (it is absent), else [`Error::NotOnTopic`].
    pub(crate) fn finish(&self, odb: &mut Odb) -> Result<(), Error> {
        match self.stop {
            Some(stop) if !self.stopped => match self.boundary {
                Some(at) if !odb.contains(&stop) => Err(Error::Pruned {
                    at,
                    stop,
                    head: self.head,
                }),
                _ => Err(Error::NotOnTopic {
                    stop,
                    head: self.head,
                }),
            },
            _ => Ok(()),
        }
    }
}

/// The first-parent chain from a head, newest first: each commit with its first parent
/// (`None` at a root or a shallow boundary). The one chain iterator of gitmq: each step reads
/// only a commit's first lines, and dates are never read.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// # let dir = tempfile::tempdir().expect("temp dir");
/// # let repo = gitmq::Repository::init(dir.path())?;
/// # let topic = gitmq::TopicName::new("t")?;
/// let ids = repo.producer(&topic).publish_batch([&b"1"[..], b"2", b"3"])?;
/// let (mut odb, mut scratch) = (repo.odb(), Vec::new());
/// let chain: Vec<_> = gitmq::git::walk::FirstParents::new(&mut odb, Some(ids[2]), &mut scratch)
///     .map(|step| step.map(|(id, _)| id))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(chain, [ids[2], ids[1], ids[0]]);
/// assert!(gitmq::git::walk::is_on_chain(&mut odb, ids[2], ids[0], None, &mut scratch)?);
/// assert!(!gitmq::git::walk::is_on_chain(&mut odb, ids[0], ids[2], None, &mut scratch)?);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FirstParents<'a> {
    odb: &'a mut Odb,
    scratch: &'a mut Vec<u8>,
    chain: Chain,
}

impl<'a> FirstParents<'a> {
    /// The chain from `head` (empty for `None`).
    pub fn new(odb: &'a mut Odb, head: Option<ObjectId>, scratch: &'a mut Vec<u8>) -> Self {
        let mut chain = Chain::new(head.unwrap_or_else(|| ObjectId::null(OBJECT_HASH)), None);
        chain.next = head;
        Self {
            odb,
            scratch,
            chain,
        }
    }
}

impl Iterator for FirstParents<'_> {
    type Item = Result<(ObjectId, Option<ObjectId>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.chain.next(self.odb, self.scratch) {
            Ok(Some((id, _))) => Some(Ok((id, self.chain.next))),
            Ok(None) => None,
            Err(err) => {
                self.chain.next = None;
                Some(Err(err))
            }
        }
    }
}

/// Whether `target` is on the first-parent chain from `from` (`from` itself included). The
/// walk gives up, answering no, at a root, at a shallow boundary, or on meeting `give_up_at`
/// below `from` (a commit known to be older than anything of interest).
pub fn is_on_chain(
    odb: &mut Odb,
    from: ObjectId,
    target: ObjectId,
    give_up_at: Option<ObjectId>,
    scratch: &mut Vec<u8>,
) -> Result<bool, Error> {
    for step in FirstParents::new(odb, Some(from), scratch) {
        let (id, _) = step?;
        if id == target {
            return Ok(true);
        }
        if Some(id) == give_up_at && id != from {
            return Ok(false);
        }
    }
    Ok(false)
}

/// Whether `older` lies on the first-parent chain below `newer` (or is it), when the caller
/// does not know which of the two is ahead: both chains are walked down together, one step
/// each in turn, so the cost is about twice the distance between them whichever is ahead,
/// and a walk to the root only when they are on different chains. Exact: `true` only when
/// `older` is on `newer`'s first-parent chain.
pub fn is_at_or_below(
    odb: &mut Odb,
    buf: &mut Vec<u8>,
    older: ObjectId,
    newer: ObjectId,
) -> Result<bool, Error> {
    let (mut down_from_newer, mut down_from_older) = (Some(newer), Some(older));
    let (mut near_newer, mut near_older) = (None, None);
    while down_from_newer.is_some() || down_from_older.is_some() {
        if let Some(id) = down_from_newer {
            if id == older {
                return Ok(true);
            }
            down_from_newer = step(odb, &id, &mut near_newer, buf)?.1;
        }
        if let Some(id) = down_from_older {
            if id == newer {
                return Ok(false);
            }
            down_from_older = step(odb, &id, &mut near_older, buf)?.1;
        }
    }
    Ok(false)
}

/// How many messages follow `stop` (exclusive) up to `head` (inclusive); with `stop ==
/// None`, the whole chain (down to a root or a shallow boundary). O(count) time, O(1)
/// memory.
pub fn count_after(
    odb: &mut Odb,
    head: ObjectId,
    stop: Option<ObjectId>,
    scratch: &mut Vec<u8>,
) -> Result<u64, Error> {
    let mut count = 0;
    let mut chain = Chain::new(head, stop);
    while chain.next(odb, scratch)?.is_some() {
        count += 1;
    }
    chain.finish(odb)?;
    Ok(count)
}

/// The ids of the messages after `stop` (exclusive) up to `head` (inclusive), oldest first.
/// With `stop == None`, the whole chain (down to a root or a shallow boundary). Holds every
/// id: prefer a consumer (its backlog is bounded) to read a long history.
pub fn ids_after(
    odb: &mut Odb,
    head: ObjectId,
    stop: Option<ObjectId>,
    buf: &mut Vec<u8>,
) -> Result<Vec<ObjectId>, Error> {
    let mut ids = Vec::new();
    let mut chain = Chain::new(head, stop);
    while let Some((id, _)) = chain.next(odb, buf)? {
        ids.push(id);
    }
    chain.finish(odb)?;
    ids.reverse();
    Ok(ids)
}

/// Read and decode the message `id`.
pub fn read_message(odb: &mut Odb, id: ObjectId, buf: &mut Vec<u8>) -> Result<Message, Error> {
    odb.read_commit(&id, buf)?;
    Ok(MessageRef::from_bytes(id, buf)?.into_owned())
}

#[cfg(test)]
mod is_at_or_below_tests {
    use super::*;
    use crate::{Repository, TopicName};

    #[test]
    fn the_newer_of_two_commits_of_a_chain_is_told_either_way_round() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let topic = TopicName::new("t").unwrap();
        let ids = repo
            .producer(&topic)
            .publish_batch((0..20).map(|i| format!("m{i}").into_bytes()))
            .unwrap();
        let other = repo
            .producer(&TopicName::new("other").unwrap())
            .publish(b"elsewhere")
            .unwrap();
        let (mut odb, mut buf) = (repo.odb(), Vec::new());
        let mut at_or_below =
            |older, newer| is_at_or_below(&mut odb, &mut buf, older, newer).unwrap();
        assert!(at_or_below(ids[3], ids[17]));
        assert!(!at_or_below(ids[17], ids[3]));
        assert!(at_or_below(ids[5], ids[5]));
        assert!(!at_or_below(other, ids[19]) && !at_or_below(ids[0], other));
    }
}
