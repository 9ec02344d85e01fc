//! The arguments of every subcommand (clap derive): flags and their defaults, nothing else.

use std::{path::PathBuf, time::Duration};

use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use super::{parse_duration, DurabilityArg, Format};

/// `gitmq init` arguments.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create it.
    pub path: PathBuf,
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
    /// Sign with this SSH ed25519 private key file (as `gitmq --sign KEY publish`).
    #[arg(long, value_name = "KEY")]
    pub sign: Option<std::path::PathBuf>,
    /// With a key: sign every message (`each`), or only the last of each batch (`tip`: one
    /// signature covers the batch by hash chain).
    #[arg(long, default_value = "each", value_parser = ["each", "tip"])]
    pub sign_mode: String,
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
    pub start: StartArgs,
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
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub fetch_interval: std::time::Duration,
    /// Print only messages covered by a good signature of a key this allowed-signers file
    /// allows for their author (on the message or a later one); others are refused.
    #[arg(long, value_name = "ALLOWED_SIGNERS")]
    pub verify: Option<std::path::PathBuf>,
    /// With --verify: what a refused message does: go to `<TOPIC>.dlq` with the reason and
    /// skip it (`dlq`), or stop with an error before it (`stop`).
    #[arg(long, default_value = "dlq", value_parser = ["dlq", "stop"], requires = "verify")]
    pub refused: String,
}

/// `gitmq log` arguments.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The topic.
    pub topic: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print each message's signature verdict against this allowed-signers file (text:
    /// `<id> <TAB> accepted|refused <TAB> why`; json: `verify` fields).
    #[arg(long, value_name = "ALLOWED_SIGNERS")]
    pub verify: Option<std::path::PathBuf>,
}

/// How `gitmq consumers` prints its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// consumer, topic, position, head, lag; tab-separated (`-` for no head, `?` for an
    /// unknown lag).
    Text,
    /// One JSON object per line: consumer, topic, position, head, lag (null when unknown).
    Json,
}

/// `gitmq consumers` arguments.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConsumersArgs {
    /// What to do (default: list).
    #[command(subcommand)]
    pub action: Option<ConsumersCommand>,
    /// Output format of the list.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

/// `gitmq consumers` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConsumersCommand {
    /// List every consumer position: consumer, topic, position, topic head, lag ("?" if the
    /// position is not on the topic's history).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Move CONSUMER's position on TOPIC so that it next reads from --to, by compare-and-swap
    /// (fails if the consumer commits meanwhile; a running consumer fails its next commit).
    /// Prints the old and the new position.
    Reset {
        /// The consumer.
        consumer: String,
        /// The topic.
        topic: String,
        /// `beginning`, `latest`, a message id (full or a unique prefix; it is read next) or
        /// a time (RFC 3339, @unix, 30s/15m/2h/1d/1w ago, "2 hours ago").
        #[arg(long, value_name = "beginning|latest|ID|TIME")]
        to: String,
    },
    /// Remove CONSUMER's position on TOPIC, or on every topic (compare-and-swap; packed refs
    /// too). Prints each removed position.
    Delete {
        /// The consumer.
        consumer: String,
        /// Only this topic.
        topic: Option<String>,
    },
}

/// Where `gitmq consume` starts; without any, at the consumer's committed position.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// One start point at most.
    #[command(flatten)]
    pub point: StartPoint,
    /// Apply the start flag only if the consumer has no committed position yet (like
    /// Kafka's auto.offset.reset); otherwise resume from the position.
    #[arg(long, requires = "start")]
    pub if_new: bool,
}

/// The start flags (at most one).
#[derive(Debug, Args)]
#[group(id = "start", multiple = false)]
pub struct StartPoint {
    /// Read from the topic's first message.
    #[arg(long)]
    pub from_beginning: bool,
    /// Read only messages published after the topic's current head.
    #[arg(long)]
    pub latest: bool,
    /// Read from this message (full id or unique prefix; it is printed first).
    #[arg(long, value_name = "ID")]
    pub from: Option<String>,
    /// Read from the first message, scanning from the oldest, whose author date is at or
    /// after TIME (RFC 3339, @unix, 30s/15m/2h/1d/1w ago, "2 hours ago").
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
}

/// `gitmq join` arguments.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Source topics; on equal dates, earlier ones go first.
    #[arg(required = true, value_name = "SRC")]
    pub sources: Vec<String>,
    /// The destination topic (created if missing).
    #[arg(long, value_name = "DST")]
    pub into: String,
    /// Copy at most N messages per round (each round commits on its own; bounds memory).
    #[arg(long, value_name = "N", default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub round: u64,
}

/// `gitmq split` arguments.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// The topic to split (it is not changed).
    pub topic: String,
    /// Start at this message (full id or unique prefix; included) [default: the first].
    #[arg(long, value_name = "ID")]
    pub at: Option<String>,
    /// The new topic (must not exist).
    #[arg(long, value_name = "NEW")]
    pub into: String,
    /// Keep only messages whose payload contains TEXT.
    #[arg(long, value_name = "TEXT")]
    pub contains: Option<String>,
    /// Keep only JSON payloads whose FIELD (dots go into nested objects) equals VALUE (a
    /// string field compares as text, any other as its JSON: 42, true, null).
    #[arg(long = "json", visible_alias = "where", value_name = "FIELD=VALUE")]
    pub json: Option<String>,
}

/// `gitmq dlq` subcommands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Print the dead letters, oldest first: text is `<dead letter> <TAB> <original commit>
    /// <TAB> <stable id or -> <TAB> <attempts> <TAB> pending|redriven <TAB> <error>`.
    List {
        /// The topic whose dead letters to list.
        topic: String,
        /// Output format (json: the message fields plus original_commit, original_id,
        /// consumer, attempts, error, redriven).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Re-publish the dead letters not redriven yet onto the topic, once each; print
    /// `<dead letter> <TAB> <new message>` per message.
    Redrive {
        /// The topic.
        topic: String,
    },
}

/// Drop a topic's old history from the local repository (git's shallow mechanism): its
/// objects leave the disk, `git log` shows the kept messages, consumers and producers keep
/// working. Refuses to drop messages a consumer has not read, unless --force.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("retain").args(["keep", "before", "upto", "all"]).required(true)))]
pub struct PruneArgs {
    /// The topic (not with --all).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub topic: Option<String>,
    /// Keep the newest N messages.
    #[arg(long, value_name = "N")]
    pub keep: Option<u64>,
    /// Drop, walking back from the head, the first message dated before TIME and everything
    /// older (git date formats: "2 weeks ago", "2026-11-01", "@1700000000").
    #[arg(long, value_name = "TIME")]
    pub before: Option<String>,
    /// Drop the message ID and everything older.
    #[arg(long, value_name = "ID")]
    pub upto: Option<String>,
    /// Prune every topic per its `gitmq.topic.<topic>.retainMessages` / `retainSeconds`
    /// git config.
    #[arg(long)]
    pub all: bool,
    /// Move consumer positions that would lose unread messages to the cut instead of refusing.
    #[arg(long)]
    pub force: bool,
    /// Files younger than this are removed only if every object in them is kept in the new
    /// pack (protects packs whose producer has not moved its ref yet).
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub grace: u64,
    /// Only print what would be dropped and which positions are behind; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Deflate the new pack at this level (1..9); default 0: stored blocks.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub compression: u8,
}

/// `gitmq fetch` arguments.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// A remote name from the repository's git config, or an http(s) URL.
    #[arg(default_value = "origin")]
    pub remote: String,
}

/// `gitmq push` arguments.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// A remote name from the repository's git config, or an http(s) URL.
    #[arg(default_value = "origin")]
    pub remote: String,
    /// Only this topic (repeatable) [default: every topic].
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
}

/// `gitmq sync` arguments.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// A remote name from the repository's git config, or an http(s) URL.
    #[arg(default_value = "origin")]
    pub remote: String,
    /// Push and fetch at least this often (GitHub asks for at most 6 pushes a minute).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Push new local messages once the oldest waited this long [default: at the interval].
    #[arg(long, value_parser = parse_duration)]
    pub linger: Option<Duration>,
    /// Only this topic (repeatable) [default: every topic].
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Stop after N rounds.
    #[arg(long, value_name = "N")]
    pub rounds: Option<u64>,
    /// Apply the retention configured per topic (`gitmq.topic.<t>.retainMessages` /
    /// `retainSeconds`) this often; 0 turns it off. Never moves a consumer's position.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub retention_interval: Duration,
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

/// `gitmq unlock` arguments.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Only locks at least this old.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub older_than: u64,
}

/// `gitmq consolidate` arguments.
#[derive(Debug, Args)]
pub struct ConsolidateArgs {
    /// Act once there are at least this many packs below the ceiling.
    #[arg(long, default_value_t = 2)]
    pub min_packs: usize,
    /// Packs with at least this many objects are left alone.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_objects: u64,
}

/// `gitmq demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo repository at this path instead of a temporary directory.
    #[arg(long)]
    pub keep: Option<PathBuf>,
}
