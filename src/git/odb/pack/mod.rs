//! Owns pack files: their format, writing them (the producer's hot path), reading them, and
//! indexing packs received from a remote (`index_pack`).
//!
//! Invariant: a pack and its index appear in `objects/pack/` complete and in git's order
//! (pack renamed first, then its index); readers only consider packs whose index exists.

pub mod consolidate;
pub mod deflate;
pub mod delta;
pub mod filter;
pub mod format;
pub mod index;
pub mod index_pack;
pub mod midx;
pub mod read;
pub mod set;
pub mod write;
