//! Owns [`join()`]: copying the messages of source topics onto a destination topic, each
//! exactly once, however often the join runs.
//!
//! Order: the new messages of all sources are merged by a stable k-way merge: at each step,
//! of the oldest not-yet-copied message of each source, the one with the earliest author date
//! goes next; equal dates go in the order the sources were named. Each source's own order is
//! always kept (a backwards date only makes its message go earlier relative to other sources,
//! never before its own predecessors). Copies are appended after the destination's head.
//!
//! Record: `refs/gitmq/joins/<into>` names a record commit (empty tree, first parent the
//! previous record, so `git log` of it is the join's history) whose message is
//!
//! ```text
//! gitmq join into <into>\n
//! \n
//! base <destination head before, or ->\n
//! tip <newest copy>\n
//! source <topic> <joined up to before, or -> <joined up to after>\n    (one per source ever joined)
//! ```
//!
//! Commit protocol: copies and the record are written first; then, holding the
//! destination's lock (its head unchanged since planning, else plan again) and the record's
//! lock (compare-and-swap against the record read when planning, else plan again), the
//! record ref moves, then the destination ref. The destination's move is the commit point:
//! a record whose `tip` is not on the destination's first-parent chain (the walk down from
//! the head meets `base` first) was never committed, and its `before` positions hold. A crash
//! between the two ref moves therefore neither loses nor duplicates a message.
//!
//! Cost: O(new messages) to plan and copy, plus a walk of the destination from its head to
//! the last join's tip (messages published to it since).

use std::{fmt::Write as _, time::Duration};

use gix_hash::ObjectId;

use super::{Error, MAX_ATTEMPTS};
use crate::{
    message::{self, Identity, MessageRef},
    refs::Expected,
    restack::restack,
    walk::{self, Backlog, DEFAULT_SEGMENT_LEN},
    Repository, TopicName,
};

/// Where join records live: `refs/gitmq/joins/<destination topic>`.
pub const JOIN_PREFIX: &str = "refs/gitmq/joins/";

/// How long a join waits for the destination's or the record's lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The first line of a record's message.
const HEADER: &str = "gitmq join into ";

/// What one [`join()`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Joined {
    /// Per source, in the order given: how many of its messages were copied.
    pub copied: Vec<(TopicName, usize)>,
    /// The destination's head afterwards (`None`: it still has no message).
    pub head: Option<ObjectId>,
    /// The copies, oldest first: (source message, copy).
    pub copies: Vec<(ObjectId, ObjectId)>,
}

/// A destination's join record: how far each source was joined, as committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinRecord {
    /// The record commit (`None`: nothing was ever joined).
    pub id: Option<ObjectId>,
    /// Per source ever joined: the last of its messages copied.
    pub sources: Vec<(TopicName, ObjectId)>,
}

impl JoinRecord {
    /// How far `source` was joined.
    pub fn position(&self, source: &TopicName) -> Option<ObjectId> {
        self.sources
            .iter()
            .find(|(name, _)| name == source)
            .map(|(_, id)| *id)
    }
}

/// The full name of the record ref of joins into `into`.
pub fn record_ref(into: &TopicName) -> String {
    format!("{JOIN_PREFIX}{into}")
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
/// assert_eq!(again.copies.len(), 1, "only what is new");
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
    if sources.is_empty() {
        return Err(Error::NoSources.into());
    }
    for (i, source) in sources.iter().enumerate() {
        if source == into {
            return Err(Error::IntoItself {
                topic: into.clone(),
            }
            .into());
        }
        if sources[..i].contains(source) {
            return Err(Error::DuplicateSource {
                topic: source.clone(),
            }
            .into());
        }
    }
    let record_name = record_ref(into);
    for _ in 0..MAX_ATTEMPTS {
        let record_id = repo.refs().find(&record_name)?;
        let dst_head = repo.head(into)?;
        let record = load(repo, into, record_id, dst_head)?;
        let pending = pending(repo, sources, into, &record)?;
        let order = merge(&pending);
        let mut joined = Joined {
            copied: sources
                .iter()
                .zip(&pending)
                .map(|(s, p)| (s.clone(), p.messages.len()))
                .collect(),
            head: dst_head,
            copies: Vec::new(),
        };
        if order.is_empty() {
            return Ok(joined);
        }
        let restacked = restack(repo, dst_head, &order, sync)?;
        let tip = restacked.tip().expect("BUG: something was copied");
        let new_record = write_record(
            repo, into, record_id, dst_head, tip, &record, sources, &pending, sync,
        )?;

        let dst_lock = repo.refs().lock(&into.ref_name(), LOCK_TIMEOUT)?;
        if dst_lock.current()? != dst_head {
            continue; // a producer appended meanwhile: copy onto the new head
        }
        let record_lock = repo.refs().lock(&record_name, LOCK_TIMEOUT)?;
        match record_lock.commit(Expected::from_current(record_id), &new_record, sync) {
            Ok(()) => {}
            Err(crate::refs::Error::Changed { .. }) => continue, // another join won
            Err(err) => return Err(err.into()),
        }
        dst_lock.commit(Expected::from_current(dst_head), &tip, sync)?;
        joined.head = Some(tip);
        joined.copies = restacked.copies.iter().map(|c| (c.old, c.new)).collect();
        return Ok(joined);
    }
    Err(Error::Raced { into: into.clone() }.into())
}

/// How far each source was joined into `into`, as committed.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::{topology::join, Repository, TopicName};
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = Repository::init(dir.path())?;
/// let (a, all) = (TopicName::new("a")?, TopicName::new("all")?);
/// let id = repo.producer(&a).publish(b"1")?;
/// join::join(&repo, &[a.clone()], &all, false)?;
/// assert_eq!(join::record(&repo, &all)?.position(&a), Some(id));
/// # Ok(()) }
/// ```
pub fn record(repo: &Repository, into: &TopicName) -> Result<JoinRecord, crate::Error> {
    let record_id = repo.refs().find(&record_ref(into))?;
    load(repo, into, record_id, repo.head(into)?)
}

/// The committed join record of `into` (see the module docs): the record commit
/// `record_id`'s `after` positions if its tip is on `into`'s first-parent chain from
/// `dst_head`, else its `before` positions.
pub fn load(
    repo: &Repository,
    into: &TopicName,
    record_id: Option<ObjectId>,
    dst_head: Option<ObjectId>,
) -> Result<JoinRecord, crate::Error> {
    let Some(id) = record_id else {
        return Ok(JoinRecord::default());
    };
    let mut odb = repo.odb();
    let mut buf = Vec::new();
    odb.read_commit(&id, &mut buf)?;
    let message = MessageRef::from_bytes(id, &buf)?;
    let parsed = Parsed::parse(id, message.payload)?;
    let committed = is_committed(repo, into, &parsed, dst_head)?;
    let sources = parsed
        .sources
        .into_iter()
        .filter_map(|(topic, before, after)| {
            Some((topic, if committed { Some(after) } else { before }?))
        })
        .collect();
    Ok(JoinRecord {
        id: Some(id),
        sources,
    })
}

/// Whether the destination holds the record's tip: walk down from its head until the tip
/// (yes) or the base (no).
fn is_committed(
    repo: &Repository,
    into: &TopicName,
    parsed: &Parsed,
    dst_head: Option<ObjectId>,
) -> Result<bool, crate::Error> {
    let mut odb = repo.odb();
    let mut buf = Vec::new();
    let mut near = None;
    let mut next = dst_head;
    while let Some(id) = next {
        if id == parsed.tip {
            return Ok(true);
        }
        if Some(id) == parsed.base {
            return Ok(false);
        }
        next = walk::step(&mut odb, &id, &mut near, &mut buf)?.1;
    }
    if parsed.base.is_none() {
        return Ok(false); // the destination was never created by that join
    }
    Err(Error::RecordStale {
        into: into.clone(),
        record: record_ref(into),
    }
    .into())
}

/// One source's messages not joined yet, oldest first.
struct Pending {
    messages: Vec<(i64, ObjectId)>,
    head: Option<ObjectId>,
}

fn pending(
    repo: &Repository,
    sources: &[TopicName],
    into: &TopicName,
    record: &JoinRecord,
) -> Result<Vec<Pending>, crate::Error> {
    let mut odb = repo.odb();
    let mut buf = Vec::new();
    let mut out = Vec::with_capacity(sources.len());
    for source in sources {
        let head = repo.head(source)?;
        let stop = record.position(source);
        let mut messages = Vec::new();
        if let Some(head) = head.filter(|h| Some(*h) != stop) {
            let mut backlog =
                match Backlog::plan(&mut odb, head, stop, DEFAULT_SEGMENT_LEN, &mut buf) {
                    Ok(backlog) => backlog,
                    Err(walk::Error::NotOnTopic { stop, .. }) => {
                        return Err(Error::SourceRewritten {
                            source_topic: source.clone(),
                            into: into.clone(),
                            position: stop,
                        }
                        .into())
                    }
                    Err(err) => return Err(err.into()),
                };
            while let Some(entry) =
                backlog.next_message_with(&mut odb, &mut buf, |m| (m.time.seconds, m.id))?
            {
                messages.push(entry);
            }
        }
        out.push(Pending {
            messages,
            head: head.or(stop),
        });
    }
    Ok(out)
}

/// The stable k-way merge of the module docs: ids in copy order.
fn merge(pending: &[Pending]) -> Vec<ObjectId> {
    let total = pending.iter().map(|p| p.messages.len()).sum();
    let mut cursors = vec![0usize; pending.len()];
    let mut order = Vec::with_capacity(total);
    while order.len() < total {
        let mut best: Option<(i64, usize)> = None;
        for (source, p) in pending.iter().enumerate() {
            if let Some(&(time, _)) = p.messages.get(cursors[source]) {
                if best.is_none_or(|(t, _)| time < t) {
                    best = Some((time, source));
                }
            }
        }
        let (_, source) = best.expect("BUG: messages remain");
        order.push(pending[source].messages[cursors[source]].1);
        cursors[source] += 1;
    }
    order
}

/// Write the record commit for this join (loose object) and return its id.
#[allow(clippy::too_many_arguments)]
fn write_record(
    repo: &Repository,
    into: &TopicName,
    previous: Option<ObjectId>,
    base: Option<ObjectId>,
    tip: ObjectId,
    record: &JoinRecord,
    sources: &[TopicName],
    pending: &[Pending],
    sync: bool,
) -> Result<ObjectId, crate::Error> {
    let hex = |id: Option<ObjectId>| id.map_or_else(|| "-".to_owned(), |id| id.to_string());
    let mut text = format!("{HEADER}{into}\n\nbase {}\ntip {tip}\n", hex(base));
    for (topic, position) in &record.sources {
        if !sources.contains(topic) {
            let _ = writeln!(text, "source {topic} {position} {position}");
        }
    }
    for (topic, p) in sources.iter().zip(pending) {
        let before = record.position(topic);
        if let Some(after) = p.head {
            let _ = writeln!(text, "source {topic} {} {after}", hex(before));
        }
    }
    let mut body = Vec::new();
    let now = gix_date::Time::now_utc();
    message::encode(
        &mut body,
        previous.as_deref(),
        &Identity::default(),
        now,
        text.as_bytes(),
    );
    let mut dirs = Vec::new();
    let odb = repo.odb();
    let id = odb
        .loose()
        .write(gix_object::Kind::Commit, &body, sync, &mut dirs)?;
    crate::odb::LooseStore::sync_dirs(&mut dirs)?;
    Ok(id)
}

/// A record's message, parsed.
struct Parsed {
    base: Option<ObjectId>,
    tip: ObjectId,
    sources: Vec<(TopicName, Option<ObjectId>, ObjectId)>,
}

impl Parsed {
    fn parse(id: ObjectId, payload: &[u8]) -> Result<Self, Error> {
        let bad = |reason| Error::RecordMalformed { id, reason };
        let text = std::str::from_utf8(payload).map_err(|_| bad("not UTF-8"))?;
        let mut lines = text.lines().filter(|l| !l.is_empty());
        if !lines.next().is_some_and(|l| l.starts_with(HEADER)) {
            return Err(bad("no header line"));
        }
        let opt = |s: &str| -> Result<Option<ObjectId>, Error> {
            if s == "-" {
                return Ok(None);
            }
            ObjectId::from_hex(s.as_bytes())
                .map(Some)
                .map_err(|_| bad("bad id"))
        };
        let base = lines
            .next()
            .and_then(|l| l.strip_prefix("base "))
            .ok_or_else(|| bad("no base line"))?;
        let base = opt(base)?;
        let tip = lines
            .next()
            .and_then(|l| l.strip_prefix("tip "))
            .ok_or_else(|| bad("no tip line"))?;
        let tip = opt(tip)?.ok_or_else(|| bad("no tip"))?;
        let mut sources = Vec::new();
        for line in lines {
            let mut parts = line
                .strip_prefix("source ")
                .ok_or_else(|| bad("unknown line"))?
                .split(' ');
            let (Some(topic), Some(before), Some(after), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("source line needs a topic and two ids"));
            };
            let topic = TopicName::new(topic).map_err(|_| bad("bad source topic"))?;
            let after = opt(after)?.ok_or_else(|| bad("no after id"))?;
            sources.push((topic, opt(before)?, after));
        }
        Ok(Self { base, tip, sources })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    #[test]
    fn merge_orders_by_date_then_source_and_keeps_each_sources_order() {
        let a = Pending {
            messages: vec![(5, id(1)), (1, id(2)), (7, id(3))],
            head: None,
        };
        let b = Pending {
            messages: vec![(5, id(4)), (6, id(5))],
            head: None,
        };
        // a1(5) ties b1(5): a first; then a2(1) < b1(5); then b1(5), b2(6), a3(7).
        assert_eq!(merge(&[a, b]), [id(1), id(2), id(4), id(5), id(3)]);
    }

    #[test]
    fn records_parse_and_malformed_ones_are_errors() {
        let text = format!(
            "{HEADER}all\n\nbase -\ntip {}\nsource eu - {}\nsource us {} {}\n",
            id(1),
            id(2),
            id(3),
            id(4)
        );
        let parsed = Parsed::parse(id(9), text.as_bytes()).unwrap();
        assert_eq!(parsed.base, None);
        assert_eq!(parsed.tip, id(1));
        assert_eq!(parsed.sources.len(), 2);
        assert_eq!(parsed.sources[1].1, Some(id(3)));
        for bad in [
            "",
            "hello\n",
            "gitmq join into x\nbase -\n",
            "gitmq join into x\nbase -\ntip -\n",
        ] {
            assert!(Parsed::parse(id(9), bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
