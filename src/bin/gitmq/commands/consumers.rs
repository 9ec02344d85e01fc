//! `gitmq consumers [list|reset|delete]` and the start flags of `gitmq consume`
//! (`--from-beginning`, `--latest`, `--from ID`, `--since TIME`).

use std::io::{self, BufWriter, Write};

use gitmq::{
    position::{self, StartAt},
    Consumer, ConsumerName, Repository, TopicName,
};

use super::Result;
use crate::cli::{ConsumersArgs, ConsumersCommand, ListFormat, StartArgs};

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
