//! Owns [`DeltaBaseCache`]: objects rebuilt while resolving delta chains, kept so that the
//! next object of a chain starts from its base instead of from the bottom of the chain.
//!
//! Invariants: the bytes held (plus a fixed per-entry overhead) never exceed the limit after
//! an insert returns; entries larger than a quarter of the limit are not kept, so one big
//! object cannot flush everything. Entries are keyed by pack checksum and offset, so one cache
//! serves every pack of a [`PackSet`](crate::odb::pack::set::PackSet), and a pack reopened
//! after a rescan finds its entries again. Eviction is least recently used, in batches down to
//! three quarters of the limit, so its cost is amortized. The caller owns the cache and passes
//! it as `&mut`: there is no interior mutability and no locking.

use std::collections::HashMap;

use gix_hash::{oid, ObjectId};

/// The default limit of a [`DeltaBaseCache`] (32 MiB; git's `core.deltaBaseCacheLimit` is
/// 96 MiB).
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

/// Bytes charged per entry on top of its data (map slot, key, bookkeeping).
const ENTRY_OVERHEAD: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    pack: ObjectId,
    offset: u64,
}

#[derive(Debug)]
struct Entry {
    kind: gix_object::Kind,
    data: Vec<u8>,
    last_used: u64,
}

/// A bounded cache of delta bases, shared by the packs it is passed to.
#[derive(Debug)]
pub struct DeltaBaseCache {
    map: HashMap<Key, Entry>,
    bytes: usize,
    limit: usize,
    clock: u64,
}

impl Default for DeltaBaseCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_BYTES)
    }
}

/// Lifecycle
impl DeltaBaseCache {
    /// A cache holding at most `limit` bytes; 0 disables caching.
    pub fn new(limit: usize) -> Self {
        Self {
            map: HashMap::new(),
            bytes: 0,
            limit,
            clock: 0,
        }
    }

    /// Drop every entry.
    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }
}

/// Access
impl DeltaBaseCache {
    /// The number of objects held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The bytes charged against the limit.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The object at `offset` in the pack with checksum `pack`, if held.
    pub(crate) fn get(&mut self, pack: &oid, offset: u64) -> Option<(gix_object::Kind, &[u8])> {
        if self.map.is_empty() {
            return None;
        }
        self.clock += 1;
        let key = Key {
            pack: pack.to_owned(),
            offset,
        };
        let entry = self.map.get_mut(&key)?;
        entry.last_used = self.clock;
        Some((entry.kind, &entry.data))
    }

    /// Keep a copy of `data`, the object at `offset` in the pack with checksum `pack`.
    pub(crate) fn insert(&mut self, pack: &oid, offset: u64, kind: gix_object::Kind, data: &[u8]) {
        let cost = data.len().saturating_add(ENTRY_OVERHEAD);
        if cost > self.limit / 4 {
            return;
        }
        self.clock += 1;
        let key = Key {
            pack: pack.to_owned(),
            offset,
        };
        let entry = Entry {
            kind,
            data: data.to_vec(),
            last_used: self.clock,
        };
        if let Some(old) = self.map.insert(key, entry) {
            self.bytes -= old.data.len() + ENTRY_OVERHEAD;
        }
        self.bytes += cost;
        if self.bytes > self.limit {
            self.evict_to(self.limit / 4 * 3);
        }
    }

    /// Drop least recently used entries until at most `target` bytes are charged.
    fn evict_to(&mut self, target: usize) {
        let mut by_age: Vec<(u64, usize, Key)> = self
            .map
            .iter()
            .map(|(key, entry)| (entry.last_used, entry.data.len(), key.clone()))
            .collect();
        by_age.sort_unstable_by_key(|(last_used, _, _)| *last_used);
        for (_, len, key) in by_age {
            if self.bytes <= target {
                break;
            }
            self.map.remove(&key);
            self.bytes -= len + ENTRY_OVERHEAD;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    #[test]
    fn entries_are_found_by_pack_and_offset() {
        let mut cache = DeltaBaseCache::new(1 << 20);
        cache.insert(&pack(1), 12, gix_object::Kind::Blob, b"one");
        cache.insert(&pack(2), 12, gix_object::Kind::Commit, b"two");
        assert_eq!(
            cache.get(&pack(1), 12),
            Some((gix_object::Kind::Blob, &b"one"[..]))
        );
        assert_eq!(
            cache.get(&pack(2), 12),
            Some((gix_object::Kind::Commit, &b"two"[..]))
        );
        assert_eq!(cache.get(&pack(1), 13), None);
        cache.insert(&pack(1), 12, gix_object::Kind::Blob, b"uno!");
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.bytes(), 7 + 2 * ENTRY_OVERHEAD, "replacing recharges");
    }

    #[test]
    fn the_limit_holds_and_recent_entries_survive() {
        let limit = 64 * (100 + ENTRY_OVERHEAD);
        let mut cache = DeltaBaseCache::new(limit);
        for offset in 0..1000u64 {
            cache.insert(&pack(1), offset, gix_object::Kind::Blob, &[7; 100]);
            // Keep touching entry 0, so it is never the least recently used.
            assert!(cache.get(&pack(1), 0).is_some(), "at {offset}");
            assert!(cache.bytes() <= limit);
        }
        assert!(cache.get(&pack(1), 999).is_some());
        assert!(cache.get(&pack(1), 500).is_none());
    }

    #[test]
    fn big_entries_and_a_zero_limit_keep_nothing() {
        let mut cache = DeltaBaseCache::new(4096);
        cache.insert(&pack(1), 12, gix_object::Kind::Blob, &[0; 2000]);
        assert!(cache.is_empty(), "more than a quarter of the limit");
        let mut off = DeltaBaseCache::new(0);
        off.insert(&pack(1), 12, gix_object::Kind::Blob, b"");
        assert!(off.is_empty());
    }
}
