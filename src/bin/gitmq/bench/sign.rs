//! `gitmq bench append --sign`: the cost of signing and verifying, in one run: the same
//! messages appended unsigned, signed per batch (`tip`) and signed each (`each`), then read
//! back by a plain consumer and by verifying consumers, and every signature checked one by
//! one (the per-message floor without coverage). Best of 3 rounds per configuration,
//! interleaved, so load from other processes hits them alike. Rates are per CPU-second of
//! the process's threads (the appending thread and the producer's flush thread; the
//! scheduler's per-thread run times): what one core does, whatever else runs on the machine;
//! wall-clock rates are printed beside them.

use std::{path::Path, sync::Arc, time::Instant};

/// A stopwatch of wall time and of the process's CPU time.
struct Clock {
    wall: Instant,
    cpu: f64,
}

impl Clock {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: cpu_seconds(),
        }
    }

    /// (wall seconds, CPU seconds) since the start.
    fn stop(&self) -> (f64, f64) {
        (self.wall.elapsed().as_secs_f64(), cpu_seconds() - self.cpu)
    }
}

/// CPU time of this process's live threads, in seconds: the sum of the run times the
/// scheduler reports per thread (`/proc/self/task/*/schedstat`, nanoseconds). Stopped before a
/// producer is dropped, it includes its flush thread. 0 where `/proc` is missing.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let nanos: u64 = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    nanos as f64 / 1e9
}

/// Best (wall, CPU) seconds.
#[derive(Clone, Copy)]
struct Best(f64, f64);

impl Best {
    const NONE: Self = Best(f64::MAX, f64::MAX);

    fn add(&mut self, (wall, cpu): (f64, f64)) {
        self.0 = self.0.min(wall);
        self.1 = self.1.min(cpu);
    }
}

use gitmq::{
    consume::verify::Verify,
    produce::{Producer, ProducerConfig, Signing},
    sign::{AllowedSigners, Signature, Signer, Verifier},
    ConsumerName, Durability, Identity, Repository, TopicName,
};

use super::workload::{fmt_rate, rate};
use crate::commands::Result;

const ROUNDS: usize = 3;

/// The three ways of appending compared.
const MODES: [&str; 3] = ["unsigned", "tip", "each"];

pub fn run(dir: &Path, messages: &[Vec<u8>], batch: usize) -> Result<()> {
    let n = messages.len();
    let key = Arc::new(Signer::from_seed(*b"gitmq bench signing key, 32 byte"));
    let identity = Identity::new("bench", "bench@localhost")?;
    let signers = AllowedSigners::parse(&format!(
        "bench@localhost {}\n",
        key.public_key().to_openssh()
    ))?;
    println!("gitmq bench append --sign: {n} messages, batches of {batch}, durability none");
    println!("(best of {ROUNDS} rounds each, interleaved; signing runs on the appending thread,");
    println!(" before each message is hashed: a topic's chain is signed sequentially)");
    println!();

    let mut append_best = [Best::NONE; 3];
    let mut repos: Vec<Option<Repository>> = vec![None, None, None];
    for round in 0..ROUNDS {
        for (m, mode) in MODES.iter().enumerate() {
            let path = dir.join(format!("sign-{mode}-{round}"));
            let repo = Repository::init(&path)?;
            let config = ProducerConfig {
                identity: identity.clone(),
                durability: Durability::None,
                max_batch_messages: batch,
                max_batch_bytes: usize::MAX,
                linger: std::time::Duration::from_secs(3600),
                consolidate: None,
                ..ProducerConfig::default()
            };
            let config = match *mode {
                "tip" => config.with_signing(Signing::tip(key.clone())),
                "each" => config.with_signing(Signing::each(key.clone())),
                _ => config,
            };
            let mut producer = Producer::with_config(repo.clone(), TopicName::new("t")?, config);
            let clock = Clock::start();
            let mut acknowledged = 0;
            for message in messages {
                if let Some(flushed) = producer.append(message)?.flushed {
                    acknowledged += flushed.ids.len();
                }
            }
            acknowledged += producer.flush()?.ids.len();
            append_best[m].add(clock.stop());
            drop(producer);
            assert_eq!(acknowledged, n, "every message acknowledged");
            repos[m] = Some(repo);
        }
    }
    println!("append (messages/s):  per CPU-second   wall clock");
    for (m, mode) in MODES.iter().enumerate() {
        let Best(wall, cpu) = append_best[m];
        println!(
            "  {mode:<10} {:>20} {:>12}",
            fmt_rate(rate(n, cpu)),
            fmt_rate(rate(n, wall))
        );
    }
    println!(
        "  CPU per message: tip costs {:.1}% more than unsigned; each {:.1} us more",
        (append_best[1].1 / append_best[0].1 - 1.0) * 100.0,
        (append_best[2].1 - append_best[0].1) / n as f64 * 1e6
    );
    println!();

    read_back(&repos, &signers, n)
}

/// Read the topics back: a plain consumer, a verifying one (coverage), and every signature
/// of the `each` topic alone.
fn read_back(repos: &[Option<Repository>], signers: &AllowedSigners, n: usize) -> Result<()> {
    let mut read_best = [[Best::NONE; 2]; 3];
    let mut check_best = Best::NONE;
    for _ in 0..ROUNDS {
        for (m, repo) in repos.iter().enumerate() {
            let repo = repo.as_ref().expect("appended above");
            for (v, verify) in [false, true].into_iter().enumerate() {
                let topic = TopicName::new("t")?;
                let name = ConsumerName::new(if verify { "verifying" } else { "plain" })?;
                let mut consumer = repo.consumer(&name, &topic)?;
                if verify {
                    consumer = consumer.with_verify(Verify::new(signers.clone()).stop_on_refused());
                }
                let clock = Clock::start();
                let count = consumer.poll_with(usize::MAX, |_| Ok::<(), gitmq::Error>(()));
                let seconds = clock.stop();
                match count {
                    Ok(count) => assert_eq!(count, n, "every message read"),
                    // Unsigned messages are refused: expected, not timed.
                    Err(_) if m == 0 && verify => continue,
                    Err(err) => return Err(err.into()),
                }
                read_best[m][v].add(seconds);
            }
        }
        check_best.add(check_each(repos[2].as_ref().expect("each"), n)?);
    }
    println!("consume (messages/s, per CPU-second; wall clock in parentheses):");
    println!("  {:<10} {:>24} {:>24}", "", "plain", "verifying");
    for (m, mode) in MODES.iter().enumerate().skip(1) {
        let cell = |b: Best| format!("{} ({})", fmt_rate(rate(n, b.1)), fmt_rate(rate(n, b.0)));
        println!(
            "  {mode:<10} {:>24} {:>24}",
            cell(read_best[m][0]),
            cell(read_best[m][1])
        );
    }
    println!(
        "  each, every signature verified one by one (Verifier::check): {} ({}) msg/s",
        fmt_rate(rate(n, check_best.1)),
        fmt_rate(rate(n, check_best.0))
    );
    Ok(())
}

/// Read every message of the `each` topic and check its own signature; seconds.
fn check_each(repo: &Repository, n: usize) -> Result<(f64, f64)> {
    let head = repo.head(&TopicName::new("t")?)?.expect("appended");
    let mut odb = repo.odb();
    let ids = gitmq::git::walk::ids_after(&mut odb, head, None, &mut Vec::new())?;
    let mut body = Vec::new();
    let mut verifier = Verifier::new();
    let clock = Clock::start();
    let mut good = 0;
    for id in &ids {
        odb.read_commit(id, &mut body)?;
        good += usize::from(matches!(verifier.check(&body), Signature::Good { .. }));
    }
    let seconds = clock.stop();
    assert_eq!(good, n, "every signature is good");
    Ok(seconds)
}
