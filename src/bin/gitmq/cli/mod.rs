//! The command line's shape (clap derive): every subcommand and flag, nothing else. The
//! arguments of each subcommand are in [`args`] (and [`bench`]); `crate::commands` runs them.

mod args;
#[cfg(feature = "bench")]
mod bench;
mod serve;

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};

pub use args::*;
#[cfg(feature = "bench")]
pub use bench::*;
pub use serve::ServeArgs;

/// A durable, auditable message queue in a git repository.
#[derive(Debug, Parser)]
#[command(name = "gitmq", version, about)]
pub struct Cli {
    /// The queue repository [default: $GITMQ_REPO, else the repository around the current directory]
    #[arg(long, global = true, env = "GITMQ_REPO", value_name = "PATH")]
    pub repo: Option<PathBuf>,

    /// An SSH ed25519 private key file (unencrypted OpenSSH format), given before the
    /// command: `publish` signs with it (see --sign-mode); push, sync, join and split re-sign
    /// the copies of messages it signed (other signed messages' copies are marked
    /// `gitmq-unsigned-copy-of`).
    #[arg(long, env = "GITMQ_SIGNING_KEY", value_name = "KEY")]
    pub sign: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a bare queue repository at PATH (or reopen the one there).
    Init(InitArgs),
    /// Append messages to a topic and print each new message's id, one per line, in order.
    Publish(PublishArgs),
    /// Print the messages after a consumer's position, oldest first, then commit the position.
    /// A start flag (--from-beginning, --latest, --from, --since) first moves the position
    /// there, like `consumers reset` (unless --no-commit: a read-only replay; or --if-new).
    Consume(ConsumeArgs),
    /// Print every message of a topic, oldest first; touches no position.
    Log(LogArgs),
    /// List topics with their head message.
    Topics,
    /// List consumers (consumer, topic, position, head, lag), or reset or delete a position.
    Consumers(ConsumersArgs),
    /// Copy every message of the source topics not joined yet onto DST, exactly once each,
    /// merged by author date (ties: source order; each source's order kept).
    Join(JoinArgs),
    /// Start a new topic with copies of a topic's messages from --at on (or those --contains
    /// / --json select); positions carry over. The topic is not changed.
    Split(SplitArgs),
    /// Fetch topics and consumer positions from a remote over smart HTTP; fast-forward local
    /// topics and print every ref that moved.
    Fetch(FetchArgs),
    /// Push topics and their consumer positions to a remote over smart HTTP; a topic another
    /// producer pushed to first is fetched and the local messages are rebuilt on it (printed
    /// as `renamed OLD NEW`). Prints every remote ref that moved.
    Push(PushArgs),
    /// Keep a repository in sync with a remote: push and fetch every --interval, and push as
    /// soon as new local messages waited --linger; stops cleanly on Ctrl-C or SIGTERM.
    Sync(SyncArgs),
    /// Manage remotes (the repository's git config: `git remote` works too).
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Remove ref locks left by killed writers (git's `<ref>.lock` files) under refs/heads/ and
    /// refs/gitmq/, if older than --older-than seconds. Make sure no writer is stuck first.
    Unlock(UnlockArgs),
    /// Merge small packs into larger ones (producers also do this in the background).
    Consolidate(ConsolidateArgs),
    /// Dead letters of a topic (on `<TOPIC>.dlq`): list them, or redrive them onto the topic.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Drop a topic's old history from the local repository (see `gitmq prune --help`).
    Prune(PruneArgs),
    /// Serve the queue over HTTP (publish, long-poll consume, positions, SSE, metrics) until
    /// SIGTERM or Ctrl-C; prints `listening on URL` once bound.
    Serve(ServeArgs),
    /// Measure gitmq against git on the same messages, in the same run.
    #[cfg(feature = "bench")]
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Measure gitmq against git (this gitmq was built without the `bench` feature).
    #[cfg(not(feature = "bench"))]
    #[command(disable_help_flag = true)]
    Bench {
        /// Whatever was given.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Show what gitmq does, in a temporary repository (nothing else is touched).
    Demo(DemoArgs),
}

/// How messages are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The payload, then a newline unless it already ends with one.
    Text,
    /// One JSON object per line: id, stable_id, headers, author, email, time (RFC 3339),
    /// payload.
    Json,
}

/// `--durability` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Acknowledged once in the page cache: survives a process crash, not a power loss.
    None,
    /// Acknowledged once the batch and its ref are fsynced.
    Batch,
    /// Acknowledged once each message is fsynced on its own.
    Each,
}

impl From<DurabilityArg> for gitmq::Durability {
    fn from(arg: DurabilityArg) -> Self {
        match arg {
            DurabilityArg::None => gitmq::Durability::None,
            DurabilityArg::Batch => gitmq::Durability::Batch,
            DurabilityArg::Each => gitmq::Durability::Each,
        }
    }
}

/// Parse `10s`, `250ms`, `2m`, `1h` or plain seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 250ms, 2m"))?;
    let millis = match unit {
        "ms" => number,
        "" | "s" => number.saturating_mul(1000),
        "m" => number.saturating_mul(60_000),
        "h" => number.saturating_mul(3_600_000),
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err() && parse_duration("5d").is_err());
    }
}
