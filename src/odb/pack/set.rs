//! Owns the set of packs in objects/pack: discovery, lookup across packs, rescan on a miss.
//!
//! (Being written in the pack-reader slice.)
