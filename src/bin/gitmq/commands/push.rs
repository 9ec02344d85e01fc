//! `gitmq push [REMOTE] [--topic T]...`: topics and positions onto a remote, printing every ref
//! that moved, one per line (`<what>\t<ref>\t<ids>`).

use std::io::{self, BufWriter, Write};

use gitmq::{
    replicate::{
        self,
        http::{Options, ReqwestClient},
        push::{PushOptions, PushReport, Pusher},
    },
    Repository, TopicName,
};

use super::Result;
use crate::{cli::PushArgs, output::progress_sink};

pub fn topics(names: &[String]) -> Result<Option<Vec<TopicName>>> {
    if names.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        names
            .iter()
            .map(|n| TopicName::new(n))
            .collect::<std::result::Result<_, _>>()?,
    ))
}

/// `gitmq push [REMOTE] [--topic T]...`
pub fn run(repo: &Repository, args: &PushArgs) -> Result<()> {
    let client = ReqwestClient::new(Options::default())?;
    let mut pusher = Pusher::new(repo, &args.remote, &client)?;
    let only = topics(&args.topics)?;
    let report = push_once(repo, &mut pusher, only.as_deref())?;
    let mut out = BufWriter::new(io::stdout().lock());
    print_push(&mut out, &report)?;
    out.flush()?;
    Ok(())
}

fn push_once(
    repo: &Repository,
    pusher: &mut Pusher<&ReqwestClient>,
    only: Option<&[TopicName]>,
) -> std::result::Result<PushReport, replicate::Error> {
    let mut sink = progress_sink();
    let options = PushOptions {
        topics: only,
        progress: sink.as_mut().map(|s| s as &mut dyn FnMut(&[u8])),
        ..PushOptions::default()
    };
    pusher.push(repo, options)
}

pub fn print_push(out: &mut impl Write, report: &PushReport) -> io::Result<()> {
    for rebuilt in &report.rebuilt {
        writeln!(
            out,
            "rebuilt\t{}\t{} messages onto {} (another producer pushed first)",
            rebuilt.topic.ref_name(),
            rebuilt.copies.len(),
            rebuilt.onto
        )?;
        for copy in &rebuilt.copies {
            writeln!(out, "renamed\t{}\t{}", copy.old, copy.new)?;
        }
        for position in &rebuilt.positions_moved {
            writeln!(
                out,
                "rewound\t{position}\tto the fork (messages redelivered)"
            )?;
        }
    }
    for update in &report.updates {
        match update.old {
            Some(old) => writeln!(out, "pushed\t{}\t{old}..{}", update.name, update.new)?,
            None => writeln!(out, "created\t{}\t{}", update.name, update.new)?,
        }
    }
    for skipped in &report.skipped {
        writeln!(out, "skipped\t{}\t{}", skipped.name, skipped.reason)?;
    }
    Ok(())
}
