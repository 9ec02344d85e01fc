//! `gitmq init PATH`: a bare repository git accepts (or the one already there).

use gitmq::Repository;

use super::Result;
use crate::cli::InitArgs;

/// `gitmq init`: prints the git directory.
pub fn run(args: &InitArgs) -> Result<()> {
    let repo = Repository::init(&args.path)?;
    println!("{}", repo.git_dir().display());
    Ok(())
}
