//! `gitmq topics`: every topic and its head, one per line.

use std::io::{self, BufWriter, Write};

use gitmq::Repository;

use super::Result;

/// `gitmq topics`.
pub fn run(repo: &Repository) -> Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    for (topic, head) in repo.topics()? {
        writeln!(out, "{topic}\t{head}")?;
    }
    out.flush()?;
    Ok(())
}
