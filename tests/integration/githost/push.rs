//! Pushes to the git host: new branches with trees and blobs, fast-forwards, deletions,
//! refusals (non-fast-forward, outside the queue, atomic), truncated, corrupt and
//! unconnected packs, a lost compare-and-swap, and concurrent gitmq producers.

use super::*;

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
