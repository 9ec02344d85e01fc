//! Owns the listener and connections: the tokio runtime, the accept loop, TLS handshakes,
//! hyper's HTTP/1.1 connections (bounded request heads, a header read timeout) and the
//! graceful shutdown.
//!
//! Shutdown order (when `stop` is set): the listener closes (new connections are refused);
//! long polls and event streams are woken and end; every open connection finishes the
//! request it is serving and closes (at most [`DRAIN`]); then every writer appends, flushes
//! and answers the jobs it already took, and the producers are dropped flushed.

use std::{
    net::SocketAddr,
    sync::{atomic::AtomicBool, atomic::Ordering, Arc},
    time::Duration,
};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{routes::State, Config, Error};
use crate::Repository;

/// How long requests in flight may take to finish once shutdown began.
pub(crate) const DRAIN: Duration = Duration::from_secs(30);
/// How often the accept loop looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);
/// How long a client may take to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The smallest head limit accepted (a browser's cookies alone can be a few KiB).
const MIN_HEADER_BYTES: usize = 8192;

pub(crate) fn serve(
    repo: Repository,
    config: Config,
    tls: Option<TlsAcceptor>,
    stop: &AtomicBool,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    let threads = match config.threads {
        0 => std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
        n => n,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("gitmq-serve")
        .enable_io()
        .enable_time()
        .build()
        .map_err(Error::Runtime)?;
    let addr = config.listen;
    let state = Arc::new(State::new(repo, config));
    let result = runtime.block_on(accept_loop(state.clone(), addr, tls, stop, on_bound));
    // Requests are answered or cut off: whatever the writers took is flushed and answered.
    state.writers.close();
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn accept_loop(
    state: Arc<State>,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    stop: &AtomicBool,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    on_bound(listener.local_addr().unwrap_or(addr));
    let graceful = GracefulShutdown::new();
    let limits = state.config.limits;
    while !stop.load(Ordering::SeqCst) {
        let (stream, _peer) = match tokio::time::timeout(STOP_CHECK, listener.accept()).await {
            Err(_) => continue,
            Ok(Ok(accepted)) => accepted,
            Ok(Err(err)) => {
                // Out of file descriptors and friends: wait a little, keep serving.
                eprintln!("gitmq serve: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service = service_fn(move |req| super::routes::handle(state.clone(), req));
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_header_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
            match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    state.stopping.store(true, Ordering::SeqCst);
    state.wakers.all();
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("gitmq serve: requests still running after {DRAIN:?}; closing them");
    }
    Ok(())
}
