//! Owns the byte layouts of pack files and their v2 indexes, shared by the writer and reader.
//!
//! Pack (git's `Documentation/gitformat-pack.txt`):
//!
//! ```text
//! offset 0   "PACK"                       PACK_SIGNATURE
//! offset 4   u32 BE version = 2           PACK_VERSION
//! offset 8   u32 BE object count
//! offset 12  entries: type+size varint header, then
//!              base kinds (1 commit, 2 tree, 3 blob, 4 tag): zlib stream of the body
//!              6 OFS_DELTA: negative-offset varint to the base, zlib stream of the delta
//!              7 REF_DELTA: 20-byte base id, zlib stream of the delta
//! end - 20   SHA-1 of everything before   (the pack checksum; it names the pack)
//! ```
//!
//! Index v2:
//!
//! ```text
//! offset 0     "\xfftOc"                  IDX_V2_MAGIC
//! offset 4     u32 BE version = 2
//! offset 8     256 x u32 BE fan-out: count of ids whose first byte <= i
//! offset 1032  N x 20-byte ids, sorted
//!              N x u32 BE CRC-32 of each entry's raw bytes (same order)
//!              N x u32 BE offsets; MSB set = index into the 64-bit table
//!              M x u64 BE large offsets
//!              20-byte pack checksum, 20-byte SHA-1 of the index before it
//! ```

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

/// The first four bytes of every pack.
pub const PACK_SIGNATURE: [u8; 4] = *b"PACK";
/// The pack version gitmq writes and reads.
pub const PACK_VERSION: u32 = 2;
/// Signature + version + object count.
pub const PACK_HEADER_LEN: usize = 12;
/// The first four bytes of a v2 index.
pub const IDX_V2_MAGIC: [u8; 4] = *b"\xfftOc";
/// The index version gitmq writes and reads.
pub const IDX_VERSION: u32 = 2;
/// Entries in the fan-out table.
pub const FAN_LEN: usize = 256;
/// Bytes before the sorted ids in a v2 index.
pub const IDX_HEADER_LEN: usize = 8 + FAN_LEN * 4;
/// Length of an object id and of the checksums.
pub const HASH_LEN: usize = 20;
/// Set in a 32-bit index offset that points into the 64-bit offset table.
pub const LARGE_OFFSET_FLAG: u32 = 0x8000_0000;
/// The longest entry header: 1 byte plus enough 7-bit groups for a u64 size.
pub const MAX_ENTRY_HEADER_LEN: usize = 10;

/// The type bits of a pack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A whole object of this kind.
    Base(gix_object::Kind),
    /// A delta against the entry this many bytes earlier in the pack.
    OfsDelta,
    /// A delta against the object with the id that follows the header.
    RefDelta,
}

impl EntryKind {
    fn bits(self) -> u8 {
        match self {
            EntryKind::Base(gix_object::Kind::Commit) => 1,
            EntryKind::Base(gix_object::Kind::Tree) => 2,
            EntryKind::Base(gix_object::Kind::Blob) => 3,
            EntryKind::Base(gix_object::Kind::Tag) => 4,
            EntryKind::OfsDelta => 6,
            EntryKind::RefDelta => 7,
        }
    }

    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            1 => EntryKind::Base(gix_object::Kind::Commit),
            2 => EntryKind::Base(gix_object::Kind::Tree),
            3 => EntryKind::Base(gix_object::Kind::Blob),
            4 => EntryKind::Base(gix_object::Kind::Tag),
            6 => EntryKind::OfsDelta,
            7 => EntryKind::RefDelta,
            _ => return None,
        })
    }
}

/// Write the header of an entry of `kind` whose inflated size is `size` into `out`; its length.
pub fn encode_entry_header(
    out: &mut [u8; MAX_ENTRY_HEADER_LEN],
    kind: EntryKind,
    size: u64,
) -> usize {
    let mut rest = size >> 4;
    let mut byte = (kind.bits() << 4) | low_bits(size, 0x0f);
    let mut len = 0;
    // A u64 needs 1 + 9 groups of 7 bits at most: MAX_ENTRY_HEADER_LEN always suffices.
    for slot in out.iter_mut() {
        len += 1;
        if rest == 0 {
            *slot = byte;
            break;
        }
        *slot = byte | 0x80;
        byte = low_bits(rest, 0x7f);
        rest >>= 7;
    }
    len
}

/// Parse an entry header at the start of `data`: its kind, inflated size and header length.
/// `None` if it is truncated, overlong or has an unknown type.
pub fn decode_entry_header(data: &[u8]) -> Option<(EntryKind, u64, usize)> {
    let first = *data.first()?;
    let kind = EntryKind::from_bits((first >> 4) & 0x07)?;
    let mut size = u64::from(first & 0x0f);
    let mut shift = 4u32;
    let mut at = 1;
    let mut byte = first;
    while byte & 0x80 != 0 {
        byte = *data.get(at)?;
        if shift > 60 {
            return None;
        }
        size |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        at += 1;
    }
    Some((kind, size, at))
}

/// Parse an OFS_DELTA base distance at the start of `data`: the distance and its length.
pub fn decode_ofs_delta_distance(data: &[u8]) -> Option<(u64, usize)> {
    let mut byte = *data.first()?;
    let mut distance = u64::from(byte & 0x7f);
    let mut at = 1;
    while byte & 0x80 != 0 {
        byte = *data.get(at)?;
        distance = distance.checked_add(1)?.checked_mul(128)? | u64::from(byte & 0x7f);
        at += 1;
    }
    Some((distance, at))
}

/// Read a big-endian u32 at `at`.
pub fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// Read a big-endian u64 at `at`.
pub fn read_u64(data: &[u8], at: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

fn low_bits(value: u64, mask: u8) -> u8 {
    u8::try_from(value & u64::from(mask)).expect("masked to fit a byte")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_headers_round_trip() {
        for size in [
            0,
            1,
            15,
            16,
            127,
            128,
            2047,
            2048,
            1 << 20,
            u64::from(u32::MAX),
            u64::MAX >> 4,
        ] {
            for kind in [
                EntryKind::Base(gix_object::Kind::Commit),
                EntryKind::OfsDelta,
                EntryKind::RefDelta,
            ] {
                let mut buf = [0u8; MAX_ENTRY_HEADER_LEN];
                let len = encode_entry_header(&mut buf, kind, size);
                assert_eq!(decode_entry_header(&buf[..len]), Some((kind, size, len)));
                assert_eq!(decode_entry_header(&buf[..len - 1]), None, "truncated");
            }
        }
    }

    #[test]
    fn a_small_commit_header_is_one_byte_like_git() {
        let mut buf = [0u8; MAX_ENTRY_HEADER_LEN];
        assert_eq!(
            encode_entry_header(&mut buf, EntryKind::Base(gix_object::Kind::Commit), 10),
            1
        );
        assert_eq!(buf[0], 0x1a);
        assert_eq!(
            encode_entry_header(&mut buf, EntryKind::Base(gix_object::Kind::Commit), 300),
            2
        );
        assert_eq!(&buf[..2], &[0x9c, 0x12]);
    }

    #[test]
    fn ofs_distances_decode_like_git() {
        // git encodes 128 as [0x80, 0x00]: (0 + 1) * 128 + 0.
        assert_eq!(decode_ofs_delta_distance(&[0x80, 0x00]), Some((128, 2)));
        assert_eq!(decode_ofs_delta_distance(&[0x05]), Some((5, 1)));
        assert_eq!(decode_ofs_delta_distance(&[0x80]), None);
        assert_eq!(
            decode_ofs_delta_distance(&[0xff; 20]),
            None,
            "overflow is refused"
        );
    }
}
