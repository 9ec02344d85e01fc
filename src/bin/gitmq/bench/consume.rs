//! `gitmq bench consume`: reading a whole topic with gitmq and with `git log --reverse
//! --format=%B`, in the same run, on three layouts: the packs gitmq's producer wrote, a pack
//! `git fast-import` wrote (defaults: deflated; what a fetch from a git server looks like),
//! and gitmq's packs after `git gc --aggressive` (deltas, a commit-graph); printing rates,
//! ratios to git and to the machine's floor, and the cost of a caught-up poll.
//!
//! Phases: produce N ~150-byte messages (`Durability::None`, batches of `--batch`, default
//! consolidation); feed the same messages to `git fast-import` -> per layout: the floor
//! (reading every pack byte once, 1 MiB `pread`s), then best of `--runs` of (gitmq through the
//! library, output to /dev/null; the `gitmq consume` command and `git log`, each a whole
//! process with stdout to /dev/null, timed by wall clock and by CPU time (user + system, from
//! `/usr/bin/time`)) -> a caught-up poll, timed many times.
//!
//! The first line names the machine (cores, SHA-NI, load average). Machines here are shared
//! and noisy: compare the ratios measured together; on a loaded machine the CPU-time ratio
//! of the two whole processes is the steadier one.

// Rates and times are statistics: converting between f64 and integers loses nothing here.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::{
    fs,
    io::{BufWriter, Read, Write},
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
    /// Skip the `git fast-import` pack and the runs on it.
    #[arg(long)]
    pub no_fast_import: bool,
    /// Keep the scratch repositories (their path is printed).
    #[arg(long)]
    pub keep: bool,
}

/// The topic the bench builds.
const TOPIC: &str = "t";
/// Messages per poll.
const CHUNK: usize = 1000;
/// Caught-up polls timed.
const IDLE_POLLS: u32 = 2000;
/// The read size of the floor.
const FLOOR_CHUNK: usize = 1 << 20;

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

/// A whole process timed: wall clock, CPU time (user + system) and peak RSS when
/// `/usr/bin/time` can tell.
#[derive(Debug, Clone, Copy)]
struct Timed {
    wall: f64,
    cpu: Option<f64>,
    rss_kib: Option<u64>,
}

impl Timed {
    const WORST: Self = Self {
        wall: f64::MAX,
        cpu: None,
        rss_kib: None,
    };

    /// The better of two runs, by wall clock and by CPU time separately.
    fn best(self, other: Self) -> Self {
        Self {
            wall: self.wall.min(other.wall),
            cpu: match (self.cpu, other.cpu) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            rss_kib: self.rss_kib.max(other.rss_kib),
        }
    }
}

/// What one layout measured.
struct Layout {
    name: &'static str,
    floor: f64,
    api: f64,
    borrowed: f64,
    cli: Timed,
    /// The command with packs read into windows (`GITMQ_PACK_MMAP=0`), not mapped.
    cli_read: Timed,
    git: Option<Timed>,
    idle_poll: Duration,
    open_and_poll: Duration,
}

/// The machine, for the first line: cores, SHA-NI, the load average.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    #[cfg(target_arch = "x86_64")]
    let sha = if std::arch::is_x86_feature_detected!("sha") {
        "yes"
    } else {
        "no"
    };
    #[cfg(not(target_arch = "x86_64"))]
    let sha = "n/a";
    let load = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    format!("{cores} cores, SHA-NI {sha}, load average {load}")
}

pub fn run(opts: &ConsumeOptions) -> Result<()> {
    let n = opts.messages;
    println!("gitmq bench consume: {}", machine());
    let scratch = ScratchDir {
        path: std::env::temp_dir().join(format!("gitmq-bench-consume-{}", std::process::id())),
        keep: opts.keep,
    };
    let repo_path = scratch.path.join("q.git");
    // The command rows run a copy of this binary: a rebuild during the run cannot change
    // (or remove) what is measured.
    fs::create_dir_all(&scratch.path)?;
    let exe = scratch.path.join("gitmq");
    fs::copy(std::env::current_exe()?, &exe)?;
    eprintln!("producing {n} messages (batches of {})...", opts.batch);
    let seconds = produce(&repo_path, n, opts.batch)?;
    let packs = count_packs(&repo_path)?;
    println!(
        "{n} messages of ~{} bytes; produced in {seconds:.2} s into {packs} packs",
        message(n / 2).len()
    );
    let git = git_available();
    let mut layouts = vec![measure(
        &repo_path,
        "gitmq-written packs",
        n,
        opts,
        git,
        &exe,
    )?];
    if !opts.no_fast_import && git {
        let fi_path = scratch.path.join("fast-import.git");
        eprintln!("git fast-import...");
        let seconds = fast_import(&fi_path, n)?;
        println!(
            "git fast-import (defaults) wrote the same messages in {seconds:.1} s ({} pack(s))",
            count_packs(&fi_path)?
        );
        layouts.push(measure(
            &fi_path,
            "git fast-import pack",
            n,
            opts,
            git,
            &exe,
        )?);
    }
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
            &exe,
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

/// `git fast-import` (defaults) of the bench's messages on branch `t` of a new bare
/// repository at `path`, its input streamed; seconds.
fn fast_import(path: &Path, n: usize) -> Result<f64> {
    super::git::git(&["init", "-q", "--bare", super::git::path(path)?], None)?;
    let start = Instant::now();
    let mut child = Command::new("git")
        .arg("--git-dir")
        .arg(path)
        .args(["fast-import", "--quiet"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    {
        let stdin = child.stdin.take().ok_or("fast-import has no stdin")?;
        let mut stdin = BufWriter::with_capacity(1 << 16, stdin);
        for i in 0..n {
            let payload = message(i);
            stdin.write_all(
                b"commit refs/heads/t\nauthor gitmq <gitmq@localhost> 1700000000 +0000\n\
committer gitmq <gitmq@localhost> 1700000000 +0000\n",
            )?;
            writeln!(stdin, "data {}", payload.len())?;
            stdin.write_all(&payload)?;
            stdin.write_all(b"\n")?;
        }
        stdin.flush()?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "git fast-import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(start.elapsed().as_secs_f64())
}

fn measure(
    repo_path: &Path,
    name: &'static str,
    n: usize,
    opts: &ConsumeOptions,
    git: bool,
    exe: &Path,
) -> Result<Layout> {
    eprintln!("{name}: consuming with gitmq (library, command) and git log...");
    let (mut api, mut borrowed, mut floor) = (f64::MAX, f64::MAX, f64::MAX);
    let (mut cli, mut cli_read, mut git_log) = (Timed::WORST, Timed::WORST, Timed::WORST);
    for run in 0..opts.runs {
        floor = floor.min(read_packs(repo_path)?);
        api = api.min(gitmq_api(repo_path, n, &format!("bench-api-{run}"))?);
        borrowed = borrowed.min(gitmq_borrowed(repo_path, n, &format!("bench-ref-{run}"))?);
        cli = cli.best(gitmq_cli(
            exe,
            repo_path,
            &format!("bench-cli-{run}"),
            true,
        )?);
        cli_read = cli_read.best(gitmq_cli(
            exe,
            repo_path,
            &format!("bench-read-{run}"),
            false,
        )?);
        if git {
            git_log = git_log.best(time_git_log(repo_path)?);
        }
    }
    let (idle_poll, open_and_poll) = idle(repo_path)?;
    Ok(Layout {
        name,
        floor,
        api,
        borrowed,
        cli,
        cli_read,
        git: git.then_some(git_log),
        idle_poll,
        open_and_poll,
    })
}

/// The floor: seconds to read every byte of every pack once, in 1 MiB `pread`s.
fn read_packs(repo_path: &Path) -> Result<f64> {
    let start = Instant::now();
    let mut buf = vec![0u8; FLOOR_CHUNK];
    let mut total = 0u64;
    for entry in fs::read_dir(repo_path.join("objects/pack"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "pack") {
            let mut file = fs::File::open(&path)?;
            loop {
                let read = file.read(&mut buf)?;
                if read == 0 {
                    break;
                }
                total += read as u64;
            }
        }
    }
    std::hint::black_box(total);
    Ok(start.elapsed().as_secs_f64())
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

/// Run `program args`, stdout to /dev/null, as a whole process: under `/usr/bin/time` when
/// it exists, for CPU time and peak RSS.
fn timed(
    program: &Path,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
    what: &str,
) -> Result<Timed> {
    let time = Path::new("/usr/bin/time");
    let mut cmd = if time.exists() {
        let mut cmd = Command::new(time);
        cmd.args(["-f", "%U %S %M"]).arg(program);
        cmd
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .envs(env.iter().copied())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .stdout(fs::File::create("/dev/null")?)
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd.output()?;
    let wall = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let fields: Vec<&str> = stderr
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let (cpu, rss_kib) = match fields[..] {
        [user, system, rss] => (
            user.parse::<f64>()
                .ok()
                .zip(system.parse::<f64>().ok())
                .map(|(u, s)| u + s),
            rss.parse().ok(),
        ),
        _ => (None, None),
    };
    Ok(Timed { wall, cpu, rss_kib })
}

/// `gitmq consume --no-commit`, stdout to /dev/null: packs mapped (the default) or, if not
/// `map`, read into windows.
fn gitmq_cli(exe: &Path, repo_path: &Path, consumer: &str, map: bool) -> Result<Timed> {
    let args = [
        "--repo".as_ref(),
        repo_path.as_os_str(),
        "consume".as_ref(),
        TOPIC.as_ref(),
        "--consumer".as_ref(),
        consumer.as_ref(),
        "--no-commit".as_ref(),
    ];
    let env = [("GITMQ_PACK_MMAP", if map { "1" } else { "0" })];
    timed(exe, &args, &env, "gitmq consume")
}

/// `git log --reverse --format=%B`, stdout to /dev/null.
fn time_git_log(repo_path: &Path) -> Result<Timed> {
    let args = [
        "--git-dir".as_ref(),
        repo_path.as_os_str(),
        "log".as_ref(),
        "--reverse".as_ref(),
        "--format=%B".as_ref(),
        TOPIC.as_ref(),
    ];
    timed(Path::new("git"), &args, &[], "git log")
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

/// `rate (x.x s cpu rate)` of a whole process.
fn fmt_timed(n: usize, timed: &Timed) -> String {
    let cpu = timed
        .cpu
        .map(|cpu| format!("   cpu {:>12}", fmt_rate(rate(n, cpu))))
        .unwrap_or_default();
    let rss = timed
        .rss_kib
        .map(|kib| format!("   peak RSS {:>4.0} MiB", kib as f64 / 1024.0))
        .unwrap_or_default();
    format!("{:>12}{cpu}{rss}", fmt_rate(rate(n, timed.wall)))
}

fn print_report(n: usize, layouts: &[Layout], runs: u32) {
    println!();
    println!(
        "consume {n} messages, oldest first (messages/s, best of {runs}; whole processes also by CPU time):"
    );
    for layout in layouts {
        println!("  {}:", layout.name);
        println!(
            "    floor: read every pack byte          {:>12}",
            fmt_rate(rate(n, layout.floor))
        );
        println!(
            "    gitmq, library (Consumer::poll)      {:>12}",
            fmt_rate(rate(n, layout.api))
        );
        println!(
            "    gitmq, library (poll_with, borrowed) {:>12}",
            fmt_rate(rate(n, layout.borrowed))
        );
        println!(
            "    gitmq consume > /dev/null            {}",
            fmt_timed(n, &layout.cli)
        );
        println!(
            "      the same, packs read, not mapped   {}",
            fmt_timed(n, &layout.cli_read)
        );
        if let Some(git) = &layout.git {
            println!(
                "    git log --reverse --format=%B        {}",
                fmt_timed(n, git)
            );
            println!(
                "    ratio library / git log              {:>11.1}x",
                git.wall / layout.api
            );
            println!(
                "    ratio borrowed / git log             {:>11.1}x",
                git.wall / layout.borrowed
            );
            let cpu = match (git.cpu, layout.cli.cpu) {
                (Some(git), Some(cli)) => format!("   cpu {:>11.1}x", git / cli),
                _ => String::new(),
            };
            println!(
                "    ratio command / git log              {:>11.1}x{cpu}",
                git.wall / layout.cli.wall
            );
        }
        println!(
            "    ratio borrowed / floor               {:>11.2}x",
            layout.floor / layout.borrowed
        );
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
