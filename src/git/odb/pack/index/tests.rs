//! Unit tests of the v2 index parser on hand-built indexes.

use super::*;

/// Build a v2 index for `entries` (id, offset) with CRCs of 0; offsets at or above
/// `large_from` go to the 64-bit table.
fn build(entries: &[([u8; 20], u64)], large_from: u64) -> Vec<u8> {
    let mut sorted = entries.to_vec();
    sorted.sort_unstable();
    let mut out = Vec::new();
    out.extend_from_slice(&IDX_V2_MAGIC);
    out.extend_from_slice(&IDX_VERSION.to_be_bytes());
    for byte in 0..=255u8 {
        let n = sorted.iter().filter(|(id, _)| id[0] <= byte).count() as u32;
        out.extend_from_slice(&n.to_be_bytes());
    }
    for (id, _) in &sorted {
        out.extend_from_slice(id);
    }
    for _ in &sorted {
        out.extend_from_slice(&0u32.to_be_bytes());
    }
    let mut large = Vec::new();
    for (_, offset) in &sorted {
        if *offset >= large_from {
            let slot = (large.len() / 8) as u32;
            out.extend_from_slice(&(slot | LARGE_OFFSET_FLAG).to_be_bytes());
            large.extend_from_slice(&offset.to_be_bytes());
        } else {
            out.extend_from_slice(&(*offset as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(&large);
    out.extend_from_slice(&[0xaa; 20]);
    out.extend_from_slice(&[0; 20]);
    seal(&mut out);
    out
}

/// Recompute the trailing checksum after editing.
fn seal(idx: &mut [u8]) {
    let end = idx.len();
    let mut hasher = Hasher::new();
    hasher.update(&idx[..end - 20]);
    idx[end - 20..].copy_from_slice(&hasher.finalize_bytes());
}

fn id(first: u8, rest: u8) -> [u8; 20] {
    let mut id = [rest; 20];
    id[0] = first;
    id
}

fn sample() -> Vec<([u8; 20], u64)> {
    vec![
        (id(0x00, 1), 12),
        (id(0x00, 2), 100),
        (id(0x7f, 0), 200),
        (id(0xff, 9), 0x1_0000_0000),
        (id(0xff, 3), 300),
    ]
}

#[test]
fn lookups_find_every_id_and_only_those() {
    let index = PackIndex::from_bytes(build(&sample(), 1 << 31)).unwrap();
    assert_eq!(index.len(), 5);
    for (raw, offset) in sample() {
        let position = index
            .lookup(oid::from_bytes_unchecked(&raw))
            .expect("present");
        assert_eq!(index.id_at(position).as_bytes(), raw);
        assert_eq!(index.offset_at(position), offset);
        assert_eq!(index.crc32_at(position), 0);
    }
    for raw in [id(0x00, 0), id(0x00, 3), id(0x80, 0), id(0xff, 0xff)] {
        assert_eq!(index.lookup(oid::from_bytes_unchecked(&raw)), None);
    }
    assert_eq!(index.pack_checksum().as_bytes(), &[0xaa; 20]);
    let pairs: Vec<u64> = index.iter().map(|(_, offset)| offset).collect();
    assert_eq!(pairs, [12, 100, 200, 300, 0x1_0000_0000], "id order");
    let order: Vec<u64> = index
        .pack_order()
        .into_iter()
        .map(|p| index.offset_at(p))
        .collect();
    assert_eq!(order, [12, 100, 200, 300, 0x1_0000_0000], "pack order");
}

#[test]
fn every_offset_may_live_in_the_large_table() {
    let index = PackIndex::from_bytes(build(&sample(), 0)).unwrap();
    assert_eq!(index.large_count, 5);
    let mut offsets: Vec<u64> = index.iter().map(|(_, o)| o).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, [12, 100, 200, 300, 0x1_0000_0000]);
}

#[test]
fn an_empty_index_is_valid() {
    let index = PackIndex::from_bytes(build(&[], 0)).unwrap();
    assert!(index.is_empty());
    assert_eq!(index.lookup(oid::from_bytes_unchecked(&[0; 20])), None);
}

#[test]
fn every_truncation_is_an_error() {
    let full = build(&sample(), 1 << 31);
    for len in 0..full.len() {
        assert!(
            PackIndex::from_bytes(full[..len].to_vec()).is_err(),
            "{len}"
        );
    }
}

#[test]
fn every_flipped_byte_is_an_error() {
    let full = build(&sample(), 200);
    for at in 0..full.len() {
        let mut bad = full.clone();
        bad[at] ^= 0x40;
        assert!(PackIndex::from_bytes(bad).is_err(), "flip at {at}");
    }
}

#[test]
fn structural_errors_are_named_even_with_a_valid_checksum() {
    let good = build(&sample(), 1 << 31);
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut idx = good.clone();
        f(&mut idx);
        seal(&mut idx);
        PackIndex::from_bytes(idx).unwrap_err()
    };
    assert_eq!(edit(&|i| i[0] = b'X'), Error::BadMagic);
    assert_eq!(
        edit(&|i| i[7] = 1),
        Error::UnsupportedVersion { version: 1 }
    );
    // Fan-out entry 0x10 larger than entry 0x11.
    assert!(matches!(
        edit(&|i| i[8 + 4 * 0x10 + 3] = 9),
        Error::FanOutNotMonotonic { entry: 0x11 }
    ));
    // Claim one more object in the last bucket.
    assert!(matches!(
        edit(&|i| i[8 + 4 * 255 + 3] = 6),
        Error::LengthMismatch { count: 6, .. }
    ));
    // Swap the order of the two ids in bucket 0x00.
    assert!(matches!(
        edit(&|i| i[IDX_HEADER_LEN + 1] = 3),
        Error::Unsorted { position: 1 }
    ));
    // An id in the wrong bucket.
    assert!(matches!(
        edit(&|i| i[IDX_HEADER_LEN + 40] = 0x80),
        Error::Unsorted { position: 2 }
    ));
    // A large offset naming slot 1 of a 1-slot table.
    let offsets_at = IDX_HEADER_LEN + 5 * 24;
    let large_entry = (0..5)
        .find(|p| good[offsets_at + 4 * p] & 0x80 != 0)
        .unwrap();
    assert!(matches!(
        edit(&|i| i[offsets_at + 4 * large_entry + 3] = 1),
        Error::BadLargeOffset { slot: 1, .. }
    ));
    // An index with more large offsets than objects.
    let mut long = good.clone();
    let at = long.len() - 40;
    long.splice(at..at, [0u8; 48]);
    assert!(matches!(
        edit(&|i| *i = long.clone()),
        Error::LengthMismatch { .. }
    ));
}

/// Ids from a xorshift stream, with their first bytes forced into a few buckets and, when
/// `shared_prefix`, long shared prefixes: skewed the way a crafted index could be.
fn random_ids(n: usize, seed: u64, shared_prefix: bool) -> Vec<[u8; 20]> {
    let mut rng = crate::test_support::TestRng::new(seed);
    let mut next = move || rng.next_u64();
    let mut ids: Vec<[u8; 20]> = (0..n)
        .map(|i| {
            let mut id = [0u8; 20];
            for chunk in id.chunks_mut(8) {
                let bytes = next().to_be_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
            if shared_prefix {
                id[0] = (i % 3) as u8;
                let keep = 1 + (next() % 12) as usize;
                id[1..keep].fill(0x5a);
            }
            id
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[test]
fn interpolated_lookups_agree_with_a_naive_scan_on_uniform_and_skewed_ids() {
    for (seed, shared_prefix) in [(1, false), (2, true), (3, true)] {
        let ids = random_ids(5000, seed, shared_prefix);
        let entries: Vec<([u8; 20], u64)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, 12 + i as u64))
            .collect();
        let index = PackIndex::from_bytes(build(&entries, 1 << 31)).unwrap();
        for (i, id) in ids.iter().enumerate() {
            let position = index.lookup(oid::from_bytes_unchecked(id));
            assert_eq!(position, Some(i as u32), "present id {i}");
        }
        for absent in random_ids(2000, seed + 100, shared_prefix) {
            let naive = ids.binary_search(&absent).ok().map(|p| p as u32);
            assert_eq!(index.lookup(oid::from_bytes_unchecked(&absent)), naive);
            // Neighbours of present ids: equal keys, different tails.
            let mut near = ids[absent[19] as usize % ids.len()];
            near[19] ^= 1;
            let naive = ids.binary_search(&near).ok().map(|p| p as u32);
            assert_eq!(index.lookup(oid::from_bytes_unchecked(&near)), naive);
        }
    }
}
