//! `gitmq serve`: the queue's HTTP API on one port (see `gitmq::serve`), until SIGTERM or
//! Ctrl-C, then a graceful shutdown. Prints `listening on http(s)://ADDR` on stdout once the
//! port is bound (port 0 picks a free one), so scripts and tests can wait for it.

use std::{
    io::Write,
    net::SocketAddr,
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc},
};

use gitmq::{
    serve::{Config, Limits, Tokens},
    Identity, Repository,
};

use crate::{cli::DurabilityArg, commands::Result};

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

pub fn run(repo: Repository, args: &ServeArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let defaults = Identity::from_env();
    let identity = match (&args.author, &args.email) {
        (None, None) => defaults,
        (name, email) => Identity::new(
            name.as_deref().unwrap_or(defaults.name()),
            email.as_deref().unwrap_or(defaults.email()),
        )?,
    };
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let mut config = Config::new(args.listen);
    config.tokens = args.auth.as_deref().map(Tokens::load).transpose()?;
    config.insecure_listen = args.insecure_listen;
    config.tls = args.tls_cert.clone().zip(args.tls_key.clone());
    config.durability = args.durability.into();
    config.identity = identity;
    config.threads = args.threads;
    config.limits = Limits {
        max_body_bytes: size(args.max_body),
        max_message_bytes: size(args.max_message),
        max_batch_messages: args.max_batch,
        max_header_bytes: size(args.max_header),
        max_pack_bytes: args.max_pack,
        ..Limits::default()
    };
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    gitmq::serve::run(repo, config, &stop, |addr| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {scheme}://{addr}");
        let _ = out.flush();
    })?;
    eprintln!("gitmq serve: stopped; every acknowledged message is flushed");
    Ok(())
}
