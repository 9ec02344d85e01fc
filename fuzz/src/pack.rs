//! Owns the checks of gitmq's pack reading: the v2 index codec (`pack_index`) and whole
//! packs read through [`PackFile`] (`pack_entry`).

use std::fs;

use gitmq::{
    git::hash::{Hasher, OBJECT_HASH},
    git::odb::pack::{
        format::{HASH_LEN, PACK_SIGNATURE, PACK_VERSION},
        index::PackIndex,
        read::{DeltaBaseCache, Options, PackFile},
        write::{build_index, IndexEntry},
    },
    ObjectId,
};

/// `pack_index`: validate the input as a `.idx` file, as it is and again with its trailer
/// checksum recomputed (so mutants get past the checksum), and query every valid index.
pub fn pack_index(data: &[u8]) {
    if let Ok(index) = PackIndex::from_bytes(data.to_vec()) {
        check_index(&index);
    }
    if let Some(content_len) = data.len().checked_sub(HASH_LEN) {
        let mut resealed = data.to_vec();
        let (content, trailer) = resealed.split_at_mut(content_len);
        trailer.copy_from_slice(&sha1(content));
        if let Ok(index) = PackIndex::from_bytes(resealed) {
            check_index(&index);
        }
    }
}

/// Every accessor of a validated index answers without panicking, and consistently.
fn check_index(index: &PackIndex) {
    let len = index.len();
    assert_eq!(
        index.iter().len(),
        len as usize,
        "iter yields len() entries"
    );
    let mut previous: Option<ObjectId> = None;
    for (position, (id, offset)) in (0..len).zip(index.iter()) {
        assert!(
            previous.is_none_or(|p| p.as_ref() < id),
            "ids strictly increase"
        );
        assert_eq!(index.id_at(position), id, "iter agrees with id_at");
        assert_eq!(
            index.offset_at(position),
            offset,
            "iter agrees with offset_at"
        );
        assert_eq!(index.lookup(id), Some(position), "lookup finds every id");
        let _ = index.crc32_at(position);
        let mut missing = id.to_owned();
        if let Some(last) = missing.as_mut_slice().last_mut() {
            *last ^= 1;
        }
        if let Some(found) = index.lookup(&missing) {
            assert_eq!(index.id_at(found), missing.as_ref(), "lookup is exact");
        }
        previous = Some(id.to_owned());
    }
    let order = index.pack_order();
    assert_eq!(order.len(), len as usize, "pack_order lists every position");
    let mut seen = vec![false; order.len()];
    for pair in order.windows(2) {
        if let [a, b] = pair {
            assert!(
                index.offset_at(*a) <= index.offset_at(*b),
                "sorted by offset"
            );
        }
    }
    for position in order {
        let slot = seen
            .get_mut(position as usize)
            .expect("pack_order positions are below len()");
        assert!(!*slot, "pack_order repeats position {position}");
        *slot = true;
    }
    let _ = index.pack_checksum();
    let _ = index.is_empty();
}

/// The most entries `pack_entry` puts in its index.
const MAX_ENTRIES: usize = 16;
/// Bytes per entry in `pack_entry`'s input: an id and a big-endian u32 offset.
const ENTRY_LEN: usize = HASH_LEN + 4;

/// `pack_entry`: build a pack from the input and read every object in it.
///
/// Layout: a byte `n` (`n % 17` entries), then per entry a 20-byte id and a big-endian u32
/// pack offset (anywhere: inside an entry, in the header or trailer, past the end), then
/// the pack's entry bytes. The pack gets a correct header and trailer and an index made by
/// gitmq's own `build_index`, so only the entries and offsets are hostile. Each object is
/// read twice, through two caches in opposite orders: both reads must agree.
pub fn pack_entry(data: &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count) % (MAX_ENTRIES + 1);
    let Some((table, body)) = rest.split_at_checked(count * ENTRY_LEN) else {
        return;
    };
    let mut entries: Vec<IndexEntry> = table
        .chunks_exact(ENTRY_LEN)
        .map(|chunk| {
            let (id, offset) = chunk.split_at(HASH_LEN);
            let offset: [u8; 4] = offset.try_into().expect("ENTRY_LEN splits so");
            IndexEntry {
                id: ObjectId::from_bytes_or_panic(id),
                offset: u64::from(u32::from_be_bytes(offset)),
                crc32: 0,
            }
        })
        .collect();

    let mut pack = Vec::with_capacity(12 + body.len() + HASH_LEN);
    pack.extend_from_slice(&PACK_SIGNATURE);
    pack.extend_from_slice(&PACK_VERSION.to_be_bytes());
    pack.extend_from_slice(&u32::try_from(count).expect("at most 16").to_be_bytes());
    pack.extend_from_slice(body);
    let checksum = ObjectId::from_bytes_or_panic(&sha1(&pack));
    pack.extend_from_slice(checksum.as_bytes());
    let idx = build_index(&mut entries, &checksum);

    let dir = super::scratch_dir();
    let pack_path = dir.path().join(format!("pack-{checksum}.pack"));
    fs::write(&pack_path, &pack).expect("write the fuzz pack");
    fs::write(pack_path.with_extension("idx"), &idx).expect("write the fuzz idx");
    let options = Options {
        window_size: 4096,
        max_windows: 2,
        max_object_size: 1 << 20,
        max_chain_len: 2 * MAX_ENTRIES,
        verify_ids: true,
        // Both ways of reading a pack: mapped (the default) and small windows.
        map: checksum.as_bytes()[0] & 1 == 1,
    };
    // Duplicate ids make an unsorted index: opening must refuse it, not panic.
    let Ok(mut file) = PackFile::open_with(&pack_path, options) else {
        return;
    };
    file.verify_checksum()
        .expect("the trailer is the pack's SHA-1");

    let order = file.index().pack_order();
    let mut forward = DeltaBaseCache::new(1 << 16);
    let mut backward = DeltaBaseCache::new(64);
    let mut out = Vec::new();
    let mut first = Vec::new();
    for &position in &order {
        first.push(
            file.read_nth(position, &mut out, &mut forward)
                .map(|kind| (kind, out.clone())),
        );
    }
    for (&position, earlier) in order.iter().zip(&first).rev() {
        let id = file.index().id_at(position).to_owned();
        let again = file
            .read(&id, &mut out, &mut backward)
            .map(|kind| (kind.expect("the index lists it"), out.clone()));
        match (earlier, &again) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "two reads of {id} agree"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("reads of {id} disagree: {a:?} then {b:?}"),
        }
        if let Ok((_, object)) = again {
            assert!(object.len() as u64 <= options.max_object_size);
        }
    }
}

fn sha1(data: &[u8]) -> [u8; HASH_LEN] {
    let mut hasher = Hasher::new();
    hasher.update(data);
    let bytes = hasher.finalize_bytes();
    debug_assert_eq!(bytes.len(), OBJECT_HASH.len_in_bytes());
    bytes
}
