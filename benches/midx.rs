//! Criterion benches of the write-side parts gix-pack also does (issue 11, item 5), each run
//! by gitmq and by gix-pack on the same input:
//! - multi-pack-index: write one MIDX over 8 and over 64 packs of 10,000 messages (the
//!   producer's layer, and a rewrite after a prune); then one lookup per object through it
//!   (gitmq's `midx::read::Layer`, against gix-pack's `multi_index::File`: gitmq's own reader,
//!   4 bytes per object in memory and two positioned reads per hit, took 118 ms against
//!   gix-pack's 23 ms and was replaced by gix-pack, so the two rows now differ only by the
//!   wrapper);
//! - index-pack of a received pack: a 10,000-message pack as gitmq writes it (stored
//!   entries), indexed into a fresh directory.

use std::{
    path::{Path, PathBuf},
    sync::atomic::AtomicBool,
    time::Duration,
};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gitmq::{
    git::odb::pack::{
        index_pack::{index_pack, Limits},
        midx::{
            read::Layer,
            write::{write_midx, Source},
        },
    },
    produce::{Producer, ProducerConfig},
    Durability, Repository, TopicName,
};

const PER_PACK: usize = 10_000;
/// gix-pack's allocation limit, as the project sets it on every gix-pack read.
const ALLOC_LIMIT: usize = 1 << 30;

/// A repository with `packs` packs of [`PER_PACK`] messages; its pack index paths.
fn packs(packs: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repository::init(dir.path().join("q.git")).expect("init");
    let config = ProducerConfig {
        durability: Durability::None,
        max_batch_messages: PER_PACK,
        linger: Duration::from_secs(3600),
        multi_pack_index: None,
        ..ProducerConfig::default()
    };
    let mut producer = Producer::with_config(repo.clone(), TopicName::new("t").unwrap(), config);
    let ids = producer
        .publish_batch((0..packs * PER_PACK).map(|i| {
            format!(
                r#"{{"id":{i},"type":"order.created","total":{}.{:02}}}"#,
                i % 1000,
                i % 100
            )
        }))
        .expect("publish");
    assert_eq!(ids.len(), packs * PER_PACK);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo.git_dir().join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), packs);
    (dir, paths)
}

fn ours(paths: &[PathBuf]) -> Vec<u8> {
    let sources: Vec<Source> = paths.iter().map(|p| Source::idx(p).unwrap()).collect();
    let mut out = Vec::with_capacity(paths.len() * PER_PACK * 30);
    write_midx(&sources, &mut out, Path::new("bench")).expect("midx");
    out
}

fn gix(paths: &[PathBuf]) -> Vec<u8> {
    let mut out = Vec::with_capacity(paths.len() * PER_PACK * 30);
    gix_pack::multi_index::write_from_index_paths(
        paths.to_vec(),
        &mut out,
        &mut gix_utils::progress::Discard,
        &AtomicBool::new(false),
        gix_pack::multi_index::write::Options {
            object_hash: gix_hash::Kind::Sha1,
        },
    )
    .expect("gix midx");
    out
}

fn midx_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("multi-pack-index write");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for count in [8, 64] {
        let (_dir, paths) = packs(count);
        // Same input, same output: both list each object once (the empty tree of every pack
        // included once), names sorted. Checked once, outside the loop.
        let (a, b) = (ours(&paths), gix(&paths));
        assert_eq!(
            a.len(),
            b.len(),
            "gitmq and gix-pack write MIDX files of the same size"
        );
        group.throughput(Throughput::Elements((count * PER_PACK) as u64));
        group.bench_with_input(BenchmarkId::new("gitmq", count), &paths, |b, p| {
            b.iter(|| ours(p));
        });
        group.bench_with_input(BenchmarkId::new("gix-pack", count), &paths, |b, p| {
            b.iter(|| gix(p));
        });
    }
    group.finish();
}

fn midx_lookup(c: &mut Criterion) {
    let (dir, paths) = packs(8);
    let file = dir.path().join("multi-pack-index");
    std::fs::write(&file, ours(&paths)).unwrap();
    let ids: Vec<gix_hash::ObjectId> = paths
        .iter()
        .flat_map(|p| {
            let data = std::fs::read(p).unwrap();
            gitmq::git::odb::pack::index::PackIndex::from_bytes(data)
                .unwrap()
                .iter()
                .map(|(id, _)| id.to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut group = c.benchmark_group("multi-pack-index lookup");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(ids.len() as u64));
    let layer = Layer::open(&file).unwrap();
    group.bench_function("gitmq (open + every id)", |b| {
        b.iter(|| {
            let layer = Layer::open(&file).unwrap();
            ids.iter()
                .filter(|id| layer.lookup(id).unwrap().is_some())
                .count()
        });
    });
    let gix = gix_pack::multi_index::File::at(&file, Some(ALLOC_LIMIT)).unwrap();
    assert_eq!(
        ids.iter()
            .filter(|id| layer.lookup(id).unwrap().is_some())
            .count(),
        ids.iter().filter(|id| gix.lookup(id).is_some()).count(),
        "both find every id"
    );
    group.bench_function("gix-pack (open + every id)", |b| {
        b.iter(|| {
            let gix = gix_pack::multi_index::File::at(&file, Some(ALLOC_LIMIT)).unwrap();
            ids.iter()
                .filter(|id| {
                    gix.lookup(id)
                        .and_then(|e| gix.pack_id_and_pack_offset_at_index(e).ok())
                        .is_some()
                })
                .count()
        });
    });
    group.finish();
}

fn index_pack_bench(c: &mut Criterion) {
    let (_dir, paths) = packs(1);
    let pack = std::fs::read(paths[0].with_extension("pack")).unwrap();
    let mut group = c.benchmark_group("index-pack of a received pack");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(PER_PACK as u64 + 1));
    let fs = gitmq::git::fs::real();
    group.bench_function("gitmq, 10,000 stored commits", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |out| {
                let indexed =
                    index_pack(&fs, &pack[..], out.path(), &Limits::default(), false).unwrap();
                assert_eq!(indexed.objects as usize, PER_PACK + 1);
                out
            },
            criterion::BatchSize::PerIteration,
        );
    });
    group.bench_function("gix-pack, 10,000 stored commits", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |out| {
                let outcome = gix_pack::Bundle::write_to_directory(
                    &mut &pack[..],
                    Some(out.path()),
                    &mut gix_utils::progress::Discard,
                    &AtomicBool::new(false),
                    None::<gix_object::find::Never>,
                    gix_hash::Kind::Sha1,
                    gix_pack::bundle::write::Options {
                        alloc_limit_bytes: Some(ALLOC_LIMIT),
                        ..Default::default()
                    },
                )
                .unwrap();
                assert_eq!(outcome.index.num_objects as usize, PER_PACK + 1);
                out
            },
            criterion::BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, midx_write, midx_lookup, index_pack_bench);
criterion_main!(benches);
