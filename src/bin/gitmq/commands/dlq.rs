//! `gitmq dlq list|redrive TOPIC`: the dead letters of a topic (on `<TOPIC>.dlq`).

use std::io::{self, BufWriter, Write};

use gitmq::{Repository, TopicName};

use super::Result;
use crate::cli::{DlqCommand, Format};

pub fn run(repo: &Repository, command: &DlqCommand) -> Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    match command {
        DlqCommand::List { topic, format } => {
            for dead in gitmq::dlq::list(repo, &TopicName::new(topic)?)? {
                match format {
                    Format::Text => writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        dead.message.id,
                        dead.original_commit
                            .map_or_else(|| "-".to_owned(), |id| id.to_string()),
                        dead.original_id.as_deref().unwrap_or("-"),
                        dead.attempts
                            .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                        if dead.redriven { "redriven" } else { "pending" },
                        dead.error.as_deref().unwrap_or("-"),
                    )?,
                    Format::Json => {
                        let mut line = Vec::new();
                        crate::output::write_message(
                            &mut line,
                            &dead.message.as_message_ref(),
                            Format::Json,
                        )?;
                        let mut object: serde_json::Value = serde_json::from_slice(&line)?;
                        object["original_commit"] =
                            dead.original_commit.map(|id| id.to_string()).into();
                        object["original_id"] = dead.original_id.clone().into();
                        object["consumer"] = dead.consumer.clone().into();
                        object["attempts"] = dead.attempts.into();
                        object["error"] = dead.error.clone().into();
                        object["redriven"] = dead.redriven.into();
                        serde_json::to_writer(&mut out, &object)?;
                        out.write_all(b"\n")?;
                    }
                }
            }
        }
        DlqCommand::Redrive { topic } => {
            let redriven = gitmq::dlq::redrive(repo, &TopicName::new(topic)?)?;
            for (dead, new) in &redriven.messages {
                writeln!(out, "{dead}\t{new}")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
