//! The git engine: everything gitmq knows about git's on-disk and on-the-wire formats, and
//! nothing about queues. The queue (the crate's API) is built on it; nothing here
//! imports from there.
//!
//! Data flow through this layer: [`message`] encodes a commit -> [`hash`] names it ->
//! [`odb`] packs it (and reads it back, loose or packed) -> [`refs`] moves a ref onto it with
//! a lock and a compare-and-swap -> [`wire`] carries objects and refs to and from a git host.
//! [`walk`] follows first parents; [`shallow`] and [`config`] read and write the small files
//! of a git directory; [`fs`] holds the file-system steps they all share.
//!
//! Invariants: objects before refs (a ref never names an object that is not complete and in
//! place); every size read from disk or the wire is checked before allocation; ref names are
//! validated full names and never leave the git directory.

pub mod config;
pub mod fs;
pub(crate) mod guessed_chain;
pub mod hash;
pub mod message;
pub mod odb;
pub mod refs;
pub mod repo;
pub mod shallow;
pub mod sign;
pub mod walk;
pub mod wire;
