//! Owns dead letters: what the handler loop publishes when a message fails every attempt,
//! listing them, and redriving them onto their topic.
//!
//! A dead letter is a message on the dead-letter topic (`<topic>.dlq` by default) with the
//! failed message's payload and headers, and these headers (see the README's "Headers"):
//!
//! | key | value |
//! |---|---|
//! | `gitmq.dlq.topic` | the topic the message was on |
//! | `gitmq.dlq.commit` | its commit id there |
//! | `gitmq.dlq.id` | its stable id, if it had one |
//! | `gitmq.dlq.consumer` | the consumer whose handler failed |
//! | `gitmq.dlq.attempts` | how many attempts failed |
//! | `gitmq.dlq.error` | the last error (control characters replaced, at most 4096 bytes) |
//!
//! Its own stable id is `dead-<commit id>-<8 hex of the consumer's name>`, so a dead letter
//! published again after a crash is dropped by the dead-letter producer's idempotence window.
//!
//! Redrive ([`redrive()`]) re-publishes the dead letters after the position of the consumer
//! [`REDRIVE_CONSUMER`] on the dead-letter topic onto the topic, with the original stable id
//! and headers plus `gitmq.redrive.of <dead letter's commit id>`, then commits that position:
//! each dead letter is redriven once. A crash between the publish and the commit is covered
//! by reading `gitmq.redrive.of` on the topic's last [`REDRIVE_SCAN`] messages first.

use std::collections::HashSet;

use gix_hash::ObjectId;

use crate::{
    git::hash::Hasher,
    git::message::{headers::MAX_VALUE_LEN, Envelope, HeaderError},
    Consumer, ConsumerName, Message, MessageRef, Producer, Repository, TopicName,
};

/// The name of the consumer whose position on the dead-letter topic marks what was redriven.
pub const REDRIVE_CONSUMER: &str = "gitmq-redrive";
/// How many of the topic's last messages a redrive reads for `gitmq.redrive.of`.
pub const REDRIVE_SCAN: usize = 10_000;
/// The prefix of the headers gitmq writes on dead letters.
pub const HEADER_PREFIX: &str = "gitmq.dlq.";
/// The header a redriven message carries: the dead letter it came from.
pub const REDRIVE_OF: &str = "gitmq.redrive.of";

/// `<topic>.dlq`.
pub fn default_topic(topic: &TopicName) -> Result<TopicName, crate::Error> {
    Ok(TopicName::new(&format!("{topic}.dlq"))?)
}

/// A dead letter, as [`list()`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead letter itself.
    pub message: Message,
    /// The topic the failed message was on.
    pub topic: Option<String>,
    /// The failed message's commit id.
    pub original_commit: Option<ObjectId>,
    /// The failed message's stable id.
    pub original_id: Option<String>,
    /// The consumer whose handler failed.
    pub consumer: Option<String>,
    /// Failed attempts.
    pub attempts: Option<u32>,
    /// The last error.
    pub error: Option<String>,
    /// Whether a redrive already re-published it (it is at or before the redrive position).
    pub redriven: bool,
}

impl DeadLetter {
    fn from_message(message: Message, redriven: bool) -> Self {
        let header = |key: &str| {
            message
                .header(&format!("{HEADER_PREFIX}{key}"))
                .map(str::to_owned)
        };
        Self {
            topic: header("topic"),
            original_commit: header("commit").and_then(|h| ObjectId::from_hex(h.as_bytes()).ok()),
            original_id: header("id"),
            consumer: header("consumer"),
            attempts: header("attempts").and_then(|h| h.parse().ok()),
            error: header("error"),
            redriven,
            message,
        }
    }
}

/// Publish `message` of `consumer`'s topic, which failed `attempts` times with `error`, as a
/// dead letter with `producer` (on the dead-letter topic); the dead letter's commit id.
pub(crate) fn publish(
    producer: &mut Producer,
    consumer: &Consumer,
    message: &Message,
    attempts: u32,
    error: &str,
) -> Result<ObjectId, crate::Error> {
    let envelope =
        envelope(consumer, message, attempts, error).map_err(crate::git::message::Error::from)?;
    Ok(producer.publish_with(&message.payload, &envelope)?)
}

fn envelope(
    consumer: &Consumer,
    message: &Message,
    attempts: u32,
    error: &str,
) -> Result<Envelope, HeaderError> {
    let mut hasher = Hasher::new();
    hasher.update(consumer.name().as_str().as_bytes());
    let name_hash = hasher.finalize().to_string();
    let mut envelope = Envelope::new().with_id(format!(
        "dead-{}-{}",
        message.id,
        name_hash.get(..8).unwrap_or_default()
    ))?;
    let key = |k: &str| format!("{HEADER_PREFIX}{k}");
    envelope.push_header(&key("topic"), consumer.topic().as_str())?;
    envelope.push_header(&key("commit"), &message.id.to_string())?;
    if let Some(id) = message.stable_id() {
        envelope.push_header(&key("id"), id)?;
    }
    envelope.push_header(&key("consumer"), consumer.name().as_str())?;
    envelope.push_header(&key("attempts"), &attempts.to_string())?;
    envelope.push_header(&key("error"), &header_text(error))?;
    for (k, v) in message.headers() {
        if k.starts_with(HEADER_PREFIX) || k == REDRIVE_OF {
            continue;
        }
        if envelope.push_header(k, v).is_err() {
            break; // at most MAX_HEADERS: the dead letter's own come first
        }
    }
    Ok(envelope)
}

/// `text` fit for a header value: control characters become spaces, at most
/// `MAX_VALUE_LEN` (4096) bytes (cut on a character boundary).
pub fn header_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_VALUE_LEN));
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_VALUE_LEN {
            break;
        }
        out.push(c);
    }
    out
}

/// Every dead letter of `topic` (on `<topic>.dlq`), oldest first.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// # let dir = tempfile::tempdir().expect("temp dir");
/// # let repo = gitmq::Repository::init(dir.path())?;
/// let topic = gitmq::TopicName::new("orders")?;
/// assert!(gitmq::dlq::list(&repo, &topic)?.is_empty());
/// # Ok(()) }
/// ```
pub fn list(repo: &Repository, topic: &TopicName) -> Result<Vec<DeadLetter>, crate::Error> {
    list_on(repo, &default_topic(topic)?)
}

/// Every dead letter on the dead-letter topic `dead_topic`, oldest first.
pub fn list_on(repo: &Repository, dead_topic: &TopicName) -> Result<Vec<DeadLetter>, crate::Error> {
    let Some(head) = repo.head(dead_topic)? else {
        return Ok(Vec::new());
    };
    let position = repo
        .refs()
        .find(&redrive_consumer().position_ref(dead_topic))?;
    let mut odb = repo.odb();
    let mut buf = Vec::new();
    let mut backlog =
        super::Backlog::plan(&mut odb, head, None, super::DEFAULT_SEGMENT_LEN, &mut buf)?;
    let mut out = Vec::new();
    let mut redriven = position.is_some();
    while let Some(message) = backlog.next_message(&mut odb, &mut buf)? {
        let id = message.id;
        out.push(DeadLetter::from_message(message, redriven));
        if Some(id) == position {
            redriven = false;
        }
    }
    Ok(out)
}

fn redrive_consumer() -> ConsumerName {
    ConsumerName::new(REDRIVE_CONSUMER).expect("BUG: a valid consumer name")
}

/// What [`redrive()`] did: (dead letter, new message on the topic), in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redriven {
    /// Each dead letter re-published, with the commit id of its new message.
    pub messages: Vec<(ObjectId, ObjectId)>,
    /// Dead letters found already re-published (by a redrive that crashed before it
    /// committed) and skipped.
    pub skipped: Vec<ObjectId>,
}

/// Re-publish the dead letters of `topic` not redriven yet onto `topic`, once each.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::{ConsumerName, Repository, TopicName};
/// # let dir = tempfile::tempdir().expect("temp dir");
/// # let repo = Repository::init(dir.path())?;
/// let topic = TopicName::new("jobs")?;
/// repo.producer(&topic).publish(b"flaky")?;
/// let mut worker = repo.consumer(&ConsumerName::new("worker")?, &topic)?;
/// worker.run(|_| Err("down"))?; // dead-lettered after 3 attempts
/// let redriven = gitmq::dlq::redrive(&repo, &topic)?;
/// assert_eq!(redriven.messages.len(), 1);
/// assert!(gitmq::dlq::redrive(&repo, &topic)?.messages.is_empty(), "once");
/// worker.run(|message| { assert_eq!(message.payload, b"flaky"); Ok::<(), String>(()) })?;
/// # Ok(()) }
/// ```
pub fn redrive(repo: &Repository, topic: &TopicName) -> Result<Redriven, crate::Error> {
    redrive_from(repo, &default_topic(topic)?, topic)
}

/// Re-publish the dead letters on `dead_topic` not redriven yet onto `topic`, once each.
pub fn redrive_from(
    repo: &Repository,
    dead_topic: &TopicName,
    topic: &TopicName,
) -> Result<Redriven, crate::Error> {
    let mut consumer = repo.consumer(&redrive_consumer(), dead_topic)?;
    let done = redriven_on(repo, topic)?;
    let mut producer = crate::ProducerConfig::default()
        .with_idempotence(None)
        .open(repo, topic);
    let mut result = Redriven::default();
    let mut pending = Vec::new();
    while let Some(dead) = consumer.next_message()? {
        let hex = dead.id.to_string();
        if done.contains(&hex) {
            result.skipped.push(dead.id);
            continue;
        }
        let envelope = redrive_envelope(&dead.as_message_ref(), &hex)
            .map_err(crate::git::message::Error::from)?;
        if let Some(flushed) = producer.append_with(&dead.payload, &envelope)?.flushed {
            pending.extend(flushed.ids);
        }
        result
            .messages
            .push((dead.id, ObjectId::null(crate::git::hash::OBJECT_HASH)));
    }
    pending.extend(producer.flush()?.ids);
    for ((_, new), id) in result.messages.iter_mut().zip(pending) {
        *new = id;
    }
    consumer.commit()?;
    Ok(result)
}

fn redrive_envelope(dead: &MessageRef<'_>, dead_hex: &str) -> Result<Envelope, HeaderError> {
    let mut envelope = match dead.header("gitmq.dlq.id") {
        Some(id) => Envelope::new().with_id(id)?,
        None => Envelope::new(),
    };
    for (k, v) in dead.headers() {
        if !k.starts_with(HEADER_PREFIX) && k != REDRIVE_OF {
            envelope.push_header(k, v)?;
        }
    }
    envelope.push_header(REDRIVE_OF, dead_hex)?;
    Ok(envelope)
}

/// The `gitmq.redrive.of` values on the last [`REDRIVE_SCAN`] messages of `topic`.
fn redriven_on(repo: &Repository, topic: &TopicName) -> Result<HashSet<String>, crate::Error> {
    let mut done = HashSet::new();
    let mut odb = repo.odb();
    let mut buf = Vec::new();
    let mut next = repo.head(topic)?;
    for _ in 0..REDRIVE_SCAN {
        let Some(id) = next else { break };
        odb.read_commit(&id, &mut buf)?;
        let message = crate::git::message::decode::decode(id, &buf)?;
        if let Some(of) = message.header(REDRIVE_OF) {
            done.insert(of.to_owned());
        }
        next = message.parent;
    }
    Ok(done)
}
