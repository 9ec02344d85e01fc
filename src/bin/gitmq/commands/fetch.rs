//! `gitmq fetch [REMOTE]`: a remote's topics and positions, printing every ref that moved.

use std::io::{self, BufWriter, Write};

use gitmq::{
    replicate::{
        self,
        fetch::{Fetcher, DEFAULT_PREFIXES},
        http::{Options, ReqwestClient},
        FetchOptions, FetchReport, UpdateKind,
    },
    Repository,
};

use super::Result;
use crate::{cli::FetchArgs, output::progress_sink};

/// `gitmq fetch [REMOTE]`
pub fn run(repo: &Repository, args: &FetchArgs) -> Result<()> {
    let client = ReqwestClient::new(Options::default())?;
    let fetcher = Fetcher::connect(repo, &args.remote, &client)?;
    let report = fetch_once(repo, &fetcher)?;
    let mut out = BufWriter::new(io::stdout().lock());
    print_fetch(&mut out, &report)?;
    out.flush()?;
    Ok(())
}

pub fn fetch_once<C: replicate::HttpClient>(
    repo: &Repository,
    fetcher: &Fetcher<C>,
) -> std::result::Result<FetchReport, replicate::Error> {
    let mut sink = progress_sink();
    let options = FetchOptions {
        prefixes: &DEFAULT_PREFIXES,
        progress: sink.as_mut().map(|s| s as &mut dyn FnMut(&[u8])),
        ..FetchOptions::default()
    };
    fetcher.fetch(repo, options)
}

pub fn print_fetch(out: &mut impl Write, report: &FetchReport) -> io::Result<()> {
    if let Some(pack) = &report.pack {
        writeln!(
            out,
            "received\t{} objects\t{} bytes",
            pack.objects, pack.bytes
        )?;
    }
    for update in &report.updates {
        let old = update.old.map(|id| id.to_string()).unwrap_or_default();
        match update.kind {
            UpdateKind::Created => writeln!(out, "created\t{}\t{}", update.name, update.new)?,
            UpdateKind::Updated => {
                writeln!(out, "updated\t{}\t{old}..{}", update.name, update.new)?;
            }
            UpdateKind::FastForward => {
                writeln!(out, "fast-forward\t{}\t{old}..{}", update.name, update.new)?;
            }
            UpdateKind::Diverged => writeln!(
                out,
                "diverged\t{}\tlocal {old}, remote {} (left alone; `gitmq push` rebuilds it)",
                update.name, update.new
            )?,
        }
    }
    Ok(())
}
