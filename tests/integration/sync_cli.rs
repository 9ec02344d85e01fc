//! The pitch's scenario through the `gitmq` binary against a real smart-HTTP server: one
//! producer syncing, two consumers fanning out, one restarted on a fresh clone and resuming;
//! `consume --follow --remote`; `sync` stopping cleanly on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    server::HttpServer,
    util::{gitmq_in, lines},
};

fn gitmq_ok(repo: &Path, args: &[&str], stdin: &[u8]) -> Vec<String> {
    let out = gitmq_in(Some(repo), args, stdin);
    assert!(
        out.status.success(),
        "gitmq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(&out.stdout)
}

fn node(dir: &Path, name: &str, url: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let out = gitmq_in(None, &["init", path.to_str().unwrap()], b"");
    assert!(out.status.success());
    gitmq_ok(&path, &["remote", "add", "origin", url], b"");
    path
}

#[test]
fn the_pitch_two_repositories_one_server_fan_out_and_a_consumer_resuming_on_a_fresh_clone() {
    let server = HttpServer::start();
    server.bare_repo("queue");
    let url = server.url("queue");
    let dir = tempfile::tempdir().unwrap();
    let producer = node(dir.path(), "producer.git", &url);
    let consumers = node(dir.path(), "consumers.git", &url);

    gitmq_ok(
        &producer,
        &["publish", "orders"],
        b"order 1\norder 2\norder 3\norder 4\norder 5\n",
    );
    let synced = gitmq_ok(
        &producer,
        &["sync", "--interval", "50ms", "--rounds", "1"],
        b"",
    );
    assert!(
        synced
            .iter()
            .any(|l| l.starts_with("created\trefs/heads/orders")),
        "{synced:?}"
    );

    gitmq_ok(&consumers, &["fetch"], b"");
    let billing = gitmq_ok(
        &consumers,
        &["consume", "orders", "--consumer", "billing", "--max", "3"],
        b"",
    );
    assert_eq!(billing, ["order 1", "order 2", "order 3"]);
    let shipping = gitmq_ok(
        &consumers,
        &["consume", "orders", "--consumer", "shipping"],
        b"",
    );
    assert_eq!(shipping.len(), 5);
    let pushed = gitmq_ok(&consumers, &["push"], b"");
    assert!(
        pushed
            .iter()
            .any(|l| l.starts_with("created\trefs/gitmq/consumers/billing/orders")),
        "{pushed:?}"
    );

    // billing's machine is replaced: a fresh repository resumes at its pushed position.
    let fresh = node(dir.path(), "fresh.git", &url);
    gitmq_ok(&fresh, &["fetch"], b"");
    let resumed = gitmq_ok(&fresh, &["consume", "orders", "--consumer", "billing"], b"");
    assert_eq!(resumed, ["order 4", "order 5"]);

    // The producer publishes more; a follower on the consumers' repository sees them arrive.
    let mut follower = Command::new(env!("CARGO_BIN_EXE_gitmq"))
        .args(["--repo", consumers.to_str().unwrap()])
        .args(["consume", "orders", "--consumer", "shipping", "--follow"])
        .args([
            "--remote",
            "origin",
            "--fetch-interval",
            "50ms",
            "--max",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    gitmq_ok(&producer, &["publish", "orders"], b"order 6\norder 7\n");
    gitmq_ok(&producer, &["push"], b"");
    let stdout = follower.stdout.take().unwrap();
    let got: Vec<String> = BufReader::new(stdout).lines().map(Result::unwrap).collect();
    assert!(follower.wait().unwrap().success());
    assert_eq!(got, ["order 6", "order 7"]);
}

#[test]
fn sync_pushes_on_linger_and_stops_cleanly_on_sigterm() {
    let server = HttpServer::start();
    server.bare_repo("queue");
    let url = server.url("queue");
    let dir = tempfile::tempdir().unwrap();
    let producer = node(dir.path(), "producer.git", &url);
    let sync = Command::new(env!("CARGO_BIN_EXE_gitmq"))
        .args(["--repo", producer.to_str().unwrap()])
        .args(["sync", "--interval", "1h", "--linger", "100ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    gitmq_ok(&producer, &["publish", "t"], b"hello\n");
    // The first round runs at start; the publish is pushed once it lingered 100 ms, long
    // before the hour-long interval.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut on_server = false;
    while Instant::now() < deadline && !on_server {
        std::thread::sleep(Duration::from_millis(50));
        let out = Command::new("git")
            .args(["ls-remote", &url])
            .output()
            .unwrap();
        on_server = String::from_utf8_lossy(&out.stdout).contains("refs/heads/t");
    }
    assert!(on_server, "the lingering message was pushed");
    let status = Command::new("kill")
        .args(["-TERM", &sync.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = sync.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sync exits 0 on SIGTERM: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!producer.join("refs/heads/t.lock").exists());
}

#[test]
fn sync_applies_the_configured_retention_and_never_moves_a_position_to_do_it() {
    let server = HttpServer::start();
    server.bare_repo("queue");
    let url = server.url("queue");
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), "node.git", &url);
    let lines_of = |topic: &str| -> Vec<u8> {
        let mut text = Vec::new();
        for i in 0..20 {
            text.extend_from_slice(format!("{topic} {i}\n").as_bytes());
        }
        text
    };
    gitmq_ok(&node, &["publish", "logs"], &lines_of("logs"));
    gitmq_ok(&node, &["publish", "jobs"], &lines_of("jobs"));
    gitmq_ok(
        &node,
        &["consume", "jobs", "--consumer", "worker", "--max", "2"],
        b"",
    );
    for (key, value) in [
        ("gitmq.topic.logs.retainMessages", "5"),
        ("gitmq.topic.jobs.retainMessages", "5"),
    ] {
        crate::util::git(
            &["--git-dir", node.to_str().unwrap(), "config", key, value],
            None,
        );
    }
    let out = gitmq_in(
        Some(&node),
        &["sync", "--interval", "50ms", "--rounds", "1"],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = lines(&out.stdout);
    assert!(
        stdout
            .iter()
            .any(|l| l.starts_with("pruned\tlogs\t15 messages")),
        "{stdout:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("retention of jobs skipped"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(gitmq_ok(&node, &["log", "logs"], b"").len(), 5);
    assert_eq!(gitmq_ok(&node, &["log", "jobs"], b"").len(), 20);
    let worker = gitmq_ok(&node, &["consume", "jobs", "--consumer", "worker"], b"");
    assert_eq!(worker.len(), 18, "the worker's position was not moved");
    let fsck = crate::util::git_output(
        &["--git-dir", node.to_str().unwrap(), "fsck", "--strict"],
        None,
    );
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
}
