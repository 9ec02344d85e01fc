//! Owns parsing v2 pack indexes (`.idx`): id lookup, entry offsets and CRCs.
//!
//! Invariants: a [`PackIndex`] exists only for bytes that passed [`PackIndex::from_bytes()`]:
//! magic and version, a monotonic fan-out consistent with the file length, ids sorted strictly
//! and in the fan-out bucket of their first byte, every large-offset reference inside the
//! 64-bit table, and a trailing SHA-1 that matches ([`PackIndex::from_bytes()`]; a pack
//! reader skips that hash, as git does, with [`PackIndex::from_bytes_with_trusted_checksum()`],
//! and checks it on request: [`PackIndex::verify_checksum()`]). After that the accessors
//! cannot fail, so they only `expect` what was validated. Read-only: gitmq's pack writer owns
//! writing indexes.
//!
//! Lookup is kept over gix-pack's `index::File::lookup` (issue 11, item 5: gix-pack would
//! replace it within 10%): `cargo bench --bench gix_pack -- "idx lookup"`, every id of the
//! pack in a fixed shuffle, same files, criterion medians, load average ~1.5 on 2 cores; each
//! row is one run of both readers (the machine's speed moves between runs, not within one):
//!
//! | gitmq's search | 20,000 ids (a gitmq pack): gitmq / gix-pack | 1,000,000 ids (`git fast-import`'s pack): gitmq / gix-pack |
//! |---|---:|---:|
//! | guess alternating with bisection | 2.21 / 2.49 ms (1.13x) | 533 / 491 ms (0.92x) |
//! | guess, then a bracket read after it | 1.21 / 2.15 ms (1.78x) | 511 / 488 ms (0.95x) |
//! | guess and both brackets read together (this code) | 1.28 / 2.21 ms (1.72x) | 261 / 410 ms (1.57x) |
//!
//! At a million ids every read is a cache miss (bisection's first reads hit midpoints that
//! stay cached); reading the guess and both brackets as three independent loads overlaps
//! those misses: 3.7 reads per lookup, in about two miss latencies.
//!
//! The byte layout is in [`super::format`]; git's reader is
//! [`packfile.c`](https://github.com/git/git/blob/v2.47.0/packfile.c) (`check_packed_git_idx`).

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use gix_hash::{oid, ObjectId};

use super::format::{
    read_u32, read_u64, FAN_LEN, HASH_LEN, IDX_HEADER_LEN, IDX_V2_MAGIC, IDX_VERSION,
    LARGE_OFFSET_FLAG,
};
use crate::git::hash::Hasher;

/// Per object: its id, its CRC-32 and its 32-bit offset.
const ENTRY_LEN: u64 = (HASH_LEN + 4 + 4) as u64;
/// One entry of the 64-bit offset table.
const LARGE_OFFSET_LEN: u64 = 8;
/// The pack checksum and the index checksum at the end.
const TRAILER_LEN: u64 = 2 * HASH_LEN as u64;

/// Returned by [`PackIndex::from_bytes()`], and by
/// [`PackFile::open()`](super::read::PackFile::open) for an index too long for its pack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Too short to hold a header and a trailer.
    #[error("pack index is {len} bytes, too short for a v2 index")]
    TooShort {
        /// The length of the index.
        len: u64,
    },
    /// The file is longer than any index its pack could need (checked before reading it).
    #[error("pack index is {len} bytes, more than its pack could need ({limit})")]
    TooLong {
        /// The length of the index file.
        len: u64,
        /// The most its pack could need.
        limit: u64,
    },
    /// The first four bytes are not `"\xfftOc"` (a v1 index, or not an index).
    #[error("pack index does not start with the v2 magic")]
    BadMagic,
    /// A version other than 2.
    #[error("pack index version {version} is not supported")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// A fan-out entry is smaller than the one before it.
    #[error("pack index fan-out decreases at entry {entry}")]
    FanOutNotMonotonic {
        /// The fan-out entry (first id byte).
        entry: usize,
    },
    /// The length does not match the object count in the fan-out.
    #[error(
        "pack index of {count} objects must be {expected} bytes plus 8 per large offset (at most {count}), is {len}"
    )]
    LengthMismatch {
        /// The object count from the fan-out.
        count: u32,
        /// The length without large offsets.
        expected: u64,
        /// The actual length.
        len: u64,
    },
    /// The trailing SHA-1 is not the hash of the index before it.
    #[error("pack index checksum is {stored}, its content hashes to {actual}")]
    ChecksumMismatch {
        /// The checksum in the file.
        stored: ObjectId,
        /// The checksum of the content.
        actual: ObjectId,
    },
    /// Ids are not strictly increasing, or one sits in the wrong fan-out bucket.
    #[error("pack index id {position} is out of order")]
    Unsorted {
        /// The position of the id in the sorted table.
        position: u32,
    },
    /// An offset flagged as large names a slot past the 64-bit table.
    #[error(
        "pack index entry {position} names large offset {slot}, the table holds {large_count}"
    )]
    BadLargeOffset {
        /// The position of the entry.
        position: u32,
        /// The slot it names.
        slot: u32,
        /// Slots in the 64-bit table.
        large_count: u32,
    },
}

/// A validated v2 pack index, held in memory.
#[derive(Clone)]
pub struct PackIndex {
    data: Vec<u8>,
    fan: [u32; FAN_LEN],
    count: u32,
    large_count: u32,
}

impl std::fmt::Debug for PackIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackIndex")
            .field("count", &self.count)
            .field("large_count", &self.large_count)
            .field("pack_checksum", &self.pack_checksum())
            .finish_non_exhaustive()
    }
}

/// Lifecycle
impl PackIndex {
    /// Validate `data`, the whole content of a `.idx` file, as a v2 pack index.
    pub fn from_bytes(data: Vec<u8>) -> Result<Self, Error> {
        Self::parse(data, true)
    }

    /// Like [`from_bytes()`](Self::from_bytes) but without hashing the content to check its
    /// trailing SHA-1, as git opens indexes: every structural check still runs, so the
    /// accessors stay in bounds whatever the bytes; [`verify_checksum()`](Self::verify_checksum)
    /// hashes on request.
    pub fn from_bytes_with_trusted_checksum(data: Vec<u8>) -> Result<Self, Error> {
        Self::parse(data, false)
    }

    fn parse(data: Vec<u8>, verify_checksum: bool) -> Result<Self, Error> {
        let len = data.len() as u64;
        if len < IDX_HEADER_LEN as u64 + TRAILER_LEN {
            return Err(Error::TooShort { len });
        }
        if data.get(..4) != Some(&IDX_V2_MAGIC[..]) {
            return Err(Error::BadMagic);
        }
        let version = read_u32(&data, 4).expect("length checked above");
        if version != IDX_VERSION {
            return Err(Error::UnsupportedVersion { version });
        }
        let mut fan = [0u32; FAN_LEN];
        let mut previous = 0;
        for (entry, slot) in fan.iter_mut().enumerate() {
            *slot = read_u32(&data, 8 + 4 * entry).expect("length checked above");
            if *slot < previous {
                return Err(Error::FanOutNotMonotonic { entry });
            }
            previous = *slot;
        }
        let count = previous;
        let expected = IDX_HEADER_LEN as u64 + u64::from(count) * ENTRY_LEN + TRAILER_LEN;
        let extra = len.checked_sub(expected);
        let large_count = extra
            .filter(|extra| extra % LARGE_OFFSET_LEN == 0)
            .map(|extra| extra / LARGE_OFFSET_LEN)
            .filter(|large| *large <= u64::from(count))
            .and_then(|large| u32::try_from(large).ok())
            .ok_or(Error::LengthMismatch {
                count,
                expected,
                len,
            })?;
        let index = Self {
            data,
            fan,
            count,
            large_count,
        };
        if verify_checksum {
            index.check_checksum()?;
        }
        index.check_order()?;
        index.check_large_offsets()?;
        Ok(index)
    }

    /// Hash the index and compare with its trailing SHA-1.
    pub fn verify_checksum(&self) -> Result<(), Error> {
        self.check_checksum()
    }

    fn check_checksum(&self) -> Result<(), Error> {
        let (content, stored) = self.data.split_at(self.data.len() - HASH_LEN);
        let mut hasher = Hasher::new();
        hasher.update(content);
        let actual = hasher.finalize();
        if actual.as_bytes() != stored {
            return Err(Error::ChecksumMismatch {
                stored: ObjectId::from_bytes_or_panic(stored),
                actual,
            });
        }
        Ok(())
    }

    fn check_order(&self) -> Result<(), Error> {
        let mut start = 0;
        for (first_byte, &end) in self.fan.iter().enumerate() {
            for position in start..end {
                let id = self.id_bytes(position);
                let in_bucket = id.first().map(|b| usize::from(*b)) == Some(first_byte);
                let increasing = position == start || self.id_bytes(position - 1) < id;
                if !in_bucket || !increasing {
                    return Err(Error::Unsorted { position });
                }
            }
            start = end;
        }
        Ok(())
    }

    fn check_large_offsets(&self) -> Result<(), Error> {
        for position in 0..self.count {
            let small = self.small_offset(position);
            if small & LARGE_OFFSET_FLAG != 0 {
                let slot = small & !LARGE_OFFSET_FLAG;
                if slot >= self.large_count {
                    return Err(Error::BadLargeOffset {
                        position,
                        slot,
                        large_count: self.large_count,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Access
impl PackIndex {
    /// The number of objects in the index (and its pack).
    pub fn len(&self) -> u32 {
        self.count
    }

    /// The size of the index in bytes (all of it is held in memory).
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// Whether the index lists no object.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The position of `id` in the sorted table, if the pack holds it.
    ///
    /// Ids are SHA-1 hashes, uniform in their fan-out bucket, so the search interpolates on
    /// each id's first eight bytes (a big-endian `u64` key). For uniform keys the guess is
    /// off by about half the square root of the range, so a second read that far again (the
    /// bracket) usually closes the range around the id, and a second guess inside it lands
    /// next to the id: three or four reads for a million ids instead of the twenty of a
    /// bisection. A round of guess and bracket that fails to halve the range is followed by
    /// a bisection, so a skewed (crafted) index still costs O(log n) reads.
    pub fn lookup(&self, id: &oid) -> Option<u32> {
        let bytes = id.as_bytes();
        let first = *bytes.first()?;
        let target = key_of(bytes)?;
        let low = match usize::from(first).checked_sub(1) {
            Some(before) => *self.fan.get(before)?,
            None => 0,
        };
        let high = *self.fan.get(usize::from(first))?;
        // Keys are kept relative to the bucket's first possible key, so they fit 57 bits and
        // the guess converts them with one instruction each (a `u128` to `f64` conversion is
        // a library call: two per probe cost about as much as the probe's memory read).
        let mut range = SearchRange {
            low,
            high,
            low_key: 0,
            high_key: 1 << 56,
            base: u64::from(first) << 56,
            target,
            id: bytes,
        };
        while range.len() > LINEAR_SEARCH_LEN {
            let span = range.len();
            let guess = range.guess();
            // The brackets: the same distance again on either side. Their keys are read with
            // the guess's, before any is compared: three independent loads, so their cache
            // misses overlap instead of following one another.
            let step = span.isqrt().max(1);
            let below = guess.saturating_sub(step).max(range.low);
            let above = guess.saturating_add(step).min(range.high - 1);
            let keys = [self.key_at(below), self.key_at(guess), self.key_at(above)];
            if let Some(found) = range.probe_key(self, guess, keys[1]) {
                return Some(found);
            }
            let (bracket, key) = if range.low > guess {
                (above, keys[2])
            } else {
                (below, keys[0])
            };
            if range.contains(bracket) && range.len() > LINEAR_SEARCH_LEN {
                if let Some(found) = range.probe_key(self, bracket, key) {
                    return Some(found);
                }
            }
            if range.len() > span / 2 && range.len() > LINEAR_SEARCH_LEN {
                let middle = range.low + range.len() / 2;
                if let Some(found) = range.probe_key(self, middle, self.key_at(middle)) {
                    return Some(found);
                }
            }
        }
        (range.low..range.high)
            .find(|&position| self.key_at(position) == target && self.id_bytes(position) == bytes)
    }

    /// The id at `position` (below [`len()`](Self::len)) in the sorted table.
    pub fn id_at(&self, position: u32) -> &oid {
        oid::from_bytes_unchecked(self.id_bytes(position))
    }

    /// The pack offset of the entry at `position` (below [`len()`](Self::len)).
    pub fn offset_at(&self, position: u32) -> u64 {
        let small = self.small_offset(position);
        if small & LARGE_OFFSET_FLAG == 0 {
            return u64::from(small);
        }
        let slot = u64::from(small & !LARGE_OFFSET_FLAG);
        let at = self.table_start(4) + slot * LARGE_OFFSET_LEN;
        read_u64(&self.data, to_usize(at)).expect("validated in from_bytes")
    }

    /// The CRC-32 of the raw bytes of the entry at `position` (below [`len()`](Self::len)).
    pub fn crc32_at(&self, position: u32) -> u32 {
        let at = self.table_start(2) + u64::from(position) * 4;
        read_u32(&self.data, to_usize(at)).expect("validated in from_bytes")
    }

    /// The checksum of the pack this index describes (its trailer, and its name).
    pub fn pack_checksum(&self) -> ObjectId {
        let at = self.data.len() - 2 * HASH_LEN;
        ObjectId::from_bytes_or_panic(
            self.data
                .get(at..at + HASH_LEN)
                .expect("validated in from_bytes"),
        )
    }

    /// Every `(id, offset)` pair, in id order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            index: self,
            next: 0,
        }
    }

    /// Every position (for [`id_at()`](Self::id_at) and friends) sorted by pack offset: the
    /// order in which the entries lie in the pack, and in which reading them is fastest.
    pub fn pack_order(&self) -> Vec<u32> {
        let mut order: Vec<(u64, u32)> = (0..self.count)
            .map(|position| (self.offset_at(position), position))
            .collect();
        order.sort_unstable();
        order.into_iter().map(|(_, position)| position).collect()
    }

    /// The first eight bytes of the id at `position`, as a big-endian number.
    fn key_at(&self, position: u32) -> u64 {
        let at = to_usize(IDX_HEADER_LEN as u64 + u64::from(position) * HASH_LEN as u64);
        read_u64(&self.data, at).expect("validated in from_bytes")
    }

    fn id_bytes(&self, position: u32) -> &[u8] {
        let at = to_usize(IDX_HEADER_LEN as u64 + u64::from(position) * HASH_LEN as u64);
        self.data
            .get(at..at + HASH_LEN)
            .expect("validated in from_bytes")
    }

    fn small_offset(&self, position: u32) -> u32 {
        let at = self.table_start(3) + u64::from(position) * 4;
        read_u32(&self.data, to_usize(at)).expect("validated in from_bytes")
    }

    /// Where the `n`-th table starts: 1 ids, 2 CRCs, 3 offsets, 4 large offsets.
    fn table_start(&self, n: u64) -> u64 {
        let count = u64::from(self.count);
        let mut at = IDX_HEADER_LEN as u64;
        for (table, width) in [(1, HASH_LEN as u64), (2, 4), (3, 4)] {
            if table == n {
                return at;
            }
            at += count * width;
        }
        at
    }
}

/// Ranges of at most this many ids are scanned instead of searched (they share a few cache
/// lines).
const LINEAR_SEARCH_LEN: u32 = 8;

/// The positions `low..high` of an index's sorted table where the id being looked up must be
/// if the index holds it, with the keys bounding them (relative to `base`).
///
/// Invariant: ids before `low` are smaller than the id, ids from `high` on are larger;
/// `low_key`/`high_key` are keys of ids below/at those bounds (or the bucket's limits).
struct SearchRange<'a> {
    low: u32,
    high: u32,
    low_key: u64,
    high_key: u64,
    /// The bucket's first possible key (its first byte, then zeros).
    base: u64,
    target: u64,
    id: &'a [u8],
}

impl SearchRange<'_> {
    fn len(&self) -> u32 {
        self.high - self.low
    }

    fn contains(&self, position: u32) -> bool {
        (self.low..self.high).contains(&position)
    }

    /// Where the id should be if the keys between the bounds are uniform.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "an interpolated guess only needs to be close; it is clamped into the range"
    )]
    fn guess(&self) -> u32 {
        let span = self.len();
        // Floating point: exact enough for a guess, and no 128-bit division.
        let above = self
            .target
            .saturating_sub(self.base)
            .saturating_sub(self.low_key) as f64;
        let range = self.high_key.saturating_sub(self.low_key).max(1) as f64;
        let guess = (above / range * f64::from(span)) as u32;
        self.low + guess.min(span - 1)
    }

    /// Compare the id at `position` (inside the range), whose key is `key`, with the id: its
    /// position if it is the id, else narrow the range to the side the id is on.
    fn probe_key(&mut self, index: &PackIndex, position: u32, key: u64) -> Option<u32> {
        match key
            .cmp(&self.target)
            .then_with(|| index.id_bytes(position).cmp(self.id))
        {
            std::cmp::Ordering::Less => {
                self.low = position + 1;
                self.low_key = key.saturating_sub(self.base);
                None
            }
            std::cmp::Ordering::Greater => {
                self.high = position;
                self.high_key = key.saturating_sub(self.base);
                None
            }
            std::cmp::Ordering::Equal => Some(position),
        }
    }
}

/// The first eight bytes of an id, as a big-endian number: ids compare like their keys,
/// except between ids whose keys are equal.
fn key_of(id: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(id.get(..8)?.try_into().ok()?))
}

/// The whole index is in memory, so every offset inside it fits a usize.
fn to_usize(at: u64) -> usize {
    usize::try_from(at).expect("an in-memory index is addressable")
}

/// Every `(id, offset)` pair of a [`PackIndex`], in id order. Returned by [`PackIndex::iter()`].
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    index: &'a PackIndex,
    next: u32,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a oid, u64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.index.count {
            return None;
        }
        let position = self.next;
        self.next += 1;
        Some((self.index.id_at(position), self.index.offset_at(position)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.index.count - self.next).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a PackIndex {
    type Item = (&'a oid, u64);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "fixtures build small values on purpose"
)]
mod tests;
