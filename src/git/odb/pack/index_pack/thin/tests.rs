//! Tests of thin-pack completion against `git index-pack --fix-thin`: a thin pack that git's
//! own `pack-objects --thin` made of gitmq's messages, and hand-made thin packs (a base larger
//! than zlib's 4 KiB output buffer, deltas sharing a base, a delta on a delta), completed byte
//! for byte as git completes them with `core.compression=0`; missing and corrupt bases and
//! limits are errors that leave nothing behind.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use gix_hash::ObjectId;

use super::super::{
    index_pack,
    tests::{entry, files_in, git, hand_pack},
};
use super::*;
use crate::{git::odb::pack::format::EntryKind, Repository, TopicName};

/// A message whose JSON payload has `fields` fields: older messages have more, so git stores
/// newer ones as deltas against older ones (it deltas from larger objects to smaller).
fn payload(seq: usize, fields: usize) -> Vec<u8> {
    let mut text = format!("{{\"seq\":{seq}");
    for k in 0..fields {
        write!(text, ",\"field{k}\":\"value {k} of the order, unchanged\"").unwrap();
    }
    text.push('}');
    text.into_bytes()
}

/// Copy the directory `from` to `to` (a repository, for git to complete the same pack in).
fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a {from:?} {to:?}");
}

/// The pack git completes from `thin` in the repository at `git_dir`, with extra `-c`
/// settings: (.pack bytes, .idx bytes, checksum).
fn git_fix_thin(git_dir: &Path, config: &[&str], thin: &[u8]) -> (Vec<u8>, Vec<u8>, String) {
    let mut args = Vec::new();
    for setting in config {
        args.extend(["-c", setting]);
    }
    args.extend(["index-pack", "--fix-thin", "--stdin"]);
    let out = git(git_dir, &args, Some(thin));
    let line = String::from_utf8(out).unwrap();
    let checksum = line.trim().strip_prefix("pack\t").unwrap().to_owned();
    let pack_dir = git_dir.join("objects/pack");
    (
        std::fs::read(pack_dir.join(format!("pack-{checksum}.pack"))).unwrap(),
        std::fs::read(pack_dir.join(format!("pack-{checksum}.idx"))).unwrap(),
        checksum,
    )
}

/// (object id, offset) of every object of an index, in id order, by `git show-index`.
fn idx_entries(dir: &Path, idx: &[u8]) -> Vec<(String, u64)> {
    let out = git(dir, &["show-index", "--object-format=sha1"], Some(idx));
    let mut entries: Vec<(String, u64)> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let offset = parts.next().unwrap().parse().unwrap();
            (parts.next().unwrap().to_owned(), offset)
        })
        .collect();
    entries.sort();
    entries
}

struct Fixture {
    _dir: tempfile::TempDir,
    /// A gitmq repository holding the first 40 messages, in packs gitmq wrote.
    local: PathBuf,
    /// What `git pack-objects --thin` sends for the next 20 (REF_DELTAs against the 40).
    thin: Vec<u8>,
    new_head: ObjectId,
}

/// 40 messages published by gitmq into `local.git`; a git server that fetched them, got 20
/// more (published there by gitmq) and was repacked by git with deltas and bitmaps; then the
/// pack git's upload-pack would send a client that has the 40: `pack-objects --revs --thin`
/// with `^old`. With bitmaps, pack-objects reuses the stored deltas of new commits against
/// old ones the client has: REF_DELTAs whose bases are not in the pack.
fn git_thin_pack_of_gitmq_messages() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local.git");
    let server = dir.path().join("server.git");
    let topic = TopicName::new("orders").unwrap();
    let repo = Repository::init(&local).unwrap();
    let old: Vec<Vec<u8>> = (0..40).map(|i| payload(i, 60 - i)).collect();
    repo.producer(&topic)
        .publish_batch(old.iter().map(Vec::as_slice))
        .unwrap();
    let old_head = repo.head(&topic).unwrap().unwrap();

    git(dir.path(), &["init", "-q", "--bare", "server.git"], None);
    git(
        &server,
        &[
            "fetch",
            "-q",
            local.to_str().unwrap(),
            "refs/heads/orders:refs/heads/orders",
        ],
        None,
    );
    let new: Vec<Vec<u8>> = (40..60).map(|i| payload(i, 60 - i)).collect();
    let server_repo = Repository::open(&server).unwrap();
    server_repo
        .producer(&topic)
        .publish_batch(new.iter().map(Vec::as_slice))
        .unwrap();
    let new_head = server_repo.head(&topic).unwrap().unwrap();
    git(
        &server,
        &["repack", "-adf", "-b", "-q", "--window=50", "--depth=50"],
        None,
    );
    let revs = format!("{new_head}\n^{old_head}\n");
    let thin = git(
        &server,
        &[
            "pack-objects",
            "--revs",
            "--thin",
            "--stdout",
            "-q",
            "--delta-base-offset",
        ],
        Some(revs.as_bytes()),
    );
    Fixture {
        _dir: dir,
        local,
        thin,
        new_head,
    }
}

#[test]
fn a_thin_pack_from_git_completes_byte_for_byte_like_git_index_pack_fix_thin() {
    let fixture = git_thin_pack_of_gitmq_messages();
    let scratch = tempfile::tempdir().unwrap();
    // It really is thin: REF_DELTAs whose bases are outside the pack.
    assert!(
        matches!(
            index_pack(
                &crate::git::fs::real(),
                &fixture.thin[..],
                scratch.path(),
                &Limits::default(),
                false
            ),
            Err(Error::BaseNotInPack { .. })
        ),
        "git's pack is thin"
    );
    let git_stored = scratch.path().join("git-stored.git");
    let git_default = scratch.path().join("git-default.git");
    copy_dir(&fixture.local, &git_stored);
    copy_dir(&fixture.local, &git_default);

    let repo = Repository::open(&fixture.local).unwrap();
    let pack_dir = fixture.local.join("objects/pack");
    let before = files_in(&pack_dir);
    let indexed =
        index_thin_pack(&fixture.thin[..], &mut repo.odb(), &Limits::default(), true).unwrap();
    assert!(indexed.local_bases >= 1, "bases appended: {indexed:?}");
    assert!(indexed.deltas >= 1);
    assert_eq!(indexed.objects, 20 + indexed.local_bases);
    assert_eq!(
        files_in(&pack_dir).len(),
        before.len() + 2,
        "one pack, one idx"
    );
    let written = indexed.written.clone().unwrap();
    let (pack, idx) = (
        std::fs::read(&written.pack_path).unwrap(),
        std::fs::read(&written.index_path).unwrap(),
    );

    // git with core.compression=0 writes the appended bases as stored blocks, as gitmq does:
    // the same bytes, so the same name.
    let (git_pack, git_idx, git_checksum) =
        git_fix_thin(&git_stored, &["core.compression=0"], &fixture.thin);
    assert_eq!(git_checksum, indexed.checksum.to_string(), "same pack name");
    assert!(
        pack == git_pack,
        "the completed .pack is byte for byte git's"
    );
    assert!(idx == git_idx, "the .idx is byte for byte git's");

    // git's default (zlib level 1, C zlib) compresses the appended bases into other bytes;
    // everything else agrees: header count, the received entries byte for byte, the objects
    // and their offsets (the appended ones start where the trailer was).
    let (default_pack, default_idx, _) = git_fix_thin(&git_default, &[], &fixture.thin);
    let received = fixture.thin.len() - ID_LEN;
    assert_eq!(default_pack[..12], pack[..12], "same header and count");
    assert_eq!(default_pack[12..received], pack[12..received]);
    let (ours, theirs) = (
        idx_entries(scratch.path(), &idx),
        idx_entries(scratch.path(), &default_idx),
    );
    let received = received as u64;
    for ((id, offset), (git_id, git_offset)) in ours.iter().zip(&theirs) {
        assert_eq!(id, git_id, "the same objects");
        if *offset < received || *git_offset < received {
            assert_eq!(offset, git_offset, "received entry {id} at the same offset");
        }
    }
    assert_eq!(ours.len(), theirs.len());
    let appended = |entries: &[(String, u64)]| {
        let mut appended: Vec<(u64, String)> = entries
            .iter()
            .filter(|(_, offset)| *offset >= received)
            .map(|(id, offset)| (*offset, id.clone()))
            .collect();
        appended.sort();
        appended
    };
    let (ours, theirs) = (appended(&ours), appended(&theirs));
    assert_eq!(
        ours.iter().map(|(_, id)| id).collect::<Vec<_>>(),
        theirs.iter().map(|(_, id)| id).collect::<Vec<_>>(),
        "the same bases appended, in the same order"
    );
    assert_eq!(ours.first().map(|(offset, _)| *offset), Some(received));

    git(
        &fixture.local,
        &["verify-pack", written.index_path.to_str().unwrap()],
        None,
    );
    git(
        &fixture.local,
        &[
            "update-ref",
            "refs/heads/orders",
            &fixture.new_head.to_string(),
        ],
        None,
    );
    git(&fixture.local, &["fsck", "--strict", "--no-dangling"], None);
    let count = git(&fixture.local, &["rev-list", "--count", "orders"], None);
    assert_eq!(String::from_utf8(count).unwrap().trim(), "60");
}

/// A delta that copies all `base_len` bytes of its base and inserts `byte`.
fn copy_all_and_insert(base_len: usize, byte: u8) -> Vec<u8> {
    let mut delta = Vec::new();
    for size in [base_len, base_len + 1] {
        let mut size = size;
        loop {
            let low = u8::try_from(size & 0x7f).unwrap();
            size >>= 7;
            delta.push(if size == 0 { low } else { low | 0x80 });
            if size == 0 {
                break;
            }
        }
    }
    // Copy: offset 0 (no offset bytes), size in three bytes.
    let len = u32::try_from(base_len).unwrap().to_be_bytes();
    delta.extend_from_slice(&[0x80 | 0x10 | 0x20 | 0x40, len[3], len[2], len[1]]);
    delta.extend_from_slice(&[1, byte]);
    delta
}

/// A thin pack of three REF_DELTAs: two on `base` (absent), one on the first's result.
fn hand_thin_pack(base: &[u8]) -> (Vec<u8>, ObjectId) {
    let base_id = crate::git::hash::object_id(gix_object::Kind::Blob, base);
    let first = copy_all_and_insert(base.len(), b'a');
    let second = copy_all_and_insert(base.len(), b'b');
    let mut first_result = base.to_vec();
    first_result.push(b'a');
    let first_id = crate::git::hash::object_id(gix_object::Kind::Blob, &first_result);
    let third = copy_all_and_insert(base.len() + 1, b'c');
    let pack = hand_pack(
        3,
        &[
            entry(
                EntryKind::RefDelta,
                first.len() as u64,
                &first,
                base_id.as_bytes(),
            ),
            entry(
                EntryKind::RefDelta,
                second.len() as u64,
                &second,
                base_id.as_bytes(),
            ),
            entry(
                EntryKind::RefDelta,
                third.len() as u64,
                &third,
                first_id.as_bytes(),
            ),
        ],
    );
    (pack, base_id)
}

fn repo_with_blob(dir: &Path, blob: &[u8]) -> Repository {
    let repo = Repository::init(dir).unwrap();
    git(dir, &["hash-object", "-w", "--stdin"], Some(blob));
    repo
}

#[test]
fn shared_bases_chains_and_a_base_larger_than_zlibs_buffer_complete_like_git() {
    // 100 kB spans many of zlib's 4 KiB output buffers: the stored blocks must split as git's.
    for size in [1usize, 4089, 4090, 100_000] {
        let base: Vec<u8> = (0..size).map(|i| b"order json "[i % 11]).collect();
        let (thin, base_id) = hand_thin_pack(&base);
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("local.git");
        let repo = repo_with_blob(&local, &base);
        let git_copy = dir.path().join("git.git");
        copy_dir(&local, &git_copy);

        let indexed =
            index_thin_pack(&thin[..], &mut repo.odb(), &Limits::default(), false).unwrap();
        assert_eq!(
            (indexed.objects, indexed.deltas, indexed.local_bases),
            (4, 3, 1),
            "one base appended for three deltas (size {size})"
        );
        let written = indexed.written.unwrap();
        let (git_pack, git_idx, _) = git_fix_thin(&git_copy, &["core.compression=0"], &thin);
        assert!(
            std::fs::read(&written.pack_path).unwrap() == git_pack,
            "pack bytes, base of {size} bytes"
        );
        assert!(
            std::fs::read(&written.index_path).unwrap() == git_idx,
            "idx bytes, base of {size} bytes"
        );
        let ids = idx_entries(dir.path(), &git_idx);
        let base_hex = base_id.to_string();
        assert!(
            ids.iter().any(|(id, _)| *id == base_hex),
            "the base is indexed"
        );
    }
}

#[test]
fn a_base_missing_locally_is_a_clear_error_that_leaves_nothing_behind() {
    let (thin, base_id) = hand_thin_pack(b"the base");
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path().join("q.git")).unwrap();
    let pack_dir = repo.git_dir().join("objects/pack");
    let before = files_in(&pack_dir);
    let err = index_thin_pack(&thin[..], &mut repo.odb(), &Limits::default(), true).unwrap_err();
    match &err {
        Error::MissingBase { offset, base } => {
            assert_eq!((*offset, *base), (12, base_id), "the first delta names it");
        }
        other => panic!("expected MissingBase, got {other}"),
    }
    assert!(err
        .to_string()
        .contains("neither in the pack nor in the local repository"));
    assert!(!err.is_spurious(), "fetching again gives the same pack");
    assert_eq!(files_in(&pack_dir), before, "nothing left in objects/pack");
}

#[test]
fn limits_hold_for_the_completed_pack_and_a_corrupt_local_base_is_refused() {
    let base = b"the base".to_vec();
    let (thin, base_id) = hand_thin_pack(&base);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("q.git");
    let repo = repo_with_blob(&local, &base);
    let pack_dir = local.join("objects/pack");
    let before = files_in(&pack_dir);
    let three = Limits {
        max_objects: 3,
        ..Limits::default()
    };
    assert!(matches!(
        index_thin_pack(&thin[..], &mut repo.odb(), &three, false),
        Err(Error::TooManyObjects { count: 4, limit: 3 })
    ));
    let short = Limits {
        max_pack_size: thin.len() as u64,
        ..Limits::default()
    };
    assert!(matches!(
        index_thin_pack(&thin[..], &mut repo.odb(), &short, false),
        Err(Error::PackTooLarge { .. })
    ));
    let small = Limits {
        max_object_size: 7,
        ..Limits::default()
    };
    assert!(matches!(
        index_thin_pack(&thin[..], &mut repo.odb(), &small, false),
        Err(Error::ObjectTooLarge { size: 8, .. })
    ));
    assert_eq!(files_in(&pack_dir), before);

    // Another object's file under the base's name: read and refused, never appended.
    let loose = repo.odb().loose().path_of(&base_id);
    let other = git(&local, &["hash-object", "-w", "--stdin"], Some(b"another"));
    let other = ObjectId::from_hex(String::from_utf8(other).unwrap().trim().as_bytes()).unwrap();
    std::fs::remove_file(&loose).unwrap();
    std::fs::copy(repo.odb().loose().path_of(&other), &loose).unwrap();
    let err = index_thin_pack(&thin[..], &mut repo.odb(), &Limits::default(), false).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LocalBase { base, .. } | Error::CorruptLocalBase { base, .. } if base == base_id
        ),
        "{err}"
    );
    assert_eq!(files_in(&pack_dir), before);
}

#[test]
fn a_pack_that_is_not_thin_is_indexed_as_index_pack_does() {
    let dir = tempfile::tempdir().unwrap();
    let blob = EntryKind::Base(gix_object::Kind::Blob);
    let pack = hand_pack(1, &[entry(blob, 1, b"x", b"")]);
    let repo = Repository::init(dir.path().join("q.git")).unwrap();
    let thin = index_thin_pack(&pack[..], &mut repo.odb(), &Limits::default(), false).unwrap();
    let other = tempfile::tempdir().unwrap();
    let plain = index_pack(
        &crate::git::fs::real(),
        &pack[..],
        other.path(),
        &Limits::default(),
        false,
    )
    .unwrap();
    assert_eq!(
        (thin.checksum, thin.bytes, thin.local_bases),
        (plain.checksum, plain.bytes, 0)
    );
    assert_eq!(
        std::fs::read(thin.written.unwrap().pack_path).unwrap(),
        pack,
        "the received bytes, untouched"
    );
}

/// Found by the `thin_pack` fuzz target: a REF_DELTA whose result is its own base (here the
/// empty blob, from an empty delta) made the resolve walk find the delta as its own child and
/// loop forever, in `index_pack` too. It is now a duplicate object, refused.
#[test]
fn a_delta_whose_result_is_its_own_base_is_a_duplicate_not_an_endless_walk() {
    let empty = crate::git::hash::object_id(gix_object::Kind::Blob, b"");
    let itself = entry(EntryKind::RefDelta, 2, &[0, 0], empty.as_bytes());
    let blob = EntryKind::Base(gix_object::Kind::Blob);
    let dir = tempfile::tempdir().unwrap();
    let in_pack = hand_pack(2, &[entry(blob, 0, b"", b""), itself.clone()]);
    assert!(matches!(
        index_pack(&crate::git::fs::real(), &in_pack[..], dir.path(), &Limits::default(), false),
        Err(Error::Duplicate { id }) if id == empty
    ));
    let thin = hand_pack(1, &[itself]);
    let local = dir.path().join("q.git");
    let repo = repo_with_blob(&local, b"");
    let pack_dir = local.join("objects/pack");
    assert!(matches!(
        index_thin_pack(&thin[..], &mut repo.odb(), &Limits::default(), false),
        Err(Error::Duplicate { id }) if id == empty
    ));
    assert!(files_in(&pack_dir).is_empty());
    assert!(files_in(dir.path()).iter().all(|name| name == "q.git"));
}
