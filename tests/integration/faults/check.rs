//! The checks every fault point ends with, whatever the operation: `git fsck --strict` is
//! clean, every ref file holds an id (or a symbolic ref) naming a commit that is there, gitmq
//! reads every topic from its first message and every position is on its topic's history
//! (or, after a crash, on no topic: see split);
//! after a failure the process survived (no power cut), no lock or temporary file is left.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use gitmq::{position::StartAt, Consumer, ConsumerName, ObjectId, Repository};

use super::runner::Aftermath;
use crate::util::git_output;

/// Every check of the module header; `context` prefixes each failure.
pub fn common(repo_path: &Path, aftermath: Aftermath, context: &str) {
    fsck(repo_path, aftermath, context);
    refs_resolve(repo_path, context);
    let repo = Repository::open(repo_path)
        .unwrap_or_else(|err| panic!("{context}: the repository does not open: {err}"));
    for (topic, _) in repo.topics().expect("topics") {
        let mut reader = Consumer::open_at(
            repo.clone(),
            ConsumerName::new("fault-check").unwrap(),
            topic.clone(),
            &StartAt::Beginning,
        )
        .unwrap_or_else(|err| panic!("{context}: topic {topic} does not open: {err}"));
        if let Err(err) = reader.poll(usize::MAX) {
            panic!("{context}: topic {topic} does not read: {err}");
        }
    }
    for status in gitmq::position::status(&repo).expect("positions") {
        // A crash may leave positions a split wrote before its topic (its next run completes).
        let split_cut_short = aftermath.is_cut() && status.head.is_none();
        assert!(
            status.lag.is_some() || split_cut_short,
            "{context}: position {} of {} names {}, not on the topic's history",
            status.consumer,
            status.topic,
            status.position
        );
    }
    if !aftermath.is_cut() {
        let leftovers = leftovers(repo_path);
        assert!(
            leftovers.is_empty(),
            "{context}: a live process left {leftovers:?}"
        );
    }
}

/// `git fsck --strict` succeeds and complains of nothing (after a power cut, temporary files
/// of the dead writer are allowed: the next producer removes them).
fn fsck(repo_path: &Path, aftermath: Aftermath, context: &str) {
    let out = git_output(
        &[
            "--git-dir",
            repo_path.to_str().expect("utf-8 path"),
            "fsck",
            "--strict",
            "--no-dangling",
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{context}: git fsck --strict failed: {stderr}"
    );
    for line in stderr.lines() {
        let noise =
            line.starts_with("notice:") || line.starts_with("Checking") || line.trim().is_empty();
        let dead_writer = aftermath.is_cut()
            && line.starts_with("warning: garbage found:")
            && line.contains("/tmp_");
        assert!(
            noise || dead_writer,
            "{context}: git fsck --strict complained: {line}"
        );
    }
}

/// Every loose ref under `refs/` and every `packed-refs` entry names a commit that exists.
fn refs_resolve(repo_path: &Path, context: &str) {
    let mut refs: Vec<(String, ObjectId)> = Vec::new();
    for path in files_under(&repo_path.join("refs")) {
        if path.extension().is_some_and(|e| e == "lock") {
            continue;
        }
        let name = path.strip_prefix(repo_path).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.starts_with("ref: ") {
            continue;
        }
        let id = text
            .strip_suffix('\n')
            .and_then(|hex| ObjectId::from_hex(hex.as_bytes()).ok())
            .unwrap_or_else(|| panic!("{context}: ref {name} holds {text:?}, not an id"));
        refs.push((name, id));
    }
    if let Ok(packed) = std::fs::read_to_string(repo_path.join("packed-refs")) {
        for line in packed
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with('^'))
        {
            let (hex, name) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("{context}: packed-refs line {line:?}"));
            let id = ObjectId::from_hex(hex.as_bytes())
                .unwrap_or_else(|_| panic!("{context}: packed-refs line {line:?}"));
            refs.push((name.to_owned(), id));
        }
    }
    let mut child = Command::new("git")
        .args([
            "--git-dir",
            repo_path.to_str().unwrap(),
            "cat-file",
            "--batch-check",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("git cat-file runs");
    let input = refs
        .iter()
        .map(|(_, id)| id.to_string())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let answers = String::from_utf8_lossy(&out.stdout);
    for ((name, id), answer) in refs.iter().zip(answers.lines()) {
        assert!(
            answer.starts_with(&format!("{id} commit ")),
            "{context}: ref {name} names {id}: {answer}"
        );
    }
}

/// Lock files and temporary files anywhere in the repository.
pub fn leftovers(repo_path: &Path) -> Vec<PathBuf> {
    files_under(repo_path)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".lock") || name.starts_with("tmp_")
        })
        .collect()
}

/// What an operator does after a crash (`gitmq unlock`, and what the next producer does to
/// temporary files of a dead writer): remove the dead process's locks and temporary files.
pub fn remove_dead_locks(repo_path: &Path) {
    for path in leftovers(repo_path) {
        std::fs::remove_file(&path).expect("remove a leftover");
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The payloads of `topic` as gitmq reads them from its first message (empty if absent).
pub fn payloads(repo: &Repository, topic: &str) -> Vec<String> {
    messages(repo, topic).into_iter().map(|(_, p)| p).collect()
}

/// The (id, payload) of every message of `topic`, oldest first (empty if absent).
pub fn messages(repo: &Repository, topic: &str) -> Vec<(ObjectId, String)> {
    let topic = gitmq::TopicName::new(topic).unwrap();
    let mut reader = Consumer::open_at(
        repo.clone(),
        ConsumerName::new("fault-check").unwrap(),
        topic,
        &StartAt::Beginning,
    )
    .expect("open a reader");
    reader
        .poll(usize::MAX)
        .expect("read a topic")
        .into_iter()
        .map(|m| (m.id, String::from_utf8(m.payload).unwrap()))
        .collect()
}

/// Where consumer `consumer` stands on `topic`.
pub fn position(repo: &Repository, consumer: &str, topic: &str) -> Option<ObjectId> {
    let consumer = ConsumerName::new(consumer).unwrap();
    let topic = gitmq::TopicName::new(topic).unwrap();
    repo.refs()
        .find(&consumer.position_ref(&topic))
        .expect("read a position")
}
