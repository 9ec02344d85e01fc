//! `gitmq bench fetch --thin M`: an incremental fetch of M new messages onto the history, by
//! `git fetch`, by gitmq asking for a thin pack (completed locally) and by gitmq asking for a
//! self-contained one, from the same server in the same run. Phases: three replicas fetch the
//! whole history; then per round the producer publishes M messages and pushes them with git,
//! and each replica fetches them (the order rotates per round), timed, counting the bytes of
//! every HTTP response body (gitmq: a counting client; git: the "Recv data" lines of
//! `GIT_TRACE_CURL`, from a second git replica fetching the same, untimed, since tracing the
//! data costs time). With `--server-git-dir`, the rounds run twice: as pushed, and with the server
//! repacked by `git repack -adb` after each push (deltas and bitmaps, as `git gc` leaves a
//! server), which is when a thin pack can reuse deltas against what the client has.

use std::{
    io::Read,
    path::Path,
    process::Command,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use gitmq::{
    replicate::{
        self as transport,
        http::{Options, ReqwestClient},
        FetchOptions, HttpClient, Request, Response,
    },
    Repository, TopicName,
};

use super::{
    fetch::median,
    git::{git, path},
    workload,
};
use crate::{cli::ServerBenchArgs, commands::Result};

/// Counts the bytes of every response body it hands on.
struct Counting {
    inner: ReqwestClient,
    bytes: Arc<AtomicU64>,
}

struct CountingBody {
    inner: Box<dyn Read + Send>,
    bytes: Arc<AtomicU64>,
}

impl Read for CountingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl HttpClient for Counting {
    fn send(&self, request: Request<'_>) -> std::result::Result<Response, transport::HttpError> {
        let response = self.inner.send(request)?;
        Ok(Response {
            content_type: response.content_type,
            body: Box::new(CountingBody {
                inner: response.body,
                bytes: Arc::clone(&self.bytes),
            }),
        })
    }
}

/// One contender's samples: seconds and bytes received per round.
#[derive(Default)]
struct Samples {
    seconds: Vec<f64>,
    bytes: Vec<f64>,
    local_bases: Vec<f64>,
}

/// The incremental-fetch comparison; the history of `opts.messages` is on the server.
pub fn compare(
    opts: &ServerBenchArgs,
    new: usize,
    scratch: &Path,
    producer: &Path,
    branch: &str,
    refspec: &str,
) -> Result<()> {
    let url = opts.url.as_str();
    let prefix = format!("refs/heads/{branch}");
    let prefixes = [prefix.as_str()];
    let bytes = Arc::new(AtomicU64::new(0));
    let git_repo = scratch.join("git-thin.git");
    let git_traced = scratch.join("git-traced.git");
    for repo in [&git_repo, &git_traced] {
        git(&["init", "-q", "--bare", path(repo)?], None)?;
        git(
            &["--git-dir", path(repo)?, "fetch", "-q", url, refspec],
            None,
        )?;
    }
    let thin = Repository::init(scratch.join("gitmq-thin.git"))?;
    let whole = Repository::init(scratch.join("gitmq-whole.git"))?;
    for repo in [&thin, &whole] {
        gitmq_fetch(repo, url, &bytes, &prefixes, true)?;
    }
    eprintln!("replicas hold the {} messages", opts.messages);
    let replicas = Replicas {
        git: &git_repo,
        git_traced: &git_traced,
        thin: &thin,
        whole: &whole,
        bytes: &bytes,
        url,
        refspec,
        prefixes: &prefixes,
        scratch,
    };

    let mut modes = vec![("as pushed", None)];
    if let Some(server) = &opts.server_git_dir {
        modes.push(("server repacked (repack -adb)", Some(server.as_path())));
    }
    let mut next = opts.messages;
    let topic = TopicName::new(branch)?;
    println!();
    println!(
        "incremental fetch of {new} new messages onto {}+ (median of {} rounds)",
        opts.messages, opts.rounds
    );
    println!(
        "{:<30} {:>8} {:>8} {:>8} {:>11} {:>11} {:>11} {:>6}",
        "server state",
        "git s",
        "thin s",
        "whole s",
        "git bytes",
        "thin bytes",
        "whole bytes",
        "bases"
    );
    for (label, server) in modes {
        let (mut git_s, mut thin_s, mut whole_s) =
            (Samples::default(), Samples::default(), Samples::default());
        for round in 0..opts.rounds {
            let message = if opts.similar_payloads {
                workload::similar_message
            } else {
                workload::message
            };
            let payloads: Vec<Vec<u8>> = (next..next + new).map(message).collect();
            next += new;
            Repository::open(producer)?
                .producer(&topic)
                .publish_batch(payloads.iter().map(Vec::as_slice))?;
            git(
                &["--git-dir", path(producer)?, "push", "-q", url, refspec],
                None,
            )?;
            if let Some(server) = server {
                git(&["--git-dir", path(server)?, "repack", "-adb", "-q"], None)?;
            }
            replicas.fetch_all(round, [&mut git_s, &mut thin_s, &mut whole_s])?;
        }
        println!(
            "{label:<30} {:>8.3} {:>8.3} {:>8.3} {:>11.0} {:>11.0} {:>11.0} {:>6.0}",
            median(&git_s.seconds),
            median(&thin_s.seconds),
            median(&whole_s.seconds),
            median(&git_s.bytes),
            median(&thin_s.bytes),
            median(&whole_s.bytes),
            median(&thin_s.local_bases),
        );
    }
    println!("bases: objects gitmq appended from its own repository to complete the thin pack");

    let expected = next;
    for repo in [&thin, &whole] {
        let head = repo.head(&topic)?.ok_or("gitmq fetched nothing")?;
        let count =
            gitmq::git::walk::ids_after(&mut repo.odb(), head, None, &mut Vec::new())?.len();
        if count != expected {
            return Err(format!("gitmq has {count} messages, expected {expected}").into());
        }
    }
    Ok(())
}

/// The three replicas that fetch each round's messages.
struct Replicas<'a> {
    git: &'a Path,
    git_traced: &'a Path,
    thin: &'a Repository,
    whole: &'a Repository,
    /// Bytes of response bodies gitmq received.
    bytes: &'a Arc<AtomicU64>,
    url: &'a str,
    refspec: &'a str,
    prefixes: &'a [&'a str],
    scratch: &'a Path,
}

impl Replicas<'_> {
    /// Fetch with git, gitmq thin and gitmq whole (the order rotates with `round`), adding
    /// to their samples (in that order).
    fn fetch_all(&self, round: usize, samples: [&mut Samples; 3]) -> Result<()> {
        let [git_s, thin_s, whole_s] = samples;
        for turn in 0..3 {
            match (turn + round) % 3 {
                0 => {
                    git_s
                        .seconds
                        .push(git_fetch(self.git, self.url, self.refspec, None)?);
                    let trace = self.scratch.join("git-curl-trace");
                    git_fetch(self.git_traced, self.url, self.refspec, Some(&trace))?;
                    git_s.bytes.push(received_bytes(&trace)? as f64);
                }
                contender => {
                    let (repo, samples, thin_pack) = if contender == 1 {
                        (self.thin, &mut *thin_s, true)
                    } else {
                        (self.whole, &mut *whole_s, false)
                    };
                    self.bytes.store(0, Ordering::Relaxed);
                    let start = Instant::now();
                    let report = gitmq_fetch(repo, self.url, self.bytes, self.prefixes, thin_pack)?;
                    samples.seconds.push(start.elapsed().as_secs_f64());
                    samples
                        .bytes
                        .push(self.bytes.load(Ordering::Relaxed) as f64);
                    let bases = report.pack.map_or(0, |p| p.local_bases);
                    samples.local_bases.push(f64::from(bases));
                }
            }
        }
        Ok(())
    }
}

fn gitmq_fetch(
    repo: &Repository,
    url: &str,
    bytes: &Arc<AtomicU64>,
    prefixes: &[&str],
    thin_pack: bool,
) -> Result<transport::FetchReport> {
    let options = FetchOptions {
        prefixes,
        thin_pack,
        ..FetchOptions::default()
    };
    // A new client (and connection) per fetch, as `transport::fetch` and a `git fetch` process
    // have: a kept-alive connection may have been closed by the server meanwhile.
    let client = Counting {
        inner: ReqwestClient::new(Options::default())?,
        bytes: Arc::clone(bytes),
    };
    Ok(transport::fetch_with(repo, url, &client, options)?)
}

/// `git fetch` into `repo`, tracing its HTTP traffic into `trace` if given; seconds.
fn git_fetch(repo: &Path, url: &str, refspec: &str, trace: Option<&Path>) -> Result<f64> {
    let mut command = Command::new("git");
    command
        .args(["--git-dir", path(repo)?, "fetch", "-q", url, refspec])
        .env("GIT_CONFIG_NOSYSTEM", "1");
    if let Some(trace) = trace {
        command.env("GIT_TRACE_CURL", trace);
    }
    let start = Instant::now();
    let out = command.output()?;
    let seconds = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("git fetch failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(seconds)
}

/// The bytes of response bodies in a `GIT_TRACE_CURL` file ("<= Recv data, N bytes"), which
/// is removed.
fn received_bytes(trace: &Path) -> Result<u64> {
    let text = String::from_utf8_lossy(&std::fs::read(trace)?).into_owned();
    std::fs::remove_file(trace)?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once("<= Recv data, "))
        .filter_map(|(_, rest)| rest.split(' ').next()?.parse::<u64>().ok())
        .sum())
}
