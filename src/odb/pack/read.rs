//! Owns reading entries of one pack file: base objects and delta chains, with bounded windows and caches.
//!
//! (Being written in the pack-reader slice.)
