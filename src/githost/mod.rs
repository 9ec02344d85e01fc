//! The git host: the server side of git's smart HTTP for one gitmq repository, so that
//! `git clone/fetch/push` and gitmq's own transport ([`replicate`](crate::replicate)) talk to
//! a gitmq node directly, with no other git server.
//!
//! It is HTTP-stack agnostic and blocking: a web server (the `serve` layer, or the tiny one in
//! the tests) mounts it under a path such as `/git/`, hands each request in as a [`Request`]
//! (method, path below the mount point, query, the `Git-Protocol`, `Content-Type` and
//! `Content-Encoding` headers, the body as a [`Read`](std::io::Read)) together with an
//! [`Access`] callback that decides read and write per ref, and sends back the [`Response`]:
//! status, content type and cache headers at once, then the body streamed into any
//! [`Write`](std::io::Write) with [`Response::write_body()`] (a pack of any size in bounded
//! memory).
//!
//! ```text
//!  GET  info/refs?service=git-upload-pack    v2 capabilities (Git-Protocol: version=2) or
//!                                            the v0 ref advertisement (+ shallow lines)
//!  POST git-upload-pack   v2: ls-refs | fetch (negotiation rounds, ready, shallow-info,
//!                         packfile in side-band-64k)   v0: wants, haves, ACK/NAK, pack
//!         upload::{objects (wants checked against readable refs), walk (commits the client
//!         lacks, dates only order it), depth (`clone --depth n`), enumerate (trees, blobs,
//!         tags), pack (streamed)}
//!  GET  info/refs?service=git-receive-pack   v0 advertisement (report-status(-v2), atomic,
//!                                            delete-refs, side-band-64k, quiet, no-thin)
//!  POST git-receive-pack  commands -> pack into quarantine (index_pack) -> fsck-like checks
//!                         and connectivity -> pack into objects/pack/ -> refs by lock + CAS
//!                         (atomic: all or none) -> report-status
//! ```
//!
//! URL layout: `info/refs`, `git-upload-pack`, `git-receive-pack`, optionally under one
//! `<name>.git/` segment: every name reaches the one repository (so both
//! `git clone http://host/git/` and `git clone http://host/git/queue.git` work).
//!
//! ## Example
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use gitmq::githost::{AllowAll, GitHost, Request};
//!
//! let dir = tempfile::tempdir()?;
//! let repo = gitmq::Repository::init(dir.path().join("q.git"))?;
//! repo.producer(&gitmq::TopicName::new("orders")?).publish(b"{\"id\":1}")?;
//!
//! let host = GitHost::new(repo);
//! let mut body: &[u8] = b"";
//! let response = host.handle(
//!     Request {
//!         method: "GET",
//!         path: "queue.git/info/refs",
//!         query: Some("service=git-upload-pack"),
//!         git_protocol: Some("version=2"),
//!         content_type: None,
//!         content_encoding: None,
//!         body: &mut body,
//!     },
//!     &AllowAll,
//! )?;
//! assert_eq!(response.status, 200);
//! assert_eq!(response.content_type, "application/x-git-upload-pack-advertisement");
//! // A web server sends the headers, then streams the body to the client:
//! let mut out = Vec::new();
//! response.write_body(&mut out)?;
//! assert!(out.starts_with(b"000eversion 2\n"));
//! # Ok(()) }
//! ```
//!
//! Errors: [`GitHost::handle()`] returns an [`Error`] whose [`Error::status()`] is the HTTP
//! status (4xx for bad requests, 413 past a [`Limits`] bound, 5xx for the repository); a
//! refusal a git client can meet (a ref it may not push, a non-fast-forward, a lost
//! compare-and-swap, a want it may not have) is answered inside the protocol with status 200,
//! as git's `http-backend` does, so git prints the reason.
//!
//! Invariants: objects before refs (a pushed pack is indexed, checked and renamed into
//! `objects/pack/`, fsynced per [`Options::sync`], before any ref moves); refs move only by
//! compare-and-swap under their lock; bad input never panics and every size read from a
//! request is bounded by [`Limits`]; the host never runs `git`.

mod access;
mod advertise;
mod body;
mod commit;
mod error;
mod http;
mod receive;
mod upload;
mod view;

use std::time::Duration;

/// Bounds on a pushed pack ([`Limits::pack`]).
pub use crate::git::odb::pack::index_pack::Limits as PackLimits;
/// How a fetch's pack is compressed ([`Options::compression`]).
pub use crate::git::odb::pack::write::Compression;
pub use access::{Access, AllowAll, Operation, ReadOnly};
pub use error::Error;
pub use http::{Request, Response, Service, NO_CACHE_HEADERS};

use crate::git::repo::Repository;
use http::{Body, Endpoint};

/// Bounds on what one request may make the host read or hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Decoded bytes of a request before its pack (an upload-pack request, a push's
    /// commands); a gzip body is bounded after decompression.
    pub max_request_bytes: u64,
    /// `want` lines (and `ls-refs` prefixes) in one request.
    pub max_wants: usize,
    /// `have` (and `shallow`) lines in one request.
    pub max_haves: usize,
    /// Commands in one push.
    pub max_commands: usize,
    /// Bounds on a pushed pack (size, objects, delta resolution).
    pub pack: PackLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 64 << 20,
            max_wants: 1 << 20,
            max_haves: 1 << 20,
            max_commands: 1 << 20,
            pack: PackLimits::default(),
        }
    }
}

/// How the host behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Request bounds.
    pub limits: Limits,
    /// Fsync a pushed pack and each moved ref (and their directories) before answering, so
    /// an `ok` survives a power loss (git's `core.fsync`). On by default.
    pub sync: bool,
    /// Refuse to move a topic (`refs/heads/*`) to a commit that does not reach its old value
    /// (git's `receive.denyNonFastForwards`): rewriting a topic would drop acknowledged
    /// messages. On by default; positions (`refs/gitmq/*`) may always move.
    pub deny_non_fast_forwards: bool,
    /// Allow pushes to delete refs (the `delete-refs` capability is always offered; refused
    /// deletions get `ng <ref> deletion prohibited`). On by default.
    pub allow_deletes: bool,
    /// How a fetch's pack is compressed: stored blocks (no CPU, larger on the wire; the
    /// default, right on a LAN) or deflate at a level.
    pub compression: Compression,
    /// How long a push waits for a ref another writer holds locked.
    pub lock_timeout: Duration,
    /// The `agent=` the host announces.
    pub agent: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            sync: true,
            deny_non_fast_forwards: true,
            allow_deletes: true,
            compression: Compression::Stored,
            lock_timeout: Duration::from_secs(10),
            agent: crate::git::wire::AGENT.to_owned(),
        }
    }
}

/// The git host of one repository. Cheap to share between threads (`&self` everywhere);
/// each request opens its own object database handle.
#[derive(Debug, Clone)]
pub struct GitHost {
    repo: Repository,
    options: Options,
}

/// Lifecycle
impl GitHost {
    /// Serve `repo` with the default [`Options`]. Quarantine directories left by a killed
    /// process more than a day ago are removed.
    pub fn new(repo: Repository) -> Self {
        Self::with_options(repo, Options::default())
    }

    /// Serve `repo` with `options`.
    pub fn with_options(repo: Repository, options: Options) -> Self {
        receive::remove_stale_quarantines(&repo.git_dir().join("objects"));
        Self { repo, options }
    }
}

/// Access
impl GitHost {
    /// The repository served.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.options
    }
}

/// Serving
impl GitHost {
    /// Answer one request. A push is received, checked and applied before this returns;
    /// a fetch's pack is produced while [`Response::write_body()`] streams it.
    ///
    /// After an error (and after some answers, such as a refused push) the request body may
    /// be partly unread: discard the rest (bounded) or close the connection.
    pub fn handle(&self, request: Request<'_>, access: &dyn Access) -> Result<Response, Error> {
        let endpoint = http::route(&request)?;
        let (Endpoint::InfoRefs(service) | Endpoint::Rpc(service)) = endpoint;
        if !access.allows_service(service) {
            return Err(Error::Forbidden {
                action: match service {
                    Service::UploadPack => "fetch",
                    Service::ReceivePack => "push",
                },
            });
        }
        let agent = self.options.agent.as_str();
        match endpoint {
            Endpoint::InfoRefs(Service::UploadPack) => {
                let body = if request.wants_v2() {
                    advertise::upload_pack_v2(agent)
                } else {
                    let mut odb = self.repo.odb();
                    let view = view::RefView::read(&self.repo, &mut odb, access, false)?;
                    let shallow = crate::git::shallow::Shallow::read(self.repo.git_dir())
                        .map_err(crate::git::odb::Error::from)?;
                    advertise::upload_pack_v0(&view, &shallow, agent)
                };
                Ok(Response::ok(
                    Service::UploadPack.advertisement_type(),
                    Body::Bytes(body),
                ))
            }
            Endpoint::InfoRefs(Service::ReceivePack) => {
                let mut odb = self.repo.odb();
                let view = view::RefView::read(&self.repo, &mut odb, access, true)?;
                Ok(Response::ok(
                    Service::ReceivePack.advertisement_type(),
                    Body::Bytes(advertise::receive_pack(&view, agent)),
                ))
            }
            Endpoint::Rpc(service) => {
                let v2 = request.wants_v2();
                let Request {
                    body: raw,
                    content_encoding,
                    ..
                } = request;
                let mut body =
                    body::open(raw, content_encoding, self.options.limits.max_request_bytes)?;
                match service {
                    Service::UploadPack if v2 => upload::v2::serve(self, &mut body, access),
                    Service::UploadPack => upload::v0::serve(self, &mut body, access),
                    Service::ReceivePack => receive::serve(self, &mut body, access),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_and_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn the_host_is_shared_between_threads_and_a_response_moves_to_another() {
        send_and_sync::<GitHost>();
        send_and_sync::<Error>();
        send::<Response>();
    }
}
