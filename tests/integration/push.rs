//! Push over smart HTTP against a real server (lighttpd + git-http-backend): what gitmq pushes
//! is what `git clone` + `git fsck --strict` + `git log` see; concurrent producers lose and
//! duplicate nothing; positions travel; auth, hooks and dates.

use std::collections::HashMap;

use gitmq::{
    git::refs::FullName,
    replicate::{self, http::ReqwestClient, push::PushOptions},
    ConsumerName, TopicName,
};

use crate::{
    server::{HttpServer, PASSWORD, USER},
    util::{git, git_output, lines, TempRepo},
};

fn client() -> ReqwestClient {
    ReqwestClient::new(replicate::http::Options::default()).unwrap()
}

fn publish(repo: &TempRepo, topic: &str, payloads: impl IntoIterator<Item = String>) {
    let payloads: Vec<String> = payloads.into_iter().collect();
    repo.open()
        .producer(&TopicName::new(topic).unwrap())
        .publish_batch(payloads.iter().map(String::as_bytes))
        .unwrap();
}

fn with_origin(url: &str) -> TempRepo {
    let repo = TempRepo::new();
    repo.git(&["remote", "add", "origin", url]);
    repo
}

/// The payloads of `topic` in a bare clone of the served repository, oldest first, after
/// `git fsck --strict` passed on the clone.
fn remote_log(url: &str, topic: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("clone.git");
    git(
        &["clone", "-q", "--mirror", url, clone.to_str().unwrap()],
        None,
    );
    let fsck = git_output(
        &["--git-dir", clone.to_str().unwrap(), "fsck", "--strict"],
        None,
    );
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    let out = git(
        &[
            "--git-dir",
            clone.to_str().unwrap(),
            "log",
            "--first-parent",
            "--reverse",
            "--format=%B%x00",
            &format!("refs/heads/{topic}"),
        ],
        None,
    );
    String::from_utf8(out)
        .unwrap()
        .split('\0')
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

fn remote_refs(url: &str) -> HashMap<String, String> {
    let out = git(&["ls-remote", url], None);
    lines(&out)
        .into_iter()
        .filter_map(|l| {
            let (id, name) = l.split_once('\t')?;
            Some((name.to_owned(), id.to_owned()))
        })
        .collect()
}

#[test]
fn a_push_is_cloned_fsck_clean_and_the_next_push_sends_only_what_is_new() {
    let server = HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    let producer = with_origin(&url);
    publish(
        &producer,
        "orders",
        (0..50).map(|i| format!("{{\"n\":{i}}}")),
    );
    let repo = producer.open();
    let topic = TopicName::new("orders").unwrap();
    let consumer = ConsumerName::new("billing").unwrap();
    let mut billing = gitmq::Consumer::open(repo.clone(), consumer.clone(), topic.clone()).unwrap();
    assert_eq!(billing.poll(20).unwrap().len(), 20);
    billing.commit().unwrap();

    let mut pusher = replicate::push::Pusher::new(&repo, "origin", client()).unwrap();
    let report = pusher.push(&repo, PushOptions::default()).unwrap();
    assert_eq!(report.updates.len(), 2, "{report:?}");
    assert_eq!(report.objects, 51, "50 messages and the empty tree");
    assert_eq!(report.attempts, 1);
    let expected: Vec<String> = (0..50).map(|i| format!("{{\"n\":{i}}}")).collect();
    assert_eq!(remote_log(&url, "orders"), expected);
    let refs = remote_refs(&url);
    assert_eq!(
        refs["refs/gitmq/consumers/billing/orders"],
        billing.position().unwrap().to_string()
    );
    assert_eq!(
        repo.refs()
            .find(&FullName::new("refs/remotes/origin/orders").unwrap())
            .unwrap(),
        repo.head(&topic).unwrap()
    );

    publish(
        &producer,
        "orders",
        (50..60).map(|i| format!("{{\"n\":{i}}}")),
    );
    let report = pusher.push(&repo, PushOptions::default()).unwrap();
    assert_eq!(report.objects, 11, "10 new messages and the empty tree");
    assert_eq!(
        report.requests, 1,
        "the refs pushed last time are remembered"
    );
    assert_eq!(remote_log(&url, "orders").len(), 60);

    let report = pusher.push(&repo, PushOptions::default()).unwrap();
    assert!(
        report.updates.is_empty() && report.requests == 0,
        "{report:?}"
    );
}

#[test]
fn three_producers_pushing_one_topic_concurrently_lose_and_duplicate_nothing() {
    let server = HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    let producers: Vec<TempRepo> = (0..3).map(|_| with_origin(&url)).collect();
    let rebuilds = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for (p, producer) in producers.iter().enumerate() {
            let rebuilds = &rebuilds;
            scope.spawn(move || {
                let repo = producer.open();
                let mut pusher = replicate::push::Pusher::new(&repo, "origin", client()).unwrap();
                for round in 0..8 {
                    publish(
                        producer,
                        "events",
                        (0..5).map(|i| format!("p{p}-{}", round * 5 + i)),
                    );
                    let options = PushOptions {
                        max_attempts: 50,
                        ..PushOptions::default()
                    };
                    let report = pusher.push(&repo, options).unwrap();
                    rebuilds.fetch_add(report.rebuilt.len(), std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    // Everyone's last push may have been overtaken: push once more each, in turn.
    for producer in &producers {
        let repo = producer.open();
        replicate::push::push_with(&repo, "origin", client(), PushOptions::default()).unwrap();
    }
    eprintln!("rebuilds on conflict: {}", rebuilds.into_inner());
    let log = remote_log(&url, "events");
    assert_eq!(log.len(), 120, "every message exactly once: {log:?}");
    for p in 0..3 {
        let mine: Vec<&String> = log
            .iter()
            .filter(|m| m.starts_with(&format!("p{p}-")))
            .collect();
        let expected: Vec<String> = (0..40).map(|i| format!("p{p}-{i}")).collect();
        assert_eq!(
            mine,
            expected.iter().collect::<Vec<_>>(),
            "producer {p}'s order"
        );
    }
    for producer in &producers {
        producer.assert_fsck_clean();
    }
}

#[test]
fn a_rebuild_keeps_every_message_and_moves_positions_inside_the_copied_run_to_the_fork() {
    let server = HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    let (a, b) = (with_origin(&url), with_origin(&url));
    publish(&a, "t", ["a0".to_owned()]);
    replicate::push::push_with(&a.open(), "origin", client(), PushOptions::default()).unwrap();
    replicate::fetch(&b.open(), "origin", &replicate::fetch::DEFAULT_PREFIXES).unwrap();
    publish(&a, "t", ["a1".to_owned(), "a2".to_owned()]);
    replicate::push::push_with(&a.open(), "origin", client(), PushOptions::default()).unwrap();
    publish(&b, "t", ["b1".to_owned(), "b2".to_owned()]);
    let repo = b.open();
    let topic = TopicName::new("t").unwrap();
    let mut local =
        gitmq::Consumer::open(repo.clone(), ConsumerName::new("c").unwrap(), topic.clone())
            .unwrap();
    let seen: Vec<Vec<u8>> = local
        .poll(3)
        .unwrap()
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(seen, [b"a0".to_vec(), b"b1".to_vec(), b"b2".to_vec()]);
    local.commit().unwrap();
    let fork = repo
        .refs()
        .find(&FullName::new("refs/remotes/origin/t").unwrap())
        .unwrap();

    let report =
        replicate::push::push_with(&repo, "origin", client(), PushOptions::default()).unwrap();
    assert_eq!(report.rebuilt.len(), 1, "{report:?}");
    let rebuilt = &report.rebuilt[0];
    assert_eq!(rebuilt.copies.len(), 2);
    assert_eq!(rebuilt.positions_moved, ["refs/gitmq/consumers/c/t"]);
    assert_eq!(remote_log(&url, "t"), ["a0", "a1", "a2", "b1", "b2"]);
    // The consumer had read b1, b2 before they moved behind a1, a2: it goes back to the fork
    // and gets a1, a2 and the copies of b1, b2 (at-least-once, nothing skipped).
    assert_eq!(
        repo.refs()
            .find(&FullName::new("refs/gitmq/consumers/c/t").unwrap())
            .unwrap(),
        fork
    );
    let mut again =
        gitmq::Consumer::open(repo.clone(), ConsumerName::new("c").unwrap(), topic).unwrap();
    let next: Vec<Vec<u8>> = again
        .poll(10)
        .unwrap()
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(
        next,
        [
            b"a1".to_vec(),
            b"a2".to_vec(),
            b"b1".to_vec(),
            b"b2".to_vec()
        ]
    );
    b.assert_fsck_clean();
}

#[test]
fn a_consumer_on_a_new_machine_resumes_at_its_pushed_position() {
    let server = HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    let first = with_origin(&url);
    publish(&first, "jobs", (0..10).map(|i| format!("job {i}")));
    let topic = TopicName::new("jobs").unwrap();
    let name = ConsumerName::new("worker").unwrap();
    let mut worker = gitmq::Consumer::open(first.open(), name.clone(), topic.clone()).unwrap();
    assert_eq!(worker.poll(4).unwrap().len(), 4);
    worker.commit().unwrap();
    replicate::push::push_with(&first.open(), "origin", client(), PushOptions::default()).unwrap();

    let fresh = with_origin(&url);
    replicate::fetch(&fresh.open(), "origin", &replicate::fetch::DEFAULT_PREFIXES).unwrap();
    let mut resumed = gitmq::Consumer::open(fresh.open(), name, topic).unwrap();
    let rest: Vec<String> = resumed
        .poll(100)
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m.payload).unwrap())
        .collect();
    assert_eq!(
        rest,
        (4..10).map(|i| format!("job {i}")).collect::<Vec<_>>()
    );
    resumed.commit().unwrap();
    // The new machine's progress goes back up; the old one adopts it on its next fetch.
    replicate::push::push_with(&fresh.open(), "origin", client(), PushOptions::default()).unwrap();
    replicate::fetch(&first.open(), "origin", &replicate::fetch::DEFAULT_PREFIXES).unwrap();
    assert_eq!(
        first
            .open()
            .refs()
            .find(&FullName::new("refs/gitmq/consumers/worker/jobs").unwrap())
            .unwrap(),
        fresh.open().head(&TopicName::new("jobs").unwrap()).unwrap()
    );
}

#[test]
fn equal_and_backwards_dates_push_and_interop_with_git_both_ways() {
    let server = HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    // git writes history whose dates go backwards.
    let work = tempfile::tempdir().unwrap();
    git(
        &["init", "-q", "-b", "t", work.path().to_str().unwrap()],
        None,
    );
    for (i, date) in [
        "2030-01-01T00:00:00Z",
        "2020-01-01T00:00:00Z",
        "2020-01-01T00:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        let out = std::process::Command::new("git")
            .args(["commit", "-q", "--allow-empty", "-m", &format!("git {i}")])
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date)
            .env("GIT_AUTHOR_NAME", "g")
            .env("GIT_AUTHOR_EMAIL", "g@x")
            .env("GIT_COMMITTER_NAME", "g")
            .env("GIT_COMMITTER_EMAIL", "g@x")
            .current_dir(work.path())
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    git(&["push", "-q", &url, "t:refs/heads/t"], Some(work.path()));
    let gitmq_side = with_origin(&url);
    replicate::fetch(
        &gitmq_side.open(),
        "origin",
        &replicate::fetch::DEFAULT_PREFIXES,
    )
    .unwrap();
    publish(
        &gitmq_side,
        "t",
        (0..300).map(|i| format!("same second {i}")),
    );
    replicate::push::push_with(
        &gitmq_side.open(),
        "origin",
        client(),
        PushOptions::default(),
    )
    .unwrap();
    git(&["pull", "-q", "--ff-only", &url, "t"], Some(work.path()));
    let log = lines(&git(&["log", "--format=%s", "-n", "2"], Some(work.path())));
    assert_eq!(log, ["same second 299", "same second 298"]);
    assert_eq!(remote_log(&url, "t").len(), 303);
}

#[test]
fn pushing_to_a_guarded_repository_needs_credentials_which_never_show() {
    let server = HttpServer::start();
    server.bare_repo("guarded");
    let url = server.url("guarded");
    let producer = with_origin(&url);
    publish(&producer, "t", ["one".to_owned()]);
    let err =
        replicate::push::push_with(&producer.open(), "origin", client(), PushOptions::default())
            .unwrap_err();
    assert!(err.http_status() == Some(401), "{err:?}");
    let with_password = url.replace(
        "http://",
        &format!("http://{USER}:{}@", PASSWORD.replace('@', "%40")),
    );
    let err = replicate::push::push_with(
        &producer.open(),
        &with_password.replace("s3cret", "wrong"),
        client(),
        PushOptions::default(),
    )
    .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("wrong") && !shown.contains("s3cret"),
        "{shown}"
    );
    let report = replicate::push::push_with(
        &producer.open(),
        &with_password,
        client(),
        PushOptions::default(),
    )
    .unwrap();
    assert_eq!(report.updates.len(), 1);
    assert_eq!(remote_log(&url, "t"), ["one"]);
}

#[test]
fn a_hook_that_refuses_is_an_error_not_an_endless_retry() {
    let server = HttpServer::start();
    let bare = server.bare_repo("q");
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'no pushes on Fridays' >&2\nexit 1\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let producer = with_origin(&server.url("q"));
    publish(&producer, "t", ["one".to_owned()]);
    let mut progress = Vec::new();
    let mut collect = |text: &[u8]| progress.extend_from_slice(text);
    let err = replicate::push::push_with(
        &producer.open(),
        "origin",
        client(),
        PushOptions {
            progress: Some(&mut collect),
            ..PushOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, replicate::Error::Rejected { reason, .. } if reason.contains("hook")),
        "{err:?}"
    );
    assert!(String::from_utf8_lossy(&progress).contains("no pushes on Fridays"));
    assert!(remote_refs(&server.url("q")).is_empty());
}

/// A server that advertises an empty repository for receive-pack, then reads half of the
/// push and hangs up (a connection cut mid-way); the number of pushes it saw.
fn cutting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let posts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = posts.clone();
    std::thread::spawn(move || {
        for _ in 0..8 {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_lowercase();
            if head.starts_with("get") {
                let mut body = Vec::new();
                let line = "# service=git-receive-pack\n";
                body.extend_from_slice(format!("{:04x}{line}", line.len() + 4).as_bytes());
                body.extend_from_slice(b"0000");
                let caps = format!(
                    "{} capabilities^{{}}\0report-status side-band-64k atomic delete-refs quiet\n",
                    "0".repeat(40)
                );
                body.extend_from_slice(format!("{:04x}{caps}", caps.len() + 4).as_bytes());
                body.extend_from_slice(b"0000");
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-receive-pack-advertisement\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            } else {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut half = vec![0u8; length / 2];
                let _ = stream.read_exact(&mut half);
                // Hang up without an answer.
            }
        }
    });
    (format!("http://127.0.0.1:{port}/q.git"), posts)
}

#[test]
fn a_push_cut_off_mid_way_moves_nothing_leaves_nothing_and_the_next_push_delivers_once() {
    let (cut_url, posts) = cutting_server();
    let producer = TempRepo::new();
    publish(&producer, "t", (0..2000).map(|i| format!("message {i}")));
    let repo = producer.open();
    let head = repo.head(&TopicName::new("t").unwrap()).unwrap();
    let err = replicate::push::push_with(
        &repo,
        &cut_url,
        client(),
        PushOptions {
            max_attempts: 2,
            ..PushOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.is_spurious(), "{err:?}");
    assert_eq!(
        posts.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "retried once"
    );
    assert_eq!(repo.head(&TopicName::new("t").unwrap()).unwrap(), head);
    let leftovers: Vec<_> = std::fs::read_dir(producer.path.join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("tmp_"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let server = HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    replicate::push::push_with(&repo, &url, client(), PushOptions::default()).unwrap();
    assert_eq!(remote_log(&url, "t").len(), 2000);
}

#[test]
fn a_pruned_repository_pushes_onto_a_remote_with_its_history_and_refuses_clearly_onto_one_without()
{
    let server = HttpServer::start();
    server.bare_repo("full");
    server.bare_repo("empty");
    let producer = with_origin(&server.url("full"));
    publish(&producer, "t", (0..20).map(|i| format!("m{i}")));
    let repo = producer.open();
    replicate::push::push_with(&repo, "origin", client(), PushOptions::default()).unwrap();
    let options = gitmq::prune::Options {
        grace: std::time::Duration::ZERO,
        ..gitmq::prune::Options::default()
    };
    gitmq::prune::prune(
        &repo,
        &TopicName::new("t").unwrap(),
        gitmq::prune::Retain::Keep(5),
        &options,
    )
    .unwrap();
    publish(&producer, "t", (20..25).map(|i| format!("m{i}")));
    replicate::push::push_with(&repo, "origin", client(), PushOptions::default()).unwrap();
    assert_eq!(remote_log(&server.url("full"), "t").len(), 25);

    let err = replicate::push::push_with(
        &repo,
        &server.url("empty"),
        client(),
        PushOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, replicate::Error::PrunedHere { .. }),
        "{err:?}"
    );
    assert!(remote_refs(&server.url("empty")).is_empty());
}

#[test]
fn without_atomic_the_refs_that_moved_are_tracked_even_when_another_is_refused() {
    let server = HttpServer::start();
    let bare = server.bare_repo("q");
    let hook = bare.join("hooks/update");
    std::fs::write(
        &hook,
        "#!/bin/sh\ncase \"$1\" in refs/gitmq/*) exit 1;; esac\nexit 0\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let producer = with_origin(&server.url("q"));
    publish(&producer, "t", (0..3).map(|i| format!("m{i}")));
    let repo = producer.open();
    let topic = TopicName::new("t").unwrap();
    let mut consumer =
        gitmq::Consumer::open(repo.clone(), ConsumerName::new("c").unwrap(), topic.clone())
            .unwrap();
    consumer.poll(1).unwrap();
    consumer.commit().unwrap();
    let err = replicate::push::push_with(
        &repo,
        "origin",
        client(),
        PushOptions {
            atomic: false,
            ..PushOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, replicate::Error::Rejected { name, .. } if name == "refs/gitmq/consumers/c/t"),
        "{err:?}"
    );
    assert_eq!(
        remote_log(&server.url("q"), "t").len(),
        3,
        "the topic moved"
    );
    assert_eq!(
        repo.refs()
            .find(&FullName::new("refs/remotes/origin/t").unwrap())
            .unwrap(),
        repo.head(&topic).unwrap(),
        "and is tracked"
    );
}
