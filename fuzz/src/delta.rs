//! Owns the check of gitmq's pack entry codecs run directly, without files (`pack_delta`):
//! the entry header, the OFS_DELTA distance and delta application, each against a naive
//! oracle written here from git's documentation (`gitformat-pack.txt`), not from gitmq.

use gitmq::git::odb::pack::{
    delta,
    format::{
        decode_entry_header, decode_ofs_delta_distance, encode_entry_header, EntryKind,
        MAX_ENTRY_HEADER_LEN,
    },
};

/// The largest delta result the check allows (the oracle allocates it too).
const RESULT_LIMIT: u64 = 1 << 20;

/// `pack_delta`: the input is both a candidate entry header and OFS_DELTA distance (from
/// byte 0), and, after a big-endian u16 base length, a base and a delta to apply to it.
pub fn pack_delta(data: &[u8]) {
    check_entry_header(data);
    check_ofs_distance(data);
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let base_len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (base, delta_bytes) = rest.split_at(base_len);
    let mut out = Vec::new();
    let actual = delta::apply(base, delta_bytes, RESULT_LIMIT, &mut out).map(|()| out);
    let expected = naive_apply(base, delta_bytes, RESULT_LIMIT);
    match (&actual, &expected) {
        (Ok(a), Some(e)) => assert_eq!(a, e, "gitmq and the oracle build the same object"),
        (Err(_), None) => {}
        _ => panic!(
            "gitmq says {:?}, the oracle {}",
            actual.as_ref().map(Vec::len),
            if expected.is_some() {
                "accepts"
            } else {
                "refuses"
            }
        ),
    }
}

fn check_entry_header(data: &[u8]) {
    if let Some((kind, size, len)) = decode_entry_header(data) {
        assert!(
            len <= data.len() && len <= MAX_ENTRY_HEADER_LEN,
            "header length {len}"
        );
        assert_header_round_trips(kind, size);
    }
    // Every size and kind encodes to a header that decodes back.
    let mut size = [0u8; 8];
    for (slot, byte) in size.iter_mut().zip(data) {
        *slot = *byte;
    }
    let kinds = [
        EntryKind::Base(gix_object::Kind::Commit),
        EntryKind::Base(gix_object::Kind::Tree),
        EntryKind::Base(gix_object::Kind::Blob),
        EntryKind::Base(gix_object::Kind::Tag),
        EntryKind::OfsDelta,
        EntryKind::RefDelta,
    ];
    let kind = kinds[usize::from(data.get(8).copied().unwrap_or(0)) % kinds.len()];
    assert_header_round_trips(kind, u64::from_be_bytes(size));
}

fn assert_header_round_trips(kind: EntryKind, size: u64) {
    let mut header = [0u8; MAX_ENTRY_HEADER_LEN];
    let len = encode_entry_header(&mut header, kind, size);
    assert_eq!(
        decode_entry_header(&header[..len]),
        Some((kind, size, len)),
        "the header of a {kind:?} of {size} bytes round-trips"
    );
}

/// git's OFS_DELTA distance encoding is a bijection: a decoded distance re-encodes to the
/// very bytes it came from.
fn check_ofs_distance(data: &[u8]) {
    if let Some((distance, len)) = decode_ofs_delta_distance(data) {
        assert_eq!(
            Some(&naive_encode_distance(distance)[..]),
            data.get(..len),
            "distance {distance} re-encodes to its bytes"
        );
    }
}

/// git's encoder (`write_no_reuse_object` in builtin/pack-objects.c, as documented):
/// the last byte holds the low 7 bits; each earlier byte holds the next 7 bits, minus one.
fn naive_encode_distance(mut distance: u64) -> Vec<u8> {
    let mut bytes = vec![low7(distance)];
    distance >>= 7;
    while distance != 0 {
        distance -= 1;
        bytes.push(0x80 | low7(distance));
        distance >>= 7;
    }
    bytes.reverse();
    bytes
}

fn low7(value: u64) -> u8 {
    u8::try_from(value & 0x7f).expect("masked to 7 bits")
}

/// The delta format read the slow, obvious way; `None` for anything git would refuse.
fn naive_apply(base: &[u8], delta: &[u8], limit: u64) -> Option<Vec<u8>> {
    let mut bytes = delta.iter().copied();
    let base_size = naive_size(&mut bytes)?;
    let result_size = naive_size(&mut bytes)?;
    if base_size != base.len() as u64 || result_size > limit {
        return None;
    }
    let mut out = Vec::new();
    while let Some(cmd) = bytes.next() {
        if cmd & 0x80 != 0 {
            let mut fields = [0u64; 7];
            for (bit, field) in fields.iter_mut().enumerate() {
                if cmd & (1 << bit) != 0 {
                    *field = u64::from(bytes.next()?);
                }
            }
            let [o0, o1, o2, o3, s0, s1, s2] = fields;
            let offset = o0 | o1 << 8 | o2 << 16 | o3 << 24;
            let size = match s0 | s1 << 8 | s2 << 16 {
                0 => 0x10000,
                size => size,
            };
            let start = usize::try_from(offset).ok()?;
            let end = start.checked_add(usize::try_from(size).ok()?)?;
            out.extend_from_slice(base.get(start..end)?);
        } else if cmd != 0 {
            for _ in 0..cmd {
                out.push(bytes.next()?);
            }
        } else {
            return None;
        }
        if out.len() as u64 > result_size {
            return None;
        }
    }
    (out.len() as u64 == result_size).then_some(out)
}

/// A size varint: 7 bits per byte, least significant first; at most 10 bytes, fitting u64.
fn naive_size(bytes: &mut impl Iterator<Item = u8>) -> Option<u64> {
    let mut size: u128 = 0;
    for group in 0..10 {
        let byte = bytes.next()?;
        size |= u128::from(byte & 0x7f) << (7 * group);
        if byte & 0x80 == 0 {
            return u64::try_from(size).ok();
        }
    }
    None
}
