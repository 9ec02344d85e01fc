//! gitmq's pack reader against gix-pack on the same packs (issue 11, item 5): for each
//! read-side part both implement, the same work in the same process. Phases:
//! - idx lookup: every id of a 20,000-message pack, in a shuffled order
//!   (`PackIndex::lookup` / `gix_pack::index::File::lookup`);
//! - entry decode: every whole (non-delta) object, by offset, no cache: the stored entries
//!   gitmq writes, and the deflated ones `git repack` writes;
//! - delta resolution: every delta of the repacked pack (`git repack -adf --depth=50
//!   --window=250`), by offset, each chain from its base (no cache on either side).
//!
//! With `GITMQ_BENCH_PACK=<path of a .pack>` (e.g. the pack `git fast-import` writes for
//! `gitmq bench consume --keep`), the lookups and the first 100,000 entries are measured on
//! that pack too: an index too large for the CPU caches, deflated whole objects.
//!
//! gix-pack reads with `with_alloc_limit_bytes` set, as gitmq's rule for it says.
//! The outcome per part is in ARCHITECTURE.md ("gix-pack where it wins").

// Object sizes and shuffled positions of an in-memory bench fit a usize.
#![allow(clippy::cast_possible_truncation)]

use std::{hint::black_box, path::PathBuf, process::Command, time::Duration};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gitmq::{
    git::odb::pack::read::{DeltaBaseCache, PackFile},
    produce::{Producer, ProducerConfig},
    Durability, Repository, TopicName,
};
use gix_pack::data::decode::entry::ResolvedBase;

const MESSAGES: usize = 20_000;
const ALLOC_LIMIT: usize = 1 << 30;

fn payload(i: usize) -> Vec<u8> {
    format!(r#"{{"id":{i},"type":"order.created","customer":"c-{i:06}","items":[{{"sku":"SKU-{}","qty":{}}}],"total":{}.{:02},"ts":"2026-11-27T12:00:00Z"}}"#, i % 9973, i % 7 + 1, i % 1000, i % 100).into_bytes()
}

/// A topic of [`MESSAGES`] in one gitmq-written pack, and a copy repacked by git.
fn packs() -> (tempfile::TempDir, PathBuf, Option<PathBuf>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let git_dir = dir.path().join("q.git");
    let repo = Repository::init(&git_dir).expect("init");
    let config = ProducerConfig {
        durability: Durability::None,
        max_batch_messages: MESSAGES,
        linger: Duration::from_secs(3600),
        ..ProducerConfig::default()
    };
    let mut producer = Producer::with_config(repo, TopicName::new("t").expect("topic"), config);
    for i in 0..MESSAGES {
        producer.append(&payload(i)).expect("append");
    }
    producer.flush().expect("flush");
    drop(producer);
    let ours = only_pack(&git_dir);
    let copy = dir.path().join("repacked.git");
    let repacked = Command::new("cp")
        .arg("-r")
        .arg(&git_dir)
        .arg(&copy)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("git")
            .arg("--git-dir")
            .arg(&copy)
            .args(["repack", "-adfq", "--depth=50", "--window=250"])
            .status()
            .is_ok_and(|s| s.success());
    let theirs = repacked.then(|| only_pack(&copy));
    (dir, ours, theirs)
}

fn only_pack(git_dir: &std::path::Path) -> PathBuf {
    let mut packs: Vec<PathBuf> = std::fs::read_dir(git_dir.join("objects/pack"))
        .expect("pack dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    assert_eq!(packs.len(), 1, "one pack");
    packs.pop().expect("one pack")
}

/// Both readers of one pack.
struct Readers {
    ours: PackFile,
    idx: gix_pack::index::File,
    data: gix_pack::data::File,
}

impl Readers {
    fn open(pack: &std::path::Path) -> Self {
        let kind = gix_hash::Kind::Sha1;
        Self {
            ours: PackFile::open(pack).expect("ours"),
            idx: gix_pack::index::File::at(pack.with_extension("idx"), kind).expect("gix idx"),
            data: gix_pack::data::File::at(pack, kind)
                .expect("gix pack")
                .with_alloc_limit_bytes(Some(ALLOC_LIMIT)),
        }
    }

    /// Offsets of the entries, in pack order, split into (whole objects, deltas).
    fn offsets(&self) -> (Vec<u64>, Vec<u64>) {
        let mut offsets: Vec<u64> = self.ours.index().iter().map(|(_, o)| o).collect();
        offsets.sort_unstable();
        offsets
            .into_iter()
            .partition(|&o| self.data.entry(o).expect("an entry").header.is_base())
    }

    fn gix_decode(&self, offset: u64, out: &mut Vec<u8>, inflate: &mut gix_zlib::Inflate) -> usize {
        let entry = self.data.entry(offset).expect("entry");
        let resolve = |id: &gix_hash::oid, _: &mut Vec<u8>| {
            Ok(self.idx.lookup(id).map(|i| {
                ResolvedBase::InPack(
                    self.data
                        .entry(self.idx.pack_offset_at_index(i))
                        .expect("base entry"),
                )
            }))
        };
        self.data
            .decode_entry(entry, out, inflate, &resolve, &mut gix_pack::cache::Never)
            .expect("decodes")
            .object_size as usize
    }
}

/// The pack named by `GITMQ_BENCH_PACK`, if any.
fn extra_pack() -> Option<PathBuf> {
    std::env::var_os("GITMQ_BENCH_PACK").map(PathBuf::from)
}

/// Entries of an extra pack decoded per iteration.
const EXTRA_ENTRIES: usize = 100_000;

fn idx_lookup(c: &mut Criterion) {
    let (_dir, ours, _) = packs();
    let mut packs = vec![("20k-message pack", ours)];
    packs.extend(extra_pack().map(|p| ("GITMQ_BENCH_PACK", p)));
    for (label, pack) in packs {
        lookups(c, label, &pack);
    }
}

fn lookups(c: &mut Criterion, label: &str, pack: &std::path::Path) {
    let readers = Readers::open(pack);
    let mut ids: Vec<gix_hash::ObjectId> = readers
        .ours
        .index()
        .iter()
        .map(|(id, _)| id.to_owned())
        .collect();
    // A fixed shuffle: lookups in no useful order.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..ids.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ids.swap(i, (state % (i as u64 + 1)) as usize);
    }
    for id in &ids {
        assert_eq!(
            readers
                .ours
                .index()
                .lookup(id)
                .map(|p| readers.ours.index().offset_at(p)),
            readers
                .idx
                .lookup(id)
                .map(|i| readers.idx.pack_offset_at_index(i)),
            "both find the same entry"
        );
    }
    let mut group = c.benchmark_group(format!("idx lookup, {label}"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(ids.len() as u64));
    group.bench_function("gitmq PackIndex::lookup", |b| {
        b.iter(|| {
            ids.iter()
                .filter_map(|id| readers.ours.index().lookup(black_box(id)))
                .count()
        });
    });
    group.bench_function("gix-pack index::File::lookup", |b| {
        b.iter(|| {
            ids.iter()
                .filter_map(|id| readers.idx.lookup(black_box(id)))
                .count()
        });
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let (_dir, ours, theirs) = packs();
    let mut layouts = vec![("stored (gitmq-written)", ours)];
    layouts.extend(theirs.map(|p| ("deflated (git repack)", p)));
    layouts.extend(extra_pack().map(|p| ("GITMQ_BENCH_PACK", p)));
    for (layout, pack) in layouts {
        let mut readers = Readers::open(&pack);
        let (mut whole, mut deltas) = readers.offsets();
        whole.truncate(EXTRA_ENTRIES);
        deltas.truncate(EXTRA_ENTRIES);
        let (mut out, mut inflate) = (Vec::new(), gix_zlib::Inflate::default());
        let mut none = DeltaBaseCache::new(0);
        for (name, offsets) in [("entry decode", &whole), ("delta resolution", &deltas)] {
            if offsets.is_empty() {
                continue;
            }
            // Same bytes from both.
            for &offset in offsets.iter().step_by(97) {
                let mut mine = Vec::new();
                let (_, body) = readers
                    .ours
                    .object_at(offset, &mut mine, &mut none)
                    .expect("ours");
                let body = body.to_vec();
                let size = readers.gix_decode(offset, &mut out, &mut inflate);
                assert_eq!(body, out[..size], "{layout} at {offset}");
            }
            let mut group = c.benchmark_group(format!("{name}, {layout}"));
            group.throughput(Throughput::Elements(offsets.len() as u64));
            group.sample_size(10);
            let mut scratch = Vec::new();
            group.bench_function("gitmq PackFile::object_at", |b| {
                b.iter(|| {
                    let mut bytes = 0;
                    for &offset in offsets {
                        let (_, body) = readers
                            .ours
                            .object_at(offset, &mut scratch, &mut none)
                            .expect("ours");
                        bytes += body.len();
                    }
                    bytes
                });
            });
            group.bench_function("gix-pack data::File::decode_entry", |b| {
                b.iter(|| {
                    let mut bytes = 0;
                    for &offset in offsets {
                        bytes += readers.gix_decode(offset, &mut out, &mut inflate);
                    }
                    bytes
                });
            });
            group.finish();
        }
    }
}

criterion_group!(benches, idx_lookup, decode);
criterion_main!(benches);
