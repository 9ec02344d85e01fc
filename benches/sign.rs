//! Criterion benches of signed messages. Phases: sign one commit body (SHA-512, ed25519,
//! armor, gpgsig header); check one commit's own signature (parse, SHA-512, ed25519 verify);
//! append 10,000 messages unsigned, `tip`-signed and `each`-signed (durability none, batches of
//! 1,000); consume 10,000 `each`- and `tip`-signed messages with a verifying consumer.
//! Same-run comparisons with git live in `gitmq bench append --sign`.

use std::{hint::black_box, sync::Arc, time::Duration};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gitmq::{
    consume::verify::Verify,
    produce::{Producer, ProducerConfig, Signing},
    sign::{AllowedSigners, Signature, Signer, Verifier},
    ConsumerName, Durability, Identity, Repository, TopicName,
};

const MESSAGES: usize = 10_000;

fn payload(i: usize) -> Vec<u8> {
    format!(r#"{{"id":{i},"type":"order.created","customer":"c-{i:06}","items":[{{"sku":"SKU-{}","qty":{}}}],"total":{}.{:02},"ts":"2026-11-27T12:00:00Z"}}"#, i % 9973, i % 7 + 1, i % 1000, i % 100).into_bytes()
}

fn key() -> Arc<Signer> {
    Arc::new(Signer::from_seed([42; 32]))
}

fn identity() -> Identity {
    Identity::new("bench", "bench@localhost").expect("identity")
}

fn signers(key: &Signer) -> AllowedSigners {
    AllowedSigners::parse(&format!(
        "bench@localhost {}",
        key.public_key().to_openssh()
    ))
    .expect("allowed signers")
}

/// A producer on a fresh repository, signing per `mode` ("unsigned", "tip", "each").
fn producer(dir: &std::path::Path, mode: &str, key: &Arc<Signer>) -> Producer {
    let repo = Repository::init(dir).expect("init");
    let config = ProducerConfig {
        identity: identity(),
        durability: Durability::None,
        max_batch_messages: 1000,
        linger: Duration::from_secs(3600),
        consolidate: None,
        ..ProducerConfig::default()
    };
    let config = match mode {
        "tip" => config.with_signing(Signing::tip(key.clone())),
        "each" => config.with_signing(Signing::each(key.clone())),
        _ => config,
    };
    Producer::with_config(repo, TopicName::new("t").expect("topic"), config)
}

fn commit_body(i: usize) -> Vec<u8> {
    let mut body = Vec::new();
    gitmq::git::message::encode(
        &mut body,
        Some(&gitmq::ObjectId::empty_blob(gix_hash::Kind::Sha1)),
        &identity(),
        gix_date::Time::new(1_700_000_000, 0),
        &payload(i),
    );
    body
}

fn sign_and_check(c: &mut Criterion) {
    let key = key();
    let body = commit_body(1);
    let mut group = c.benchmark_group("signature");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign one commit", |b| {
        b.iter(|| {
            let mut signed = body.clone();
            key.sign_commit(&mut signed);
            black_box(signed)
        });
    });
    let mut signed = body.clone();
    key.sign_commit(&mut signed);
    let mut verifier = Verifier::new();
    assert!(matches!(verifier.check(&signed), Signature::Good { .. }));
    group.bench_function("check one commit", |b| {
        b.iter(|| black_box(verifier.check(black_box(&signed))));
    });
    group.finish();
}

fn append(c: &mut Criterion) {
    let key = key();
    let messages: Vec<Vec<u8>> = (0..MESSAGES).map(payload).collect();
    let mut group = c.benchmark_group("append signed");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MESSAGES as u64));
    for mode in ["unsigned", "tip", "each"] {
        group.bench_with_input(BenchmarkId::from_parameter(mode), &mode, |b, mode| {
            b.iter_with_setup(
                || tempfile::tempdir().expect("temp dir"),
                |dir| {
                    let mut producer = producer(dir.path(), mode, &key);
                    for message in &messages {
                        producer.append(message).expect("append");
                    }
                    producer.flush().expect("flush");
                    dir
                },
            );
        });
    }
    group.finish();
}

fn consume(c: &mut Criterion) {
    let key = key();
    let signers = signers(&key);
    let mut group = c.benchmark_group("consume verifying");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MESSAGES as u64));
    for mode in ["tip", "each"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut producer = producer(dir.path(), mode, &key);
        for i in 0..MESSAGES {
            producer.append(&payload(i)).expect("append");
        }
        producer.flush().expect("flush");
        drop(producer);
        let repo = Repository::open(dir.path()).expect("open");
        let topic = TopicName::new("t").expect("topic");
        let read = |verify: bool| {
            let mut consumer = repo
                .consumer(&ConsumerName::new("c").expect("name"), &topic)
                .expect("consumer");
            if verify {
                consumer = consumer.with_verify(Verify::new(signers.clone()).stop_on_refused());
            }
            consumer
                .poll_with(usize::MAX, |_| Ok::<(), gitmq::Error>(()))
                .expect("every message accepted")
        };
        assert_eq!(read(true), MESSAGES, "all covered");
        group.bench_function(BenchmarkId::new("plain", mode), |b| b.iter(|| read(false)));
        group.bench_function(BenchmarkId::new("verifying", mode), |b| {
            b.iter(|| read(true));
        });
    }
    group.finish();
}

criterion_group!(benches, sign_and_check, append, consume);
criterion_main!(benches);
