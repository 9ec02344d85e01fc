//! Owns parsing v2 pack indexes (.idx): id lookup, offsets, CRCs.
//!
//! (Being written in the pack-reader slice.)
