//! `gitmq bench append`: gitmq against `git fast-import` and the git CLI on the same messages,
//! in the same run, printing each rate and the ratios (machines here are shared and noisy, so
//! ratios measured together are what to compare).

// Rates, percentiles and counts of messages are statistics: converting between f64 and
// integers here loses nothing that matters.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

pub mod consume;
mod fetch;
mod floor;
mod git;
mod phases;
mod push;
mod redis;
pub mod serve;
mod sign;
mod thin;
mod workload;

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use gitmq::{
    git::odb::pack::write::Compression,
    produce::{Producer, ProducerConfig},
    Durability, Repository, TopicName,
};
use workload::{cpu_seconds, fmt_rate, rate};

use crate::commands::Result;

/// Options of `gitmq bench append`.
pub use crate::cli::AppendArgs as AppendOptions;

pub use fetch::fetch;
pub use push::{latency, push};

/// Run one `gitmq bench` subcommand.
pub fn run(command: crate::cli::BenchCommand) -> Result<()> {
    use crate::cli::BenchCommand;
    match command {
        BenchCommand::Append(args) => append(&args),
        BenchCommand::Fetch(args) => fetch(&args),
        BenchCommand::Push(args) => push(&args),
        BenchCommand::Latency(args) => latency(&args),
        BenchCommand::Consume(options) => consume::run(&options),
        BenchCommand::Serve(options) => serve::run(&options),
    }
}

/// A scratch directory removed on drop (unless kept).
struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    fn new(keep: bool) -> Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "gitmq-bench-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        fs::create_dir_all(&path)?;
        Ok(Self { path, keep })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

pub fn append(opts: &AppendOptions) -> Result<()> {
    let scratch = Scratch::new(opts.keep)?;
    let n = opts.messages;
    eprintln!("generating {n} messages (~150-byte JSON)...");
    let messages = workload::messages(n);
    if opts.sign {
        return sign::run(&scratch.path, &messages, opts.batch);
    }
    if let Some(part) = std::env::var_os("GITMQ_BENCH_PROFILE") {
        return profile_one(&scratch.path, &messages, opts, &part);
    }
    let avg = messages.iter().map(Vec::len).sum::<usize>() / n.max(1);
    println!("{}", machine());
    println!(
        "gitmq bench append: {n} messages of ~{avg} bytes, batches of {} (durability batch: {})",
        opts.batch, opts.durable_batch
    );
    println!();
    println!("per-message phase costs (ns), in-process:");
    for (phase, ns) in phases::measure(&messages) {
        println!("  {phase:<40} {ns:>8.0}");
    }
    println!();

    let mut rows: Vec<Row> = Vec::new();
    let mut run_gitmq =
        |label: &str, durability, compression, batch: usize| -> Result<(Row, Stats)> {
            let repo_path = scratch.path.join(format!("gitmq-{}", rows.len()));
            let cpu = cpu_seconds();
            let (seconds, stats) =
                gitmq_append(&repo_path, &messages, opts, batch, durability, compression)?;
            let count = messages.len();
            let row = Row::new(label, count, seconds, cpu);
            eprintln!("  {label}: {} msg/s", fmt_rate(row.rate));
            rows.push(row.clone());
            Ok((row, stats))
        };
    eprintln!("running the floor loop...");
    let cpu = cpu_seconds();
    let floor_seconds = floor::floor(&scratch.path.join("floor-loop"), &messages, opts.batch)?;
    let floor_loop = Row::new(
        "floor: one loop, encode+hash+frame+write, nothing else",
        n,
        floor_seconds,
        cpu,
    );
    eprintln!("  floor: {} msg/s", fmt_rate(floor_loop.rate));
    eprintln!("running gitmq...");
    let (stored, _) = run_gitmq(
        "gitmq, durability none, stored",
        Durability::None,
        Compression::Stored,
        opts.batch,
    )?;
    let (deflate, _) = run_gitmq(
        "gitmq, durability none, deflate 1",
        Durability::None,
        Compression::Deflate(1),
        opts.batch,
    )?;
    let durable_label = format!(
        "gitmq, durability batch ({} per batch), stored",
        opts.durable_batch
    );
    let (batch, stats) = run_gitmq(
        &durable_label,
        Durability::Batch,
        Compression::Stored,
        opts.durable_batch,
    )?;

    rows.push(floor_loop.clone());
    let cpu = cpu_seconds();
    let floor = disk_floor(&scratch.path.join("floor"), &stats)?;
    let disk = Row::new(
        "plain write+fsync loop of the same files (disk floor)",
        n,
        floor,
        cpu,
    );
    let floor_rate = disk.rate;
    rows.push(disk);

    let each_n = opts.each_messages.min(n);
    let each_latencies = each_latencies(&scratch.path.join("each"), &messages[..each_n])?;
    let fsync_latencies = fsync_floor(&scratch.path.join("fsync"), each_n)?;

    let (fast_import_rate, fast_import_stored_rate) =
        run_git(&scratch, &messages, opts, &mut rows)?;

    print_report(
        &rows,
        fast_import_rate,
        fast_import_stored_rate,
        [stored, deflate, batch],
        &floor_loop,
        floor_rate,
    );
    print_each(each_n, &each_latencies, &fsync_latencies);
    Ok(())
}

/// One row of the report: what ran, its rate, and its CPU time per message (all threads and
/// child processes).
#[derive(Debug, Clone)]
struct Row {
    label: String,
    rate: f64,
    cpu_us: f64,
}

impl Row {
    /// `n` messages in `seconds`, the CPU clock read at the start being `cpu`.
    fn new(label: &str, n: usize, seconds: f64, cpu: workload::CpuTime) -> Self {
        Self {
            label: label.to_owned(),
            rate: rate(n, seconds),
            cpu_us: cpu_seconds().us_per_message_since(cpu, n),
        }
    }
}

/// `GITMQ_BENCH_PROFILE=floor|stored`: run only the floor loop or only gitmq's stored producer
/// (durability none), to profile one of them alone (`perf record -g`); prints its rate and CPU.
fn profile_one(
    dir: &Path,
    messages: &[Vec<u8>],
    opts: &AppendOptions,
    part: &std::ffi::OsStr,
) -> Result<()> {
    let n = messages.len();
    let cpu = cpu_seconds();
    let row = if part == "floor" {
        let seconds = floor::floor(&dir.join("floor-loop"), messages, opts.batch)?;
        Row::new("floor", n, seconds, cpu)
    } else {
        let (seconds, _) = gitmq_append(
            &dir.join("gitmq"),
            messages,
            opts,
            opts.batch,
            Durability::None,
            Compression::Stored,
        )?;
        Row::new("gitmq, durability none, stored", n, seconds, cpu)
    };
    println!(
        "{}: {} msg/s, CPU {:.3} us/msg",
        row.label,
        fmt_rate(row.rate),
        row.cpu_us
    );
    Ok(())
}

fn print_report(
    rows: &[Row],
    fast_import: Option<f64>,
    fast_import_stored: Option<f64>,
    [stored_row, deflate_row, batch_row]: [Row; 3],
    floor_row: &Row,
    floor_rate: f64,
) {
    let (stored, deflate, batch) = (stored_row.rate, deflate_row.rate, batch_row.rate);
    println!("append rates (messages/s; CPU us per message, all threads and child processes):");
    for row in rows {
        println!(
            "  {:<58} {:>12}  {:>7.3} us",
            row.label,
            fmt_rate(row.rate),
            row.cpu_us
        );
    }
    println!();
    println!("ratios:");
    println!(
        "  gitmq stored / floor (target >= 0.8x)            {:>8.2}x",
        stored / floor_row.rate
    );
    println!(
        "  floor CPU / gitmq stored CPU per message         {:>8.2}x",
        floor_row.cpu_us / stored_row.cpu_us
    );
    if let Some(fi) = fast_import {
        println!(
            "  gitmq stored / git fast-import (target >= 20x)   {:>8.1}x",
            stored / fi
        );
        println!(
            "  gitmq deflate 1 / git fast-import (defaults)     {:>8.1}x",
            deflate / fi
        );
    }
    if let Some(fi0) = fast_import_stored {
        println!(
            "  gitmq stored / git fast-import compression=0     {:>8.1}x",
            stored / fi0
        );
    }
    println!(
        "  gitmq batch mode / disk floor (target >= 70%)    {:>8.0}%",
        100.0 * batch / floor_rate
    );
}

fn print_each(each_n: usize, each_latencies: &[f64], fsync_latencies: &[f64]) {
    println!();
    println!(
        "durability each, {each_n} messages: {} msg/s, latency p50 {:.2} ms, p99 {:.2} ms \
         (plain small-file write+fsync+rename+dir fsync: p50 {:.2} ms, p99 {:.2} ms; \
         target p50 <= 1.5x)",
        fmt_rate(rate(
            each_latencies.len(),
            each_latencies.iter().sum::<f64>()
        )),
        percentile(each_latencies, 50.0) * 1e3,
        percentile(each_latencies, 99.0) * 1e3,
        percentile(fsync_latencies, 50.0) * 1e3,
        percentile(fsync_latencies, 99.0) * 1e3,
    );
}

/// `git fast-import` (defaults and uncompressed) and a `git commit` loop on the same messages;
/// their rows are added to `rows`, and the two fast-import rates returned.
fn run_git(
    scratch: &Scratch,
    messages: &[Vec<u8>],
    opts: &AppendOptions,
    rows: &mut Vec<Row>,
) -> Result<(Option<f64>, Option<f64>)> {
    if !git::available() {
        println!("(git not on PATH: no comparison)");
        return Ok((None, None));
    }
    let n = messages.len();
    eprintln!("running git...");
    let stream = git::fast_import_stream(messages);
    let cpu = cpu_seconds();
    let s = git::fast_import(&scratch.path.join("fi.git"), &stream, &[])?;
    rows.push(Row::new("git fast-import (defaults)", n, s, cpu));
    let default_rate = rate(n, s);
    let cpu = cpu_seconds();
    let s = git::fast_import(
        &scratch.path.join("fi0.git"),
        &stream,
        &["-c", "pack.compression=0"],
    )?;
    rows.push(Row::new("git fast-import, pack.compression=0", n, s, cpu));
    let stored_rate = rate(n, s);
    let cli_n = opts.cli_messages.min(n);
    if cli_n > 0 {
        let cpu = cpu_seconds();
        let s = git::commit_loop(&scratch.path.join("cli"), &messages[..cli_n])?;
        rows.push(Row::new(
            &format!("git commit --allow-empty loop ({cli_n} messages)"),
            cli_n,
            s,
            cpu,
        ));
    }
    Ok((Some(default_rate), Some(stored_rate)))
}

/// Sizes of what a gitmq run wrote, to replay as the disk floor.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pack_bytes: Vec<u64>,
    index_bytes: Vec<u64>,
}

fn gitmq_append(
    path: &Path,
    messages: &[Vec<u8>],
    opts: &AppendOptions,
    batch: usize,
    durability: Durability,
    compression: Compression,
) -> Result<(f64, Stats)> {
    let repo = Repository::init(path)?;
    let config = ProducerConfig {
        durability,
        compression,
        max_batch_messages: batch,
        max_batch_bytes: usize::MAX,
        linger: Duration::from_secs(3600),
        background_flush: !opts.inline_flush,
        // The producer as shipped: its background multi-pack-index updates included.
        ..ProducerConfig::default()
    };
    let mut producer = Producer::with_config(repo, TopicName::new("t")?, config);
    let start = Instant::now();
    let mut acknowledged = 0;
    for message in messages {
        if let Some(flushed) = producer.append(message)?.flushed {
            acknowledged += flushed.ids.len();
        }
    }
    acknowledged += producer.flush()?.ids.len();
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(acknowledged, messages.len(), "every message acknowledged");
    let mut stats = Stats::default();
    for entry in fs::read_dir(path.join("objects/pack"))? {
        let entry = entry?;
        let len = entry.metadata()?.len();
        match entry.path().extension().and_then(|e| e.to_str()) {
            Some("pack") => stats.pack_bytes.push(len),
            Some("idx") => stats.index_bytes.push(len),
            _ => {}
        }
    }
    Ok((seconds, stats))
}

/// The same files as a `batch`-mode run, written and fsynced by a plain loop: per batch, a
/// pack and an index (each fsynced), two renames, a directory fsync, then a ref lock file
/// (fsynced), its rename and a directory fsync.
fn disk_floor(dir: &Path, stats: &Stats) -> Result<f64> {
    fs::create_dir_all(dir.join("refs"))?;
    let start = Instant::now();
    for (i, (pack, index)) in stats.pack_bytes.iter().zip(&stats.index_bytes).enumerate() {
        for (name, len) in [("p", *pack), ("i", *index)] {
            let tmp = dir.join(format!("tmp.{name}"));
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&vec![b'x'; usize::try_from(len)?])?;
            file.sync_data()?;
            fs::rename(&tmp, dir.join(format!("{i}.{name}")))?;
        }
        fs::File::open(dir)?.sync_all()?;
        let lock = dir.join("refs/t.lock");
        let mut file = fs::File::create(&lock)?;
        file.write_all(&[b'0'; 41])?;
        file.sync_data()?;
        fs::rename(&lock, dir.join("refs/t"))?;
        fs::File::open(dir.join("refs"))?.sync_all()?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds per `publish` with `Durability::Each`.
fn each_latencies(path: &Path, messages: &[Vec<u8>]) -> Result<Vec<f64>> {
    let repo = Repository::init(path)?;
    let mut producer = ProducerConfig::default()
        .with_durability(Durability::Each)
        .open(&repo, &TopicName::new("t")?);
    let mut latencies = Vec::with_capacity(messages.len());
    for message in messages {
        let start = Instant::now();
        producer.publish(message)?;
        latencies.push(start.elapsed().as_secs_f64());
    }
    Ok(latencies)
}

/// Seconds per plain small-file durable write: write, fsync, rename, directory fsync.
fn fsync_floor(dir: &Path, n: usize) -> Result<Vec<f64>> {
    fs::create_dir_all(dir)?;
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let tmp = dir.join("tmp");
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&[b'x'; 400])?;
        file.sync_data()?;
        fs::rename(&tmp, dir.join(i.to_string()))?;
        fs::File::open(dir)?.sync_all()?;
        latencies.push(start.elapsed().as_secs_f64());
    }
    Ok(latencies)
}

/// The machine, for the first line: cores, and whether SHA-1 runs on SHA-NI.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    #[cfg(target_arch = "x86_64")]
    let sha = if std::arch::is_x86_feature_detected!("sha") {
        "SHA-NI: yes"
    } else {
        "SHA-NI: no"
    };
    #[cfg(not(target_arch = "x86_64"))]
    let sha = "SHA-NI: n/a";
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "machine: {cores} cores, {sha}, {} (load average {load})",
        std::env::consts::ARCH
    )
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
