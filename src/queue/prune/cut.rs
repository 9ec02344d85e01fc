//! Owns choosing where a topic's history is cut (`find`) and what lies below the cut
//! (`census`): how many messages go, which consumer positions and other refs name them.
//!
//! Invariants: read-only; walks first parents only, from the head down, and stops at a root
//! or at a shallow boundary left by an earlier prune (so a second prune walks only what the
//! first one kept). At least the head is always kept.

use std::collections::HashMap;

use gix_hash::ObjectId;

use super::{Error, Retain};
use crate::{
    git::odb::Odb,
    git::refs::FullName,
    git::walk::{self, step_back, Step},
    queue::names::POSITION_PREFIX,
    ConsumerName, TopicName,
};

/// Where the history is cut: `start` is the oldest message kept, `last_pruned` its first
/// parent, the newest message dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cut {
    pub start: ObjectId,
    pub last_pruned: ObjectId,
    /// Messages kept, `start` to the head.
    pub kept: u64,
}

/// Walk down from `head` to the cut `retain` asks for; `None` when nothing older than it is
/// left on the chain (already pruned there, or the chain is that short).
pub(super) fn find(
    odb: &mut Odb,
    topic: &TopicName,
    head: ObjectId,
    retain: Retain,
    scratch: &mut Vec<u8>,
) -> Result<Option<Cut>, Error> {
    if retain == Retain::Keep(0) {
        return Err(Error::KeepNothing);
    }
    let before = match retain {
        Retain::Before(time) => Some(unix_seconds(time)),
        _ => None,
    };
    let mut previous: Option<ObjectId> = None;
    let mut near = None;
    let mut id = head;
    let mut kept = 0u64;
    loop {
        let (location, parent) = match step_back(odb, &id, previous.as_ref(), &mut near, scratch)? {
            Step::Commit { location, parent } => (location, parent),
            Step::Boundary { location, pruned } => {
                if retain == Retain::Upto(pruned) {
                    return Ok(None); // pruned up to there already
                }
                (location, None)
            }
            Step::Beyond { .. } => break,
        };
        let cut_below = |start: ObjectId, kept: u64| {
            Ok(parent.map(|last_pruned| Cut {
                start,
                last_pruned,
                kept,
            }))
        };
        let cut_here = |kept: u64| {
            Ok(Some(Cut {
                start: previous.expect("BUG: only below the head"),
                last_pruned: id,
                kept,
            }))
        };
        match retain {
            Retain::Keep(n) if kept + 1 == n => return cut_below(id, kept + 1),
            Retain::Upto(upto) if upto == id => {
                if previous.is_none() {
                    return Err(Error::UptoHead {
                        topic: topic.clone(),
                    });
                }
                return cut_here(kept);
            }
            Retain::Before(_) => {
                let (kind, body) = odb.object_at(&location, scratch)?;
                if kind != gix_object::Kind::Commit {
                    return Err(walk::Error::NotACommit { id, kind }.into());
                }
                let time = crate::git::message::decode::decode(id, body)
                    .map_err(walk::Error::from)?
                    .time
                    .seconds;
                if before.is_some_and(|before| time < before) {
                    // The head always stays: a topic needs a message for its ref to name.
                    return if previous.is_none() {
                        cut_below(id, 1)
                    } else {
                        cut_here(kept)
                    };
                }
            }
            _ => {}
        }
        kept += 1;
        previous = Some(id);
        match parent {
            Some(parent) => id = parent,
            None => break,
        }
    }
    match retain {
        Retain::Upto(upto) => Err(Error::NotOnTopic {
            id: upto,
            topic: topic.clone(),
        }),
        _ => Ok(None),
    }
}

fn unix_seconds(time: std::time::SystemTime) -> i64 {
    match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// A consumer position that names a pruned message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    /// The consumer.
    pub consumer: ConsumerName,
    /// The topic of its position (usually the pruned topic).
    pub topic: TopicName,
    /// The position: a message below the cut.
    pub position: ObjectId,
    /// Messages after the position that the prune drops: they were never consumed. 0 for a
    /// position at the last pruned message.
    pub unconsumed: u64,
}

/// What lies below a cut.
#[derive(Debug, Default)]
pub(super) struct Census {
    /// Messages dropped from the topic's log.
    pub pruned: u64,
    /// Positions naming dropped messages.
    pub behind: Vec<Behind>,
    /// Other refs naming dropped messages: their history stays.
    pub pinned: Vec<String>,
}

impl Census {
    /// Record the refs naming `id`, a dropped message with `self.pruned` newer ones dropped.
    fn note(&mut self, by_target: &HashMap<ObjectId, Vec<&str>>, id: &ObjectId) {
        for name in by_target.get(id).into_iter().flatten() {
            match name
                .strip_prefix(POSITION_PREFIX)
                .and_then(|_| ConsumerName::parse_position_ref(name))
            {
                Some((consumer, topic)) => self.behind.push(Behind {
                    consumer,
                    topic,
                    position: *id,
                    unconsumed: self.pruned,
                }),
                None => self.pinned.push((*name).to_owned()),
            }
        }
    }
}

/// Walk the chain below `cut` (down to a root or an earlier boundary): count its messages and
/// find the refs that name them.
pub(super) fn census(
    odb: &mut Odb,
    cut: &Cut,
    refs: &[(FullName, ObjectId)],
    scratch: &mut Vec<u8>,
) -> Result<Census, Error> {
    let mut by_target: HashMap<ObjectId, Vec<&str>> = HashMap::new();
    for (name, id) in refs {
        by_target.entry(*id).or_default().push(name);
    }
    let mut census = Census::default();
    let mut previous = Some(cut.start);
    let mut near = None;
    let mut next = Some(cut.last_pruned);
    while let Some(id) = next {
        let (parent, older) = match step_back(odb, &id, previous.as_ref(), &mut near, scratch)? {
            Step::Commit { parent, .. } => (parent, None),
            // An earlier prune's boundary: its absent parent may still be named by a
            // position (kept alone), which is now behind this cut too.
            Step::Boundary { pruned, .. } => (None, Some(pruned)),
            Step::Beyond { .. } => break,
        };
        census.note(&by_target, &id);
        census.pruned += 1;
        if let Some(older) = older {
            census.note(&by_target, &older);
        }
        previous = Some(id);
        next = parent;
    }
    Ok(census)
}
