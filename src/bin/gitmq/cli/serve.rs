//! The arguments of `gitmq serve`.

use std::{net::SocketAddr, path::PathBuf};

use gitmq::serve::Limits;

use super::DurabilityArg;

/// `gitmq serve` arguments.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: a free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8470", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Token file (`[[token]]` tables: name, secret, read and write topic globs); without
    /// it anyone may do anything, so only loopback addresses are accepted.
    #[arg(long, value_name = "TOKENS.TOML")]
    pub auth: Option<PathBuf>,
    /// Listen on a non-loopback address without --auth.
    #[arg(long)]
    pub insecure_listen: bool,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// When a published message is acknowledged (`each`: every request is its own batch).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Batch)]
    pub durability: DurabilityArg,
    /// Largest request body (k, m, g suffixes).
    #[arg(long, default_value = "64m", value_parser = parse_size)]
    pub max_body: u64,
    /// Largest message, and longest NDJSON line.
    #[arg(long, default_value = "1m", value_parser = parse_size)]
    pub max_message: u64,
    /// Most messages in one publish request.
    #[arg(long, default_value_t = 100_000)]
    pub max_batch: usize,
    /// Largest request head (request line and headers; at least 8k).
    #[arg(long, default_value = "64k", value_parser = parse_size)]
    pub max_header: u64,
    /// Largest pack a git push may send.
    #[arg(long, default_value = "1g", value_parser = parse_size)]
    pub max_pack: u64,
    /// Worker threads [default: one per core].
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Author name of published messages [default: $GITMQ_AUTHOR_NAME, else "gitmq"]
    #[arg(long)]
    pub author: Option<String>,
    /// Author email [default: $GITMQ_AUTHOR_EMAIL, else "gitmq@localhost"]
    #[arg(long)]
    pub email: Option<String>,
}

fn parse_size(text: &str) -> std::result::Result<u64, String> {
    Limits::parse_bytes(text).ok_or_else(|| format!("{text:?} is not a size (e.g. 512k, 64m)"))
}
