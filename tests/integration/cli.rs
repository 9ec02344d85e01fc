//! The `gitmq` binary's contract: arguments, stdin, stdout, exit codes.

use crate::util::{gitmq_in, lines, TempRepo};

#[test]
fn init_creates_a_repository_that_git_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.git");
    let out = gitmq_in(None, &["init", path.to_str().unwrap()], b"");
    assert!(out.status.success());
    let git = crate::util::git(
        &[
            "--git-dir",
            path.to_str().unwrap(),
            "rev-parse",
            "--is-bare-repository",
        ],
        None,
    );
    assert_eq!(git, b"true\n");
}

#[test]
fn publish_prints_one_id_per_message_in_order_from_args_lines_and_nul_records() {
    let repo = TempRepo::new();
    let out = repo.gitmq(&["publish", "t", "one", "two"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ids = lines(&out.stdout);
    assert_eq!(ids.len(), 2);

    let out = repo.gitmq(&["publish", "t"], b"three\n\nfive");
    ids.extend(lines(&out.stdout));
    assert_eq!(
        ids.len(),
        5,
        "an empty line is an empty message; no newline needed at the end"
    );

    let out = repo.gitmq(&["publish", "t", "-0"], b"six\nstill six\0seven\0");
    ids.extend(lines(&out.stdout));
    assert_eq!(ids.len(), 7, "a trailing NUL ends the last record");

    let logged = lines(&repo.git(&["log", "--reverse", "--format=%H", "t"]));
    assert_eq!(logged, ids, "printed ids are the topic, in order");
    let bodies = repo.git(&["log", "--reverse", "-z", "--format=%B", "t"]);
    assert_eq!(
        bodies,
        b"one\0two\0three\0\0five\0six\nstill six\0seven\0".to_vec()
    );
}

#[test]
fn consume_prints_after_the_position_and_commits_unless_told_not_to() {
    let repo = TempRepo::new();
    repo.gitmq(&["publish", "t", "a", "b\n", "c"], b"");

    let out = repo.gitmq(
        &[
            "consume",
            "t",
            "--consumer",
            "x",
            "--max",
            "1",
            "--no-commit",
        ],
        b"",
    );
    assert_eq!(out.stdout, b"a\n");
    let out = repo.gitmq(&["consume", "t", "--consumer", "x", "--max", "2"], b"");
    assert_eq!(
        out.stdout, b"a\nb\n",
        "no-commit left the position; b keeps its own newline"
    );
    let out = repo.gitmq(&["consume", "t", "--consumer", "x"], b"");
    assert_eq!(out.stdout, b"c\n");
    let out = repo.gitmq(&["consume", "t", "--consumer", "x"], b"");
    assert!(out.status.success() && out.stdout.is_empty(), "caught up");

    let out = repo.gitmq(
        &[
            "consume",
            "t",
            "--consumer",
            "y",
            "--format",
            "json",
            "--max",
            "1",
        ],
        b"",
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let value: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON object");
    assert_eq!(value["payload"], "a");
    assert_eq!(value["author"], "gitmq");
    assert_eq!(value["email"], "gitmq@localhost");
    assert_eq!(value["id"].as_str().unwrap().len(), 40);
    assert!(
        value["time"].as_str().unwrap().contains('T'),
        "RFC 3339: {}",
        value["time"]
    );

    let out = repo.gitmq(&["consumers"], b"");
    let rows = lines(&out.stdout);
    assert_eq!(rows.len(), 2);
    assert!(
        rows[0].starts_with("x\tt\t") && rows[0].ends_with("\t0"),
        "{rows:?}"
    );
    assert!(
        rows[1].starts_with("y\tt\t") && rows[1].ends_with("\t2"),
        "lag 2: {rows:?}"
    );
}

#[test]
fn log_prints_everything_oldest_first_and_moves_no_position() {
    let repo = TempRepo::new();
    repo.gitmq(&["publish", "t"], b"1\n2\n3\n");
    let out = repo.gitmq(&["log", "t"], b"");
    assert_eq!(out.stdout, b"1\n2\n3\n");
    let out = repo.gitmq(&["log", "t", "--format", "json"], b"");
    assert_eq!(lines(&out.stdout).len(), 3);
    assert!(repo.gitmq(&["consumers"], b"").stdout.is_empty());
    let out = repo.gitmq(&["topics"], b"");
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("t\t"));
}

#[test]
fn non_utf8_payloads_round_trip_through_json_as_base64() {
    let repo = TempRepo::new();
    repo.gitmq(&["publish", "t", "-0"], b"\xff\x00");
    let out = repo.gitmq(&["publish", "t"], b"nul\0inside\n");
    assert_eq!(
        out.status.code(),
        Some(1),
        "git refuses NUL in a commit message"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("NUL"));
    let out = repo.gitmq(&["log", "t", "--format", "json"], b"");
    let value: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    assert_eq!(value["payload_base64"], "/w==");
}

#[test]
fn user_errors_exit_1_with_one_line_and_usage_errors_exit_2() {
    let repo = TempRepo::new();
    for name in ["../escape", "a..b", "x.lock", "bad\u{1}name", "-dash"] {
        let out = repo.gitmq(&["publish", "--", name, "m"], b"");
        assert_eq!(out.status.code(), Some(1), "{name:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("invalid topic name"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = repo.gitmq(&["consume", "t", "--consumer", "a/b"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(!repo.dir.path().join("escape").exists());

    let out = repo.gitmq(&["no-such-command"], b"");
    assert_eq!(out.status.code(), Some(2));
    let out = repo.gitmq(&["consume", "t"], b"");
    assert_eq!(out.status.code(), Some(2), "--consumer is required");

    let out = gitmq_in(Some(&repo.dir.path().join("missing")), &["log", "t"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a git repository"));
}

#[test]
fn a_closed_stdout_pipe_exits_quietly() {
    let repo = TempRepo::new();
    let input: Vec<u8> = (0..5000)
        .flat_map(|i| format!("message {i}\n").into_bytes())
        .collect();
    repo.gitmq(&["publish", "t"], &input);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' --repo '{}' log t | head -n 1; exit ${{PIPESTATUS:-0}}",
            env!("CARGO_BIN_EXE_gitmq"),
            repo.path.display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"message 0\n");
    assert!(
        out.stderr.is_empty(),
        "no error on a closed pipe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_repository_defaults_to_gitmq_repo_then_the_current_directory() {
    let repo = TempRepo::new();
    let bin = env!("CARGO_BIN_EXE_gitmq");
    let out = std::process::Command::new(bin)
        .args(["publish", "t", "via-env"])
        .env("GITMQ_REPO", &repo.path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new(bin)
        .args(["log", "t"])
        .env_remove("GITMQ_REPO")
        .current_dir(repo.path.join("refs"))
        .output()
        .unwrap();
    assert_eq!(
        out.stdout, b"via-env\n",
        "discovered from inside the git dir"
    );
}

#[test]
fn demo_runs_and_shows_git_reading_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo.git");
    let out = gitmq_in(None, &["demo", "--keep", keep.to_str().unwrap()], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("resumed after its position: 2 more"),
        "{text}"
    );
    assert!(
        text.contains("refs/gitmq/consumers/billing/orders"),
        "git log decorates: {text}"
    );
}

#[test]
fn publish_acknowledges_live_input_after_the_linger_without_waiting_for_eof() {
    use std::io::{BufRead, BufReader, Write};
    let repo = TempRepo::new();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gitmq"))
        .arg("--repo")
        .arg(&repo.path)
        .args(["publish", "live", "--linger-ms", "20"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ids = Vec::new();
    for message in ["first", "second"] {
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap(); // blocks until acknowledged, stdin still open
        ids.push(line.trim().to_owned());
        let head = repo.git(&["rev-parse", "live"]);
        assert_eq!(
            String::from_utf8(head).unwrap().trim(),
            ids.last().unwrap(),
            "printed = on the topic"
        );
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
