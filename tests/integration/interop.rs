//! The real `git` reads what gitmq wrote, and gitmq reads what git wrote.

use gitmq::{ConsumerName, Identity, Repository, TopicName};

use crate::util::{git, lines, TempRepo};

fn payloads() -> Vec<Vec<u8>> {
    vec![
        br#"{"order":1,"items":["a","b"]}"#.to_vec(),
        b"order: 2\nitems:\n  - a\n  - b\n".to_vec(),
        b"multi\n\nline\n\n".to_vec(),
        Vec::new(),
        b"no trailing newline".to_vec(),
        b"\xff\xfe latin-1 \xe9t\xe9".to_vec(),
    ]
}

#[test]
fn what_gitmq_writes_is_fsck_clean_and_git_log_reads_every_payload_in_order() {
    let repo = TempRepo::new();
    let topic = TopicName::new("orders").unwrap();
    let mut producer = repo.open().producer(&topic);
    let mut ids = producer.publish_batch(payloads()).unwrap();
    ids.push(producer.publish(b"one more").unwrap());
    repo.assert_fsck_clean();

    let logged_ids = lines(&repo.git(&["log", "--reverse", "--format=%H", "orders"]));
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    assert_eq!(logged_ids, ids, "git log lists the messages oldest first");

    let mut expected = payloads();
    expected.push(b"one more".to_vec());
    let bodies = repo.git(&["log", "--reverse", "-z", "--format=%B", "orders"]);
    let mut expected = expected.join(&b'\0');
    expected.push(b'\0');
    assert_eq!(
        bodies, expected,
        "git log -z shows each payload byte for byte"
    );
}

#[test]
fn git_cat_file_shows_the_author_the_date_and_the_empty_tree() {
    let repo = TempRepo::new();
    let topic = TopicName::new("audit/events").unwrap();
    let id = gitmq::ProducerConfig::default()
        .with_identity(Identity::new("auditor", "audit@example.com").unwrap())
        .open(&repo.open(), &topic)
        .publish(b"hello")
        .unwrap();
    let shown = String::from_utf8(repo.git(&["cat-file", "-p", &id.to_string()])).unwrap();
    assert!(
        shown.starts_with("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"),
        "{shown}"
    );
    assert!(
        shown.contains("\nauthor auditor <audit@example.com> "),
        "{shown}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let date: u64 = repo
        .git(&["log", "-1", "--format=%at", "audit/events"])
        .trim_ascii()
        .iter()
        .fold(0, |n, d| n * 10 + u64::from(d - b'0'));
    assert!(
        now.abs_diff(date) < 120,
        "author date {date} is now ({now})"
    );
    assert_eq!(repo.git(&["cat-file", "-t", &id.to_string()]), b"commit\n");
}

#[test]
fn gitmq_consumes_what_git_commit_allow_empty_wrote_in_a_work_tree() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    git(&["init", "-q", "-b", "jobs"], Some(work));
    let messages = ["first job", "second\njob\n", "{\"third\":3}"];
    for message in messages {
        git(
            &[
                "commit",
                "-q",
                "--allow-empty",
                "--cleanup=verbatim",
                "-m",
                message,
            ],
            Some(work),
        );
    }
    let sub = work.join("deep/dir");
    std::fs::create_dir_all(&sub).unwrap();
    let repo = Repository::discover(&sub).expect("discovers .git from a subdirectory");
    let topic = TopicName::new("jobs").unwrap();
    let mut consumer = repo
        .consumer(&ConsumerName::new("worker").unwrap(), &topic)
        .unwrap();
    let got = consumer.poll(100).unwrap();
    let payloads: Vec<&[u8]> = got.iter().map(|m| &m.payload[..]).collect();
    // `git commit -m` appends a newline to messages that lack one.
    assert_eq!(
        payloads,
        [&b"first job\n"[..], b"second\njob\n", b"{\"third\":3}\n"],
        "git's messages, oldest first"
    );
    assert_eq!(got[0].author, "git user");
    assert_eq!(got[0].email, "git@example.com");
    consumer.commit().unwrap();
    // git sees the position ref, and fsck still passes on a work tree repository.
    let decorated = git(
        &[
            "log",
            "-1",
            "--format=%D",
            "--decorate-refs=refs/gitmq/",
            "jobs",
        ],
        Some(work),
    );
    assert_eq!(
        String::from_utf8(decorated).unwrap().trim(),
        "refs/gitmq/consumers/worker/jobs"
    );
    git(&["fsck", "--strict"], Some(work));
}

#[test]
fn gitmq_reads_topics_and_positions_after_git_pack_refs() {
    let repo = TempRepo::new();
    let handle = repo.open();
    let topic = TopicName::new("t").unwrap();
    handle
        .producer(&topic)
        .publish_batch(["1", "2", "3"])
        .unwrap();
    let mut consumer = handle
        .consumer(&ConsumerName::new("c").unwrap(), &topic)
        .unwrap();
    assert_eq!(consumer.poll(2).unwrap().len(), 2);
    consumer.commit().unwrap();
    repo.git(&["pack-refs", "--all", "--prune"]);
    assert!(
        !repo.path.join("refs/heads/t").exists(),
        "the topic ref is packed now"
    );

    let handle = repo.open();
    assert_eq!(handle.topics().unwrap().len(), 1);
    let mut consumer = handle
        .consumer(&ConsumerName::new("c").unwrap(), &topic)
        .unwrap();
    let rest = consumer.poll(10).unwrap();
    assert_eq!(rest.len(), 1, "the packed position is honoured");
    assert_eq!(rest[0].payload, b"3");
    consumer.commit().unwrap();
    handle.producer(&topic).publish(b"4").unwrap();
    repo.assert_fsck_clean();
    assert_eq!(lines(&repo.git(&["log", "--format=%B", "-1", "t"]))[0], "4");
}

#[test]
fn a_topic_name_with_slashes_and_its_position_are_plain_git_refs() {
    let repo = TempRepo::new();
    let out = repo.gitmq(&["publish", "eu/orders", "x"], b"");
    assert!(out.status.success());
    let out = repo.gitmq(&["consume", "eu/orders", "--consumer", "billing"], b"");
    assert_eq!(out.stdout, b"x\n");
    let refs = lines(&repo.git(&["for-each-ref", "--format=%(refname)"]));
    assert_eq!(
        refs,
        [
            "refs/gitmq/consumers/billing/eu/orders",
            "refs/heads/eu/orders"
        ],
        "exactly a branch and a position ref, nothing under refs/tags"
    );
    repo.assert_fsck_clean();
}
