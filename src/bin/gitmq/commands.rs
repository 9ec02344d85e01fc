//! Runs one parsed command against the library; data to stdout, nothing else printed.

use std::{
    error::Error,
    io::{self, BufWriter, Write},
    path::Path,
    time::Duration,
};

use gitmq::{ConsumerName, Repository, TopicName};

use crate::{
    cli::{BenchCommand, Cli, Command, ConsumeArgs, Format, RemoteCommand},
    output::write_message,
};

pub type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// How many messages a consume or log reads between flushes (and position commits).
const CHUNK: usize = 1000;
/// How often `consume --follow` reads the topic's head while caught up.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(5);
/// How long `consume --follow` waits before polling again anyway.
const FOLLOW_WAIT: Duration = Duration::from_secs(1);

pub fn run(cli: Cli) -> Result<()> {
    let repo = cli.repo;
    match cli.command {
        Command::Init { path } => {
            let repo = Repository::init(&path)?;
            println!("{}", repo.git_dir().display());
            Ok(())
        }
        Command::Demo { keep } => crate::demo::run(keep.as_deref()),
        Command::Bench(BenchCommand::Append(args)) => crate::bench::append(&args),
        Command::Bench(BenchCommand::Fetch(args)) => crate::bench::fetch(&args),
        Command::Bench(BenchCommand::Push(args)) => crate::bench::push(&args),
        Command::Bench(BenchCommand::Latency(args)) => crate::bench::latency(&args),
        Command::Bench(BenchCommand::Consume(options)) => crate::bench::consume::run(&options),
        Command::Publish(args) => crate::publish::run(&open(repo.as_deref())?, &args),
        Command::Consume(args) => consume(&open(repo.as_deref())?, &args),
        Command::Log { topic, format } => {
            print_log(&open(repo.as_deref())?, &TopicName::new(&topic)?, format)
        }
        Command::Topics => {
            let repo = open(repo.as_deref())?;
            let mut out = BufWriter::new(io::stdout().lock());
            for (topic, head) in repo.topics()? {
                writeln!(out, "{topic}\t{head}")?;
            }
            out.flush()?;
            Ok(())
        }
        Command::Consumers(args) => crate::consumers::run(&open(repo.as_deref())?, &args),
        Command::Join(args) => crate::topology::join(&open(repo.as_deref())?, &args),
        Command::Split(args) => crate::topology::split(&open(repo.as_deref())?, &args),
        Command::Dlq(command) => crate::dlq::run(&open(repo.as_deref())?, &command),
        Command::Fetch { remote, timeouts } => {
            crate::remote::fetch(&open(repo.as_deref())?, &remote, &timeouts)
        }
        Command::Push {
            remote,
            topics,
            timeouts,
        } => crate::remote::push(&open(repo.as_deref())?, &remote, &topics, &timeouts),
        Command::Sync {
            remote,
            interval,
            linger,
            topics,
            rounds,
            retention_interval,
            timeouts,
        } => crate::remote::sync(
            &open(repo.as_deref())?,
            &crate::remote::SyncArgs {
                remote: &remote,
                interval,
                linger,
                topics: &topics,
                rounds,
                retention_interval: Some(retention_interval).filter(|d| !d.is_zero()),
                timeouts,
            },
        ),
        Command::Remote(RemoteCommand::Add { name, url }) => {
            crate::remote::remote_add(&open(repo.as_deref())?, &name, &url)
        }
        Command::Prune(args) => crate::prune::run(&open(repo.as_deref())?, &args),
        Command::Unlock { older_than } => {
            let repo = open(repo.as_deref())?;
            let age = std::time::Duration::from_secs(older_than);
            for removed in gitmq::git::refs::remove_stale_locks(repo.refs(), age)? {
                println!("removed {}", removed.display());
            }
            Ok(())
        }
        Command::Consolidate {
            min_packs,
            max_objects,
        } => {
            let repo = open(repo.as_deref())?;
            let policy = gitmq::git::odb::pack::consolidate::Policy {
                min_packs,
                max_objects,
            };
            let report =
                gitmq::git::odb::pack::consolidate::consolidate(repo.git_dir(), policy, true)?;
            println!(
                "merged {} packs into new packs holding {} objects ({} bytes)",
                report.merged_packs, report.objects, report.bytes
            );
            if report.skipped_with_deltas > 0 {
                println!(
                    "left {} packs with deltas (written by git) alone",
                    report.skipped_with_deltas
                );
            }
            Ok(())
        }
    }
}

fn consume(repo: &Repository, args: &ConsumeArgs) -> Result<()> {
    let topic = TopicName::new(&args.topic)?;
    let name = args.consumer.as_ref().or(args.consumer_name.as_ref());
    let name = ConsumerName::new(name.expect("clap requires a consumer"))?;
    let mut consumer = crate::consumers::open(repo, &name, &topic, &args.start, !args.no_commit)?
        .with_wait_interval(FOLLOW_INTERVAL);
    let mut left = args.max.unwrap_or(usize::MAX);
    let mut remote = match &args.remote {
        Some(remote) if args.follow => Some(crate::remote::Follower::new(
            repo,
            remote,
            args.fetch_interval,
        )?),
        _ => None,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    while left > 0 {
        let printed = consumer.poll_with(left.min(CHUNK), |message| -> Result<()> {
            Ok(write_message(&mut out, message, args.format)?)
        })?;
        if printed == 0 {
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

fn open(repo: Option<&Path>) -> Result<Repository> {
    Ok(match repo {
        Some(path) => Repository::open(path)?,
        None => Repository::discover(".")?,
    })
}

pub fn print_log(repo: &Repository, topic: &TopicName, format: Format) -> Result<()> {
    let Some(head) = repo.head(topic)? else {
        return Ok(());
    };
    let mut buf = Vec::new();
    let mut odb = repo.odb();
    let segment_len = gitmq::consume::DEFAULT_SEGMENT_LEN;
    let mut backlog = gitmq::consume::Backlog::plan(&mut odb, head, None, segment_len, &mut buf)?;
    let mut out = BufWriter::new(io::stdout().lock());
    while let Some(written) =
        backlog.next_message_with(&mut odb, &mut buf, |m| write_message(&mut out, m, format))?
    {
        written?;
    }
    out.flush()?;
    Ok(())
}
