//! Hand-built packs and indexes, for what git refuses to write: deltas with missing or
//! cyclic bases, entries whose declared size lies, streams cut by the end of the pack.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use gitmq::{
    git::hash::{object_id, Hasher},
    git::odb::pack::format::{encode_entry_header, EntryKind, MAX_ENTRY_HEADER_LEN},
    ObjectId,
};
use gix_object::Kind;

pub(super) fn zlib(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub(super) fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// git's OFS_DELTA distance encoding (the inverse of `decode_ofs_delta_distance`).
pub(super) fn ofs_distance(mut distance: u64) -> Vec<u8> {
    let mut bytes = vec![distance as u8 & 0x7f];
    distance >>= 7;
    while distance != 0 {
        distance -= 1;
        bytes.push(0x80 | (distance as u8 & 0x7f));
        distance >>= 7;
    }
    bytes.reverse();
    bytes
}

/// A delta that copies the first `copy` bytes of a `base_len`-byte base, then inserts the rest
/// of `result`; `declared` overrides the result size in its header.
pub(super) fn make_delta(
    base_len: usize,
    result: &[u8],
    copy: usize,
    declared: Option<u64>,
) -> Vec<u8> {
    let mut out = Vec::new();
    varint(base_len as u64, &mut out);
    varint(declared.unwrap_or(result.len() as u64), &mut out);
    out.extend_from_slice(&[0x90, copy as u8]); // copy: offset 0, one size byte
    for chunk in result[copy..].chunks(127) {
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
    out
}

pub(super) enum Raw {
    Whole(Kind, Vec<u8>),
    /// A delta against the entry `n` entries earlier.
    Ofs(usize, Vec<u8>),
    /// A delta with this raw distance.
    OfsDistance(u64, Vec<u8>),
    Ref(ObjectId, Vec<u8>),
    /// A header declaring `size`, then `zlib` as it is.
    Lying(u64, Vec<u8>),
}

pub(super) fn header(kind: EntryKind, size: u64) -> Vec<u8> {
    let mut buf = [0u8; MAX_ENTRY_HEADER_LEN];
    let len = encode_entry_header(&mut buf, kind, size);
    buf[..len].to_vec()
}

/// Write `pack-<checksum>.pack` and its v2 `.idx` into `dir`; the pack's path.
pub(super) fn build_pack(dir: &Path, entries: &[(ObjectId, Raw)]) -> PathBuf {
    let mut pack = b"PACK".to_vec();
    pack.extend_from_slice(&2u32.to_be_bytes());
    pack.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    let mut offsets = Vec::new();
    for (_, raw) in entries {
        let offset = pack.len() as u64;
        match raw {
            Raw::Whole(kind, data) => {
                pack.extend(header(EntryKind::Base(*kind), data.len() as u64));
                pack.extend(zlib(data));
            }
            Raw::Ofs(back, delta) => {
                let base: u64 = offsets[offsets.len() - back];
                pack.extend(header(EntryKind::OfsDelta, delta.len() as u64));
                pack.extend(ofs_distance(offset - base));
                pack.extend(zlib(delta));
            }
            Raw::OfsDistance(distance, delta) => {
                pack.extend(header(EntryKind::OfsDelta, delta.len() as u64));
                pack.extend(ofs_distance(*distance));
                pack.extend(zlib(delta));
            }
            Raw::Ref(base, delta) => {
                pack.extend(header(EntryKind::RefDelta, delta.len() as u64));
                pack.extend_from_slice(base.as_bytes());
                pack.extend(zlib(delta));
            }
            Raw::Lying(size, zlib) => {
                pack.extend(header(EntryKind::Base(Kind::Blob), *size));
                pack.extend_from_slice(zlib);
            }
        }
        offsets.push(offset);
    }
    let mut hasher = Hasher::new();
    hasher.update(&pack);
    let checksum = hasher.finalize();
    pack.extend_from_slice(checksum.as_bytes());

    let mut sorted: Vec<(ObjectId, u64)> = entries.iter().map(|(id, _)| *id).zip(offsets).collect();
    sorted.sort();
    let mut idx = b"\xfftOc".to_vec();
    idx.extend_from_slice(&2u32.to_be_bytes());
    for byte in 0..=255u8 {
        let n = sorted
            .iter()
            .filter(|(id, _)| id.as_bytes()[0] <= byte)
            .count();
        idx.extend_from_slice(&(n as u32).to_be_bytes());
    }
    for (id, _) in &sorted {
        idx.extend_from_slice(id.as_bytes());
    }
    for _ in &sorted {
        idx.extend_from_slice(&0u32.to_be_bytes());
    }
    for (_, offset) in &sorted {
        idx.extend_from_slice(&(*offset as u32).to_be_bytes());
    }
    idx.extend_from_slice(checksum.as_bytes());
    let mut hasher = Hasher::new();
    hasher.update(&idx);
    idx.extend_from_slice(&hasher.finalize_bytes());

    let path = dir.join(format!("pack-{checksum}.pack"));
    fs::write(&path, pack).unwrap();
    fs::write(path.with_extension("idx"), idx).unwrap();
    path
}

pub(super) fn fake_id(byte: u8) -> ObjectId {
    ObjectId::from_bytes_or_panic(&[byte; 20])
}

/// A base blob and a target built from it by a delta: bytes and ids.
pub(super) struct Pair {
    pub(super) base: Vec<u8>,
    pub(super) target: Vec<u8>,
    pub(super) base_id: ObjectId,
    pub(super) target_id: ObjectId,
    pub(super) delta: Vec<u8>,
}

pub(super) fn pair() -> Pair {
    let base = b"hello hello hello, this is the base blob\n".repeat(3);
    let target = [&base[..40], b"and a new ending\n"].concat();
    Pair {
        base_id: object_id(Kind::Blob, &base),
        target_id: object_id(Kind::Blob, &target),
        delta: make_delta(base.len(), &target, 40, None),
        base,
        target,
    }
}

/// A pack holding `pair`'s base and target, then one broken entry per case, under ids
/// `fake_id(0x21..)`.
pub(super) fn broken_pack(dir: &Path, pair: &Pair) -> PathBuf {
    let Pair {
        base,
        target,
        base_id,
        target_id,
        delta: good_delta,
    } = pair;
    let (base_id, target_id) = (*base_id, *target_id);
    let truncated_stream = zlib(&[7u8; 1000])[..8].to_vec();
    build_pack(
        dir,
        &[
            (base_id, Raw::Whole(Kind::Blob, base.clone())),
            (target_id, Raw::Ofs(1, good_delta.clone())),
            (fake_id(0x21), Raw::Ref(fake_id(0xee), good_delta.clone())),
            (fake_id(0x22), Raw::Ref(fake_id(0x22), good_delta.clone())),
            (fake_id(0x23), Raw::OfsDistance(100_000, good_delta.clone())),
            (fake_id(0x24), Raw::Lying(1 << 40, zlib(b"small"))),
            (
                fake_id(0x25),
                Raw::Ofs(6, make_delta(base.len(), target, 40, Some(1 << 40))),
            ),
            (fake_id(0x26), Raw::Lying(1, zlib(b"xy"))),
            (fake_id(0x27), Raw::Lying(3, zlib(b"xy"))),
            (
                fake_id(0x28),
                Raw::Ref(base_id, make_delta(5, target, 4, None)),
            ),
            (fake_id(0x29), Raw::Lying(1000, truncated_stream)),
        ],
    )
}
