//! `gitmq sync [REMOTE] --interval 10s [--linger 200ms]`: the library's sync loop
//! (`gitmq::replicate::sync`) until Ctrl-C or SIGTERM (which finish the round in progress),
//! printing what each round moved; a failed round is printed on stderr and the next one tries
//! again; refused credentials stop it.

use std::{
    io::{self, Write},
    sync::{atomic::AtomicBool, Arc},
};

use gitmq::{
    replicate::{
        http::{Options, ReqwestClient},
        sync::{sync, SyncEvent, SyncOptions},
    },
    Repository,
};

use super::{fetch::print_fetch, push::print_push, push::topics, Result};
use crate::{cli::SyncArgs, output::progress_sink};

/// `gitmq sync`.
pub fn run(repo: &Repository, args: &SyncArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let client = ReqwestClient::new(Options::default())?;
    let only = topics(&args.topics)?;
    let options = SyncOptions {
        interval: args.interval,
        linger: args.linger,
        topics: only.as_deref(),
        rounds: args.rounds,
        retention_interval: Some(args.retention_interval).filter(|d| !d.is_zero()),
    };
    let mut out = io::stdout();
    let mut written = Ok(());
    let mut sink = progress_sink();
    let progress = sink.as_mut().map(|s| s as &mut dyn FnMut(&[u8]));
    sync(
        repo,
        &args.remote,
        &client,
        &options,
        &stop,
        progress,
        |event| {
            if written.is_ok() {
                written = print_event(&mut out, &event).and_then(|()| out.flush());
            }
        },
    )?;
    Ok(written?)
}

/// What a round did: moved refs and prunes on stdout, failures on stderr.
fn print_event(out: &mut impl Write, event: &SyncEvent<'_>) -> io::Result<()> {
    match event {
        SyncEvent::Pushed(report) => print_push(out, report)?,
        SyncEvent::Fetched(report) => print_fetch(out, report)?,
        SyncEvent::Retention(applied) => {
            for entry in *applied {
                match &entry.outcome {
                    Ok(report) if report.pruned > 0 => writeln!(
                        out,
                        "pruned\t{}\t{} messages\t{} -> {} bytes",
                        entry.topic, report.pruned, report.bytes_before, report.bytes_after
                    )?,
                    Ok(_) => {}
                    Err(err) => {
                        eprintln!("gitmq sync: retention of {} skipped: {err}", entry.topic);
                    }
                }
            }
        }
        SyncEvent::RetentionFailed(err) => eprintln!("gitmq sync: retention not applied: {err}"),
        SyncEvent::Failed { what, error } => {
            eprintln!("gitmq sync: {what} failed (trying again next round): {error}");
        }
        _ => {}
    }
    Ok(())
}
