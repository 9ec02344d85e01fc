//! `gitmq consolidate`: merge small packs into larger ones now.

use gitmq::{produce::ConsolidatePolicy, Repository};

use super::Result;
use crate::cli::ConsolidateArgs;

/// `gitmq consolidate`: prints what was merged.
pub fn run(repo: &Repository, args: &ConsolidateArgs) -> Result<()> {
    let report = repo.consolidate(ConsolidatePolicy {
        min_packs: args.min_packs,
        max_objects: args.max_objects,
    })?;
    println!(
        "merged {} packs into new packs holding {} objects ({} bytes)",
        report.merged_packs, report.objects, report.bytes
    );
    if report.skipped_with_deltas > 0 {
        println!(
            "left {} packs with deltas (written by git) alone",
            report.skipped_with_deltas
        );
    }
    Ok(())
}
