//! Fetch over smart HTTP against a real server (lighttpd + git-http-backend, see
//! `server.rs`); broken servers are in `transport/faults.rs`, a server that insists on thin
//! packs in `transport/thin.rs`.

mod faults;
mod thin;

use std::{
    fmt::Write as _,
    io::Write,
    path::Path,
    time::{Duration, Instant},
};

use gitmq::{
    replicate::{self, http::ReqwestClient, FetchOptions, HttpClient, Request, UpdateKind},
    ConsumerName, TopicName,
};

use crate::{
    server::HttpServer,
    util::{lines, TempRepo},
};

fn publish(repo: &TempRepo, topic: &str, messages: std::ops::Range<u32>) {
    let payloads: Vec<Vec<u8>> = messages
        .map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect();
    repo.open()
        .producer(&TopicName::new(topic).unwrap())
        .publish_batch(payloads.iter().map(Vec::as_slice))
        .unwrap();
}

fn push_all(repo: &TempRepo, url: &str) {
    repo.git(&[
        "push",
        "-q",
        url,
        "refs/heads/*:refs/heads/*",
        "refs/gitmq/*:refs/gitmq/*",
    ]);
}

fn log(repo: &TempRepo, topic: &str) -> Vec<String> {
    let out = repo.gitmq(&["log", topic], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(&out.stdout)
}

fn pack_files(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo.join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_queue_pushed_by_git_is_fetched_by_name_into_an_empty_repository_and_read_by_gitmq() {
    let server = HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    let producer = TempRepo::new();
    publish(&producer, "orders", 0..50);
    publish(&producer, "eu/refunds", 0..3);
    {
        let repo = producer.open();
        let orders = TopicName::new("orders").unwrap();
        let mut billing = repo
            .consumer(&ConsumerName::new("billing").unwrap(), &orders)
            .unwrap();
        assert_eq!(billing.poll(20).unwrap().len(), 20);
        billing.commit().unwrap();
    }
    push_all(&producer, &url);

    let local = TempRepo::new();
    local.git(&["remote", "add", "origin", &url]);
    let out = local.gitmq(&["fetch"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = lines(&out.stdout);
    assert!(printed[0].starts_with("received\t"), "{printed:?}");
    for expected in [
        "created\trefs/remotes/origin/orders\t",
        "created\trefs/heads/orders\t",
        "created\trefs/heads/eu/refunds\t",
        "created\trefs/gitmq/remotes/origin/consumers/billing/orders\t",
    ] {
        assert!(
            printed.iter().any(|l| l.starts_with(expected)),
            "{expected} in {printed:?}"
        );
    }
    let expected: Vec<String> = (0..50).map(|i| format!("{{\"n\":{i}}}")).collect();
    assert_eq!(
        log(&local, "orders"),
        expected,
        "every message arrives, in order"
    );
    assert_eq!(log(&local, "eu/refunds").len(), 3);
    let out = local.gitmq(&["consume", "orders", "--consumer", "audit"], b"");
    assert_eq!(
        lines(&out.stdout).len(),
        50,
        "a local consumer reads every message"
    );
    local.assert_fsck_clean();

    let again = local.gitmq(&["fetch", "origin"], b"");
    assert!(again.status.success());
    assert!(
        again.stdout.is_empty(),
        "nothing moved: {:?}",
        lines(&again.stdout)
    );
}

#[test]
fn fetching_again_brings_only_the_new_messages_and_fast_forwards_the_topic() {
    let server = HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    let producer = TempRepo::new();
    publish(&producer, "orders", 0..100);
    push_all(&producer, &url);

    let local = TempRepo::new();
    let repo = local.open();
    let first = replicate::fetch(&repo, &url, &replicate::fetch::DEFAULT_PREFIXES).unwrap();
    assert_eq!(first.protocol_version, 2);
    assert_eq!(
        first.pack.as_ref().unwrap().objects,
        101,
        "100 commits and the empty tree"
    );
    assert!(
        first
            .updates
            .iter()
            .all(|u| !u.name.starts_with("refs/remotes/")),
        "a URL has no tracking refs"
    );

    publish(&producer, "orders", 100..110);
    push_all(&producer, &url);
    let second = replicate::fetch(&repo, &url, &replicate::fetch::DEFAULT_PREFIXES).unwrap();
    assert_eq!(
        second.pack.as_ref().unwrap().objects,
        10,
        "the haves spare everything already here"
    );
    let update = &second.updates[0];
    assert_eq!(
        (update.name.as_str(), update.kind),
        ("refs/heads/orders", UpdateKind::FastForward)
    );
    assert_eq!(log(&local, "orders").len(), 110);
    local.assert_fsck_clean();
}

#[test]
fn a_diverged_local_topic_is_left_alone_and_reported() {
    let server = HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    let producer = TempRepo::new();
    publish(&producer, "orders", 0..5);
    push_all(&producer, &url);
    let local = TempRepo::new();
    let repo = local.open();
    replicate::fetch(&repo, &url, &replicate::fetch::DEFAULT_PREFIXES).unwrap();
    publish(&local, "orders", 100..101);
    let mine = repo.head(&TopicName::new("orders").unwrap()).unwrap();
    publish(&producer, "orders", 5..6);
    push_all(&producer, &url);

    let report = replicate::fetch(&repo, &url, &replicate::fetch::DEFAULT_PREFIXES).unwrap();
    assert_eq!(report.updates.len(), 1);
    assert_eq!(report.updates[0].kind, UpdateKind::Diverged);
    assert_eq!(report.updates[0].old, mine);
    assert_eq!(
        repo.head(&TopicName::new("orders").unwrap()).unwrap(),
        mine,
        "the local topic did not move"
    );
}

/// Write `count` empty-tree commits with one and the same timestamp onto `refs/heads/orders`
/// of the bare repository `git_dir`, continuing its history if it has one.
fn equal_timestamp_commits(git_dir: &Path, count: usize, first: usize, continue_from_head: bool) {
    let mut stream = String::new();
    for i in 0..count {
        let n = first + i;
        let message = format!("{{\"n\":{n}}}");
        write!(
            stream,
            "commit refs/heads/orders\nmark :{}\nauthor P <p@example.com> 1700000000 +0000\n\
             committer P <p@example.com> 1700000000 +0000\ndata {}\n{message}\n",
            i + 1,
            message.len()
        )
        .unwrap();
        if i > 0 {
            writeln!(stream, "from :{i}").unwrap();
        } else if continue_from_head {
            stream.push_str("from refs/heads/orders^0\n");
        }
        stream.push('\n');
    }
    let mut child = std::process::Command::new("git")
        .args([
            "--git-dir",
            git_dir.to_str().unwrap(),
            "fast-import",
            "--quiet",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_thousand_messages_with_equal_timestamps_fetch_completely_then_one_more_alone() {
    let server = HttpServer::start();
    let bare = server.bare_repo("q");
    equal_timestamp_commits(&bare, 1000, 0, false);
    let url = server.url("q");

    let local = TempRepo::new();
    let repo = local.open();
    let first = replicate::fetch(&repo, &url, &replicate::fetch::DEFAULT_PREFIXES).unwrap();
    assert_eq!(first.pack.as_ref().unwrap().objects, 1001);
    let log_lines = log(&local, "orders");
    assert_eq!(log_lines.len(), 1000);
    assert_eq!(log_lines[999], "{\"n\":999}");

    equal_timestamp_commits(&bare, 1, 1000, true);
    let start = Instant::now();
    let second = replicate::fetch(&repo, &url, &replicate::fetch::DEFAULT_PREFIXES).unwrap();
    let took = start.elapsed();
    assert_eq!(
        second.pack.as_ref().unwrap().objects,
        1,
        "only the new message"
    );
    assert!(took < Duration::from_secs(10), "one message took {took:?}");
    assert_eq!(log(&local, "orders").len(), 1001);
    local.assert_fsck_clean();
}

#[test]
fn an_unknown_repository_is_a_clear_404_and_credentials_never_show() {
    let server = HttpServer::start();
    let local = TempRepo::new();
    let url = server
        .url("missing")
        .replace("http://", "http://alice:hunter2@");
    let err =
        replicate::fetch(&local.open(), &url, &replicate::fetch::DEFAULT_PREFIXES).unwrap_err();
    assert!(err.http_status() == Some(404), "{err:?}");
    assert!(!err.is_spurious());
    let text = format!("{err} {err:?}");
    assert!(text.contains("repository not found"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");

    let out = local.gitmq(&["fetch", &url], b"");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("404") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

#[test]
fn a_stopped_server_is_a_spurious_connection_error() {
    let mut server = HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    server.stop();
    let local = TempRepo::new();
    let err =
        replicate::fetch(&local.open(), &url, &replicate::fetch::DEFAULT_PREFIXES).unwrap_err();
    assert!(
        matches!(
            err,
            replicate::Error::Wire(gitmq::git::wire::Error::Http(
                replicate::HttpError::Connect { .. }
            ))
        ),
        "{err:?}"
    );
    assert!(err.is_spurious());
    let out = local.gitmq(&["fetch", "nowhere"], b"");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no remote named \"nowhere\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Passes requests on without the `Git-Protocol` header, so the server speaks v0.
struct WithoutV2(ReqwestClient);

impl HttpClient for WithoutV2 {
    fn send(&self, request: Request<'_>) -> Result<replicate::Response, replicate::HttpError> {
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .filter(|(name, _)| *name != "Git-Protocol")
            .copied()
            .collect();
        self.0.send(Request {
            headers: &headers,
            ..request
        })
    }
}

#[test]
fn a_server_without_protocol_v2_is_fetched_with_v0() {
    let server = HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    let producer = TempRepo::new();
    publish(&producer, "orders", 0..30);
    push_all(&producer, &url);
    let local = TempRepo::new();
    let client = WithoutV2(ReqwestClient::new(replicate::http::Options::default()).unwrap());
    let report =
        replicate::fetch_with(&local.open(), &url, &client, FetchOptions::default()).unwrap();
    assert_eq!(report.protocol_version, 0);
    assert_eq!(log(&local, "orders").len(), 30);
    publish(&producer, "orders", 30..32);
    push_all(&producer, &url);
    let report =
        replicate::fetch_with(&local.open(), &url, &client, FetchOptions::default()).unwrap();
    assert_eq!(report.pack.unwrap().objects, 2);
    local.assert_fsck_clean();
}

#[test]
fn credentials_in_the_url_open_a_private_repository_and_never_show_in_errors() {
    use crate::server::{PASSWORD, USER};
    let server = HttpServer::start();
    let bare = server.bare_repo("private");
    let producer = TempRepo::new();
    publish(&producer, "orders", 0..7);
    producer.git(&[
        "push",
        "-q",
        bare.to_str().unwrap(),
        "refs/heads/*:refs/heads/*",
    ]);
    let url = server.url("private");
    let local = TempRepo::new();
    let repo = local.open();

    let err = replicate::fetch(&repo, &url, &replicate::fetch::DEFAULT_PREFIXES).unwrap_err();
    assert!(err.http_status() == Some(401), "{err:?}");
    assert!(err.to_string().contains("authentication required"), "{err}");

    let wrong = url.replace("http://", &format!("http://{USER}:wrong-{}@", "pw%40x"));
    let err = replicate::fetch(&repo, &wrong, &replicate::fetch::DEFAULT_PREFIXES).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("wrong-pw"), "{err:?}");

    let escaped = PASSWORD.replace('@', "%40");
    let good = url.replace("http://", &format!("http://{USER}:{escaped}@"));
    let report = replicate::fetch(&repo, &good, &replicate::fetch::DEFAULT_PREFIXES).unwrap();
    assert_eq!(report.pack.unwrap().objects, 8);
    assert!(
        !report.url.contains("s3cret"),
        "the report's URL is redacted"
    );
    assert_eq!(log(&local, "orders").len(), 7);
}

#[test]
fn https_with_a_private_ca_fetches_and_an_unknown_ca_is_refused() {
    let server = HttpServer::start_tls();
    let bare = server.bare_repo("q");
    let producer = TempRepo::new();
    publish(&producer, "orders", 0..12);
    producer.git(&[
        "push",
        "-q",
        bare.to_str().unwrap(),
        "refs/heads/*:refs/heads/*",
    ]);
    let url = server.url("q");
    assert!(url.starts_with("https://"));
    let local = TempRepo::new();

    let err =
        replicate::fetch(&local.open(), &url, &replicate::fetch::DEFAULT_PREFIXES).unwrap_err();
    assert!(
        matches!(
            err,
            replicate::Error::Wire(gitmq::git::wire::Error::Http(
                replicate::HttpError::Connect { .. }
            ))
        ),
        "an unknown CA fails the TLS handshake: {err:?}"
    );

    let client = ReqwestClient::new(replicate::http::Options {
        extra_root_certificates: vec![server.ca_pem.clone().unwrap()],
        ..replicate::http::Options::default()
    })
    .unwrap();
    let report =
        replicate::fetch_with(&local.open(), &url, &client, FetchOptions::default()).unwrap();
    assert_eq!(report.pack.unwrap().objects, 13);
    assert_eq!(log(&local, "orders").len(), 12);
}

/// `gitmq bench` is in the binary only with the `bench` feature (`.ci/test` turns it on).
#[cfg(feature = "bench")]
#[test]
fn gitmq_bench_fetch_compares_with_git_on_the_same_server_and_cleans_up() {
    let server = HttpServer::start();
    let bare = server.bare_repo("bench");
    for extra in [&[][..], &["--equal-timestamps"][..]] {
        let mut args = vec!["bench", "fetch", "--messages", "40", "--rounds", "1"];
        let url = server.url("bench");
        args.extend(["--url", &url]);
        args.extend(extra);
        let out = crate::util::gitmq_in(None, &args, b"");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for row in [
            "full fetch of 40",
            "fetch of one new message",
            "poll, nothing new",
        ] {
            assert!(stdout.contains(row), "{row} in {stdout}");
        }
        let refs = crate::util::git(&["--git-dir", bare.to_str().unwrap(), "for-each-ref"], None);
        assert!(refs.is_empty(), "the bench branch was deleted");
    }
}
