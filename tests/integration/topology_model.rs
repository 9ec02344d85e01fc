//! Model-based test: topics, consumers, replays, resets, joins and splits against a plain
//! in-memory model (a Vec of messages per topic, a count of processed messages per consumer
//! and topic, a count of joined messages per destination and source), over random sequences
//! from a seeded PRNG. Dates are drawn from a narrow range, so they tie and go backwards.

use std::collections::{BTreeMap, HashMap};

use gitmq::{
    position::{self, StartAt},
    topology, Consumer, ConsumerName, ObjectId, Repository, TopicName,
};

use crate::{
    replay::publish_dated,
    util::{Rng, TempRepo},
};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    payload: String,
    time: i64,
}

#[derive(Default)]
struct Model {
    topics: BTreeMap<String, Vec<Msg>>,
    /// (consumer, topic) -> messages processed (0: no position).
    positions: HashMap<(String, String), usize>,
    /// (destination, source) -> messages of the source joined.
    joined: HashMap<(String, String), usize>,
}

impl Model {
    fn log(&self, topic: &str) -> &[Msg] {
        self.topics.get(topic).map_or(&[], Vec::as_slice)
    }

    fn position(&self, consumer: &str, topic: &str) -> usize {
        *self
            .positions
            .get(&(consumer.to_owned(), topic.to_owned()))
            .unwrap_or(&0)
    }

    /// The first message, from the oldest, dated at or after `time`; else the length.
    fn since(&self, topic: &str, time: i64) -> usize {
        let log = self.log(topic);
        log.iter().position(|m| m.time >= time).unwrap_or(log.len())
    }

    fn join(&mut self, sources: &[String], dst: &str) {
        let mut pending: Vec<(usize, &[Msg])> = sources
            .iter()
            .map(|s| {
                let done = *self.joined.get(&(dst.to_owned(), s.clone())).unwrap_or(&0);
                (0, &self.log(s)[done..])
            })
            .collect();
        let mut merged = Vec::new();
        loop {
            let mut best: Option<(i64, usize)> = None;
            for (i, (cursor, msgs)) in pending.iter().enumerate() {
                if let Some(m) = msgs.get(*cursor) {
                    if best.is_none_or(|(t, _)| m.time < t) {
                        best = Some((m.time, i));
                    }
                }
            }
            let Some((_, i)) = best else { break };
            merged.push(pending[i].1[pending[i].0].clone());
            pending[i].0 += 1;
        }
        for s in sources {
            let len = self.log(s).len();
            self.joined.insert((dst.to_owned(), s.clone()), len);
        }
        self.topics
            .entry(dst.to_owned())
            .or_default()
            .extend(merged);
        if self.log(dst).is_empty() {
            self.topics.remove(dst);
        }
    }
}

fn keep(payload: &[u8]) -> bool {
    payload.last().is_some_and(|b| b % 2 == 0)
}

/// What gitmq holds on `topic`: (id, payload, date), oldest first.
fn actual(repo: &Repository, topic: &str) -> Vec<(ObjectId, Msg)> {
    let Some(head) = repo.head(&TopicName::new(topic).unwrap()).unwrap() else {
        return Vec::new();
    };
    let mut odb = repo.odb();
    let mut buf = Vec::new();
    gitmq::git::walk::ids_after(&mut odb, head, None, &mut buf)
        .unwrap()
        .into_iter()
        .map(|id| {
            let m = gitmq::git::walk::read_message(&mut odb, id, &mut buf).unwrap();
            let payload = String::from_utf8(m.payload).unwrap();
            (
                id,
                Msg {
                    payload,
                    time: m.time.seconds,
                },
            )
        })
        .collect()
}

fn payloads(messages: &[Msg]) -> Vec<&str> {
    messages.iter().map(|m| m.payload.as_str()).collect()
}

fn polled(consumer: &mut Consumer, max: usize) -> Vec<String> {
    consumer
        .poll(max)
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m.payload).unwrap())
        .collect()
}

#[test]
#[allow(clippy::too_many_lines)]
fn publish_consume_reset_join_and_split_match_a_simple_model() {
    const CONSUMERS: [&str; 3] = ["x", "y", "z"];
    let (mut joins, mut splits, mut resets, mut replays, mut rounds) = (0, 0, 0, 0, 0);
    for seed in 1..=5u64 {
        let mut rng = Rng::new(seed * 0x2545_f491);
        let repo = TempRepo::new();
        let handle = repo.open();
        let mut model = Model::default();
        let mut names: Vec<String> = ["a", "b", "c", "eu/d"].map(str::to_owned).to_vec();
        for step in 0..90 {
            let existing: Vec<String> = model.topics.keys().cloned().collect();
            let op = if existing.is_empty() { 0 } else { rng.below(7) };
            let ctx = format!("seed {seed} step {step} op {op}");
            match op {
                0 | 1 => {
                    let topic = names[rng.below(names.len())].clone();
                    let name = TopicName::new(&topic).unwrap();
                    for i in 0..=rng.below(3) {
                        let msg = Msg {
                            payload: format!("{topic}:{seed}.{step}.{i}"),
                            time: 100 + i64::try_from(rng.below(6)).unwrap(),
                        };
                        publish_dated(&handle, &name, msg.payload.as_bytes(), msg.time);
                        model.topics.entry(topic.clone()).or_default().push(msg);
                    }
                }
                2 => {
                    let (c, topic) = (
                        CONSUMERS[rng.below(3)],
                        &existing[rng.below(existing.len())],
                    );
                    let max = 1 + rng.below(4);
                    let name = ConsumerName::new(c).unwrap();
                    let mut consumer = handle
                        .consumer(&name, &TopicName::new(topic).unwrap())
                        .unwrap();
                    let from = model.position(c, topic);
                    let to = (from + max).min(model.log(topic).len());
                    assert_eq!(
                        polled(&mut consumer, max),
                        payloads(&model.log(topic)[from..to]),
                        "{ctx}: consume"
                    );
                    consumer.commit().unwrap();
                    model.positions.insert((c.to_owned(), topic.clone()), to);
                }
                3 => {
                    // A replay (never committed) or a reset, from a random start point.
                    let (c, topic) = (
                        CONSUMERS[rng.below(3)],
                        &existing[rng.below(existing.len())],
                    );
                    let (name, t) = (
                        ConsumerName::new(c).unwrap(),
                        TopicName::new(topic).unwrap(),
                    );
                    let ids = actual(&handle, topic);
                    let len = model.log(topic).len();
                    let (start, index) = match rng.below(4) {
                        0 => (StartAt::Beginning, 0),
                        1 => (StartAt::Latest, len),
                        2 => {
                            let i = rng.below(len);
                            (StartAt::At(ids[i].0), i)
                        }
                        _ => {
                            let time = 99 + i64::try_from(rng.below(8)).unwrap();
                            (StartAt::Since(time), model.since(topic, time))
                        }
                    };
                    if rng.below(2) == 0 {
                        replays += 1;
                        let mut consumer =
                            Consumer::open_at(handle.clone(), name, t, &start).unwrap();
                        assert_eq!(
                            polled(&mut consumer, usize::MAX),
                            payloads(&model.log(topic)[index..]),
                            "{ctx}: replay {start:?}"
                        );
                    } else {
                        resets += 1;
                        position::reset(&handle, &name, &t, &start).unwrap();
                        model.positions.insert((c.to_owned(), topic.clone()), index);
                    }
                }
                4 => {
                    joins += 1;
                    let mut sources = vec![existing[rng.below(existing.len())].clone()];
                    let second = existing[rng.below(existing.len())].clone();
                    if second != sources[0] && rng.below(2) == 0 {
                        sources.push(second);
                    }
                    let candidates: Vec<&String> =
                        names.iter().filter(|n| !sources.contains(n)).collect();
                    let dst = candidates[rng.below(candidates.len())].clone();
                    let src_names: Vec<TopicName> =
                        sources.iter().map(|s| TopicName::new(s).unwrap()).collect();
                    // Small rounds too: the order must not depend on how far a round reads.
                    let round = [2, 7, usize::MAX][rng.below(3)];
                    let into = TopicName::new(&dst).unwrap();
                    let joined =
                        topology::join_in_rounds(&handle, &src_names, &into, false, round).unwrap();
                    rounds += joined.rounds;
                    model.join(&sources, &dst);
                }
                5 => {
                    let topic = existing[rng.below(existing.len())].clone();
                    let len = model.log(&topic).len();
                    let at = rng.below(len);
                    let into = format!("s{seed}-{step}");
                    let ids = actual(&handle, &topic);
                    let selected: Vec<Msg> = model.log(&topic)[at..]
                        .iter()
                        .filter(|m| keep(m.payload.as_bytes()))
                        .cloned()
                        .collect();
                    let result = topology::split(
                        &handle,
                        &TopicName::new(&topic).unwrap(),
                        Some(ids[at].0),
                        &TopicName::new(&into).unwrap(),
                        |m| keep(m.payload),
                        false,
                    );
                    if selected.is_empty() {
                        assert!(result.is_err(), "{ctx}: nothing selected");
                        continue;
                    }
                    result.unwrap();
                    splits += 1;
                    for c in CONSUMERS {
                        let p = model.position(c, &topic);
                        if p > at {
                            let carried = model.log(&topic)[at..p]
                                .iter()
                                .filter(|m| keep(m.payload.as_bytes()))
                                .count();
                            model
                                .positions
                                .insert((c.to_owned(), into.clone()), carried);
                        }
                    }
                    model.topics.insert(into.clone(), selected);
                    names.push(into);
                }
                _ => {
                    // A consumer restarted: it resumes from its committed position.
                    let (c, topic) = (
                        CONSUMERS[rng.below(3)],
                        &existing[rng.below(existing.len())],
                    );
                    let mut consumer = handle
                        .consumer(
                            &ConsumerName::new(c).unwrap(),
                            &TopicName::new(topic).unwrap(),
                        )
                        .unwrap();
                    let from = model.position(c, topic);
                    assert_eq!(
                        polled(&mut consumer, usize::MAX),
                        payloads(&model.log(topic)[from..]),
                        "{ctx}: resume"
                    );
                }
            }
            // Every topic holds what the model says (every few steps: reading them all is
            // the slow part of this test).
            for (topic, log) in model.topics.iter().filter(|_| step % 5 == 0) {
                let got: Vec<Msg> = actual(&handle, topic).into_iter().map(|(_, m)| m).collect();
                assert_eq!(&got, log, "{ctx}: topic {topic}");
            }
            if step % 30 == 0 {
                repo.assert_fsck_clean();
            }
        }
        // Every consumer of every topic sees exactly what the model says, and so does git.
        for (topic, log) in &model.topics {
            for c in CONSUMERS {
                let mut consumer = handle
                    .consumer(
                        &ConsumerName::new(c).unwrap(),
                        &TopicName::new(topic).unwrap(),
                    )
                    .unwrap();
                let from = model.position(c, topic);
                assert_eq!(
                    polled(&mut consumer, usize::MAX),
                    payloads(&log[from..]),
                    "seed {seed}: {c} on {topic}"
                );
            }
            let git: Vec<String> =
                String::from_utf8(repo.git(&["log", "--reverse", "-z", "--format=%B", topic]))
                    .unwrap()
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            assert_eq!(git, payloads(log), "seed {seed}: git log {topic}");
        }
        repo.assert_fsck_clean();
    }
    assert!(
        joins > 10 && splits > 3 && resets > 10 && replays > 10 && rounds > joins,
        "{joins} {splits} {resets} {replays} {rounds}"
    );
}
