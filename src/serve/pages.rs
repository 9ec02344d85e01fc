//! Owns the cache of rendered pages: a full page of a topic (`max` messages after a
//! position) is rendered to NDJSON once and handed, as shared bytes, to every request that
//! asks for that page: a consumer group's members reading the same stretch, a client's
//! retry, and the read-ahead that renders a client's next page while it takes in this one.
//!
//! Invariants: only full pages are kept (as many messages as asked for), so a kept page is
//! exactly what a pooled consumer standing at its position delivers (the messages that
//! follow a position on a topic do not change as the topic grows); a page is rendered by
//! one request at a time, the others wait for it (at most [`WAIT`]); a renderer that fails
//! or gives up clears its mark ([`Ticket`] on drop); the cache holds at most
//! [`CACHE_BYTES`] of bodies and [`CACHE_PAGES`] pages, the least recently used go first;
//! a push through the git host empties it ([`Pages::clear`]: a push may rewrite a topic).

use std::{
    collections::HashMap,
    sync::{Condvar, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use gix_hash::ObjectId;

use crate::TopicName;

/// Bytes of page bodies kept at most.
pub(crate) const CACHE_BYTES: usize = 64 << 20;
/// Pages kept at most.
pub(crate) const CACHE_PAGES: usize = 4096;
/// How long a request waits for another one rendering the same page, then renders it
/// itself.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// A page: `max` messages of `topic` after the position (`None`: from the first).
pub(crate) type Key = (TopicName, Option<ObjectId>, usize);

/// A rendered full page.
#[derive(Debug, Clone)]
pub(crate) struct Ready {
    pub body: Bytes,
    pub count: usize,
    pub last: Option<ObjectId>,
}

enum Slot {
    Rendering,
    Ready { page: Ready, used: u64 },
}

#[derive(Default)]
struct Inner {
    slots: HashMap<Key, Slot>,
    bytes: usize,
    clock: u64,
}

/// The cache of rendered pages.
#[derive(Default)]
pub(crate) struct Pages {
    inner: Mutex<Inner>,
    done: Condvar,
}

/// What [`Pages::claim`] found.
pub(crate) enum Claim<'a> {
    /// The page, rendered before.
    Ready(Ready),
    /// Render it and hand it to the ticket.
    Render(Ticket<'a>),
}

/// The right (and duty) to render a page: [`finish`](Self::finish) keeps it, dropping the
/// ticket clears the mark so that waiters render it themselves.
pub(crate) struct Ticket<'a> {
    pages: &'a Pages,
    /// `None`: someone else holds the mark (a waiter that gave up); nothing is kept.
    key: Option<Key>,
}

impl Ticket<'_> {
    /// Keep `page` if it is full (`count` equals the key's `max`); wake the waiters.
    pub fn finish(mut self, page: &Ready) {
        let Some(key) = self.key.take() else { return };
        let mut inner = self.pages.lock();
        if page.count == key.2 && page.count > 0 && page.body.len() <= CACHE_BYTES / 4 {
            inner.clock += 1;
            let used = inner.clock;
            inner.bytes += page.body.len();
            let page = page.clone();
            inner.slots.insert(key, Slot::Ready { page, used });
            inner.evict();
        } else {
            inner.slots.remove(&key);
        }
        drop(inner);
        self.pages.done.notify_all();
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.pages.lock().slots.remove(&key);
            self.pages.done.notify_all();
        }
    }
}

impl Pages {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The page `key` if it is kept, else the ticket to render it; while another request
    /// renders it, wait for that (up to [`WAIT`]). `ahead`: a read-ahead, which never waits
    /// and has nothing to do (`None`) if the page is kept or being rendered.
    pub fn claim(&self, key: &Key, ahead: bool) -> Option<Claim<'_>> {
        let mut inner = self.lock();
        let mut waited = false;
        loop {
            match inner.slots.get(key) {
                None => {
                    inner.slots.insert(key.clone(), Slot::Rendering);
                    return Some(Claim::Render(Ticket {
                        pages: self,
                        key: Some(key.clone()),
                    }));
                }
                Some(_) if ahead => return None,
                Some(Slot::Ready { page, .. }) => {
                    let page = page.clone();
                    inner.clock += 1;
                    let now = inner.clock;
                    if let Some(Slot::Ready { used, .. }) = inner.slots.get_mut(key) {
                        *used = now;
                    }
                    return Some(Claim::Ready(page));
                }
                Some(Slot::Rendering) if waited => {
                    return Some(Claim::Render(Ticket {
                        pages: self,
                        key: None,
                    }));
                }
                Some(Slot::Rendering) => {
                    let (guard, timeout) = self
                        .done
                        .wait_timeout_while(inner, WAIT, |inner| {
                            matches!(inner.slots.get(key), Some(Slot::Rendering))
                        })
                        .unwrap_or_else(PoisonError::into_inner);
                    inner = guard;
                    waited = timeout.timed_out();
                }
            }
        }
    }

    /// Whether `id` ends a kept page of `topic` (so it is a message of the topic).
    pub fn knows(&self, topic: &TopicName, id: ObjectId) -> bool {
        self.lock().slots.iter().any(|((t, _, _), slot)| {
            t == topic && matches!(slot, Slot::Ready { page, .. } if page.last == Some(id))
        })
    }

    /// Forget every kept page (a push may have rewritten a topic).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner
            .slots
            .retain(|_, slot| matches!(slot, Slot::Rendering));
        inner.bytes = 0;
    }
}

impl Inner {
    /// Drop the least recently used pages until the bounds hold.
    fn evict(&mut self) {
        while self.bytes > CACHE_BYTES || self.slots.len() > CACHE_PAGES {
            let oldest = self
                .slots
                .iter()
                .filter_map(|(key, slot)| match slot {
                    Slot::Ready { used, .. } => Some((*used, key)),
                    Slot::Rendering => None,
                })
                .min_by_key(|(used, _)| *used)
                .map(|(_, key)| key.clone());
            let Some(key) = oldest else { return };
            if let Some(Slot::Ready { page, .. }) = self.slots.remove(&key) {
                self.bytes -= page.body.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(max: usize) -> Key {
        (TopicName::new("t").unwrap(), None, max)
    }

    fn page(count: usize, len: usize) -> Ready {
        Ready {
            body: Bytes::from(vec![b'x'; len]),
            count,
            last: Some(ObjectId::null(gix_hash::Kind::Sha1)),
        }
    }

    #[test]
    fn a_full_page_is_kept_a_short_one_is_not_and_a_dropped_ticket_clears_its_mark() {
        let pages = Pages::default();
        let Some(Claim::Render(ticket)) = pages.claim(&key(2), false) else {
            panic!("an empty cache hands out a ticket")
        };
        assert!(
            pages.claim(&key(2), true).is_none(),
            "a read-ahead skips a page being rendered"
        );
        ticket.finish(&page(2, 10));
        assert!(matches!(pages.claim(&key(2), false), Some(Claim::Ready(p)) if p.count == 2));
        let Some(Claim::Render(ticket)) = pages.claim(&key(3), false) else {
            panic!("another max is another page")
        };
        ticket.finish(&page(1, 10));
        let Some(Claim::Render(ticket)) = pages.claim(&key(3), false) else {
            panic!("a short page is not kept")
        };
        drop(ticket);
        assert!(
            matches!(pages.claim(&key(3), false), Some(Claim::Render(_))),
            "a dropped ticket leaves nothing behind to wait for"
        );
    }

    #[test]
    fn a_waiter_gets_the_page_its_renderer_finishes_and_the_bounds_evict_the_oldest() {
        let pages = Pages::default();
        let Some(Claim::Render(ticket)) = pages.claim(&key(1), false) else {
            panic!("an empty cache hands out a ticket")
        };
        std::thread::scope(|s| {
            let waiter = s.spawn(|| matches!(pages.claim(&key(1), false), Some(Claim::Ready(_))));
            std::thread::sleep(Duration::from_millis(50));
            ticket.finish(&page(1, 10));
            assert!(waiter.join().unwrap(), "the waiter got the rendered page");
        });
        for max in 2..8 {
            let Some(Claim::Render(ticket)) = pages.claim(&key(max), false) else {
                panic!("a new page")
            };
            ticket.finish(&page(max, CACHE_BYTES / 5));
        }
        let inner = pages.lock();
        assert!(inner.bytes <= CACHE_BYTES, "{} bytes kept", inner.bytes);
        assert!(
            !inner.slots.contains_key(&key(1)),
            "the least recently used page went first"
        );
        assert!(inner.slots.contains_key(&key(7)), "the newest page stays");
    }
}
