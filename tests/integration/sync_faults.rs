//! `gitmq sync` (the binary) through the fault proxy: a producer's node and a consumer's node
//! keep syncing while the network refuses, resets, cuts and stalls; each failed round is
//! printed and the next one tries again; in the end the consumer's node has every message,
//! the server has each exactly once, and every repository is sound.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    checks::assert_sound,
    proxy::{Fault, FaultProxy, Kind},
    server::HttpServer,
    util::{gitmq_in, lines},
};

fn node(dir: &Path, name: &str, url: &str) -> PathBuf {
    let path = dir.join(name);
    assert!(gitmq_in(None, &["init", path.to_str().unwrap()], b"")
        .status
        .success());
    assert!(
        gitmq_in(Some(&path), &["remote", "add", "origin", url], b"")
            .status
            .success()
    );
    path
}

/// `gitmq sync` on `repo`, its output in files next to it (a pipe nobody reads could fill).
fn start_sync(repo: &Path) -> Child {
    let out = File::create(repo.with_extension("out")).unwrap();
    let err = File::create(repo.with_extension("err")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_gitmq"))
        .args(["--repo", repo.to_str().unwrap()])
        .args(["sync", "--interval", "150ms", "--linger", "50ms"])
        .args(["--idle-timeout", "1s", "--request-timeout", "3s"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap()
}

fn stop(mut child: Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "sync stops within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log(repo: &Path, topic: &str) -> Vec<String> {
    let out = gitmq_in(Some(repo), &["log", topic], b"");
    if out.status.success() {
        lines(&out.stdout)
    } else {
        Vec::new()
    }
}

#[test]
fn sync_keeps_going_through_network_faults_and_catches_up() {
    let server = HttpServer::start();
    let bare = server.bare_repo("queue");
    let proxy = FaultProxy::start(server.addr());
    let url = format!("{}/git/queue.git", proxy.base());
    let dir = tempfile::tempdir().unwrap();
    let producer = node(dir.path(), "producer.git", &url);
    let consumer = node(dir.path(), "consumer.git", &url);
    let faults = [
        (Kind::ReceiveDiscovery, Fault::ContentType("text/html"), 2),
        (Kind::UploadDiscovery, Fault::Status(503), 4),
        (Kind::ReceivePack, Fault::ResetMidBody, 1),
        (Kind::Fetch, Fault::TruncatePack, 2),
        (Kind::LsRefs, Fault::ContentType("text/html"), 1),
        (Kind::Fetch, Fault::StallHead(Duration::from_secs(10)), 1),
        (Kind::ReceivePack, Fault::Status(502), 1),
    ];
    let injected: usize = faults.iter().map(|(_, _, times)| times).sum();
    for (kind, fault, times) in faults {
        proxy.inject(Some(kind), fault, times);
    }
    let syncs = [start_sync(&producer), start_sync(&consumer)];

    let mut expected = Vec::new();
    for batch in 0..3 {
        let text = (0..20)
            .map(|i| format!("order {batch}-{i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let out = gitmq_in(Some(&producer), &["publish", "orders"], text.as_bytes());
        assert!(out.status.success());
        expected.extend(text.lines().map(str::to_owned));
        std::thread::sleep(Duration::from_millis(400));
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while log(&consumer, "orders") != expected {
        assert!(
            Instant::now() < deadline,
            "the consumer's node caught up within 90 s: {} of {} (faults {:?})",
            log(&consumer, "orders").len(),
            expected.len(),
            proxy.fault_counts()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let [producer_sync, consumer_sync] = syncs;
    assert!(stop(producer_sync).success());
    assert!(stop(consumer_sync).success());
    let stderr: String = [&producer, &consumer]
        .iter()
        .map(|repo| std::fs::read_to_string(repo.with_extension("err")).unwrap())
        .collect();
    eprintln!("faults: {:?}\n{stderr}", proxy.fault_counts());
    assert_eq!(proxy.faults(), injected, "every fault fired");
    assert!(
        stderr.contains("push failed (trying again next round)")
            && stderr.contains("fetch failed (trying again next round)"),
        "failed rounds are printed: {stderr}"
    );
    assert_eq!(log(&producer, "orders"), expected);
    let server_log = crate::util::git(
        &[
            "--git-dir",
            bare.to_str().unwrap(),
            "log",
            "--reverse",
            "--format=%B",
            "orders",
        ],
        None,
    );
    let server_log: Vec<String> = lines(&server_log)
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        server_log, expected,
        "every message exactly once on the server"
    );
    for repo in [&producer, &consumer, &bare] {
        assert_sound(repo);
    }
}

/// A `gitmq sync` killed while it moved a tracking ref leaves `refs/remotes/<remote>/<t>.lock`:
/// every later fetch of that topic waits for it and fails. `gitmq unlock` removes it, as it
/// does the locks of killed producers and consumers.
#[test]
fn gitmq_unlock_removes_a_tracking_ref_lock_a_killed_sync_left() {
    let server = HttpServer::start();
    server.bare_repo("queue");
    let url = server.url("queue");
    let dir = tempfile::tempdir().unwrap();
    let producer = node(dir.path(), "producer.git", &url);
    assert!(gitmq_in(Some(&producer), &["publish", "orders"], b"one\n")
        .status
        .success());
    assert!(gitmq_in(Some(&producer), &["push"], b"").status.success());
    let left = [
        producer.join("refs/remotes/origin/orders.lock"),
        producer.join("refs/gitmq/remotes/origin/consumers/c/orders.lock"),
        producer.join("refs/heads/orders.lock"),
    ];
    for lock in &left {
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        std::fs::write(lock, b"").unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100));
    let out = gitmq_in(Some(&producer), &["unlock", "--older-than", "1"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let still: Vec<_> = left.iter().filter(|l| l.exists()).collect();
    assert!(
        still.is_empty(),
        "left behind: {still:?}; printed {:?}",
        lines(&out.stdout)
    );
    assert!(gitmq_in(Some(&producer), &["publish", "orders"], b"two\n")
        .status
        .success());
    let out = gitmq_in(Some(&producer), &["sync", "--rounds", "1"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_sound(&producer);
}
