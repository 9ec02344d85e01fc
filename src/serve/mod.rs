//! `gitmq serve`: one process that is a queue service over HTTP for every language and a git
//! host for the cluster (feature `serve`): the queue API under `/v1/`, and under `/git/` the
//! repository over git's smart HTTP ([`crate::githost`], mounted by `git`).
//!
//! ```text
//!  client ──TCP/TLS──> conn (accept loop, hyper HTTP/1.1, graceful shutdown)
//!                        │
//!                        v
//!                      routes (auth: token -> read/write per topic glob; limits)
//!        ┌───────────────┼──────────────────┬───────────────┬──────────────┐
//!        v               v                  v               v              v
//!   publish (parse   consume (cursor    position (CAS   sse (tail as    listing, metrics,
//!   body -> jobs)    pool, long-poll,   on the ref)     events)         healthz
//!        │           pages: rendered
//!        │           once, read ahead)
//!        │               ^                                  ^
//!        v               │ notify (topic moved)             │
//!   writer: one thread and one Producer per topic; group commit: every job that
//!   arrived while the previous batch was flushing (and the clients it answered, if they
//!   come back at once) goes into the next batch (one pack, one ref update, one round of
//!   fsyncs); a job's messages are never split across batches
//! ```
//!
//! Invariants: a publish is answered with commit ids only once its batch is acknowledged
//! (on the topic, durable per [`Config::durability`]); a request's messages land in one
//! batch, so a publish is all or nothing; on shutdown the listener closes first, requests in
//! flight finish, then every writer flushes what it accepted. Tokens never reach a log line,
//! an error or a response.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::atomic::AtomicBool;
//! let repo = gitmq::Repository::init("/tmp/queue.git")?;
//! let config = gitmq::serve::Config::new("127.0.0.1:8470".parse()?);
//! let stop = AtomicBool::new(false); // set it (e.g. from a SIGTERM handler) to stop
//! gitmq::serve::run(repo, config, &stop, |addr| println!("listening on {addr}"))?;
//! # Ok(()) }
//! ```

mod auth;
mod body;
mod conn;
mod consume;
mod error;
mod git;
mod limits;
mod listing;
mod metrics;
mod pages;
mod position;
mod publish;
mod render;
mod routes;
mod sse;
mod tls;
mod writer;

use std::{net::SocketAddr, path::PathBuf, sync::atomic::AtomicBool};

pub use auth::{Access, AuthError, Tokens};
pub use error::Error;
pub use limits::Limits;

use crate::{Durability, Identity, Repository};

/// How `gitmq serve` listens and what it allows.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0: any free port; the bound address goes to `on_bound`).
    pub listen: SocketAddr,
    /// Tokens and their rights; `None`: anyone may do anything (loopback only, unless
    /// [`insecure_listen`](Self::insecure_listen)).
    pub tokens: Option<Tokens>,
    /// Listen on a non-loopback address without `tokens`.
    pub insecure_listen: bool,
    /// PEM certificate chain and private key: serve HTTPS (rustls) instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// When a published message is acknowledged (and its id returned).
    pub durability: Durability,
    /// Author and committer of published messages.
    pub identity: Identity,
    /// Size bounds on requests.
    pub limits: Limits,
    /// Worker threads of the async runtime (0: one per core).
    pub threads: usize,
}

impl Config {
    /// Listen on `listen`, no tokens, no TLS, durability `batch`, default limits.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            tokens: None,
            insecure_listen: false,
            tls: None,
            durability: Durability::Batch,
            identity: Identity::from_env(),
            limits: Limits::default(),
            threads: 0,
        }
    }
}

/// Serve `repo` per `config` until `stop` is set, then shut down gracefully: stop accepting,
/// finish the requests in flight (long polls and event streams end at once), flush every
/// producer. `on_bound` is called with the bound address once the listener is ready.
pub fn run(
    repo: Repository,
    config: Config,
    stop: &AtomicBool,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    if config.tokens.is_none() && !config.listen.ip().is_loopback() && !config.insecure_listen {
        return Err(Error::InsecureListen {
            addr: config.listen,
        });
    }
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    conn::serve(repo, config, tls, stop, on_bound)
}
