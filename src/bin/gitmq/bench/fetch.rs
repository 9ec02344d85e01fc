//! `gitmq bench fetch`: `gitmq fetch` against `git fetch` of the same branch from the same
//! smart-HTTP server, in the same run. Phases: write N messages (gitmq, or `git fast-import`
//! with one timestamp for git's equal-date trap), push them with git, then per round a full
//! fetch into empty repositories, one new message, and a poll with nothing new. git runs as a
//! process; gitmq runs in this process (process start-up is ~1 ms here).

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use gitmq::{
    produce::{Producer, ProducerConfig},
    Durability, Repository, TopicName,
};

use super::{
    git::{git, path},
    workload, Scratch,
};
use crate::{cli::ServerBenchArgs, commands::Result};

/// One timed operation: seconds for git and for gitmq, per round.
struct Row {
    label: String,
    git: Vec<f64>,
    gitmq: Vec<f64>,
}

pub fn fetch(opts: &ServerBenchArgs) -> Result<()> {
    let scratch = Scratch::new(opts.keep)?;
    if opts.keep {
        eprintln!("scratch repositories in {}", scratch.path.display());
    }
    let branch = format!("gitmq-bench-{}", std::process::id());
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
    let prefix = format!("refs/heads/{branch}");
    let url = opts.url.as_str();
    let producer = scratch.path.join("producer.git");
    let n = opts.messages;

    eprintln!("writing {n} messages on {branch}...");
    let repo = Repository::init(&producer)?;
    if opts.equal_timestamps {
        drop(repo);
        fast_import(&producer, &branch, 0..n, false)?;
    } else {
        let topic = TopicName::new(&branch)?;
        let config = ProducerConfig {
            durability: Durability::None,
            max_batch_messages: 10_000,
            ..ProducerConfig::default()
        };
        let mut producer = Producer::with_config(repo, topic, config);
        let messages: Vec<Vec<u8>> = if opts.similar_payloads {
            (0..n).map(workload::similar_message).collect()
        } else {
            workload::messages(n)
        };
        for chunk in messages.chunks(10_000) {
            producer.publish_batch(chunk.iter().map(Vec::as_slice))?;
        }
    }
    let start = Instant::now();
    git(
        &["--git-dir", path(&producer)?, "push", "-q", url, &refspec],
        None,
    )?;
    println!(
        "gitmq bench fetch: {n} messages, {}, from {url}",
        if opts.equal_timestamps {
            "all with one timestamp (git fast-import)"
        } else {
            "written by gitmq"
        }
    );
    println!(
        "push of the history with git: {:.3} s",
        start.elapsed().as_secs_f64()
    );

    let result = match opts.thin {
        Some(new) => super::thin::compare(opts, new, &scratch.path, &producer, &branch, &refspec)
            .map(|()| Vec::new()),
        None => rounds(opts, &scratch.path, &producer, &branch, &refspec, &prefix),
    };
    // Remove the benchmark branch from the server whatever happened.
    let _ = git(
        &[
            "--git-dir",
            path(&producer)?,
            "push",
            "-q",
            url,
            &format!(":refs/heads/{branch}"),
        ],
        None,
    );
    let rows = result?;
    if rows.is_empty() {
        return Ok(());
    }

    println!();
    println!(
        "{:<34} {:>10} {:>10} {:>8}",
        "median seconds", "git", "gitmq", "git/gitmq"
    );
    for row in rows {
        let (git, gitmq) = (median(&row.git), median(&row.gitmq));
        println!(
            "{:<34} {git:>10.3} {gitmq:>10.3} {:>8.1}x",
            row.label,
            git / gitmq.max(1e-9)
        );
    }
    Ok(())
}

fn rounds(
    opts: &ServerBenchArgs,
    scratch: &Path,
    producer: &Path,
    branch: &str,
    refspec: &str,
    prefix: &str,
) -> Result<Vec<Row>> {
    let url = opts.url.as_str();
    let prefixes = [prefix];
    let row = |label: &str| Row {
        label: label.to_owned(),
        git: Vec::new(),
        gitmq: Vec::new(),
    };
    let (mut full, mut one, mut poll) = (
        row(&format!("full fetch of {}", opts.messages)),
        row("fetch of one new message"),
        row("poll, nothing new"),
    );
    let (git_repo, gitmq_repo) = (scratch.join("git-0.git"), scratch.join("gitmq-0.git"));
    for round in 0..opts.rounds {
        let git_path = scratch.join(format!("git-{round}.git"));
        git(&["init", "-q", "--bare", path(&git_path)?], None)?;
        full.git.push(timed(|| {
            git(
                &["--git-dir", path(&git_path)?, "fetch", "-q", url, refspec],
                None,
            )
        })?);
        let repo = Repository::init(scratch.join(format!("gitmq-{round}.git")))?;
        full.gitmq.push(timed(|| {
            Ok(gitmq::replicate::fetch(&repo, url, &prefixes).map(drop)?)
        })?);
    }
    let repo = Repository::open(&gitmq_repo)?;
    for round in 0..opts.rounds {
        let next = opts.messages + round;
        if opts.equal_timestamps {
            fast_import(producer, branch, next..next + 1, true)?;
        } else {
            let topic = TopicName::new(branch)?;
            Repository::open(producer)?
                .producer(&topic)
                .publish(&workload::message(next))?;
        }
        git(
            &["--git-dir", path(producer)?, "push", "-q", url, refspec],
            None,
        )?;
        one.git.push(timed(|| {
            git(
                &["--git-dir", path(&git_repo)?, "fetch", "-q", url, refspec],
                None,
            )
        })?);
        one.gitmq.push(timed(|| {
            Ok(gitmq::replicate::fetch(&repo, url, &prefixes).map(drop)?)
        })?);
        poll.git.push(timed(|| {
            git(
                &["--git-dir", path(&git_repo)?, "fetch", "-q", url, refspec],
                None,
            )
        })?);
        poll.gitmq.push(timed(|| {
            Ok(gitmq::replicate::fetch(&repo, url, &prefixes).map(drop)?)
        })?);
    }
    let topic = TopicName::new(branch)?;
    let head = repo.head(&topic)?.ok_or("gitmq fetched nothing")?;
    let count = gitmq::git::walk::ids_after(&mut repo.odb(), head, None, &mut Vec::new())?.len();
    if count != opts.messages + opts.rounds {
        return Err(format!(
            "gitmq has {count} messages, expected {}",
            opts.messages + opts.rounds
        )
        .into());
    }
    Ok(vec![full, one, poll])
}

pub(super) fn timed(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64())
}

pub(super) fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Append messages `range` to `branch` of `repo` with `git fast-import`, every commit with
/// the same timestamp; `continue_branch` starts from the branch's current tip.
pub(super) fn fast_import(
    repo: &Path,
    branch: &str,
    range: std::ops::Range<usize>,
    continue_branch: bool,
) -> Result<()> {
    let mut stream = Vec::new();
    for (k, i) in range.enumerate() {
        let message = workload::message(i);
        write!(
            stream,
            "commit refs/heads/{branch}\nmark :{}\nauthor gitmq <gitmq@localhost> 1700000000 +0000\n\
             committer gitmq <gitmq@localhost> 1700000000 +0000\ndata {}\n",
            k + 1,
            message.len()
        )?;
        stream.extend_from_slice(&message);
        stream.push(b'\n');
        if k > 0 {
            writeln!(stream, "from :{k}")?;
        } else if continue_branch {
            writeln!(stream, "from refs/heads/{branch}^0")?;
        }
        stream.push(b'\n');
    }
    let mut child = Command::new("git")
        .args(["--git-dir", path(repo)?, "fast-import", "--quiet"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or("no stdin")?.write_all(&stream)?;
    if !child.wait()?.success() {
        return Err("git fast-import failed".into());
    }
    Ok(())
}
