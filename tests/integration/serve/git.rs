//! `/git/`: the same server is a git host. The git CLI clones, fetches and pushes (and
//! `git fsck --strict` finds the clone clean), gitmq's own transport pushes and fetches,
//! tokens gate it through HTTP basic, and a truncated push moves nothing.

use std::process::Command;

use super::{ndjson, payloads, Serve};

/// Run git in `dir` (or anywhere), asserting success; stdout.
fn git(dir: Option<&std::path::Path>, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn git_clones_fetches_and_pushes_the_queue_served_over_http() {
    let serve = Serve::start(&[]);
    let client = Serve::client();
    for n in 0..3 {
        assert_eq!(
            serve
                .publish(&client, "orders", format!("order {n}").as_bytes(), &[])
                .0,
            200
        );
    }
    let work = tempfile::tempdir().unwrap();
    let url = format!("{}/git/", serve.url);
    git(
        Some(work.path()),
        &["clone", "--quiet", "--bare", &url, "clone.git"],
    );
    let clone = work.path().join("clone.git");
    assert_eq!(
        git(Some(&clone), &["rev-list", "--count", "orders"]).trim(),
        "3"
    );
    git(Some(&clone), &["fsck", "--strict", "--no-dangling"]);

    // New messages arrive; git fetch brings them.
    for n in 3..5 {
        assert_eq!(
            serve
                .publish(&client, "orders", format!("order {n}").as_bytes(), &[])
                .0,
            200
        );
    }
    git(
        Some(&clone),
        &["fetch", "--quiet", "origin", "+refs/heads/*:refs/heads/*"],
    );
    assert_eq!(
        git(Some(&clone), &["rev-list", "--count", "orders"]).trim(),
        "5"
    );

    // A message made by git (an empty-tree commit) and pushed: consumers see it.
    let head = git(Some(&clone), &["rev-parse", "orders"]);
    let empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
    let commit = git(
        Some(&clone),
        &[
            "-c",
            "user.name=git",
            "-c",
            "user.email=git@example.com",
            "commit-tree",
            empty_tree,
            "-p",
            head.trim(),
            "-m",
            "pushed by git",
        ],
    );
    git(
        Some(&clone),
        &["update-ref", "refs/heads/orders", commit.trim()],
    );
    git(Some(&clone), &["push", "--quiet", "origin", "orders"]);
    let (_, body) = serve.get(&client, "/v1/topics/orders/messages?from=beginning&max=100");
    let lines = ndjson(&body);
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[5]["payload"], "pushed by git\n");
    assert_eq!(lines[5]["id"], commit.trim());
    // A non-fast-forward push of a topic is refused (acknowledged messages never vanish).
    git(
        Some(&clone),
        &["update-ref", "refs/heads/orders", head.trim()],
    );
    let out = Command::new("git")
        .current_dir(&clone)
        .args(["push", "--force", "origin", "orders"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a rewrite of a topic is refused");
    assert_eq!(payloads(&serve.repo.path, "orders").len(), 6);
    serve.repo.assert_fsck_clean();
}

#[test]
fn gitmq_push_and_fetch_sync_with_a_gitmq_node() {
    let serve = Serve::start(&[]);
    let client = Serve::client();
    assert_eq!(
        serve
            .publish(&client, "remote-topic", b"from the node", &[])
            .0,
        200
    );
    let local = crate::util::TempRepo::new();
    let url = format!("{}/git/queue.git", serve.url);
    let gitmq = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gitmq"))
            .arg("--repo")
            .arg(&local.path)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gitmq {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    gitmq(&["remote", "add", "origin", &url]);
    gitmq(&["fetch"]);
    assert_eq!(
        payloads(&local.path, "remote-topic"),
        [b"from the node".to_vec()]
    );
    gitmq(&["publish", "local-topic", "from the laptop"]);
    gitmq(&["push"]);
    let (_, body) = serve.get(&client, "/v1/topics/local-topic/messages");
    assert_eq!(ndjson(&body)[0]["payload"], "from the laptop");
    serve.repo.assert_fsck_clean();
}

#[test]
fn git_over_http_uses_tokens_as_basic_passwords_and_a_truncated_push_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[[token]]\nname = \"ci\"\nsecret = \"ci-secret-0123\"\nread = [\"*\"]\nwrite = [\"*\"]\n",
    )
    .unwrap();
    let serve = Serve::start(&["--auth", tokens.to_str().unwrap()]);
    let client = Serve::client();
    let published = client
        .post(format!("{}/v1/topics/orders/messages", serve.url))
        .bearer_auth("ci-secret-0123")
        .body("one")
        .send()
        .unwrap();
    assert_eq!(published.status().as_u16(), 200);
    let work = tempfile::tempdir().unwrap();
    let anonymous = format!("{}/git/", serve.url);
    let out = Command::new("git")
        .current_dir(work.path())
        .args(["clone", "--quiet", "--bare", &anonymous, "nope.git"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success(), "no credentials, no clone");
    let with_token = anonymous.replace("http://", "http://ci:ci-secret-0123@");
    git(
        Some(work.path()),
        &["clone", "--quiet", "--bare", &with_token, "ok.git"],
    );
    assert_eq!(
        git(
            Some(&work.path().join("ok.git")),
            &["rev-list", "--count", "orders"]
        )
        .trim(),
        "1"
    );

    // A push whose pack is cut short: refused, nothing moves.
    let refs_before = serve.repo.git(&["for-each-ref"]);
    let old = String::from_utf8(serve.repo.git(&["rev-parse", "orders"])).unwrap();
    let command = format!(
        "{} {} refs/heads/orders\0report-status\n",
        old.trim(),
        "1".repeat(40)
    );
    let mut body = format!("{:04x}{command}0000", command.len() + 4).into_bytes();
    body.extend_from_slice(b"PACK\0\0\0\x02\0\0\0\x05truncated");
    let reply = client
        .post(format!("{}/git/git-receive-pack", serve.url))
        .bearer_auth("ci-secret-0123")
        .header("content-type", "application/x-git-receive-pack-request")
        .body(body)
        .send()
        .unwrap();
    let status = reply.status().as_u16();
    let text = reply.text().unwrap();
    assert!(
        status >= 400 || text.contains("unpack") && !text.contains("unpack ok"),
        "{status}: {text}"
    );
    assert_eq!(
        serve.repo.git(&["for-each-ref"]),
        refs_before,
        "nothing moved"
    );
    serve.repo.assert_fsck_clean();
}
