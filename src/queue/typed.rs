//! Owns typed messages (feature `json`, on by default): payloads as JSON through serde, on
//! top of the byte API, which stays (`publish(&[u8])`, `poll`, `run`).
//!
//! - producing: [`Producer::publish_json()`], [`Producer::publish_json_with()`] (stable id,
//!   headers, idempotence), [`Producer::append_json()`];
//! - consuming: [`Message::json()`], [`Consumer::next_json()`], the iterator
//!   [`Consumer::json_messages()`], and the handler loop [`Consumer::run_json()`].
//!
//! A payload that does not deserialize as `T` is an [`Error`] naming the message; in the
//! handler loop it counts as a failed attempt, so it ends up as a dead letter like any other
//! failure.

use gix_hash::ObjectId;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{
    queue::consume::handler::{RunConfig, RunReport},
    queue::produce::Appended,
    Consumer, Envelope, Message, MessageRef, Producer,
};

/// Returned when a value does not serialize, or a payload does not deserialize, as JSON.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Serializing a value failed.
    #[error("cannot serialize the message as JSON")]
    Serialize {
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// A payload is not the JSON of the expected type.
    #[error("message {id} is not the expected JSON")]
    Deserialize {
        /// The message.
        id: ObjectId,
        /// What serde_json said.
        source: serde_json::Error,
    },
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|source| Error::Serialize { source })
}

/// A message and its payload decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received<T> {
    /// The message (id, stable id, headers, author, time, raw payload).
    pub message: Message,
    /// The payload, decoded.
    pub value: T,
}

/// Typed producing
impl Producer {
    /// Publish `value` as JSON and flush: its final id, acknowledged.
    ///
    /// ```
    /// # fn main() -> Result<(), gitmq::Error> {
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Order { id: u32, total: f64 }
    ///
    /// # let dir = tempfile::tempdir().expect("temp dir");
    /// # let repo = gitmq::Repository::init(dir.path())?;
    /// let topic = gitmq::TopicName::new("orders")?;
    /// repo.producer(&topic).publish_json(&Order { id: 1, total: 9.5 })?;
    /// let mut billing = repo.consumer(&gitmq::ConsumerName::new("billing")?, &topic)?;
    /// let order = billing.next_json::<Order>()?.expect("one message");
    /// assert_eq!(order.value, Order { id: 1, total: 9.5 });
    /// # Ok(()) }
    /// ```
    pub fn publish_json<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<ObjectId, crate::Error> {
        Ok(self.publish(&to_json(value)?)?)
    }

    /// Publish `value` as JSON with `envelope`'s stable id and headers (idempotent like
    /// [`publish_with()`](Self::publish_with)).
    pub fn publish_json_with<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        envelope: &Envelope,
    ) -> Result<ObjectId, crate::Error> {
        Ok(self.publish_with(&to_json(value)?, envelope)?)
    }

    /// Append `value` as JSON with `envelope` (see [`append_with()`](Self::append_with)).
    pub fn append_json<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        envelope: &Envelope,
    ) -> Result<Appended, crate::Error> {
        Ok(self.append_with(&to_json(value)?, envelope)?)
    }
}

/// Typed access
impl Message {
    /// The payload deserialized from JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.payload).map_err(|source| Error::Deserialize {
            id: self.id,
            source,
        })
    }
}

/// Typed access
impl<'a> MessageRef<'a> {
    /// The payload deserialized from JSON, borrowing from it where `T` does.
    pub fn json<T: Deserialize<'a>>(&self) -> Result<T, Error> {
        serde_json::from_slice(self.payload).map_err(|source| Error::Deserialize {
            id: self.id,
            source,
        })
    }
}

/// Typed consuming
impl Consumer {
    /// The next message with its payload decoded as `T`; `None` when caught up. A payload
    /// that is not `T` is an error, and its message counts as handed out (the next call
    /// goes on after it); use [`run_json()`](Self::run_json) to dead-letter such messages.
    pub fn next_json<T: DeserializeOwned>(&mut self) -> Result<Option<Received<T>>, crate::Error> {
        let Some(message) = self.next_message()? else {
            return Ok(None);
        };
        let value = message.json()?;
        Ok(Some(Received { message, value }))
    }

    /// Every message after the last one handed out, decoded as `T`, until caught up. A
    /// payload that is not `T` is an `Err` item and the iteration goes on after it; any
    /// other error is the last item.
    ///
    /// ```
    /// # fn main() -> Result<(), gitmq::Error> {
    /// # let dir = tempfile::tempdir().expect("temp dir");
    /// # let repo = gitmq::Repository::init(dir.path())?;
    /// # let topic = gitmq::TopicName::new("numbers")?;
    /// let mut producer = repo.producer(&topic);
    /// for n in [1, 2, 3] {
    ///     producer.publish_json(&n)?;
    /// }
    /// let mut sum = repo.consumer(&gitmq::ConsumerName::new("sum")?, &topic)?;
    /// let total: u64 = sum.json_messages::<u64>().map(|r| r.map(|m| m.value)).sum::<Result<_, _>>()?;
    /// assert_eq!(total, 6);
    /// # Ok(()) }
    /// ```
    pub fn json_messages<T: DeserializeOwned>(&mut self) -> JsonMessages<'_, T> {
        JsonMessages {
            consumer: self,
            done: false,
            marker: std::marker::PhantomData,
        }
    }

    /// The handler loop ([`run_with()`](Self::run_with)) on payloads decoded as `T`; a
    /// payload that is not `T` fails every attempt and becomes a dead letter.
    ///
    /// ```
    /// # fn main() -> Result<(), gitmq::Error> {
    /// # let dir = tempfile::tempdir().expect("temp dir");
    /// # let repo = gitmq::Repository::init(dir.path())?;
    /// # let topic = gitmq::TopicName::new("amounts")?;
    /// repo.producer(&topic).publish_batch([&b"10"[..], b"not json", b"32"])?;
    /// let mut worker = repo.consumer(&gitmq::ConsumerName::new("w")?, &topic)?;
    /// let mut total = 0;
    /// let config = gitmq::handler::RunConfig { max_attempts: 1, ..Default::default() };
    /// let report = worker.run_json(&config, |amount: u32, _message| {
    ///     total += amount;
    ///     Ok::<(), String>(())
    /// })?;
    /// assert_eq!((total, report.dead_lettered.len()), (42, 1));
    /// # Ok(()) }
    /// ```
    pub fn run_json<T: DeserializeOwned, E: std::fmt::Display>(
        &mut self,
        config: &RunConfig,
        mut handler: impl FnMut(T, &Message) -> Result<(), E>,
    ) -> Result<RunReport, crate::Error> {
        self.run_with(config, |message| match message.json::<T>() {
            Ok(value) => handler(value, message).map_err(|e| e.to_string()),
            Err(err) => Err(match std::error::Error::source(&err) {
                Some(source) => format!("{err}: {source}"),
                None => err.to_string(),
            }),
        })
    }
}

/// The messages of a [`Consumer`] decoded as `T`. Returned by [`Consumer::json_messages()`].
#[derive(Debug)]
pub struct JsonMessages<'a, T> {
    consumer: &'a mut Consumer,
    done: bool,
    marker: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Iterator for JsonMessages<'_, T> {
    type Item = Result<Received<T>, crate::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.consumer.next_json() {
            Ok(Some(received)) => Some(Ok(received)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(err @ crate::Error::Json(_)) => Some(Err(err)),
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

impl<T: DeserializeOwned> std::iter::FusedIterator for JsonMessages<'_, T> {}
