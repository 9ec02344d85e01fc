//! Owns a pack's order: its entries sorted by offset (an in-memory reverse index, like git's
//! `.rev` files), built on first use, so a walk can try the entry next to the one it just
//! read before searching the index for the next id.
//!
//! Why: gitmq writes a topic's messages oldest first, one after the other, and `git gc`
//! writes commits newest first, one after the other; either way a commit's first parent is
//! usually the entry just before or just after it. Checking that costs one id read, where an
//! index search costs three or four cache misses.
//!
//! Invariants: built once per [`PackFile`] from its validated index: `by_rank` is a
//! permutation of the index positions sorted by offset, and `rank_of` is its inverse;
//! 8 bytes per object. A neighbour is only ever accepted after its id was compared in full.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use gix_hash::oid;

use super::PackFile;
use crate::odb::pack::index::PackIndex;

/// A pack's entries in pack order, and the way back.
#[derive(Debug, Default)]
pub(super) struct PackOrder {
    /// Index positions, by increasing offset.
    by_rank: Vec<u32>,
    /// The rank of each index position.
    rank_of: Vec<u32>,
}

impl PackOrder {
    fn build(index: &PackIndex) -> Self {
        let n = index.len();
        let max_offset = (0..n).map(|p| index.offset_at(p)).max().unwrap_or(0);
        let by_rank = if n < 1 << POSITION_BITS && max_offset < 1 << (64 - POSITION_BITS) {
            radix_by_offset(index, max_offset)
        } else {
            let mut keys: Vec<(u64, u32)> = (0..n).map(|p| (index.offset_at(p), p)).collect();
            keys.sort_unstable();
            keys.into_iter().map(|(_, position)| position).collect()
        };
        let mut rank_of = vec![0u32; by_rank.len()];
        for (rank, &position) in (0u32..).zip(&by_rank) {
            if let Some(slot) = rank_of.get_mut(position as usize) {
                *slot = rank;
            }
        }
        Self { by_rank, rank_of }
    }
}

/// Index positions take the low bits of a radix sort key, the offset the high ones.
const POSITION_BITS: u32 = 24;
/// Bits sorted per radix pass.
const RADIX_BITS: u32 = 8;

/// Index positions sorted by offset, by a least-significant-digit radix sort of
/// `offset << POSITION_BITS | position` keys over the offset's bits only: a few linear
/// passes, where a comparison sort of a million entries costs several times more.
fn radix_by_offset(index: &PackIndex, max_offset: u64) -> Vec<u32> {
    let mut keys: Vec<u64> = (0..index.len())
        .map(|position| index.offset_at(position) << POSITION_BITS | u64::from(position))
        .collect();
    let mut spare = vec![0u64; keys.len()];
    let offset_bits = u64::BITS - max_offset.leading_zeros();
    let mut shift = POSITION_BITS;
    while shift < POSITION_BITS + offset_bits {
        let digit = |key: u64| ((key >> shift) & ((1 << RADIX_BITS) - 1)) as usize;
        let mut starts = [0usize; 1 << RADIX_BITS];
        for &key in &keys {
            if let Some(count) = starts.get_mut(digit(key)) {
                *count += 1;
            }
        }
        let mut total = 0;
        for start in &mut starts {
            let count = *start;
            *start = total;
            total += count;
        }
        for &key in &keys {
            if let Some(start) = starts.get_mut(digit(key)) {
                if let Some(slot) = spare.get_mut(*start) {
                    *slot = key;
                }
                *start += 1;
            }
        }
        std::mem::swap(&mut keys, &mut spare);
        shift += RADIX_BITS;
    }
    let mask = (1u64 << POSITION_BITS) - 1;
    keys.into_iter()
        .map(|key| u32::try_from(key & mask).expect("masked to 24 bits"))
        .collect()
}

/// Pack order
impl PackFile {
    /// The rank of the entry at index `position` (below the index's length): its place in
    /// pack order. Builds the order on first use.
    pub fn rank_of(&mut self, position: u32) -> u32 {
        self.order()
            .rank_of
            .get(position as usize)
            .copied()
            .expect("BUG: position is below the index length")
    }

    /// The entry next to rank `rank` in pack order, if its id is `id`: its rank and offset.
    /// Tries the entry before first when `before_first`, else the one after first.
    pub fn neighbor_with_id(
        &mut self,
        rank: u32,
        id: &oid,
        before_first: bool,
    ) -> Option<(u32, u64)> {
        let before = rank.checked_sub(1);
        let after = rank.checked_add(1);
        let candidates = if before_first {
            [before, after]
        } else {
            [after, before]
        };
        self.order();
        let Self { order, index, .. } = self;
        let by_rank = &order.as_ref()?.by_rank;
        candidates.into_iter().flatten().find_map(|candidate| {
            let position = *by_rank.get(candidate as usize)?;
            (index.id_at(position) == id).then(|| (candidate, index.offset_at(position)))
        })
    }

    fn order(&mut self) -> &PackOrder {
        self.order
            .get_or_insert_with(|| PackOrder::build(&self.index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_is_a_permutation_by_offset_with_its_inverse() {
        // An index is needed: build one from a pack the writer makes.
        use crate::odb::pack::write::{Compression, PackBuilder};
        let mut builder = PackBuilder::new(Compression::Stored);
        let mut ids = Vec::new();
        for i in 0..50u32 {
            let body = format!("blob {i} with some bytes");
            let id = crate::hash::object_id(gix_object::Kind::Blob, body.as_bytes());
            builder.add(id, gix_object::Kind::Blob, body.as_bytes());
            ids.push(id);
        }
        let sealed = builder.seal(Vec::new());
        let files = sealed.finish();
        let index = PackIndex::from_bytes(files.index).unwrap();
        let order = PackOrder::build(&index);
        let offsets: Vec<u64> = order.by_rank.iter().map(|&p| index.offset_at(p)).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "sorted by offset");
        for (rank, &position) in order.by_rank.iter().enumerate() {
            assert_eq!(order.rank_of[position as usize] as usize, rank);
            assert_eq!(index.id_at(position), ids[rank], "written in this order");
        }
    }
}
