//! Append N ~150-byte messages to a fresh repository and print the rate: the smallest
//! program to profile the append hot path (`perf record cargo run --release --example ...`).
//!
//! Usage: `cargo run --release --example append_rate -- [N] [none|batch] [stored|deflate] [inline]`

#![allow(clippy::cast_precision_loss)] // a rate is a statistic

use std::time::{Duration, Instant};

use gitmq::{
    odb::pack::write::Compression,
    produce::{Producer, ProducerConfig},
    Durability, Repository, TopicName,
};

fn main() -> Result<(), gitmq::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let durability =
        Durability::parse(args.get(1).map_or("none", String::as_str)).unwrap_or(Durability::None);
    let compression = match args.get(2).map(String::as_str) {
        Some("deflate") => Compression::Deflate(1),
        _ => Compression::Stored,
    };
    let inline = args.get(3).is_some_and(|a| a == "inline");
    let messages: Vec<Vec<u8>> = (0..n)
        .map(|i| format!(r#"{{"id":{i},"type":"order.created","customer":"c-{:06}","items":[{{"sku":"SKU-{}","qty":{}}}],"total":{}.{:02},"ts":"2026-11-27T12:00:00Z"}}"#, i, i % 9973, i % 7 + 1, i % 1000, i % 100).into_bytes())
        .collect();
    let dir = std::env::temp_dir().join(format!("gitmq-append-rate-{}", std::process::id()));
    let repo = Repository::init(&dir)?;
    let config = ProducerConfig {
        durability,
        compression,
        max_batch_messages: std::env::var("BATCH")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(1000),
        linger: Duration::from_secs(3600),
        background_flush: !inline,
        ..ProducerConfig::default()
    };
    let mut producer = Producer::with_config(repo, TopicName::new("t")?, config);
    let start = Instant::now();
    for m in &messages {
        producer.append(m)?;
    }
    producer.flush()?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{n} messages in {seconds:.3} s: {:.0} msg/s",
        n as f64 / seconds
    );
    drop(producer);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
