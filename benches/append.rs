//! Criterion benches of the append hot path. Phases: encode one commit; hash it (SHA-1);
//! store it as a zlib entry (stored blocks or deflate level 1); seal a pack (trailer SHA-1 and
//! index); and whole appends of batches of 1, 100 and 10,000 messages in each durability mode.
//! Comparisons with git live in `gitmq bench append`.

use std::{hint::black_box, time::Duration};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gitmq::{
    git::hash::Hasher,
    git::message::CommitEncoder,
    git::odb::pack::write::{Compression, PackBuilder},
    produce::{Producer, ProducerConfig},
    Durability, Identity, ObjectId, Repository, TopicName,
};

fn payload(i: usize) -> Vec<u8> {
    format!(r#"{{"id":{i},"type":"order.created","customer":"c-{i:06}","items":[{{"sku":"SKU-{}","qty":{}}}],"total":{}.{:02},"ts":"2026-11-27T12:00:00Z"}}"#, i % 9973, i % 7 + 1, i % 1000, i % 100).into_bytes()
}

fn one_commit(c: &mut Criterion) {
    let encoder = CommitEncoder::new(&Identity::default(), 3600);
    let parent = ObjectId::empty_blob(gitmq::git::hash::OBJECT_HASH);
    let payload = payload(42);
    let mut body = Vec::with_capacity(1024);
    encoder.encode(&mut body, Some(&parent), 1_700_000_000, &payload);
    let id = ObjectId::empty_tree(gitmq::git::hash::OBJECT_HASH);

    let mut group = c.benchmark_group("one commit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            out.clear();
            encoder.encode(
                &mut out,
                Some(&parent),
                black_box(1_700_000_000),
                black_box(&payload),
            );
            black_box(&out);
        });
    });
    group.bench_function("sha1", |b| {
        b.iter(|| {
            let mut hasher = Hasher::for_object(gix_object::Kind::Commit, body.len());
            hasher.update(black_box(&body));
            black_box(hasher.finalize())
        });
    });
    for (name, compression) in [
        ("entry stored", Compression::Stored),
        ("entry deflate 1", Compression::Deflate(1)),
    ] {
        group.bench_function(name, |b| {
            let mut builder = PackBuilder::new(compression);
            b.iter(|| {
                builder.clear();
                builder.push(&id, gix_object::Kind::Commit, black_box(&body));
            });
        });
    }
    group.finish();
}

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal pack");
    let n = 10_000;
    group.throughput(Throughput::Elements(n as u64));
    let encoder = CommitEncoder::new(&Identity::default(), 0);
    let mut builder = PackBuilder::new(Compression::Stored);
    let mut body = Vec::new();
    for i in 0..n {
        body.clear();
        encoder.encode(&mut body, None, 1_700_000_000, &payload(i));
        let id = gitmq::git::hash::object_id(gix_object::Kind::Commit, &body);
        builder.push(&id, gix_object::Kind::Commit, &body);
    }
    let sealed = builder.seal(Vec::new());
    group.bench_function("trailer + index, 10,000 messages", |b| {
        b.iter(|| black_box(sealed.finish()));
    });
    group.finish();
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repository::init(dir.path().join("q.git")).expect("init");
    let payloads: Vec<Vec<u8>> = (0..10_000).map(payload).collect();
    let mut group = c.benchmark_group("append batch");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    let mut topic_no = 0;
    for durability in [Durability::None, Durability::Batch, Durability::Each] {
        for batch in [1usize, 100, 10_000] {
            if durability == Durability::Each && batch > 100 {
                continue; // one fsync round per message: 10,000 take minutes
            }
            group.throughput(Throughput::Elements(batch as u64));
            let id = BenchmarkId::new(format!("{durability:?}"), batch);
            topic_no += 1;
            let topic = TopicName::new(&format!("t{topic_no}")).expect("topic");
            let config = ProducerConfig {
                durability,
                max_batch_messages: batch,
                linger: Duration::from_secs(3600),
                ..ProducerConfig::default()
            };
            let mut producer = Producer::with_config(repo.clone(), topic, config);
            let mut acknowledged = 0;
            group.bench_function(id, |b| {
                b.iter(|| {
                    for payload in &payloads[..batch] {
                        if let Some(f) = producer.append(payload).expect("append").flushed {
                            acknowledged += f.ids.len();
                        }
                    }
                    acknowledged += producer.flush().expect("flush").ids.len();
                });
            });
            assert!(acknowledged > 0, "the bench acknowledged messages");
        }
    }
    group.finish();
}

criterion_group!(benches, one_commit, seal, append);
criterion_main!(benches);
