//! protocol v2 requests answered by the host itself: ls-refs, negotiation rounds, deepen.
use crate::{
    git::wire::pktline::{self, encode_lines},
    githost::{AllowAll, GitHost, Request},
    ObjectId, Repository, TopicName,
};

fn repo() -> (tempfile::TempDir, Repository, Vec<ObjectId>) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path().join("q.git")).unwrap();
    let ids = repo
        .producer(&TopicName::new("t").unwrap())
        .publish_batch([&b"a"[..], b"b", b"c"])
        .unwrap();
    (dir, repo, ids)
}

/// The text lines of a v2 answer up to the packfile (specials as "0000", "0001").
fn post(repo: &Repository, parts: &[&str]) -> Vec<String> {
    let body = encode_lines(parts);
    let mut raw = &body[..];
    let answer = GitHost::new(repo.clone())
        .handle(
            Request {
                method: "POST",
                path: "git-upload-pack",
                query: None,
                git_protocol: Some("version=2"),
                content_type: Some("application/x-git-upload-pack-request"),
                content_encoding: None,
                body: &mut raw,
            },
            &AllowAll,
        )
        .unwrap()
        .into_bytes()
        .unwrap();
    let mut out = Vec::new();
    let mut rest = &answer[..];
    while let Ok(pktline::Stream::Complete { line, consumed }) = pktline::decode(rest) {
        out.push(match line {
            pktline::PacketLine::Flush => "0000".to_owned(),
            pktline::PacketLine::Delim => "0001".to_owned(),
            _ => String::from_utf8_lossy(line.as_text().unwrap_or_default()).into_owned(),
        });
        if out.last().is_some_and(|l| l == "packfile") {
            break;
        }
        rest = &rest[consumed..];
    }
    out
}

#[test]
fn ls_refs_filters_by_prefix_and_shows_an_unborn_head() {
    let (_dir, repo, ids) = repo();
    let lines = post(
        &repo,
        &[
            "command=ls-refs",
            "0001",
            "symrefs",
            "unborn",
            "ref-prefix HEAD",
            "ref-prefix refs/heads/",
            "0000",
        ],
    );
    assert_eq!(
        lines,
        [
            "unborn HEAD symref-target:refs/heads/main".to_owned(),
            format!("{} refs/heads/t", ids[2]),
            "0000".to_owned()
        ]
    );
    let lines = post(
        &repo,
        &["command=ls-refs", "0001", "ref-prefix refs/tags/", "0000"],
    );
    assert_eq!(lines, ["0000"]);
}

#[test]
fn rounds_acknowledge_until_ready_and_wait_for_done_waits() {
    let (_dir, repo, ids) = repo();
    let want = format!("want {}", ids[2]);
    let unknown = format!("have {}", "1".repeat(40));
    let lines = post(&repo, &["command=fetch", "0001", &want, &unknown, "0000"]);
    assert_eq!(
        lines,
        ["acknowledgments", "NAK", "0000"],
        "nothing common yet"
    );
    let have = format!("have {}", ids[0]);
    let lines = post(
        &repo,
        &["command=fetch", "0001", &want, &unknown, &have, "0000"],
    );
    assert_eq!(
        lines,
        [
            "acknowledgments",
            &format!("ACK {}", ids[0]),
            "ready",
            "0001",
            "packfile"
        ]
    );
    let lines = post(
        &repo,
        &[
            "command=fetch",
            "0001",
            &want,
            &have,
            "wait-for-done",
            "0000",
        ],
    );
    assert_eq!(
        lines,
        ["acknowledgments", &format!("ACK {}", ids[0]), "0000"]
    );
    let lines = post(
        &repo,
        &["command=fetch", "0001", &want, &have, "done", "0000"],
    );
    assert_eq!(lines, ["packfile"], "done: no acknowledgments");
}

#[test]
fn deepen_sends_the_boundary_and_other_deepenings_are_refused() {
    let (_dir, repo, ids) = repo();
    let want = format!("want {}", ids[2]);
    let lines = post(
        &repo,
        &["command=fetch", "0001", &want, "deepen 2", "done", "0000"],
    );
    let boundary = format!("shallow {}", ids[1]);
    assert_eq!(lines, ["shallow-info", &boundary, "0001", "packfile"]);
    let since = post(
        &repo,
        &[
            "command=fetch",
            "0001",
            &want,
            "deepen-since 5",
            "done",
            "0000",
        ],
    );
    assert!(since[0].starts_with("ERR this gitmq server serves shallow fetches by depth only"));
    let deeper = post(
        &repo,
        &[
            "command=fetch",
            "0001",
            &want,
            &boundary,
            "deepen 3",
            "done",
            "0000",
        ],
    );
    assert!(deeper[0].starts_with("ERR this gitmq server does not deepen a shallow clone"));
}
