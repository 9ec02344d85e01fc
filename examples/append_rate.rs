//! Append N ~150-byte messages to a fresh repository and print the rate of each million (or
//! each tenth, for smaller N): the smallest program to profile the append hot path and to see
//! whether the rate stays flat as a topic grows. Each line also gives the process's CPU time
//! per message over that step (all threads, from `/proc/self/stat`): on a loaded machine the
//! wall-clock rate follows the load, the CPU cost per message does not.
//!
//! Usage: `cargo run --release --example append_rate -- [N] [none|batch] [stored|deflate] [inline]`
//! Env: `BATCH` messages per batch (default 10,000), `KEEP=1` keeps the repository, `IDS=1`
//! gives every message a generated stable id (`MessageIds::Generate`), `MIDX=0` turns the
//! multi-pack-index upkeep off.
//!
//! Each line also probes what a fresh page of memory costs the machine at that moment (touch
//! 32 MiB of new anonymous memory, one byte per 4 KiB page, outside the lap's time) and gives
//! the bytes under `objects/pack`. On the shared VM this was written on, pages beyond the
//! first few GB a run takes cost ~20 us each instead of ~2 us (the host backs them late), for
//! any writer; the probe shows when that happens, in the same run as gitmq's rate.

#![allow(clippy::cast_precision_loss)] // rates are statistics

use std::{
    io::Write,
    time::{Duration, Instant},
};

use gitmq::{
    produce::{Compression, Producer, ProducerConfig},
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
    let batch = std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("gitmq-append-rate-{}", std::process::id()));
    let repo = Repository::init(&dir)?;
    let config = ProducerConfig {
        durability,
        compression,
        max_batch_messages: batch,
        linger: Duration::from_secs(3600),
        background_flush: !inline,
        message_ids: if std::env::var_os("IDS").is_some_and(|v| v == "1") {
            gitmq::produce::MessageIds::Generate
        } else {
            gitmq::produce::MessageIds::Given
        },
        // `MIDX=0`: no multi-pack-index upkeep (to see what it costs).
        multi_pack_index: if std::env::var_os("MIDX").is_some_and(|v| v == "0") {
            None
        } else {
            ProducerConfig::default().multi_pack_index
        },
        ..ProducerConfig::default()
    };
    let mut producer = Producer::with_config(repo, TopicName::new("t")?, config);
    let step = if n >= 2_000_000 {
        1_000_000
    } else {
        (n / 10).max(1)
    };
    let mut payload = Vec::with_capacity(256);
    let start = Instant::now();
    let mut lap = Instant::now();
    let mut lap_cpu = cpu_seconds();
    for i in 0..n {
        payload.clear();
        write!(
            payload,
            r#"{{"id":{i},"type":"order.created","customer":"c-{:06}","items":[{{"sku":"SKU-{}","qty":{}}}],"total":{}.{:02},"ts":"2026-11-27T12:00:00Z"}}"#,
            i % 1_000_000,
            i % 9973,
            i % 7 + 1,
            i % 1000,
            i % 100
        )
        .expect("writing to a Vec");
        producer.append(&payload)?;
        if (i + 1) % step == 0 {
            let seconds = lap.elapsed().as_secs_f64();
            let cpu = cpu_seconds();
            println!(
                "messages {:>10}..{:>10}: {:>9.0} msg/s, CPU {:>6.3} us/msg, RSS {:>4} MB, packs {:>5} MB, fresh page {:>5.1} us",
                i + 1 - step,
                i + 1,
                step as f64 / seconds,
                (cpu - lap_cpu) * 1e6 / step as f64,
                rss_mb(),
                dir_bytes(&dir.join("objects/pack")) >> 20,
                fresh_page_micros(),
            );
            lap = Instant::now();
            lap_cpu = cpu_seconds();
        }
    }
    producer.flush()?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{n} messages in {seconds:.3} s: {:.0} msg/s",
        n as f64 / seconds
    );
    if let Some(outcome) = producer.last_index_update() {
        println!("last multi-pack-index update: {outcome:?}");
    }
    // Which thread is the bottleneck: the appending one (this one), or the flush thread.
    for (thread, seconds) in thread_cpu_seconds() {
        println!(
            "thread {thread:<16} CPU {:>6.3} us/msg",
            seconds * 1e6 / n as f64
        );
    }
    drop(producer);
    let packs = std::fs::read_dir(dir.join("objects/pack")).map_or(0, Iterator::count) / 2;
    println!("packs at the end: {packs}");
    if std::env::var_os("KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("kept {}", dir.display());
    }
    Ok(())
}

/// Microseconds to touch one page of new anonymous memory: 32 MiB, one byte per 4 KiB page,
/// then given back.
fn fresh_page_micros() -> f64 {
    const PAGE: usize = 4096;
    const PAGES: usize = 8192;
    let mut probe: Vec<u8> = Vec::with_capacity(PAGE * PAGES);
    let start = Instant::now();
    for page in 0..PAGES {
        // The capacity is allocated, not yet touched: each write faults one page in.
        probe.spare_capacity_mut()[page * PAGE].write(1);
    }
    std::hint::black_box(&probe);
    start.elapsed().as_secs_f64() * 1e6 / PAGES as f64
}

/// Bytes of the files directly in `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|entry| entry.ok()?.metadata().ok())
            .map(|meta| meta.len())
            .sum()
    })
}

/// Each live thread's name and user + system CPU seconds (Linux; none elsewhere).
fn thread_cpu_seconds() -> Vec<(String, f64)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .map(|task| {
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            (name.trim().to_owned(), stat_cpu_seconds(&stat))
        })
        .collect()
}

/// User + system CPU seconds of this process so far (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    stat_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// User + system CPU seconds in a `/proc/.../stat` line.
fn stat_cpu_seconds(stat: &str) -> f64 {
    // Fields after the command name (which may hold spaces): utime is the 12th, stime 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of this process in MB (Linux; 0 elsewhere).
fn rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}
