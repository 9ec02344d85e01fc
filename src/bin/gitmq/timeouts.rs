//! The HTTP timeouts of `gitmq fetch`, `push`, `sync` and `consume --follow --remote`: the
//! flags, over the repository's `gitmq.http.*` config keys, over the client's defaults.

use std::time::Duration;

use clap::Args;
use gitmq::{git::config::timeouts, replicate::http::Options, Repository};

use crate::commands::Result;

/// Timeout flags (each overrides its `gitmq.http.*` config key).
#[derive(Debug, Clone, Default, Args)]
#[allow(clippy::struct_field_names)] // the flags are --connect-timeout, --idle-timeout, ...
pub struct TimeoutArgs {
    /// Time allowed to open a connection [config: gitmq.http.connectTimeout; default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = crate::remote::parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// Time allowed without a byte from the server: for its answer, then between two reads
    /// of it [config: gitmq.http.idleTimeout; default: 2m].
    #[arg(long, value_name = "DURATION", value_parser = crate::remote::parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Time allowed for one whole request, answer included; 0: no limit
    /// [config: gitmq.http.requestTimeout; default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = crate::remote::parse_duration)]
    pub request_timeout: Option<Duration>,
}

/// The HTTP client options for `repo`: defaults, then its config, then the flags.
pub fn http_options(repo: &Repository, flags: &TimeoutArgs) -> Result<Options> {
    let mut set = timeouts::read(repo.git_dir())?;
    if flags.connect_timeout.is_some_and(|d| d.is_zero())
        || flags.idle_timeout.is_some_and(|d| d.is_zero())
    {
        return Err("--connect-timeout and --idle-timeout must be above zero".into());
    }
    set.connect = flags.connect_timeout.or(set.connect);
    set.idle = flags.idle_timeout.or(set.idle);
    set.request = flags.request_timeout.or(set.request);
    Ok(Options::default().with_timeouts(&set))
}
