//! Owns moving a queue between repositories over smart HTTP: [`mod@fetch`] (a remote's topics and
//! positions into this repository) and [`push`] (this repository's topics and positions onto
//! the remote, rebuilding on a lost race). The wire protocol itself is `git::wire`'s.

pub mod fetch;
pub mod push;
#[cfg(feature = "http")]
pub mod sync;

pub use crate::git::config::remote::AddError as AddRemoteError;
#[cfg(feature = "http")]
pub use crate::git::wire::http;
pub use crate::git::wire::{
    Body, HttpClient, HttpError, Method, Progress, RemoteUrl, Request, Response,
};

/// Returned by [`fetch()`](fetch_with) and [`push`]: the wire failed, or what the wire
/// carried could not be applied to this repository or the remote's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Talking to the server failed (the request, the protocol, the received pack).
    #[error(transparent)]
    Wire(#[from] crate::git::wire::Error),
    /// The repository's config could not be read.
    #[error(transparent)]
    Config(#[from] crate::git::config::Error),
    /// Neither a URL nor a configured remote.
    #[error(
        "no remote named {name:?} (add one with `git remote add {name} <url>`, or pass a URL)"
    )]
    NoSuchRemote {
        /// The name given.
        name: String,
    },
    /// The server sent a pack without an object gitmq asked for.
    #[error("the server's pack lacks {id}, which was wanted")]
    Incomplete {
        /// The missing object.
        id: gix_hash::ObjectId,
    },
    /// Moving a ref failed.
    #[error(transparent)]
    Refs(#[from] crate::git::refs::Error),
    /// Reading local objects failed.
    #[error(transparent)]
    Walk(#[from] crate::git::walk::Error),
    /// The remote refused to move a ref, and not because another writer won a race.
    #[error("the remote refused to update {name}: {reason}")]
    Rejected {
        /// The full ref name.
        name: String,
        /// The server's words.
        reason: String,
    },
    /// The remote could not unpack the pushed objects; no ref moved.
    #[error("the remote could not unpack the pushed objects: {reason}")]
    Unpack {
        /// The server's words.
        reason: String,
    },
    /// The server's push report lacks a verdict for a ref it was asked to move.
    #[error("the remote gave no verdict for {name}")]
    MissingVerdict {
        /// The full ref name.
        name: String,
    },
    /// The remote lacks history that was pruned here: a pruned repository can push only onto
    /// a remote that holds what lies below its boundary.
    #[error("the remote lacks the history pruned here below {boundary}: push from a repository that has it, or to a remote that does")]
    PrunedHere {
        /// The oldest message kept here (a shallow commit).
        boundary: gix_hash::ObjectId,
    },
    /// Other producers kept pushing first.
    #[error("gave up after {attempts} attempts: other producers kept moving the remote")]
    Conflicts {
        /// Attempts made.
        attempts: u32,
    },
    /// Copying unpushed messages onto the remote's head failed.
    #[error(transparent)]
    Restack(#[from] crate::git::message::restack::Error),
    /// Writing the pack to push to a temporary file, or reading it back, failed.
    #[error("writing the pack to push failed")]
    Spool {
        /// The cause.
        source: crate::git::odb::pack::write::Error,
    },
}

impl Error {
    /// Whether trying again later may succeed: the network or server failed, the request or
    /// data was not wrong.
    pub fn is_spurious(&self) -> bool {
        matches!(self, Error::Wire(err) if err.is_spurious())
    }

    /// The HTTP status the server answered, if that is what failed.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Wire(err) => err.http_status(),
            _ => None,
        }
    }
}

impl From<HttpError> for Error {
    fn from(err: HttpError) -> Self {
        Error::Wire(err.into())
    }
}

impl From<crate::git::wire::v2::Error> for Error {
    fn from(err: crate::git::wire::v2::Error) -> Self {
        Error::Wire(err.into())
    }
}

impl From<crate::git::wire::url::Error> for Error {
    fn from(err: crate::git::wire::url::Error) -> Self {
        Error::Wire(err.into())
    }
}
#[cfg(feature = "http")]
pub use fetch::fetch;
pub use fetch::{fetch_with, FetchOptions, FetchReport, RefUpdate, UpdateKind};
