//! Join and split: exactly-once copies in the documented order, sources untouched, positions
//! carried over, interrupted joins recovered, git reading every result.

use gitmq::{
    topology::{self, record::record_ref},
    ConsumerName, ObjectId, Repository, TopicName,
};

use crate::{
    replay::{publish_dated, stdout_ok},
    util::{lines, TempRepo},
};

fn topic(name: &str) -> TopicName {
    TopicName::new(name).unwrap()
}

fn read_all(repo: &Repository, consumer: &str, topic: &TopicName) -> Vec<String> {
    let mut consumer = repo
        .consumer(&ConsumerName::new(consumer).unwrap(), topic)
        .unwrap();
    let messages = consumer.poll(10_000).unwrap();
    consumer.commit().unwrap();
    messages
        .into_iter()
        .map(|m| String::from_utf8(m.payload).unwrap())
        .collect()
}

/// `git log` of a topic, oldest first: author, email, date and payload of each message.
fn git_log(repo: &TempRepo, topic: &str) -> Vec<String> {
    lines(&repo.git(&["log", "--reverse", "--format=%an|%ae|%at|%B", topic]))
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn join_copies_each_message_once_merged_by_date_and_leaves_sources_alone() {
    let repo = TempRepo::new();
    let handle = repo.open();
    let (eu, us, all) = (topic("eu"), topic("us"), topic("all"));
    // eu: 10, 30, 20 (backwards), 40; us: 10 (ties eu's first), 25, 50.
    for (payload, date) in [("eu1", 10), ("eu2", 30), ("eu3", 20), ("eu4", 40)] {
        publish_dated(&handle, &eu, payload.as_bytes(), date);
    }
    for (payload, date) in [("us1", 10), ("us2", 25), ("us3", 50)] {
        publish_dated(&handle, &us, payload.as_bytes(), date);
    }
    let eu_head = handle.head(&eu).unwrap();
    assert_eq!(read_all(&handle, "eu-reader", &eu).len(), 4);

    let joined = topology::join(&handle, &[eu.clone(), us.clone()], &all, true).unwrap();
    assert_eq!(joined.copied, [(eu.clone(), 4), (us.clone(), 3)]);
    repo.assert_fsck_clean();
    // eu1/us1 tie at 10: eu first (named first); us2 (25) before eu2 (30); eu3 (20) must
    // follow eu2 (its own order); then eu4 (40), us3 (50).
    let expected = ["eu1", "us1", "us2", "eu2", "eu3", "eu4", "us3"];
    assert_eq!(read_all(&handle, "r", &all), expected);
    assert_eq!(
        git_log(&repo, "all"),
        [
            "clock|clock@example.com|10|eu1",
            "clock|clock@example.com|10|us1",
            "clock|clock@example.com|25|us2",
            "clock|clock@example.com|30|eu2",
            "clock|clock@example.com|20|eu3",
            "clock|clock@example.com|40|eu4",
            "clock|clock@example.com|50|us3"
        ],
        "copies keep author, email, date and payload"
    );

    // Sources and their consumers are untouched.
    assert_eq!(handle.head(&eu).unwrap(), eu_head);
    assert!(read_all(&handle, "eu-reader", &eu).is_empty());

    // Again: nothing new, nothing copied. Then only what is new.
    let again = topology::join(&handle, &[eu.clone(), us.clone()], &all, true).unwrap();
    assert_eq!(again.total(), 0);
    publish_dated(&handle, &us, b"us4", 5);
    publish_dated(&handle, &eu, b"eu5", 60);
    handle.producer(&all).publish(b"own").unwrap();
    let rows = stdout_ok(&repo.gitmq(&["join", "eu", "us", "--into", "all"], b""));
    assert_eq!(rows[..2], ["joined\teu\t1", "joined\tus\t1"]);
    assert_eq!(read_all(&handle, "r", &all), ["own", "us4", "eu5"]);
    // A source joined alone later continues where it stopped.
    publish_dated(&handle, &eu, b"eu6", 70);
    topology::join(&handle, std::slice::from_ref(&eu), &all, true).unwrap();
    assert_eq!(read_all(&handle, "r", &all), ["eu6"]);
    topology::join(&handle, &[us.clone(), eu.clone()], &all, true).unwrap();
    assert!(read_all(&handle, "r", &all).is_empty(), "nothing twice");
    repo.assert_fsck_clean();
    // The record's history is a git log of its own.
    let records = lines(&repo.git(&["log", "--format=%s", &record_ref(&all)]));
    assert_eq!(records.len(), 3);
    assert!(
        records.iter().all(|s| s == "gitmq join into all"),
        "{records:?}"
    );
}

#[test]
fn an_interrupted_join_is_neither_lost_nor_duplicated() {
    let repo = TempRepo::new();
    let handle = repo.open();
    let (a, dst) = (topic("a"), topic("dst"));
    handle.producer(&dst).publish(b"d0").unwrap();
    let base = handle.head(&dst).unwrap().unwrap();
    handle
        .producer(&a)
        .publish_batch([&b"a1"[..], b"a2"])
        .unwrap();
    topology::join(&handle, std::slice::from_ref(&a), &dst, true).unwrap();
    // A crash after the record moved but before the destination did: the destination is
    // back at its base (and a producer appended meanwhile).
    repo.git(&["update-ref", "refs/heads/dst", &base.to_string()]);
    handle.producer(&dst).publish(b"d1").unwrap();
    let record = handle.refs().find(&record_ref(&dst)).unwrap();
    let loaded = topology::record::load(&handle, &dst, record, handle.head(&dst).unwrap()).unwrap();
    assert_eq!(loaded.position(&a), None, "the record was not committed");
    topology::join(&handle, std::slice::from_ref(&a), &dst, true).unwrap();
    assert_eq!(read_all(&handle, "r", &dst), ["d0", "d1", "a1", "a2"]);
    handle.producer(&a).publish(b"a3").unwrap();
    topology::join(&handle, std::slice::from_ref(&a), &dst, true).unwrap();
    assert_eq!(read_all(&handle, "r", &dst), ["a3"]);
    repo.assert_fsck_clean();

    // A destination rewritten under the record is refused, not guessed at.
    let unrelated = handle.producer(&topic("x")).publish(b"x").unwrap();
    repo.git(&["update-ref", "refs/heads/dst", &unrelated.to_string()]);
    handle.producer(&a).publish(b"a4").unwrap();
    let err = topology::join(&handle, std::slice::from_ref(&a), &dst, true).unwrap_err();
    assert!(
        err.to_string()
            .contains("git update-ref -d refs/gitmq/joins/dst"),
        "{err}"
    );
}

#[test]
fn join_refuses_rewritten_sources_itself_and_duplicates() {
    let repo = TempRepo::new();
    let handle = repo.open();
    let (a, dst) = (topic("a"), topic("dst"));
    handle.producer(&a).publish(b"a1").unwrap();
    topology::join(&handle, std::slice::from_ref(&a), &dst, true).unwrap();
    let unrelated = handle.producer(&topic("y")).publish(b"y").unwrap();
    repo.git(&["update-ref", "refs/heads/a", &unrelated.to_string()]);
    let err = topology::join(&handle, std::slice::from_ref(&a), &dst, true).unwrap_err();
    assert!(
        err.to_string().contains("no longer on a's history"),
        "{err}"
    );
    let err = topology::join(&handle, std::slice::from_ref(&dst), &dst, true).unwrap_err();
    assert!(err.to_string().contains("into itself"), "{err}");
    let err = topology::join(&handle, &[a.clone(), a.clone()], &dst, true).unwrap_err();
    assert!(err.to_string().contains("named twice"), "{err}");
    let out = repo.gitmq(&["join", "--into", "dst"], b"");
    assert_eq!(out.status.code(), Some(2), "at least one source");
    assert_eq!(read_all(&handle, "r", &dst), ["a1"]);
}

#[test]
fn split_at_an_id_and_by_predicate_carries_positions_over() {
    let repo = TempRepo::new();
    let handle = repo.open();
    let t = topic("t");
    let payloads: Vec<String> = (1..=6)
        .map(|i| {
            format!(
                r#"{{"n":{i},"kind":"{}"}}"#,
                if i % 2 == 0 { "even" } else { "odd" }
            )
        })
        .collect();
    let ids: Vec<ObjectId> = handle.producer(&t).publish_batch(&payloads).unwrap();
    for (consumer, count) in [("early", 1), ("mid", 4), ("done", 6)] {
        let mut c = handle
            .consumer(&ConsumerName::new(consumer).unwrap(), &t)
            .unwrap();
        c.poll(count).unwrap();
        c.commit().unwrap();
    }
    let t_head = handle.head(&t).unwrap();

    let at = &ids[2].to_string()[..12];
    let rows = stdout_ok(&repo.gitmq(&["split", "t", "--at", at, "--into", "late"], b""));
    assert!(rows[0].starts_with("split\tlate\t4\t"), "{rows:?}");
    repo.assert_fsck_clean();
    let late = topic("late");
    assert_eq!(
        read_all(&handle, "fresh", &late),
        payloads[2..],
        "from --at on"
    );
    assert_eq!(
        read_all(&handle, "early", &late),
        payloads[2..],
        "early had processed none of them"
    );
    assert_eq!(
        read_all(&handle, "mid", &late),
        payloads[4..],
        "mid had processed 3 and 4"
    );
    assert!(read_all(&handle, "done", &late).is_empty());
    assert_eq!(
        handle.head(&t).unwrap(),
        t_head,
        "the split topic is not changed"
    );
    assert_eq!(
        lines(&repo.git(&["log", "--format=%B", "-n1", "late"]))[0],
        payloads[5],
        "git reads the new topic"
    );
    let roots = lines(&repo.git(&["rev-list", "--max-parents=0", "late"]));
    assert_eq!(roots.len(), 1, "the new topic has one root");

    stdout_ok(&repo.gitmq(
        &["split", "t", "--json", "kind=even", "--into", "even"],
        b"",
    ));
    let even = topic("even");
    assert_eq!(
        read_all(&handle, "early", &even),
        [
            payloads[1].clone(),
            payloads[3].clone(),
            payloads[5].clone()
        ]
    );
    assert_eq!(
        read_all(&handle, "mid", &even),
        [payloads[5].clone()],
        "2 and 4 processed on t"
    );
    let split = topology::split(
        &handle,
        &t,
        None,
        &topic("big"),
        |m| m.payload.contains(&b'5'),
        true,
    )
    .unwrap();
    assert_eq!(split.copies.len(), 1);
    assert_eq!(split.positions.len(), 1, "only done passed message 5");
    repo.assert_fsck_clean();
}

#[test]
fn split_refuses_an_existing_topic_an_id_off_the_topic_and_an_empty_selection() {
    let repo = TempRepo::new();
    let handle = repo.open();
    let t = topic("t");
    handle
        .producer(&t)
        .publish_batch([&b"1"[..], b"2"])
        .unwrap();
    handle.producer(&topic("late")).publish(b"x").unwrap();
    let out = repo.gitmq(&["split", "t", "--into", "late"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    let other = handle.producer(&topic("o")).publish(b"o").unwrap();
    let err = topology::split(&handle, &t, Some(other), &topic("n1"), |_| true, true).unwrap_err();
    assert!(
        err.to_string().contains("not a message of topic t"),
        "{err}"
    );
    let out = repo.gitmq(&["split", "t", "--contains", "nope", "--into", "n2"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(handle.head(&topic("n2")).unwrap().is_none());
}

#[test]
fn a_split_interrupted_before_its_topic_ref_runs_again_to_the_same_result() {
    let repo = TempRepo::new();
    let handle = repo.open();
    let t = topic("t");
    handle
        .producer(&t)
        .publish_batch([&b"1"[..], b"2", b"3"])
        .unwrap();
    let mut c = handle
        .consumer(&ConsumerName::new("c").unwrap(), &t)
        .unwrap();
    c.poll(2).unwrap();
    c.commit().unwrap();
    let first = topology::split(&handle, &t, None, &topic("n"), |_| true, true).unwrap();
    // Undo only the topic ref: the positions were written first and stay.
    repo.git(&["update-ref", "-d", "refs/heads/n"]);
    let second = topology::split(&handle, &t, None, &topic("n"), |_| true, true).unwrap();
    assert_eq!(first, second, "copies are deterministic");
    assert_eq!(read_all(&handle, "c", &topic("n")), ["3"]);
    repo.assert_fsck_clean();
}

#[test]
fn joins_racing_each_other_and_a_producer_copy_each_message_exactly_once() {
    let repo = TempRepo::new();
    let handle = repo.open();
    let (a, b, dst) = (topic("a"), topic("b"), topic("dst"));
    let mut expected: Vec<String> = Vec::new();
    for (source, name) in [(&a, "a"), (&b, "b")] {
        let payloads: Vec<String> = (0..300).map(|i| format!("{name}{i}")).collect();
        handle.producer(source).publish_batch(&payloads).unwrap();
        expected.extend(payloads);
    }
    let own: Vec<String> = (0..100).map(|i| format!("own{i}")).collect();
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            let mut producer = handle.producer(&dst);
            for payload in &own {
                producer.publish(payload.as_bytes()).unwrap();
            }
        });
        let joiners: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    for _ in 0..5 {
                        let joined = topology::join_in_rounds(
                            &handle,
                            &[a.clone(), b.clone()],
                            &dst,
                            false,
                            37,
                        );
                        // Losing every race is allowed; the next join finishes the work.
                        if let Err(err) = joined {
                            assert!(
                                matches!(
                                    err,
                                    gitmq::Error::Topology(topology::Error::Raced { .. })
                                ),
                                "{err}"
                            );
                        }
                    }
                })
            })
            .collect();
        producer.join().unwrap();
        for joiner in joiners {
            joiner.join().unwrap();
        }
    });
    topology::join(&handle, &[a.clone(), b.clone()], &dst, false).unwrap();
    let got = read_all(&handle, "r", &dst);
    let mut joined: Vec<String> = got
        .iter()
        .filter(|p| !p.starts_with("own"))
        .cloned()
        .collect();
    let produced: Vec<String> = got
        .iter()
        .filter(|p| p.starts_with("own"))
        .cloned()
        .collect();
    assert_eq!(produced, own, "the producer's messages, all, in its order");
    joined.sort();
    expected.sort();
    assert_eq!(joined, expected, "every source message exactly once");
    repo.assert_fsck_clean();
}

#[test]
fn sigkill_during_joins_never_loses_or_duplicates_a_message() {
    let repo = TempRepo::new();
    let handle = repo.open();
    let (a, b) = (topic("a"), topic("b"));
    let mut rng = crate::util::Rng::new(0x1017_cafe);
    let mut published: Vec<String> = Vec::new();
    let mut killed_mid_way = 0;
    for round in 0..25 {
        for (source, name) in [(&a, "a"), (&b, "b")] {
            let payloads: Vec<String> = (0..150).map(|i| format!("{name}-{round}-{i}")).collect();
            handle.producer(source).publish_batch(&payloads).unwrap();
            published.extend(payloads);
        }
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gitmq"))
            .arg("--repo")
            .arg(&repo.path)
            .args(["join", "a", "b", "--into", "dst", "--round", "20"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn gitmq");
        std::thread::sleep(std::time::Duration::from_millis(1 + rng.below(40) as u64));
        child.kill().expect("SIGKILL");
        if !child.wait().unwrap().success() {
            killed_mid_way += 1;
        }
        for line in repo.fsck_complaints() {
            assert!(
                line.starts_with("warning: garbage found:") && line.contains("/tmp_"),
                "round {round}: fsck complained: {line}"
            );
        }
        // Locks a killed writer left behind: the operator's `gitmq unlock`.
        let out = repo.gitmq(&["unlock", "--older-than", "0"], b"");
        assert!(out.status.success());
    }
    assert!(
        killed_mid_way > 5,
        "the kills hit joins at work: {killed_mid_way}"
    );
    topology::join(&handle, &[a.clone(), b.clone()], &topic("dst"), true).unwrap();
    let got = read_all(&handle, "r", &topic("dst"));
    for prefix in ["a-", "b-"] {
        let of_source: Vec<&String> = got.iter().filter(|p| p.starts_with(prefix)).collect();
        let expected: Vec<&String> = published.iter().filter(|p| p.starts_with(prefix)).collect();
        assert_eq!(
            of_source.len(),
            expected.len(),
            "every message of source {prefix} exactly once"
        );
        assert_eq!(of_source, expected, "in the source's order");
    }
    repo.gitmq(&["publish", "other", "cleans temporary files"], b"");
    repo.assert_fsck_clean();
}

#[test]
fn a_join_destination_rewritten_by_a_rebuild_is_recognised_by_content_and_not_copied_twice() {
    let repo = TempRepo::new();
    let handle = repo.open();
    let (a, dst) = (topic("a"), topic("dst"));
    let d0 = handle.producer(&dst).publish(b"d0").unwrap();
    handle
        .producer(&a)
        .publish_batch([&b"a1"[..], b"a2"])
        .unwrap();
    topology::join(&handle, std::slice::from_ref(&a), &dst, true).unwrap();
    // What a push that lost a race does: another producer's message r1 lands on d0 and the
    // unpushed copies are copied again on top of it (new ids, same content).
    let remote = handle.producer(&topic("remote")).publish(b"r1").unwrap();
    let r1 = gitmq::git::message::restack::restack(&handle, Some(d0), &[remote], true)
        .unwrap()
        .tip()
        .unwrap();
    let head = handle.head(&dst).unwrap().unwrap();
    let mut odb = handle.odb();
    let copies = gitmq::git::walk::ids_after(&mut odb, head, Some(d0), &mut Vec::new()).unwrap();
    let renamed = gitmq::git::message::restack::restack(&handle, Some(r1), &copies, true).unwrap();
    repo.git(&[
        "update-ref",
        "refs/heads/dst",
        &renamed.tip().unwrap().to_string(),
    ]);
    handle.producer(&a).publish(b"a3").unwrap();
    topology::join(&handle, std::slice::from_ref(&a), &dst, true).unwrap();
    assert_eq!(read_all(&handle, "r", &dst), ["d0", "r1", "a1", "a2", "a3"]);

    // The base renamed too (nothing of the destination was pushed): found by content still.
    let all = gitmq::git::walk::ids_after(
        &mut odb,
        handle.head(&dst).unwrap().unwrap(),
        None,
        &mut Vec::new(),
    )
    .unwrap();
    let root = handle.producer(&topic("root")).publish(b"r0").unwrap();
    let moved = gitmq::git::message::restack::restack(&handle, Some(root), &all, true).unwrap();
    repo.git(&[
        "update-ref",
        "refs/heads/dst",
        &moved.tip().unwrap().to_string(),
    ]);
    handle.producer(&a).publish(b"a4").unwrap();
    topology::join(&handle, std::slice::from_ref(&a), &dst, true).unwrap();
    assert_eq!(
        read_all(&handle, "r2", &dst),
        ["r0", "d0", "r1", "a1", "a2", "a3", "a4"]
    );
    repo.assert_fsck_clean();
}
