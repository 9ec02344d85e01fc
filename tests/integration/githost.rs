//! The git host (`gitmq::githost`) driven by the real `git` and by gitmq's own transport,
//! through a tiny HTTP/1.1 server in the test tree: clone and fetch over protocol v2 and v0,
//! pushes (new branch, fast-forward, non-fast-forward, atomic, delete), `git fsck --strict`
//! on both sides, truncated and hostile requests.

mod tiny;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use gitmq::{
    githost::{AllowAll, GitHost, Options},
    replicate, ConsumerName, TopicName,
};

use crate::util::{git, git_output, TempRepo};
use tiny::TinyServer;

/// A validated full ref name.
fn full(name: &str) -> gitmq::git::refs::FullName {
    gitmq::git::refs::FullName::new(name).unwrap()
}

/// A queue repository served over HTTP.
struct Served {
    repo: TempRepo,
    server: TinyServer,
}

fn serve(repo: TempRepo) -> Served {
    serve_with(repo, Options::default(), Arc::new(AllowAll))
}

fn serve_with(
    repo: TempRepo,
    options: Options,
    access: Arc<dyn gitmq::githost::Access + Send + Sync>,
) -> Served {
    let host = GitHost::with_options(repo.open(), options);
    Served {
        server: TinyServer::start(host, access),
        repo,
    }
}

fn publish(repo: &TempRepo, topic: &str, payloads: impl IntoIterator<Item = String>) {
    let payloads: Vec<String> = payloads.into_iter().collect();
    repo.open()
        .producer(&TopicName::new(topic).unwrap())
        .publish_batch(payloads.iter().map(String::as_bytes))
        .unwrap();
}

/// `git <args>` with a protocol version.
fn git_v(version: u8, args: &[&str], cwd: Option<&Path>) -> Vec<u8> {
    let v = format!("protocol.version={version}");
    let mut full = vec!["-c", v.as_str()];
    full.extend_from_slice(args);
    git(&full, cwd)
}

fn rev_parse(git_dir: &Path, rev: &str) -> String {
    String::from_utf8(git(
        &["--git-dir", git_dir.to_str().unwrap(), "rev-parse", rev],
        None,
    ))
    .unwrap()
    .trim()
    .to_owned()
}

fn fsck_clean(git_dir: &Path) {
    let out = git_output(
        &[
            "--git-dir",
            git_dir.to_str().unwrap(),
            "fsck",
            "--strict",
            "--no-dangling",
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "git fsck --strict failed: {stderr}");
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("notice:") && !l.starts_with("Checking") && !l.trim().is_empty())
        .collect();
    assert!(complaints.is_empty(), "git fsck --strict: {complaints:?}");
}

fn payloads(git_dir: &Path, rev: &str) -> Vec<String> {
    let out = git(
        &[
            "--git-dir",
            git_dir.to_str().unwrap(),
            "log",
            "--first-parent",
            "--reverse",
            "--format=%B%x00",
            rev,
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

fn no_leftovers(repo: &TempRepo) {
    let objects = repo.path.join("objects");
    let strays: Vec<PathBuf> = std::fs::read_dir(&objects)
        .unwrap()
        .chain(std::fs::read_dir(objects.join("pack")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("incoming-") || name.starts_with("tmp_")
        })
        .collect();
    assert!(strays.is_empty(), "temporary files left: {strays:?}");
}

#[test]
fn git_clones_over_v2_and_v0_get_every_topic_and_pass_fsck_strict() {
    let repo = TempRepo::new();
    publish(&repo, "orders", (0..40).map(|i| format!("order {i}")));
    publish(&repo, "eu/payments", (0..5).map(|i| format!("pay {i}")));
    let served = serve(repo);
    let dir = tempfile::tempdir().unwrap();
    for (version, path) in [(2, ""), (0, "queue.git"), (2, "queue.git")] {
        let clone = dir.path().join(format!("c{version}{}.git", path.len()));
        git_v(
            version,
            &[
                "clone",
                "-q",
                "--bare",
                &served.server.url(path),
                clone.to_str().unwrap(),
            ],
            None,
        );
        fsck_clean(&clone);
        for topic in ["orders", "eu/payments"] {
            let name = format!("refs/heads/{topic}");
            assert_eq!(
                rev_parse(&clone, &name),
                served
                    .repo
                    .open()
                    .refs()
                    .find(&full(&name))
                    .unwrap()
                    .unwrap()
                    .to_string(),
                "v{version} {topic}"
            );
        }
        assert_eq!(payloads(&clone, "orders").len(), 40);
        assert_eq!(payloads(&clone, "orders")[39], "order 39");
    }
    fsck_clean(&served.repo.path);
    let posts: Vec<_> = served
        .server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert!(
        posts.iter().all(|r| r.status == 200 && r.error.is_none()),
        "{posts:?}"
    );
}

#[test]
fn git_fetch_is_incremental_over_v2_and_v0_even_when_negotiation_takes_rounds() {
    let repo = TempRepo::new();
    publish(&repo, "t", (0..30).map(|i| format!("m{i}")));
    let served = serve(repo);
    let dir = tempfile::tempdir().unwrap();
    for version in [2, 0] {
        let clone = dir.path().join(format!("w{version}"));
        git_v(
            version,
            &[
                "clone",
                "-q",
                &served.server.url(""),
                clone.to_str().unwrap(),
            ],
            None,
        );
        // Local commits the server has never seen, newer than everything: git offers them
        // as haves first, so the server must answer several rounds before "ready".
        let work = clone.to_str().unwrap();
        git(
            &["-C", work, "checkout", "-q", "-b", "local", "origin/t"],
            None,
        );
        for i in 0..70 {
            // Dated in the future, so git offers them before anything the server knows.
            let out = std::process::Command::new("git")
                .args([
                    "-C",
                    work,
                    "commit",
                    "-q",
                    "--allow-empty",
                    "-m",
                    &format!("local {i}"),
                ])
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_AUTHOR_NAME", "git user")
                .env("GIT_AUTHOR_EMAIL", "git@example.com")
                .env("GIT_COMMITTER_NAME", "git user")
                .env("GIT_COMMITTER_EMAIL", "git@example.com")
                .env(
                    "GIT_COMMITTER_DATE",
                    format!("{} +0000", 4_000_000_000u64 + i),
                )
                .output()
                .unwrap();
            assert!(out.status.success());
        }
        let before = served.server.requests().len();
        publish(
            &served.repo,
            "t",
            (0..3).map(|i| format!("new{version}-{i}")),
        );
        git_v(version, &["-C", work, "fetch", "-q", "origin"], None);
        let fetched = clone.join(".git");
        assert_eq!(
            rev_parse(&fetched, "refs/remotes/origin/t"),
            served
                .repo
                .open()
                .refs()
                .find(&full("refs/heads/t"))
                .unwrap()
                .unwrap()
                .to_string()
        );
        fsck_clean(&fetched);
        let posts: Vec<_> = served.server.requests()[before..]
            .iter()
            .filter(|r| r.method == "POST")
            .cloned()
            .collect();
        let pack = posts.last().expect("a fetch POST");
        assert!(
            pack.body_bytes < 4096,
            "only the new messages travel, not the history: {pack:?}"
        );
        // v2: ls-refs, then fetch rounds; v0: fetch rounds only.
        let rounds = posts.len() - usize::from(version == 2);
        assert!(
            rounds >= 2,
            "v{version}: negotiation took rounds: {posts:?}"
        );
    }
}

#[test]
fn git_push_creates_fast_forwards_and_deletes_branches_with_trees_and_blobs() {
    let served = serve(TempRepo::new());
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    git(&["init", "-q", "-b", "main", work.to_str().unwrap()], None);
    let w = work.to_str().unwrap();
    std::fs::create_dir_all(work.join("src")).unwrap();
    std::fs::write(work.join("src/a.txt"), "hello\n").unwrap();
    std::fs::write(work.join("README"), "readme\n").unwrap();
    git(&["-C", w, "add", "."], None);
    git(&["-C", w, "commit", "-q", "-m", "first"], None);
    let url = served.server.url("queue.git");
    git(&["-C", w, "remote", "add", "origin", &url], None);
    git(&["-C", w, "push", "-q", "origin", "main"], None);
    assert_eq!(
        rev_parse(&served.repo.path, "refs/heads/main"),
        rev_parse(&work.join(".git"), "HEAD")
    );
    fsck_clean(&served.repo.path);

    std::fs::write(work.join("src/a.txt"), "hello again\n").unwrap();
    git(&["-C", w, "commit", "-q", "-am", "second"], None);
    git(
        &["-C", w, "push", "-q", "origin", "main", "main:side"],
        None,
    );
    let head = rev_parse(&work.join(".git"), "HEAD");
    assert_eq!(rev_parse(&served.repo.path, "refs/heads/main"), head);
    assert_eq!(rev_parse(&served.repo.path, "refs/heads/side"), head);
    fsck_clean(&served.repo.path);

    git(&["-C", w, "push", "-q", "origin", ":side"], None);
    assert!(served
        .repo
        .open()
        .refs()
        .find(&full("refs/heads/side"))
        .unwrap()
        .is_none());

    // What was pushed clones back whole.
    let clone = dir.path().join("back.git");
    git(
        &["clone", "-q", "--bare", &url, clone.to_str().unwrap()],
        None,
    );
    fsck_clean(&clone);
    assert_eq!(rev_parse(&clone, "refs/heads/main"), head);
    no_leftovers(&served.repo);
}

#[test]
fn non_fast_forwards_and_refs_outside_the_queue_are_refused_and_atomic_pushes_move_nothing() {
    let repo = TempRepo::new();
    publish(&repo, "t", (0..3).map(|i| format!("m{i}")));
    let served = serve(repo);
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    git(
        &[
            "clone",
            "-q",
            &served.server.url(""),
            work.to_str().unwrap(),
        ],
        None,
    );
    let w = work.to_str().unwrap();
    git(&["-C", w, "checkout", "-q", "-b", "t", "origin/t"], None);
    let before = rev_parse(&served.repo.path, "refs/heads/t");

    git(&["-C", w, "reset", "-q", "--hard", "HEAD~1"], None);
    git(
        &["-C", w, "commit", "-q", "--allow-empty", "-m", "rewritten"],
        None,
    );
    let out = git_output(&["-C", w, "push", "--force", "origin", "t"], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("non-fast-forward"), "{stderr}");
    assert_eq!(rev_parse(&served.repo.path, "refs/heads/t"), before);

    // Atomic: a new branch that is fine and a tag outside refs/heads/ and refs/gitmq/.
    git(&["-C", w, "tag", "v1"], None);
    let out = git_output(
        &[
            "-C",
            w,
            "push",
            "--atomic",
            "origin",
            "HEAD:refs/heads/fresh",
            "v1",
        ],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("read-only here"), "{stderr}");
    assert!(stderr.contains("atomic push failure"), "{stderr}");
    let refs = served.repo.open().refs().list("refs/").unwrap();
    assert_eq!(refs.len(), 1, "nothing moved: {refs:?}");
    no_leftovers(&served.repo);
    fsck_clean(&served.repo.path);
}

#[test]
fn gitmq_fetch_and_push_talk_to_the_host() {
    let served = serve(TempRepo::new());
    publish(&served.repo, "orders", (0..20).map(|i| format!("o{i}")));
    let url = served.server.url("queue.git");

    let replica = TempRepo::new();
    replica.git(&["remote", "add", "origin", &url]);
    let prefixes = replicate::fetch::DEFAULT_PREFIXES;
    let report = replicate::fetch(&replica.open(), "origin", &prefixes).unwrap();
    assert!(!report.updates.is_empty(), "{report:?}");
    let topic = TopicName::new("orders").unwrap();
    assert_eq!(
        replica.open().head(&topic).unwrap(),
        served.repo.open().head(&topic).unwrap()
    );
    replica.assert_fsck_clean();

    // The replica produces and consumes; push sends messages and the position back.
    publish(&replica, "orders", (20..25).map(|i| format!("o{i}")));
    let repo = replica.open();
    let mut consumer = gitmq::Consumer::open(
        repo.clone(),
        ConsumerName::new("billing").unwrap(),
        topic.clone(),
    )
    .unwrap();
    assert_eq!(consumer.poll(7).unwrap().len(), 7);
    consumer.commit().unwrap();
    let client = replicate::http::ReqwestClient::new(replicate::http::Options::default()).unwrap();
    let mut pusher = replicate::push::Pusher::new(&repo, "origin", client).unwrap();
    let report = pusher
        .push(&repo, replicate::push::PushOptions::default())
        .unwrap();
    assert_eq!(report.updates.len(), 2, "{report:?}");
    assert_eq!(
        served.repo.open().head(&topic).unwrap(),
        repo.head(&topic).unwrap()
    );
    assert_eq!(
        served
            .repo
            .open()
            .refs()
            .find(&full("refs/gitmq/consumers/billing/orders"))
            .unwrap(),
        consumer.position()
    );
    assert_eq!(payloads(&served.repo.path, "orders").len(), 25);
    served.repo.assert_fsck_clean();
    no_leftovers(&served.repo);

    // Nothing new: the next fetch stops after ls-refs.
    let report = replicate::fetch(&replica.open(), "origin", &prefixes).unwrap();
    assert!(report.pack.is_none(), "{report:?}");
}

#[test]
fn gzipped_fetch_requests_and_chunked_pushes_are_read() {
    let repo = TempRepo::new();
    for t in 0..60 {
        publish(&repo, &format!("topic-{t:02}"), [format!("only {t}")]);
    }
    let served = serve(repo);
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("w");
    git_v(
        2,
        &[
            "clone",
            "-q",
            &served.server.url(""),
            clone.to_str().unwrap(),
        ],
        None,
    );
    fsck_clean(&clone.join(".git"));
    let gzipped = served.server.requests().into_iter().find(|r| {
        r.path.ends_with("git-upload-pack") && r.content_encoding.as_deref() == Some("gzip")
    });
    assert!(
        gzipped.is_some_and(|r| r.status == 200),
        "60 wants are gzipped by git"
    );

    // A push over git's 1 MiB post buffer goes chunked.
    let w = clone.to_str().unwrap();
    git(&["-C", w, "checkout", "-q", "-b", "big"], None);
    let mut rng = crate::util::Rng::new(7);
    let noise: Vec<u8> = (0..3 << 20).map(|_| rng.next().to_be_bytes()[0]).collect();
    std::fs::write(clone.join("noise.bin"), noise).unwrap();
    git(&["-C", w, "add", "noise.bin"], None);
    git(&["-C", w, "commit", "-q", "-m", "noise"], None);
    git(&["-C", w, "push", "-q", "origin", "big"], None);
    // (git first probes with an empty request, then sends the pack chunked.)
    let pushes: Vec<_> = served
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("git-receive-pack"))
        .collect();
    assert!(
        pushes
            .iter()
            .any(|r| r.chunked && r.status == 200 && r.error.is_none()),
        "{pushes:?}"
    );
    assert_eq!(
        rev_parse(&served.repo.path, "refs/heads/big"),
        rev_parse(&clone.join(".git"), "HEAD")
    );
    fsck_clean(&served.repo.path);
}

/// One request over a raw connection: `declared` as Content-Length (default: the body's
/// length), the body, then the write side closed. Status and (de-chunked) body.
fn raw_request(
    served: &Served,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    declared: Option<usize>,
) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", served.server.port)).unwrap();
    let mut head = format!(
        "{method} /git/{target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        declared.unwrap_or(body.len())
    );
    for (name, value) in headers {
        head.extend([name, ": ", value, "\r\n"]);
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = response[split..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut plain = Vec::new();
        let mut rest = &body[..];
        while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap(), 16).unwrap();
            if size == 0 {
                break;
            }
            plain.extend_from_slice(&rest[end + 2..end + 2 + size]);
            rest = &rest[end + 4 + size..];
        }
        body = plain;
    }
    (status, body)
}

/// Text pkt-lines; "0000" is a flush, "0001" a delimiter.
fn pkts(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        if matches!(*part, "0000" | "0001") {
            out.extend_from_slice(part.as_bytes());
        } else {
            out.extend_from_slice(format!("{:04x}{part}\n", part.len() + 5).as_bytes());
        }
    }
    out
}

/// A pack of what `new` reaches and `old` does not, made by git in `git_dir`.
fn pack_of(git_dir: &Path, new: &str, old: &str) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("git")
        .args([
            "--git-dir",
            git_dir.to_str().unwrap(),
            "pack-objects",
            "--stdout",
            "--revs",
            "-q",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{new}\n^{old}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// A commit on top of `parent` made by git in `git_dir`.
fn commit_on(git_dir: &Path, parent: &str, message: &str) -> String {
    let out = git(
        &[
            "--git-dir",
            git_dir.to_str().unwrap(),
            "commit-tree",
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
            "-p",
            parent,
            "-m",
            message,
        ],
        None,
    );
    String::from_utf8(out).unwrap().trim().to_owned()
}

/// Request headers.
type Headers<'a> = &'a [(&'a str, &'a str)];

const PUSH: [(&str, &str); 1] = [("Content-Type", "application/x-git-receive-pack-request")];

fn wait_for_requests(served: &Served, count: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while served.server.requests().len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_truncated_corrupt_or_unconnected_push_moves_nothing_and_leaves_no_temporary_files() {
    let repo = TempRepo::new();
    publish(&repo, "t", (0..3).map(|i| format!("m{i}")));
    let served = serve(repo);
    let old = rev_parse(&served.repo.path, "refs/heads/t");
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("c.git");
    git(
        &[
            "clone",
            "-q",
            "--bare",
            &served.server.url(""),
            clone.to_str().unwrap(),
        ],
        None,
    );
    let new = commit_on(&clone, &old, "next");
    let pack = pack_of(&clone, &new, &old);
    let mut body = pkts(&[
        &format!("{old} {new} refs/heads/t\0report-status side-band-64k"),
        "0000",
    ]);
    body.extend_from_slice(&pack);

    // Cut off halfway: the connection closes before the declared length.
    let before = served.server.requests().len();
    let _ = raw_request(
        &served,
        "POST",
        "git-receive-pack",
        &PUSH,
        &body[..body.len() - pack.len() / 2],
        Some(body.len()),
    );
    wait_for_requests(&served, before + 1);
    assert_eq!(rev_parse(&served.repo.path, "refs/heads/t"), old);
    no_leftovers(&served.repo);

    // A byte flipped inside the pack.
    let mut corrupt = body.clone();
    let at = corrupt.len() - 30;
    corrupt[at] ^= 0x55;
    let (status, answer) = raw_request(&served, "POST", "git-receive-pack", &PUSH, &corrupt, None);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert_eq!(status, 200);
    assert!(
        answer.contains("unpack ") && !answer.contains("unpack ok"),
        "{answer}"
    );
    assert!(
        answer.contains("ng refs/heads/t unpacker error"),
        "{answer}"
    );
    assert_eq!(rev_parse(&served.repo.path, "refs/heads/t"), old);
    no_leftovers(&served.repo);

    // A commit whose parent the server lacks.
    let orphan = commit_on(&clone, &new, "after a commit the server never got");
    let mut unconnected = pkts(&[
        &format!("{old} {orphan} refs/heads/t\0report-status"),
        "0000",
    ]);
    unconnected.extend_from_slice(&pack_of(&clone, &orphan, &new));
    let (status, answer) = raw_request(
        &served,
        "POST",
        "git-receive-pack",
        &PUSH,
        &unconnected,
        None,
    );
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert_eq!(status, 200);
    assert!(
        answer.contains("ng refs/heads/t missing necessary objects"),
        "{answer}"
    );
    assert_eq!(rev_parse(&served.repo.path, "refs/heads/t"), old);
    no_leftovers(&served.repo);

    // The intact request goes through (so the ones above failed for their flaw).
    let (status, answer) = raw_request(&served, "POST", "git-receive-pack", &PUSH, &body, None);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&answer).contains("ok refs/heads/t"));
    assert_eq!(rev_parse(&served.repo.path, "refs/heads/t"), new);
    // And a stale old value loses the compare-and-swap.
    let newer = commit_on(&clone, &new, "newer");
    let mut stale = pkts(&[
        &format!("{old} {newer} refs/heads/t\0report-status"),
        "0000",
    ]);
    stale.extend_from_slice(&pack_of(&clone, &newer, &new));
    let (_, answer) = raw_request(&served, "POST", "git-receive-pack", &PUSH, &stale, None);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.contains(&format!(
            "ng refs/heads/t cannot lock ref 'refs/heads/t': is at {new} but expected {old}"
        )),
        "{answer}"
    );
    assert_eq!(rev_parse(&served.repo.path, "refs/heads/t"), new);
    no_leftovers(&served.repo);
    fsck_clean(&served.repo.path);
}

#[test]
fn hostile_requests_get_4xx_and_change_nothing() {
    let repo = TempRepo::new();
    publish(&repo, "t", (0..3).map(|i| format!("m{i}")));
    let mut options = Options::default();
    options.limits.max_request_bytes = 1 << 20;
    options.limits.pack.max_pack_size = 1 << 20;
    let served = serve_with(repo, options, Arc::new(AllowAll));
    let old = rev_parse(&served.repo.path, "refs/heads/t");
    let v2 = [
        ("Content-Type", "application/x-git-upload-pack-request"),
        ("Git-Protocol", "version=2"),
    ];
    // A gzip bomb of well-formed packets, so the host reads on until the limit.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &pkts(&["command=ls-refs", "0001"])).unwrap();
    let line = pkts(&["ref-prefix refs/heads/"]);
    for _ in 0..(8 << 20) / line.len() {
        std::io::Write::write_all(&mut gz, &line).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    let gzip_v2 = [v2[0], v2[1], ("Content-Encoding", "gzip")];
    let mut too_big = pkts(&[&format!("{old} {old} refs/heads/x\0report-status"), "0000"]);
    let pack_start = too_big.len();
    too_big.extend_from_slice(b"PACK\0\0\0\x02\0\0\0\x01");
    gitmq::git::odb::pack::write::EntryEncoder::new(gitmq::githost::Compression::Stored).append(
        &mut too_big,
        gix_object::Kind::Blob,
        &vec![7u8; 2 << 20],
    );
    let mut hasher = gitmq::git::hash::Hasher::new();
    hasher.update(&too_big[pack_start..]);
    too_big.extend_from_slice(hasher.finalize().as_bytes());
    let cases: Vec<(&str, Headers, Vec<u8>, u16)> = vec![
        ("git-upload-pack", &v2, b"zzzz".to_vec(), 400),
        (
            "git-upload-pack",
            &v2,
            [&b"fff0"[..], &[b'x'; 100]].concat(),
            400,
        ),
        ("git-upload-pack", &v2, b"ffff".to_vec(), 400),
        (
            "git-upload-pack",
            &v2,
            pkts(&["command=frobnicate", "0000"]),
            400,
        ),
        (
            "git-upload-pack",
            &v2,
            pkts(&["command=fetch", "0001", "want 123", "0000"]),
            400,
        ),
        ("git-upload-pack", &gzip_v2, bomb, 413),
        (
            "git-upload-pack",
            &gzip_v2,
            b"not gzip at all".to_vec(),
            400,
        ),
        (
            "git-upload-pack",
            &[("Content-Type", "text/plain")],
            Vec::new(),
            415,
        ),
        (
            "git-receive-pack",
            &PUSH,
            pkts(&["bad command", "0000"]),
            400,
        ),
        ("git-receive-pack", &PUSH, too_big, 413),
        ("objects/info/packs", &PUSH, Vec::new(), 404),
    ];
    for (target, headers, body, expected) in cases {
        let (status, answer) = raw_request(&served, "POST", target, headers, &body, None);
        assert_eq!(
            status,
            expected,
            "{target}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert_eq!(rev_parse(&served.repo.path, "refs/heads/t"), old);
    assert_eq!(served.repo.open().refs().list("refs/").unwrap().len(), 1);
    no_leftovers(&served.repo);
    fsck_clean(&served.repo.path);
}

#[test]
fn access_hides_refs_and_refuses_pushes_per_ref_and_per_service() {
    let repo = TempRepo::new();
    publish(&repo, "public/a", ["a".to_owned()]);
    publish(&repo, "secret/b", ["b".to_owned()]);
    let secret = rev_parse(&repo.path, "refs/heads/secret/b");
    let access = |op: gitmq::githost::Operation, name: &str| {
        op == gitmq::githost::Operation::Read && name.starts_with("refs/heads/public/")
    };
    let served = serve_with(repo, Options::default(), Arc::new(access));
    let listed = String::from_utf8(git(&["ls-remote", &served.server.url("")], None)).unwrap();
    assert!(
        listed.contains("refs/heads/public/a") && !listed.contains("secret"),
        "{listed}"
    );
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("w");
    git(
        &[
            "clone",
            "-q",
            &served.server.url(""),
            clone.to_str().unwrap(),
        ],
        None,
    );
    let (status, answer) = raw_request(
        &served,
        "POST",
        "git-upload-pack",
        &[
            ("Content-Type", "application/x-git-upload-pack-request"),
            ("Git-Protocol", "version=2"),
        ],
        &pkts(&[
            "command=fetch",
            "0001",
            &format!("want {secret}"),
            "done",
            "0000",
        ]),
        None,
    );
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&answer)
            .contains(&format!("ERR upload-pack: not our ref {secret}")),
        "a hidden ref's commit is not served"
    );
    let w = clone.to_str().unwrap();
    git(
        &["-C", w, "checkout", "-q", "-b", "a", "origin/public/a"],
        None,
    );
    git(
        &["-C", w, "commit", "-q", "--allow-empty", "-m", "mine"],
        None,
    );
    let out = git_output(
        &["-C", w, "push", "origin", "HEAD:refs/heads/public/a"],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("permission denied"), "{stderr}");

    let read_only = serve_with(
        TempRepo::new(),
        Options::default(),
        Arc::new(gitmq::githost::ReadOnly),
    );
    let out = git_output(
        &[
            "-C",
            w,
            "push",
            &read_only.server.url(""),
            "HEAD:refs/heads/x",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(read_only
        .repo
        .open()
        .refs()
        .list("refs/")
        .unwrap()
        .is_empty());
}

#[test]
fn a_pruned_queue_is_cloned_shallow_and_fetched_again_over_v2_and_v0() {
    let repo = TempRepo::new();
    publish(&repo, "t", (0..50).map(|i| format!("m{i}")));
    let topic = TopicName::new("t").unwrap();
    gitmq::prune::prune(
        &repo.open(),
        &topic,
        gitmq::prune::Retain::Keep(10),
        &gitmq::prune::Options::default(),
    )
    .unwrap();
    let served = serve(repo);
    let dir = tempfile::tempdir().unwrap();
    let count = |git_dir: &Path| {
        String::from_utf8(git(
            &[
                "--git-dir",
                git_dir.to_str().unwrap(),
                "rev-list",
                "--count",
                "refs/heads/t",
            ],
            None,
        ))
        .unwrap()
        .trim()
        .parse::<usize>()
        .unwrap()
    };
    let out = git_output(
        &[
            "clone",
            "-q",
            "--shallow-since=2000-01-01",
            "--branch",
            "t",
            &served.server.url(""),
            dir.path().join("d").to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("serves shallow fetches by depth only"),
        "{stderr}"
    );
    for version in [2u8, 0] {
        let clone = dir.path().join(format!("c{version}.git"));
        git_v(
            version,
            &[
                "clone",
                "-q",
                "--bare",
                &served.server.url(""),
                clone.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(count(&clone), 10, "v{version}: the kept messages");
        assert!(
            clone.join("shallow").is_file(),
            "v{version}: the clone is shallow too"
        );
        fsck_clean(&clone);
    }
    publish(&served.repo, "t", (0..3).map(|i| format!("n{i}")));
    for version in [2u8, 0] {
        let clone = dir.path().join(format!("c{version}.git"));
        git_v(
            version,
            &[
                "--git-dir",
                clone.to_str().unwrap(),
                "fetch",
                "-q",
                &served.server.url(""),
                "+refs/heads/*:refs/heads/*",
            ],
            None,
        );
        assert_eq!(count(&clone), 13, "v{version}: the new messages arrive");
        fsck_clean(&clone);
    }
}

/// Not a test: `cargo test --release --test integration -- --ignored githost_clone_timing
/// --nocapture` times `git clone --bare` of a 100,000-message topic from the git host and
/// from lighttpd + git-http-backend serving the same packs, alternating, in one run.
#[test]
#[ignore = "a timing run, see its doc comment"]
fn githost_clone_timing() {
    let messages: usize = std::env::var("GITHOST_TIMING_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let repo = TempRepo::new();
    let payloads: Vec<String> = (0..messages)
        .map(|i| {
            format!(
                "{{\"order\":{i},\"customer\":\"c{}\",\"amount\":{}}}",
                i % 977,
                i * 7 % 1000
            )
        })
        .collect();
    let topic = TopicName::new("orders").unwrap();
    let mut producer = repo.open().producer(&topic);
    for chunk in payloads.chunks(10_000) {
        producer
            .publish_batch(chunk.iter().map(String::as_bytes))
            .unwrap();
    }
    let head = rev_parse(&repo.path, "refs/heads/orders");
    let lighttpd = crate::server::HttpServer::start();
    let bare = lighttpd.bare_repo("q");
    for entry in std::fs::read_dir(repo.path.join("objects/pack")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            bare.join("objects/pack").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    git(
        &[
            "--git-dir",
            bare.to_str().unwrap(),
            "update-ref",
            "refs/heads/orders",
            &head,
        ],
        None,
    );
    let served = serve(repo);
    let sources = [
        ("gitmq githost", served.server.url("")),
        ("git-http-backend", lighttpd.url("q")),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); sources.len()];
    for round in 0..3 {
        for (i, (_, url)) in sources.iter().enumerate() {
            let clone = dir.path().join(format!("c{round}-{i}.git"));
            let start = std::time::Instant::now();
            git(
                &["clone", "-q", "--bare", url, clone.to_str().unwrap()],
                None,
            );
            times[i].push(start.elapsed().as_secs_f64());
            assert_eq!(rev_parse(&clone, "refs/heads/orders"), head);
            std::fs::remove_dir_all(&clone).unwrap();
        }
    }
    let mut fetch_times: Vec<Vec<f64>> = vec![Vec::new(); sources.len()];
    for _round in 0..3 {
        for (i, (_, url)) in sources.iter().enumerate() {
            let replica = TempRepo::new();
            let start = std::time::Instant::now();
            replicate::fetch(&replica.open(), url, &replicate::fetch::DEFAULT_PREFIXES).unwrap();
            fetch_times[i].push(start.elapsed().as_secs_f64());
            assert_eq!(rev_parse(&replica.path, "refs/heads/orders"), head);
        }
    }
    let server_alone = host_alone(&served, &head);
    let one_new = one_new_message(&served, &bare, &sources, dir.path());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("{messages} messages, 3 rounds alternating, load {load}");
    let median = |mut t: Vec<f64>| {
        t.sort_by(f64::total_cmp);
        format!("median {:.3} s (min {:.3}, max {:.3})", t[1], t[0], t[2])
    };
    for (((name, _), clone), fetch) in sources.iter().zip(times).zip(fetch_times) {
        eprintln!("  from {name:>16}: git clone --bare {}", median(clone));
        eprintln!("  from {name:>16}: gitmq fetch      {}", median(fetch));
    }
    for ((name, _), t) in sources.iter().zip(one_new) {
        eprintln!(
            "  from {name:>16}: git fetch of 1 new message {}",
            median(t)
        );
    }
    let bytes = server_alone[0].1;
    eprintln!(
        "  githost alone (the fetch answer to a sink, {bytes} bytes): {}",
        median(server_alone.into_iter().map(|(t, _)| t).collect())
    );
}

/// The host alone, three times: the whole clone answer written to a sink, no client; seconds
/// and bytes.
fn host_alone(served: &Served, head: &str) -> Vec<(f64, u64)> {
    let host = GitHost::new(served.repo.open());
    let mut server_alone = Vec::new();
    let request = pkts(&[
        "command=fetch",
        "0001",
        "ofs-delta",
        &format!("want {head}"),
        "done",
        "0000",
    ]);
    for _round in 0..3 {
        let start = std::time::Instant::now();
        let response = host
            .handle(
                gitmq::githost::Request {
                    method: "POST",
                    path: "git-upload-pack",
                    query: None,
                    git_protocol: Some("version=2"),
                    content_type: Some("application/x-git-upload-pack-request"),
                    content_encoding: None,
                    body: &mut &request[..],
                },
                &AllowAll,
            )
            .unwrap();
        let bytes = response.write_body(&mut std::io::sink()).unwrap();
        server_alone.push((start.elapsed().as_secs_f64(), bytes));
    }
    server_alone
}

#[test]
fn three_gitmq_producers_pushing_one_topic_to_the_host_at_once_lose_and_duplicate_nothing() {
    let served = serve(TempRepo::new());
    let url = served.server.url("queue.git");
    let producers: Vec<TempRepo> = (0..3)
        .map(|_| {
            let repo = TempRepo::new();
            repo.git(&["remote", "add", "origin", &url]);
            repo
        })
        .collect();
    std::thread::scope(|scope| {
        for (p, producer) in producers.iter().enumerate() {
            scope.spawn(move || {
                let repo = producer.open();
                let client =
                    replicate::http::ReqwestClient::new(replicate::http::Options::default())
                        .unwrap();
                let mut pusher = replicate::push::Pusher::new(&repo, "origin", client).unwrap();
                for round in 0..6 {
                    publish(
                        producer,
                        "events",
                        (0..5).map(|i| format!("p{p}-{}", round * 5 + i)),
                    );
                    let options = replicate::push::PushOptions {
                        max_attempts: 50,
                        ..replicate::push::PushOptions::default()
                    };
                    pusher.push(&repo, options).unwrap();
                }
            });
        }
    });
    for producer in &producers {
        let client =
            replicate::http::ReqwestClient::new(replicate::http::Options::default()).unwrap();
        replicate::push::push_with(
            &producer.open(),
            "origin",
            client,
            replicate::push::PushOptions::default(),
        )
        .unwrap();
    }
    let log = payloads(&served.repo.path, "events");
    assert_eq!(log.len(), 90, "every message exactly once: {log:?}");
    for p in 0..3 {
        let mine: Vec<&String> = log
            .iter()
            .filter(|m| m.starts_with(&format!("p{p}-")))
            .collect();
        let expected: Vec<String> = (0..30).map(|i| format!("p{p}-{i}")).collect();
        assert_eq!(
            mine,
            expected.iter().collect::<Vec<_>>(),
            "producer {p}'s order"
        );
    }
    fsck_clean(&served.repo.path);
    no_leftovers(&served.repo);
}

#[test]
fn annotated_tags_are_advertised_peeled_and_followed_by_fetch() {
    let repo = TempRepo::new();
    publish(&repo, "t", (0..3).map(|i| format!("m{i}")));
    repo.git(&["tag", "-a", "-m", "first release", "v1", "refs/heads/t"]);
    let served = serve(repo);
    let url = served.server.url("");
    let dir = tempfile::tempdir().unwrap();
    for version in [2u8, 0] {
        let listed = String::from_utf8(git_v(version, &["ls-remote", &url], None)).unwrap();
        let peeled = rev_parse(&served.repo.path, "refs/tags/v1^{}");
        assert!(
            listed.contains(&format!("{peeled}\trefs/tags/v1^{{}}")),
            "v{version}: {listed}"
        );
        let clone = dir.path().join(format!("c{version}"));
        git_v(
            version,
            &["clone", "-q", &url, clone.to_str().unwrap()],
            None,
        );
        let git_dir = clone.join(".git");
        assert_eq!(
            rev_parse(&git_dir, "refs/tags/v1"),
            rev_parse(&served.repo.path, "refs/tags/v1")
        );
        fsck_clean(&git_dir);
    }
    // A tag on a new message is followed by a plain fetch (include-tag).
    publish(&served.repo, "t", ["m3".to_owned()]);
    served
        .repo
        .git(&["tag", "-a", "-m", "second", "v2", "refs/heads/t"]);
    for version in [2u8, 0] {
        let clone = dir.path().join(format!("c{version}"));
        git_v(
            version,
            &["-C", clone.to_str().unwrap(), "fetch", "-q", "origin"],
            None,
        );
        let git_dir = clone.join(".git");
        assert_eq!(
            rev_parse(&git_dir, "refs/tags/v2"),
            rev_parse(&served.repo.path, "refs/tags/v2"),
            "v{version}"
        );
        fsck_clean(&git_dir);
    }
}

#[test]
fn git_clone_depth_gets_the_newest_messages_and_fetches_on_over_v2_and_v0() {
    let repo = TempRepo::new();
    publish(&repo, "t", (0..20).map(|i| format!("m{i}")));
    let served = serve(repo);
    let url = served.server.url("");
    let dir = tempfile::tempdir().unwrap();
    let count = |git_dir: &Path| {
        let out = git(
            &[
                "--git-dir",
                git_dir.to_str().unwrap(),
                "rev-list",
                "--count",
                "refs/heads/t",
            ],
            None,
        );
        String::from_utf8(out)
            .unwrap()
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    for version in [2u8, 0] {
        let clone = dir.path().join(format!("d{version}.git"));
        let c = clone.to_str().unwrap();
        git_v(
            version,
            &[
                "clone", "-q", "--bare", "--depth", "3", "--branch", "t", &url, c,
            ],
            None,
        );
        assert_eq!(count(&clone), 3, "v{version}: the newest 3 messages");
        assert_eq!(payloads(&clone, "refs/heads/t"), ["m17", "m18", "m19"]);
        let shallow = std::fs::read_to_string(clone.join("shallow")).unwrap();
        assert_eq!(
            shallow.trim(),
            rev_parse(&served.repo.path, "refs/heads/t~2")
        );
        fsck_clean(&clone);
    }
    publish(&served.repo, "t", (0..2).map(|i| format!("n{i}")));
    for version in [2u8, 0] {
        let clone = dir.path().join(format!("d{version}.git"));
        let c = clone.to_str().unwrap();
        git_v(
            version,
            &[
                "--git-dir",
                c,
                "fetch",
                "-q",
                &url,
                "+refs/heads/t:refs/heads/t",
            ],
            None,
        );
        assert_eq!(
            count(&clone),
            5,
            "v{version}: a plain fetch extends the shallow clone"
        );
        fsck_clean(&clone);
        let out = git_output(
            &["--git-dir", c, "fetch", "-q", "--deepen", "2", &url, "t"],
            None,
        );
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("does not deepen a shallow clone"),
            "v{version}: {stderr}"
        );
    }
}

/// `git fetch` of one new message into a clone from each source, three times: the message is
/// published on the host and its pack copied to the other server's repository.
fn one_new_message(
    served: &Served,
    bare: &Path,
    sources: &[(&str, String)],
    dir: &Path,
) -> Vec<Vec<f64>> {
    let clones: Vec<PathBuf> = sources
        .iter()
        .enumerate()
        .map(|(i, (_, url))| {
            let clone = dir.join(format!("inc{i}.git"));
            git(
                &["clone", "-q", "--bare", url, clone.to_str().unwrap()],
                None,
            );
            clone
        })
        .collect();
    let mut times = vec![Vec::new(); sources.len()];
    for round in 0..3 {
        publish(&served.repo, "orders", [format!("{{\"late\":{round}}}")]);
        for entry in std::fs::read_dir(served.repo.path.join("objects/pack")).unwrap() {
            let path = entry.unwrap().path();
            let target = bare.join("objects/pack").join(path.file_name().unwrap());
            if !target.exists() {
                std::fs::copy(&path, target).unwrap();
            }
        }
        let head = rev_parse(&served.repo.path, "refs/heads/orders");
        git(
            &[
                "--git-dir",
                bare.to_str().unwrap(),
                "update-ref",
                "refs/heads/orders",
                &head,
            ],
            None,
        );
        for (i, clone) in clones.iter().enumerate() {
            let start = std::time::Instant::now();
            git(
                &[
                    "--git-dir",
                    clone.to_str().unwrap(),
                    "fetch",
                    "-q",
                    &sources[i].1,
                    "+refs/heads/*:refs/heads/*",
                ],
                None,
            );
            times[i].push(start.elapsed().as_secs_f64());
            assert_eq!(rev_parse(clone, "refs/heads/orders"), head);
        }
    }
    times
}
