//! Owns where a consumer starts and how positions are moved by hand: [`StartAt`] (beginning,
//! latest, an id, a time), resolving it to a position ([`resolve()`]), [`reset()`] and
//! [`delete()`] of position refs by compare-and-swap, and the [`status()`] of every consumer.
//!
//! A position names the last message a consumer processed; "no position" means nothing was
//! processed, so the next message is the topic's first. Starting *at* a message therefore
//! means the position is that message's first parent (or none, for the first message).
//!
//! Invariants: a position written here is always a message on the topic's first-parent chain
//! (an id elsewhere is refused with [`Error::NotOnTopic`]); every move or deletion is a
//! compare-and-swap against the value read before the target was resolved, so a consumer that
//! commits meanwhile makes the reset fail instead of being overwritten silently (and a running
//! consumer whose position was reset fails its next commit the same way).
//!
//! Time: [`StartAt::Since`] never assumes dates are monotonic (producers write many messages
//! with one timestamp, clocks go backwards): it is the first message on the first-parent
//! chain, scanning from the oldest, whose author date is at or after the time. Messages after
//! it are delivered whatever their dates; messages before it are skipped even if they are
//! newer. The scan reads the topic from its start: O(topic) time, bounded memory.

use std::time::Duration;

use gix_hash::ObjectId;

use crate::{
    git::refs::Expected,
    git::walk,
    queue::consume::{Backlog, DEFAULT_SEGMENT_LEN},
    ConsumerName, Repository, TopicName,
};

/// How long a reset or delete waits for a consumer's commit holding the position's lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The shortest hex prefix accepted as a message id (git's default abbreviation).
pub const MIN_ID_PREFIX: usize = 7;

/// Returned by [`resolve()`], [`reset()`], [`find_on_topic()`] and [`parse_time()`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The id is not a message of the topic (not on its first-parent chain).
    #[error("{id} is not a message of topic {topic} (not on its first-parent history)")]
    NotOnTopic {
        /// The id, or prefix, as given.
        id: String,
        /// The topic.
        topic: TopicName,
    },
    /// A hex prefix names more than one message of the topic.
    #[error("{prefix} names more than one message of topic {topic}; give more digits")]
    Ambiguous {
        /// The prefix.
        prefix: String,
        /// The topic.
        topic: TopicName,
    },
    /// Not a hex id or prefix of at least [`MIN_ID_PREFIX`] digits.
    #[error(
        "{input:?} is not a message id (40 hex digits, or a prefix of at least {MIN_ID_PREFIX})"
    )]
    BadId {
        /// The input.
        input: String,
    },
    /// Reading or moving a position or a topic's ref failed.
    #[error(transparent)]
    Refs(#[from] crate::git::refs::Error),
    /// Walking the topic failed.
    #[error(transparent)]
    Walk(#[from] crate::git::walk::Error),
    /// Not a time gitmq understands.
    #[error("{input:?} is not a time: use RFC 3339 (2026-11-27T15:00:00Z), @<unix seconds>, a relative age (30s, 15m, 2h, 1d, 1w) or git's \"2 hours ago\"")]
    BadTime {
        /// The input.
        input: String,
    },
}

/// Where a consumer starts reading.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::{position::StartAt, ConsumerName, Repository, TopicName};
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = Repository::init(dir.path())?;
/// let topic = TopicName::new("orders")?;
/// let ids = repo.producer(&topic).publish_batch([&b"a"[..], b"b", b"c"])?;
/// let name = ConsumerName::new("audit")?;
///
/// let mut from_b = gitmq::Consumer::open_at(repo.clone(), name.clone(), topic.clone(), &StartAt::At(ids[1]))?;
/// assert_eq!(from_b.poll(10)?.len(), 2);
/// let mut latest = gitmq::Consumer::open_at(repo.clone(), name, topic, &StartAt::Latest)?;
/// assert!(latest.poll(10)?.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The topic's first message.
    Beginning,
    /// After the topic's current head: only messages published from now on.
    Latest,
    /// This message (which must be on the topic) is the next one delivered.
    At(ObjectId),
    /// The first message on the topic's first-parent chain, scanning from the oldest, whose
    /// author date is at or after these Unix seconds (see the module docs); if none is,
    /// like [`StartAt::Latest`].
    Since(i64),
}

/// The position (last message processed; `None`: none) at which a consumer of `topic`
/// starting at `start` stands. Walks the topic: from the head down to the id for
/// [`StartAt::At`], the whole topic (oldest first, until found) for [`StartAt::Since`].
pub fn resolve(
    repo: &Repository,
    topic: &TopicName,
    start: &StartAt,
) -> Result<Option<ObjectId>, Error> {
    let head = repo.head(topic)?;
    let mut buf = Vec::new();
    let mut odb = repo.odb();
    match *start {
        StartAt::Beginning => Ok(None),
        StartAt::Latest => Ok(head),
        StartAt::At(id) => {
            for step in walk::FirstParents::new(&mut odb, head, &mut buf) {
                let (current, parent) = step?;
                if current == id {
                    return Ok(parent);
                }
            }
            Err(Error::NotOnTopic {
                id: id.to_string(),
                topic: topic.clone(),
            })
        }
        StartAt::Since(seconds) => {
            let Some(head) = head else {
                return Ok(None);
            };
            let mut backlog = Backlog::plan(&mut odb, head, None, DEFAULT_SEGMENT_LEN, &mut buf)?;
            let mut previous = None;
            while let Some((id, time)) =
                backlog.next_message_with(&mut odb, &mut buf, |m| (m.id, m.time.seconds))?
            {
                if time >= seconds {
                    return Ok(previous);
                }
                previous = Some(id);
            }
            Ok(Some(head))
        }
    }
}

/// The message of `topic` named by `hex`: a full id, or a prefix of at least
/// [`MIN_ID_PREFIX`] digits naming exactly one message on the topic's first-parent chain.
/// Either way the message must be on the topic. Walks the topic from its head (a prefix:
/// all of it).
pub fn find_on_topic(repo: &Repository, topic: &TopicName, hex: &str) -> Result<ObjectId, Error> {
    let hex = hex.trim().to_ascii_lowercase();
    let len = crate::git::hash::OBJECT_HASH.len_in_hex();
    if hex.len() < MIN_ID_PREFIX || hex.len() > len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::BadId { input: hex });
    }
    let mut found = None;
    let mut buf = Vec::new();
    let mut odb = repo.odb();
    let mut id_hex = [0u8; 40];
    for step in walk::FirstParents::new(&mut odb, repo.head(topic)?, &mut buf) {
        let (current, _) = step?;
        if current.hex_to_buf(&mut id_hex).starts_with(&hex) {
            if hex.len() == len {
                return Ok(current);
            }
            if found.replace(current).is_some() {
                return Err(Error::Ambiguous {
                    prefix: hex,
                    topic: topic.clone(),
                });
            }
        }
    }
    found.ok_or_else(|| Error::NotOnTopic {
        id: hex,
        topic: topic.clone(),
    })
}

/// What [`reset()`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset {
    /// The position before.
    pub old: Option<ObjectId>,
    /// The position now (`None`: removed, so the consumer starts at the topic's first
    /// message).
    pub new: Option<ObjectId>,
}

/// Move `consumer`'s position on `topic` so that it next reads from `to`, like Kafka's
/// `--reset-offsets`: the position is read, the target resolved, then the position ref is
/// moved (or, for the beginning, deleted) by compare-and-swap against the value read. A
/// consumer that commits in between makes this fail with a ref-changed error; a consumer
/// still running with the old position fails its next commit the same way (reopen it).
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::{position::{reset, StartAt}, ConsumerName, Repository, TopicName};
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = Repository::init(dir.path())?;
/// let topic = TopicName::new("orders")?;
/// repo.producer(&topic).publish_batch([&b"a"[..], b"b"])?;
/// let name = ConsumerName::new("billing")?;
/// let mut consumer = repo.consumer(&name, &topic)?;
/// consumer.poll(10)?;
/// consumer.commit()?;
///
/// reset(&repo, &name, &topic, &StartAt::Beginning)?;
/// assert_eq!(repo.consumer(&name, &topic)?.poll(10)?.len(), 2, "read again");
/// # Ok(()) }
/// ```
pub fn reset(
    repo: &Repository,
    consumer: &ConsumerName,
    topic: &TopicName,
    to: &StartAt,
) -> Result<Reset, Error> {
    let name = consumer.position_ref(topic);
    let old = repo.refs().find(&name)?;
    let new = resolve(repo, topic, to)?;
    if old == new {
        return Ok(Reset { old, new });
    }
    let lock = repo.refs().lock(&name, LOCK_TIMEOUT)?;
    let expected = Expected::from_current(old);
    match new {
        Some(new) => lock.commit(expected, &new, true)?,
        None => {
            lock.delete(expected, true)?;
        }
    }
    Ok(Reset { old, new })
}

/// Delete `consumer`'s positions: on `topic`, or on every topic when `None`. Each is a
/// compare-and-swap deletion against the value listed (packed-refs included). Returns what
/// was deleted.
pub fn delete(
    repo: &Repository,
    consumer: &ConsumerName,
    topic: Option<&TopicName>,
) -> Result<Vec<(TopicName, ObjectId)>, Error> {
    let mut deleted = Vec::new();
    for (name, position_topic, id) in repo.positions()? {
        if &name != consumer || topic.is_some_and(|t| t != &position_topic) {
            continue;
        }
        let lock = repo
            .refs()
            .lock(&name.position_ref(&position_topic), LOCK_TIMEOUT)?;
        if lock.delete(Expected::MustMatch(id), true)? {
            deleted.push((position_topic, id));
        }
    }
    Ok(deleted)
}

/// One consumer's position on one topic, as [`status()`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The consumer.
    pub consumer: ConsumerName,
    /// The topic.
    pub topic: TopicName,
    /// The last message it committed.
    pub position: ObjectId,
    /// The topic's newest message, `None` if the topic does not exist.
    pub head: Option<ObjectId>,
    /// Messages after the position; `None` if the position is not on the topic's history
    /// (the topic was rewritten or deleted).
    pub lag: Option<u64>,
}

/// Every consumer position with its topic's head and lag, sorted by consumer then topic.
/// Walks each position's lag: O(total lag).
pub fn status(repo: &Repository) -> Result<Vec<Status>, Error> {
    let mut odb = repo.odb();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for (consumer, topic, position) in repo.positions()? {
        let head = repo.head(&topic)?;
        let lag = match head {
            None => None,
            Some(head) => match walk::count_after(&mut odb, head, Some(position), &mut buf) {
                Ok(lag) => Some(lag),
                Err(walk::Error::NotOnTopic { .. }) => None,
                Err(err) => return Err(err.into()),
            },
        };
        out.push(Status {
            consumer,
            topic,
            position,
            head,
            lag,
        });
    }
    Ok(out)
}

/// Parse a time for [`StartAt::Since`] into Unix seconds: RFC 3339 / ISO 8601
/// (`2026-11-27T15:00:00Z`, `2026-11-27 15:00:00 +0100`), `@<unix seconds>`, a relative age
/// `<n>s|m|h|d|w` (before `now`), or anything git's `--since` takes (`2 hours ago`,
/// `yesterday`).
///
/// ```
/// use gitmq::position::parse_time;
/// assert_eq!(parse_time("2h", 10_000).unwrap(), 10_000 - 7200);
/// assert_eq!(parse_time("1970-01-01T01:00:00Z", 0).unwrap(), 3600);
/// assert_eq!(parse_time("@42", 0).unwrap(), 42);
/// assert!(parse_time("soon", 0).is_err());
/// ```
pub fn parse_time(input: &str, now: i64) -> Result<i64, Error> {
    let bad = || Error::BadTime {
        input: input.to_owned(),
    };
    let trimmed = input.trim();
    if let Some(unit_at) = trimmed.find(|c: char| !c.is_ascii_digit()) {
        let (number, unit) = trimmed.split_at(unit_at);
        let scale = match unit {
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3600),
            "d" => Some(86_400),
            "w" => Some(7 * 86_400),
            _ => None,
        };
        if let (Some(scale), Ok(number)) = (scale, number.parse::<i64>()) {
            let age = number.checked_mul(scale).ok_or_else(bad)?;
            return now.checked_sub(age).ok_or_else(bad);
        }
    }
    // RFC 3339's `Z` is `+00:00` to gix-date.
    let normalized = match trimmed.strip_suffix(['Z', 'z']) {
        Some(rest) if rest.contains(['T', 't', ' ']) => format!("{rest}+00:00"),
        _ => trimmed.to_owned(),
    };
    // Calendar words (`yesterday`) are taken in UTC.
    let now_zoned = gix_date::Time::new(now, 0).to_zoned().map_err(|_| bad())?;
    gix_date::parse(&normalized, Some(now_zoned))
        .map(|time| time.seconds)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_documented_form_and_garbage_is_an_error() {
        let now = 1_000_000;
        assert_eq!(parse_time("30s", now).unwrap(), now - 30);
        assert_eq!(parse_time("15m", now).unwrap(), now - 900);
        assert_eq!(parse_time("1d", now).unwrap(), now - 86_400);
        assert_eq!(parse_time("1w", now).unwrap(), now - 604_800);
        assert_eq!(parse_time("2 hours ago", now).unwrap(), now - 7200);
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00", now).unwrap(), 0);
        assert_eq!(parse_time("1970-01-02T00:00:00Z", now).unwrap(), 86_400);
        assert_eq!(parse_time("@-5", now).unwrap(), -5);
        for bad in ["", "2x", "99999999999999999999d", "tomorrow-ish", "T"] {
            assert!(parse_time(bad, now).is_err(), "{bad:?}");
        }
    }
}
