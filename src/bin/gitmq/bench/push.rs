//! `gitmq bench push` and `gitmq bench latency`: gitmq's push and its publish -> push -> fetch
//! -> consume path against git's CLI doing the same, to the same smart-HTTP server, in the
//! same run. Every history is distinct (no side finds the other's objects on the server), and
//! the benchmark's branches are deleted at the end.

use std::{path::Path, time::Instant};

use gitmq::{
    produce::{Producer, ProducerConfig},
    replicate::{
        fetch::Fetcher,
        http::{Options, ReqwestClient},
        push::{PushOptions, Pusher},
        FetchOptions,
    },
    Consumer, ConsumerName, Durability, Repository, TopicName,
};

use super::{
    fetch::{fast_import, median, timed},
    git::{git, path},
    workload, Scratch,
};
use crate::{
    cli::{LatencyBenchArgs, ServerBenchArgs},
    commands::Result,
};

/// Write messages `range` of the workload on `branch` of a new repository at `repo` (with
/// `git fast-import` and one timestamp for all when `equal_timestamps`).
fn history(
    repo: &Path,
    branch: &str,
    range: std::ops::Range<usize>,
    equal_timestamps: bool,
) -> Result<Repository> {
    let repository = Repository::init(repo)?;
    if equal_timestamps {
        fast_import(repo, branch, range, false)?;
        return Ok(repository);
    }
    let config = ProducerConfig {
        durability: Durability::None,
        max_batch_messages: 10_000,
        ..ProducerConfig::default()
    };
    let mut producer = Producer::with_config(repository.clone(), TopicName::new(branch)?, config);
    let messages: Vec<Vec<u8>> = range.map(workload::message).collect();
    for chunk in messages.chunks(10_000) {
        producer.publish_batch(chunk.iter().map(Vec::as_slice))?;
    }
    Ok(repository)
}

fn delete_branches(url: &str, scratch: &Path, branches: &[String]) {
    let deleter = scratch.join("deleter.git");
    let Ok(any) = path(&deleter).map(str::to_owned) else {
        return;
    };
    let _ = git(&["init", "-q", "--bare", &any], None);
    for branch in branches {
        let _ = git(
            &[
                "--git-dir",
                &any,
                "push",
                "-q",
                url,
                &format!(":refs/heads/{branch}"),
            ],
            None,
        );
    }
}

pub fn push(opts: &ServerBenchArgs) -> Result<()> {
    let scratch = Scratch::new(opts.keep)?;
    let url = opts.url.as_str();
    let n = opts.messages;
    let pid = std::process::id();
    let client = ReqwestClient::new(Options::default())?;
    println!(
        "gitmq bench push: {n} messages {}, pushed to {url}",
        if opts.equal_timestamps {
            "written by git fast-import, all with one timestamp"
        } else {
            "written by gitmq"
        }
    );
    let (mut full_git, mut full_gitmq, mut one_git, mut one_gitmq) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut branches = Vec::new();
    let result = (|| -> Result<()> {
        for round in 0..opts.rounds {
            // Distinct messages for each side and round.
            let base = (2 * round) * (n + 1);
            let (git_branch, gitmq_branch) = (
                format!("gitmq-bench-{pid}-git-{round}"),
                format!("gitmq-bench-{pid}-gitmq-{round}"),
            );
            let git_repo = scratch.path.join(format!("git-{round}.git"));
            let gitmq_repo = scratch.path.join(format!("gitmq-{round}.git"));
            let equal = opts.equal_timestamps;
            history(&git_repo, &git_branch, base..base + n, equal)?;
            let repo = history(
                &gitmq_repo,
                &gitmq_branch,
                base + n + 1..base + 2 * n + 1,
                equal,
            )?;
            branches.push(git_branch.clone());
            branches.push(gitmq_branch.clone());
            // Each side pushes to a server holding none of the other's refs (a ref of 100k
            // equal-timestamp commits would make the other's connectivity check walk it too).
            let refspec = format!("refs/heads/{git_branch}:refs/heads/{git_branch}");
            full_git.push(timed(|| {
                git(
                    &["--git-dir", path(&git_repo)?, "push", "-q", url, &refspec],
                    None,
                )
            })?);
            // One new message on top of the pushed history (with the same timestamp).
            if equal {
                fast_import(&git_repo, &git_branch, base + n..base + n + 1, true)?;
            } else {
                Repository::open(&git_repo)?
                    .producer(&TopicName::new(&git_branch)?)
                    .publish(&workload::message(base + n))?;
            }
            one_git.push(timed(|| {
                git(
                    &["--git-dir", path(&git_repo)?, "push", "-q", url, &refspec],
                    None,
                )
            })?);
            delete_branches(url, &scratch.path, &[git_branch]);

            let topic = [TopicName::new(&gitmq_branch)?];
            let mut pusher = Pusher::new(&repo, url, &client)?;
            let options = || PushOptions {
                topics: Some(&topic),
                ..PushOptions::default()
            };
            full_gitmq.push(timed(|| Ok(pusher.push(&repo, options()).map(drop)?))?);
            let next = base + 2 * n + 1;
            if equal {
                fast_import(&gitmq_repo, &gitmq_branch, next..next + 1, true)?;
            } else {
                repo.producer(&topic[0]).publish(&workload::message(next))?;
            }
            one_gitmq.push(timed(|| Ok(pusher.push(&repo, options()).map(drop)?))?);
            delete_branches(url, &scratch.path, &[gitmq_branch]);
        }
        Ok(())
    })();
    delete_branches(url, &scratch.path, &branches);
    result?;
    println!();
    println!(
        "{:<34} {:>10} {:>10} {:>8}",
        "median seconds", "git", "gitmq", "git/gitmq"
    );
    for (label, git, gitmq) in [
        (format!("push of {n} messages"), &full_git, &full_gitmq),
        ("push of one new message".to_owned(), &one_git, &one_gitmq),
    ] {
        let (git, gitmq) = (median(git), median(gitmq));
        println!(
            "{label:<34} {git:>10.3} {gitmq:>10.3} {:>8.2}x",
            git / gitmq.max(1e-9)
        );
    }
    Ok(())
}

pub fn latency(opts: &LatencyBenchArgs) -> Result<()> {
    let scratch = Scratch::new(opts.keep)?;
    let url = opts.url.as_str();
    let pid = std::process::id();
    let client = ReqwestClient::new(Options::default())?;
    let (synced_branch, like_git_branch, git_branch) = (
        format!("gitmq-bench-{pid}-latency-gitmq-synced"),
        format!("gitmq-bench-{pid}-latency-gitmq"),
        format!("gitmq-bench-{pid}-latency-git"),
    );
    let branches = [
        synced_branch.clone(),
        like_git_branch.clone(),
        git_branch.clone(),
    ];
    let result = (|| -> Result<_> {
        let synced = gitmq_rounds(
            opts,
            &scratch.path,
            &client,
            &synced_branch,
            Durability::Batch,
        )?;
        let like_git = gitmq_rounds(
            opts,
            &scratch.path,
            &client,
            &like_git_branch,
            Durability::None,
        )?;
        let git = git_rounds(opts, &scratch.path, &git_branch)?;
        Ok((synced, like_git, git))
    })();
    delete_branches(url, &scratch.path, &branches);
    let (synced, like_git, git) = result?;
    println!(
        "gitmq bench latency: one message published -> pushed -> fetched by another repository -> consumed, {} rounds, {url}",
        opts.rounds
    );
    println!(
        "(a) gitmq fsyncing as git does by default (received packs only); (b) fsyncing everything"
    );
    println!(
        "{:<6} {:>9} {:>10} {:>8} {:>10} {:>8}",
        "ms", "git", "gitmq (a)", "(a)/git", "gitmq (b)", "(b)/git"
    );
    for (label, q) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99)] {
        let g = percentile(&git, q) * 1e3;
        let (a, b) = (percentile(&like_git, q) * 1e3, percentile(&synced, q) * 1e3);
        println!(
            "{label:<6} {g:>9.1} {a:>10.1} {:>8.2} {b:>10.1} {:>8.2}",
            a / g.max(1e-9),
            b / g.max(1e-9)
        );
    }
    Ok(())
}

/// Seconds per round of publish -> push -> fetch -> consume with gitmq, in this process.
fn gitmq_rounds(
    opts: &LatencyBenchArgs,
    scratch: &Path,
    client: &ReqwestClient,
    gitmq_branch: &str,
    durability: Durability,
) -> Result<Vec<f64>> {
    let url = opts.url.as_str();
    // gitmq: a producer repository and a consumer repository, both in this process.
    let producer_repo = Repository::init(scratch.join(format!("producer-{durability:?}.git")))?;
    let consumer_repo = Repository::init(scratch.join(format!("consumer-{durability:?}.git")))?;
    let topic = TopicName::new(gitmq_branch)?;
    let mut producer = ProducerConfig::default()
        .with_durability(durability)
        .open(&producer_repo, &topic);
    producer.publish(b"warm-up")?;
    let mut pusher = Pusher::new(&producer_repo, url, client)?;
    let only = [topic.clone()];
    let push_options = || PushOptions {
        topics: Some(&only),
        ..PushOptions::default()
    };
    pusher.push(&producer_repo, push_options())?;
    let prefix = topic.ref_name();
    let prefixes = [prefix.as_str()];
    let fetcher = Fetcher::connect(&consumer_repo, url, client)?;
    let fetch_options = || FetchOptions {
        prefixes: &prefixes,
        ..FetchOptions::default()
    };
    fetcher.fetch(&consumer_repo, fetch_options())?;
    let mut consumer = Consumer::open(
        consumer_repo.clone(),
        ConsumerName::new("bench")?,
        topic.clone(),
    )?
    .with_durability(durability);
    consumer.poll(10)?;
    consumer.commit()?;
    let mut gitmq_samples = Vec::with_capacity(opts.rounds);
    let mut phases: [Vec<f64>; 4] = Default::default();
    for round in 0..opts.rounds {
        let payload = workload::message(round);
        let start = Instant::now();
        producer.publish(&payload)?;
        let published = start.elapsed();
        pusher.push(&producer_repo, push_options())?;
        let after_push = start.elapsed();
        fetcher.fetch(&consumer_repo, fetch_options())?;
        let after_fetch = start.elapsed();
        let got = consumer.poll(10)?;
        consumer.commit()?;
        let done = start.elapsed();
        gitmq_samples.push(done.as_secs_f64());
        phases[0].push(published.as_secs_f64());
        phases[1].push(after_push.as_secs_f64() - published.as_secs_f64());
        phases[2].push(after_fetch.as_secs_f64() - after_push.as_secs_f64());
        phases[3].push(done.as_secs_f64() - after_fetch.as_secs_f64());
        if got.len() != 1 || got[0].payload != payload {
            return Err(format!("round {round}: gitmq consumed {} messages", got.len()).into());
        }
    }

    println!(
        "gitmq phases ({durability:?}), median ms: publish {:.1}, push {:.1}, fetch {:.1}, consume + commit {:.1}",
        median(&phases[0]) * 1e3,
        median(&phases[1]) * 1e3,
        median(&phases[2]) * 1e3,
        median(&phases[3]) * 1e3
    );
    Ok(gitmq_samples)
}

/// Seconds per round of `git commit`, `git push`, `git fetch`, `git log -1` (processes).
fn git_rounds(opts: &LatencyBenchArgs, scratch: &Path, git_branch: &str) -> Result<Vec<f64>> {
    let url = opts.url.as_str();
    // git: a work tree that commits and pushes, a bare repository that fetches and reads.
    let work = scratch.join("git-work");
    git(&["init", "-q", "-b", git_branch, path(&work)?], None)?;
    for (key, value) in [("user.name", "gitmq"), ("user.email", "gitmq@localhost")] {
        git(&["-C", path(&work)?, "config", key, value], None)?;
    }
    let bare = scratch.join("git-consumer.git");
    git(&["init", "-q", "--bare", path(&bare)?], None)?;
    let (work, bare) = (path(&work)?, path(&bare)?);
    let push_spec = format!("HEAD:refs/heads/{git_branch}");
    let fetch_spec = format!("+refs/heads/{git_branch}:refs/heads/{git_branch}");
    // One message through git's CLI: commit, push, fetch into the other repository, read it.
    let round_trip = |message: &str| -> Result<String> {
        git(
            &["-C", work, "commit", "-q", "--allow-empty", "-m", message],
            None,
        )?;
        git(&["-C", work, "push", "-q", url, &push_spec], None)?;
        git(&["--git-dir", bare, "fetch", "-q", url, &fetch_spec], None)?;
        let out = std::process::Command::new("git")
            .args(["--git-dir", bare, "log", "-1", "--format=%B", git_branch])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    round_trip("warm-up")?;
    let mut git_samples = Vec::with_capacity(opts.rounds);
    for round in 0..opts.rounds {
        let payload = String::from_utf8(workload::message(round))?;
        let start = Instant::now();
        let read = round_trip(&payload)?;
        git_samples.push(start.elapsed().as_secs_f64());
        if read != payload {
            return Err(format!("round {round}: git read another message").into());
        }
    }
    Ok(git_samples)
}

fn percentile(samples: &[f64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}
