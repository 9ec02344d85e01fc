//! Owns writing a pack's v2 index (`.idx`) from the entries a writer recorded.
//!
//! Layout (git's `Documentation/gitformat-pack.txt`): `\377tOc`, version 2, a fan-out table of
//! [`FAN_LEN`] big-endian counts, the sorted ids, their CRC-32s, their 31-bit offsets (the high
//! bit set: an index into the 64-bit table that follows), then the pack's checksum and the
//! index's own SHA-1.

use gix_hash::ObjectId;

use crate::git::{
    hash::Hasher,
    odb::pack::format::{FAN_LEN, HASH_LEN, IDX_V2_MAGIC, IDX_VERSION, LARGE_OFFSET_FLAG},
};

/// One entry of a pack as its index records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The object id.
    pub id: ObjectId,
    /// The entry's offset in the pack.
    pub offset: u64,
    /// CRC-32 of the entry's raw bytes (header and zlib stream).
    pub crc32: u32,
}

/// Build a v2 index for `entries` (sorted here by id) of the pack with `pack_checksum`.
pub fn build_index(entries: &mut [IndexEntry], pack_checksum: &ObjectId) -> Vec<u8> {
    let mut out = Vec::new();
    index_body(entries, &mut out);
    finish_index(&mut out, pack_checksum);
    out
}

/// Write into `out` (cleared first) the v2 index of `entries` (sorted here by id) up to the
/// pack checksum: all that does not depend on the pack's bytes, so it can be built before the
/// pack is hashed (a producer does it on its own thread while the flush thread is busy).
/// [`finish_index()`] completes it.
pub fn index_body(entries: &mut [IndexEntry], out: &mut Vec<u8>) {
    // By the ids' first 8 bytes as an integer (one compare, no memcmp call), then whole.
    let prefix = |e: &IndexEntry| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&e.id.as_bytes()[..8]);
        u64::from_be_bytes(bytes)
    };
    entries.sort_unstable_by(|a, b| prefix(a).cmp(&prefix(b)).then_with(|| a.id.cmp(&b.id)));
    let n = entries.len();
    out.clear();
    out.reserve(8 + FAN_LEN * 4 + n * (HASH_LEN + 8) + 2 * HASH_LEN);
    out.extend_from_slice(&IDX_V2_MAGIC);
    out.extend_from_slice(&IDX_VERSION.to_be_bytes());
    let mut fan = [0u32; FAN_LEN];
    for entry in entries.iter() {
        fan[usize::from(entry.id.as_bytes()[0])] += 1;
    }
    let mut total = 0u32;
    for count in fan {
        total += count;
        out.extend_from_slice(&total.to_be_bytes());
    }
    for entry in entries.iter() {
        out.extend_from_slice(entry.id.as_bytes());
    }
    for entry in entries.iter() {
        out.extend_from_slice(&entry.crc32.to_be_bytes());
    }
    let mut large = Vec::new();
    for entry in entries.iter() {
        let small = match u32::try_from(entry.offset) {
            Ok(offset) if offset < LARGE_OFFSET_FLAG => offset,
            _ => {
                let slot = u32::try_from(large.len()).expect("fewer than 2^31 large offsets");
                large.push(entry.offset);
                LARGE_OFFSET_FLAG | slot
            }
        };
        out.extend_from_slice(&small.to_be_bytes());
    }
    for offset in large {
        out.extend_from_slice(&offset.to_be_bytes());
    }
}

/// Complete an index [`index_body()`] wrote: the checksum of its pack, then its own SHA-1.
pub fn finish_index(out: &mut Vec<u8>, pack_checksum: &ObjectId) {
    out.extend_from_slice(pack_checksum.as_bytes());
    let mut hasher = Hasher::new();
    hasher.update(out);
    out.extend_from_slice(hasher.finalize().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_offsets_go_to_the_64_bit_table() {
        let id = ObjectId::empty_blob(crate::git::hash::OBJECT_HASH);
        let mut entries = vec![IndexEntry {
            id,
            offset: 5 << 30,
            crc32: 7,
        }];
        let index = build_index(&mut entries, &id);
        let offset_at = 8 + 1024 + 20 + 4;
        assert_eq!(
            &index[offset_at..offset_at + 4],
            &LARGE_OFFSET_FLAG.to_be_bytes()
        );
        assert_eq!(
            &index[offset_at + 4..offset_at + 12],
            &(5u64 << 30).to_be_bytes()
        );
    }
}
