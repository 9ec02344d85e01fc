//! Test helpers: a temporary queue repository, and running `git` or `gitmq` on it.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

/// A temporary directory holding a queue repository at `<tmp>/q.git`.
pub struct TempRepo {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TempRepo {
    /// A fresh repository created by `gitmq::Repository::init`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("q.git");
        gitmq::Repository::init(&path).expect("init");
        Self { dir, path }
    }

    pub fn open(&self) -> gitmq::Repository {
        gitmq::Repository::open(&self.path).expect("open")
    }

    /// Run `git --git-dir <repo> args...`, asserting success; stdout.
    pub fn git(&self, args: &[&str]) -> Vec<u8> {
        let mut full = vec!["--git-dir", self.path.to_str().expect("utf-8 temp path")];
        full.extend_from_slice(args);
        git(&full, None)
    }

    /// Assert `git fsck --strict` succeeds; the lines it complained with (notices aside).
    pub fn fsck_complaints(&self) -> Vec<String> {
        let out = git_output(
            &[
                "--git-dir",
                self.path.to_str().unwrap(),
                "fsck",
                "--strict",
                "--no-dangling",
            ],
            None,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "git fsck --strict failed: {stderr}");
        stderr
            .lines()
            .filter(|l| !l.starts_with("notice:"))
            .filter(|l| !l.starts_with("Checking") && !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Assert `git fsck --strict` finds nothing wrong.
    pub fn assert_fsck_clean(&self) {
        let complaints = self.fsck_complaints();
        assert!(
            complaints.is_empty(),
            "git fsck --strict complained: {complaints:?}"
        );
    }

    /// Run the gitmq binary on this repository.
    pub fn gitmq(&self, args: &[&str], stdin: &[u8]) -> Output {
        gitmq_in(Some(&self.path), args, stdin)
    }
}

/// Run the gitmq binary with `--repo`, feeding `stdin`.
pub fn gitmq_in(repo: Option<&Path>, args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitmq"));
    if let Some(repo) = repo {
        cmd.arg("--repo").arg(repo);
    }
    cmd.args(args)
        .env_remove("GITMQ_REPO")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn gitmq");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().expect("gitmq runs");
    writer.join().expect("stdin writer");
    out
}

/// Run `git args...` (in `cwd`), asserting success; stdout.
pub fn git(args: &[&str], cwd: Option<&Path>) -> Vec<u8> {
    let out = git_output(args, cwd);
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn git_output(args: &[&str], cwd: Option<&Path>) -> Output {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "git user")
        .env("GIT_AUTHOR_EMAIL", "git@example.com")
        .env("GIT_COMMITTER_NAME", "git user")
        .env("GIT_COMMITTER_EMAIL", "git@example.com");
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    cmd.output().expect("git runs")
}

/// The crate's one seeded test generator (xorshift64*).
pub use gitmq::test_support::TestRng as Rng;

pub fn lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
