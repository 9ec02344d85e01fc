//! Owns idempotent publishing: the window of stable ids a producer remembers, and the ids
//! it generates.
//!
//! A message appended with a stable id (`gitmq-id`) that is already in the window is not
//! appended again: the caller gets the original message's commit id. The window holds the
//! ids of the last [`Idempotence::window_messages`] messages (and, if set, only those younger
//! than [`Idempotence::window_age`]): the ones this producer appended, and, from the first
//! append with an id on, the ones found on the topic's last `window_messages` messages when
//! [`Idempotence::scan_on_open`] is on (so a producer restarted after a crash still knows
//! what reached the topic, whoever wrote it).
//!
//! Invariants: an id maps to the commit id its message has *on the topic*: a message still
//! in an unflushed batch maps to its batch id, replaced by its final id when its batch is
//! acknowledged (after any rebuild); batches are acknowledged in order, so the sequence
//! numbers of pending ids line up with the acknowledged ids. Memory is bounded by the window.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use gix_hash::ObjectId;

/// How a producer deduplicates messages that carry a stable id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idempotence {
    /// Remember the ids of this many messages (at least 1).
    pub window_messages: usize,
    /// Forget ids older than this (by when they were appended, or their author date for
    /// ids found on the topic); `None`: by count only.
    pub window_age: Option<Duration>,
    /// At the first append with a stable id, read the ids of the topic's last
    /// `window_messages` messages, so a restarted producer does not append what reached the
    /// topic before it stopped.
    pub scan_on_open: bool,
}

impl Default for Idempotence {
    fn default() -> Self {
        Self {
            window_messages: 10_000,
            window_age: None,
            scan_on_open: true,
        }
    }
}

/// Which messages get a stable id without one given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MessageIds {
    /// Only messages appended with an id ([`Envelope::with_id()`](crate::git::message::Envelope::with_id))
    /// carry one (the default: the plain `append` path writes git's layout only).
    #[default]
    Given,
    /// Every message without a given id gets a generated one: `<16 hex digits unique to the
    /// producer>-<sequence number>` (~30 bytes more per commit).
    Generate,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The commit id: final once acknowledged, else the id in its batch.
    commit: ObjectId,
    /// The message's sequence number while its batch is not acknowledged.
    pending_seq: Option<u64>,
    at: Instant,
}

/// The ids a producer remembers.
#[derive(Debug)]
pub(crate) struct Window {
    config: Idempotence,
    entries: HashMap<Box<str>, Entry>,
    /// Insertion order, for eviction.
    order: VecDeque<Box<str>>,
    /// Ids appended but not acknowledged yet, oldest first, with their sequence numbers.
    pending: VecDeque<(u64, Box<str>)>,
    /// Whether the topic was scanned.
    pub scanned: bool,
}

impl Window {
    pub fn new(config: Idempotence) -> Self {
        Self {
            config,
            entries: HashMap::new(),
            order: VecDeque::new(),
            pending: VecDeque::new(),
            scanned: false,
        }
    }

    pub fn config(&self) -> Idempotence {
        self.config
    }

    /// The commit id of the message with stable id `id`, if it is in the window.
    pub fn get(&mut self, id: &str) -> Option<ObjectId> {
        self.evict();
        self.entries.get(id).map(|e| e.commit)
    }

    /// Remember `id` as the message with sequence number `seq`, at `commit` in its batch.
    pub fn insert_pending(&mut self, id: &str, seq: u64, commit: ObjectId) {
        let key: Box<str> = id.into();
        self.pending.push_back((seq, key.clone()));
        self.insert(key, commit, Some(seq), Instant::now());
    }

    /// Remember `id` as a message found on the topic, `age` old.
    pub fn insert_found(&mut self, id: &str, commit: ObjectId, age: Duration) {
        let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        if self.entries.contains_key(id) {
            return;
        }
        self.insert(id.into(), commit, None, at);
    }

    fn insert(&mut self, key: Box<str>, commit: ObjectId, pending_seq: Option<u64>, at: Instant) {
        if self
            .entries
            .insert(
                key.clone(),
                Entry {
                    commit,
                    pending_seq,
                    at,
                },
            )
            .is_none()
        {
            self.order.push_back(key);
        }
        self.evict();
    }

    /// Messages with sequence numbers `first..first + ids.len()` were acknowledged as `ids`.
    pub fn acknowledged(&mut self, first: u64, ids: &[ObjectId]) {
        let end = first + ids.len() as u64;
        while let Some((seq, _)) = self.pending.front() {
            if *seq >= end {
                break;
            }
            let (seq, key) = self.pending.pop_front().expect("BUG: front checked above");
            let index = usize::try_from(seq.saturating_sub(first)).unwrap_or(usize::MAX);
            if let (Some(entry), Some(id)) = (self.entries.get_mut(&key), ids.get(index)) {
                if entry.pending_seq == Some(seq) {
                    entry.commit = *id;
                    entry.pending_seq = None;
                }
            }
        }
    }

    /// Forget every message not acknowledged (its batch was dropped after a failure).
    pub fn forget_pending(&mut self) {
        for (seq, key) in std::mem::take(&mut self.pending) {
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.pending_seq == Some(seq))
            {
                self.entries.remove(&key);
            }
        }
    }

    fn evict(&mut self) {
        let max = self.config.window_messages.max(1);
        while let Some(key) = self.order.front() {
            let Some(entry) = self.entries.get(key) else {
                self.order.pop_front();
                continue;
            };
            let too_many = self.order.len() > max;
            let too_old = self
                .config
                .window_age
                .is_some_and(|age| entry.at.elapsed() > age);
            // A pending id stays until its batch is acknowledged: its retry must not append.
            if entry.pending_seq.is_some() || !(too_many || too_old) {
                break;
            }
            self.entries.remove(key);
            self.order.pop_front();
        }
    }
}

/// Generates `<16 hex digits>-<n>` ids: the prefix is a SHA-1 of the process id, the time and
/// a process-wide counter, so two producers (or processes) never share one in practice.
#[derive(Debug, Clone)]
pub(crate) struct IdGenerator {
    prefix: [u8; 16],
    next: u64,
}

impl IdGenerator {
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static PRODUCERS: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut hasher = crate::git::hash::Hasher::new();
        hasher.update(&std::process::id().to_be_bytes());
        hasher.update(&nanos.to_be_bytes());
        hasher.update(&PRODUCERS.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let digest = hasher.finalize();
        let mut hex = [0u8; 40];
        let hex = digest.hex_to_buf(&mut hex);
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&hex.as_bytes()[..16]);
        Self { prefix, next: 0 }
    }

    /// The next id, written into `out` (cleared first).
    pub fn next_into<'a>(&mut self, out: &'a mut String) -> &'a str {
        use std::fmt::Write;
        out.clear();
        out.push_str(std::str::from_utf8(&self.prefix).expect("hex is ASCII"));
        let _ = write!(out, "-{}", self.next);
        self.next += 1;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::hash::OBJECT_HASH;

    fn oid(n: u8) -> ObjectId {
        let mut bytes = [0u8; 20];
        bytes[0] = n;
        ObjectId::from_bytes_or_panic(&bytes)
    }

    #[test]
    fn pending_ids_take_their_final_commit_ids_when_acknowledged() {
        let mut window = Window::new(Idempotence::default());
        window.insert_pending("a", 3, oid(1));
        window.insert_pending("b", 5, oid(2));
        assert_eq!(window.get("a"), Some(oid(1)));
        window.acknowledged(3, &[oid(7), oid(8), oid(9)]);
        assert_eq!(
            window.get("a"),
            Some(oid(7)),
            "rebuilt id replaces the batch id"
        );
        assert_eq!(window.get("b"), Some(oid(9)));
        assert_eq!(window.get("c"), None);
        let _ = OBJECT_HASH;
    }

    #[test]
    fn the_window_forgets_beyond_its_count_but_never_pending_ids() {
        let mut window = Window::new(Idempotence {
            window_messages: 2,
            ..Idempotence::default()
        });
        for (seq, id) in ["a", "b", "c"].iter().enumerate() {
            window.insert_pending(id, seq as u64, oid(1));
        }
        assert_eq!(window.get("a"), Some(oid(1)), "pending ids stay");
        window.acknowledged(0, &[oid(1), oid(2), oid(3)]);
        assert_eq!(window.get("a"), None, "beyond the last 2");
        assert_eq!(window.get("c"), Some(oid(3)));
    }

    #[test]
    fn the_window_forgets_old_ids() {
        let mut window = Window::new(Idempotence {
            window_age: Some(Duration::from_secs(60)),
            ..Idempotence::default()
        });
        window.insert_found("old", oid(1), Duration::from_secs(120));
        window.insert_found("new", oid(2), Duration::from_secs(1));
        assert_eq!(window.get("old"), None);
        assert_eq!(window.get("new"), Some(oid(2)));
    }

    #[test]
    fn generated_ids_are_unique_and_valid() {
        let (mut a, mut b) = (IdGenerator::new(), IdGenerator::new());
        let mut buf = String::new();
        let first = a.next_into(&mut buf).to_owned();
        assert_ne!(first, a.next_into(&mut buf));
        assert_ne!(first, b.next_into(&mut buf));
        assert!(crate::git::message::headers::check_id(&first).is_ok());
    }
}
