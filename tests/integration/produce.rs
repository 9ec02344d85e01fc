//! The batched pack path: compare-and-swap with rebuilds, poisoning, group commit,
//! consolidation, and what git thinks of the packs.

use std::time::Duration;

use gitmq::{
    git::fs::real,
    git::odb::pack::{consolidate, write::Compression},
    produce::{Producer, ProducerConfig, SharedProducer},
    ConsumerName, Durability, TopicName,
};

use crate::util::{lines, TempRepo};

fn config(durability: Durability, batch: usize) -> ProducerConfig {
    ProducerConfig {
        durability,
        max_batch_messages: batch,
        linger: Duration::from_secs(3600),
        ..ProducerConfig::default()
    }
}

fn payloads(repo: &TempRepo, topic: &str) -> Vec<String> {
    lines(&repo.git(&["log", "--reverse", "--first-parent", "--format=%B", topic]))
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn git_verify_pack_accepts_stored_and_deflated_packs() {
    let repo = TempRepo::new();
    for (topic, compression) in [
        ("stored", Compression::Stored),
        ("deflated", Compression::Deflate(6)),
    ] {
        let config = ProducerConfig {
            compression,
            multi_pack_index: None,
            ..config(Durability::Batch, 300)
        };
        let mut producer =
            Producer::with_config(repo.open(), TopicName::new(topic).unwrap(), config);
        let ids = producer
            .publish_batch((0..1000).map(|i| format!("{topic} message {i}")))
            .unwrap();
        assert_eq!(ids.len(), 1000);
    }
    let pack_dir = repo.path.join("objects/pack");
    let mut verified = 0;
    for entry in std::fs::read_dir(&pack_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "idx") {
            let out = repo.git(&["verify-pack", "-v", path.to_str().unwrap()]);
            assert!(
                String::from_utf8_lossy(&out).contains("commit"),
                "lists commits"
            );
            verified += 1;
        }
    }
    assert!(verified >= 2, "every pack verified ({verified})");
    repo.assert_fsck_clean();
    assert_eq!(payloads(&repo, "deflated")[999], "deflated message 999");
}

#[test]
fn a_batch_overtaken_by_another_writer_is_rebuilt_on_the_new_head() {
    let repo = TempRepo::new();
    let topic = TopicName::new("t").unwrap();
    let mut slow = Producer::with_config(repo.open(), topic.clone(), config(Durability::None, 100));
    let provisional: Vec<_> = (0..3)
        .map(|i| slow.append(format!("slow {i}").as_bytes()).unwrap().id)
        .collect();
    let fast_id = repo.open().producer(&topic).publish(b"fast").unwrap();
    let flushed = slow.flush().unwrap();
    assert!(flushed.rebuilt, "the CAS failed and the batch was rebuilt");
    assert_eq!(flushed.ids.len(), 3);
    assert!(
        flushed.ids.iter().all(|id| !provisional.contains(id)),
        "new parents, new ids"
    );
    assert_eq!(payloads(&repo, "t"), ["fast", "slow 0", "slow 1", "slow 2"]);
    let log = lines(&repo.git(&["rev-list", "--reverse", "t"]));
    assert_eq!(log[0], fast_id.to_string());
    // The producer goes on from the rebuilt tip.
    slow.publish(b"slow 3").unwrap();
    assert_eq!(payloads(&repo, "t").last().unwrap(), "slow 3");
    repo.assert_fsck_clean();
}

#[test]
fn a_failed_write_poisons_the_producer_until_reopened() {
    let repo = TempRepo::new();
    let topic = TopicName::new("t").unwrap();
    let mut producer =
        Producer::with_config(repo.open(), topic.clone(), config(Durability::Batch, 10));
    producer.publish(b"before").unwrap();
    // Replace objects/pack with a file: the next pack cannot be written (even as root).
    let pack_dir = repo.path.join("objects/pack");
    let aside = repo.path.join("pack-aside");
    std::fs::rename(&pack_dir, &aside).unwrap();
    std::fs::write(&pack_dir, b"not a directory").unwrap();
    producer.append(b"lost").unwrap();
    let err = producer.flush().unwrap_err();
    assert!(err.to_string().contains("pack"), "{err}");
    std::fs::remove_file(&pack_dir).unwrap();
    std::fs::rename(&aside, &pack_dir).unwrap();
    assert!(producer.is_poisoned());
    let err = producer.append(b"after").unwrap_err();
    assert!(err.to_string().contains("poisoned"), "{err}");
    assert_eq!(
        payloads(&repo, "t"),
        ["before"],
        "nothing unacknowledged became visible"
    );
    let mut reopened = repo.open().producer(&topic);
    reopened.publish(b"after reopen").unwrap();
    assert_eq!(payloads(&repo, "t"), ["before", "after reopen"]);
    repo.assert_fsck_clean();
}

#[test]
fn threads_sharing_one_producer_group_commit_and_lose_nothing() {
    let repo = TempRepo::new();
    let topic = TopicName::new("t").unwrap();
    let config = ProducerConfig {
        linger: Duration::from_millis(2),
        ..config(Durability::Batch, 64)
    };
    let shared = SharedProducer::new(Producer::with_config(repo.open(), topic.clone(), config));
    let ids: Vec<gitmq::ObjectId> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let shared = shared.clone();
                scope.spawn(move || {
                    (0..100)
                        .map(|i| shared.publish(format!("t{t} m{i}").as_bytes()).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(ids.len(), 400);
    let log = lines(&repo.git(&["rev-list", "t"]));
    assert_eq!(log.len(), 400, "every publish is on the topic once");
    for id in &ids {
        assert!(log.contains(&id.to_string()), "returned id {id} is final");
    }
    drop(shared); // the last handle: waits for a background consolidation
    let packs = std::fs::read_dir(repo.path.join("objects/pack"))
        .unwrap()
        .count()
        / 2;
    assert!(
        packs < 400,
        "messages shared packs (group commit): {packs} packs"
    );
    repo.assert_fsck_clean();
}

#[test]
fn consolidation_keeps_the_pack_count_low_and_every_message_readable() {
    let repo = TempRepo::new();
    let topic = TopicName::new("t").unwrap();
    let config = ProducerConfig {
        multi_pack_index: None,
        ..config(Durability::None, 10)
    };
    let mut producer = Producer::with_config(repo.open(), topic.clone(), config);
    let ids = producer
        .publish_batch((0..400).map(|i| format!("m{i}")))
        .unwrap();
    let count_packs = || {
        std::fs::read_dir(repo.path.join("objects/pack"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "pack")
            })
            .count()
    };
    assert_eq!(count_packs(), 40, "one pack per batch");
    let report =
        consolidate::consolidate(&real(), &repo.path, consolidate::Policy::default(), true)
            .unwrap();
    assert_eq!(report.merged_packs, 40, "{report:?}");
    assert_eq!(report.objects, 401, "400 messages and one empty tree");
    assert_eq!(count_packs(), 1);
    repo.assert_fsck_clean();
    let mut consumer = repo
        .open()
        .consumer(&ConsumerName::new("c").unwrap(), &topic)
        .unwrap();
    let got = consumer.poll(1000).unwrap();
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), ids);

    // Consolidation rewrote the multi-pack-index chain over what is left.
    repo.git(&["multi-pack-index", "verify"]);
}

#[test]
fn the_producer_keeps_a_multi_pack_index_chain_that_git_verifies_and_reads() {
    let repo = TempRepo::new();
    let topic = TopicName::new("t").unwrap();
    let config = ProducerConfig {
        multi_pack_index: Some(gitmq::produce::MidxPolicy {
            layer_packs: 2,
            merge_layers: 3,
        }),
        ..config(Durability::Batch, 10)
    };
    let mut producer = Producer::with_config(repo.open(), topic.clone(), config);
    let ids = producer
        .publish_batch((0..400).map(|i| format!("m{i}")))
        .unwrap();
    drop(producer); // waits for a running update
    let chain = repo
        .path
        .join("objects/pack/multi-pack-index.d/multi-pack-index-chain");
    let layers = std::fs::read_to_string(&chain).unwrap().lines().count();
    // How many layers depends on when the background updates ran (sizes vary with it), but
    // never more than 2 x merge_layers.
    assert!(
        (1..=6).contains(&layers),
        "40 packs, a chain of merged layers: {layers} layers"
    );
    assert_eq!(
        std::fs::read_dir(chain.parent().unwrap()).unwrap().count(),
        layers + 1,
        "only the chain file and its layers are left"
    );
    repo.git(&["multi-pack-index", "verify"]);
    repo.assert_fsck_clean();
    let log = repo.git(&["log", "--format=%H", "t"]);
    assert_eq!(
        String::from_utf8_lossy(&log).lines().count(),
        400,
        "git reads through the chain"
    );
    let mut consumer = repo
        .open()
        .consumer(&ConsumerName::new("c").unwrap(), &topic)
        .unwrap();
    let got = consumer.poll(1000).unwrap();
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
}

#[test]
fn a_reader_keeps_working_while_packs_are_consolidated_under_it() {
    let repo = TempRepo::new();
    let topic = TopicName::new("t").unwrap();
    let config = ProducerConfig {
        multi_pack_index: None,
        ..config(Durability::None, 5)
    };
    let mut producer = Producer::with_config(repo.open(), topic.clone(), config);
    producer
        .publish_batch((0..100).map(|i| format!("m{i}")))
        .unwrap();
    let mut consumer = repo
        .open()
        .consumer(&ConsumerName::new("c").unwrap(), &topic)
        .unwrap();
    let first = consumer.poll(30).unwrap();
    consolidate::consolidate(
        &real(),
        &repo.path,
        consolidate::Policy {
            min_packs: 2,
            ..Default::default()
        },
        false,
    )
    .unwrap();
    let rest = consumer.poll(1000).unwrap();
    assert_eq!(
        first.len() + rest.len(),
        100,
        "the old packs vanished; the reader rescanned"
    );
    assert_eq!(rest.last().unwrap().payload, b"m99");
}

#[test]
fn a_consumer_polling_during_background_consolidation_never_sees_a_missing_object() {
    // Smoke test for the queue_model fuzz finding (a listed pack removed by a consolidation
    // before the reader opened it made `poll` report a message as missing). The race window
    // is narrow: this passes without the fix most of the time too; the fix is argued in
    // `odb::EXTRA_RESCANS`.
    let repo = TempRepo::new();
    let topic = TopicName::new("t").unwrap();
    let config = ProducerConfig {
        multi_pack_index: Some(gitmq::produce::MidxPolicy {
            layer_packs: 2,
            merge_layers: 2,
        }),
        ..config(Durability::None, 5)
    };
    let writer_repo = repo.open();
    let writer_topic = topic.clone();
    let git_dir = repo.path.clone();
    let writer = std::thread::spawn(move || {
        let mut producer = Producer::with_config(writer_repo, writer_topic, config);
        for i in 0..3000 {
            producer.append(format!("m{i}").as_bytes()).unwrap();
            if i % 500 == 499 {
                // Packs merged and removed while the chain is updated in the background.
                let policy = consolidate::Policy {
                    min_packs: 2,
                    max_objects: 1_000_000,
                };
                consolidate::consolidate(&real(), &git_dir, policy, false).unwrap();
            }
        }
        producer.flush().unwrap();
    });
    let mut seen = 0;
    let mut polls = 0;
    while seen < 3000 {
        // A fresh consumer each time: it lists the packs anew, as a restarted one would.
        let mut consumer = repo
            .open()
            .consumer(&ConsumerName::new("c").unwrap(), &topic)
            .unwrap();
        let got = consumer.poll(100_000).unwrap();
        assert!(got.len() >= seen, "poll {polls}: a message vanished");
        seen = got.len();
        polls += 1;
    }
    writer.join().unwrap();
    assert!(polls > 1, "the consumer polled while the producer wrote");
}
