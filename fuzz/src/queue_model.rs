//! Owns the stateful check (`queue_model`): a short program of producer and consumer
//! operations run against a real repository and against a model of the topic (redb's
//! fuzzer style; gitmq's `VecDeque` oracle from `tests/integration/model.rs`).
//!
//! Input layout, decoded by hand (no `arbitrary`) so the stable replay test decodes every
//! saved input exactly as the fuzzer did:
//!
//! ```text
//! byte 0        config: bits 0-1 max_batch_messages - 1; bit 2 deflate level 1 (else
//!               stored); bit 3 background consolidation (min 2 packs, every 4 batches); bit 4
//!               generated stable ids (a `gitmq-id` line in every commit the producer writes)
//! then ops      tag byte, tag % 8 picks the op, tag / 8 is its argument
//!   0 append      argument % 8 payload bytes follow; a NUL among them must be refused
//!   1 flush
//!   2 open        a new consumer (at most MAX_CONSUMERS; then like reopen)
//!   3 poll        consumer argument % live, up to argument / 4 % 5 messages
//!   4 commit      consumer argument % live
//!   5 reopen      consumer argument % live: drop it, open it again at its committed position
//!   6 other       another producer publishes argument % 8 bytes (so the first producer's
//!                 batch is rebuilt on a moved topic at its next flush)
//!   7 lag         consumer argument % live: lag() is the model's
//! ```
//!
//! The model: `topic` is every acknowledged message in order, `pending` the first producer's
//! unacknowledged batch, and each consumer has a committed and a delivered index into
//! `topic`. Acknowledgements move messages from `pending` to `topic` as flushes report them.

use std::{collections::VecDeque, time::Duration};

use gitmq::{
    git::odb::pack::{consolidate::Policy, write::Compression},
    produce::ProducerConfig,
    Consumer, ConsumerName, Durability, Identity, ObjectId, Repository, TopicName,
};

/// Ops run per input at most: enough for batches, reopens and rebuilds, few enough to stay
/// fast.
const MAX_OPS: usize = 32;
/// Consumer names used per input at most.
const MAX_CONSUMERS: usize = 3;

/// One live consumer and what the model expects of it.
struct Reader {
    name: ConsumerName,
    consumer: Consumer,
    /// Messages of `topic` processed and committed.
    committed: usize,
    /// Messages of `topic` handed out so far.
    delivered: usize,
}

/// `queue_model`: see the module documentation for the input layout.
pub fn queue_model(data: &[u8]) {
    let Some((&config, ops)) = data.split_first() else {
        return;
    };
    let dir = super::scratch_dir();
    let repo = Repository::init(dir.path().join("q.git")).expect("init a fresh repository");
    let topic = TopicName::new("model").expect("a valid topic");
    let mut producer = producer_config(config).open(&repo, &topic);
    let mut other = producer_config(0).open(&repo, &topic);

    let mut model: Vec<(ObjectId, Vec<u8>)> = Vec::new();
    let mut pending: VecDeque<(ObjectId, Vec<u8>)> = VecDeque::new();
    let mut readers: Vec<Reader> = Vec::new();
    let mut ops = ops.iter().copied();
    for _ in 0..MAX_OPS {
        let Some(tag) = ops.next() else { break };
        let arg = usize::from(tag / 8);
        match tag % 8 {
            0 => {
                let payload: Vec<u8> = ops.by_ref().take(arg % 8).collect();
                match producer.append(&payload) {
                    Ok(appended) => {
                        assert!(!payload.contains(&0), "a NUL payload is refused");
                        pending.push_back((appended.id, payload));
                        acknowledge(appended.flushed, &mut pending, &mut model);
                    }
                    Err(err) => {
                        assert!(payload.contains(&0), "append failed: {err}");
                        assert!(!producer.is_poisoned(), "a refused payload does not poison");
                    }
                }
            }
            1 => {
                let flushed = producer.flush().expect("flush");
                acknowledge(Some(flushed), &mut pending, &mut model);
                assert!(pending.is_empty(), "a flush acknowledges the whole batch");
            }
            2 if readers.len() < MAX_CONSUMERS => open_new(&repo, &topic, &mut readers),
            3 => poll(&mut readers, arg, &model),
            4 => {
                if let Some(reader) = pick(&mut readers, arg) {
                    reader.consumer.commit().expect("commit");
                    reader.committed = reader.delivered;
                }
            }
            2 | 5 => {
                if let Some(reader) = pick(&mut readers, arg) {
                    reader.consumer = repo
                        .consumer(&reader.name, &topic)
                        .expect("reopen a consumer");
                    // At-least-once: everything after the commit comes again.
                    reader.delivered = reader.committed;
                }
            }
            6 => {
                let payload: Vec<u8> = ops.by_ref().take(arg % 8).filter(|b| *b != 0).collect();
                let id = other
                    .publish(&payload)
                    .expect("the other producer publishes");
                model.push((id, payload));
            }
            _ => {
                if let Some(reader) = pick(&mut readers, arg) {
                    let lag = reader.consumer.lag().expect("lag");
                    assert_eq!(
                        lag,
                        model.len() - reader.committed,
                        "lag counts after commit"
                    );
                }
            }
        }
    }
    let flushed = producer.flush().expect("final flush");
    acknowledge(Some(flushed), &mut pending, &mut model);
    drop((producer, other));

    // A new consumer reads the whole topic, as the model has it.
    open_new(&repo, &topic, &mut readers);
    let last = readers.last_mut().expect("opened above");
    let everything = last
        .consumer
        .poll(model.len() + 1)
        .expect("poll everything");
    let ids: Vec<ObjectId> = everything.iter().map(|m| m.id).collect();
    let expected: Vec<ObjectId> = model.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, expected, "the topic is the model");
}

fn producer_config(config: u8) -> ProducerConfig {
    ProducerConfig {
        identity: Identity::default(),
        durability: Durability::None,
        compression: if config & 4 != 0 {
            Compression::Deflate(1)
        } else {
            Compression::Stored
        },
        max_batch_messages: usize::from(config & 3) + 1,
        max_batch_bytes: 1 << 20,
        // Batches are cut by count or flush only, never by the clock: the model is exact.
        linger: Duration::from_secs(3600),
        lock_timeout: Duration::from_secs(5),
        background_flush: false,
        consolidate: (config & 8 != 0).then_some(Policy {
            min_packs: 2,
            max_objects: 1000,
        }),
        // Generated stable ids put a header line in every commit, so rebuilds copy it.
        message_ids: if config & 16 != 0 {
            gitmq::produce::MessageIds::Generate
        } else {
            gitmq::produce::MessageIds::Given
        },
        idempotence: None,
        signing: None,
    }
}

/// Move what a flush reports from `pending` to `topic`; ids must be the appended ones unless
/// the batch was rebuilt on a moved topic.
fn acknowledge(
    flushed: Option<gitmq::produce::Flushed>,
    pending: &mut VecDeque<(ObjectId, Vec<u8>)>,
    topic: &mut Vec<(ObjectId, Vec<u8>)>,
) {
    let Some(flushed) = flushed else { return };
    for id in flushed.ids {
        let (appended, payload) = pending
            .pop_front()
            .expect("only appended messages are acknowledged");
        if !flushed.rebuilt {
            assert_eq!(id, appended, "an id is final unless the batch was rebuilt");
        }
        topic.push((id, payload));
    }
}

/// Open consumer number `readers.len()`, new to the topic.
fn open_new(repo: &Repository, topic: &TopicName, readers: &mut Vec<Reader>) {
    let name = ConsumerName::new(&format!("c{}", readers.len())).expect("a valid consumer");
    let consumer = repo.consumer(&name, topic).expect("open a consumer");
    readers.push(Reader {
        name,
        consumer,
        committed: 0,
        delivered: 0,
    });
}

fn pick(readers: &mut [Reader], arg: usize) -> Option<&mut Reader> {
    let live = readers.len();
    readers.get_mut(arg.checked_rem(live)?)
}

/// Poll up to `arg / 4 % 5` messages: exactly the model's next ones, each on its parent.
fn poll(readers: &mut [Reader], arg: usize, topic: &[(ObjectId, Vec<u8>)]) {
    let max = arg / 4 % 5;
    let Some(reader) = pick(readers, arg) else {
        return;
    };
    let messages = reader.consumer.poll(max).expect("poll");
    let end = (reader.delivered + max).min(topic.len());
    let expected = topic.get(reader.delivered..end).unwrap_or_default();
    assert_eq!(
        messages.len(),
        expected.len(),
        "poll({max}) returns the next messages"
    );
    for (offset, (message, (id, payload))) in messages.iter().zip(expected).enumerate() {
        assert_eq!(
            message.id,
            *id,
            "message {} of the topic",
            reader.delivered + offset
        );
        assert_eq!(&message.payload, payload, "payload of {id}");
        let parent = (reader.delivered + offset)
            .checked_sub(1)
            .and_then(|p| topic.get(p))
            .map(|(id, _)| *id);
        assert_eq!(message.parent, parent, "{id} follows the previous message");
    }
    reader.delivered = end;
}
