use std::path::{Path, PathBuf};

use gix_hash::ObjectId;

use super::{
    read::{Layer, MultiPackIndex},
    write::{write_midx, Source},
};
use crate::git::odb::pack::write::{build_index, IndexEntry};

fn id(i: u32) -> ObjectId {
    crate::git::hash::object_id(gix_object::Kind::Blob, &i.to_be_bytes())
}

/// An index file `pack-<hex>.idx` in `dir` for `entries` (id number, offset).
fn idx(dir: &Path, hex_seed: u8, entries: &[(u32, u64)]) -> PathBuf {
    let checksum = ObjectId::from_bytes_or_panic(&[hex_seed; 20]);
    let mut entries: Vec<IndexEntry> = entries
        .iter()
        .map(|&(i, offset)| IndexEntry {
            id: id(i),
            offset,
            crc32: i,
        })
        .collect();
    let bytes = build_index(&mut entries, &checksum);
    let path = dir.join(format!("pack-{checksum}.idx"));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_owned()
}

#[test]
fn a_midx_of_two_indexes_finds_every_object_once_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let a = idx(
        dir.path(),
        0xaa,
        &[(1, 12), (2, 100), (3, 200), (0, 5 << 30)],
    );
    let b = idx(dir.path(), 0x11, &[(4, 12), (3, 300), (5, 400)]);
    let sources = vec![Source::idx(&a).unwrap(), Source::idx(&b).unwrap()];
    let out = dir.path().join("m");
    let written = write_midx(&sources, std::fs::File::create(&out).unwrap(), &out).unwrap();
    assert_eq!(written.objects, 6, "id 3 is in both packs and listed once");
    assert_eq!(
        written.packs,
        vec![name_of(&b), name_of(&a)],
        "names sorted"
    );
    let layer = Layer::open(&out).unwrap();
    for (i, pack, offset) in [
        (1, &a, 12),
        (2, &a, 100),
        (3, &a, 200), // the first source wins
        (0, &a, 5 << 30),
        (4, &b, 12),
        (5, &b, 400),
    ] {
        assert_eq!(
            layer.lookup(&id(i)).unwrap(),
            Some((name_of(pack).as_str(), offset)),
            "object {i}"
        );
    }
    assert_eq!(layer.lookup(&id(6)).unwrap(), None, "absent");
    let bytes = std::fs::read(&out).unwrap();
    let (body, trailer) = bytes.split_at(bytes.len() - 20);
    let mut hasher = crate::git::hash::Hasher::new();
    hasher.update(body);
    assert_eq!(hasher.finalize().as_bytes(), trailer, "checksum trailer");
    assert_eq!(written.checksum.as_bytes(), trailer);
}

#[test]
fn merged_layers_answer_like_their_sources() {
    let dir = tempfile::tempdir().unwrap();
    let a = idx(dir.path(), 0x01, &[(1, 12), (2, 100)]);
    let b = idx(dir.path(), 0x02, &[(3, 12), (2, 50)]);
    let c = idx(dir.path(), 0x03, &[(4, 12), (0, 6 << 30)]);
    let l1 = dir.path().join("l1");
    let l2 = dir.path().join("l2");
    let sources = vec![Source::idx(&a).unwrap(), Source::idx(&b).unwrap()];
    write_midx(&sources, std::fs::File::create(&l1).unwrap(), &l1).unwrap();
    let sources = vec![Source::idx(&c).unwrap()];
    write_midx(&sources, std::fs::File::create(&l2).unwrap(), &l2).unwrap();
    let merged = dir.path().join("merged");
    let sources = vec![Source::midx(&l2).unwrap(), Source::midx(&l1).unwrap()];
    let written = write_midx(&sources, std::fs::File::create(&merged).unwrap(), &merged).unwrap();
    assert_eq!(written.objects, 5);
    assert_eq!(written.packs.len(), 3);
    let layer = Layer::open(&merged).unwrap();
    assert_eq!(
        layer.lookup(&id(0)).unwrap(),
        Some((name_of(&c).as_str(), 6 << 30)),
        "a large offset survives a merge"
    );
    assert_eq!(
        layer.lookup(&id(3)).unwrap(),
        Some((name_of(&b).as_str(), 12))
    );
    assert_eq!(
        layer.lookup(&id(2)).unwrap(),
        Some((name_of(&a).as_str(), 100))
    );
}

#[test]
fn garbage_is_refused_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    for bytes in [
        &b""[..],
        b"MIDX",
        b"MIDX\x01\x01\x05\x00\x00\x00\x00\x01",
        b"MIDX\x01\x01\xff\x00\xff\xff\xff\xff0123456789012345678901234567890",
    ] {
        std::fs::write(&path, bytes).unwrap();
        assert!(Layer::open(&path).is_err());
        assert!(Source::midx(&path).is_err());
    }
}

#[test]
fn a_directory_without_a_midx_has_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let midx = MultiPackIndex::open(dir.path()).unwrap();
    assert!(midx.is_empty());
    assert_eq!(midx.lookup(&id(1)).unwrap(), None);
}

#[test]
fn a_chain_of_irregular_layer_sizes_stays_bounded() {
    // Layers of 2 and 5 objects in turn: never three of similar size (5 > 1 x 2), so only
    // the bound merges them.
    let dir = tempfile::tempdir().unwrap();
    let git_dir = dir.path();
    let pack_dir = git_dir.join("objects/pack");
    std::fs::create_dir_all(&pack_dir).unwrap();
    let fs = crate::git::fs::real();
    let policy = super::chain::Policy {
        layer_packs: 1,
        merge_layers: 3,
    };
    let mut next_id = 0;
    let mut longest = 0;
    for pack in 0..40u8 {
        let size: u32 = if pack % 2 == 0 { 2 } else { 5 };
        let entries: Vec<(u32, u64)> = (0..size)
            .map(|i| {
                next_id += 1;
                (next_id, 12 + u64::from(i) * 10)
            })
            .collect();
        let index = idx(&pack_dir, pack + 1, &entries);
        std::fs::write(index.with_extension("pack"), b"").unwrap();
        let report = super::chain::update(&fs, git_dir, policy, false).unwrap();
        longest = longest.max(report.layers);
        assert!(report.layers <= 6, "pack {pack}: {} layers", report.layers);
    }
    assert!(longest > 3, "the bound, not the size rule, kept it short");
    let midx = MultiPackIndex::open(&pack_dir).unwrap();
    for i in 1..=next_id {
        assert!(
            midx.lookup(&id(i)).unwrap().is_some(),
            "object {i} is found"
        );
    }
}

#[test]
fn any_number_of_sources_merges_to_the_sorted_union_first_source_winning() {
    // 1 to 13 sources (powers of two and not), some empty, overlapping id ranges: every id
    // of the union is found once, in the first source that holds it, and the ids come out in
    // order (the reader's binary search would miss them otherwise).
    for sources_len in [1usize, 2, 3, 5, 8, 9, 13] {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        let mut first_holder = std::collections::BTreeMap::new();
        for s in 0..sources_len {
            let entries: Vec<(u32, u64)> = if s % 4 == 3 {
                Vec::new()
            } else {
                let s32 = u32::try_from(s).unwrap();
                (0..40u32)
                    .map(|k| (s32 * 25 + k, u64::from(s32 * 1000 + k + 12)))
                    .collect()
            };
            let seed = u8::try_from(s + 1).unwrap();
            let path = idx(dir.path(), seed, &entries);
            for &(i, offset) in &entries {
                first_holder.entry(i).or_insert((name_of(&path), offset));
            }
            paths.push(path);
        }
        let sources: Vec<Source> = paths.iter().map(|p| Source::idx(p).unwrap()).collect();
        let out = dir.path().join("m");
        let written = write_midx(&sources, std::fs::File::create(&out).unwrap(), &out).unwrap();
        assert_eq!(
            written.objects as usize,
            first_holder.len(),
            "{sources_len} sources: each id of the union once"
        );
        let layer = Layer::open(&out).unwrap();
        for (i, (pack, offset)) in &first_holder {
            assert_eq!(
                layer.lookup(&id(*i)).unwrap(),
                Some((pack.as_str(), *offset)),
                "{sources_len} sources: object {i}"
            );
        }
        assert_eq!(layer.lookup(&id(1_000_000)).unwrap(), None);
    }
}
