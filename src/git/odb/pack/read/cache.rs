//! Owns [`DeltaBaseCache`]: objects recently read or rebuilt from packs, kept so that a delta
//! whose base was just read starts from that base instead of inflating it again or walking
//! its chain from the bottom.
//!
//! Invariants: the bytes charged (each entry's data plus a fixed overhead) never exceed the
//! limit after an insert returns; entries larger than a quarter of the limit are not kept, so
//! one big object cannot flush everything. Entries are keyed by pack checksum and offset, so
//! one cache serves every pack of a [`PackSet`](crate::git::odb::pack::set::PackSet), and a pack
//! reopened after a rescan finds its entries again. Eviction is CLOCK (second chance): a FIFO
//! of keys in which an entry read since it was last passed gets one more round, so the cost
//! per insert is O(1) amortized, close to LRU. The caller owns the cache and passes it as
//! `&mut`: no interior mutability, no locking.

use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasherDefault, Hash, Hasher},
};

use gix_hash::{oid, ObjectId};

/// The default limit of a [`DeltaBaseCache`] (32 MiB; git's `core.deltaBaseCacheLimit` is
/// 96 MiB).
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

/// Bytes charged per entry on top of its data (map slot, queue slot, key, allocation).
const ENTRY_OVERHEAD: usize = 96;
/// Evicted buffers kept for reuse, so a cache in steady state does not allocate per insert.
const SPARE_BUFFERS: usize = 64;
/// Only buffers up to this capacity are kept for reuse.
const SPARE_BUFFER_LEN: usize = 4096;

/// Fields in comparison order: the offset rejects almost every non-match, the pack
/// checksum makes a match exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    offset: u64,
    pack: ObjectId,
}

impl Key {
    fn new(pack: &oid, offset: u64) -> Self {
        Self {
            offset,
            pack: pack.to_owned(),
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(self.pack.as_bytes().get(..8).unwrap_or(&[0; 8]));
        state.write_u64(self.offset);
        state.write_u64(u64::from_be_bytes(prefix));
    }
}

/// A multiply-rotate hash for [`Key`]s (the FxHash idea): the keys come from the
/// repository's own packs, so SipHash's flooding resistance buys nothing on this hot path.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Debug)]
struct Entry {
    kind: gix_object::Kind,
    data: Vec<u8>,
    referenced: bool,
}

/// A bounded cache of pack objects, shared by the packs it is passed to.
#[derive(Debug)]
pub struct DeltaBaseCache {
    map: HashMap<Key, Entry, BuildHasherDefault<KeyHasher>>,
    /// Every key of `map` exactly once, oldest first.
    queue: VecDeque<Key>,
    /// Small buffers of evicted entries, for the next inserts.
    spare: Vec<Vec<u8>>,
    bytes: usize,
    limit: usize,
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
            map: HashMap::default(),
            queue: VecDeque::new(),
            spare: Vec::new(),
            bytes: 0,
            limit,
        }
    }

    /// Drop every entry.
    pub fn clear(&mut self) {
        self.map.clear();
        self.queue.clear();
        self.spare.clear();
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

    /// The most bytes it holds.
    pub fn limit(&self) -> usize {
        self.limit
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
        let entry = self.map.get_mut(&Key::new(pack, offset))?;
        entry.referenced = true;
        Some((entry.kind, &entry.data))
    }

    /// Keep a copy of `data`, the object at `offset` in the pack with checksum `pack`.
    pub(crate) fn insert(&mut self, pack: &oid, offset: u64, kind: gix_object::Kind, data: &[u8]) {
        let cost = data.len().saturating_add(ENTRY_OVERHEAD);
        if cost > self.limit / 4 {
            return;
        }
        let key = Key::new(pack, offset);
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        let entry = Entry {
            kind,
            data: buf,
            referenced: false,
        };
        match self.map.insert(key, entry) {
            Some(old) => {
                self.bytes -= old.data.len() + ENTRY_OVERHEAD;
                self.recycle(old.data);
            }
            None => self.queue.push_back(key),
        }
        self.bytes += cost;
        while self.bytes > self.limit {
            let Some(oldest) = self.queue.pop_front() else {
                break;
            };
            let entry = self
                .map
                .get_mut(&oldest)
                .expect("BUG: the queue holds exactly the keys of the map");
            if entry.referenced {
                entry.referenced = false;
                self.queue.push_back(oldest);
            } else if let Some(evicted) = self.map.remove(&oldest) {
                self.bytes -= evicted.data.len() + ENTRY_OVERHEAD;
                self.recycle(evicted.data);
            }
        }
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS && buf.capacity() <= SPARE_BUFFER_LEN {
            self.spare.push(buf);
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
        assert_eq!(cache.queue.len(), 2, "a replaced key is queued once");
        assert_eq!(cache.bytes(), 7 + 2 * ENTRY_OVERHEAD, "replacing recharges");
    }

    #[test]
    fn the_limit_holds_and_referenced_entries_survive() {
        let limit = 64 * (100 + ENTRY_OVERHEAD);
        let mut cache = DeltaBaseCache::new(limit);
        for offset in 0..1000u64 {
            cache.insert(&pack(1), offset, gix_object::Kind::Blob, &[7; 100]);
            // Keep reading entry 0, so it always earns a second chance.
            assert!(cache.get(&pack(1), 0).is_some(), "at {offset}");
            assert!(cache.bytes() <= limit);
            assert_eq!(cache.queue.len(), cache.map.len());
        }
        assert_eq!(cache.len(), 64, "full");
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
