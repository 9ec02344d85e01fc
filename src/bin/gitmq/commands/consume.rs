//! `gitmq consume TOPIC CONSUMER`: messages after the consumer's position, printed and then
//! committed chunk by chunk (`--no-commit`: a read-only replay), `--follow` to tail, and
//! `--remote` to fetch from a remote while tailing.

use std::{
    io::{self, BufWriter, Write},
    time::{Duration, Instant},
};

use gitmq::{
    replicate::{
        fetch::Fetcher,
        http::{Options, ReqwestClient},
    },
    ConsumerName, Repository, TopicName,
};

use super::{consumers, fetch::fetch_once, Result};
use crate::{cli::ConsumeArgs, output::write_message};

/// How many messages a consume or log reads between flushes (and position commits).
const CHUNK: usize = 1000;

/// How often `consume --follow` reads the topic's head while caught up.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(5);

/// How long `consume --follow` waits before polling again anyway.
const FOLLOW_WAIT: Duration = Duration::from_secs(1);

pub fn run(repo: &Repository, args: &ConsumeArgs) -> Result<()> {
    let topic = TopicName::new(&args.topic)?;
    let name = args.consumer.as_ref().or(args.consumer_name.as_ref());
    let name = ConsumerName::new(name.expect("clap requires a consumer"))?;
    let mut consumer = consumers::open(repo, &name, &topic, &args.start, !args.no_commit)?
        .with_wait_interval(FOLLOW_INTERVAL);
    if let Some(signers) = &args.verify {
        consumer = crate::sign::verifying(consumer, signers, &args.refused)?;
    }
    let mut left = args.max.unwrap_or(usize::MAX);
    let mut remote = match &args.remote {
        Some(remote) if args.follow => Some(Follower::new(repo, remote, args.fetch_interval)?),
        _ => None,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    while left > 0 {
        let printed = consumer.poll_with(left.min(CHUNK), |message| -> Result<()> {
            Ok(write_message(&mut out, message, args.format)?)
        })?;
        crate::sign::report_refused(&mut consumer);
        if printed == 0 {
            if !args.no_commit {
                // Refused messages were dead-lettered: the position moves past them.
                consumer.commit()?;
            }
            if !args.follow {
                break;
            }
            if let Some(remote) = &mut remote {
                remote.fetch_if_due(repo)?;
            }
            consumer.wait_for_new(FOLLOW_WAIT)?;
            continue;
        }
        left -= printed;
        // Only what reached stdout counts as processed.
        out.flush()?;
        if !args.no_commit {
            consumer.commit()?;
        }
    }
    Ok(())
}

/// `consume --follow --remote`: fetches at most every interval, reconnecting after errors
/// (which are printed, not fatal: the consumer keeps reading what is local).
pub struct Follower {
    client: ReqwestClient,
    remote: String,
    fetcher: Option<Fetcher<ReqwestClient>>,
    interval: Duration,
    next: Instant,
}

impl Follower {
    /// Follow `remote`, fetching at most every `interval`.
    pub fn new(repo: &Repository, remote: &str, interval: Duration) -> Result<Self> {
        // Clones share one connection pool.
        let client = ReqwestClient::new(Options::default())?;
        let fetcher = Some(Fetcher::connect(repo, remote, client.clone())?);
        Ok(Self {
            client,
            remote: remote.to_owned(),
            fetcher,
            interval,
            next: Instant::now(),
        })
    }

    /// Fetch if the interval passed.
    pub fn fetch_if_due(&mut self, repo: &Repository) -> Result<()> {
        if Instant::now() < self.next {
            return Ok(());
        }
        self.next = Instant::now() + self.interval;
        if self.fetcher.is_none() {
            self.fetcher = Fetcher::connect(repo, &self.remote, self.client.clone())
                .map_err(|err| eprintln!("gitmq: connecting to {} failed: {err}", self.remote))
                .ok();
        }
        if let Some(fetcher) = &self.fetcher {
            if let Err(err) = fetch_once(repo, fetcher) {
                if matches!(err.http_status(), Some(401 | 403)) {
                    return Err(err.into());
                }
                eprintln!(
                    "gitmq: fetch from {} failed (trying again): {err}",
                    self.remote
                );
                self.fetcher = None;
            }
        }
        Ok(())
    }
}
