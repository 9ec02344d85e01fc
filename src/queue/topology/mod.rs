//! Owns changing how messages are spread over topics without touching any message: [`join()`]
//! copies the messages of source topics onto a destination topic, exactly once each, and
//! [`split()`] starts a new topic from part of another (from an id, or the messages a
//! predicate keeps), carrying consumer positions over.
//!
//! Both copy with `restack()` (`git::message::restack`): a copy is its message byte for byte (author,
//! date, payload, every `gitmq-*` header) but for its first parent line, so it is the same
//! message at a new address. Copies are written (packs, fsynced with `sync`) before any ref
//! names them, and every ref moves by compare-and-swap under its lock.
//!
//! Invariants: sources (of a join) and the split topic are never rewritten, and their
//! consumers' positions never move; a destination only ever moves forward (a fast-forward of
//! its first-parent chain), so its consumers keep their positions too.

pub mod join;
pub mod record;
pub mod split;

use gix_hash::ObjectId;

pub use join::{join, join_in_rounds, Joined};
pub use record::{record, JoinRecord};
pub use split::{split, Split};

use crate::TopicName;

/// How many times a join or split plans again after losing a race (another join, or a
/// producer moving the destination between planning and the ref update).
pub const MAX_ATTEMPTS: usize = 8;

/// Returned by [`join()`] and [`split()`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A join needs at least one source.
    #[error("a join needs at least one source topic")]
    NoSources,
    /// A topic is both a source and the destination.
    #[error("topic {topic} cannot be joined into itself")]
    IntoItself {
        /// The topic.
        topic: TopicName,
    },
    /// A source is named twice.
    #[error("source topic {topic} is named twice")]
    DuplicateSource {
        /// The topic.
        topic: TopicName,
    },
    /// The join record says a source was joined up to a message that is no longer on the
    /// source's history: the source was rewritten, so what is new cannot be told apart.
    #[error(
        "topic {source_topic} was joined into {into} up to {position}, which is no longer on \
         {source_topic}'s history (was it rewritten?); refusing to copy anything twice"
    )]
    SourceRewritten {
        /// The source.
        source_topic: TopicName,
        /// The destination.
        into: TopicName,
        /// Where the record says the join stopped.
        position: ObjectId,
    },
    /// The destination's history no longer holds the base or the tip of the last join: it
    /// was rewritten or deleted after that join.
    #[error(
        "the join record {record} of {into} names messages that are no longer on {into}'s \
         history (was it rewritten or deleted?); delete the record with `git update-ref -d \
         {record}` to start joining afresh"
    )]
    RecordStale {
        /// The destination.
        into: TopicName,
        /// The record's ref.
        record: String,
    },
    /// A join record commit does not parse.
    #[error("join record {id} is malformed: {reason}")]
    RecordMalformed {
        /// The record commit.
        id: ObjectId,
        /// What is wrong.
        reason: &'static str,
    },
    /// Lost [`MAX_ATTEMPTS`] races in a row to other writers of the destination.
    #[error("{into} kept moving while joining or splitting ({MAX_ATTEMPTS} attempts); try again")]
    Raced {
        /// The destination.
        into: TopicName,
    },
    /// The new topic of a split exists already.
    #[error("topic {topic} exists already; a split starts a new topic")]
    Exists {
        /// The topic.
        topic: TopicName,
    },
    /// A split selected no message (a topic cannot be empty).
    #[error("nothing of topic {topic} was selected, so there is no new topic to start")]
    NothingSelected {
        /// The topic split.
        topic: TopicName,
    },
}
