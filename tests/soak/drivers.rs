//! The soak's workload: producers publishing with stable ids (retrying an unacknowledged id
//! until it is acknowledged, sometimes SIGKILLed mid-way), consumers polling their node
//! (sometimes SIGKILLed between printing and committing), and a sampler of the server's
//! positions. Each returns what it saw, for `verify`.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use crate::{
    nodes::{clear_stale_locks, kill_and_collect, spawn_gitmq},
    util::{git_output, Rng},
    TOPIC,
};

/// What a producer did.
#[derive(Debug, Default)]
pub struct ProducerLog {
    /// Its node.
    pub name: String,
    /// Stable ids acknowledged (their commit id printed), in order.
    pub acked: Vec<String>,
    /// `gitmq publish` runs.
    pub attempts: usize,
    /// Runs SIGKILLed before they acknowledged.
    pub kills: usize,
    /// Runs that failed on their own (a lock held by a killed process, ...).
    pub failures: usize,
    /// A few of their error messages.
    pub failure_samples: Vec<String>,
    /// Locks `gitmq unlock` could not remove.
    pub stuck_locks: Vec<PathBuf>,
}

/// What a consumer did.
#[derive(Debug, Default)]
pub struct ConsumerLog {
    /// Its node (also its consumer name).
    pub name: String,
    /// Every message printed to it, in order: (stable id, commit id).
    pub deliveries: Vec<(String, String)>,
    /// Its position on its node after each successful consume, when it changed.
    pub positions: Vec<String>,
    /// `gitmq consume` runs SIGKILLed.
    pub kills: usize,
    /// Locks `gitmq unlock` could not remove.
    pub stuck_locks: Vec<PathBuf>,
}

fn acknowledged(stdout: &[u8]) -> bool {
    String::from_utf8_lossy(stdout)
        .lines()
        .any(|l| l.len() == 40 && l.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Publish `<name>-0`, `<name>-1`, ... (payload = stable id) until `publishing` clears, each
/// id retried until acknowledged; while `chaos` is set, one run in six is SIGKILLed after a
/// random 0-60 ms.
pub fn produce(
    repo: &Path,
    name: &str,
    seed: u64,
    publishing: &AtomicBool,
    chaos: &AtomicBool,
) -> ProducerLog {
    let mut rng = Rng::new(seed);
    let mut log = ProducerLog {
        name: name.to_owned(),
        ..ProducerLog::default()
    };
    let mut seq = 0;
    while publishing.load(Ordering::SeqCst) {
        let id = format!("{name}-{seq}");
        loop {
            log.attempts += 1;
            let child = spawn_gitmq(repo, &["publish", TOPIC, "--id", &id, &id]);
            if chaos.load(Ordering::SeqCst) && rng.below(6) == 0 {
                std::thread::sleep(Duration::from_millis(rng.below(60) as u64));
                let (stdout, _) = kill_and_collect(child);
                if acknowledged(&stdout) {
                    break;
                }
                log.kills += 1;
                if let Err(left) = clear_stale_locks(repo) {
                    log.stuck_locks.extend(left);
                }
                continue;
            }
            let out = child.wait_with_output().expect("gitmq publish");
            if out.status.success() && acknowledged(&out.stdout) {
                break;
            }
            log.failures += 1;
            if log.failure_samples.len() < 5 {
                log.failure_samples
                    .push(String::from_utf8_lossy(&out.stderr).trim().to_owned());
            }
            if let Err(left) = clear_stale_locks(repo) {
                log.stuck_locks.extend(left);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        log.acked.push(id);
        seq += 1;
    }
    log
}

/// `git rev-parse` of `name` in `repo`, if it exists.
pub fn rev_parse(repo: &Path, name: &str) -> Option<String> {
    let out = git_output(
        &[
            "--git-dir",
            repo.to_str()?,
            "rev-parse",
            "-q",
            "--verify",
            name,
        ],
        None,
    );
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Consume the topic as consumer `name` on its node until `consuming` clears; while `chaos`
/// is set, one run in five is SIGKILLed after a random 0-150 ms.
pub fn consume(
    repo: &Path,
    name: &str,
    seed: u64,
    consuming: &AtomicBool,
    chaos: &AtomicBool,
) -> ConsumerLog {
    let mut rng = Rng::new(seed);
    let mut log = ConsumerLog {
        name: name.to_owned(),
        ..ConsumerLog::default()
    };
    let position_ref = format!("refs/gitmq/consumers/{name}/{TOPIC}");
    while consuming.load(Ordering::SeqCst) {
        let args = [
            "consume",
            TOPIC,
            "--consumer",
            name,
            "--format",
            "json",
            "--max",
            "300",
        ];
        let child = spawn_gitmq(repo, &args);
        let killed;
        let stdout = if chaos.load(Ordering::SeqCst) && rng.below(5) == 0 {
            std::thread::sleep(Duration::from_millis(rng.below(150) as u64));
            let (stdout, running) = kill_and_collect(child);
            killed = running;
            stdout
        } else {
            killed = false;
            child.wait_with_output().expect("gitmq consume").stdout
        };
        // Only whole lines: a kill may cut the last one.
        let text = String::from_utf8_lossy(&stdout);
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        for line in whole.lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect("a JSON message");
            log.deliveries.push((
                value["stable_id"].as_str().unwrap_or_default().to_owned(),
                value["id"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        if killed {
            log.kills += 1;
            if let Err(left) = clear_stale_locks(repo) {
                log.stuck_locks.extend(left);
            }
        }
        if let Some(position) = rev_parse(repo, &position_ref) {
            if log.positions.last() != Some(&position) {
                log.positions.push(position);
            }
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    log
}

/// Every change of the server's consumer positions, (consumer ref, commit id), sampled every
/// 300 ms until `running` clears.
pub fn sample_server_positions(bare: &Path, running: &AtomicBool) -> Vec<(String, String)> {
    let mut samples: Vec<(String, String)> = Vec::new();
    while running.load(Ordering::SeqCst) {
        let out = git_output(
            &[
                "--git-dir",
                bare.to_str().unwrap(),
                "for-each-ref",
                "--format=%(refname) %(objectname)",
                "refs/gitmq/consumers/",
            ],
            None,
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((name, id)) = line.split_once(' ') else {
                continue;
            };
            let last = samples.iter().rev().find(|(n, _)| n == name);
            if last.is_none_or(|(_, last)| last != id) {
                samples.push((name.to_owned(), id.to_owned()));
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    samples
}
