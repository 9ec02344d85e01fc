//! The git side of `gitmq bench`: `git fast-import` and a `git commit` loop on the same
//! messages, timed as whole processes. git is only a comparison here, never used by gitmq.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use crate::commands::Result;

/// Build fast-import's input for `messages` on branch `refs/heads/t`.
pub fn fast_import_stream(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut stream = Vec::with_capacity(messages.len() * 256);
    for message in messages {
        stream.extend_from_slice(
            b"commit refs/heads/t\nauthor gitmq <gitmq@localhost> 1700000000 +0000\n\
committer gitmq <gitmq@localhost> 1700000000 +0000\n",
        );
        stream.extend_from_slice(format!("data {}\n", message.len()).as_bytes());
        stream.extend_from_slice(message);
        stream.push(b'\n');
    }
    stream
}

/// Run `git [config] fast-import` into a new bare repository at `repo`; seconds.
pub fn fast_import(repo: &Path, stream: &[u8], config: &[&str]) -> Result<f64> {
    git(&["init", "-q", "--bare", path(repo)?], None)?;
    let start = Instant::now();
    let mut child = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(config)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or("fast-import has no stdin")?
        .write_all(stream)?;
    let out = child.wait_with_output()?;
    let seconds = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "git fast-import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(seconds)
}

/// `git commit --allow-empty -m` once per message in a new repository at `work`; seconds.
pub fn commit_loop(work: &Path, messages: &[Vec<u8>]) -> Result<f64> {
    git(&["init", "-q", path(work)?], None)?;
    let start = Instant::now();
    for message in messages {
        let message = String::from_utf8_lossy(message);
        git(
            &[
                "-c",
                "user.name=gitmq",
                "-c",
                "user.email=gitmq@localhost",
                "commit",
                "-q",
                "--allow-empty",
                "--no-verify",
                "-m",
                &message,
            ],
            Some(work),
        )?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Whether `git` is on PATH.
pub fn available() -> bool {
    Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Run `git args...` (in `cwd`); an error with git's stderr if it fails.
pub fn git(args: &[&str], cwd: Option<&Path>) -> Result<()> {
    let mut cmd = Command::new("git");
    cmd.args(args).env("GIT_CONFIG_NOSYSTEM", "1");
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

/// `p` as a `&str` (scratch paths are UTF-8).
pub fn path(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| "temporary path is not UTF-8".into())
}
