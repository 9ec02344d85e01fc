//! Reading packs that git wrote (gc, repack, deltas) and that gitmq wrote.
//!
//! The oracle is `git cat-file --batch`: every object git lists must come back from gitmq's
//! pack reader with the same kind and the same bytes. Broken packs are made by editing what
//! git wrote, or built by hand where git would refuse to write them.

#![allow(
    clippy::cast_possible_truncation,
    reason = "fixtures build small values on purpose"
)]

use std::{
    collections::HashMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use gitmq::{
    hash::{object_id, Hasher},
    odb::pack::{
        delta,
        format::{encode_entry_header, EntryKind, MAX_ENTRY_HEADER_LEN},
        read::{self, DeltaBaseCache, Options, PackFile, DEFAULT_CACHE_BYTES},
        set::{self, PackSet},
    },
    ObjectId,
};
use gix_object::Kind;

use crate::util::{git, Rng};

/// A git repository with a work tree, in a temporary directory.
struct Fixture {
    _dir: tempfile::TempDir,
    work: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let work = dir.path().join("w");
        git(
            &["init", "-q", "-b", "main", work.to_str().expect("utf-8")],
            None,
        );
        let fixture = Self { _dir: dir, work };
        fixture.git(&["config", "gc.auto", "0"]);
        fixture
    }

    fn git(&self, args: &[&str]) -> Vec<u8> {
        git(args, Some(&self.work))
    }

    fn pack_dir(&self) -> PathBuf {
        self.work.join(".git/objects/pack")
    }

    fn head(&self) -> ObjectId {
        let hex = self.git(&["rev-parse", "HEAD"]);
        ObjectId::from_hex(hex.trim_ascii()).expect("hex id")
    }

    fn commit_empty(&self, message: &str) -> ObjectId {
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    fn write(&self, name: &str, content: &[u8]) {
        let path = self.work.join(name);
        fs::create_dir_all(path.parent().expect("inside the work tree")).expect("mkdir");
        fs::write(path, content).expect("write");
    }

    fn commit_all(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    /// Every object, as `git cat-file --batch-all-objects --batch` shows it.
    fn objects(&self) -> Vec<(ObjectId, Kind, Vec<u8>)> {
        let out = self.git(&["cat-file", "--batch-all-objects", "--batch"]);
        let mut objects = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let eol = rest.iter().position(|b| *b == b'\n').expect("header line");
            let header = std::str::from_utf8(&rest[..eol]).expect("ascii header");
            let mut fields = header.split(' ');
            let id = ObjectId::from_hex(fields.next().unwrap().as_bytes()).unwrap();
            let kind = Kind::from_bytes(fields.next().unwrap().as_bytes()).unwrap();
            let size: usize = fields.next().unwrap().parse().unwrap();
            let body = rest[eol + 1..eol + 1 + size].to_vec();
            assert_eq!(
                rest[eol + 1 + size],
                b'\n',
                "cat-file ends each body with LF"
            );
            rest = &rest[eol + 2 + size..];
            objects.push((id, kind, body));
        }
        objects
    }

    fn loose_count(&self) -> usize {
        let out = String::from_utf8(self.git(&["count-objects", "-v"])).unwrap();
        let line = out.lines().find(|l| l.starts_with("count: ")).unwrap();
        line["count: ".len()..].parse().unwrap()
    }

    fn packs(&self) -> Vec<PathBuf> {
        let mut packs: Vec<PathBuf> = fs::read_dir(self.pack_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "pack"))
            .collect();
        packs.sort();
        packs
    }

    /// The longest delta chain `git verify-pack -v` reports over all packs.
    fn longest_chain(&self) -> usize {
        let mut longest = 0;
        for pack in self.packs() {
            let idx = pack.with_extension("idx");
            let out = self.git(&["verify-pack", "-v", idx.to_str().unwrap()]);
            for line in String::from_utf8(out).unwrap().lines() {
                if let Some(rest) = line.strip_prefix("chain length = ") {
                    let n: usize = rest.split(':').next().unwrap().parse().unwrap();
                    longest = longest.max(n);
                }
            }
        }
        longest
    }

    /// `(id, kind, offset, size in pack, is a delta)` of each entry, from `git verify-pack -v`.
    fn entries(&self, pack: &Path) -> Vec<(ObjectId, Kind, u64, u64, bool)> {
        let idx = pack.with_extension("idx");
        let out = self.git(&["verify-pack", "-v", idx.to_str().unwrap()]);
        String::from_utf8(out)
            .unwrap()
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let id = ObjectId::from_hex(fields.first()?.as_bytes()).ok()?;
                let kind = Kind::from_bytes(fields.get(1)?.as_bytes()).ok()?;
                let in_pack = fields.get(3)?.parse().ok()?;
                let offset = fields.get(4)?.parse().ok()?;
                Some((id, kind, offset, in_pack, fields.len() > 5))
            })
            .collect()
    }
}

/// Empty commits, a text file edited 40 times (so git finds long delta chains), smaller
/// files derived from it, a large incompressible file edited in place, and an annotated tag.
fn history(fx: &Fixture, versions: usize) {
    for i in 0..15 {
        fx.commit_empty(&format!("message {i}\n\npayload {i}"));
    }
    let mut lines: Vec<String> = (0..300)
        .map(|n| {
            format!(
                "line {n}: the quick brown fox jumps over the lazy dog {}",
                n * 7919 % 1000
            )
        })
        .collect();
    let mut rng = Rng::new(42);
    let mut big: Vec<u8> = (0..300_000).map(|_| rng.next() as u8).collect();
    for v in 0..versions {
        lines[(v * 7) % 300] = format!("line edited in version {v}");
        lines.push(format!("appended in version {v}"));
        fx.write("shared.txt", lines.join("\n").as_bytes());
        fx.write(
            &format!("dir{}/notes.txt", v % 3),
            format!("notes {v}\n{}", lines[..50 + v].join("\n")).as_bytes(),
        );
        if v % 10 == 0 {
            for b in &mut big[v * 1000..v * 1000 + 100] {
                *b = b.wrapping_add(1);
            }
            fx.write("big.bin", &big);
        }
        fx.commit_all(&format!("version {v}"));
    }
    fx.git(&["tag", "-a", "v1", "-m", "an annotated tag"]);
}

/// Read every object git lists through a fresh [`PackSet`] and compare; then read every
/// pack front to back in pack order and compare again.
fn assert_reads_like_git(fx: &Fixture, what: &str, options: Options, cache_bytes: usize) {
    let objects = fx.objects();
    assert!(objects.len() > 100, "{what}: the fixture has objects");
    assert_eq!(fx.loose_count(), 0, "{what}: every object is packed");
    let mut set = PackSet::open_with(fx.pack_dir(), options).unwrap();
    let mut cache = DeltaBaseCache::new(cache_bytes);
    let mut out = Vec::new();
    for (id, kind, body) in &objects {
        let got = set
            .read(id, &mut out, &mut cache)
            .unwrap_or_else(|err| panic!("{what}: {id}: {err:?}"));
        assert_eq!(got, Some(*kind), "{what}: {id} has git's kind");
        assert!(
            out == *body,
            "{what}: {id} ({kind}, {} bytes) reads back byte for byte, got {} bytes",
            body.len(),
            out.len()
        );
    }

    let by_id: HashMap<&ObjectId, (Kind, &Vec<u8>)> = objects
        .iter()
        .map(|(id, kind, body)| (id, (*kind, body)))
        .collect();
    let mut seen = 0;
    for pack in set.packs().unwrap() {
        let order = pack.index().pack_order();
        let offsets: Vec<u64> = order.iter().map(|p| pack.index().offset_at(*p)).collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "{what}: pack order"
        );
        for position in order {
            let kind = pack.read_nth(position, &mut out, &mut cache).unwrap();
            let id = pack.index().id_at(position).to_owned();
            let (want_kind, want_body) = by_id[&id];
            assert_eq!(kind, want_kind, "{what}: {id} in pack order");
            assert!(
                out == *want_body,
                "{what}: {id} in pack order, byte for byte"
            );
            seen += 1;
        }
    }
    assert!(
        seen >= objects.len(),
        "{what}: pack order visits every object"
    );
}

/// How many entries of `pack` have the entry type `bits` (6 OFS_DELTA, 7 REF_DELTA).
fn count_entries_of_type(pack: &Path, bits: u8) -> usize {
    let bytes = fs::read(pack).unwrap();
    let file = PackFile::open(pack).unwrap();
    file.index()
        .iter()
        .filter(|(_, offset)| (bytes[*offset as usize] >> 4) & 7 == bits)
        .count()
}

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

/// A copy of the fixture's single pack and index in a scratch directory.
struct Scratch {
    _dir: tempfile::TempDir,
    pack: PathBuf,
    idx: PathBuf,
    pack_bytes: Vec<u8>,
    idx_bytes: Vec<u8>,
}

impl Scratch {
    fn of(pack: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join(pack.file_name().unwrap());
        let idx = copy.with_extension("idx");
        let pack_bytes = fs::read(pack).unwrap();
        let idx_bytes = fs::read(pack.with_extension("idx")).unwrap();
        fs::write(&copy, &pack_bytes).unwrap();
        fs::write(&idx, &idx_bytes).unwrap();
        Self {
            _dir: dir,
            pack: copy,
            idx,
            pack_bytes,
            idx_bytes,
        }
    }

    fn with_pack(&self, bytes: &[u8]) -> Result<PackFile, read::Error> {
        fs::write(&self.pack, bytes).unwrap();
        fs::write(&self.idx, &self.idx_bytes).unwrap();
        PackFile::open(&self.pack)
    }

    fn with_idx(&self, bytes: &[u8]) -> Result<PackFile, read::Error> {
        fs::write(&self.pack, &self.pack_bytes).unwrap();
        fs::write(&self.idx, bytes).unwrap();
        PackFile::open(&self.pack)
    }
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
    // A pack with another object count than its index.
    let mut bytes = scratch.pack_bytes.clone();
    bytes[11] ^= 1;
    let err = scratch.with_pack(&bytes).unwrap_err();
    assert!(matches!(err, read::Error::BadHeader { .. }), "{err}");

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
                source: gitmq::odb::pack::index::Error::TooLong { .. },
                ..
            }
        ),
        "an index longer than its pack could need is not read: {err}"
    );
    let mut garbled = scratch.idx_bytes.clone();
    garbled[scratch.idx_bytes.len() / 2] ^= 0xff;
    let err = scratch.with_idx(&garbled).unwrap_err();
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

// --- Hand-built packs, for what git refuses to write. ---

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// git's OFS_DELTA distance encoding (the inverse of `decode_ofs_delta_distance`).
fn ofs_distance(mut distance: u64) -> Vec<u8> {
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
fn make_delta(base_len: usize, result: &[u8], copy: usize, declared: Option<u64>) -> Vec<u8> {
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

enum Raw {
    Whole(Kind, Vec<u8>),
    /// A delta against the entry `n` entries earlier.
    Ofs(usize, Vec<u8>),
    /// A delta with this raw distance.
    OfsDistance(u64, Vec<u8>),
    Ref(ObjectId, Vec<u8>),
    /// A header declaring `size`, then `zlib` as it is.
    Lying(u64, Vec<u8>),
}

fn header(kind: EntryKind, size: u64) -> Vec<u8> {
    let mut buf = [0u8; MAX_ENTRY_HEADER_LEN];
    let len = encode_entry_header(&mut buf, kind, size);
    buf[..len].to_vec()
}

/// Write `pack-<checksum>.pack` and its v2 `.idx` into `dir`; the pack's path.
fn build_pack(dir: &Path, entries: &[(ObjectId, Raw)]) -> PathBuf {
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

fn fake_id(byte: u8) -> ObjectId {
    ObjectId::from_bytes_or_panic(&[byte; 20])
}

/// A base blob and a target built from it by a delta: bytes and ids.
struct Pair {
    base: Vec<u8>,
    target: Vec<u8>,
    base_id: ObjectId,
    target_id: ObjectId,
    delta: Vec<u8>,
}

fn pair() -> Pair {
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

/// A pack holding `pair`'s base and target, then one broken entry per case, under ids
/// `fake_id(0x21..)`.
fn broken_pack(dir: &Path, pair: &Pair) -> PathBuf {
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
