//! `gitmq join SRC... --into DST`: copy what is new in the sources onto DST, exactly once.

use std::io::{self, BufWriter, Write};

use gitmq::{topology, Repository, TopicName};

use super::Result;
use crate::cli::JoinArgs;

pub fn run(repo: &Repository, args: &JoinArgs) -> Result<()> {
    let sources = args
        .sources
        .iter()
        .map(|s| TopicName::new(s))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let into = TopicName::new(&args.into)?;
    let joined = topology::join_in_rounds(
        repo,
        &sources,
        &into,
        true,
        usize::try_from(args.round).unwrap_or(usize::MAX),
    )?;
    let mut out = BufWriter::new(io::stdout().lock());
    for (source, count) in &joined.copied {
        writeln!(out, "joined\t{source}\t{count}")?;
    }
    let head = joined
        .head
        .map_or_else(|| "-".to_owned(), |h| h.to_string());
    writeln!(out, "head\t{into}\t{head}")?;
    out.flush()?;
    Ok(())
}
