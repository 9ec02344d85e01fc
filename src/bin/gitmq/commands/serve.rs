//! `gitmq serve`: the queue's HTTP API on one port (see `gitmq::serve`), until SIGTERM or
//! Ctrl-C, then a graceful shutdown. Prints `listening on http(s)://ADDR` on stdout once the
//! port is bound (port 0 picks a free one), so scripts and tests can wait for it.

use std::{
    io::Write,
    sync::{atomic::AtomicBool, Arc},
};

use gitmq::{
    serve::{Config, Limits, Tokens},
    Identity, Repository,
};

use super::Result;
use crate::cli::ServeArgs;

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
    Ok(())
}
