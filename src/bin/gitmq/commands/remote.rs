//! `gitmq remote add NAME URL`: what `git remote add` writes, so git and gitmq agree.

use gitmq::{replicate::RemoteUrl, Repository};

use super::Result;

/// `gitmq remote add NAME URL`: what `git remote add` writes, so git and gitmq agree.
pub fn add(repo: &Repository, name: &str, url: &str) -> Result<()> {
    let parsed = RemoteUrl::parse(url)?;
    repo.add_remote(name, url)?;
    println!("added\t{name}\t{}", parsed.redacted());
    Ok(())
}
