//! The command line's shape (clap derive): every subcommand and flag, nothing else.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// A durable, auditable message queue in a git repository.
#[derive(Debug, Parser)]
#[command(name = "gitmq", version, about)]
pub struct Cli {
    /// The queue repository [default: $GITMQ_REPO, else the repository around the current directory]
    #[arg(long, global = true, env = "GITMQ_REPO", value_name = "PATH")]
    pub repo: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a bare queue repository at PATH (or reopen the one there).
    Init {
        /// Where to create it.
        path: PathBuf,
    },
    /// Append messages to a topic and print each new message's id, one per line, in order.
    Publish(PublishArgs),
    /// Print the messages after a consumer's position, oldest first, then commit the position.
    Consume(ConsumeArgs),
    /// Print every message of a topic, oldest first; touches no position.
    Log {
        /// The topic.
        topic: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List topics with their head message.
    Topics,
    /// List consumers: topic, position and lag in messages.
    Consumers,
    /// Fetch topics and consumer positions from a remote over smart HTTP; fast-forward local
    /// topics and print every ref that moved.
    Fetch {
        /// A remote name from the repository's git config, or an http(s) URL.
        #[arg(default_value = "origin")]
        remote: String,
    },
    /// Remove ref locks left by killed writers (git's `<ref>.lock` files) under refs/heads/ and
    /// refs/gitmq/, if older than --older-than seconds. Make sure no writer is stuck first.
    Unlock {
        /// Only locks at least this old.
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        older_than: u64,
    },
    /// Merge small packs into larger ones (producers also do this in the background).
    Consolidate {
        /// Act once there are at least this many packs below the ceiling.
        #[arg(long, default_value_t = 2)]
        min_packs: usize,
        /// Packs with at least this many objects are left alone.
        #[arg(long, default_value_t = 1_000_000)]
        max_objects: u64,
    },
    /// Drop a topic's old history from the local repository (see `gitmq prune --help`).
    Prune(crate::prune::PruneArgs),
    /// Measure gitmq against git on the same messages, in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Show what gitmq does, in a temporary repository (nothing else is touched).
    Demo {
        /// Keep the demo repository at this path instead of a temporary directory.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
}

/// How messages are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The payload, then a newline unless it already ends with one.
    Text,
    /// One JSON object per line: id, author, email, time (RFC 3339), payload.
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

/// `gitmq publish` arguments.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// The topic (a branch name).
    pub topic: String,
    /// Messages, one per argument; without any, each line of stdin is one message.
    pub messages: Vec<std::ffi::OsString>,
    /// Read NUL-separated records from stdin instead of lines.
    #[arg(short = '0', long = "null")]
    pub null: bool,
    /// When a message counts as acknowledged (and its id is printed).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Batch)]
    pub durability: DurabilityArg,
    /// Most messages per batch (one pack and one ref update each).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    /// Flush a batch once its first message waited this many milliseconds for more input.
    #[arg(long, default_value_t = 5, value_name = "MS")]
    pub linger_ms: u64,
    /// Deflate level 1-9 for pack entries; 0 stores them uncompressed (fastest).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub compression: u8,
    /// Author name [default: $GITMQ_AUTHOR_NAME, else "gitmq"]
    #[arg(long)]
    pub author: Option<String>,
    /// Author email [default: $GITMQ_AUTHOR_EMAIL, else "gitmq@localhost"]
    #[arg(long)]
    pub email: Option<String>,
}

/// `gitmq consume` arguments.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// The topic.
    pub topic: String,
    /// The consumer's name (one path component).
    #[arg(long)]
    pub consumer: String,
    /// Print at most N messages.
    #[arg(long, value_name = "N")]
    pub max: Option<usize>,
    /// Do not move the consumer's position.
    #[arg(long)]
    pub no_commit: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Keep tailing the topic: print new messages as they arrive (reading the topic's head
    /// every few milliseconds), committing after each printed chunk, until --max messages or
    /// stdout closes (noticed at the next write).
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// `gitmq bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append N messages with gitmq (each durability and compression), `git fast-import` and
    /// a `git commit` loop; print rates, ratios and per-phase costs.
    Append(AppendArgs),
    /// Fetch N messages with `gitmq fetch` and with `git fetch` from the same smart-HTTP
    /// server (full, one new message, nothing new); print medians and ratios.
    Fetch(FetchBenchArgs),
    /// Build a topic of N messages with gitmq's producer, then consume all of it with gitmq
    /// and with `git log --reverse --format=%B`, before and after `git gc --aggressive`; print
    /// rates, ratios and the time of a caught-up poll.
    Consume(crate::bench::consume::ConsumeOptions),
}

/// `gitmq bench fetch` arguments.
#[derive(Debug, clap::Args)]
pub struct FetchBenchArgs {
    /// A smart-HTTP repository that accepts pushes; a `gitmq-bench-<pid>` branch is pushed
    /// there and deleted at the end.
    #[arg(long)]
    pub url: String,
    /// How many messages.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Rounds of each measurement (medians are printed).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Write the history with `git fast-import`, every commit with one timestamp (git's
    /// date-ordered walks then go through the whole history).
    #[arg(long)]
    pub equal_timestamps: bool,
    /// Keep the scratch repositories.
    #[arg(long)]
    pub keep: bool,
}

/// `gitmq bench append` arguments.
#[derive(Debug, clap::Args)]
pub struct AppendArgs {
    /// How many messages.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Messages per batch (pack) for gitmq with durability none.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Messages per batch for gitmq with durability batch (each batch is fsynced).
    #[arg(long, default_value_t = 1000)]
    pub durable_batch: usize,
    /// How many messages the `git commit` loop writes (it is slow).
    #[arg(long, default_value_t = 200)]
    pub cli_messages: usize,
    /// How many messages the `durability each` latency run writes.
    #[arg(long, default_value_t = 300)]
    pub each_messages: usize,
    /// Keep the scratch repositories (their path is printed).
    #[arg(long)]
    pub keep: bool,
    /// Flush on the appending thread instead of a background thread.
    #[arg(long)]
    pub inline_flush: bool,
}
