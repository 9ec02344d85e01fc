//! Owns the git host's error: what went wrong with one request, and the HTTP status it maps to.
//!
//! Invariant: an error never carries request bytes beyond a short, lossily decoded excerpt
//! (so a token sent by mistake in a body cannot reach a log in full), and every variant has
//! one status: 4xx when the request is at fault, 5xx when the repository or the server is. A
//! 5xx error may name the server's files: it is for the server's log, and
//! [`Response::from_error()`](super::Response::from_error) shows the client none of it (nor do
//! the in-protocol answers: `unpack`/`ng` reasons and band-3 messages carry no path).
//! Refusals a well-formed git client can meet (a ref it may not push, a non-fast-forward, a
//! want that is not ours) are not errors: they go back inside the protocol (`ng` lines,
//! `ERR` packets), where git prints them.

use std::{io, path::PathBuf};

use crate::git::{odb, refs, wire::pktline};

/// How many bytes of a bad protocol line an error quotes.
const EXCERPT_LEN: usize = 64;

/// Returned by [`GitHost::handle()`](super::GitHost::handle) and
/// [`Response::write_body()`](super::Response::write_body).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path names no smart-HTTP endpoint.
    #[error(
        "no git endpoint at {path:?}: expected info/refs, git-upload-pack or git-receive-pack, \
         optionally under one <name>.git/ segment"
    )]
    NotFound {
        /// The path as given (relative to the mount point).
        path: String,
    },
    /// The method is not the one the endpoint takes.
    #[error("method {method} is not allowed here (use {allow})")]
    MethodNotAllowed {
        /// The method received.
        method: String,
        /// The method the endpoint takes (for an `Allow` header).
        allow: &'static str,
    },
    /// `info/refs` without `?service=`: a "dumb" HTTP client, which this host does not serve.
    #[error(
        "this server speaks git's smart HTTP protocol only: ask for \
         info/refs?service=git-upload-pack or info/refs?service=git-receive-pack"
    )]
    NotSmart,
    /// `?service=` names another service.
    #[error("unknown service {service:?} (expected git-upload-pack or git-receive-pack)")]
    UnknownService {
        /// The service asked for.
        service: String,
    },
    /// A POST whose body is not the service's request type.
    #[error("content type {found:?} is not {expected}")]
    UnsupportedMediaType {
        /// The `Content-Type` received, if any.
        found: Option<String>,
        /// The one expected.
        expected: &'static str,
    },
    /// A body compressed in a way this host does not read.
    #[error("content encoding {encoding:?} is not supported (gzip or identity)")]
    UnsupportedEncoding {
        /// The `Content-Encoding` received.
        encoding: String,
    },
    /// The client may not use this service at all.
    #[error("access denied: this client may not {action}")]
    Forbidden {
        /// "fetch" or "push".
        action: &'static str,
    },
    /// The (decompressed) request exceeds a limit of [`Limits`](super::Limits).
    #[error("the request exceeds the limit of {limit} {what}")]
    TooLarge {
        /// What was counted ("bytes", "wants", "haves", "commands").
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The request is not what the protocol allows.
    #[error("protocol error: {reason}{}", excerpt_suffix(line.as_deref()))]
    Protocol {
        /// What is wrong.
        reason: &'static str,
        /// The start of the offending line, lossily decoded.
        line: Option<String>,
    },
    /// The request's pkt-line framing is broken.
    #[error("the request's pkt-line framing is broken")]
    PktLine(#[source] pktline::Error),
    /// Reading the request body failed (the client went away, or its gzip is corrupt).
    #[error("reading the request body failed")]
    ReadBody(#[source] io::Error),
    /// Writing the response body failed (the client went away).
    #[error("writing the response body failed")]
    WriteBody(#[source] io::Error),
    /// Reading refs failed.
    #[error(transparent)]
    Refs(#[from] refs::Error),
    /// Reading objects failed.
    #[error(transparent)]
    Odb(#[from] odb::Error),
    /// The repository is corrupt: an object names one that is missing or malformed.
    #[error("the repository is corrupt: {reason} ({id})")]
    Corrupt {
        /// What is wrong.
        reason: &'static str,
        /// The object at fault.
        id: gix_hash::ObjectId,
    },
    /// The local file system refused.
    #[error("git host I/O failed at {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn excerpt_suffix(line: Option<&str>) -> String {
    line.map(|l| format!(": {l:?}")).unwrap_or_default()
}

/// The start of `line`, lossily decoded, for an error message.
pub(crate) fn excerpt(line: &[u8]) -> String {
    let cut = line.get(..EXCERPT_LEN).unwrap_or(line);
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if line.len() > EXCERPT_LEN {
        text.push('…');
    }
    text
}

/// A protocol error quoting `line`.
pub(crate) fn protocol(reason: &'static str, line: &[u8]) -> Error {
    Error::Protocol {
        reason,
        line: Some(excerpt(line)),
    }
}

impl Error {
    /// The HTTP status this error maps to.
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound { .. } => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::NotSmart
            | Error::UnknownService { .. }
            | Error::Protocol { .. }
            | Error::PktLine(_)
            | Error::ReadBody(_) => 400,
            Error::UnsupportedMediaType { .. } | Error::UnsupportedEncoding { .. } => 415,
            Error::Forbidden { .. } => 403,
            Error::TooLarge { .. } => 413,
            Error::WriteBody(_)
            | Error::Refs(_)
            | Error::Odb(_)
            | Error::Corrupt { .. }
            | Error::Io { .. } => 500,
        }
    }

    /// Whether the client is at fault (a 4xx status).
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_statuses_match_the_fault() {
        let long = vec![b'a'; 500];
        let err = protocol("expected a want", &long);
        let text = err.to_string();
        assert!(text.len() < 150, "{text}");
        assert_eq!(err.status(), 400);
        assert!(err.is_client_error());
        assert_eq!(
            Error::TooLarge {
                what: "bytes",
                limit: 1
            }
            .status(),
            413
        );
        assert_eq!(
            Error::Io {
                path: PathBuf::new(),
                source: io::Error::other("x")
            }
            .status(),
            500
        );
    }
}
