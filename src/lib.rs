//! # gitmq: a message queue in a git repository
//!
//! ## Overview
//!
//! A **message** is a git commit whose tree is the empty tree: the payload is the commit
//! message (byte for byte), the producer is the author, the time is the author date, and the
//! address is the commit id. A **topic** is a branch, `refs/heads/<topic>`; its first-parent
//! history, oldest first, is the log. A **consumer**'s position on a topic is a ref,
//! `refs/gitmq/consumers/<consumer>/<topic>`, naming the last message it processed, so many
//! consumers fan out over one topic and each resumes where it stopped.
//!
//! Everything is written and read in pure Rust: no `git` process, no libgit2. Any git client
//! can browse the queue (`git log orders`), and `git fsck --strict` finds it clean.
//!
//! ## Example
//!
//! ```
//! # fn main() -> Result<(), gitmq::Error> {
//! use gitmq::{ConsumerName, Repository, TopicName};
//!
//! let dir = tempfile::tempdir().expect("temp dir");
//! let repo = Repository::init(dir.path().join("queue.git"))?;
//! let orders = TopicName::new("orders")?;
//!
//! let ids = repo.producer(&orders).publish_batch([&b"{\"id\":1}"[..], b"{\"id\":2}"])?;
//!
//! let mut billing = repo.consumer(&ConsumerName::new("billing")?, &orders)?;
//! let batch = billing.poll(100)?;
//! assert_eq!(batch[0].payload, b"{\"id\":1}");
//! assert_eq!(batch[1].id, ids[1]);
//! billing.commit()?; // the next `billing` consumer starts after message 2
//! # Ok(()) }
//! ```
//!
//! ## Guarantees
//!
//! - An id acknowledged by a producer names a message that is on the topic, durable per its
//!   [`Durability`]; messages are written in batches, one pack and one ref update each.
//! - Two producers on one topic (threads or processes) serialize on the topic's ref lock; no
//!   message is lost.
//! - Consumers get at-least-once delivery: messages delivered but not committed come again.
//! - Names are validated like git's ref names and can never reach outside the repository.
//! - Positions are moved by hand only by compare-and-swap ([`position::reset()`]), and only to
//!   messages of their topic; [`topology::join()`] copies each source message into its
//!   destination exactly once, even across interrupted runs.
//! - Corrupt objects and refs give errors, never panics or unbounded allocations.
//! - A message's stable id and headers ([`Envelope`], `gitmq-id`/`gitmq-header` commit
//!   headers) survive rebuilds and restacks byte for byte; publishing a stable id already in
//!   the producer's window appends nothing and returns the original commit id
//!   ([`Producer::publish_with()`]).
//! - [`Consumer::run()`] commits after the handler succeeded (at-least-once) and moves a
//!   message that fails every attempt to a dead-letter topic ([`dlq`]).
//!
//! ## Limitations
//!
//! - SHA-1 repositories with the files ref backend only; SHA-256 and reftable are refused.
//! - Network transport: smart HTTP(S) only ([`replicate`]: fetch, push, sync; [`githost`]
//!   serves it). SSH and `git://` are not supported.
//! - A ref lock left by a killed process must be removed by hand, as with git
//!   ([`Repository::remove_stale_locks()`], `gitmq unlock`).
//! - Payloads cannot contain NUL (git refuses NUL in commit messages).
//! - Idempotent publishing is per producer and within its window; two producers publishing
//!   one stable id at once may both append.
//!
//! ## It is not:
//!
//! - a broker that must run: the library works on a local repository, and any git host that
//!   speaks smart HTTP is the shared state ([`serve`] is an optional node that serves the
//!   queue's HTTP API and git's protocol from one process);
//! - a way to delete single messages: history is append-only (a topic's oldest messages can be
//!   dropped in bulk, locally, with [`prune`]).
//!
//! ## Layers
//!
//! The queue (this crate's API) is built on a git engine (objects, packs, refs, the wire
//! protocol) that is public as `gitmq::git` only with the `internals` feature, for the fuzz
//! targets, benches and tests; see ARCHITECTURE.md.
//!
//! ## Features
//!
//! - `cli` (default): the `gitmq` command-line tool. Library users can turn it off.
//! - `http` (default): [`replicate::fetch()`] over reqwest with rustls (`ring`). Without it,
//!   the protocol code still builds and callers supply a [`replicate::HttpClient`].
//! - `serve` (on with `cli`): [`serve`], the HTTP queue service behind `gitmq serve`
//!   (hyper on tokio, rustls for HTTPS).
//! - `internals`: the engine as `gitmq::git`. `bench`: the `gitmq bench` subcommands (with
//!   `cli` and `internals`).
//! - `json` (default): typed payloads through serde ([`typed`]: `publish_json`,
//!   `next_json`, `json_messages`, `run_json`).
//! - `sign` (in `cli`): signed messages ([`sign`]: SSH ed25519 keys, git's signature format;
//!   [`produce::Signing`], [`consume::verify`]).

// One `unsafe` block: mapping packs (`git::odb::pack::read::window::map_pack`), with its
// proof; everything else is safe code.
#![deny(unsafe_code)]
#![deny(missing_docs)]

// The git engine: public with the `internals` feature (fuzz targets, benches, tests), private
// otherwise; the queue below is built on it and is the library's API. Without `internals`,
// engine items used only by those callers are not dead code, just not exported.
#[cfg(feature = "internals")]
pub mod git;
#[cfg(not(feature = "internals"))]
#[allow(dead_code, unused_imports)]
mod git;
pub mod githost;
mod queue;
#[cfg(feature = "serve")]
pub mod serve;
#[cfg(any(test, feature = "internals"))]
#[doc(hidden)]
pub mod test_support;

mod error;

pub use error::Error;
pub use gix_hash::ObjectId;

pub use git::message::{Envelope, Identity, Message, MessageRef};
pub use git::repo::Repository;
pub use queue::consume::{self, dlq, handler, position, Consumer};
pub use queue::durability::{self, Durability};
pub use queue::names::{self as name, ConsumerName, TopicName};
pub use queue::produce::{self, Producer, ProducerConfig, SharedProducer};
#[cfg(feature = "json")]
pub use queue::typed;
pub use queue::{prune, replicate, topology};
// Signed messages: git's SSH signature format (the engine's; keys, allowed signers, verdicts).
pub use git::sign;

/// The README's examples are compiled and run as doctests, so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
