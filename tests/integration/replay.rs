//! Replay and reset: `consume --from-beginning|--latest|--from|--since`, `Consumer::open_at`,
//! `consumers reset|delete` (compare-and-swap, packed refs) checked against git.

use gitmq::{
    position::{self, StartAt},
    Consumer, ConsumerName, ObjectId, Repository, TopicName,
};

use crate::util::{lines, TempRepo};

/// Append a message with the author date `seconds` (any order: clocks go backwards) to
/// `topic`, written the way a producer would: a loose commit, then the ref by CAS.
pub fn publish_dated(
    repo: &Repository,
    topic: &TopicName,
    payload: &[u8],
    seconds: i64,
) -> ObjectId {
    let head = repo.head(topic).unwrap();
    let mut body = Vec::new();
    gitmq::git::message::encode(
        &mut body,
        head.as_deref(),
        &gitmq::Identity::new("clock", "clock@example.com").unwrap(),
        gix_date_time(seconds),
        payload,
    );
    let mut dirs = Vec::new();
    let id = repo
        .odb()
        .loose()
        .write(gix_object::Kind::Commit, &body, false, &mut dirs)
        .unwrap();
    let lock = repo
        .refs()
        .lock(&topic.ref_name(), std::time::Duration::from_secs(1))
        .unwrap();
    lock.commit(gitmq::git::refs::Expected::from_current(head), &id, false)
        .unwrap();
    id
}

fn gix_date_time(seconds: i64) -> gix_date::Time {
    gix_date::Time::new(seconds, 0)
}

fn payloads(consumer: &mut Consumer) -> Vec<String> {
    consumer
        .poll(1000)
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m.payload).unwrap())
        .collect()
}

pub fn stdout_ok(out: &std::process::Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "gitmq failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(&out.stdout)
}

#[test]
fn consume_start_flags_replay_or_move_the_position_and_if_new_respects_it() {
    let repo = TempRepo::new();
    let ids = stdout_ok(&repo.gitmq(&["publish", "t", "1", "2", "3", "4", "5"], b""));
    assert_eq!(
        stdout_ok(&repo.gitmq(&["consume", "t", "c", "--max", "2"], b"")),
        ["1", "2"]
    );
    let position = |repo: &TempRepo| {
        String::from_utf8(repo.git(&["rev-parse", "refs/gitmq/consumers/c/t"]))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(position(&repo), ids[1]);

    let replay = repo.gitmq(
        &["consume", "t", "c", "--from-beginning", "--no-commit"],
        b"",
    );
    assert_eq!(
        stdout_ok(&replay),
        ["1", "2", "3", "4", "5"],
        "a read-only replay"
    );
    assert_eq!(position(&repo), ids[1], "--no-commit leaves the position");
    repo.assert_fsck_clean();

    let from = repo.gitmq(
        &["consume", "t", "c", "--from", &ids[3][..10], "--max", "1"],
        b"",
    );
    assert_eq!(
        stdout_ok(&from),
        ["4"],
        "--from ID prints ID first (a unique prefix works)"
    );
    assert_eq!(position(&repo), ids[3]);

    assert!(stdout_ok(&repo.gitmq(&["consume", "t", "c", "--latest"], b"")).is_empty());
    assert_eq!(
        position(&repo),
        ids[4],
        "--latest moves the position to the head even with nothing printed"
    );
    repo.gitmq(&["publish", "t", "6"], b"");
    assert_eq!(stdout_ok(&repo.gitmq(&["consume", "t", "c"], b"")), ["6"]);
    repo.assert_fsck_clean();

    let if_new = repo.gitmq(&["consume", "t", "c", "--from-beginning", "--if-new"], b"");
    assert!(
        stdout_ok(&if_new).is_empty(),
        "c has a position: --if-new keeps it"
    );
    let fresh = repo.gitmq(
        &["consume", "t", "--consumer", "d", "--latest", "--if-new"],
        b"",
    );
    assert!(stdout_ok(&fresh).is_empty());
    repo.gitmq(&["publish", "t", "7"], b"");
    assert_eq!(
        stdout_ok(&repo.gitmq(&["consume", "t", "d"], b"")),
        ["7"],
        "d started at the latest"
    );

    let both = repo.gitmq(&["consume", "t", "c", "--latest", "--from-beginning"], b"");
    assert_eq!(
        both.status.code(),
        Some(2),
        "start flags exclude each other"
    );
    let elsewhere = repo.gitmq(&["publish", "u", "x"], b"");
    let other = stdout_ok(&elsewhere).remove(0);
    let off = repo.gitmq(&["consume", "t", "c", "--from", &other], b"");
    assert_eq!(off.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&off.stderr).contains("is not a message of topic t"),
        "{}",
        String::from_utf8_lossy(&off.stderr)
    );
    repo.assert_fsck_clean();
}

#[test]
fn since_is_the_first_message_from_the_oldest_at_or_after_the_time_with_equal_and_backwards_dates()
{
    let repo = TempRepo::new();
    let handle = repo.open();
    let topic = TopicName::new("clock").unwrap();
    // Dates as producers with bad clocks write them: equal runs, backwards jumps.
    let dates = [100, 200, 200, 200, 150, 300, 50, 300];
    let ids: Vec<ObjectId> = dates
        .iter()
        .enumerate()
        .map(|(i, d)| publish_dated(&handle, &topic, format!("m{i}").as_bytes(), *d))
        .collect();
    let name = ConsumerName::new("r").unwrap();
    let read_since = |seconds: i64| {
        let mut consumer = Consumer::open_at(
            handle.clone(),
            name.clone(),
            topic.clone(),
            &StartAt::Since(seconds),
        )
        .unwrap();
        payloads(&mut consumer)
    };
    let all: Vec<String> = (0..dates.len()).map(|i| format!("m{i}")).collect();
    assert_eq!(read_since(0), all);
    assert_eq!(
        read_since(100),
        all,
        "at or after: the first message itself"
    );
    assert_eq!(read_since(101), all[1..], "the first of three equal dates");
    assert_eq!(read_since(200), all[1..]);
    assert_eq!(
        read_since(150),
        all[1..],
        "m4 (150) is later on the chain than m1 (200): the scan from the oldest stops at m1"
    );
    assert_eq!(
        read_since(201),
        all[5..],
        "then everything after it, whatever its date (m6 is 50)"
    );
    assert_eq!(
        read_since(301),
        Vec::<String>::new(),
        "nothing that new: like --latest"
    );
    assert_eq!(
        position::resolve(&handle, &topic, &StartAt::Since(301)).unwrap(),
        Some(ids[7])
    );

    // The CLI takes RFC 3339 and @unix times, and git's own log agrees with the dates.
    let out = repo.gitmq(
        &[
            "consume",
            "clock",
            "cli",
            "--since",
            "1970-01-01T00:03:20Z",
            "--no-commit",
        ],
        b"",
    );
    assert_eq!(stdout_ok(&out), all[1..]);
    let out = repo.gitmq(
        &["consume", "clock", "cli", "--since", "@250", "--no-commit"],
        b"",
    );
    assert_eq!(stdout_ok(&out), all[5..]);
    let git_dates = lines(&repo.git(&["log", "--reverse", "--format=%at", "clock"]));
    assert_eq!(git_dates, dates.map(|d| d.to_string()));
    let bad = repo.gitmq(
        &["consume", "clock", "cli", "--since", "next tuesday-ish"],
        b"",
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a time"));
    repo.assert_fsck_clean();
}

#[test]
fn reset_is_a_compare_and_swap_and_refuses_ids_off_the_topic() {
    let repo = TempRepo::new();
    let handle = repo.open();
    let topic = TopicName::new("t").unwrap();
    let ids = handle
        .producer(&topic)
        .publish_batch([&b"a"[..], b"b", b"c", b"d"])
        .unwrap();
    let other = handle
        .producer(&TopicName::new("u").unwrap())
        .publish(b"x")
        .unwrap();
    let name = ConsumerName::new("c").unwrap();
    let mut running = handle.consumer(&name, &topic).unwrap();
    running.poll(3).unwrap();
    running.commit().unwrap();

    let err = position::reset(&handle, &name, &topic, &StartAt::At(other)).unwrap_err();
    assert!(
        err.to_string().contains("not a message of topic t"),
        "{err}"
    );
    assert_eq!(running.position(), Some(ids[2]), "unchanged");

    let reset = position::reset(&handle, &name, &topic, &StartAt::At(ids[1])).unwrap();
    assert_eq!((reset.old, reset.new), (Some(ids[2]), Some(ids[0])));
    assert_eq!(
        payloads(&mut handle.consumer(&name, &topic).unwrap()),
        ["b", "c", "d"]
    );
    // The consumer that was running when the reset happened does not overwrite it.
    running.poll(1).unwrap();
    let err = running.commit().unwrap_err();
    assert!(err.to_string().contains("changed"), "{err}");
    assert_eq!(
        handle.refs().find(&name.position_ref(&topic)).unwrap(),
        Some(ids[0])
    );

    // CLI: beginning removes the position, latest names the head, ids and times work.
    let out = repo.gitmq(&["consumers", "reset", "c", "t", "--to", "beginning"], b"");
    assert_eq!(stdout_ok(&out), [format!("{}\t-", ids[0])]);
    assert!(repo.git(&["for-each-ref", "refs/gitmq/"]).is_empty());
    let out = repo.gitmq(&["consumers", "reset", "c", "t", "--to", "latest"], b"");
    assert_eq!(stdout_ok(&out), [format!("-\t{}", ids[3])]);
    let out = repo.gitmq(
        &[
            "consumers",
            "reset",
            "c",
            "t",
            "--to",
            &ids[2].to_string()[..8],
        ],
        b"",
    );
    assert_eq!(stdout_ok(&out), [format!("{}\t{}", ids[3], ids[1])]);
    let out = repo.gitmq(&["consumers", "reset", "c", "t", "--to", "1h"], b"");
    assert_eq!(
        stdout_ok(&out),
        [format!("{}\t-", ids[1])],
        "all were published within the hour"
    );
    let out = repo.gitmq(
        &["consumers", "reset", "c", "t", "--to", &other.to_string()],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "an id off the topic is refused");
    assert!(
        repo.git(&["for-each-ref", "refs/gitmq/"]).is_empty(),
        "and nothing moved"
    );
    repo.assert_fsck_clean();
}

#[test]
fn consumers_lists_position_head_and_lag_as_text_and_json() {
    let repo = TempRepo::new();
    let ids = stdout_ok(&repo.gitmq(&["publish", "t", "1", "2", "3"], b""));
    repo.gitmq(&["consume", "t", "a", "--max", "1"], b"");
    repo.gitmq(&["consume", "t", "b"], b"");
    let rows = stdout_ok(&repo.gitmq(&["consumers"], b""));
    assert_eq!(
        rows,
        [
            format!("a\tt\t{}\t{}\t2", ids[0], ids[2]),
            format!("b\tt\t{}\t{}\t0", ids[2], ids[2])
        ]
    );
    let json = stdout_ok(&repo.gitmq(&["consumers", "--format", "json"], b""));
    let first: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
    assert_eq!(first["consumer"], "a");
    assert_eq!(first["topic"], "t");
    assert_eq!(first["position"], ids[0].as_str());
    assert_eq!(first["head"], ids[2].as_str());
    assert_eq!(first["lag"], 2);
    // A position that is not on its topic's history has an unknown lag.
    repo.git(&["update-ref", "refs/heads/t", &ids[0]]);
    let rows = stdout_ok(&repo.gitmq(&["consumers", "list"], b""));
    assert!(rows[1].ends_with("\t?"), "{rows:?}");
    let json = stdout_ok(&repo.gitmq(&["consumers", "list", "--format", "json"], b""));
    let second: serde_json::Value = serde_json::from_str(&json[1]).unwrap();
    assert!(second["lag"].is_null());
}

#[test]
fn delete_removes_packed_positions_the_way_git_does() {
    let repo = TempRepo::new();
    repo.gitmq(&["publish", "t", "1", "2"], b"");
    repo.gitmq(&["publish", "eu/u", "1"], b"");
    for (consumer, topic) in [("a", "t"), ("a", "eu/u"), ("b", "t")] {
        stdout_ok(&repo.gitmq(&["consume", topic, consumer, "--max", "1"], b""));
    }
    repo.git(&["pack-refs", "--all"]);
    assert!(
        !repo.path.join("refs/gitmq/consumers/a/t").exists(),
        "packed only"
    );
    let packed = std::fs::read_to_string(repo.path.join("packed-refs")).unwrap();
    assert!(packed.contains("refs/gitmq/consumers/a/eu/u"));

    let out = repo.gitmq(&["consumers", "delete", "a", "t"], b"");
    assert_eq!(stdout_ok(&out).len(), 1);
    let refs = lines(&repo.git(&["for-each-ref", "--format=%(refname)", "refs/gitmq/"]));
    assert_eq!(
        refs,
        ["refs/gitmq/consumers/a/eu/u", "refs/gitmq/consumers/b/t"]
    );
    repo.assert_fsck_clean();

    // A loose value over a packed one: both go, git sees neither.
    stdout_ok(&repo.gitmq(
        &["consume", "eu/u", "a", "--from-beginning", "--max", "1"],
        b"",
    ));
    assert!(repo.path.join("refs/gitmq/consumers/a/eu/u").exists());
    let out = repo.gitmq(&["consumers", "delete", "a"], b"");
    assert_eq!(stdout_ok(&out).len(), 1);
    let refs = lines(&repo.git(&["for-each-ref", "--format=%(refname)", "refs/gitmq/"]));
    assert_eq!(refs, ["refs/gitmq/consumers/b/t"]);
    let packed = std::fs::read_to_string(repo.path.join("packed-refs")).unwrap();
    assert!(!packed.contains("consumers/a/"), "{packed}");
    assert!(packed.starts_with("# pack-refs with:"), "git's header kept");
    assert!(
        !repo.path.join("refs/gitmq/consumers/a").exists(),
        "empty directories removed"
    );
    assert!(repo
        .gitmq(&["consumers", "delete", "a"], b"")
        .stdout
        .is_empty());
    // git can still read and write the file after gitmq rewrote it.
    repo.git(&["update-ref", "-d", "refs/gitmq/consumers/b/t"]);
    assert!(repo.git(&["for-each-ref", "refs/gitmq/"]).is_empty());
    repo.assert_fsck_clean();
}

#[test]
fn seek_replays_without_moving_the_position_until_commit_which_may_move_it_back_or_remove_it() {
    let repo = TempRepo::new();
    let handle = repo.open();
    let topic = TopicName::new("t").unwrap();
    let ids = handle
        .producer(&topic)
        .publish_batch([&b"a"[..], b"b", b"c"])
        .unwrap();
    let name = ConsumerName::new("c").unwrap();
    let mut consumer = handle.consumer(&name, &topic).unwrap();
    assert_eq!(payloads(&mut consumer), ["a", "b", "c"]);
    consumer.commit().unwrap();

    consumer.seek(&StartAt::At(ids[1])).unwrap();
    assert_eq!(consumer.position(), Some(ids[2]), "seeking moves nothing");
    assert_eq!(consumer.poll(1).unwrap()[0].payload, b"b");
    consumer.commit().unwrap();
    assert_eq!(
        handle.refs().find(&name.position_ref(&topic)).unwrap(),
        Some(ids[1]),
        "commit after a replay moves the position back"
    );
    consumer.seek(&StartAt::Beginning).unwrap();
    consumer.commit().unwrap();
    assert!(
        repo.git(&["for-each-ref", "refs/gitmq/"]).is_empty(),
        "the beginning is no position"
    );
    assert_eq!(payloads(&mut consumer), ["a", "b", "c"]);
    repo.assert_fsck_clean();
}
