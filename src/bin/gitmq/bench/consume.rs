//! `gitmq bench consume`: reading a whole topic with gitmq and with `git log --reverse
//! --format=%B`, in the same run, on the packs gitmq's producer wrote and again after `git gc
//! --aggressive`, printing rates, ratios and the cost of a caught-up poll.
//!
//! Phases: produce N ~150-byte messages (`Durability::None`, batches of `--batch`, default
//! consolidation) -> per layout (gitmq's packs, then `git gc --aggressive`): best of `--runs`
//! of (gitmq through the library, output to /dev/null; the `gitmq consume` command, stdout to
//! /dev/null; `git log`, stdout to /dev/null) -> a caught-up poll, timed many times.
//! Machines here are shared and noisy: compare the ratios measured together.

// Rates and times are statistics: converting between f64 and integers loses nothing here.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::{
    fs,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use gitmq::{
    produce::{Producer, ProducerConfig},
    ConsumerName, Durability, Repository, TopicName,
};

use super::workload::{fmt_rate, message, rate};
use crate::commands::Result;

/// Options of `gitmq bench consume`.
#[derive(Debug, clap::Args)]
pub struct ConsumeOptions {
    /// How many messages.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: usize,
    /// Messages per batch (one pack each) when building the topic.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Runs of each reader per layout; the fastest is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Skip `git gc --aggressive` and the runs after it.
    #[arg(long)]
    pub no_gc: bool,
    /// Keep the scratch repository (its path is printed).
    #[arg(long)]
    pub keep: bool,
}

/// The topic the bench builds.
const TOPIC: &str = "t";
/// Messages per poll.
const CHUNK: usize = 1000;
/// Caught-up polls timed.
const IDLE_POLLS: u32 = 2000;

/// A scratch directory removed on drop unless kept.
struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// What one layout measured.
struct Layout {
    name: &'static str,
    api: f64,
    borrowed: f64,
    cli: Option<f64>,
    git: Option<f64>,
    idle_poll: Duration,
    open_and_poll: Duration,
}

pub fn run(opts: &ConsumeOptions) -> Result<()> {
    let n = opts.messages;
    let scratch = ScratchDir {
        path: std::env::temp_dir().join(format!("gitmq-bench-consume-{}", std::process::id())),
        keep: opts.keep,
    };
    let repo_path = scratch.path.join("q.git");
    eprintln!("producing {n} messages (batches of {})...", opts.batch);
    let seconds = produce(&repo_path, n, opts.batch)?;
    let packs = count_packs(&repo_path)?;
    println!(
        "gitmq bench consume: {n} messages of ~{} bytes; produced in {seconds:.2} s into {packs} packs",
        message(n / 2).len()
    );
    let git = git_available();
    let mut layouts = vec![measure(&repo_path, "gitmq-written packs", n, opts, git)?];
    if !opts.no_gc && git {
        eprintln!("git gc --aggressive...");
        let start = Instant::now();
        git_in(&repo_path, &["gc", "--aggressive", "--quiet"])?;
        println!(
            "git gc --aggressive took {:.1} s ({} pack(s) after)",
            start.elapsed().as_secs_f64(),
            count_packs(&repo_path)?
        );
        layouts.push(measure(
            &repo_path,
            "after git gc --aggressive",
            n,
            opts,
            git,
        )?);
    }
    print_report(n, &layouts, opts.runs);
    Ok(())
}

fn produce(path: &Path, n: usize, batch: usize) -> Result<f64> {
    let repo = Repository::init(path)?;
    let config = ProducerConfig {
        durability: Durability::None,
        max_batch_messages: batch.max(1),
        max_batch_bytes: usize::MAX,
        linger: Duration::from_secs(3600),
        ..ProducerConfig::default()
    };
    let start = Instant::now();
    let mut producer = Producer::with_config(repo, TopicName::new(TOPIC)?, config);
    for i in 0..n {
        producer.append(&message(i))?;
    }
    producer.flush()?;
    // Dropping waits for a background consolidation: the packs are final before timing.
    drop(producer);
    Ok(start.elapsed().as_secs_f64())
}

fn measure(
    repo_path: &Path,
    name: &'static str,
    n: usize,
    opts: &ConsumeOptions,
    git: bool,
) -> Result<Layout> {
    eprintln!("{name}: consuming with gitmq (library, command) and git log...");
    let (mut api, mut borrowed) = (f64::MAX, f64::MAX);
    let (mut cli, mut git_log) = (f64::MAX, f64::MAX);
    let mut peak_rss = None;
    for run in 0..opts.runs {
        api = api.min(gitmq_api(repo_path, n, &format!("bench-api-{run}"))?);
        borrowed = borrowed.min(gitmq_borrowed(repo_path, n, &format!("bench-ref-{run}"))?);
        let (seconds, rss) = gitmq_cli(repo_path, &format!("bench-cli-{run}"))?;
        cli = cli.min(seconds);
        peak_rss = peak_rss.or(rss);
        if git {
            git_log = git_log.min(time_git_log(repo_path)?);
        }
    }
    if let Some(kib) = peak_rss {
        println!(
            "  {name}: peak RSS of `gitmq consume`: {:.0} MiB",
            kib as f64 / 1024.0
        );
    }
    let (idle_poll, open_and_poll) = idle(repo_path)?;
    Ok(Layout {
        name,
        api,
        borrowed,
        cli: Some(cli),
        git: git.then_some(git_log),
        idle_poll,
        open_and_poll,
    })
}

/// Seconds to consume the whole topic through the library, payloads written to /dev/null
/// as `gitmq consume` prints them; checks the count.
fn gitmq_api(repo_path: &Path, n: usize, consumer: &str) -> Result<f64> {
    let start = Instant::now();
    let repo = Repository::open(repo_path)?;
    let mut consumer = repo.consumer(&ConsumerName::new(consumer)?, &TopicName::new(TOPIC)?)?;
    let mut out = BufWriter::with_capacity(1 << 16, fs::File::create("/dev/null")?);
    let mut count = 0;
    loop {
        let messages = consumer.poll(CHUNK)?;
        if messages.is_empty() {
            break;
        }
        count += messages.len();
        for message in &messages {
            out.write_all(&message.payload)?;
            if !message.payload.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    let seconds = start.elapsed().as_secs_f64();
    if count != n {
        return Err(format!("gitmq consumed {count} messages, expected {n}").into());
    }
    Ok(seconds)
}

/// Like [`gitmq_api()`], through `Consumer::poll_with` (messages borrowed, not allocated).
fn gitmq_borrowed(repo_path: &Path, n: usize, consumer: &str) -> Result<f64> {
    let start = Instant::now();
    let repo = Repository::open(repo_path)?;
    let mut consumer = repo.consumer(&ConsumerName::new(consumer)?, &TopicName::new(TOPIC)?)?;
    let mut out = BufWriter::with_capacity(1 << 16, fs::File::create("/dev/null")?);
    let mut count = 0;
    loop {
        let read = consumer.poll_with(CHUNK, |message| -> Result<()> {
            out.write_all(message.payload)?;
            if !message.payload.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
            Ok(())
        })?;
        if read == 0 {
            break;
        }
        count += read;
    }
    out.flush()?;
    let seconds = start.elapsed().as_secs_f64();
    if count != n {
        return Err(format!("gitmq consumed {count} messages, expected {n}").into());
    }
    Ok(seconds)
}

/// Seconds for `gitmq consume --no-commit`, stdout to /dev/null, and its peak RSS in KiB
/// when `/usr/bin/time` can tell.
fn gitmq_cli(repo_path: &Path, consumer: &str) -> Result<(f64, Option<u64>)> {
    let exe = std::env::current_exe()?;
    let time = Path::new("/usr/bin/time");
    let mut cmd = if time.exists() {
        let mut cmd = Command::new(time);
        cmd.args(["-f", "%M"]).arg(&exe);
        cmd
    } else {
        Command::new(&exe)
    };
    cmd.arg("--repo")
        .arg(repo_path)
        .args(["consume", TOPIC, "--consumer", consumer, "--no-commit"])
        .stdin(Stdio::null())
        .stdout(fs::File::create("/dev/null")?)
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd.output()?;
    let seconds = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "gitmq consume failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let rss = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok());
    Ok((seconds, rss))
}

fn time_git_log(repo_path: &Path) -> Result<f64> {
    let start = Instant::now();
    let status = Command::new("git")
        .arg("--git-dir")
        .arg(repo_path)
        .args(["log", "--reverse", "--format=%B", TOPIC])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .stdout(fs::File::create("/dev/null")?)
        .status()?;
    let seconds = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err("git log failed".into());
    }
    Ok(seconds)
}

/// A caught-up consumer: the mean time of a poll that finds nothing, and of opening a
/// consumer and polling once (what a new process pays).
fn idle(repo_path: &Path) -> Result<(Duration, Duration)> {
    let repo = Repository::open(repo_path)?;
    let (name, topic) = (ConsumerName::new("bench-idle")?, TopicName::new(TOPIC)?);
    let mut consumer = repo.consumer(&name, &topic)?;
    while !consumer.poll(64 * CHUNK)?.is_empty() {}
    consumer.commit()?;
    let start = Instant::now();
    for _ in 0..IDLE_POLLS {
        if !consumer.poll(CHUNK)?.is_empty() {
            return Err("a caught-up consumer found messages".into());
        }
    }
    let poll = start.elapsed() / IDLE_POLLS;
    let start = Instant::now();
    for _ in 0..IDLE_POLLS / 10 {
        let mut fresh = repo.consumer(&name, &topic)?;
        if !fresh.poll(CHUNK)?.is_empty() {
            return Err("a caught-up consumer found messages".into());
        }
    }
    Ok((poll, start.elapsed() / (IDLE_POLLS / 10)))
}

fn print_report(n: usize, layouts: &[Layout], runs: u32) {
    println!();
    println!("consume {n} messages, oldest first (messages/s, best of {runs}):");
    for layout in layouts {
        println!("  {}:", layout.name);
        println!(
            "    gitmq, library (Consumer::poll)      {:>12}",
            fmt_rate(rate(n, layout.api))
        );
        println!(
            "    gitmq, library (poll_with, borrowed) {:>12}",
            fmt_rate(rate(n, layout.borrowed))
        );
        if let Some(cli) = layout.cli {
            println!(
                "    gitmq consume > /dev/null            {:>12}",
                fmt_rate(rate(n, cli))
            );
        }
        if let Some(git) = layout.git {
            println!(
                "    git log --reverse --format=%B        {:>12}",
                fmt_rate(rate(n, git))
            );
            println!(
                "    ratio library / git log              {:>11.1}x",
                git / layout.api
            );
            println!(
                "    ratio borrowed / git log             {:>11.1}x",
                git / layout.borrowed
            );
            if let Some(cli) = layout.cli {
                println!(
                    "    ratio command / git log              {:>11.1}x",
                    git / cli
                );
            }
        }
        println!(
            "    caught-up poll: {:.1} us; open a consumer and poll: {:.1} us",
            layout.idle_poll.as_secs_f64() * 1e6,
            layout.open_and_poll.as_secs_f64() * 1e6
        );
    }
}

fn count_packs(repo_path: &Path) -> Result<usize> {
    Ok(fs::read_dir(repo_path.join("objects/pack"))?
        .filter_map(std::result::Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .count())
}

fn git_available() -> bool {
    Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn git_in(repo_path: &Path, args: &[&str]) -> Result<()> {
    let mut full = vec!["--git-dir", super::git::path(repo_path)?];
    full.extend_from_slice(args);
    super::git::git(&full, None)
}
