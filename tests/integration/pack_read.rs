//! Reading packs that git wrote (gc, repack, deltas) and that gitmq wrote.
//!
//! The oracle is `git cat-file --batch`: every object git lists must come back from gitmq's
//! pack reader with the same kind and the same bytes. Broken packs are made by editing what
//! git wrote, or built by hand where git would refuse to write them.

#![allow(
    clippy::cast_possible_truncation,
    reason = "fixtures build small values on purpose"
)]

mod build;
mod fixture;

use std::{
    fs,
    path::{Path, PathBuf},
};

use gitmq::git::odb::pack::{
    delta,
    read::{self, DeltaBaseCache, Options, PackFile, DEFAULT_CACHE_BYTES},
    set::{self, PackSet},
};
use gix_object::Kind;

use build::{broken_pack, build_pack, fake_id, pair, Pair, Raw};
use fixture::{assert_reads_like_git, count_entries_of_type, history, Fixture, Scratch};

use crate::util::git;

#[test]
fn every_object_git_packed_reads_back_byte_exact_after_gc_aggressive_and_deep_repack() {
    let fx = Fixture::new();
    history(&fx, 40);
    let tiny_windows = Options {
        window_size: 4096,
        max_windows: 2,
        ..Options::default()
    };
    let cases: [(&str, &[&str]); 4] = [
        ("git gc", &["gc", "-q"]),
        ("git gc --aggressive", &["gc", "-q", "--aggressive"]),
        (
            "git repack -adf --depth=250 --window=250",
            &["repack", "-adfq", "--depth=250", "--window=250"],
        ),
        (
            "git repack -adf with REF_DELTA",
            &["-c", "repack.useDeltaBaseOffset=false", "repack", "-adfq"],
        ),
    ];
    for (what, args) in cases {
        fx.git(args);
        let longest = fx.longest_chain();
        assert!(
            longest >= 2,
            "{what}: git made delta chains (longest {longest}), so chains are resolved"
        );
        let packs = fx.packs();
        assert_eq!(packs.len(), 1, "{what}: one pack");
        let (ofs, refs) = (
            count_entries_of_type(&packs[0], 6),
            count_entries_of_type(&packs[0], 7),
        );
        if what.contains("REF_DELTA") {
            assert!(
                refs > 0 && ofs == 0,
                "{what}: {refs} REF_DELTA, {ofs} OFS_DELTA"
            );
        } else {
            assert!(
                ofs > 0 && refs == 0,
                "{what}: {ofs} OFS_DELTA, {refs} REF_DELTA"
            );
        }
        if what.contains("depth=250") {
            assert!(longest > 20, "{what}: a deep chain, {longest}");
        }
        assert_reads_like_git(&fx, what, Options::default(), DEFAULT_CACHE_BYTES);
        assert_reads_like_git(
            &fx,
            &format!("{what}, 4 KiB windows, no cache"),
            tiny_windows,
            0,
        );
        PackFile::open(&packs[0])
            .unwrap()
            .verify_checksum()
            .unwrap();
    }
}

#[test]
fn an_index_with_every_offset_in_the_64_bit_table_reads_back() {
    let fx = Fixture::new();
    history(&fx, 10);
    fx.git(&["gc", "-q"]);
    let original = fx.packs().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let pack = dir.path().join(original.file_name().unwrap());
    let idx = pack.with_extension("idx");
    fs::copy(&original, &pack).unwrap();
    fx.git(&[
        "index-pack",
        "--index-version=2,1",
        "-o",
        idx.to_str().unwrap(),
        pack.to_str().unwrap(),
    ]);
    let count = u64::from(PackFile::open(&pack).unwrap().index().len());
    assert_eq!(
        fs::metadata(&idx).unwrap().len(),
        1032 + count * (20 + 4 + 4 + 8) + 40,
        "git put every offset in the large table"
    );
    let mut set = PackSet::open(dir.path()).unwrap();
    let mut cache = DeltaBaseCache::default();
    let mut out = Vec::new();
    for (id, kind, body) in fx.objects() {
        assert_eq!(
            set.read(&id, &mut out, &mut cache).unwrap(),
            Some(kind),
            "{id}"
        );
        assert!(out == body, "{id} reads back through large offsets");
    }
}
#[test]
fn an_index_is_hashed_on_request_not_on_open() {
    let fx = Fixture::new();
    history(&fx, 4);
    fx.git(&["gc", "-q"]);
    let pack = fx.packs().remove(0);
    let scratch = Scratch::of(&pack);
    scratch
        .with_idx(&scratch.idx_bytes)
        .unwrap()
        .verify_checksum()
        .expect("an intact pack and index verify");
    let mut garbled = scratch.idx_bytes.clone();
    let crc_at = 8 + 256 * 4 + 20 * fx_len(&scratch.idx_bytes);
    garbled[crc_at] ^= 0xff;
    let file = scratch
        .with_idx(&garbled)
        .expect("a CRC-32 is not read on open");
    let err = file.verify_checksum().unwrap_err();
    assert!(
        matches!(
            err,
            read::Error::Index {
                source: gitmq::git::odb::pack::index::Error::ChecksumMismatch { .. },
                ..
            }
        ),
        "a damaged CRC-32 is found by the explicit check: {err}"
    );
}

#[test]
fn corrupt_zlib_truncated_files_and_a_wrong_trailer_are_clear_errors() {
    let fx = Fixture::new();
    history(&fx, 8);
    fx.git(&["gc", "-q"]);
    let pack = fx.packs().remove(0);
    let scratch = Scratch::of(&pack);
    let mut cache = DeltaBaseCache::default();
    let mut out = Vec::new();

    // Flip a byte in the middle of a whole blob's zlib data.
    let (id, _, offset, in_pack, _) = fx
        .entries(&pack)
        .into_iter()
        .filter(|(_, kind, _, in_pack, delta)| *kind == Kind::Blob && !delta && *in_pack > 100)
        .max_by_key(|e| e.3)
        .expect("a sizeable whole blob");
    let mut bytes = scratch.pack_bytes.clone();
    bytes[(offset + in_pack / 2) as usize] ^= 0x55;
    let mut file = scratch.with_pack(&bytes).expect("the trailer is intact");
    let err = file.read(&id, &mut out, &mut cache).unwrap_err();
    assert!(
        matches!(
            err,
            read::Error::Inflate { .. } | read::Error::Corrupt { .. }
        ),
        "flipped zlib data: {err}"
    );
    assert!(
        err.to_string().contains(&format!("offset {offset}")),
        "{err}"
    );
    let err = file.verify_checksum().unwrap_err();
    assert!(matches!(err, read::Error::ChecksumMismatch { .. }), "{err}");

    // A wrong trailer no longer matches the checksum the index records.
    let mut bytes = scratch.pack_bytes.clone();
    *bytes.last_mut().unwrap() ^= 1;
    let err = scratch.with_pack(&bytes).unwrap_err();
    assert!(matches!(err, read::Error::ChecksumMismatch { .. }), "{err}");

    // Truncated packs.
    for len in [
        scratch.pack_bytes.len() - 1,
        scratch.pack_bytes.len() / 2,
        31,
        12,
        0,
    ] {
        let err = scratch.with_pack(&scratch.pack_bytes[..len]).unwrap_err();
        assert!(
            matches!(
                err,
                read::Error::ChecksumMismatch { .. } | read::Error::TooShort { .. }
            ),
            "pack cut to {len}: {err}"
        );
    }
    // No signature, another version, another object count than the index.
    for at in [0, 7, 11] {
        let mut bytes = scratch.pack_bytes.clone();
        bytes[at] ^= 1;
        let err = scratch.with_pack(&bytes).unwrap_err();
        assert!(
            matches!(err, read::Error::BadHeader { .. }),
            "header byte {at}: {err}"
        );
    }

    // Truncated and garbled indexes.
    for len in [
        scratch.idx_bytes.len() - 1,
        scratch.idx_bytes.len() - 21,
        1100,
        8,
        0,
    ] {
        let err = scratch.with_idx(&scratch.idx_bytes[..len]).unwrap_err();
        assert!(
            matches!(err, read::Error::Index { .. }),
            "idx cut to {len}: {err}"
        );
    }
    let mut huge = scratch.idx_bytes.clone();
    huge.resize(scratch.pack_bytes.len() * 40, 0);
    let err = scratch.with_idx(&huge).unwrap_err();
    assert!(
        matches!(
            err,
            read::Error::Index {
                source: gitmq::git::odb::pack::index::Error::TooLong { .. },
                ..
            }
        ),
        "an index longer than its pack could need is not read: {err}"
    );
    // Indexes are not hashed on open (as git opens them): a garbled byte is refused on open
    // when it breaks the structure, and by the explicit check in any case.
    let mut garbled = scratch.idx_bytes.clone();
    garbled[scratch.idx_bytes.len() / 2] ^= 0xff;
    let err = match scratch.with_idx(&garbled) {
        Err(err) => err,
        Ok(file) => file.verify_checksum().unwrap_err(),
    };
    assert!(matches!(err, read::Error::Index { .. }), "{err}");

    // Through a PackSet, a broken index is an error, not a silent miss.
    scratch.with_idx(&scratch.idx_bytes[..100]).unwrap_err();
    let mut set = PackSet::open(scratch.pack.parent().unwrap()).unwrap();
    let err = set.read(&id, &mut out, &mut cache).unwrap_err();
    assert!(
        matches!(err, set::Error::Pack(read::Error::Index { .. })),
        "{err}"
    );
}

#[test]
fn every_single_byte_flip_reads_as_an_error_or_as_the_right_object() {
    let fx = Fixture::new();
    for i in 0..6 {
        fx.write(
            "f.txt",
            format!("{}\nversion {i}\n", "shared text\n".repeat(20)).as_bytes(),
        );
        fx.commit_all(&format!("v{i}"));
    }
    fx.git(&["gc", "-q", "--aggressive"]);
    assert!(fx.longest_chain() >= 1, "some deltas");
    let objects = fx.objects();
    let scratch = Scratch::of(&fx.packs()[0]);
    let verify = Options {
        verify_ids: true,
        ..Options::default()
    };
    let data_len = scratch.pack_bytes.len() - 20;
    let step = (data_len / 400).max(1);
    let mut errors = 0;
    for at in (12..data_len).step_by(step) {
        for flip in [0x01, 0x80] {
            let mut bytes = scratch.pack_bytes.clone();
            bytes[at] ^= flip;
            fs::write(&scratch.pack, &bytes).unwrap();
            let mut file = PackFile::open_with(&scratch.pack, verify).unwrap();
            let mut cache = DeltaBaseCache::default();
            let mut out = Vec::new();
            for (id, kind, body) in &objects {
                match file.read(id, &mut out, &mut cache) {
                    Ok(got) => {
                        assert_eq!(got, Some(*kind), "flip {flip:#x} at {at}: {id}");
                        assert!(out == *body, "flip {flip:#x} at {at}: {id}");
                    }
                    Err(_) => errors += 1,
                }
            }
        }
    }
    assert!(errors > 0, "the flips were seen");
}
#[test]
fn git_index_pack_agrees_with_the_hand_built_pack_and_index() {
    let Pair {
        base,
        base_id,
        target_id,
        delta,
        ..
    } = pair();
    let dir = tempfile::tempdir().unwrap();
    let valid = build_pack(
        dir.path(),
        &[
            (base_id, Raw::Whole(Kind::Blob, base)),
            (target_id, Raw::Ofs(1, delta)),
        ],
    );
    let git_idx = dir.path().join("by-git.idx");
    git(
        &[
            "index-pack",
            "-o",
            git_idx.to_str().unwrap(),
            valid.to_str().unwrap(),
        ],
        Some(dir.path()),
    );
    assert_eq!(
        fs::read(&git_idx).unwrap()[..1032 + 40],
        fs::read(valid.with_extension("idx")).unwrap()[..1032 + 40],
        "git indexes the hand-built pack to the same ids, so the builder below is right"
    );

    let mut out = Vec::new();
    for (limit, works) in [(0, false), (1, true)] {
        let options = Options {
            max_chain_len: limit,
            ..Options::default()
        };
        let mut file = PackFile::open_with(&valid, options).unwrap();
        let read = file.read(&target_id, &mut out, &mut DeltaBaseCache::new(0));
        assert_eq!(
            read.is_ok(),
            works,
            "one delta under a chain limit of {limit}"
        );
    }
}
type Check = fn(&read::Error) -> bool;

#[test]
fn broken_deltas_and_lying_sizes_in_a_hand_built_pack_are_errors() {
    let pair = pair();
    let dir = tempfile::tempdir().unwrap();
    let path = broken_pack(dir.path(), &pair);
    let Pair {
        base,
        target,
        base_id,
        target_id,
        ..
    } = pair;
    let mut file = PackFile::open(&path).unwrap();
    file.verify_checksum().unwrap();
    let mut cache = DeltaBaseCache::default();
    let mut out = Vec::new();
    assert_eq!(
        file.read(&base_id, &mut out, &mut cache).unwrap(),
        Some(Kind::Blob)
    );
    assert_eq!(out, base);
    assert_eq!(
        file.read(&target_id, &mut out, &mut cache).unwrap(),
        Some(Kind::Blob)
    );
    assert_eq!(out, target);
    assert_eq!(
        file.read(&fake_id(0x99), &mut out, &mut cache).unwrap(),
        None
    );

    let cases: [(u8, &str, Check); 9] = [
        (
            0x21,
            "a missing REF_DELTA base",
            |e| matches!(e, read::Error::BaseOutsidePack { base, .. } if *base == fake_id(0xee)),
        ),
        (0x22, "a REF_DELTA that is its own base", |e| {
            matches!(e, read::Error::ChainTooLong { limit: 10_000, .. })
        }),
        (
            0x23,
            "a base before the pack",
            |e| matches!(e, read::Error::Corrupt { reason, .. } if reason.contains("base offset")),
        ),
        (
            0x24,
            "a huge declared size",
            |e| matches!(e, read::Error::TooLarge { size, .. } if *size == 1 << 40),
        ),
        (0x25, "a huge delta result", |e| {
            matches!(
                e,
                read::Error::Delta {
                    source: delta::Error::TooLarge { .. },
                    ..
                }
            )
        }),
        (
            0x26,
            "a stream longer than declared",
            |e| matches!(e, read::Error::Corrupt { reason, .. } if reason.contains("longer")),
        ),
        (
            0x27,
            "a stream shorter than declared",
            |e| matches!(e, read::Error::Corrupt { reason, .. } if reason.contains("shorter")),
        ),
        (0x28, "a delta for another base", |e| {
            matches!(
                e,
                read::Error::Delta {
                    source: delta::Error::BaseSizeMismatch { .. },
                    ..
                }
            )
        }),
        (
            0x29,
            "a stream cut by the end of the pack",
            |e| matches!(e, read::Error::Corrupt { reason, .. } if reason.contains("past the end")),
        ),
    ];
    for (byte, what, check) in cases {
        let err = file.read(&fake_id(byte), &mut out, &mut cache).unwrap_err();
        assert!(check(&err), "{what}: {err:?}");
    }

    // Through a PackSet, a missing base is an error, not a miss.
    let mut set = PackSet::open(dir.path()).unwrap();
    let err = set.read(&fake_id(0x21), &mut out, &mut cache).unwrap_err();
    assert!(
        matches!(err, set::Error::Pack(read::Error::BaseOutsidePack { .. })),
        "{err}"
    );
}

#[test]
fn a_pack_set_finds_packs_written_after_open_and_survives_packs_deleted_under_it() {
    let fx = Fixture::new();
    let first = fx.commit_empty("first");
    fx.commit_empty("second");
    fx.git(&["gc", "-q"]);
    let mut set = PackSet::open(fx.pack_dir()).unwrap();
    let mut cache = DeltaBaseCache::default();
    let mut out = Vec::new();
    assert_eq!(
        set.read(&first, &mut out, &mut cache).unwrap(),
        Some(Kind::Commit)
    );

    // git writes a second pack after the set listed the directory.
    let third = fx.commit_empty("third");
    fx.git(&["repack", "-dq"]);
    assert_eq!(fx.loose_count(), 0);
    assert_eq!(fx.packs().len(), 2);
    assert_eq!(
        set.read_listed(&third, &mut out, &mut cache).unwrap(),
        None,
        "read_listed does not rescan"
    );
    assert!(
        set.contains(&third),
        "a rescan on the miss finds the new pack"
    );
    assert_eq!(
        set.read(&third, &mut out, &mut cache).unwrap(),
        Some(Kind::Commit)
    );
    assert!(String::from_utf8_lossy(&out).ends_with("\n\nthird\n"));

    // A consolidation deletes both packs, including one the set has open.
    fx.git(&["repack", "-adq"]);
    assert_eq!(fx.packs().len(), 1);
    assert_eq!(
        set.read(&first, &mut out, &mut cache).unwrap(),
        Some(Kind::Commit)
    );
    let missing = fake_id(0x42);
    assert_eq!(set.read(&missing, &mut out, &mut cache).unwrap(), None);
    let paths: Vec<PathBuf> = set.pack_paths().map(Path::to_path_buf).collect();
    assert_eq!(paths, fx.packs(), "the rescan dropped the deleted packs");

    // A pack listed but not yet opened is deleted before the read: it is dropped, no error.
    let fourth = fx.commit_empty("fourth");
    fx.git(&["repack", "-dq"]);
    let mut set = PackSet::open(fx.pack_dir()).unwrap();
    assert_eq!(set.pack_paths().count(), 2);
    let newest = fx
        .packs()
        .into_iter()
        .find(|p| PackFile::open(p).unwrap().contains(&fourth))
        .unwrap();
    fs::remove_file(&newest).unwrap();
    fs::remove_file(newest.with_extension("idx")).unwrap();
    assert_eq!(
        set.read(&first, &mut out, &mut cache).unwrap(),
        Some(Kind::Commit)
    );
    assert_eq!(set.read(&fourth, &mut out, &mut cache).unwrap(), None);
    assert_eq!(set.pack_paths().count(), 1);
}

/// gitmq's writer stores entries as stored zlib blocks; `append_zlib_stored` is its encoder.
fn stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    gitmq::git::odb::pack::write::append_zlib_stored(&mut out, data);
    out
}

#[test]
fn stored_entries_read_without_zlib_and_broken_ones_are_errors_on_every_read_path() {
    let small = b"a small stored blob\n".to_vec();
    let large: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut nlen = stored(b"broken nlen");
    nlen[5] ^= 0x01;
    let mut adler = stored(b"broken adler");
    *adler.last_mut().unwrap() ^= 0x01;
    let cut = stored(b"a stream cut short by the next entry");
    let entries = [
        (
            fake_id(0x01),
            Raw::Lying(small.len() as u64, stored(&small)),
        ),
        (
            fake_id(0x02),
            Raw::Lying(large.len() as u64, stored(&large)),
        ),
        (fake_id(0x03), Raw::Lying(11, nlen)),
        (fake_id(0x04), Raw::Lying(12, adler)),
        (fake_id(0x05), Raw::Lying(36, cut[..cut.len() - 6].to_vec())),
        (
            fake_id(0x06),
            Raw::Lying(12, stored(b"eleven bytes"[..11].as_ref())),
        ),
        (fake_id(0x07), Raw::Whole(Kind::Blob, small.clone())),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = build_pack(dir.path(), &entries);
    for window_size in [4096, 1 << 20] {
        let options = Options {
            window_size,
            ..Options::default()
        };
        let mut file = PackFile::open_with(&path, options).unwrap();
        let mut cache = DeltaBaseCache::default();
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        for (byte, expected) in [(0x01, &small), (0x02, &large), (0x07, &small)] {
            let id = fake_id(byte);
            assert_eq!(
                file.read(&id, &mut out, &mut cache).unwrap(),
                Some(Kind::Blob)
            );
            assert_eq!(&out, expected, "read {byte:#x}, windows of {window_size}");
            let offset = file.index().offset_at(file.index().lookup(&id).unwrap());
            let (kind, body) = file.object_at(offset, &mut scratch, &mut cache).unwrap();
            assert_eq!(
                (kind, body),
                (Kind::Blob, &expected[..]),
                "object_at {byte:#x}"
            );
            let (_, prefix) = file
                .object_prefix_at(offset, 10, &mut scratch, &mut cache)
                .unwrap();
            assert!(prefix.len() >= 10 && expected.starts_with(prefix));
        }
        for byte in 0x03..=0x06 {
            let id = fake_id(byte);
            let err = file.read(&id, &mut out, &mut cache).unwrap_err();
            assert!(
                matches!(
                    err,
                    read::Error::Inflate { .. } | read::Error::Corrupt { .. }
                ),
                "{byte:#x}: {err}"
            );
            let offset = file.index().offset_at(file.index().lookup(&id).unwrap());
            assert!(
                file.object_at(offset, &mut scratch, &mut cache).is_err(),
                "{byte:#x}"
            );
        }
    }
}

#[test]
fn a_pack_set_over_its_memory_bound_closes_and_reopens_packs_and_still_reads_everything() {
    let repo = crate::util::TempRepo::new();
    let topic = gitmq::TopicName::new("t").unwrap();
    let config = gitmq::produce::ProducerConfig {
        durability: gitmq::Durability::None,
        max_batch_messages: 10,
        linger: std::time::Duration::from_secs(3600),
        multi_pack_index: None,
        ..Default::default()
    };
    let mut producer = gitmq::produce::Producer::with_config(repo.open(), topic, config);
    let ids = producer
        .publish_batch((0..200).map(|i| format!("message {i}")))
        .unwrap();
    drop(producer);
    let pack_dir = repo.path.join("objects/pack");
    // One byte: every open closes the others (the pack being opened always stays).
    let mut set = PackSet::open(&pack_dir).unwrap().with_max_open_bytes(1);
    let mut cache = DeltaBaseCache::default();
    let mut out = Vec::new();
    for round in 0..2 {
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(
                set.read(id, &mut out, &mut cache).unwrap(),
                Some(Kind::Commit),
                "round {round}"
            );
            assert!(out.ends_with(format!("message {i}").as_bytes()));
            assert_eq!(set.open_footprint().0, 1, "one pack open at a time");
        }
    }
    // A pack closed and then removed is gone for its key, not an error.
    let (key, _) = set.locate(&ids[0]).unwrap().unwrap();
    set.locate(&ids[199]).unwrap().unwrap();
    let first_pack = set
        .pack_paths()
        .find(|path| PackFile::open(path).unwrap().contains(&ids[0]))
        .unwrap()
        .to_owned();
    fs::remove_file(first_pack.with_extension("idx")).unwrap();
    fs::remove_file(&first_pack).unwrap();
    assert!(set.pack(key).unwrap().is_none(), "closed, then removed");
    let mut unbounded = PackSet::open(&pack_dir).unwrap();
    for id in &ids[10..] {
        assert!(unbounded.read(id, &mut out, &mut cache).unwrap().is_some());
    }
    assert!(
        unbounded.open_footprint().0 > 1,
        "unbounded, packs stay open"
    );
}

/// The object count of a v2 index: the last fan-out entry.
fn fx_len(idx: &[u8]) -> usize {
    u32::from_be_bytes(idx[8 + 255 * 4..8 + 256 * 4].try_into().unwrap()) as usize
}
