//! The git-made fixtures of the pack reader tests: a work-tree repository with a history
//! that gives git deltas to find, the oracle read through `git cat-file --batch`, and a
//! scratch copy of a pack to break.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use gitmq::{
    git::odb::pack::{
        read::{self, DeltaBaseCache, Options, PackFile},
        set::PackSet,
    },
    ObjectId,
};
use gix_object::Kind;

use crate::util::{git, Rng};

/// A git repository with a work tree, in a temporary directory.
pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) work: PathBuf,
}

impl Fixture {
    pub(super) fn new() -> Self {
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

    pub(super) fn git(&self, args: &[&str]) -> Vec<u8> {
        git(args, Some(&self.work))
    }

    pub(super) fn pack_dir(&self) -> PathBuf {
        self.work.join(".git/objects/pack")
    }

    pub(super) fn head(&self) -> ObjectId {
        let hex = self.git(&["rev-parse", "HEAD"]);
        ObjectId::from_hex(hex.trim_ascii()).expect("hex id")
    }

    pub(super) fn commit_empty(&self, message: &str) -> ObjectId {
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    pub(super) fn write(&self, name: &str, content: &[u8]) {
        let path = self.work.join(name);
        fs::create_dir_all(path.parent().expect("inside the work tree")).expect("mkdir");
        fs::write(path, content).expect("write");
    }

    pub(super) fn commit_all(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    /// Every object, as `git cat-file --batch-all-objects --batch` shows it.
    pub(super) fn objects(&self) -> Vec<(ObjectId, Kind, Vec<u8>)> {
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

    pub(super) fn loose_count(&self) -> usize {
        let out = String::from_utf8(self.git(&["count-objects", "-v"])).unwrap();
        let line = out.lines().find(|l| l.starts_with("count: ")).unwrap();
        line["count: ".len()..].parse().unwrap()
    }

    pub(super) fn packs(&self) -> Vec<PathBuf> {
        let mut packs: Vec<PathBuf> = fs::read_dir(self.pack_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "pack"))
            .collect();
        packs.sort();
        packs
    }

    /// The longest delta chain `git verify-pack -v` reports over all packs.
    pub(super) fn longest_chain(&self) -> usize {
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
    pub(super) fn entries(&self, pack: &Path) -> Vec<(ObjectId, Kind, u64, u64, bool)> {
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
pub(super) fn history(fx: &Fixture, versions: usize) {
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
    let mut big: Vec<u8> = (0..300_000).map(|_| rng.next_u64() as u8).collect();
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
pub(super) fn assert_reads_like_git(
    fx: &Fixture,
    what: &str,
    options: Options,
    cache_bytes: usize,
) {
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
pub(super) fn count_entries_of_type(pack: &Path, bits: u8) -> usize {
    let bytes = fs::read(pack).unwrap();
    let file = PackFile::open(pack).unwrap();
    file.index()
        .iter()
        .filter(|(_, offset)| (bytes[*offset as usize] >> 4) & 7 == bits)
        .count()
}

/// A copy of the fixture's single pack and index in a scratch directory.
pub(super) struct Scratch {
    _dir: tempfile::TempDir,
    pub(super) pack: PathBuf,
    pub(super) idx: PathBuf,
    pub(super) pack_bytes: Vec<u8>,
    pub(super) idx_bytes: Vec<u8>,
}

impl Scratch {
    pub(super) fn of(pack: &Path) -> Self {
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

    pub(super) fn with_pack(&self, bytes: &[u8]) -> Result<PackFile, read::Error> {
        fs::write(&self.pack, bytes).unwrap();
        fs::write(&self.idx, &self.idx_bytes).unwrap();
        PackFile::open(&self.pack)
    }

    pub(super) fn with_idx(&self, bytes: &[u8]) -> Result<PackFile, read::Error> {
        fs::write(&self.pack, &self.pack_bytes).unwrap();
        fs::write(&self.idx, bytes).unwrap();
        PackFile::open(&self.pack)
    }
}
