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
                    .find(&name)
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
            git(
                &[
                    "-C",
                    work,
                    "commit",
                    "-q",
                    "--allow-empty",
                    "-m",
                    &format!("local {i}"),
                ],
                None,
            );
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
                .find("refs/heads/t")
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
        .find("refs/heads/side")
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
            .find("refs/gitmq/consumers/billing/orders")
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
