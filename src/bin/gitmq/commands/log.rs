//! `gitmq log TOPIC`: the whole topic, oldest first; no position moves.

use std::io::{self, BufWriter, Write};

use gitmq::{Repository, TopicName};

use super::Result;
use crate::{
    cli::{Format, LogArgs},
    output::write_message,
};

/// `gitmq log`.
pub fn run(repo: &Repository, args: &LogArgs) -> Result<()> {
    let topic = TopicName::new(&args.topic)?;
    match &args.verify {
        Some(signers) => crate::sign::print_verified_log(repo, &topic, signers, args.format),
        None => print_log(repo, &topic, args.format),
    }
}

pub fn print_log(repo: &Repository, topic: &TopicName, format: Format) -> Result<()> {
    // A reader that never commits: no position moves.
    let name = gitmq::ConsumerName::new("gitmq-log")?;
    let start = gitmq::position::StartAt::Beginning;
    let mut reader = gitmq::Consumer::open_at(repo.clone(), name, topic.clone(), &start)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut write =
        |m: &gitmq::MessageRef<'_>| -> Result<()> { Ok(write_message(&mut out, m, format)?) };
    while reader.poll_with(usize::MAX, &mut write)? > 0 {}
    out.flush()?;
    Ok(())
}
