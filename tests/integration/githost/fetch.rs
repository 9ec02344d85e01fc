//! Clone and fetch from the git host: git over v2 and v0 (negotiation rounds, gzipped
//! requests, tags, `--depth`, a pruned queue), and gitmq's own fetch and push.

use super::*;

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
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| rng.next_u64().to_be_bytes()[0])
        .collect();
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
