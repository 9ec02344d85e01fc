//! `gitmq bench append --sign`: the cost of signing and verifying, in one run: the same
//! messages appended unsigned, signed per batch (`tip`) and signed each (`each`), then read
//! back by a plain consumer and by verifying consumers, and every signature checked one by
//! one (the per-message floor without coverage). Best of 3 rounds per configuration,
//! interleaved, so load from other processes hits them alike.

use std::{path::Path, sync::Arc, time::Instant};

use gitmq::{
    consume::verify::Verify,
    git::sign::{AllowedSigners, Signature, Signer, Verifier},
    produce::{Producer, ProducerConfig, Signing},
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
    println!("(best of {ROUNDS} rounds each, interleaved; wall clock on the appending thread's");
    println!(" side: signing runs there, before each message is hashed)");
    println!();

    let mut append_best = [f64::MAX; 3];
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
            let mut producer = Producer::with_config(repo.clone(), TopicName::new("t")?, config);
            producer = match *mode {
                "tip" => producer.with_signing(Signing::tip(key.clone())),
                "each" => producer.with_signing(Signing::each(key.clone())),
                _ => producer,
            };
            let start = Instant::now();
            let mut acknowledged = 0;
            for message in messages {
                if let Some(flushed) = producer.append(message)?.flushed {
                    acknowledged += flushed.ids.len();
                }
            }
            acknowledged += producer.flush()?.ids.len();
            let seconds = start.elapsed().as_secs_f64();
            assert_eq!(acknowledged, n, "every message acknowledged");
            append_best[m] = append_best[m].min(seconds);
            repos[m] = Some(repo);
        }
    }
    println!("append (messages/s):");
    for (m, mode) in MODES.iter().enumerate() {
        println!("  {mode:<10} {:>12}", fmt_rate(rate(n, append_best[m])));
    }
    println!(
        "  tip costs {:.1}% of unsigned append throughput; each runs at {:.1}% of it",
        (1.0 - append_best[0] / append_best[1]) * 100.0,
        append_best[0] / append_best[2] * 100.0
    );
    println!();

    // Reading back: a plain consumer, a verifying one (coverage), and every signature alone.
    let mut read_best = [[f64::MAX; 2]; 3];
    let mut check_best = f64::MAX;
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
                let start = Instant::now();
                let count = consumer.poll_with(usize::MAX, |_| Ok::<(), gitmq::Error>(()));
                let seconds = start.elapsed().as_secs_f64();
                match count {
                    Ok(count) => assert_eq!(count, n, "every message read"),
                    // Unsigned messages are refused: expected, not timed.
                    Err(_) if m == 0 && verify => continue,
                    Err(err) => return Err(err.into()),
                }
                read_best[m][v] = read_best[m][v].min(seconds);
            }
        }
        check_best = check_best.min(check_each(repos[2].as_ref().expect("each"), n)?);
    }
    println!("consume (messages/s):");
    println!("  {:<10} {:>12} {:>12}", "", "plain", "verifying");
    for (m, mode) in MODES.iter().enumerate().skip(1) {
        println!(
            "  {mode:<10} {:>12} {:>12}",
            fmt_rate(rate(n, read_best[m][0])),
            fmt_rate(rate(n, read_best[m][1]))
        );
    }
    println!(
        "  each, every signature verified one by one (Verifier::check, one core): {} msg/s",
        fmt_rate(rate(n, check_best))
    );
    Ok(())
}

/// Read every message of the `each` topic and check its own signature; seconds.
fn check_each(repo: &Repository, n: usize) -> Result<f64> {
    let head = repo.head(&TopicName::new("t")?)?.expect("appended");
    let mut odb = repo.odb();
    let ids = gitmq::git::walk::ids_after(&mut odb, head, None, &mut Vec::new())?;
    let mut body = Vec::new();
    let mut verifier = Verifier::new();
    let start = Instant::now();
    let mut good = 0;
    for id in &ids {
        odb.read_commit(id, &mut body)?;
        good += usize::from(matches!(verifier.check(&body), Signature::Good { .. }));
    }
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(good, n, "every signature is good");
    Ok(seconds)
}
