//! Runs one parsed command against the library; data to stdout, nothing else printed.

use std::{
    error::Error,
    io::{self, BufRead, BufWriter, Write},
    os::unix::ffi::OsStrExt,
    path::Path,
};

use gitmq::{ConsumerName, Identity, Repository, TopicName};

use crate::{
    cli::{Cli, Command, ConsumeArgs, Format, PublishArgs},
    output::write_message,
};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// How many messages a consume or log reads between flushes (and position commits).
const CHUNK: usize = 1000;

pub fn run(cli: Cli) -> Result<()> {
    let repo = cli.repo;
    match cli.command {
        Command::Init { path } => {
            let repo = Repository::init(&path)?;
            println!("{}", repo.git_dir().display());
            Ok(())
        }
        Command::Demo { keep } => crate::demo::run(keep.as_deref()),
        Command::Publish(args) => publish(&open(repo.as_deref())?, &args),
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
        Command::Consumers => consumers(&open(repo.as_deref())?),
    }
}

fn publish(repo: &Repository, args: &PublishArgs) -> Result<()> {
    let topic = TopicName::new(&args.topic)?;
    let default = Identity::from_env();
    let identity = Identity::new(
        args.author.as_deref().unwrap_or(default.name()),
        args.email.as_deref().unwrap_or(default.email()),
    )?;
    let mut producer = repo
        .producer(&topic)
        .with_identity(identity)
        .with_durability(args.durability.into());
    let mut out = io::stdout().lock();
    let mut print = |ids: &[gitmq::ObjectId]| -> Result<()> {
        for id in ids {
            writeln!(out, "{id}")?;
        }
        out.flush()?;
        Ok(())
    };
    if args.messages.is_empty() {
        let separator = if args.null { b'\0' } else { b'\n' };
        let batch = usize::try_from(args.batch)?;
        publish_stdin(separator, batch, |records| {
            let ids = producer.publish_batch(records)?;
            print(&ids)
        })
    } else {
        let ids = producer.publish_batch(args.messages.iter().map(|m| m.as_bytes()))?;
        print(&ids)
    }
}

fn consume(repo: &Repository, args: &ConsumeArgs) -> Result<()> {
    let topic = TopicName::new(&args.topic)?;
    let name = ConsumerName::new(&args.consumer)?;
    let mut consumer = repo.consumer(&name, &topic)?;
    let mut left = args.max.unwrap_or(usize::MAX);
    let mut out = BufWriter::new(io::stdout().lock());
    while left > 0 {
        let messages = consumer.poll(left.min(CHUNK))?;
        if messages.is_empty() {
            break;
        }
        left -= messages.len();
        for message in &messages {
            write_message(&mut out, message, args.format)?;
        }
        // Only what reached stdout counts as processed.
        out.flush()?;
        if !args.no_commit {
            consumer.commit()?;
        }
    }
    Ok(())
}

fn consumers(repo: &Repository) -> Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    let mut buf = Vec::new();
    for (consumer, topic, position) in repo.positions()? {
        let lag = match gitmq::consume::lag(repo, &topic, Some(position), &mut buf) {
            Ok(lag) => lag.to_string(),
            Err(err) => format!("? ({err})"),
        };
        writeln!(out, "{consumer}\t{topic}\t{position}\t{lag}")?;
    }
    out.flush()?;
    Ok(())
}

fn open(repo: Option<&Path>) -> Result<Repository> {
    Ok(match repo {
        Some(path) => Repository::open(path)?,
        None => Repository::discover(".")?,
    })
}

/// Split stdin into records at `separator` and hand them to `publish` in batches of at most
/// `batch`; a batch also ends whenever stdin has nothing more buffered, so interactive input
/// is published as it arrives rather than when a batch fills.
fn publish_stdin(
    separator: u8,
    batch: usize,
    mut publish: impl FnMut(&[Vec<u8>]) -> Result<()>,
) -> Result<()> {
    let stdin = io::stdin();
    let mut reader = io::BufReader::with_capacity(1 << 16, stdin.lock());
    let mut records: Vec<Vec<u8>> = Vec::with_capacity(batch.min(CHUNK));
    loop {
        let mut record = Vec::new();
        let n = reader.read_until(separator, &mut record)?;
        if n == 0 {
            break;
        }
        if record.last() == Some(&separator) {
            record.pop();
        }
        records.push(record);
        if records.len() >= batch || reader.buffer().is_empty() {
            publish(&records)?;
            records.clear();
        }
    }
    if !records.is_empty() {
        publish(&records)?;
    }
    Ok(())
}

pub fn print_log(repo: &Repository, topic: &TopicName, format: Format) -> Result<()> {
    let Some(head) = repo.head(topic)? else {
        return Ok(());
    };
    let mut buf = Vec::new();
    let ids = gitmq::walk::ids_after(repo.odb(), head, None, &mut buf)?;
    let mut out = BufWriter::new(io::stdout().lock());
    for id in ids {
        let message = gitmq::walk::read_message(repo.odb(), id, &mut buf)?;
        write_message(&mut out, &message, format)?;
    }
    out.flush()?;
    Ok(())
}
