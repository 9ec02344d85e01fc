//! The queue: topics, producers, consumers and their positions, built on the git engine
//! ([`crate::git`]).
//!
//! Data flow: [`produce`] appends messages to a topic (a batch becomes one pack and one ref
//! move) -> [`replicate`] pushes topics and positions to a git host and fetches them back ->
//! [`consume`] delivers a topic's messages after a consumer's position, oldest first, and
//! moves the position by compare-and-swap. [`topology`] joins and splits topics; [`prune`]
//! drops old history; [`typed`] adds JSON payloads.
//!
//! Invariants: names are validated once ([`names`]) and ref paths are built only from them;
//! acknowledged means on the topic, durable per [`durability::Durability`]; commit dates are
//! never consulted.

pub mod consume;
pub mod durability;
pub mod names;
pub mod produce;
pub mod prune;
pub mod replicate;
mod repository;
pub mod topology;
#[cfg(feature = "json")]
pub mod typed;
