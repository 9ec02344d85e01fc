//! Owns applying git's delta format (copy/insert instructions) with bounds checks.
//!
//! (Being written in the pack-reader slice.)
