//! The arguments of `gitmq bench` (feature `bench`).

use clap::Subcommand;

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
    /// `gitmq serve` under N concurrent HTTP clients (publish single and batched at
    /// durability none and batch, consume), next to Redis Streams (XADD, XREAD) with the same
    /// payloads and clients in the same run, if redis-server is installed.
    Serve(crate::bench::serve::ServeBenchOptions),
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
    /// `bench fetch` only: instead of the usual rounds, compare an incremental fetch of this
    /// many new messages by git, by gitmq with a thin pack and by gitmq without.
    #[arg(long, value_name = "NEW_MESSAGES")]
    pub thin: Option<usize>,
    /// `bench fetch --thin` only: the server's repository on this machine; the rounds run
    /// again with it repacked (`git repack -adb`) after each push.
    #[arg(long, value_name = "PATH", requires = "thin")]
    pub server_git_dir: Option<std::path::PathBuf>,
    /// `bench fetch --thin` only: messages of ~1.7 KB sharing a large envelope, which git
    /// stores as deltas against each other (the standard ~150-byte messages hardly delta).
    #[arg(long, requires = "thin")]
    pub similar_payloads: bool,
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
    /// Also append signed (ed25519, a key made for the run): unsigned, `tip` and `each`
    /// in the same run, and verify them as a verifying consumer.
    #[arg(long)]
    pub sign: bool,
}
