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
use crate::git::odb::pack::index::PackIndex;

/// The bytes a pack order takes for `objects` entries.
pub(super) fn bytes_for(objects: u32) -> usize {
    usize::try_from(objects)
        .unwrap_or(usize::MAX)
        .saturating_mul(2 * size_of::<u32>())
}

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
        let by_rank = positions_by_offset(index);
        let mut rank_of = vec![0u32; by_rank.len()];
        for (rank, &position) in (0u32..).zip(&by_rank) {
            if let Some(slot) = rank_of.get_mut(position as usize) {
                *slot = rank;
            }
        }
        Self { by_rank, rank_of }
    }
}

/// Entries per bucket of the bucket sort, on average.
const BUCKET_LEN: usize = 16;

/// Index positions sorted by offset: a counting sort into buckets of offset ranges (about
/// [`BUCKET_LEN`] entries each: entries spread evenly over a pack), then a small sort per
/// bucket. Memory: the result and one bucket table, about 4.5 bytes per object (a radix
/// sort of 8-byte keys needs 16 on top of the result; the orders of large packs are built
/// while the memory of other packs is bounded).
fn positions_by_offset(index: &PackIndex) -> Vec<u32> {
    let n = index.len();
    let max_offset = (0..n).map(|p| index.offset_at(p)).max().unwrap_or(0);
    let buckets = (usize::try_from(n).unwrap_or(usize::MAX) / BUCKET_LEN)
        .max(1)
        .next_power_of_two();
    let offset_bits = u64::BITS - max_offset.leading_zeros();
    let shift = offset_bits.saturating_sub(buckets.trailing_zeros());
    let last = buckets - 1;
    let bucket_of = |offset: u64| usize::try_from(offset >> shift).map_or(last, |b| b.min(last));
    // starts[b]: where bucket b begins in the result; then where its next entry goes.
    let mut starts = vec![0u32; buckets + 1];
    for position in 0..n {
        if let Some(count) = starts.get_mut(bucket_of(index.offset_at(position)) + 1) {
            *count += 1;
        }
    }
    for b in 1..=buckets {
        let before = starts.get(b - 1).copied().unwrap_or(0);
        if let Some(start) = starts.get_mut(b) {
            *start += before;
        }
    }
    let mut by_rank = vec![0u32; usize::try_from(n).unwrap_or(0)];
    let mut next = starts.clone();
    for position in 0..n {
        if let Some(at) = next.get_mut(bucket_of(index.offset_at(position))) {
            if let Some(slot) = by_rank.get_mut(*at as usize) {
                *slot = position;
            }
            *at += 1;
        }
    }
    // Each bucket sorted with its offsets read once (a comparison sort reads each several
    // times, and each read is a cache miss in a large index).
    let mut keyed: Vec<(u64, u32)> = Vec::new();
    for pair in starts.windows(2) {
        let [start, end] = *pair else { continue };
        let Some(bucket) = by_rank.get_mut(start as usize..end as usize) else {
            continue;
        };
        if bucket.len() < 2 {
            continue;
        }
        keyed.clear();
        keyed.extend(bucket.iter().map(|&p| (index.offset_at(p), p)));
        keyed.sort_unstable();
        for (slot, &(_, position)) in bucket.iter_mut().zip(&keyed) {
            *slot = position;
        }
    }
    by_rank
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

    /// The id and offset of the entry at `rank` in pack order (`None` past the last).
    /// Builds the order on first use.
    pub fn at_rank(&mut self, rank: u32) -> Option<(&oid, u64)> {
        self.order();
        let Self { order, index, .. } = self;
        let position = *order.as_ref()?.by_rank.get(rank as usize)?;
        Some((index.id_at(position), index.offset_at(position)))
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
        let found = candidates.into_iter().flatten().find_map(|candidate| {
            let position = *by_rank.get(candidate as usize)?;
            (index.id_at(position) == id).then(|| (candidate, index.offset_at(position)))
        });
        if let Some((candidate, _)) = found {
            // The next step's candidate, read now: its id and offset are cache misses in a
            // large index, which then overlap with reading this entry instead of stalling
            // the next step.
            let next = if candidate < rank {
                candidate.checked_sub(1)
            } else {
                candidate.checked_add(1)
            };
            if let Some(&position) = next.and_then(|next| by_rank.get(next as usize)) {
                std::hint::black_box((
                    index.id_at(position).as_bytes().first(),
                    index.offset_at(position),
                ));
            }
        }
        found
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
        use crate::git::odb::pack::write::{Compression, PackBuilder};
        let mut builder = PackBuilder::new(Compression::Stored);
        let mut ids = Vec::new();
        for i in 0..50u32 {
            let body = format!("blob {i} with some bytes");
            let id = crate::git::hash::object_id(gix_object::Kind::Blob, body.as_bytes());
            builder.push(&id, gix_object::Kind::Blob, body.as_bytes());
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
