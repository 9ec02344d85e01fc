//! What every fault test asserts of a repository, gitmq's or the server's: `git fsck --strict`
//! is clean and no ref names an object that is absent.

#![allow(dead_code)] // shared with the soak binary, which uses a part of it

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

/// `git fsck --strict` of `git_dir` succeeds and complains of nothing (notices aside), and
/// every ref's object is present.
pub fn assert_sound(git_dir: &Path) {
    let dir = git_dir.to_str().expect("utf-8 path");
    let out = crate::util::git_output(
        &["--git-dir", dir, "fsck", "--strict", "--no-dangling"],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("notice:") && !l.starts_with("Checking") && !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "git fsck --strict of {dir}: {stderr}"
    );
    let missing = refs_naming_absent_objects(git_dir);
    assert!(
        missing.is_empty(),
        "refs of {dir} name absent objects: {missing:?}"
    );
}

/// The refs of `git_dir` whose object is not in its object database.
pub fn refs_naming_absent_objects(git_dir: &Path) -> Vec<String> {
    let dir = git_dir.to_str().expect("utf-8 path");
    let refs = crate::util::git(
        &[
            "--git-dir",
            dir,
            "for-each-ref",
            "--format=%(objectname) %(refname)",
        ],
        None,
    );
    let refs = String::from_utf8(refs).expect("utf-8 ref list");
    if refs.trim().is_empty() {
        return Vec::new();
    }
    let mut child = Command::new("git")
        .args(["--git-dir", dir, "cat-file", "--batch-check=%(objectname)"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("git cat-file runs");
    let mut input = child.stdin.take().expect("stdin");
    let mut ids = String::new();
    for (id, _) in refs.lines().filter_map(|l| l.split_once(' ')) {
        ids.push_str(id);
        ids.push('\n');
    }
    let writer = std::thread::spawn(move || input.write_all(ids.as_bytes()));
    let out = child.wait_with_output().expect("git cat-file");
    writer.join().expect("writer").expect("write ids");
    let answers = String::from_utf8_lossy(&out.stdout).into_owned();
    refs.lines()
        .zip(answers.lines())
        .filter(|(_, answer)| answer.ends_with(" missing"))
        .map(|(line, _)| line.to_owned())
        .collect()
}

/// The stable ids (`gitmq-id` header) of `topic`'s messages in `git_dir`, oldest first, as
/// git reads them (`git log --format=raw`); a message without one counts as `""`.
pub fn stable_ids(git_dir: &Path, topic: &str) -> Vec<String> {
    let dir = git_dir.to_str().expect("utf-8 path");
    let out = crate::util::git_output(
        &[
            "--git-dir",
            dir,
            "log",
            "--first-parent",
            "--reverse",
            "--format=raw",
            &format!("refs/heads/{topic}"),
        ],
        None,
    );
    if !out.status.success() {
        return Vec::new();
    }
    let mut ids: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.starts_with("commit ") {
            ids.push(String::new());
        } else if let Some(id) = line.strip_prefix("gitmq-id ") {
            if let Some(last) = ids.last_mut() {
                id.clone_into(last);
            }
        }
    }
    ids
}
