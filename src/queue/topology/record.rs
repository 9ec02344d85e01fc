//! Owns the join record: `refs/gitmq/joins/<into>`, naming a record commit that says how far
//! each source was joined into topic `<into>`, and whether the last join took effect.
//!
//! A record commit has the empty tree, the previous record as its only parent (so `git log
//! refs/gitmq/joins/<into>` is the history of joins), gitmq as author, and this message:
//!
//! ```text
//! gitmq join into <into>\n
//! \n
//! base <the destination's head before this join round, or ->\n
//! tip <the newest copy this round appended>\n
//! run <copies> <content id of the tip> <digest of the run's content ids>\n
//! source <topic> <joined up to before, or -> <joined up to after>\n    (one per source ever joined)
//! ```
//!
//! A content id is the SHA-1 of a message without its first `parent` line (and without its
//! `gpgsig` and `gitmq-unsigned-copy-of` headers, which copies change): the same for a
//! message and every copy of it. The run digest is the SHA-1 of the content ids of the round's
//! copies, oldest first.
//!
//! Topic names hold no space or newline (git's ref rules), so the lines split unambiguously.
//!
//! Invariant: a record is written before the destination's ref moves, so it is an intent;
//! the destination's ref move commits it. [`load()`] decides which: walking the destination's
//! first-parent chain down from its head, meeting `tip` first means committed (`after`
//! positions hold), meeting `base` first means not (`before` positions hold). If the walk
//! does not meet `tip`, the destination may have been rewritten since (a push that lost a race
//! copies unpushed messages onto the remote's head, renaming them): a second walk looks for the
//! round's copies by content, `run` consecutive messages whose content ids give the digest, and
//! finding them means committed. Only then are bodies read; `base` and `tip` themselves never
//! need to be readable (an uncommitted tip may have been removed by `git gc`).

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::fmt::Write as _;

use gix_hash::ObjectId;

use super::Error;
use crate::{
    git::hash::object_id,
    git::message::{self, Identity, MessageRef},
    git::odb::Odb,
    git::refs::FullName,
    git::walk,
    Repository, TopicName,
};

/// Where join records live: `refs/gitmq/joins/<destination topic>`.
pub const JOIN_PREFIX: &str = "refs/gitmq/joins/";

/// The longest run a record may name (a round is at most this long; bounds the window a
/// search by content keeps).
pub const MAX_RUN: usize = 1 << 22;

/// The first line of a record's message.
const HEADER: &str = "gitmq join into ";

/// The full name of the record ref of joins into `into`.
pub fn record_ref(into: &TopicName) -> FullName {
    FullName::new(format!("{JOIN_PREFIX}{into}"))
        .expect("BUG: a valid topic name makes a valid ref name")
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

    /// Record that `source` is joined up to `id`.
    pub(super) fn set(&mut self, source: &TopicName, id: ObjectId) {
        match self.sources.iter_mut().find(|(name, _)| name == source) {
            Some(entry) => entry.1 = id,
            None => self.sources.push((source.clone(), id)),
        }
    }
}

/// How far each source was joined into `into`, as committed.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::{topology, Repository, TopicName};
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = Repository::init(dir.path())?;
/// let (a, all) = (TopicName::new("a")?, TopicName::new("all")?);
/// let id = repo.producer(&a).publish(b"1")?;
/// topology::join(&repo, &[a.clone()], &all, false)?;
/// assert_eq!(topology::record(&repo, &all)?.position(&a), Some(id));
/// # Ok(()) }
/// ```
pub fn record(repo: &Repository, into: &TopicName) -> Result<JoinRecord, crate::Error> {
    let record_id = repo.refs().find(&record_ref(into))?;
    load(repo, into, record_id, repo.head(into)?)
}

/// The join record of `into` as committed, given the record commit `record_id` and the
/// destination's head `dst_head` (see the module docs).
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

/// Whether the destination holds the record's round: walk down from its head until the tip
/// (yes) or the base (then look for the round by content, see the module docs).
fn is_committed(
    repo: &Repository,
    into: &TopicName,
    parsed: &Parsed,
    dst_head: Option<ObjectId>,
) -> Result<bool, crate::Error> {
    let mut odb = repo.odb();
    let mut buf = Vec::new();
    let mut met_base = false;
    for step in walk::FirstParents::new(&mut odb, dst_head, &mut buf) {
        let (id, _) = step?;
        if id == parsed.tip {
            return Ok(true);
        }
        if Some(id) == parsed.base {
            met_base = true;
            break;
        }
    }
    if holds_run(&mut odb, dst_head, parsed, &mut buf)? {
        return Ok(true);
    }
    if met_base || parsed.base.is_none() {
        // Met the base (or the destination never existed before that join): not committed.
        return Ok(false);
    }
    Err(Error::RecordStale {
        into: into.clone(),
        record: record_ref(into).to_string(),
    }
    .into())
}

/// Whether the first-parent chain from `head` down to the record's base (or the root)
/// holds the record's run of copies, possibly renamed: `run.len` consecutive messages whose
/// content ids hash to the run digest. Holds at most `run.len` content ids.
fn holds_run(
    odb: &mut Odb,
    head: Option<ObjectId>,
    parsed: &Parsed,
    buf: &mut Vec<u8>,
) -> Result<bool, crate::Error> {
    let Some(run) = &parsed.run else {
        return Ok(false);
    };
    let mut window: std::collections::VecDeque<ObjectId> = std::collections::VecDeque::new();
    let mut next = head;
    while let Some(id) = next {
        if Some(id) == parsed.base {
            return Ok(false);
        }
        odb.read_commit(&id, buf)?;
        let (content, parent) = content_of(id, buf)?;
        // Newest first: the front is the candidate tip of a run below it.
        window.push_back(content);
        if window.len() > run.len {
            window.pop_front();
        }
        if window.len() == run.len && window.front() == Some(&run.tip_content) {
            let oldest_first: Vec<ObjectId> = window.iter().rev().copied().collect();
            if digest(&oldest_first) == run.digest {
                return Ok(true);
            }
        }
        next = parent;
    }
    Ok(false)
}

/// The content id (SHA-1 of the body without its first `parent` line) and the first parent
/// of the commit `id` with body `body`.
fn content_of(id: ObjectId, body: &[u8]) -> Result<(ObjectId, Option<ObjectId>), crate::Error> {
    Ok(crate::git::message::restack::content_id(&id, body)?)
}

/// The digest of content ids, oldest first.
fn digest(contents: &[ObjectId]) -> ObjectId {
    let mut bytes = Vec::with_capacity(contents.len() * 20);
    for content in contents {
        bytes.extend_from_slice(content.as_bytes());
    }
    object_id(gix_object::Kind::Blob, &bytes)
}

/// A round's copies, by content: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Run {
    len: usize,
    tip_content: ObjectId,
    digest: ObjectId,
}

impl Run {
    /// The run of the messages `ids` (oldest first; their copies have the same content).
    pub(super) fn of(
        odb: &mut Odb,
        ids: &[ObjectId],
        buf: &mut Vec<u8>,
    ) -> Result<Self, crate::Error> {
        let mut contents = Vec::with_capacity(ids.len());
        for id in ids {
            odb.read_commit(id, buf)?;
            contents.push(content_of(*id, buf)?.0);
        }
        let tip_content = *contents.last().expect("BUG: a run copies something");
        Ok(Self {
            len: contents.len(),
            tip_content,
            digest: digest(&contents),
        })
    }
}

/// Write a record commit (a loose object, fsynced with `sync`) saying that a round of
/// copies onto `base`, ending at `tip`, moved the sources from `before` to `after`, and
/// return its id. Sources in `before` but not `after` are kept as they are.
pub(super) fn write(
    repo: &Repository,
    into: &TopicName,
    previous: Option<ObjectId>,
    (base, tip, run): (Option<ObjectId>, ObjectId, &Run),
    before: &JoinRecord,
    after: &JoinRecord,
    sync: bool,
) -> Result<ObjectId, crate::Error> {
    let hex = |id: Option<ObjectId>| id.map_or_else(|| "-".to_owned(), |id| id.to_string());
    let mut text = format!(
        "{HEADER}{into}\n\nbase {}\ntip {tip}\nrun {} {} {}\n",
        hex(base),
        run.len,
        run.tip_content,
        run.digest
    );
    for (topic, position) in &before.sources {
        if after.position(topic).is_none() {
            let _ = writeln!(text, "source {topic} {position} {position}");
        }
    }
    for (topic, position) in &after.sources {
        let _ = writeln!(
            text,
            "source {topic} {} {position}",
            hex(before.position(topic))
        );
    }
    let mut body = Vec::new();
    message::encode(
        &mut body,
        previous.as_deref(),
        &Identity::default(),
        gix_date::Time::now_utc(),
        text.as_bytes(),
    );
    let mut dirs = Vec::new();
    let odb = repo.odb();
    let id = odb
        .loose()
        .write(gix_object::Kind::Commit, &body, sync, &mut dirs)?;
    odb.loose().sync_dirs(&mut dirs)?;
    Ok(id)
}

/// A record's message, parsed.
struct Parsed {
    base: Option<ObjectId>,
    tip: ObjectId,
    run: Option<Run>,
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
        let mut run = None;
        for line in lines {
            if let Some(rest) = line.strip_prefix("run ") {
                let mut parts = rest.split(' ');
                let (Some(len), Some(tip_content), Some(digest), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad("run line needs a length and two ids"));
                };
                let len = len
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_RUN).contains(n));
                run = Some(Run {
                    len: len.ok_or_else(|| bad("bad run length"))?,
                    tip_content: opt(tip_content)?.ok_or_else(|| bad("no run tip"))?,
                    digest: opt(digest)?.ok_or_else(|| bad("no run digest"))?,
                });
                continue;
            }
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
        Ok(Self {
            base,
            tip,
            run,
            sources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    #[test]
    fn records_parse_and_malformed_ones_are_errors() {
        let text = format!(
            "{HEADER}all\n\nbase -\ntip {}\nrun 2 {} {}\nsource eu - {}\nsource us {} {}\n",
            id(1),
            id(5),
            id(6),
            id(2),
            id(3),
            id(4)
        );
        let parsed = Parsed::parse(id(9), text.as_bytes()).unwrap();
        assert_eq!(parsed.base, None);
        assert_eq!(parsed.tip, id(1));
        assert_eq!(parsed.sources.len(), 2);
        assert_eq!(parsed.sources[1].1, Some(id(3)));
        assert_eq!(
            parsed.run,
            Some(Run {
                len: 2,
                tip_content: id(5),
                digest: id(6)
            })
        );
        for bad in [
            "",
            "hello\n",
            "gitmq join into x\nbase -\n",
            "gitmq join into x\nbase -\ntip -\n",
            "gitmq join into x\nbase -\ntip 0101010101010101010101010101010101010101\nsource a b\n",
            "gitmq join into x\nbase -\ntip 0101010101010101010101010101010101010101\nsource ../a - -\n",
            "gitmq join into x\nbase -\ntip 0101010101010101010101010101010101010101\nextra\n",
            "gitmq join into x\nbase -\ntip 0101010101010101010101010101010101010101\nrun 0 - -\n",
            "gitmq join into x\nbase -\ntip 0101010101010101010101010101010101010101\nrun 99999999999 0101010101010101010101010101010101010101 0101010101010101010101010101010101010101\n",
        ] {
            assert!(Parsed::parse(id(9), bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
