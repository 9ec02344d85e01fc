//! The consumer's walk against a naive oracle: `git log --reverse --format=%H` of the topic
//! (`--first-parent` where a merge joins another topic), on every layout git and gitmq make:
//! gitmq's packs, `git gc --aggressive`, loose and packed mixed, commits written by git with
//! equal and backwards dates, merges, positions in the middle or off the topic, small
//! segments, interleaved topics, and a 10,000-message topic read in chunks with restarts.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use gitmq::{
    consume::AutoCommit,
    git::refs::FullName,
    produce::{Producer, ProducerConfig},
    ConsumerName, Durability, ObjectId, TopicName,
};

use crate::util::{lines, Rng, TempRepo};

fn topic(name: &str) -> TopicName {
    TopicName::new(name).unwrap()
}

fn consumer_name(name: &str) -> ConsumerName {
    ConsumerName::new(name).unwrap()
}

/// The topic's messages oldest first, as git lists them.
fn oracle(repo: &TempRepo, topic: &str, first_parent: bool) -> Vec<String> {
    let mut args = vec!["log", "--reverse", "--format=%H"];
    if first_parent {
        args.push("--first-parent");
    }
    args.push(topic);
    lines(&repo.git(&args))
}

/// Everything a new consumer `name` reads, in polls of `chunk`.
fn consume_all(repo: &TempRepo, topic_name: &str, name: &str, chunk: usize) -> Vec<String> {
    let handle = repo.open();
    let mut consumer = handle
        .consumer(&consumer_name(name), &topic(topic_name))
        .unwrap();
    let mut ids = Vec::new();
    loop {
        let messages = consumer.poll(chunk).unwrap();
        if messages.is_empty() {
            return ids;
        }
        ids.extend(messages.iter().map(|m| m.id.to_string()));
    }
}

/// A producer of small batches without background consolidation.
fn producer(repo: &TempRepo, name: &str, batch: usize) -> Producer {
    let config = ProducerConfig {
        durability: Durability::None,
        max_batch_messages: batch,
        linger: Duration::from_secs(3600),
        multi_pack_index: None,
        ..ProducerConfig::default()
    };
    Producer::with_config(repo.open(), topic(name), config)
}

/// Feed `stream` to `git fast-import` in `repo`.
fn fast_import(repo: &TempRepo, stream: &[u8]) {
    let mut child = Command::new("git")
        .arg("--git-dir")
        .arg(&repo.path)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stream).unwrap();
    assert!(child.wait().unwrap().success());
}

fn publish(repo: &TempRepo, name: &str, range: std::ops::Range<usize>, batch: usize) {
    let mut producer = producer(repo, name, batch);
    for i in range {
        producer
            .append(format!("{{\"topic\":\"{name}\",\"n\":{i}}}").as_bytes())
            .unwrap();
    }
    producer.flush().unwrap();
}

#[test]
fn gitmq_written_packs_read_like_git_log_then_again_after_gc_aggressive() {
    let repo = TempRepo::new();
    publish(&repo, "t", 0..700, 64);
    let expected = oracle(&repo, "t", false);
    assert_eq!(expected.len(), 700);
    assert_eq!(consume_all(&repo, "t", "a", 100), expected, "gitmq's packs");
    repo.git(&["gc", "--aggressive", "--quiet"]);
    assert_eq!(
        consume_all(&repo, "t", "b", 33),
        expected,
        "one pack written by git, deflated, commits newest first"
    );
    let handle = repo.open();
    let mut consumer = handle.consumer(&consumer_name("a"), &topic("t")).unwrap();
    assert_eq!(consumer.lag().unwrap(), 700, "lag counts from no position");
}

#[test]
fn loose_and_packed_messages_mixed_on_one_topic_read_in_order() {
    let repo = TempRepo::new();
    publish(&repo, "t", 0..40, 16);
    // git appends loose commits on top of gitmq's packs ...
    let empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
    for i in 0..15 {
        let head = lines(&repo.git(&["rev-parse", "t"])).remove(0);
        let message = format!("loose {i}");
        let id = lines(&repo.git(&["commit-tree", empty_tree, "-p", &head, "-m", &message]));
        repo.git(&["update-ref", "refs/heads/t", &id[0], &head]);
    }
    // ... and gitmq goes on in packs.
    publish(&repo, "t", 40..60, 7);
    let loose = std::fs::read_dir(repo.path.join("objects"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().len() == 2)
        .count();
    assert!(loose > 0, "some messages are loose objects");
    let expected = oracle(&repo, "t", false);
    assert_eq!(expected.len(), 75);
    assert_eq!(consume_all(&repo, "t", "mixed", 9), expected);
}

#[test]
fn a_position_in_the_middle_resumes_right_after_it() {
    let repo = TempRepo::new();
    publish(&repo, "t", 0..300, 50);
    let expected = oracle(&repo, "t", false);
    for at in [0, 1, 49, 50, 51, 298, 299] {
        let name = format!("c{at}");
        repo.git(&[
            "update-ref",
            &format!("refs/gitmq/consumers/{name}/t"),
            &expected[at],
        ]);
        assert_eq!(
            consume_all(&repo, "t", &name, 17),
            expected[at + 1..],
            "resumes after message {at}"
        );
        let handle = repo.open();
        let mut consumer = handle.consumer(&consumer_name(&name), &topic("t")).unwrap();
        assert_eq!(consumer.lag().unwrap(), 299 - at);
    }
}

#[test]
fn a_position_not_on_the_topic_is_a_clear_error() {
    let repo = TempRepo::new();
    publish(&repo, "t", 0..20, 8);
    publish(&repo, "other", 0..5, 8);
    let elsewhere = oracle(&repo, "other", false).remove(2);
    repo.git(&["update-ref", "refs/gitmq/consumers/lost/t", &elsewhere]);
    let handle = repo.open();
    let mut consumer = handle
        .consumer(&consumer_name("lost"), &topic("t"))
        .unwrap();
    let err = consumer.poll(10).unwrap_err().to_string();
    assert!(
        err.contains(&elsewhere) && err.contains("not on the topic's history"),
        "{err}"
    );
    let err = consumer.lag().unwrap_err().to_string();
    assert!(err.contains("not on the topic's history"), "{err}");
}

#[test]
fn equal_and_backwards_commit_dates_change_nothing() {
    let repo = TempRepo::new();
    let mut stream = Vec::new();
    // Dates: ten equal, then going backwards by an hour each, then equal again.
    let dates: Vec<i64> = (0..60)
        .map(|i| match i {
            0..=9 => 1_700_000_000,
            10..=39 => 1_700_000_000 - 3600 * (i - 9),
            _ => 1_600_000_000,
        })
        .collect();
    for (i, date) in dates.iter().enumerate() {
        let message = format!("dated {i}");
        stream.extend_from_slice(
            format!(
                "commit refs/heads/t\ncommitter git <git@example.com> {date} +0000\ndata {}\n{message}\n",
                message.len()
            )
            .as_bytes(),
        );
    }
    fast_import(&repo, &stream);
    // gitmq appends too: its dates are now, far after the git ones.
    publish(&repo, "t", 0..10, 4);
    let expected = oracle(&repo, "t", false);
    assert_eq!(expected.len(), 70);
    let handle = repo.open();
    let mut consumer = handle.consumer(&consumer_name("d"), &topic("t")).unwrap();
    let mut got = Vec::new();
    loop {
        let messages = consumer.poll(7).unwrap();
        if messages.is_empty() {
            break;
        }
        got.extend(messages);
    }
    let ids: Vec<String> = got.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(ids, expected, "first-parent order, dates ignored");
    assert_eq!(got[15].payload, b"dated 15", "fast-import adds no newline");
    assert_eq!(got[15].time.seconds, dates[15]);
}

#[test]
fn a_merge_on_the_first_parent_chain_is_one_message_in_its_place() {
    let repo = TempRepo::new();
    publish(&repo, "main", 0..10, 4);
    publish(&repo, "side", 0..5, 4);
    let main = lines(&repo.git(&["rev-parse", "main"])).remove(0);
    let side = lines(&repo.git(&["rev-parse", "side"])).remove(0);
    let empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
    let merge = lines(&repo.git(&[
        "commit-tree",
        empty_tree,
        "-p",
        &main,
        "-p",
        &side,
        "-m",
        "join side",
    ]))
    .remove(0);
    repo.git(&["update-ref", "refs/heads/main", &merge, &main]);
    publish(&repo, "main", 10..13, 4);
    let expected = oracle(&repo, "main", true);
    assert_eq!(expected.len(), 14, "10 + the merge + 3, not side's 5");
    assert_eq!(consume_all(&repo, "main", "m", 5), expected);
    let handle = repo.open();
    let mut consumer = handle
        .consumer(&consumer_name("m2"), &topic("main"))
        .unwrap();
    let all = consumer.poll(100).unwrap();
    assert_eq!(all[10].payload, b"join side\n");
    assert_eq!(all[10].parent.map(|p| p.to_string()), Some(main));
    repo.git(&["gc", "--aggressive", "--quiet"]);
    assert_eq!(
        consume_all(&repo, "main", "m3", 3),
        expected,
        "after gc too"
    );
}

#[test]
fn small_segments_and_interleaved_topics_read_like_git_log() {
    let repo = TempRepo::new();
    // Two topics written in alternating one- and three-message batches: their messages
    // interleave in pack order, so pack-order neighbours are often the other topic's.
    for round in 0..40 {
        publish(&repo, "a", round..round + 1, 1);
        publish(&repo, "b", 3 * round..3 * round + 3, 3);
    }
    // Consolidate: one pack holding both topics, interleaved.
    repo.git(&["repack", "-a", "-d", "-q", "--window=0"]);
    for (name, len) in [("a", 40), ("b", 120)] {
        let expected = oracle(&repo, name, false);
        assert_eq!(expected.len(), len);
        for segment in [1, 2, 7, 1000] {
            let handle = repo.open();
            let mut consumer = handle
                .consumer(&consumer_name(&format!("s{segment}")), &topic(name))
                .unwrap()
                .with_segment_len(segment);
            let mut ids = Vec::new();
            while let Some(message) = consumer.next_message().unwrap() {
                ids.push(message.id.to_string());
            }
            assert_eq!(ids, expected, "topic {name}, segments of {segment}");
        }
    }
}

#[test]
fn ten_thousand_messages_in_chunks_with_restarts_are_delivered_at_least_once_in_order() {
    let repo = TempRepo::new();
    publish(&repo, "t", 0..10_000, 1000);
    let expected = oracle(&repo, "t", false);
    assert_eq!(expected.len(), 10_000);
    let handle = repo.open();
    let name = consumer_name("worker");
    let mut rng = Rng::new(0x5eed);
    let open = || {
        handle
            .consumer(&name, &topic("t"))
            .unwrap()
            .with_segment_len(1500)
    };
    let mut consumer = open();
    let (mut committed, mut delivered, mut seen) = (0usize, 0usize, vec![0u32; 10_000]);
    while committed < expected.len() {
        match rng.below(10) {
            0 => {
                // Crash and restart: what was not committed comes again.
                consumer = open();
                delivered = committed;
            }
            1..=3 => {
                consumer.commit().unwrap();
                committed = delivered;
                assert_eq!(
                    consumer.position().map(|p| p.to_string()),
                    committed.checked_sub(1).map(|i| expected[i].clone())
                );
            }
            _ => {
                let max = 1 + rng.below(700);
                let got = consumer.poll(max).unwrap();
                let to = (delivered + max).min(expected.len());
                let ids: Vec<String> = got.iter().map(|m| m.id.to_string()).collect();
                assert_eq!(ids, expected[delivered..to], "poll after {delivered}");
                for count in &mut seen[delivered..to] {
                    *count += 1;
                }
                delivered = to;
                if delivered == expected.len() {
                    consumer.commit().unwrap();
                    committed = delivered;
                }
            }
        }
    }
    assert!(seen.iter().all(|&n| n >= 1), "every message at least once");
    assert!(consumer.poll(10).unwrap().is_empty());
    assert_eq!(consumer.lag().unwrap(), 0);
}

#[test]
fn the_iterator_auto_commit_and_wait_for_new() {
    let repo = TempRepo::new();
    publish(&repo, "t", 0..25, 10);
    let handle = repo.open();
    let name = consumer_name("auto");
    let mut consumer = handle
        .consumer(&name, &topic("t"))
        .unwrap()
        .with_auto_commit(AutoCommit::every_messages(10))
        .with_wait_interval(Duration::from_millis(1));
    let first: Vec<_> = consumer.messages().take(12).map(Result::unwrap).collect();
    assert_eq!(first.len(), 12);
    // The 11th step committed the ten handed out before it.
    let position = handle
        .refs()
        .find(&FullName::new("refs/gitmq/consumers/auto/t").unwrap())
        .unwrap();
    assert_eq!(position, Some(first[9].id));
    let rest: Vec<_> = consumer.messages().map(Result::unwrap).collect();
    assert_eq!(rest.len(), 13);
    assert!(!consumer.wait_for_new(Duration::from_millis(20)).unwrap());
    let started = Instant::now();
    let writer = {
        let path = repo.path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let repo = gitmq::Repository::open(path).unwrap();
            repo.producer(&topic("t")).publish(b"late").unwrap()
        })
    };
    assert!(consumer.wait_for_new(Duration::from_secs(10)).unwrap());
    assert!(started.elapsed() >= Duration::from_millis(40));
    let late = writer.join().unwrap();
    let got = consumer.poll(10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, late);
    consumer.commit().unwrap();
    assert_eq!(consumer.position(), Some(late));
}

#[test]
fn consume_follow_prints_new_messages_as_they_arrive_and_exits_on_a_closed_pipe() {
    let repo = TempRepo::new();
    repo.gitmq(&["publish", "t", "one", "two"], b"");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gitmq"))
        .arg("--repo")
        .arg(&repo.path)
        .args(["consume", "t", "--consumer", "tail", "--follow"])
        .env_remove("GITMQ_REPO")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut next_line = || {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line
    };
    assert_eq!(next_line(), "one\n");
    assert_eq!(next_line(), "two\n");
    repo.gitmq(&["publish", "t", "three"], b"");
    assert_eq!(next_line(), "three\n", "printed as it arrives");
    let three = lines(&repo.git(&["rev-parse", "t"])).remove(0);
    let position = || {
        let out = crate::util::git_output(
            &[
                "--git-dir",
                repo.path.to_str().unwrap(),
                "rev-parse",
                "-q",
                "--verify",
                "refs/gitmq/consumers/tail/t",
            ],
            None,
        );
        lines(&out.stdout).pop()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while position().as_deref() != Some(three.as_str()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(position(), Some(three), "committed after the printed chunk");
    // The reader goes away; the next message's write finds the pipe closed.
    drop(out);
    repo.gitmq(&["publish", "t", "four"], b"");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "gitmq consume --follow did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "a closed pipe is a clean exit: {stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn a_repack_between_polls_is_followed() {
    let repo = TempRepo::new();
    publish(&repo, "t", 0..200, 20);
    let expected = oracle(&repo, "t", false);
    let handle = repo.open();
    let mut consumer = handle
        .consumer(&consumer_name("r"), &topic("t"))
        .unwrap()
        .with_segment_len(64);
    let mut ids: Vec<String> = consumer
        .poll(50)
        .unwrap()
        .iter()
        .map(|m| m.id.to_string())
        .collect();
    // Every pack the plan points into is replaced.
    repo.git(&["repack", "-a", "-d", "-f", "-q"]);
    loop {
        let messages = consumer.poll(30).unwrap();
        if messages.is_empty() {
            break;
        }
        ids.extend(messages.iter().map(|m| m.id.to_string()));
    }
    assert_eq!(ids, expected);
    let last: ObjectId = expected[199].parse().unwrap();
    assert_eq!(consumer.delivered(), Some(last));
}

#[test]
fn borrowed_and_owned_reads_mix_and_a_failed_visit_comes_again() {
    let repo = TempRepo::new();
    publish(&repo, "t", 0..120, 25);
    let expected = oracle(&repo, "t", false);
    let handle = repo.open();
    let mut consumer = handle
        .consumer(&consumer_name("mix"), &topic("t"))
        .unwrap()
        .with_segment_len(16);
    let mut ids = Vec::new();
    let mut rng = Rng::new(7);
    let mut failed_once = false;
    loop {
        let before = ids.len();
        match rng.below(3) {
            0 => ids.extend(
                consumer
                    .poll(1 + rng.below(9))
                    .unwrap()
                    .iter()
                    .map(|m| m.id.to_string()),
            ),
            1 => {
                if let Some(m) = consumer.next_message().unwrap() {
                    ids.push(m.id.to_string());
                }
            }
            _ => {
                let fail_at = (!failed_once && ids.len() > 50).then(|| 1 + rng.below(3));
                let mut seen = 0;
                let result = consumer.poll_with(1 + rng.below(9), |m| {
                    seen += 1;
                    if Some(seen) == fail_at {
                        return Err(gitmq::Error::from(gitmq::git::walk::Error::Diverged {
                            top: m.id,
                        }));
                    }
                    assert_eq!(
                        m.payload,
                        format!("{{\"topic\":\"t\",\"n\":{}}}", ids.len()).as_bytes()
                    );
                    ids.push(m.id.to_string());
                    Ok(())
                });
                match (result, fail_at) {
                    (Err(_), Some(_)) => failed_once = true,
                    (Ok(count), _) => assert_eq!(count, ids.len() - before),
                    (Err(err), None) => panic!("{err}"),
                }
            }
        }
        if ids.len() == before {
            let one = consumer.poll(1).unwrap();
            if one.is_empty() {
                break;
            }
            ids.extend(one.iter().map(|m| m.id.to_string()));
        }
    }
    assert!(failed_once);
    assert_eq!(
        ids, expected,
        "every message once, in order, across all three ways"
    );
}

#[test]
fn long_topics_read_like_git_log_in_gitmq_packs_and_interleaved_in_one_pack() {
    // Over 65,536 messages a backlog's chain is guessed from pack order and checked on two
    // cores (`git::guessed_chain`): in gitmq's packs the guess holds. In one pack written
    // oldest first with two topics interleaved (a0 b0 a1 b1 ..., as `git fast-import` writes
    // a stream), pack order suggests the other topic's commits as parents: the guess is
    // whole and wrong, its check refuses it, and the exact walk reads the topic.
    let repo = TempRepo::new();
    for round in 0..14 {
        publish(&repo, "a", 5_000 * round..5_000 * (round + 1), 5_000);
    }
    let expected = oracle(&repo, "a", false);
    assert_eq!(expected.len(), 70_000);
    assert_eq!(
        consume_all(&repo, "a", "x", 100_000),
        expected,
        "gitmq's packs"
    );

    let mut stream = Vec::new();
    for i in 0..70_000 {
        for name in ["c", "d"] {
            let message = format!("{name} {i}");
            stream.extend_from_slice(
                format!(
                    "commit refs/heads/{name}\ncommitter git <git@example.com> 1700000000 +0000\ndata {}\n{message}\n",
                    message.len()
                )
                .as_bytes(),
            );
        }
    }
    fast_import(&repo, &stream);
    for name in ["c", "d"] {
        let expected = oracle(&repo, name, false);
        assert_eq!(expected.len(), 70_000);
        assert_eq!(
            consume_all(&repo, name, "y", 100_000),
            expected,
            "topic {name}, interleaved"
        );
    }
}
