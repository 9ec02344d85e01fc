//! Faults on purpose (issue 13, item 1): every writer of a repository runs on a file system
//! that fails at a chosen point ([`faulty_fs::FaultyFs`]): a power cut after each sync, ENOSPC
//! at each write, EIO at each sync. After each, the repository is reopened on the real file
//! system and must be sound (`git fsck --strict`, every ref resolves, gitmq reads every topic),
//! hold everything the writer acknowledged and show nothing it did not acknowledge as done;
//! a writer whose write or sync failed refuses to go on (`Poisoned`); and running the writer
//! again finishes the job. `GITMQ_FAULT_MATRIX=full` runs every point (see [`runner`]).

mod check;
mod consume;
mod faulty_fs;
mod fetch;
mod midx;
mod produce;
mod prune;
mod push;
mod regress;
mod runner;
mod topology;

use std::path::{Path, PathBuf};

use gitmq::{ObjectId, ProducerConfig, Repository, TopicName};

/// A template directory holding a fresh repository at `q.git`.
fn template() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("q.git");
    Repository::init(&path).expect("init");
    (dir, path)
}

/// Publish `payloads` to `topic` in batches of `batch`, each batch its own pack.
fn publish(path: &Path, topic: &str, payloads: &[String], batch: usize) -> Vec<ObjectId> {
    let repo = Repository::open(path).expect("open");
    let topic = TopicName::new(topic).unwrap();
    let mut ids = Vec::new();
    for chunk in payloads.chunks(batch) {
        let mut producer = gitmq::Producer::with_config(
            repo.clone(),
            topic.clone(),
            ProducerConfig {
                multi_pack_index: None,
                ..ProducerConfig::default()
            },
        );
        ids.extend(producer.publish_batch(chunk).expect("publish"));
    }
    ids
}

/// `prefix0`, `prefix1`, ... `prefix<n-1>`.
fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Commit consumer `consumer`'s position on `topic` at `id`, as a consumer does.
fn commit_position(path: &Path, consumer: &str, topic: &str, id: ObjectId) {
    let repo = Repository::open(path).expect("open");
    let mut reader = gitmq::Consumer::open_at(
        repo,
        gitmq::ConsumerName::new(consumer).unwrap(),
        TopicName::new(topic).unwrap(),
        &gitmq::position::StartAt::At(id),
    )
    .expect("open a consumer");
    reader.poll(1).expect("read one");
    reader.commit().expect("commit");
}
