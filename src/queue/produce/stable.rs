//! Owns appending messages with an [`Envelope`]: stable ids, headers and idempotent
//! publishing ([`Producer::append_with()`], [`Producer::publish_with()`]). The window itself
//! lives in [`super::idempotence`].
//!
//! Invariant: a stable id found in the window appends nothing; the window is filled from the
//! topic's last messages once, before the first lookup, when the configuration asks.

use std::time::Duration;

use gix_hash::ObjectId;

use super::{unix_seconds, Appended, Error, Producer};
use crate::{git::message::Envelope, Repository, TopicName};

/// Appending with an envelope
impl Producer {
    /// Like [`append()`](Self::append), with `envelope`'s stable id and headers. A stable id
    /// already in the producer's idempotence window appends nothing: the result is the
    /// original's commit id with [`Appended::duplicate`] set.
    ///
    /// ```
    /// # fn main() -> Result<(), gitmq::Error> {
    /// use gitmq::{git::message::Envelope, Repository, TopicName};
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let repo = Repository::init(dir.path())?;
    /// let mut producer = repo.producer(&TopicName::new("orders")?);
    /// let envelope = Envelope::new().with_id("order-7")?.with_header("source", "web")?;
    /// let first = producer.append_with(br#"{"order":7}"#, &envelope)?;
    /// let retry = producer.append_with(br#"{"order":7}"#, &envelope)?;
    /// assert!(retry.duplicate && retry.id == first.id);
    /// assert_eq!(producer.flush()?.ids, [first.id]); // appended once
    /// # Ok(()) }
    /// ```
    pub fn append_with(&mut self, payload: &[u8], envelope: &Envelope) -> Result<Appended, Error> {
        if let Some(original) = self.known(envelope.id())? {
            self.collect(false)?;
            return Ok(Appended {
                id: original,
                flushed: self.take_acknowledged(),
                duplicate: true,
            });
        }
        let id = self.append_unflushed(payload, Some(envelope))?;
        self.appended(id)
    }

    /// The commit id of the message with stable id `id` if it is in the idempotence window
    /// (reading the topic's last messages first, once, if so configured).
    pub(super) fn known(&mut self, id: Option<&str>) -> Result<Option<ObjectId>, Error> {
        let (Some(id), Some(window)) = (id, self.window.as_ref()) else {
            return Ok(None);
        };
        self.check_poisoned()?;
        if !window.scanned {
            let found = if window.config().scan_on_open {
                scan_ids(&self.repo, &self.topic, window.config().window_messages)?
            } else {
                Vec::new()
            };
            let window = self.window.as_mut().expect("BUG: checked above");
            window.scanned = true;
            for (stable, commit, age) in found.iter().rev() {
                window.insert_found(stable, *commit, *age);
            }
        }
        Ok(self.window.as_mut().and_then(|w| w.get(id)))
    }

    /// Append one message with `envelope`'s stable id and headers, and flush: its final id,
    /// acknowledged. Idempotent: if the stable id is in the window (published before by this
    /// producer, or found on the topic's last messages), nothing is appended and the
    /// original's commit id is returned.
    ///
    /// ```
    /// # fn main() -> Result<(), gitmq::Error> {
    /// use gitmq::{git::message::Envelope, Repository, TopicName};
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let repo = Repository::init(dir.path())?;
    /// let topic = TopicName::new("payments")?;
    /// let envelope = Envelope::new().with_id("payment-1")?;
    /// let id = repo.producer(&topic).publish_with(b"100 EUR", &envelope)?;
    /// // A retry from a new producer (say, after a crash) finds it on the topic.
    /// assert_eq!(repo.producer(&topic).publish_with(b"100 EUR", &envelope)?, id);
    /// assert_eq!(repo.head(&topic)?, Some(id));
    /// # Ok(()) }
    /// ```
    pub fn publish_with(&mut self, payload: &[u8], envelope: &Envelope) -> Result<ObjectId, Error> {
        let appended = self.append_with(payload, envelope)?;
        let mut last = appended.flushed.and_then(|f| f.ids.last().copied());
        if let Some(id) = self.flush()?.ids.last() {
            last = Some(*id);
        }
        let final_id = envelope
            .id()
            .and_then(|id| self.window.as_mut().and_then(|w| w.get(id)));
        if let Some(id) = final_id {
            return Ok(id);
        }
        if appended.duplicate {
            return Ok(appended.id);
        }
        Ok(last.expect("BUG: a flush after an append acknowledges it"))
    }
}

/// The stable ids of the last `max` messages of `topic`, newest first, with their commit ids
/// and ages (by author date).
fn scan_ids(
    repo: &Repository,
    topic: &TopicName,
    max: usize,
) -> Result<Vec<(String, ObjectId, Duration)>, Error> {
    let mut found = Vec::new();
    let mut odb = repo.odb();
    let mut buf = Vec::new();
    let now = unix_seconds();
    let mut next = repo.head(topic)?;
    for _ in 0..max {
        let Some(id) = next else { break };
        odb.read_commit(&id, &mut buf)?;
        let message = crate::git::message::decode::decode(id, &buf)?;
        if let Some(stable) = message.stable_id() {
            let age = u64::try_from(now.saturating_sub(message.time.seconds)).unwrap_or(0);
            found.push((stable.to_owned(), id, Duration::from_secs(age)));
        }
        next = message.parent;
    }
    Ok(found)
}
