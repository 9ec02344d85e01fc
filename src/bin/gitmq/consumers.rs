//! `gitmq consumers [list|reset|delete]` and the start flags of `gitmq consume`
//! (`--from-beginning`, `--latest`, `--from ID`, `--since TIME`).

use std::io::{self, BufWriter, Write};

use clap::{Args, Subcommand, ValueEnum};
use gitmq::{
    position::{self, StartAt},
    Consumer, ConsumerName, Repository, TopicName,
};

use crate::commands::Result;

/// How `gitmq consumers` prints its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// consumer, topic, position, head, lag; tab-separated (`-` for no head, `?` for an
    /// unknown lag).
    Text,
    /// One JSON object per line: consumer, topic, position, head, lag (null when unknown).
    Json,
}

/// `gitmq consumers` arguments.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConsumersArgs {
    /// What to do (default: list).
    #[command(subcommand)]
    pub action: Option<ConsumersCommand>,
    /// Output format of the list.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

/// `gitmq consumers` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConsumersCommand {
    /// List every consumer position: consumer, topic, position, topic head, lag ("?" if the
    /// position is not on the topic's history).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Move CONSUMER's position on TOPIC so that it next reads from --to, by compare-and-swap
    /// (fails if the consumer commits meanwhile; a running consumer fails its next commit).
    /// Prints the old and the new position.
    Reset {
        /// The consumer.
        consumer: String,
        /// The topic.
        topic: String,
        /// `beginning`, `latest`, a message id (full or a unique prefix; it is read next) or
        /// a time (RFC 3339, @unix, 30s/15m/2h/1d/1w ago, "2 hours ago").
        #[arg(long, value_name = "beginning|latest|ID|TIME")]
        to: String,
    },
    /// Remove CONSUMER's position on TOPIC, or on every topic (compare-and-swap; packed refs
    /// too). Prints each removed position.
    Delete {
        /// The consumer.
        consumer: String,
        /// Only this topic.
        topic: Option<String>,
    },
}

/// Where `gitmq consume` starts; without any, at the consumer's committed position.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// One start point at most.
    #[command(flatten)]
    pub point: StartPoint,
    /// Apply the start flag only if the consumer has no committed position yet (like
    /// Kafka's auto.offset.reset); otherwise resume from the position.
    #[arg(long, requires = "start")]
    pub if_new: bool,
}

/// The start flags (at most one).
#[derive(Debug, Args)]
#[group(id = "start", multiple = false)]
pub struct StartPoint {
    /// Read from the topic's first message.
    #[arg(long)]
    pub from_beginning: bool,
    /// Read only messages published after the topic's current head.
    #[arg(long)]
    pub latest: bool,
    /// Read from this message (full id or unique prefix; it is printed first).
    #[arg(long, value_name = "ID")]
    pub from: Option<String>,
    /// Read from the first message, scanning from the oldest, whose author date is at or
    /// after TIME (RFC 3339, @unix, 30s/15m/2h/1d/1w ago, "2 hours ago").
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
}

pub fn run(repo: &Repository, args: &ConsumersArgs) -> Result<()> {
    match &args.action {
        None => list(repo, args.format),
        Some(ConsumersCommand::List { format }) => list(repo, *format),
        Some(ConsumersCommand::Reset {
            consumer,
            topic,
            to,
        }) => {
            let consumer = ConsumerName::new(consumer)?;
            let topic = TopicName::new(topic)?;
            let to = parse_target(repo, &topic, to)?;
            let reset = position::reset(repo, &consumer, &topic, &to)?;
            println!("{}\t{}", show(reset.old), show(reset.new));
            Ok(())
        }
        Some(ConsumersCommand::Delete { consumer, topic }) => {
            let consumer = ConsumerName::new(consumer)?;
            let topic = topic.as_deref().map(TopicName::new).transpose()?;
            let mut out = BufWriter::new(io::stdout().lock());
            for (topic, id) in position::delete(repo, &consumer, topic.as_ref())? {
                writeln!(out, "deleted\t{consumer}\t{topic}\t{id}")?;
            }
            out.flush()?;
            Ok(())
        }
    }
}

fn list(repo: &Repository, format: ListFormat) -> Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    for status in position::status(repo)? {
        match format {
            ListFormat::Text => writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                status.consumer,
                status.topic,
                status.position,
                show(status.head),
                status.lag.map_or_else(|| "?".to_owned(), |l| l.to_string())
            )?,
            ListFormat::Json => {
                let object = serde_json::json!({
                    "consumer": status.consumer.as_str(),
                    "topic": status.topic.as_str(),
                    "position": status.position.to_string(),
                    "head": status.head.map(|h| h.to_string()),
                    "lag": status.lag,
                });
                serde_json::to_writer(&mut out, &object)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// `-` for no id.
fn show(id: Option<gitmq::ObjectId>) -> String {
    id.map_or_else(|| "-".to_owned(), |id| id.to_string())
}

/// `beginning`, `latest`, an id on the topic, or a time.
fn parse_target(repo: &Repository, topic: &TopicName, to: &str) -> Result<StartAt> {
    Ok(match to {
        "beginning" | "earliest" => StartAt::Beginning,
        "latest" | "end" => StartAt::Latest,
        _ if to.len() >= position::MIN_ID_PREFIX && to.bytes().all(|b| b.is_ascii_hexdigit()) => {
            match position::find_on_topic(repo, topic, to) {
                Ok(id) => StartAt::At(id),
                // Not a message: maybe a time (git takes bare Unix seconds too).
                Err(err) => StartAt::Since(position::parse_time(to, unix_now()).map_err(|_| err)?),
            }
        }
        _ => StartAt::Since(position::parse_time(to, unix_now())?),
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The consumer `gitmq consume` reads with: at its position, or where `start` says; with
/// `commit`, a start point is committed at once (a reset), so it holds even if nothing is
/// printed.
pub fn open(
    repo: &Repository,
    name: &ConsumerName,
    topic: &TopicName,
    start: &StartArgs,
    commit: bool,
) -> Result<Consumer> {
    let point = &start.point;
    let at = if point.from_beginning {
        Some(StartAt::Beginning)
    } else if point.latest {
        Some(StartAt::Latest)
    } else if let Some(id) = &point.from {
        Some(StartAt::At(position::find_on_topic(repo, topic, id)?))
    } else if let Some(time) = &point.since {
        Some(StartAt::Since(position::parse_time(time, unix_now())?))
    } else {
        None
    };
    let mut consumer = repo.consumer(name, topic)?;
    if let Some(at) = at {
        if !(start.if_new && consumer.position().is_some()) {
            consumer.seek(&at)?;
            if commit {
                consumer.commit()?;
            }
        }
    }
    Ok(consumer)
}
