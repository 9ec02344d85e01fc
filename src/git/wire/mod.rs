//! Owns talking to a git server over smart HTTP: gitmq's own implementation of git's
//! protocol (no `git` process, no libgit2): fetch ([`mod@crate::replicate::fetch`], upload-pack v2 or v0) and push
//! ([`crate::replicate::push`], receive-pack; see that module for the plan, the rebuild on a lost race and the
//! report). The fetch side:
//!
//! ```text
//!  fetch::fetch(repo, "origin")                      config: remote.origin.url -> RemoteUrl
//!    |
//!    | Remote::connect      GET  <url>/info/refs?service=git-upload-pack  (Git-Protocol: version=2)
//!    |                      v2::parse_advertisement -> capabilities (or a v0 ref list)
//!    | Remote::list_refs    POST <url>/git-upload-pack  command=ls-refs, ref-prefix refs/heads/ ...
//!    | wants = remote tips not in the odb; haves = local tips of the same refs
//!    | Remote::fetch_pack   POST <url>/git-upload-pack  command=fetch, thin-pack, want.., have.., done
//!    |                        v2::read_fetch_response -> "packfile" section
//!    |                        sideband::Reader (band 1 -> pack bytes, 2 -> progress, 3 -> error)
//!    |                        odb::pack::index_pack: tmp file, ids, deltas, missing bases
//!    |                        appended from the odb (a thin pack), idx, rename, fsync
//!    | every want now in the odb?
//!    v
//!  refs (lock + CAS each): refs/remotes/<remote>/<topic>, refs/gitmq/remotes/<remote>/...,
//!  fast-forward refs/heads/<topic>; a diverged local topic is left and reported
//! ```
//!
//! ```no_run
//! # fn main() -> Result<(), gitmq::Error> {
//! let repo = gitmq::Repository::open("/srv/replica.git")?;
//! // A remote added with `git remote add origin https://user:token@host/queue.git`, or a URL.
//! let prefixes = gitmq::replicate::fetch::DEFAULT_PREFIXES;
//! let report = gitmq::replicate::fetch(&repo, "origin", &prefixes)?;
//! for update in &report.updates {
//!     println!("{:?} {} {}", update.kind, update.name, update.new);
//! }
//! # Ok(()) }
//! ```
//!
//! Invariants: protocol code ([`pktline`], [`sideband`], [`v2`], [`v0`], [`receive_pack`],
//! [`url`], [`credentials`])
//! is sans-IO or generic over [`std::io::Read`], and never panics on what a server sends;
//! only `http.rs` knows reqwest, behind [`HttpClient`]; credentials (a URL's userinfo, the
//! environment, git's credential store) reach only the HTTP client's `Authorization` header,
//! never an error or a log line; local refs move only after the pack naming their objects is
//! indexed, renamed and fsynced; remote refs move only by the server's compare-and-swap from
//! the values gitmq read.

pub mod credentials;
#[cfg(feature = "http")]
pub mod http;
pub mod pktline;
pub mod receive_pack;
pub(crate) mod remote;
pub mod retry;
pub mod sideband;
pub mod sideband_writer;
pub mod url;
pub mod v0;
pub mod v2;

use std::{io::Read, time::Duration};

pub use remote::Remote;
pub use url::RemoteUrl;

/// A callback receiving the server's progress text (git's "Counting objects..." lines).
pub type Progress<'a> = &'a mut dyn FnMut(&[u8]);

/// The agent gitmq announces.
pub const AGENT: &str = concat!("gitmq/", env!("CARGO_PKG_VERSION"));

/// Returned by [`HttpClient::send()`]: the HTTP seam's own failures, nothing about git.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The server could not be reached.
    #[error("cannot connect to {url}")]
    Connect {
        /// The URL, without credentials.
        url: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server did not answer in time.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout {
        /// The URL, without credentials.
        url: String,
        /// The timeout in force.
        timeout: Duration,
    },
    /// The server answered with an HTTP error status.
    #[error("{url} answered HTTP {status}: {}", status_meaning(*status))]
    Status {
        /// The URL, without credentials.
        url: String,
        /// The status code.
        status: u16,
    },
    /// Another HTTP failure.
    #[error("HTTP request to {url} failed")]
    Other {
        /// The URL, without credentials.
        url: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl HttpError {
    /// Whether trying again later may succeed.
    pub fn is_spurious(&self) -> bool {
        match self {
            HttpError::Connect { .. } | HttpError::Timeout { .. } | HttpError::Other { .. } => true,
            HttpError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
        }
    }
}

/// Returned by [`Remote`] and the protocol's readers: a failed request, or a server that does
/// not speak git's smart HTTP as gitmq does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not one gitmq can fetch from.
    #[error(transparent)]
    Url(#[from] url::Error),
    /// The request failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Reading a response body failed (the connection broke or the body was cut short).
    #[error("reading the response from {url} failed")]
    Body {
        /// The URL, without credentials.
        url: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A response is larger than gitmq reads for its kind.
    #[error("the response from {url} exceeds {limit} bytes")]
    ResponseTooLarge {
        /// The URL, without credentials.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The server is not a smart-HTTP git server.
    #[error(
        "{url} is not a smart-HTTP git server (content type {content_type:?}); dumb HTTP is not supported"
    )]
    NotSmartHttp {
        /// The URL, without credentials.
        url: String,
        /// What it answered.
        content_type: Option<String>,
    },
    /// A protocol message (v2 or v0) was malformed, or the server reported an error.
    #[error(transparent)]
    Protocol(#[from] v2::Error),
    /// Framing failed.
    #[error(transparent)]
    PktLine(#[from] pktline::Error),
    /// The pack stream failed, or the server reported an error inside it.
    #[error(transparent)]
    Sideband(#[from] sideband::Error),
    /// The received pack was refused.
    #[error(transparent)]
    Pack(#[from] crate::git::odb::pack::index_pack::Error),
}

impl Error {
    /// Whether trying again later may succeed: the network or server failed, the request or
    /// data was not wrong.
    pub fn is_spurious(&self) -> bool {
        match self {
            Error::Http(err) => err.is_spurious(),
            Error::Body { .. } => true,
            Error::Protocol(err) => err.is_spurious(),
            Error::PktLine(err) => err.is_spurious(),
            Error::Sideband(err) => err.is_spurious(),
            Error::Pack(err) => err.is_spurious(),
            _ => false,
        }
    }

    /// The HTTP status the server answered, if that is what failed.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Http(HttpError::Status { status, .. }) => Some(*status),
            _ => None,
        }
    }
}

fn status_meaning(status: u16) -> &'static str {
    match status {
        401 => "authentication required (put credentials in the URL: https://user:token@host/...)",
        403 => "access denied",
        404 => "repository not found",
        408 | 429 => "try again later",
        500..=599 => "server error",
        _ => "unexpected status",
    }
}

/// The HTTP method of a [`Request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

/// One HTTP request the protocol code needs made.
#[derive(Debug)]
pub struct Request<'a> {
    /// `GET` or `POST`.
    pub method: Method,
    /// The remote (its credentials, if any, go into an `Authorization` header).
    pub url: &'a RemoteUrl,
    /// The path after the remote's URL, e.g. `info/refs?service=git-upload-pack`.
    pub path: &'a str,
    /// Extra headers.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body of a `POST`.
    pub body: Body,
}

/// The body of a [`Request`]: in memory, or bytes followed by a file (a pack being pushed),
/// sent with its `Content-Length` (some servers refuse chunked request bodies).
#[derive(Debug)]
pub enum Body {
    /// No body.
    Empty,
    /// These bytes.
    Bytes(Vec<u8>),
    /// `head`, then the first `file_len` bytes of `file` from its current position.
    File {
        /// Bytes sent before the file.
        head: Vec<u8>,
        /// The file.
        file: std::fs::File,
        /// How many bytes of the file to send.
        file_len: u64,
    },
}

impl Body {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::File { head, file_len, .. } => head.len() as u64 + file_len,
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A successful (2xx) HTTP response.
pub struct Response {
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body, streamed.
    pub body: Box<dyn Read + Send>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// What the protocol code needs from an HTTP client: send one request, stream the body of a
/// 2xx response, and map everything else to an [`HttpError`] (a non-2xx status is
/// [`HttpError::Status`]). `http::ReqwestClient` is the real one; tests plug in their own.
pub trait HttpClient {
    /// Send `request`.
    fn send(&self, request: Request<'_>) -> Result<Response, HttpError>;
}

impl<C: HttpClient + ?Sized> HttpClient for &C {
    fn send(&self, request: Request<'_>) -> Result<Response, HttpError> {
        (**self).send(request)
    }
}
