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
//! source <topic> <joined up to before, or -> <joined up to after>\n    (one per source ever joined)
//! ```
//!
//! Topic names hold no space or newline (git's ref rules), so the lines split unambiguously.
//!
//! Invariant: a record is written before the destination's ref moves, so it is an intent;
//! the destination's ref move commits it. [`load()`] decides which: walking the destination's
//! first-parent chain down from its head, meeting `tip` first means committed (`after`
//! positions hold), meeting `base` first means not (`before` positions hold). Only ids are
//! compared, so neither `base` nor `tip` needs to be readable (an uncommitted tip may have
//! been removed by `git gc`).

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::fmt::Write as _;

use gix_hash::ObjectId;

use super::Error;
use crate::{
    message::{self, Identity, MessageRef},
    walk, Repository, TopicName,
};

/// Where join records live: `refs/gitmq/joins/<destination topic>`.
pub const JOIN_PREFIX: &str = "refs/gitmq/joins/";

/// The first line of a record's message.
const HEADER: &str = "gitmq join into ";

/// The full name of the record ref of joins into `into`.
pub fn record_ref(into: &TopicName) -> String {
    format!("{JOIN_PREFIX}{into}")
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

/// Write a record commit (a loose object, fsynced with `sync`) saying that a round of
/// copies onto `base`, ending at `tip`, moved the sources from `before` to `after`, and
/// return its id. Sources in `before` but not `after` are kept as they are.
pub(super) fn write(
    repo: &Repository,
    into: &TopicName,
    previous: Option<ObjectId>,
    (base, tip): (Option<ObjectId>, ObjectId),
    before: &JoinRecord,
    after: &JoinRecord,
    sync: bool,
) -> Result<ObjectId, crate::Error> {
    let hex = |id: Option<ObjectId>| id.map_or_else(|| "-".to_owned(), |id| id.to_string());
    let mut text = format!("{HEADER}{into}\n\nbase {}\ntip {tip}\n", hex(base));
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
            "gitmq join into x\nbase -\ntip 0101010101010101010101010101010101010101\nsource a b\n",
            "gitmq join into x\nbase -\ntip 0101010101010101010101010101010101010101\nsource ../a - -\n",
            "gitmq join into x\nbase -\ntip 0101010101010101010101010101010101010101\nextra\n",
        ] {
            assert!(Parsed::parse(id(9), bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
