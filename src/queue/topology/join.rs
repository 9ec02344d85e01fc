//! Owns [`join()`]: copying the messages of source topics onto a destination topic, each
//! exactly once, however often the join runs and wherever it is interrupted.
//!
//! Order: the new messages of all sources are merged by a stable k-way merge: at each step,
//! of the oldest not-yet-copied message of each source, the one with the earliest author date
//! goes next; equal dates go in the order the sources were named. Each source's own order is
//! always kept (a backwards date only makes its message go earlier relative to other sources,
//! never before its own predecessors). Copies are appended after the destination's head.
//!
//! Rounds: at most `round` messages are copied per round (default [`DEFAULT_ROUND`]), each
//! round its own packs, record and ref moves, so memory is bounded whatever the backlog. A
//! round reads at most `round / sources` messages ahead per source and stops merging when a
//! source's read-ahead runs out while it has more: the order is the same as one merge of
//! everything.
//!
//! Commit protocol per round (see [`mod@super::record`]): copies (packs) and the record commit
//! are written first; then, holding the destination's lock (its head unchanged, else the copies
//! are made again on the new head) and the record's lock (compare-and-swap against the record
//! this join started from, else everything is planned again), the record ref moves, then the
//! destination ref: that move is the commit point. A crash between the two leaves a record
//! that the next join finds uncommitted, so nothing is lost or copied twice.
//!
//! Cost: O(new messages) to read and copy, plus a walk of the destination from its head to
//! the last join's tip (messages published to it since).
//!
//! Faults (no poisoning): a join keeps no state between calls, so a failed write or sync ends
//! the call with its error and a new call re-reads the record and the destination from disk;
//! the commit protocol makes that sound at every point (the fault matrix cuts the power at each
//! sync, fails each write and sync: nothing is copied twice or lost).

use std::{collections::VecDeque, time::Duration};

use gix_hash::ObjectId;

use super::{
    record::{self, record_ref, JoinRecord},
    Error, MAX_ATTEMPTS,
};
use crate::{
    git::message::restack::restack,
    git::odb::Odb,
    git::refs::Expected,
    git::walk,
    queue::consume::{Backlog, DEFAULT_SEGMENT_LEN},
    Repository, TopicName,
};

/// The most messages one join round copies (about 70 MB of dates, ids and copies).
pub const DEFAULT_ROUND: usize = 1 << 20;

/// How long a join waits for the destination's or the record's lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// What one [`join()`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Joined {
    /// Per source, in the order given: how many of its messages were copied.
    pub copied: Vec<(TopicName, usize)>,
    /// The destination's head afterwards (`None`: it still has no message).
    pub head: Option<ObjectId>,
    /// How many rounds committed (each one record and one move of the destination).
    pub rounds: usize,
}

impl Joined {
    /// How many messages were copied in all.
    pub fn total(&self) -> usize {
        self.copied.iter().map(|(_, n)| n).sum()
    }
}

/// Copy every message of `sources` not joined into `into` yet onto `into`'s head, in the
/// order described in the module docs, and record how far each source was joined. Sources
/// and their consumers are untouched; `into` is created if it does not exist. With `sync`,
/// copies, record and refs are fsynced before this returns.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::{topology::join, ConsumerName, Repository, TopicName};
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = Repository::init(dir.path())?;
/// let (eu, us, all) = (TopicName::new("eu")?, TopicName::new("us")?, TopicName::new("all")?);
/// repo.producer(&eu).publish(b"eu 1")?;
/// repo.producer(&us).publish(b"us 1")?;
/// join(&repo, &[eu.clone(), us.clone()], &all, true)?;
/// repo.producer(&eu).publish(b"eu 2")?;
/// let again = join(&repo, &[eu, us], &all, true)?;
/// assert_eq!(again.total(), 1, "only what is new");
/// let mut reader = repo.consumer(&ConsumerName::new("r")?, &all)?;
/// assert_eq!(reader.poll(10)?.len(), 3);
/// # Ok(()) }
/// ```
pub fn join(
    repo: &Repository,
    sources: &[TopicName],
    into: &TopicName,
    sync: bool,
) -> Result<Joined, crate::Error> {
    join_in_rounds(repo, sources, into, sync, DEFAULT_ROUND)
}

/// [`join()`] copying at most `round` messages per round (at least 1, at most
/// [`record::MAX_RUN`]).
pub fn join_in_rounds(
    repo: &Repository,
    sources: &[TopicName],
    into: &TopicName,
    sync: bool,
    round: usize,
) -> Result<Joined, crate::Error> {
    check_names(sources, into)?;
    let round = round.clamp(1, record::MAX_RUN);
    let per_source = (round / sources.len()).max(1);
    let record_name = record_ref(into);
    let mut joined = Joined {
        copied: sources.iter().map(|s| (s.clone(), 0)).collect(),
        head: None,
        rounds: 0,
    };
    let mut odb = repo.odb();
    let mut buf = Vec::new();
    let mut attempts = 0;
    'plan: loop {
        let mut record_id = repo.refs().find(&record_name)?;
        let mut committed = record::load(repo, into, record_id, repo.head(into)?)?;
        let mut readers = sources
            .iter()
            .map(|s| Reader::open(repo, &mut odb, &mut buf, s, into, committed.position(s)))
            .collect::<Result<Vec<_>, _>>()?;
        loop {
            for reader in &mut readers {
                reader.fill(&mut odb, &mut buf, per_source)?;
            }
            let order = merge_round(&mut readers, round);
            if order.is_empty() {
                joined.head = repo.head(into)?;
                return Ok(joined);
            }
            let mut after = JoinRecord::default();
            for &(source, id) in &order {
                after.set(&sources[source], id);
            }
            let ids: Vec<ObjectId> = order.iter().map(|&(_, id)| id).collect();
            let run = record::Run::of(&mut odb, &ids, &mut buf)?;
            // Copy onto the destination's head; again if a producer moves it meanwhile.
            let (dst_lock, dst_head, tip, new_record) = loop {
                let dst_head = repo.head(into)?;
                let tip = restack(repo, dst_head, &ids, sync)?
                    .tip()
                    .expect("BUG: a round copies something");
                let new_record = record::write(
                    repo,
                    into,
                    record_id,
                    (dst_head, tip, &run),
                    &committed,
                    &after,
                    sync,
                )?;
                let dst_lock = repo.refs().lock(&into.ref_name(), LOCK_TIMEOUT)?;
                if dst_lock.current()? == dst_head {
                    break (dst_lock, dst_head, tip, new_record);
                }
                attempts += 1;
                if attempts >= MAX_ATTEMPTS {
                    return Err(Error::Raced { into: into.clone() }.into());
                }
            };
            let record_lock = repo.refs().lock(&record_name, LOCK_TIMEOUT)?;
            match record_lock.commit(Expected::from_current(record_id), &new_record, sync) {
                Ok(()) => {}
                Err(crate::git::refs::Error::Changed { .. }) => {
                    // Another join moved the record: plan everything again from it.
                    attempts += 1;
                    if attempts >= MAX_ATTEMPTS {
                        return Err(Error::Raced { into: into.clone() }.into());
                    }
                    continue 'plan;
                }
                Err(err) => return Err(err.into()),
            }
            dst_lock.commit(Expected::from_current(dst_head), &tip, sync)?;
            for &(source, _) in &order {
                joined.copied[source].1 += 1;
            }
            joined.rounds += 1;
            for (topic, id) in after.sources {
                committed.set(&topic, id);
            }
            record_id = Some(new_record);
        }
    }
}

fn check_names(sources: &[TopicName], into: &TopicName) -> Result<(), Error> {
    if sources.is_empty() {
        return Err(Error::NoSources);
    }
    for (i, source) in sources.iter().enumerate() {
        if source == into {
            return Err(Error::IntoItself {
                topic: into.clone(),
            });
        }
        if sources[..i].contains(source) {
            return Err(Error::DuplicateSource {
                topic: source.clone(),
            });
        }
    }
    Ok(())
}

/// One source's messages not joined yet, read ahead a bounded number at a time.
struct Reader {
    backlog: Option<Backlog>,
    /// (author date, id), oldest first.
    ahead: VecDeque<(i64, ObjectId)>,
}

impl Reader {
    fn open(
        repo: &Repository,
        odb: &mut Odb,
        buf: &mut Vec<u8>,
        source: &TopicName,
        into: &TopicName,
        joined: Option<ObjectId>,
    ) -> Result<Self, crate::Error> {
        let head = repo.head(source)?.filter(|h| Some(*h) != joined);
        let backlog = match head {
            None => None,
            Some(head) => match Backlog::plan(odb, head, joined, DEFAULT_SEGMENT_LEN, buf) {
                Ok(backlog) => Some(backlog),
                Err(walk::Error::NotOnTopic { stop, .. }) => {
                    return Err(Error::SourceRewritten {
                        source_topic: source.clone(),
                        into: into.clone(),
                        position: stop,
                    }
                    .into())
                }
                Err(err) => return Err(err.into()),
            },
        };
        Ok(Self {
            backlog,
            ahead: VecDeque::new(),
        })
    }

    /// Read ahead until `limit` messages are waiting or the source has no more.
    fn fill(&mut self, odb: &mut Odb, buf: &mut Vec<u8>, limit: usize) -> Result<(), crate::Error> {
        let Some(backlog) = self.backlog.as_mut() else {
            return Ok(());
        };
        while self.ahead.len() < limit {
            match backlog.next_message_with(odb, buf, |m| (m.time.seconds, m.id))? {
                Some(entry) => self.ahead.push_back(entry),
                None => break,
            }
        }
        Ok(())
    }

    /// Whether messages remain that are not read ahead.
    fn has_unread(&self) -> bool {
        self.backlog.as_ref().is_some_and(|b| !b.is_empty())
    }
}

/// Up to `max` messages in the merge order of the module docs, taken from the read-ahead:
/// (source index, id). Stops when a source's read-ahead runs out while it has unread
/// messages, so the order never depends on how far ahead was read.
fn merge_round(readers: &mut [Reader], max: usize) -> Vec<(usize, ObjectId)> {
    let mut order = Vec::new();
    while order.len() < max {
        if readers.iter().any(|r| r.ahead.is_empty() && r.has_unread()) {
            break;
        }
        let mut best: Option<(i64, usize)> = None;
        for (source, reader) in readers.iter().enumerate() {
            if let Some(&(time, _)) = reader.ahead.front() {
                if best.is_none_or(|(t, _)| time < t) {
                    best = Some((time, source));
                }
            }
        }
        let Some((_, source)) = best else { break };
        let (_, id) = readers[source]
            .ahead
            .pop_front()
            .expect("BUG: the best source has a message ahead");
        order.push((source, id));
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    fn reader(messages: &[(i64, u8)]) -> Reader {
        Reader {
            backlog: None,
            ahead: messages.iter().map(|&(t, n)| (t, id(n))).collect(),
        }
    }

    #[test]
    fn merge_orders_by_date_then_source_and_keeps_each_sources_order() {
        let mut readers = [reader(&[(5, 1), (1, 2), (7, 3)]), reader(&[(5, 4), (6, 5)])];
        // a1(5) ties b1(5): a first; then a2(1) < b1(5); then b1(5), b2(6), a3(7).
        let order: Vec<ObjectId> = merge_round(&mut readers, 100)
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        assert_eq!(order, [id(1), id(2), id(4), id(5), id(3)]);
        let mut readers = [reader(&[(1, 1), (2, 2)]), reader(&[(1, 3)])];
        assert_eq!(merge_round(&mut readers, 2).len(), 2, "at most max");
        assert_eq!(merge_round(&mut readers, 2).len(), 1);
    }
}
