//! Criterion benches of the consume hot path. Phases: decode one message (the fast path and
//! gix-object's parser); read one stored entry from a pack window; walk a topic (first
//! parents only); consume a whole topic of 1,000, 10,000 and 100,000 messages through
//! `Consumer::poll` (walk, read, decode, owned messages) and `Consumer::poll_with` (borrowed);
//! and a caught-up poll.
//! Comparisons with git live in `gitmq bench consume`.

use std::{hint::black_box, time::Duration};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gitmq::{
    git::message::MessageRef,
    git::walk,
    produce::{Producer, ProducerConfig},
    ConsumerName, Durability, Repository, TopicName,
};

fn payload(i: usize) -> Vec<u8> {
    format!(r#"{{"id":{i},"type":"order.created","customer":"c-{i:06}","items":[{{"sku":"SKU-{}","qty":{}}}],"total":{}.{:02},"ts":"2026-11-27T12:00:00Z"}}"#, i % 9973, i % 7 + 1, i % 1000, i % 100).into_bytes()
}

/// A repository holding topic `t` of `n` messages, written in packs of 10,000.
fn topic_of(n: usize) -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repository::init(dir.path().join("q.git")).expect("init");
    let config = ProducerConfig {
        durability: Durability::None,
        max_batch_messages: 10_000,
        linger: Duration::from_secs(3600),
        ..ProducerConfig::default()
    };
    let mut producer = Producer::with_config(repo.clone(), topic(), config);
    for i in 0..n {
        producer.append(&payload(i)).expect("append");
    }
    producer.flush().expect("flush");
    (dir, repo)
}

fn topic() -> TopicName {
    TopicName::new("t").expect("topic")
}

fn one_message(c: &mut Criterion) {
    let (_dir, repo) = topic_of(10);
    let head = repo.head(&topic()).expect("head").expect("a message");
    let mut odb = repo.odb();
    let mut body = Vec::new();
    odb.read_commit(&head, &mut body).expect("read");
    let location = odb.locate(&head).expect("locate");
    let mut group = c.benchmark_group("one message");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode, fast path", |b| {
        b.iter(|| {
            black_box(gitmq::git::message::decode::decode(head, black_box(&body)).expect("decodes"))
        });
    });
    group.bench_function("decode, gix-object", |b| {
        b.iter(|| black_box(MessageRef::from_bytes(head, black_box(&body)).expect("decodes")));
    });
    group.bench_function("decode and own", |b| {
        b.iter(|| {
            black_box(
                gitmq::git::message::decode::decode(head, &body)
                    .expect("decodes")
                    .into_owned(),
            )
        });
    });
    let mut scratch = Vec::new();
    group.bench_function("read a stored entry (window hit, Adler-32)", |b| {
        b.iter(|| {
            let (_, body) = odb
                .object_at(black_box(&location), &mut scratch)
                .expect("read");
            black_box(body.len())
        });
    });
    group.finish();
}

fn whole_topic(c: &mut Criterion) {
    let mut group = c.benchmark_group("consume a topic");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_millis(500));
    for n in [1_000usize, 10_000, 100_000] {
        let (_dir, repo) = topic_of(n);
        let head = repo.head(&topic()).expect("head").expect("messages");
        // Asserted once, outside the timed loops.
        let mut odb = repo.odb();
        let mut buf = Vec::new();
        assert_eq!(
            walk::count_after(&mut odb, head, None, &mut buf).expect("walk"),
            n as u64
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("walk (first parents)", n), |b| {
            let mut odb = repo.odb();
            b.iter(|| walk::count_after(&mut odb, head, None, &mut buf).expect("walk"));
        });
        let mut runs = 0u64;
        group.bench_function(BenchmarkId::new("Consumer::poll, new consumer", n), |b| {
            b.iter(|| {
                runs += 1;
                let name = ConsumerName::new(&format!("bench{runs}")).expect("name");
                let mut consumer = repo.consumer(&name, &topic()).expect("consumer");
                let mut count = 0;
                loop {
                    let messages = consumer.poll(1000).expect("poll");
                    if messages.is_empty() {
                        break;
                    }
                    count += messages.len();
                }
                assert_eq!(count, n);
            });
        });
        group.bench_function(BenchmarkId::new("Consumer::poll_with, borrowed", n), |b| {
            b.iter(|| {
                runs += 1;
                let name = ConsumerName::new(&format!("bench{runs}")).expect("name");
                let mut consumer = repo.consumer(&name, &topic()).expect("consumer");
                let (mut count, mut bytes) = (0, 0);
                loop {
                    let read = consumer
                        .poll_with(1000, |m| {
                            bytes += m.payload.len();
                            Ok::<(), gitmq::Error>(())
                        })
                        .expect("poll");
                    if read == 0 {
                        break;
                    }
                    count += read;
                }
                assert_eq!(count, n);
                black_box(bytes)
            });
        });
    }
    group.finish();
}

fn caught_up(c: &mut Criterion) {
    let (_dir, repo) = topic_of(10_000);
    let mut consumer = repo
        .consumer(&ConsumerName::new("idle").expect("name"), &topic())
        .expect("consumer");
    while !consumer.poll(10_000).expect("poll").is_empty() {}
    let mut group = c.benchmark_group("caught up");
    group.throughput(Throughput::Elements(1));
    group.bench_function("poll finds nothing", |b| {
        b.iter(|| assert!(consumer.poll(1000).expect("poll").is_empty()));
    });
    group.finish();
}

criterion_group!(benches, one_message, whole_topic, caught_up);
criterion_main!(benches);
