//! `gitmq prune`: drop a topic's old history from the local repository (see
//! [`gitmq::prune`]), by count, age or id, or for every topic with a retention in the config.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gitmq::{
    produce::Compression,
    prune::{Options, Report, Retain},
    ObjectId, Repository, TopicName,
};

use super::Result;
use crate::cli::PruneArgs;

pub fn run(repo: &Repository, args: &PruneArgs) -> Result<()> {
    let options = Options {
        force: args.force,
        dry_run: args.dry_run,
        grace: Duration::from_secs(args.grace),
        compression: match args.compression {
            0 => Compression::Stored,
            level => Compression::Deflate(level),
        },
        ..Options::default()
    };
    if args.all {
        for report in gitmq::prune::prune_all(repo, &options)? {
            print(&report);
        }
        return Ok(());
    }
    let topic = TopicName::new(args.topic.as_deref().unwrap_or_default())?;
    let retain = if let Some(n) = args.keep {
        Retain::Keep(n)
    } else if let Some(time) = &args.before {
        let now = gix_date::Zoned::now();
        let time = gix_date::parse(time, Some(now))
            .map_err(|_| format!("--before {time:?}: not a date git understands"))?;
        let seconds = u64::try_from(time.seconds).unwrap_or(0);
        Retain::Before(UNIX_EPOCH + Duration::from_secs(seconds))
    } else if let Some(id) = &args.upto {
        Retain::Upto(
            ObjectId::from_hex(id.as_bytes())
                .map_err(|_| format!("--upto {id:?}: not a full 40-digit object id"))?,
        )
    } else {
        unreachable!("clap requires one of --keep, --before, --upto, --all")
    };
    let started = SystemTime::now();
    let report = gitmq::prune::prune(repo, &topic, retain, &options)?;
    print(&report);
    eprintln!(
        "pruned in {:.2} s",
        started.elapsed().unwrap_or_default().as_secs_f64()
    );
    Ok(())
}

fn print(report: &Report) {
    let topic = &report.topic;
    match report.start {
        None => println!("{topic}: nothing new to prune ({} messages)", report.kept),
        Some(start) if report.new_pack.is_none() => println!(
            "{topic}: would keep {} messages from {start}, prune {} (dry run)",
            report.kept, report.pruned
        ),
        Some(start) => println!(
            "{topic}: kept {} messages from {start}, pruned {}",
            report.kept, report.pruned
        ),
    }
    if report.new_pack.is_none() && report.start.is_some() {
        for behind in &report.behind {
            println!(
                "{topic}: {} at {} is behind the cut ({} unconsumed)",
                behind.ref_name(),
                behind.position,
                behind.unconsumed
            );
        }
    }
    for moved in &report.moved {
        println!(
            "{topic}: moved {} from {} to {} (skipped {} unconsumed)",
            moved.behind.ref_name(),
            moved.behind.position,
            moved.to,
            moved.behind.unconsumed
        );
    }
    for name in &report.pinned {
        println!("{topic}: {name} names a pruned message: its history stays");
    }
    if report.new_pack.is_some() {
        println!(
            "{topic}: {} objects in a new pack, removed {} packs and {} loose objects, kept {} \
             younger files; objects/ {} -> {} bytes",
            report.objects,
            report.packs_removed,
            report.loose_removed,
            report.files_kept,
            report.bytes_before,
            report.bytes_after
        );
    }
}
