//! Owns reading topics for clients: where a read starts ([`Start`]), a pool of open
//! [`Consumer`]s kept between requests ([`Cursors`]), one read rendered as NDJSON
//! ([`read()`]), and waking long polls when a topic moves ([`Wakers`]).
//!
//! Reads never move a position: a client commits with `POST .../position`. A read starts at
//! the consumer's committed position, or at `from=` (beginning, latest, an id, a time: the
//! message given is the first delivered), or `after=<id>` (the first delivered follows it).
//!
//! Why a pool: a `Consumer` plans a walk from the topic's head back to its position once and
//! then reads forward. Opening one per request would walk the whole backlog again for every
//! page (quadratic over a long backlog); a client that pages through a topic (GET, commit,
//! GET...) finds the consumer of its last page in the pool, positioned where it stopped.
//!
//! Invariants: a pooled consumer is used by one request at a time (taken out, put back);
//! its position is exactly what it delivered last, and it is only found again by that
//! position; the pool is bounded ([`POOL_SIZE`], least recently used goes first).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use bytes::Bytes;
use gix_hash::ObjectId;
use tokio::sync::Notify;

use super::{
    error::ApiError,
    pages::{Claim, Pages, Ready},
    render,
};
use crate::{
    position::{self, StartAt},
    Consumer, ConsumerName, Repository, TopicName,
};

/// Open consumers kept between requests, over all topics.
pub(crate) const POOL_SIZE: usize = 256;
/// A reply stops growing past this many bytes (the client reads on with `after=`).
pub(crate) const MAX_REPLY_BYTES: usize = 32 << 20;
/// Messages rendered between checks of the reply's size.
const CHUNK: usize = 1024;
/// The name of consumers that read for requests without one (never committed).
const READER: &str = "gitmq-serve";

/// Where a read starts.
#[derive(Debug, Clone)]
pub(crate) enum Start {
    /// The consumer's committed position.
    Committed(ConsumerName),
    /// A start point (the message it names is delivered first).
    From(StartAt),
    /// After this message (`None`: from the first). `checked`: known to be on the topic.
    After(Option<ObjectId>, bool),
}

/// What a read returned.
#[derive(Debug, Default)]
pub(crate) struct Page {
    /// NDJSON, one line per message.
    pub body: Bytes,
    pub count: usize,
    /// The position the read started after.
    pub start: Option<ObjectId>,
    /// The last message delivered.
    pub last: Option<ObjectId>,
}

/// Open consumers by topic, and the pages they rendered.
#[derive(Default)]
pub(crate) struct Cursors {
    pool: Mutex<Vec<(TopicName, Consumer, Instant)>>,
    pub pages: Pages,
}

impl Cursors {
    /// A pooled consumer of `topic` whose last delivered message is `at`.
    fn take(&self, topic: &TopicName, at: Option<ObjectId>) -> Option<Consumer> {
        let mut pool = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = pool
            .iter()
            .position(|(t, c, _)| t == topic && c.delivered() == at)?;
        Some(pool.swap_remove(index).1)
    }

    /// Whether `id` is where some pooled consumer of `topic` stands (so it is on the topic).
    pub fn knows(&self, topic: &TopicName, id: ObjectId) -> bool {
        let pool = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pool.iter()
            .any(|(t, c, _)| t == topic && c.delivered() == Some(id))
            || self.pages.knows(topic, id)
    }

    fn put(&self, consumer: Consumer) {
        let mut pool = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() >= POOL_SIZE {
            if let Some(oldest) = pool
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, _, used))| *used)
                .map(|(i, _)| i)
            {
                pool.swap_remove(oldest);
            }
        }
        pool.push((consumer.topic().clone(), consumer, Instant::now()));
    }
}

/// Read up to `max` messages of `topic` from `start`; the start is resolved to a position
/// first (walking the topic for `From`), and `start` becomes `After(position)` so that a
/// long poll reading again starts at the same place. A full page another request rendered
/// (or read ahead) is handed out as is.
pub(crate) fn read(
    repo: &Repository,
    cursors: &Cursors,
    topic: &TopicName,
    start: &mut Start,
    max: usize,
) -> Result<Page, ApiError> {
    let at = position_of(repo, topic, start)?;
    let key = (topic.clone(), at, max);
    let ticket = match cursors.pages.claim(&key, false) {
        Some(Claim::Ready(ready)) => {
            *start = Start::After(at, true);
            return Ok(Page {
                body: ready.body,
                count: ready.count,
                start: at,
                last: ready.last,
            });
        }
        Some(Claim::Render(ticket)) => ticket,
        None => unreachable!("BUG: only a read-ahead is turned away"),
    };
    let page = render_page(repo, cursors, topic, start, at, max)?;
    if page.start != at {
        // The committed position moved between reading it and opening the consumer.
        return Ok(page);
    }
    ticket.finish(&Ready {
        body: page.body.clone(),
        count: page.count,
        last: page.last,
    });
    Ok(page)
}

/// Render the page that follows `last` (a full page of `max` just handed out), unless it
/// is kept or being rendered, so that the client finds it ready when it asks for it.
pub(crate) fn read_ahead(
    repo: &Repository,
    cursors: &Cursors,
    topic: &TopicName,
    last: ObjectId,
    max: usize,
) {
    let key = (topic.clone(), Some(last), max);
    let Some(Claim::Render(ticket)) = cursors.pages.claim(&key, true) else {
        return;
    };
    let mut start = Start::After(Some(last), true);
    if let Ok(page) = render_page(repo, cursors, topic, &mut start, Some(last), max) {
        if page.start != Some(last) {
            return;
        }
        ticket.finish(&Ready {
            body: page.body,
            count: page.count,
            last: page.last,
        });
    }
}

/// Where a read from `start` begins: the last message before it (`None`: the first).
fn position_of(
    repo: &Repository,
    topic: &TopicName,
    start: &Start,
) -> Result<Option<ObjectId>, ApiError> {
    Ok(match start {
        Start::Committed(name) => repo
            .refs()
            .find(&name.position_ref(topic))
            .map_err(crate::Error::from)?,
        Start::From(start_at) => position::resolve(repo, topic, start_at)?,
        Start::After(at, _) => *at,
    })
}

fn render_page(
    repo: &Repository,
    cursors: &Cursors,
    topic: &TopicName,
    start: &mut Start,
    at: Option<ObjectId>,
    max: usize,
) -> Result<Page, ApiError> {
    let mut consumer = open(repo, cursors, topic, start, at)?;
    let begin = consumer.delivered();
    *start = Start::After(begin, true);
    let (mut body, mut count, mut last, mut failed) = (Vec::new(), 0, None, false);
    while count < max && body.len() < MAX_REPLY_BYTES {
        let want = CHUNK.min(max - count);
        if let Some(line) = body.len().checked_div(count) {
            // One allocation for the rest of the page, sized by the lines so far.
            let rest = (line + 1).saturating_mul(max - count);
            body.reserve(rest.min(MAX_REPLY_BYTES.saturating_sub(body.len())));
        }
        let got = consumer.poll_with(want, |message| {
            render::message_line(&mut body, message);
            last = Some(message.id);
            Ok::<(), crate::Error>(())
        });
        let got = match got {
            Ok(got) => got,
            Err(err) => {
                // What was rendered stays valid; the consumer is dropped (state unknown).
                if count > 0 {
                    failed = true;
                    break;
                }
                return Err(err.into());
            }
        };
        count += got;
        if got < want {
            break;
        }
    }
    let page = Page {
        body: Bytes::from(body),
        count,
        start: begin,
        last,
    };
    if !failed {
        cursors.put(consumer);
    }
    Ok(page)
}

fn open(
    repo: &Repository,
    cursors: &Cursors,
    topic: &TopicName,
    start: &Start,
    at: Option<ObjectId>,
) -> Result<Consumer, ApiError> {
    let reader = || ConsumerName::new(READER).expect("BUG: a valid constant name");
    if let Some(consumer) = cursors.take(topic, at) {
        return Ok(consumer);
    }
    match start {
        Start::Committed(name) => Ok(Consumer::open(repo.clone(), name.clone(), topic.clone())?),
        Start::From(_) => open_after(repo, reader(), topic, at),
        Start::After(_, checked) => {
            if let (Some(id), false) = (at, checked) {
                position::find_on_topic(repo, topic, &id.to_string())?;
            }
            open_after(repo, reader(), topic, at)
        }
    }
}

/// A consumer whose next message follows `at` (a message of the topic, or `None`).
fn open_after(
    repo: &Repository,
    name: ConsumerName,
    topic: &TopicName,
    at: Option<ObjectId>,
) -> Result<Consumer, ApiError> {
    let Some(id) = at else {
        return Ok(Consumer::open_at(
            repo.clone(),
            name,
            topic.clone(),
            &StartAt::Beginning,
        )?);
    };
    let mut consumer = Consumer::open_at(repo.clone(), name, topic.clone(), &StartAt::At(id))?;
    consumer.poll_with(1, |_| Ok::<(), crate::Error>(()))?;
    Ok(consumer)
}

/// Wakes the requests waiting for a topic to move.
#[derive(Default)]
pub(crate) struct Wakers {
    topics: Mutex<HashMap<TopicName, Arc<Notify>>>,
}

/// Entries kept for topics nobody waits on, before they are swept.
const MAX_IDLE_WAKERS: usize = 4096;

impl Wakers {
    /// The notifier of `topic` (wait on `notified()`).
    pub fn of(&self, topic: &TopicName) -> Arc<Notify> {
        let mut topics = self
            .topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if topics.len() > MAX_IDLE_WAKERS {
            topics.retain(|_, n| Arc::strong_count(n) > 1);
        }
        topics.entry(topic.clone()).or_default().clone()
    }

    /// `topic` moved.
    pub fn moved(&self, topic: &TopicName) {
        let topics = self
            .topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(notify) = topics.get(topic) {
            notify.notify_waiters();
        }
    }

    /// Some topics moved (a push), or the server stops: wake everyone.
    pub fn all(&self) {
        let topics = self
            .topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for notify in topics.values() {
            notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_and_reuse_the_pooled_consumer() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let topic = TopicName::new("t").unwrap();
        let ids = repo
            .producer(&topic)
            .publish_batch((0..5).map(|i| format!("{i}").into_bytes()))
            .unwrap();
        let cursors = Cursors::default();
        let mut start = Start::From(StartAt::Beginning);
        let first = read(&repo, &cursors, &topic, &mut start, 2).unwrap();
        assert_eq!(
            (first.count, first.start, first.last),
            (2, None, Some(ids[1]))
        );
        assert!(
            cursors.knows(&topic, ids[1]),
            "the consumer waits in the pool at its position"
        );
        let mut next = Start::After(Some(ids[1]), false);
        let second = read(&repo, &cursors, &topic, &mut next, 10).unwrap();
        assert_eq!((second.count, second.last), (3, Some(ids[4])));
        let text = String::from_utf8(second.body.to_vec()).unwrap();
        assert!(
            text.starts_with(&format!("{{\"id\":\"{}\"", ids[2])),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3);
        let mut from_id = Start::From(StartAt::At(ids[3]));
        let third = read(&repo, &cursors, &topic, &mut from_id, 10).unwrap();
        assert_eq!(
            (third.count, third.start),
            (2, Some(ids[2])),
            "from=ID delivers ID first"
        );
        let mut unknown = Start::After(Some(ObjectId::null(gix_hash::Kind::Sha1)), false);
        let err = read(&repo, &cursors, &topic, &mut unknown, 1).unwrap_err();
        assert_eq!(err.code, "not_on_topic", "{}", err.message);
    }
}
