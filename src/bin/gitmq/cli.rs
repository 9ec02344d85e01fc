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
    /// A start flag (--from-beginning, --latest, --from, --since) first moves the position
    /// there, like `consumers reset` (unless --no-commit: a read-only replay; or --if-new).
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
    /// List consumers (consumer, topic, position, head, lag), or reset or delete a position.
    Consumers(crate::consumers::ConsumersArgs),
    /// Copy every message of the source topics not joined yet onto DST, exactly once each,
    /// merged by author date (ties: source order; each source's order kept).
    Join(crate::topology::JoinArgs),
    /// Start a new topic with copies of a topic's messages from --at on (or those --contains
    /// / --json select); positions carry over. The topic is not changed.
    Split(crate::topology::SplitArgs),
    /// Fetch topics and consumer positions from a remote over smart HTTP; fast-forward local
    /// topics and print every ref that moved.
    Fetch {
        /// A remote name from the repository's git config, or an http(s) URL.
        #[arg(default_value = "origin")]
        remote: String,
    },
    /// Push topics and their consumer positions to a remote over smart HTTP; a topic another
    /// producer pushed to first is fetched and the local messages are rebuilt on it (printed
    /// as `renamed OLD NEW`). Prints every remote ref that moved.
    Push {
        /// A remote name from the repository's git config, or an http(s) URL.
        #[arg(default_value = "origin")]
        remote: String,
        /// Only this topic (repeatable) [default: every topic].
        #[arg(long = "topic", value_name = "TOPIC")]
        topics: Vec<String>,
    },
    /// Keep a repository in sync with a remote: push and fetch every --interval, and push as
    /// soon as new local messages waited --linger; stops cleanly on Ctrl-C or SIGTERM.
    Sync {
        /// A remote name from the repository's git config, or an http(s) URL.
        #[arg(default_value = "origin")]
        remote: String,
        /// Push and fetch at least this often (GitHub asks for at most 6 pushes a minute).
        #[arg(long, default_value = "10s", value_parser = crate::remote::parse_duration)]
        interval: std::time::Duration,
        /// Push new local messages once the oldest waited this long [default: at the interval].
        #[arg(long, value_parser = crate::remote::parse_duration)]
        linger: Option<std::time::Duration>,
        /// Only this topic (repeatable) [default: every topic].
        #[arg(long = "topic", value_name = "TOPIC")]
        topics: Vec<String>,
        /// Stop after N rounds.
        #[arg(long, value_name = "N")]
        rounds: Option<u64>,
        /// Apply the retention configured per topic (`gitmq.topic.<t>.retainMessages` /
        /// `retainSeconds`) this often; 0 turns it off. Never moves a consumer's position.
        #[arg(long, default_value = "10m", value_parser = crate::remote::parse_duration)]
        retention_interval: std::time::Duration,
    },
    /// Manage remotes (the repository's git config: `git remote` works too).
    #[command(subcommand)]
    Remote(RemoteCommand),
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
    /// Dead letters of a topic (on `<TOPIC>.dlq`): list them, or redrive them onto the topic.
    #[command(subcommand)]
    Dlq(crate::dlq::DlqCommand),
    /// Drop a topic's old history from the local repository (see `gitmq prune --help`).
    Prune(crate::prune::PruneArgs),
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
    Demo {
        /// Keep the demo repository at this path instead of a temporary directory.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
}

/// `gitmq remote` subcommands.
#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Add a remote, as `git remote add NAME URL` does.
    Add {
        /// Its name.
        name: String,
        /// Its http(s) URL (credentials may be given as user:token@ or by environment).
        url: String,
    },
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
    /// Add the header KEY=VALUE to every message (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// The message's stable id (one message only): publishing an id already on the topic's
    /// last 10,000 messages appends nothing and prints the original's commit id.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Give every message a generated stable id.
    #[arg(long, conflicts_with = "id")]
    pub generate_ids: bool,
}

/// `gitmq consume` arguments.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// The topic.
    pub topic: String,
    /// The consumer's name (one path component); or --consumer.
    #[arg(value_name = "CONSUMER", required_unless_present = "consumer")]
    pub consumer_name: Option<String>,
    /// The consumer's name (one path component).
    #[arg(long, conflicts_with = "consumer_name")]
    pub consumer: Option<String>,
    /// Where to start reading (default: after the committed position).
    #[command(flatten)]
    pub start: crate::consumers::StartArgs,
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
    /// With --follow: fetch from this remote (name or URL) whenever nothing new is local, at
    /// most every --fetch-interval.
    #[arg(long, value_name = "REMOTE")]
    pub remote: Option<String>,
    /// How often --remote is asked for new messages (one cheap `ls-refs` request each).
    #[arg(long, default_value = "1s", value_parser = crate::remote::parse_duration)]
    pub fetch_interval: std::time::Duration,
}

/// `gitmq bench` subcommands.
#[cfg(feature = "bench")]
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append N messages with gitmq (each durability and compression), `git fast-import` and
    /// a `git commit` loop; print rates, ratios and per-phase costs.
    Append(AppendArgs),
    /// Fetch N messages with `gitmq fetch` and with `git fetch` from the same smart-HTTP
    /// server (full, one new message, nothing new); print medians and ratios.
    Fetch(ServerBenchArgs),
    /// Build a topic of N messages with gitmq's producer (and the same messages with `git
    /// fast-import`), then consume all of it with gitmq and with `git log --reverse
    /// --format=%B`: gitmq's packs, fast-import's pack, and after `git gc --aggressive`; print
    /// the machine, rates, ratios (wall clock and CPU time) and a caught-up poll's time.
    Consume(crate::bench::consume::ConsumeOptions),
    /// Push N messages with gitmq and with `git push` to the same smart-HTTP server (full
    /// history, then one new message on top); print medians and ratios.
    Push(ServerBenchArgs),
    /// One message published -> pushed -> fetched by another repository -> consumed, R
    /// rounds, gitmq next to the git CLI doing the same; print p50/p90/p99.
    Latency(LatencyBenchArgs),
}

/// `gitmq bench latency` arguments.
#[cfg(feature = "bench")]
#[derive(Debug, clap::Args)]
pub struct LatencyBenchArgs {
    /// A smart-HTTP repository that accepts pushes.
    #[arg(long)]
    pub url: String,
    /// Rounds of one message each.
    #[arg(long, default_value_t = 100)]
    pub rounds: usize,
    /// Keep the scratch repositories.
    #[arg(long)]
    pub keep: bool,
}

/// `gitmq bench fetch` and `gitmq bench push` arguments.
#[cfg(feature = "bench")]
#[derive(Debug, clap::Args)]
pub struct ServerBenchArgs {
    /// A smart-HTTP repository that accepts pushes (`gitmq-bench-<pid>*` branches are pushed
    /// there and deleted at the end; see scripts/git-http-server).
    #[arg(long)]
    pub url: String,
    /// How many messages.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Rounds of each measurement (medians are printed).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Write the histories with `git fast-import`, every commit (and each new one) with one
    /// timestamp: git's date-ordered walks then go through the whole history.
    #[arg(long)]
    pub equal_timestamps: bool,
    /// Keep the scratch repositories.
    #[arg(long)]
    pub keep: bool,
}

/// `gitmq bench append` arguments.
#[cfg(feature = "bench")]
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
