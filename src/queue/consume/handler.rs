//! Owns the handler loop: [`Consumer::run()`] hands each message to a handler, retries a
//! failure, dead-letters a message that keeps failing, and commits the position after each
//! success.
//!
//! A run ends when the consumer is caught up (or after [`RunConfig::max_messages`]); to keep
//! handling messages as they arrive, loop: `loop { worker.run(..)?; worker.wait_for_new(t)?; }`.
//!
//! Delivery is at-least-once by construction: the position moves past a message only after
//! its handler returned `Ok` (or it was acknowledged on the dead-letter topic), so:
//!
//! - handler returns `Err` or panics: the attempt failed; it is retried (after
//!   [`RunConfig::retry_backoff`] times the attempt number) up to [`RunConfig::max_attempts`]
//!   attempts, then the message is published to the dead-letter topic and the loop moves on
//!   (or, with [`DeadLetters::Off`], the loop stops with [`Error::Failed`] and the position
//!   stays before the message). Panics are caught (`catch_unwind`) and count as failures;
//!   the handler's captured state must tolerate that.
//! - the process crashes: everything after the committed position comes again at the next
//!   run, so a message handled just before the crash may be handled twice. Attempts are
//!   counted in memory: a message that crashes the process itself (abort, OOM) is never
//!   dead-lettered.
//! - dead letters are published (acknowledged, durable per the dead-letter producer) before
//!   the position moves past the message; a crash in between publishes it again with the
//!   same stable id, which the dead-letter producer's idempotence window (scanned at open)
//!   drops.

use std::{
    fmt::Display,
    panic::{self, AssertUnwindSafe},
    time::Duration,
};

use gix_hash::ObjectId;

use crate::{queue::consume::dlq, Consumer, Message, Producer, TopicName};

/// Returned by [`Consumer::run()`] when a message fails every attempt and dead letters are
/// off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The handler failed on a message as many times as allowed.
    #[error("handler failed {attempts} times on message {id} of topic {topic}: {error}")]
    Failed {
        /// The topic.
        topic: String,
        /// The message's commit id.
        id: ObjectId,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure (the error's text, or the panic's message).
        error: String,
    },
}

/// Where messages go that fail every attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DeadLetters {
    /// To `<topic>.dlq` (the default).
    #[default]
    Default,
    /// To this topic.
    Topic(TopicName),
    /// Nowhere: the loop stops with [`Error::Failed`], the position before the message.
    Off,
}

/// How [`Consumer::run_with()`] handles messages.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Attempts per message before it is dead-lettered (at least 1; default 3).
    pub max_attempts: u32,
    /// Wait this long times the attempt number before a retry (default 10 ms).
    pub retry_backoff: Duration,
    /// Where failing messages go.
    pub dead_letters: DeadLetters,
    /// Commit the position after this many messages (at least 1; default 1: each message is
    /// committed once handled, so a crash repeats at most one).
    pub commit_every: usize,
    /// Stop after this many messages (default: when caught up).
    pub max_messages: Option<usize>,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            retry_backoff: Duration::from_millis(10),
            dead_letters: DeadLetters::Default,
            commit_every: 1,
            max_messages: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Messages the handler accepted.
    pub handled: usize,
    /// Failed attempts that were retried.
    pub retries: usize,
    /// Messages published to the dead-letter topic: (the message's commit id, the dead
    /// letter's commit id).
    pub dead_lettered: Vec<(ObjectId, ObjectId)>,
}

/// The handler loop
impl Consumer {
    /// Hand every message after the position to `handler`, oldest first, until caught up,
    /// with the default [`RunConfig`]: 3 attempts, then a dead letter on `<topic>.dlq`; the
    /// position is committed after each message.
    ///
    /// ```
    /// # fn main() -> Result<(), gitmq::Error> {
    /// use gitmq::{ConsumerName, Repository, TopicName};
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let repo = Repository::init(dir.path())?;
    /// let topic = TopicName::new("jobs")?;
    /// repo.producer(&topic).publish_batch([&b"ok"[..], b"bad", b"ok"])?;
    ///
    /// let mut worker = repo.consumer(&ConsumerName::new("worker")?, &topic)?;
    /// let report = worker.run(|message| match &message.payload[..] {
    ///     b"bad" => Err("cannot handle it"),
    ///     _ => Ok(()),
    /// })?;
    /// assert_eq!((report.handled, report.dead_lettered.len()), (2, 1));
    /// let dead = gitmq::dlq::list(&repo, &topic)?;
    /// assert_eq!(dead[0].error.as_deref(), Some("cannot handle it"));
    /// # Ok(()) }
    /// ```
    pub fn run<E: Display>(
        &mut self,
        handler: impl FnMut(&Message) -> Result<(), E>,
    ) -> Result<RunReport, crate::Error> {
        self.run_with(&RunConfig::default(), handler)
    }

    /// [`run()`](Self::run) as `config` says.
    pub fn run_with<E: Display>(
        &mut self,
        config: &RunConfig,
        mut handler: impl FnMut(&Message) -> Result<(), E>,
    ) -> Result<RunReport, crate::Error> {
        let dead_topic = match &config.dead_letters {
            DeadLetters::Default => Some(dlq::default_topic(self.topic())?),
            DeadLetters::Topic(topic) => Some(topic.clone()),
            DeadLetters::Off => None,
        };
        let mut dead_producer: Option<Producer> = None;
        let mut report = RunReport::default();
        let mut since_commit = 0;
        let mut count = 0;
        while config.max_messages.is_none_or(|max| count < max) {
            let before = self.delivered();
            let Some(message) = self.next_message()? else {
                break;
            };
            count += 1;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let error = match panic::catch_unwind(AssertUnwindSafe(|| handler(&message))) {
                    Ok(Ok(())) => {
                        report.handled += 1;
                        break;
                    }
                    Ok(Err(err)) => err.to_string(),
                    Err(payload) => panic_text(payload.as_ref()),
                };
                if attempt < config.max_attempts.max(1) {
                    report.retries += 1;
                    std::thread::sleep(config.retry_backoff * attempt);
                    continue;
                }
                let Some(dead_topic) = &dead_topic else {
                    self.rewind(before);
                    self.commit()?;
                    return Err(Error::Failed {
                        topic: self.topic().to_string(),
                        id: message.id,
                        attempts: attempt,
                        error,
                    }
                    .into());
                };
                let producer =
                    dead_producer.get_or_insert_with(|| self.repo().producer(dead_topic));
                let dead = match dlq::publish(producer, self, &message, attempt, &error) {
                    Ok(dead) => dead,
                    Err(err) => {
                        // Not dead-lettered: the message must come again.
                        self.rewind(before);
                        return Err(err);
                    }
                };
                report.dead_lettered.push((message.id, dead));
                break;
            }
            since_commit += 1;
            if since_commit >= config.commit_every.max(1) {
                self.commit()?;
                since_commit = 0;
            }
        }
        self.commit()?;
        Ok(report)
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    format!("panicked: {text}")
}
