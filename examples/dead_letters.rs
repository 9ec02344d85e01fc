//! The handler loop with dead letters: a worker handles jobs, one of which always fails; after
//! 3 attempts it lands on `jobs.dlq` with the error, the worker moves on, and a redrive puts
//! it back on `jobs` once the cause is fixed.
//!
//! Usage: `cargo run --example dead_letters`

use std::time::Duration;

use gitmq::{handler::RunConfig, ConsumerName, Envelope, Repository, TopicName};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init(dir.path().join("queue.git"))?;
    let jobs = TopicName::new("jobs")?;
    let mut producer = repo.producer(&jobs);
    for job in ["resize 1.png", "resize broken.png", "resize 2.png"] {
        let envelope = Envelope::new().with_id(job.replace(' ', "-"))?;
        producer.publish_with(job.as_bytes(), &envelope)?;
    }

    let config = RunConfig {
        max_attempts: 3,
        retry_backoff: Duration::from_millis(5),
        ..RunConfig::default()
    };
    let worker = ConsumerName::new("worker")?;
    let report = repo
        .consumer(&worker, &jobs)?
        .run_with(&config, |message| {
            let job = String::from_utf8_lossy(&message.payload);
            if job.contains("broken") {
                return Err(format!("cannot decode {job}"));
            }
            println!("done: {job}");
            Ok(())
        })?;
    println!(
        "handled {}, retried {}, dead-lettered {}",
        report.handled,
        report.retries,
        report.dead_lettered.len()
    );

    for dead in gitmq::dlq::list(&repo, &jobs)? {
        println!(
            "dead letter {}: {:?} after {:?} attempts: {:?}",
            dead.message.id, dead.original_id, dead.attempts, dead.error
        );
    }

    // The cause is fixed: put the dead letters back on the topic (once), and handle them.
    let redriven = gitmq::dlq::redrive(&repo, &jobs)?;
    println!("redriven: {}", redriven.messages.len());
    repo.consumer(&worker, &jobs)?.run(|message| {
        println!(
            "done after redrive: {}",
            String::from_utf8_lossy(&message.payload)
        );
        Ok::<(), String>(())
    })?;
    Ok(())
}
