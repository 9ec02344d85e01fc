//! Owns `/git/`: the git host ([`crate::githost`]) mounted on the server, so `git clone`,
//! `git fetch`, `git push` and gitmq's own push/fetch/sync talk to this node over the same
//! port, tokens and TLS as the queue API.
//!
//! A request runs on the blocking pool: its body is read from hyper's stream as a
//! [`Read`](std::io::Read) (each chunk awaited there), the host answers with a status and
//! headers (sent at once), and the body is written through a bounded channel into the
//! streamed response, so a clone of any size holds a few chunks in memory.
//!
//! Rights per ref: `refs/heads/<topic>` and `refs/gitmq/consumers/<consumer>/<topic>` follow
//! the token's read and write globs for `<topic>`; any other ref (tags, `HEAD`, remote
//! tracking refs) needs a token whose globs cover every topic (`*`). Without `--auth`
//! everything is allowed (the server is on loopback).
//!
//! Invariant: a push changes nothing until the host has indexed and checked its pack (see
//! [`crate::githost`]); pushed packs are bounded by `--max-pack`; after a push, long polls
//! and event streams are woken so they see the moved topics at once.

use std::{
    io::{self, BufWriter, Read, Write},
    sync::Arc,
};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{
    body::Incoming,
    header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE},
    Request, Response, StatusCode,
};
use tokio::sync::{mpsc, oneshot};

use super::{auth::Access, body::Body, error::ApiError, routes::State};
use crate::{
    githost::{self, GitHost, Operation},
    ConsumerName, TopicName,
};

/// Chunks of a response body in flight between the host's thread and the connection.
const CHANNEL_DEPTH: usize = 8;
/// Bytes gathered before a chunk is sent.
const CHUNK_BYTES: usize = 64 << 10;

/// The host for `repo`, with the server's limits.
pub(crate) fn host(repo: &crate::Repository, config: &super::Config) -> GitHost {
    let mut options = githost::Options::default();
    options.limits.pack.max_pack_size = config.limits.max_pack_bytes;
    options.limits.max_request_bytes = config.limits.max_body_bytes as u64;
    GitHost::with_options(repo.clone(), options)
}

/// Answer a request under `/git/` (`rest` is the path below it).
pub(crate) async fn handle(
    state: &Arc<State>,
    req: Request<Incoming>,
    access: Access,
    rest: String,
) -> Result<Response<Body>, ApiError> {
    let (parts, incoming) = req.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let method = parts.method.as_str().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let (git_protocol, content_type, content_encoding) = (
        header("git-protocol"),
        header("content-type"),
        header("content-encoding"),
    );
    let (head_tx, head_rx) = oneshot::channel();
    let (body_tx, body) = Body::channel(CHANNEL_DEPTH);
    let runtime = tokio::runtime::Handle::current();
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let mut reader = BodyReader {
            body: incoming,
            runtime,
            chunk: Bytes::new(),
        };
        let rights = |operation: Operation, name: &str| allows(&state, &access, operation, name);
        let request = githost::Request {
            method: &method,
            path: &rest,
            query: query.as_deref(),
            git_protocol: git_protocol.as_deref(),
            content_type: content_type.as_deref(),
            content_encoding: content_encoding.as_deref(),
            body: &mut reader,
        };
        let pushed = rest.ends_with("git-receive-pack") && method == "POST";
        let response = match state.git.handle(request, &rights) {
            Ok(response) => response,
            Err(err) => githost::Response::from_error(&err),
        };
        if pushed {
            state.cursors.pages.clear();
            state.wakers.all();
        }
        let head = Head {
            status: response.status,
            content_type: response.content_type,
            headers: response.headers.clone(),
            length: response.content_length(),
        };
        if head_tx.send(head).is_err() {
            return;
        }
        let mut out = BufWriter::with_capacity(CHUNK_BYTES, ChannelWriter { tx: body_tx });
        if let Err(err) = response.write_body(&mut out) {
            eprintln!("gitmq serve: /git/ response cut short: {err}");
        }
    });
    let head = head_rx
        .await
        .map_err(|_| ApiError::internal("the git host stopped before answering"))?;
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(head.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(head.content_type));
    for (name, value) in head.headers {
        headers.append(
            HeaderName::from_static(lowercase(name)),
            HeaderValue::from_static(value),
        );
    }
    if let Some(length) = head.length {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    Ok(response)
}

/// What the host answered, sent before its body.
struct Head {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    length: Option<u64>,
}

/// The host's header names are static and ASCII; hyper wants them lowercase.
fn lowercase(name: &'static str) -> &'static str {
    match name {
        "Cache-Control" => "cache-control",
        "Pragma" => "pragma",
        "Expires" => "expires",
        "Allow" => "allow",
        other if other.bytes().all(|b| !b.is_ascii_uppercase()) => other,
        _ => "x-gitmq-header",
    }
}

/// Whether `access` may do `operation` on the full ref `name`.
fn allows(state: &State, access: &Access, operation: Operation, name: &str) -> bool {
    let Some(tokens) = state.config.tokens.as_ref() else {
        return true;
    };
    let topic = topic_of(name);
    let subject = topic.as_ref().map_or("*", TopicName::as_str);
    match operation {
        Operation::Read => tokens.may_read(access, subject),
        Operation::Write => tokens.may_write(access, subject),
    }
}

/// The topic a ref belongs to: a topic's branch or a consumer's position on it.
fn topic_of(name: &str) -> Option<TopicName> {
    if let Some(topic) = TopicName::from_ref(name) {
        return Some(topic);
    }
    ConsumerName::parse_position_ref(name).map(|(_, topic)| topic)
}

/// A request body as a blocking reader: each chunk awaited on the server's runtime.
struct BodyReader {
    body: Incoming,
    runtime: tokio::runtime::Handle,
    chunk: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.runtime.block_on(self.body.frame()) {
                None => return Ok(0),
                Some(Err(err)) => return Err(io::Error::other(err)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.chunk = data;
                    }
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// A response body fed from a blocking thread.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
