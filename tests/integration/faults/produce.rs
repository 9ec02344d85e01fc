//! The producer's flush under faults: durability `batch` (batches of two, flushed on the
//! background thread) and `each` (every message its own batch, flushed inline). Acknowledged
//! ids are on the topic in order after any fault; the topic holds the old messages and then a
//! prefix of what was appended (nothing else); a producer whose write or sync failed is
//! poisoned.

use std::time::Duration;

use gitmq::{produce, Durability, ObjectId, Producer, ProducerConfig, Repository, TopicName};

use super::{
    check::messages,
    names, publish,
    runner::{run_matrix, Aftermath, Failure, Operation},
    template,
};

#[derive(Debug, Clone)]
struct Publish {
    durability: Durability,
    before: Vec<String>,
    payloads: Vec<String>,
    acknowledged: Vec<ObjectId>,
}

impl Operation for Publish {
    fn run(&mut self, repo: &Repository) -> Result<(), Failure> {
        let config = ProducerConfig {
            durability: self.durability,
            max_batch_messages: 2,
            linger: Duration::from_secs(3600),
            consolidate: None,
            ..ProducerConfig::default()
        };
        let mut producer =
            Producer::with_config(repo.clone(), TopicName::new("t").unwrap(), config);
        let result = (|| -> Result<(), produce::Error> {
            for payload in &self.payloads {
                if let Some(flushed) = producer.append(payload.as_bytes())?.flushed {
                    self.acknowledged.extend(flushed.ids);
                }
            }
            self.acknowledged.extend(producer.flush()?.ids);
            Ok(())
        })();
        if let Err(err) = &result {
            let later = [
                producer.append(b"after the failure").map(drop),
                producer.flush().map(drop),
            ];
            for (when, outcome) in [("the failing call", Err(err))]
                .into_iter()
                .chain(later.iter().map(|r| ("a later call", r.as_ref())))
            {
                assert!(
                    matches!(outcome, Err(produce::Error::Poisoned { .. })),
                    "{when} of a failed producer is not Poisoned: {outcome:?}"
                );
            }
        }
        Ok(result?)
    }

    fn check(&self, repo: &Repository, aftermath: Aftermath) {
        let on_topic = messages(repo, "t");
        let (old, new) = on_topic.split_at(self.before.len().min(on_topic.len()));
        let old: Vec<&String> = old.iter().map(|(_, p)| p).collect();
        assert_eq!(
            old,
            self.before.iter().collect::<Vec<_>>(),
            "the old messages stay"
        );
        let new_payloads: Vec<&String> = new.iter().map(|(_, p)| p).collect();
        assert_eq!(
            new_payloads,
            self.payloads[..new.len().min(self.payloads.len())]
                .iter()
                .collect::<Vec<_>>(),
            "the topic holds a prefix of what was appended, nothing else"
        );
        let new_ids: Vec<ObjectId> = new.iter().map(|(id, _)| *id).collect();
        assert!(
            new_ids.starts_with(&self.acknowledged),
            "every acknowledged message is on the topic, in order ({aftermath:?}): {} acknowledged, {} there",
            self.acknowledged.len(),
            new_ids.len()
        );
        if aftermath == Aftermath::Clean {
            assert_eq!(self.acknowledged.len(), self.payloads.len());
        }
    }

    fn redo(&self, repo: &Repository) {
        let before = messages(repo, "t").len();
        let mut producer = repo.producer(&TopicName::new("t").unwrap());
        producer.publish(b"redo").expect("a new producer publishes");
        let after = messages(repo, "t");
        assert_eq!(after.len(), before + 1);
        assert_eq!(after.last().unwrap().1, "redo");
    }
}

fn matrix(name: &str, durability: Durability, messages: usize) {
    let (dir, path) = template();
    let before = names("old", 3);
    publish(&path, "t", &before, 3);
    let op = Publish {
        durability,
        before,
        payloads: names("new", messages),
        acknowledged: Vec::new(),
    };
    run_matrix(name, dir.path(), &op);
}

#[test]
fn producer_flush_with_durability_batch_survives_every_fault_point() {
    matrix("producer flush (batch)", Durability::Batch, 5);
}

#[test]
fn producer_flush_with_durability_each_survives_every_fault_point() {
    matrix("producer flush (each)", Durability::Each, 3);
}
