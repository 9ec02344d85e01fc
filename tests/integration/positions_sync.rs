//! Consumer positions shared between machines only move forward on the server, whatever
//! order fetches and pushes come in (found by the multi-node soak, `tests/soak`).

use gitmq::{
    replicate::{
        self,
        http::{Options, ReqwestClient},
        push::{PushOptions, Pusher},
        FetchOptions,
    },
    Consumer, ConsumerName, TopicName,
};

use crate::{checks::assert_sound, server::HttpServer, util::TempRepo};

fn client() -> ReqwestClient {
    ReqwestClient::new(Options::default()).unwrap()
}

fn machine(url: &str) -> TempRepo {
    let repo = TempRepo::new();
    repo.git(&["remote", "add", "origin", url]);
    repo
}

fn publish(repo: &TempRepo, payloads: &[&str]) {
    repo.open()
        .producer(&TopicName::new("events").unwrap())
        .publish_batch(payloads.iter().map(|p| p.as_bytes()))
        .unwrap();
}

fn push(repo: &TempRepo) {
    let repo = repo.open();
    Pusher::new(&repo, "origin", client())
        .unwrap()
        .push(&repo, PushOptions::default())
        .unwrap();
}

fn fetch(repo: &TempRepo) {
    replicate::fetch_with(&repo.open(), "origin", client(), FetchOptions::default()).unwrap();
}

fn consume(repo: &TempRepo, count: usize) -> gitmq::ObjectId {
    let mut consumer = Consumer::open(
        repo.open(),
        ConsumerName::new("c0").unwrap(),
        TopicName::new("events").unwrap(),
    )
    .unwrap();
    assert_eq!(consumer.poll(count).unwrap().len(), count);
    consumer.commit().unwrap();
    consumer.position().unwrap()
}

/// A producer's machine has adopted consumer c0's position; c0 moves on elsewhere; then the
/// producer fetches while its topic has diverged (it published, another producer pushed), so
/// its copy of c0 is not adopted: its push must not put that stale copy back on the server.
#[test]
fn a_producers_stale_copy_of_a_position_never_moves_the_servers_back() {
    let server = HttpServer::start();
    let bare = server.bare_repo("q");
    let url = server.url("q");
    let (producer, other, consumer) = (machine(&url), machine(&url), machine(&url));
    publish(&producer, &["m0", "m1", "m2", "m3", "m4"]);
    push(&producer);
    fetch(&consumer);
    consume(&consumer, 2);
    push(&consumer);
    fetch(&producer); // adopts c0's position (it has none)
    let further = consume(&consumer, 2);
    push(&consumer);
    fetch(&other);
    publish(&other, &["o0"]);
    push(&other);
    publish(&producer, &["p0"]);
    fetch(&producer); // its topic has diverged: c0 is not adopted here
    push(&producer); // rebuilds p0 on o0
    let on_server = crate::util::git(
        &[
            "--git-dir",
            bare.to_str().unwrap(),
            "rev-parse",
            "refs/gitmq/consumers/c0/events",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8(on_server).unwrap().trim(),
        further.to_string(),
        "the server keeps the further position"
    );
    fetch(&producer);
    assert_eq!(
        producer
            .open()
            .refs()
            .find(&gitmq::git::refs::FullName::new("refs/gitmq/consumers/c0/events").unwrap())
            .unwrap(),
        Some(further),
        "once in sync, the producer's machine adopts it"
    );
    for repo in [&producer, &other, &consumer] {
        assert_sound(&repo.path);
    }
    assert_sound(&bare);
}

/// A producer publishing steadily, another producer having pushed first: the push rebuilds
/// the unpushed messages onto the remote's head, those its own producer appended meanwhile
/// included, and gets them through, rather than losing the race to its own publisher at
/// every attempt (found by the soak: no producer's message reached the server until
/// publishing stopped).
#[test]
fn a_push_gets_through_while_its_own_producer_keeps_publishing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let server = HttpServer::start();
    let bare = server.bare_repo("q");
    let url = server.url("q");
    let (busy, other) = (machine(&url), machine(&url));
    publish(&busy, &["first"]);
    push(&busy);
    fetch(&other);
    let running = AtomicBool::new(true);
    let outcomes = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut n = 0;
            while running.load(Ordering::SeqCst) {
                let batch: Vec<String> = (0..5).map(|i| format!("busy {n}-{i}")).collect();
                publish(&busy, &batch.iter().map(String::as_str).collect::<Vec<_>>());
                n += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        let repo = busy.open();
        let mut pusher = Pusher::new(&repo, "origin", client()).unwrap();
        let outcomes: Vec<_> = (0..3)
            .map(|round| {
                // Another producer pushed first: this push must rebuild.
                publish(&other, &[&format!("other {round}")]);
                push(&other);
                pusher
                    .push(&repo, PushOptions::default())
                    .map(|report| (report.attempts, report.rebuilt.len()))
            })
            .collect();
        running.store(false, Ordering::SeqCst);
        outcomes
    });
    eprintln!("pushes while publishing (attempts, rebuilds): {outcomes:?}");
    assert!(
        outcomes.iter().all(Result::is_ok),
        "every push got through: {outcomes:?}"
    );
    let on_server = crate::checks::stable_ids(&bare, "events").len();
    assert!(on_server > 4, "{on_server}");
    push(&busy);
    assert_sound(&busy.path);
    assert_sound(&bare);
}

/// A fetch that stops between moving a position's tracking ref and adopting the position (a
/// SIGKILL, or here a lock held on the position) must not leave the tracking ref ahead of the
/// local position: the next push would take the stale local copy for one moved here and put
/// it back over the server's (found by the soak, whose syncs are SIGKILLed at random).
#[test]
fn a_fetch_cut_short_before_adopting_a_position_never_lets_a_push_move_it_back() {
    let server = HttpServer::start();
    let bare = server.bare_repo("q");
    let url = server.url("q");
    let (producer, consumer) = (machine(&url), machine(&url));
    publish(&producer, &["m0", "m1", "m2", "m3", "m4"]);
    push(&producer);
    fetch(&consumer);
    consume(&consumer, 2);
    push(&consumer);
    fetch(&producer); // adopts c0's position
    let further = consume(&consumer, 2);
    push(&consumer);
    let lock = producer.path.join("refs/gitmq/consumers/c0/events.lock");
    std::fs::write(&lock, b"").unwrap();
    let cut = replicate::fetch_with(
        &producer.open(),
        "origin",
        client(),
        FetchOptions::default(),
    );
    assert!(cut.is_err(), "the position's lock is held: {cut:?}");
    std::fs::remove_file(&lock).unwrap();
    push(&producer);
    let on_server = crate::util::git(
        &[
            "--git-dir",
            bare.to_str().unwrap(),
            "rev-parse",
            "refs/gitmq/consumers/c0/events",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8(on_server).unwrap().trim(),
        further.to_string(),
        "the server keeps the further position"
    );
    fetch(&producer);
    assert_sound(&producer.path);
    assert_sound(&bare);
}
