//! Owns reading a topic as one named consumer: the [`Consumer`] and its position ref.
//!
//! Data flow: read the position ref `refs/gitmq/consumers/<consumer>/<topic>` -> read the
//! topic's head -> plan a backlog from the head back to the last message handed out (one
//! walk over first parents, bounded memory) -> hand the messages out oldest first, each read
//! once -> [`Consumer::commit()`] (or [`AutoCommit`]) moves the position to the last message
//! handed out, by compare-and-swap.
//!
//! Order: a topic's first-parent chain, oldest first; a merge commit on it is one message in
//! its place (see the first-parent walk, `git::walk`). Commit dates are never consulted.
//!
//! Invariants: at-least-once: what was handed out but not committed is handed out again by
//! the next consumer opened with the same name; the position only ever names a message of
//! the topic; a commit that finds the position moved by someone else fails rather than
//! overwrite. A caught-up poll reads two refs' worth of state (the head, compared with what
//! was handed out) and nothing else.
//!
//! Poisoning: a commit that fails for any reason but a lost compare-and-swap or a held lock
//! (a write, fsync or rename failed) leaves the position ref in an unknown state (renamed but
//! not durable, or durable but not renamed; after a failed fsync the kernel may have dropped
//! the page, and a retry would report success), so that commit and every later one return
//! [`Error::Poisoned`] rather than report one as durable (fjall's and redb's rule, as the
//! producer's); reading goes on, and a new consumer opened with the same name reads from the
//! position on disk (at-least-once).

pub(crate) mod backlog;
pub mod dlq;
pub mod handler;
pub mod position;
mod read_ahead;
#[cfg(feature = "sign")]
pub mod verify;

pub(crate) use backlog::{Backlog, DEFAULT_SEGMENT_LEN};

use std::{
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use gix_hash::ObjectId;

use crate::{
    git::refs::{self, Expected, FullName},
    git::walk,
    queue::consume::position::StartAt,
    ConsumerName, Message, MessageRef, Repository, TopicName,
};

/// Returned by every [`Consumer`] operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the topic's head or the position, or moving the position, failed (a commit
    /// whose compare-and-swap found the position moved is `refs::Error::Changed`).
    #[error(transparent)]
    Refs(#[from] refs::Error),
    /// Walking the topic or reading a message failed.
    #[error(transparent)]
    Walk(#[from] walk::Error),
    /// A start point was refused (see [`StartAt`]).
    #[error(transparent)]
    Position(#[from] position::Error),
    /// A commit failed to write, sync or rename the position ref: the consumer commits no
    /// more (what reached the disk is unknown). Returned by that commit and every later one;
    /// open a new consumer, which reads from the position on disk.
    #[error(
        "committing the position of {consumer} on {topic} failed and the consumer is poisoned (open a new one): {cause}"
    )]
    Poisoned {
        /// The consumer.
        consumer: ConsumerName,
        /// The topic.
        topic: TopicName,
        /// The first failure.
        #[source]
        cause: Arc<refs::Error>,
    },
    /// A verifying consumer refused a message and refused messages stop it, or a refused
    /// message could not be dead-lettered (boxed: rare).
    #[cfg(feature = "sign")]
    #[error(transparent)]
    Verify(Box<verify::Error>),
}

#[cfg(feature = "sign")]
impl From<verify::Error> for Error {
    fn from(err: verify::Error) -> Self {
        Error::Verify(Box::new(err))
    }
}

/// How often [`Consumer::wait_for_new()`] reads the topic's head, by default.
pub const DEFAULT_WAIT_INTERVAL: Duration = Duration::from_millis(1);

/// When a consumer commits its position by itself: at the start of a [`Consumer::poll()`]
/// (or iterator step), once enough messages or time have passed since the last commit.
/// Messages handed out before that call count as processed: the caller came back for more.
///
/// ```
/// use std::time::Duration;
/// use gitmq::consume::AutoCommit;
/// let policy = AutoCommit::every_messages(1000).or_every(Duration::from_secs(1));
/// assert_eq!(policy.messages, Some(1000));
/// assert_eq!(AutoCommit::default(), AutoCommit::OFF);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AutoCommit {
    /// Commit once this many messages were handed out since the last commit.
    pub messages: Option<usize>,
    /// Commit once this long has passed since the last commit (and something is new).
    pub interval: Option<Duration>,
}

impl AutoCommit {
    /// Never commit by itself (the default): call [`Consumer::commit()`].
    pub const OFF: Self = Self {
        messages: None,
        interval: None,
    };

    /// Commit every `messages` messages (at least 1).
    pub fn every_messages(messages: usize) -> Self {
        Self {
            messages: Some(messages.max(1)),
            interval: None,
        }
    }

    /// Commit when `interval` has passed since the last commit.
    pub fn every(interval: Duration) -> Self {
        Self {
            messages: None,
            interval: Some(interval),
        }
    }

    /// Also commit when `interval` has passed since the last commit.
    #[must_use]
    pub fn or_every(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }
}

/// Reads one topic as one named consumer, resuming from its committed position.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::{ConsumerName, Repository, TopicName};
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = Repository::init(dir.path())?;
/// let topic = TopicName::new("orders")?;
/// repo.producer(&topic).publish_batch([&b"a"[..], b"b"])?;
///
/// let mut consumer = repo.consumer(&ConsumerName::new("billing")?, &topic)?;
/// let messages = consumer.poll(10)?;
/// assert_eq!(messages.iter().map(|m| &m.payload[..]).collect::<Vec<_>>(), [b"a", b"b"]);
/// consumer.commit()?;
/// assert!(repo.consumer(&ConsumerName::new("billing")?, &topic)?.poll(10)?.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Consumer {
    repo: Repository,
    name: ConsumerName,
    topic: TopicName,
    position_ref: FullName,
    /// The committed position, as last read or written.
    committed: Option<ObjectId>,
    /// The last message handed out.
    delivered: Option<ObjectId>,
    /// What is known to follow `delivered`.
    backlog: Option<Backlog>,
    odb: crate::git::odb::Odb,
    buf: Vec<u8>,
    segment_len: usize,
    auto_commit: AutoCommit,
    /// Messages handed out since the last commit.
    uncommitted: usize,
    last_commit: Instant,
    wait_interval: Duration,
    /// Fsync the position ref on commit.
    sync: bool,
    /// Why an earlier commit failed, after which none is accepted.
    poisoned: Option<Arc<refs::Error>>,
    /// Signature verification ([`verify`]), if on.
    #[cfg(feature = "sign")]
    verify: Option<Box<verify::ConsumerVerify>>,
}

/// Lifecycle
impl Consumer {
    /// Open consumer `name` on `topic`, at its committed position (the topic's start if none).
    pub fn open(repo: Repository, name: ConsumerName, topic: TopicName) -> Result<Self, Error> {
        let position_ref = name.position_ref(&topic);
        let committed = repo.refs().find(&position_ref)?;
        Ok(Self {
            odb: repo.odb(),
            repo,
            name,
            topic,
            position_ref,
            committed,
            delivered: committed,
            backlog: None,
            buf: Vec::new(),
            segment_len: DEFAULT_SEGMENT_LEN,
            auto_commit: AutoCommit::OFF,
            uncommitted: 0,
            last_commit: Instant::now(),
            wait_interval: DEFAULT_WAIT_INTERVAL,
            sync: true,
            poisoned: None,
            #[cfg(feature = "sign")]
            verify: None,
        })
    }

    /// Open consumer `name` on `topic` reading from `start` (see [`StartAt`]) whatever its
    /// committed position: a replay. The committed position does not move until
    /// [`commit()`](Self::commit), which then moves it (compare-and-swap from the committed
    /// value) to the last message handed out, backwards if need be.
    pub fn open_at(
        repo: Repository,
        name: ConsumerName,
        topic: TopicName,
        start: &StartAt,
    ) -> Result<Self, Error> {
        let mut consumer = Self::open(repo, name, topic)?;
        consumer.seek(start)?;
        Ok(consumer)
    }

    /// Read from `start` next (see [`open_at()`](Self::open_at)); what was handed out but
    /// not committed is forgotten.
    pub fn seek(&mut self, start: &StartAt) -> Result<(), Error> {
        self.delivered = crate::queue::consume::position::resolve(&self.repo, &self.topic, start)?;
        self.backlog = None;
        self.uncommitted = usize::from(self.delivered != self.committed);
        Ok(())
    }

    /// Commit the position by itself per `policy` (see [`AutoCommit`]).
    #[must_use]
    pub fn with_auto_commit(mut self, policy: AutoCommit) -> Self {
        self.auto_commit = policy;
        self
    }

    /// Keep at most `messages` message locations in memory while catching up (default
    /// 1 Mi messages); a longer backlog is walked about twice instead of once.
    #[must_use]
    pub fn with_segment_len(mut self, messages: usize) -> Self {
        self.segment_len = messages.max(1);
        self
    }

    /// How durable a commit of the position is: [`Durability::None`](crate::Durability::None)
    /// leaves it in the page cache (a power loss may forget it, and the messages since the
    /// last synced commit are delivered again: still at-least-once); the default syncs.
    #[must_use]
    pub fn with_durability(mut self, durability: crate::Durability) -> Self {
        self.sync = durability.syncs();
        self
    }

    /// Read the topic's head this often in [`wait_for_new()`](Self::wait_for_new).
    #[must_use]
    pub fn with_wait_interval(mut self, interval: Duration) -> Self {
        self.wait_interval = interval;
        self
    }
}

/// Consuming
impl Consumer {
    /// Up to `max` messages after the last one handed out, oldest first; empty when caught
    /// up. Reads the topic's head at most once per call, when what is known runs out.
    pub fn poll(&mut self, max: usize) -> Result<Vec<Message>, Error> {
        self.auto_commit_if_due()?;
        let known = self
            .backlog
            .as_ref()
            .map_or(0, |b| usize::try_from(b.remaining()).unwrap_or(usize::MAX));
        let mut messages = Vec::with_capacity(max.min(known.max(1)));
        let mut head_read = false;
        while messages.len() < max {
            match self.next_inner(&mut head_read)? {
                Some(message) => messages.push(message),
                None => break,
            }
        }
        Ok(messages)
    }

    /// Like [`poll()`](Self::poll), but hands each message to `visit` borrowed, straight
    /// from the pack, without allocating (the fastest way to read a topic). Returns how
    /// many messages `visit` accepted. If `visit` fails, its message does not count as
    /// handed out: it comes first again at the next poll.
    ///
    /// ```
    /// # fn main() -> Result<(), gitmq::Error> {
    /// # let dir = tempfile::tempdir().expect("temp dir");
    /// # let repo = gitmq::Repository::init(dir.path())?;
    /// # let topic = gitmq::TopicName::new("orders")?;
    /// # repo.producer(&topic).publish_batch([&b"a"[..], b"bc"])?;
    /// let mut consumer = repo.consumer(&gitmq::ConsumerName::new("sizes")?, &topic)?;
    /// let mut bytes = 0;
    /// let count = consumer.poll_with(100, |message| {
    ///     bytes += message.payload.len();
    ///     Ok::<(), gitmq::Error>(())
    /// })?;
    /// assert_eq!((count, bytes), (2, 3));
    /// # Ok(()) }
    /// ```
    pub fn poll_with<E: From<Error>>(
        &mut self,
        max: usize,
        mut visit: impl FnMut(&MessageRef<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        self.auto_commit_if_due()?;
        let (mut head_read, mut replanned) = (false, false);
        let mut count = 0;
        while count < max {
            let Some(backlog) = self.backlog.as_mut() else {
                if !self.plan_if_new(&mut head_read)? {
                    break;
                }
                continue;
            };
            #[cfg(feature = "sign")]
            let verify = &mut self.verify;
            let visited = backlog.next_message_with(&mut self.odb, &mut self.buf, |message| {
                #[cfg(feature = "sign")]
                if verify
                    .as_mut()
                    .is_some_and(|v| !v.is_covered_next(message.id))
                {
                    return (message.id, Visit::Refused(message.clone().into_owned()));
                }
                (message.id, Visit::Visited(visit(message)))
            });
            match visited {
                #[cfg(feature = "sign")]
                Ok(Some((_, Visit::Refused(message)))) => {
                    // Dead-lettered (then on to the next), or the error that stops here.
                    let delivered = self.accept_verified(&message, true)?;
                    debug_assert!(!delivered, "BUG: a refused message is never handed out");
                }
                Ok(Some((id, Visit::Visited(Ok(()))))) => {
                    self.delivered = Some(id);
                    self.uncommitted += 1;
                    count += 1;
                }
                Ok(Some((_, Visit::Visited(Err(err))))) => {
                    // Plan again from the last message handed out: this one comes again.
                    self.backlog = None;
                    return Err(err);
                }
                Ok(None) => self.backlog = None,
                // A repack removed a pack the plan pointed into: plan again, once.
                Err(walk::Error::Odb(crate::git::odb::Error::StaleLocation)) if !replanned => {
                    replanned = true;
                    self.backlog = None;
                    self.odb = self.repo.odb();
                    head_read = false;
                }
                Err(err) => return Err(Error::from(err).into()),
            }
        }
        Ok(count)
    }

    /// The next message after the last one handed out; `None` when caught up.
    pub fn next_message(&mut self) -> Result<Option<Message>, Error> {
        self.auto_commit_if_due()?;
        self.next_inner(&mut false)
    }

    /// Every message after the last one handed out, one at a time, until caught up or an
    /// error (which is the last item).
    pub fn messages(&mut self) -> Messages<'_> {
        Messages {
            consumer: self,
            done: false,
        }
    }

    /// Commit the position: everything handed out so far counts as processed. A commit that
    /// fails to write, sync or rename the position ref poisons the consumer: it and every
    /// later commit return [`Error::Poisoned`].
    pub fn commit(&mut self) -> Result<(), Error> {
        if let Some(cause) = &self.poisoned {
            return Err(Error::Poisoned {
                consumer: self.name.clone(),
                topic: self.topic.clone(),
                cause: Arc::clone(cause),
            });
        }
        match self.commit_unpoisoned() {
            Err(Error::Refs(err))
                if !matches!(
                    err,
                    refs::Error::Changed { .. } | refs::Error::Locked { .. }
                ) =>
            {
                let cause = Arc::new(err);
                self.poisoned = Some(Arc::clone(&cause));
                Err(Error::Poisoned {
                    consumer: self.name.clone(),
                    topic: self.topic.clone(),
                    cause,
                })
            }
            result => result,
        }
    }

    fn commit_unpoisoned(&mut self) -> Result<(), Error> {
        let Some(delivered) = self.delivered else {
            // Seeked to the beginning and nothing handed out since: no position.
            if let Some(committed) = self.committed {
                let lock = self
                    .repo
                    .refs()
                    .lock(&self.position_ref, Duration::from_secs(10))?;
                lock.delete(Expected::MustMatch(committed), self.sync)?;
                self.committed = None;
                self.uncommitted = 0;
                self.last_commit = Instant::now();
            }
            return Ok(());
        };
        if self.committed == Some(delivered) {
            return Ok(());
        }
        let lock = self
            .repo
            .refs()
            .lock(&self.position_ref, Duration::from_secs(10))?;
        lock.commit(
            Expected::from_current(self.committed),
            &delivered,
            self.sync,
        )?;
        self.committed = Some(delivered);
        self.uncommitted = 0;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// How many messages follow the committed position (walks them: O(lag) time, O(1)
    /// memory).
    pub fn lag(&mut self) -> Result<usize, Error> {
        match self.repo.head(&self.topic)? {
            None => Ok(0),
            Some(head) if Some(head) == self.committed => Ok(0),
            Some(head) => {
                let count = walk::count_after(&mut self.odb, head, self.committed, &mut self.buf)?;
                Ok(usize::try_from(count).unwrap_or(usize::MAX))
            }
        }
    }

    /// Wait until a message follows the last one handed out, reading the topic's head every
    /// [wait interval](Self::with_wait_interval), for at most `timeout`. Whether one does.
    pub fn wait_for_new(&mut self, timeout: Duration) -> Result<bool, Error> {
        if self.backlog.as_ref().is_some_and(|b| !b.is_empty()) {
            return Ok(true);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let head = self.repo.head(&self.topic)?;
            if head.is_some() && head != self.delivered {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            thread::sleep(self.wait_interval.min(deadline - now));
        }
    }

    /// Hand out again everything after `to` (a message handed out before, or the committed
    /// position): the handler loop's failed message comes first at the next read.
    pub(crate) fn rewind(&mut self, to: Option<ObjectId>) {
        if self.delivered != to {
            self.delivered = to;
            self.backlog = None;
            self.uncommitted = self.uncommitted.saturating_sub(1);
        }
    }

    fn auto_commit_if_due(&mut self) -> Result<(), Error> {
        if self.uncommitted == 0 {
            return Ok(());
        }
        let AutoCommit { messages, interval } = self.auto_commit;
        let due = messages.is_some_and(|n| self.uncommitted >= n)
            || interval.is_some_and(|t| self.last_commit.elapsed() >= t);
        if due {
            self.commit()?;
        }
        Ok(())
    }

    /// The next message, reading the head (and planning a backlog) only if `head_read` is
    /// still false, which it then becomes.
    fn next_inner(&mut self, head_read: &mut bool) -> Result<Option<Message>, Error> {
        let mut replanned = false;
        loop {
            if let Some(backlog) = self.backlog.as_mut() {
                match backlog.next_message(&mut self.odb, &mut self.buf) {
                    Ok(Some(message)) => {
                        #[cfg(feature = "sign")]
                        if !self.accept_verified(&message, false)? {
                            continue;
                        }
                        self.delivered = Some(message.id);
                        self.uncommitted += 1;
                        return Ok(Some(message));
                    }
                    Ok(None) => self.backlog = None,
                    // A repack removed a pack the plan pointed into: plan again, once.
                    Err(walk::Error::Odb(crate::git::odb::Error::StaleLocation)) if !replanned => {
                        replanned = true;
                        self.backlog = None;
                        self.odb = self.repo.odb();
                        *head_read = false;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            if !self.plan_if_new(head_read)? {
                return Ok(None);
            }
        }
    }

    /// Unless `head_read` (then it becomes true): read the head, and plan a backlog if it
    /// moved past the last message handed out. Whether there is a backlog now.
    fn plan_if_new(&mut self, head_read: &mut bool) -> Result<bool, Error> {
        if *head_read {
            return Ok(false);
        }
        *head_read = true;
        let Some(head) = self.repo.head(&self.topic)? else {
            return Ok(false);
        };
        if Some(head) == self.delivered {
            return Ok(false);
        }
        self.backlog = Some(Backlog::plan(
            &mut self.odb,
            head,
            self.delivered,
            self.segment_len,
            &mut self.buf,
        )?);
        #[cfg(feature = "sign")]
        if let Some(verify) = self.verify.as_mut() {
            verify.plan(&mut self.odb, head, self.delivered, &mut self.buf)?;
        }
        Ok(true)
    }
}

/// Access
impl Consumer {
    /// The repository it reads.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// The consumer's name.
    pub fn name(&self) -> &ConsumerName {
        &self.name
    }

    /// The topic it reads.
    pub fn topic(&self) -> &TopicName {
        &self.topic
    }

    /// The committed position: the last message processed, `None` before the first commit.
    pub fn position(&self) -> Option<ObjectId> {
        self.committed
    }

    /// The last message handed out (committed or not), `None` before the first.
    pub fn delivered(&self) -> Option<ObjectId> {
        self.delivered
    }
}

/// What [`Consumer::poll_with()`]'s visit did with a message.
enum Visit<E> {
    /// Handed to the caller's closure, with its result.
    Visited(Result<(), E>),
    /// Refused by signature verification: not handed out.
    #[cfg(feature = "sign")]
    Refused(Message),
}

/// The messages of a [`Consumer`], one at a time, until caught up. Returned by
/// [`Consumer::messages()`].
#[derive(Debug)]
pub struct Messages<'a> {
    consumer: &'a mut Consumer,
    done: bool,
}

impl Iterator for Messages<'_> {
    type Item = Result<Message, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.consumer.next_message().transpose();
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

impl std::iter::FusedIterator for Messages<'_> {}

/// The number of messages on `topic` after `position`.
pub fn lag(
    repo: &Repository,
    topic: &TopicName,
    position: Option<ObjectId>,
    buf: &mut Vec<u8>,
) -> Result<usize, Error> {
    match repo.head(topic)? {
        None => Ok(0),
        Some(head) if Some(head) == position => Ok(0),
        Some(head) => {
            let count = walk::count_after(&mut repo.odb(), head, position, buf)?;
            Ok(usize::try_from(count).unwrap_or(usize::MAX))
        }
    }
}
