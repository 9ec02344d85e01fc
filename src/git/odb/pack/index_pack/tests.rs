//! Unit tests of the indexer: packs written by `git pack-objects` (with OFS_DELTA and
//! REF_DELTA entries) must index to the same `.idx` bytes as `git index-pack` writes, and
//! hostile packs must be errors that leave nothing behind.

use std::{
    fmt::Write as _,
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
};

use super::*;
use crate::git::fs::real;

pub(super) fn git(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git runs");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.unwrap_or_default().to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A repository whose history has a file edited many times (so pack-objects makes deltas)
/// and some empty-tree commits; returns a pack of everything, with OFS or REF deltas.
fn git_pack(dir: &Path, ofs_delta: bool) -> Vec<u8> {
    git(dir, &["init", "-q", "."], None);
    let mut text = String::new();
    for i in 0..40 {
        for j in 0..30 {
            writeln!(text, "line {j} of revision {i}: some stable text here").unwrap();
        }
        std::fs::write(dir.join("file.txt"), &text).unwrap();
        git(dir, &["add", "file.txt"], None);
        git(dir, &["commit", "-q", "-m", &format!("edit {i}")], None);
    }
    let objects = git(dir, &["rev-list", "--objects", "--all"], None);
    let mut args = vec![
        "pack-objects",
        "--stdout",
        "-q",
        "--window=50",
        "--depth=20",
    ];
    if ofs_delta {
        args.push("--delta-base-offset");
    }
    git(dir, &args, Some(&objects))
}

fn index(pack: &[u8], dir: &Path) -> Result<IndexedPack, Error> {
    index_pack(&real(), pack, dir, &Limits::default(), false)
}

pub(super) fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn git_packs_with_ofs_and_ref_deltas_index_exactly_like_git_index_pack() {
    for ofs_delta in [true, false] {
        let repo = tempfile::tempdir().unwrap();
        let pack = git_pack(repo.path(), ofs_delta);
        let out = tempfile::tempdir().unwrap();
        let indexed = index(&pack, out.path()).unwrap();
        assert!(indexed.deltas > 10, "the fixture has deltas: {indexed:?}");
        assert_eq!(indexed.objects, 40 * 3);
        let written = indexed.written.unwrap();
        assert_eq!(std::fs::read(&written.pack_path).unwrap(), pack);

        let git_idx = out.path().join("git.idx");
        git(
            out.path(),
            &[
                "index-pack",
                "-o",
                git_idx.to_str().unwrap(),
                written.pack_path.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(
            std::fs::read(&written.index_path).unwrap(),
            std::fs::read(&git_idx).unwrap(),
            "our .idx is byte for byte git's (ofs_delta = {ofs_delta})"
        );
        git(
            out.path(),
            &["verify-pack", written.index_path.to_str().unwrap()],
            None,
        );
    }
}

#[test]
fn every_truncation_is_an_error_that_leaves_nothing_behind() {
    let repo = tempfile::tempdir().unwrap();
    let pack = git_pack(repo.path(), true);
    let out = tempfile::tempdir().unwrap();
    let step = (pack.len() / 97).max(1);
    for len in (0..pack.len()).step_by(step).chain([pack.len() - 1]) {
        let err = index(&pack[..len], out.path()).unwrap_err();
        assert!(
            matches!(err, Error::Truncated { .. } | Error::BadHeader { .. }),
            "len {len}: {err}"
        );
        assert!(files_in(out.path()).is_empty(), "len {len}: nothing left");
    }
}

#[test]
fn flipped_bytes_and_trailing_data_are_errors_that_leave_nothing_behind() {
    let repo = tempfile::tempdir().unwrap();
    let pack = git_pack(repo.path(), true);
    let out = tempfile::tempdir().unwrap();
    for at in (12..pack.len()).step_by(pack.len() / 61) {
        let mut bad = pack.clone();
        bad[at] ^= 0x20;
        assert!(index(&bad, out.path()).is_err(), "flip at {at}");
        assert!(files_in(out.path()).is_empty(), "flip at {at}");
    }
    let mut long = pack.clone();
    long.push(0);
    assert!(matches!(
        index(&long, out.path()),
        Err(Error::TrailingData { .. })
    ));
    assert!(files_in(out.path()).is_empty());
}

/// A pack of hand-written entries (stored zlib blocks), with a correct trailer.
pub(super) fn hand_pack(count: u32, entries: &[Vec<u8>]) -> Vec<u8> {
    let mut pack = b"PACK\0\0\0\x02".to_vec();
    pack.extend_from_slice(&count.to_be_bytes());
    for entry in entries {
        pack.extend_from_slice(entry);
    }
    let mut hasher = crate::git::hash::Hasher::new();
    hasher.update(&pack);
    pack.extend_from_slice(hasher.finalize().as_bytes());
    pack
}

pub(super) fn entry(kind: EntryKind, size: u64, body: &[u8], base: &[u8]) -> Vec<u8> {
    use crate::git::odb::pack::format::{encode_entry_header, MAX_ENTRY_HEADER_LEN};
    let mut header = [0u8; MAX_ENTRY_HEADER_LEN];
    let len = encode_entry_header(&mut header, kind, size);
    let mut out = header[..len].to_vec();
    out.extend_from_slice(base);
    crate::git::odb::pack::write::append_zlib_stored(&mut out, body);
    out
}

use crate::git::odb::pack::format::EntryKind;

#[test]
fn hostile_sizes_and_counts_are_refused_before_allocating() {
    let out = tempfile::tempdir().unwrap();
    let pack = hand_pack(u32::MAX, &[]);
    assert!(matches!(
        index(&pack, out.path()),
        Err(Error::TooManyObjects { .. })
    ));
    let blob = EntryKind::Base(gix_object::Kind::Blob);
    let pack = hand_pack(1, &[entry(blob, u64::MAX >> 4, b"x", b"")]);
    assert!(matches!(
        index(&pack, out.path()),
        Err(Error::ObjectTooLarge { .. })
    ));
    let pack = hand_pack(1, &[entry(blob, 5, b"x", b"")]);
    assert!(matches!(
        index(&pack, out.path()),
        Err(Error::SizeMismatch { .. })
    ));
    let small = Limits {
        max_pack_size: 20,
        ..Limits::default()
    };
    let pack = hand_pack(1, &[entry(blob, 1, b"x", b"")]);
    assert!(matches!(
        index_pack(&real(), &pack[..], out.path(), &small, false),
        Err(Error::PackTooLarge { .. })
    ));
    assert!(files_in(out.path()).is_empty());
}

#[test]
fn bad_delta_bases_are_clear_errors() {
    let out = tempfile::tempdir().unwrap();
    let blob = EntryKind::Base(gix_object::Kind::Blob);
    // A delta "copy 1 byte of a 1-byte base" against an unknown base: a thin pack.
    let delta = [1u8, 1, 0x90, 1];
    let missing = [0x11u8; 20];
    let pack = hand_pack(1, &[entry(EntryKind::RefDelta, 4, &delta, &missing)]);
    assert!(matches!(
        index(&pack, out.path()),
        Err(Error::BaseNotInPack { .. })
    ));
    // An OFS_DELTA pointing before the pack, and one pointing inside an entry.
    let pack = hand_pack(1, &[entry(EntryKind::OfsDelta, 4, &delta, &[0x7f])]);
    assert!(matches!(
        index(&pack, out.path()),
        Err(Error::BadEntry { .. })
    ));
    let base = entry(blob, 1, b"x", b"");
    let pack = hand_pack(
        2,
        &[
            base.clone(),
            entry(
                EntryKind::OfsDelta,
                4,
                &delta,
                &[u8::try_from(base.len() - 1).unwrap()],
            ),
        ],
    );
    assert!(matches!(
        index(&pack, out.path()),
        Err(Error::BadEntry { .. })
    ));
    // A good OFS_DELTA ("copy the base's byte, insert y") resolves.
    let good = [1u8, 2, 0x90, 1, 1, b'y'];
    let pack = hand_pack(
        2,
        &[
            base.clone(),
            entry(
                EntryKind::OfsDelta,
                6,
                &good,
                &[u8::try_from(base.len()).unwrap()],
            ),
        ],
    );
    let indexed = index(&pack, out.path()).unwrap();
    assert_eq!((indexed.objects, indexed.deltas), (2, 1));
    // Two copies of one object are refused.
    let out = tempfile::tempdir().unwrap();
    let pack = hand_pack(2, &[base.clone(), base]);
    assert!(matches!(
        index(&pack, out.path()),
        Err(Error::Duplicate { .. })
    ));
    assert!(files_in(out.path()).is_empty());
}

/// A delta that copies the whole `base_len`-byte base and appends `byte`.
fn append_delta(base_len: u8, byte: u8) -> Vec<u8> {
    vec![base_len, base_len + 1, 0x90, base_len, 0x01, byte]
}

#[test]
fn a_long_linear_chain_holds_one_base_and_a_branching_tree_is_bounded() {
    let blob = EntryKind::Base(gix_object::Kind::Blob);
    // x, then 60 deltas each on the previous entry: one linear chain.
    let mut entries = vec![entry(blob, 1, b"x", b"")];
    let mut last_len = entries[0].len();
    for i in 1..=60u8 {
        let delta = append_delta(i, b'a' + i % 26);
        let e = entry(
            EntryKind::OfsDelta,
            6,
            &delta,
            &[u8::try_from(last_len).unwrap()],
        );
        last_len = e.len();
        entries.push(e);
    }
    let pack = hand_pack(61, &entries);
    let out = tempfile::tempdir().unwrap();
    let one_base = Limits {
        max_chain_len: 1,
        ..Limits::default()
    };
    let indexed = index_pack(&real(), &pack[..], out.path(), &one_base, false).unwrap();
    assert_eq!((indexed.objects, indexed.deltas), (61, 60));

    // x with two deltas, the first with a delta of its own: x must be held while the first
    // delta's subtree is resolved.
    let base = entry(blob, 1, b"x", b"");
    let first = entry(
        EntryKind::OfsDelta,
        6,
        &append_delta(1, b'a'),
        &[u8::try_from(base.len()).unwrap()],
    );
    let second = entry(
        EntryKind::OfsDelta,
        6,
        &append_delta(1, b'b'),
        &[u8::try_from(base.len() + first.len()).unwrap()],
    );
    let third = entry(
        EntryKind::OfsDelta,
        6,
        &append_delta(2, b'c'),
        &[u8::try_from(first.len() + second.len()).unwrap()],
    );
    let pack = hand_pack(4, &[base, first, second, third]);
    let out = tempfile::tempdir().unwrap();
    let indexed = index_pack(&real(), &pack[..], out.path(), &Limits::default(), false).unwrap();
    assert_eq!(indexed.deltas, 3);
    let out = tempfile::tempdir().unwrap();
    let tiny = Limits {
        max_resolve_memory: 2,
        ..Limits::default()
    };
    assert!(matches!(
        index_pack(&real(), &pack[..], out.path(), &tiny, false),
        Err(Error::ChainTooLong { .. })
    ));
    assert!(files_in(out.path()).is_empty());
}
