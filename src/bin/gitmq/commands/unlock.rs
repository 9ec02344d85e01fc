//! `gitmq unlock [--older-than S]`: remove ref locks left by killed writers.

use gitmq::Repository;

use super::Result;
use crate::cli::UnlockArgs;

/// `gitmq unlock`: prints each removed lock.
pub fn run(repo: &Repository, args: &UnlockArgs) -> Result<()> {
    let age = std::time::Duration::from_secs(args.older_than);
    for removed in repo.remove_stale_locks(age)? {
        println!("removed {}", removed.display());
    }
    Ok(())
}
