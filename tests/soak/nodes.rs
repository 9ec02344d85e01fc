//! The processes of the soak: a node's `gitmq sync` (started, SIGKILLed, restarted, stopped
//! by SIGTERM), one `gitmq publish --id` or `gitmq consume` at a time, and what an operator
//! does after a kill: remove the ref locks the killed process left (`gitmq unlock`), once
//! they are old enough that no live writer can own them.

use std::{
    fs::{File, OpenOptions},
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant, SystemTime},
};

/// A lock older than this belongs to a killed process (a live writer holds one for
/// milliseconds); `gitmq unlock --older-than` takes whole seconds.
const STALE_SECS: u64 = 2;
/// How long [`clear_stale_locks()`] tries.
const UNLOCK_PATIENCE: Duration = Duration::from_secs(15);

/// The flags of every node's `gitmq sync`: short rounds and timeouts, no retention.
const SYNC_ARGS: [&str; 11] = [
    "sync",
    "--interval",
    "300ms",
    "--linger",
    "100ms",
    "--idle-timeout",
    "1s",
    "--request-timeout",
    "3s",
    "--retention-interval",
    "0",
];

/// A machine: its repository and its `gitmq sync`.
pub struct Node {
    /// Its name (`p0`, `c1`, ...).
    pub name: String,
    /// Its repository.
    pub repo: PathBuf,
    sync: Option<Child>,
}

impl Node {
    /// A new repository under `dir` whose `origin` is `url`.
    pub fn new(dir: &Path, name: &str, url: &str) -> Self {
        let repo = dir.join(format!("{name}.git"));
        let ok = |out: Output| {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ok(gitmq(None, &["init", repo.to_str().unwrap()]));
        ok(gitmq(Some(&repo), &["remote", "add", "origin", url]));
        Self {
            name: name.to_owned(),
            repo,
            sync: None,
        }
    }

    /// Start its `gitmq sync`, appending its output to `<repo>.out` / `.err`.
    pub fn start_sync(&mut self) {
        let open = |ext: &str| -> File {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.repo.with_extension(ext))
                .unwrap()
        };
        let child = Command::new(env!("CARGO_BIN_EXE_gitmq"))
            .arg("--repo")
            .arg(&self.repo)
            .args(SYNC_ARGS)
            .env_remove("GITMQ_REPO")
            .stdin(Stdio::null())
            .stdout(open("out"))
            .stderr(open("err"))
            .spawn()
            .expect("gitmq sync starts");
        self.sync = Some(child);
    }

    /// SIGKILL its sync (if it still runs); whether it was running.
    pub fn kill_sync(&mut self) -> bool {
        let Some(mut child) = self.sync.take() else {
            return false;
        };
        let running = child.try_wait().ok().flatten().is_none();
        let _ = child.kill();
        let _ = child.wait();
        running
    }

    /// SIGTERM its sync and wait (bounded) for it to finish its round; its exit status.
    pub fn stop_sync(&mut self) -> Option<ExitStatus> {
        let mut child = self.sync.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// What its sync wrote to stderr so far.
    pub fn sync_stderr(&self) -> String {
        std::fs::read_to_string(self.repo.with_extension("err")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_sync();
    }
}

/// Run the gitmq binary to completion.
pub fn gitmq(repo: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gitmq"));
    if let Some(repo) = repo {
        command.arg("--repo").arg(repo);
    }
    command
        .args(args)
        .env_remove("GITMQ_REPO")
        .stdin(Stdio::null())
        .output()
        .expect("gitmq runs")
}

/// Start the gitmq binary with stdout and stderr piped.
pub fn spawn_gitmq(repo: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gitmq"))
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("GITMQ_REPO")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gitmq starts")
}

/// SIGKILL `child` if it still runs; its stdout so far, and whether it was still running.
pub fn kill_and_collect(mut child: Child) -> (Vec<u8>, bool) {
    let running = child.try_wait().ok().flatten().is_none();
    if running {
        let _ = child.kill();
    }
    let mut stdout = Vec::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_end(&mut stdout);
    }
    let _ = child.wait();
    (stdout, running)
}

/// Every `*.lock` file under `<repo>/refs` and `<repo>/packed-refs.lock`.
pub fn lock_files(repo: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "lock") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo.join("refs"), &mut out);
    let packed = repo.join("packed-refs.lock");
    if packed.exists() {
        out.push(packed);
    }
    out
}

fn age(path: &Path) -> Duration {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// After a kill: wait until each lock present under `repo` now (the killed process's, or a
/// live writer's) is gone, running `gitmq unlock` once one is old enough to be stale. `Err`
/// with the locks `gitmq unlock` could not remove.
pub fn clear_stale_locks(repo: &Path) -> Result<(), Vec<PathBuf>> {
    let suspects = lock_files(repo);
    let deadline = Instant::now() + UNLOCK_PATIENCE;
    loop {
        let left: Vec<PathBuf> = suspects.iter().filter(|l| l.exists()).cloned().collect();
        if left.is_empty() {
            return Ok(());
        }
        if left
            .iter()
            .any(|l| age(l) > Duration::from_secs(STALE_SECS + 1))
        {
            gitmq(
                Some(repo),
                &["unlock", "--older-than", &STALE_SECS.to_string()],
            );
        }
        if Instant::now() >= deadline {
            return Err(left.into_iter().filter(|l| l.exists()).collect());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
