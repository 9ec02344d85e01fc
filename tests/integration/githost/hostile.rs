//! Requests the git host must refuse without changing anything: broken framing, bombs,
//! wrong types and methods, and what an access callback forbids.

use super::*;

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
