//! Owns [`KeyFilter`]: which ids a pack may hold, in 4 bytes per object, kept after the pack
//! itself was closed to save memory, so a lookup of an id the pack does not hold never
//! reopens it (reading its index again).
//!
//! Layout: the index's 256-entry fan-out and, for each id in index order, its bytes 1 to 4
//! (byte 0 is the fan-out bucket) as a big-endian `u32`.
//!
//! Invariant: no false negatives: every id of the index it was built from passes
//! [`KeyFilter::may_hold()`]. A false positive (another id sharing the first five bytes,
//! about one in 2^32 per id of the pack) only costs reopening the pack to find the id absent.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use gix_hash::oid;

use super::{format::FAN_LEN, index::PackIndex};

/// The first five bytes of every id of one pack, by fan-out bucket.
#[derive(Debug, Clone)]
pub struct KeyFilter {
    fan: [u32; FAN_LEN],
    keys: Vec<u32>,
}

impl KeyFilter {
    /// The filter of `index`.
    pub fn of(index: &PackIndex) -> Self {
        let mut fan = [0u32; FAN_LEN];
        let mut keys = Vec::with_capacity(usize::try_from(index.len()).unwrap_or(0));
        for position in 0..index.len() {
            let id = index.id_at(position).as_bytes();
            let (Some(&first), Some(key)) = (id.first(), key_of(id)) else {
                continue;
            };
            keys.push(key);
            // Counts per bucket now, running totals below.
            if let Some(count) = fan.get_mut(usize::from(first)) {
                *count += 1;
            }
        }
        let mut total = 0;
        for slot in &mut fan {
            total += *slot;
            *slot = total;
        }
        Self { fan, keys }
    }

    /// Whether the pack may hold `id` (`false`: it certainly does not).
    pub fn may_hold(&self, id: &oid) -> bool {
        let bytes = id.as_bytes();
        let (Some(&first), Some(key)) = (bytes.first(), key_of(bytes)) else {
            return false;
        };
        let low = match usize::from(first).checked_sub(1) {
            Some(before) => self.fan.get(before).copied().unwrap_or(0),
            None => 0,
        };
        let high = self.fan.get(usize::from(first)).copied().unwrap_or(0);
        let bucket = usize::try_from(low)
            .ok()
            .zip(usize::try_from(high).ok())
            .and_then(|(low, high)| self.keys.get(low..high))
            .unwrap_or_default();
        bucket.binary_search(&key).is_ok()
    }

    /// The memory it holds.
    pub fn bytes(&self) -> usize {
        self.keys.capacity() * size_of::<u32>() + size_of::<Self>()
    }
}

/// Bytes 1 to 4 of an id.
fn key_of(id: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(id.get(1..5)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::odb::pack::write::{Compression, PackBuilder};

    #[test]
    fn every_id_passes_and_almost_no_other_does() {
        let mut builder = PackBuilder::new(Compression::Stored);
        let mut ids = Vec::new();
        for i in 0..3000u32 {
            let body = format!("blob {i}");
            let id = crate::git::hash::object_id(gix_object::Kind::Blob, body.as_bytes());
            builder.push(&id, gix_object::Kind::Blob, body.as_bytes());
            ids.push(id);
        }
        let index = PackIndex::from_bytes(builder.seal(Vec::new()).finish().index).unwrap();
        let filter = KeyFilter::of(&index);
        assert!(
            ids.iter().all(|id| filter.may_hold(id)),
            "no false negative"
        );
        let others = (0..3000u32)
            .map(|i| {
                crate::git::hash::object_id(gix_object::Kind::Blob, format!("other {i}").as_bytes())
            })
            .filter(|id| filter.may_hold(id))
            .count();
        assert_eq!(others, 0, "five bytes tell ids apart");
    }
}
