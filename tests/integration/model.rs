//! Property test: a topic and its consumers behave like a `VecDeque` model, over random
//! sequences of publishes, polls, commits and consumer restarts.

use std::collections::HashMap;

use gitmq::{ConsumerName, Durability, TopicName};

use crate::util::{Rng, TempRepo};

#[test]
fn random_operations_match_a_simple_in_memory_model() {
    for seed in 1..=6u64 {
        let mut rng = Rng::new(seed * 0x9e37_79b9);
        let repo = TempRepo::new();
        let handle = repo.open();
        let topic = TopicName::new("model").unwrap();
        let mut producer = gitmq::ProducerConfig::default()
            .with_durability(Durability::None)
            .open(&handle, &topic);
        let names: Vec<ConsumerName> = ["a", "b", "c"]
            .iter()
            .map(|n| ConsumerName::new(n).unwrap())
            .collect();

        // The model: the log, and per consumer (committed index, delivered index).
        let mut log: Vec<Vec<u8>> = Vec::new();
        let mut committed: HashMap<usize, usize> = HashMap::new();
        let mut delivered: HashMap<usize, usize> = HashMap::new();
        let mut consumers: Vec<gitmq::Consumer> = names
            .iter()
            .map(|n| handle.consumer(n, &topic).unwrap())
            .collect();

        for step in 0..60 {
            match rng.below(4) {
                0 => {
                    let batch: Vec<Vec<u8>> = (0..rng.below(5))
                        .map(|i| {
                            let len = rng.below(40);
                            let mut payload = format!("s{seed}-{step}-{i}:").into_bytes();
                            payload.extend((0..len).map(|_| 1 + (rng.next_u64() % 255) as u8));
                            payload
                        })
                        .collect();
                    let ids = producer.publish_batch(&batch).unwrap();
                    assert_eq!(ids.len(), batch.len());
                    log.extend(batch);
                }
                1 => {
                    let c = rng.below(consumers.len());
                    let max = 1 + rng.below(4);
                    let got = consumers[c].poll(max).unwrap();
                    let from = *delivered.get(&c).unwrap_or(&0);
                    let to = (from + max).min(log.len());
                    let expected = &log[from..to];
                    let payloads: Vec<Vec<u8>> = got.into_iter().map(|m| m.payload).collect();
                    assert_eq!(
                        payloads, expected,
                        "seed {seed} step {step}: poll of consumer {c}"
                    );
                    delivered.insert(c, to);
                }
                2 => {
                    let c = rng.below(consumers.len());
                    consumers[c].commit().unwrap();
                    committed.insert(c, *delivered.get(&c).unwrap_or(&0));
                }
                _ => {
                    // Restart: uncommitted deliveries come again (at-least-once).
                    let c = rng.below(consumers.len());
                    consumers[c] = handle.consumer(&names[c], &topic).unwrap();
                    delivered.insert(c, *committed.get(&c).unwrap_or(&0));
                }
            }
        }
        for (c, consumer) in consumers.iter_mut().enumerate() {
            let lag = consumer.lag().unwrap();
            assert_eq!(
                lag,
                log.len() - committed.get(&c).unwrap_or(&0),
                "lag of {c}"
            );
        }
        drop(producer); // waits for a background consolidation, which git fsck would race
        repo.assert_fsck_clean();
    }
}
