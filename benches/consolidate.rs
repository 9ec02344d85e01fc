//! Criterion bench of pack consolidation. Phases inside one run: read the small packs' indexes,
//! merge their sorted ids (duplicates out), copy the raw entries (type and CRC-32 checked) while
//! hashing the new pack, write its index, remove the old packs. Each iteration merges 32 packs
//! of 1,000 messages written by the producer.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gitmq::{
    git::odb::pack::consolidate::{consolidate, Policy},
    produce::{Producer, ProducerConfig},
    Durability, Repository, TopicName,
};

const PACKS: usize = 32;
const PER_PACK: usize = 1000;

fn small_packs() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repository::init(dir.path().join("q.git")).expect("init");
    let config = ProducerConfig {
        durability: Durability::None,
        max_batch_messages: PER_PACK,
        linger: Duration::from_secs(3600),
        multi_pack_index: None,
        ..ProducerConfig::default()
    };
    let mut producer =
        Producer::with_config(repo.clone(), TopicName::new("t").expect("topic"), config);
    let ids = producer
        .publish_batch((0..PACKS * PER_PACK).map(|i| {
            format!(
                r#"{{"id":{i},"type":"order.created","customer":"c-{i:06}","total":{}.{:02}}}"#,
                i % 1000,
                i % 100
            )
        }))
        .expect("publish");
    assert_eq!(ids.len(), PACKS * PER_PACK);
    (dir, repo.git_dir().to_owned())
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("consolidate");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements((PACKS * PER_PACK) as u64));
    let policy = Policy {
        min_packs: 2,
        ..Policy::default()
    };
    group.bench_function("32 packs x 1,000 messages", |b| {
        b.iter_batched(
            small_packs,
            |(dir, git_dir)| {
                let report = consolidate(&gitmq::git::fs::real(), &git_dir, policy, false)
                    .expect("consolidate");
                assert_eq!(report.merged_packs, PACKS);
                drop(dir);
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
