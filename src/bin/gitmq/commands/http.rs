//! The HTTP client options of `fetch`, `push`, `sync` and `consume --follow --remote`: the
//! client's defaults, then the repository's `gitmq.http.*` config, then the timeout flags.

use gitmq::{
    replicate::{http::Options, timeouts},
    Repository,
};

use super::Result;
use crate::cli::TimeoutArgs;

/// The HTTP client options for `repo`: defaults, then its config, then the flags.
pub fn options(repo: &Repository, flags: &TimeoutArgs) -> Result<Options> {
    if flags.connect_timeout.is_some_and(|d| d.is_zero())
        || flags.idle_timeout.is_some_and(|d| d.is_zero())
    {
        return Err("--connect-timeout and --idle-timeout must be above zero".into());
    }
    let mut set = timeouts::read(repo.git_dir())?;
    set.connect = flags.connect_timeout.or(set.connect);
    set.idle = flags.idle_timeout.or(set.idle);
    set.request = flags.request_timeout.or(set.request);
    Ok(Options::default().with_timeouts(&set))
}
