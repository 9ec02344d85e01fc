//! Crash safety: `gitmq publish --durability batch` killed with SIGKILL at random moments.
//! After every kill the repository is fsck-clean and every id the process printed (its
//! acknowledgements) is on the topic, in order.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::util::{lines, Rng, TempRepo};

/// `git fsck --strict` must succeed; the only complaints allowed are temporary files of a
/// killed writer ("garbage found: .../tmp_..."), which the next producer removes.
fn assert_fsck_ok_after_kill(repo: &TempRepo, round: usize) {
    for line in repo.fsck_complaints() {
        let tolerated = line.starts_with("warning: garbage found:") && line.contains("/tmp_");
        assert!(tolerated, "round {round}: fsck complained: {line}");
    }
}

#[test]
fn sigkill_at_random_moments_never_loses_an_acknowledged_message() {
    let repo = TempRepo::new();
    let mut rng = Rng::new(0x5eed_cafe);
    let mut acknowledged: Vec<String> = Vec::new();
    let mut stale_locks = 0;
    for round in 0..50 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gitmq"))
            .arg("--repo")
            .arg(&repo.path)
            .args([
                "publish",
                "t",
                "--durability",
                "batch",
                "--batch",
                "25",
                "--linger-ms",
                "1",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn gitmq");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            for i in 0.. {
                let line = format!("{{\"round\":{round},\"i\":{i}}}\n");
                if stdin.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
        });
        let printed = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&printed);
        let reader = std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            // Only whole lines count: a torn last line was not printed in full.
            while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line.ends_with('\n') {
                    sink.lock().unwrap().push(line.trim_end().to_owned());
                }
                line.clear();
            }
        });
        // Kill at a random moment while batches are being written: after the first batch was
        // acknowledged (a loaded machine may take a while to start the process), up to 60 ms
        // later, so every round kills a producer in the middle of its work.
        let started = std::time::Instant::now();
        while printed.lock().unwrap().is_empty() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(rng.below(60) as u64));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        reader.join().unwrap();
        writer.join().unwrap();
        acknowledged.extend(printed.lock().unwrap().drain(..));

        assert_fsck_ok_after_kill(&repo, round);
        let topic = if repo.path.join("refs/heads/t").exists() {
            lines(&repo.git(&["rev-list", "--reverse", "--first-parent", "t"]))
        } else {
            Vec::new()
        };
        let mut on_topic = topic.iter();
        for id in &acknowledged {
            assert!(
                on_topic.any(|t| t == id),
                "round {round}: acknowledged {id} is missing from the topic, or out of order"
            );
        }
        // A kill while the ref lock was held leaves it behind, as it does for git: the next
        // writer reports it rather than break it. Stand in for the operator here.
        let lock = repo.path.join("refs/heads/t.lock");
        if lock.exists() {
            stale_locks += 1;
            std::fs::remove_file(lock).unwrap();
        }
    }
    assert!(
        acknowledged.len() >= 50,
        "every round acknowledged at least one batch before its kill: {}",
        acknowledged.len()
    );
    eprintln!(
        "{} messages acknowledged over 50 kills; {stale_locks} stale ref locks",
        acknowledged.len()
    );
    // A new producer removes the killed writers' temporary files: fully clean again.
    let out = repo.gitmq(&["publish", "t", "after the storm"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    repo.assert_fsck_clean();
}
