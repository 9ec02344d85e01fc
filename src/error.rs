//! Owns [`Error`], the crate-level error: a transparent wrapper of each module's error.

/// Any gitmq error. Each variant wraps the error of the module that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A topic or consumer name was refused.
    #[error(transparent)]
    Name(#[from] crate::queue::names::Error),
    /// An identity was refused or a commit did not decode.
    #[error(transparent)]
    Message(#[from] crate::git::message::Error),
    /// Opening or creating the repository failed.
    #[error(transparent)]
    Repo(#[from] crate::git::repo::Error),
    /// Reading or writing an object failed.
    #[error(transparent)]
    Odb(#[from] crate::git::odb::Error),
    /// Reading or moving a ref failed.
    #[error(transparent)]
    Refs(#[from] crate::git::refs::Error),
    /// Appending failed.
    #[error(transparent)]
    Produce(#[from] crate::queue::produce::Error),
    /// Consuming failed.
    #[error(transparent)]
    Consume(#[from] crate::queue::consume::Error),
    /// Copying messages onto another parent failed.
    #[error(transparent)]
    Restack(#[from] crate::git::message::restack::Error),
    /// A start point or position was refused.
    #[error(transparent)]
    Position(#[from] crate::queue::consume::position::Error),
    /// Joining or splitting topics failed.
    #[error(transparent)]
    Topology(#[from] crate::queue::topology::Error),
    /// Walking a topic failed.
    #[error(transparent)]
    Walk(#[from] crate::git::walk::Error),
    /// A handler failed on a message every time and dead letters are off (boxed: rare).
    #[error(transparent)]
    Handler(Box<crate::queue::consume::handler::Error>),
    /// A payload did not (de)serialize as JSON.
    #[cfg(feature = "json")]
    #[error(transparent)]
    Json(#[from] crate::queue::typed::Error),
    /// Pruning a topic failed (boxed: prune errors are large and rare).
    #[error(transparent)]
    Prune(Box<crate::queue::prune::Error>),
    /// A signing key or allowed-signers file was refused.
    #[error(transparent)]
    Sign(#[from] crate::git::sign::Error),
    /// Pushing or fetching failed (boxed: these errors are large and rare).
    #[error(transparent)]
    Replicate(Box<crate::queue::replicate::Error>),
}

impl From<crate::queue::replicate::Error> for Error {
    fn from(err: crate::queue::replicate::Error) -> Self {
        Error::Replicate(Box::new(err))
    }
}

impl From<crate::git::wire::Error> for Error {
    fn from(err: crate::git::wire::Error) -> Self {
        Error::Replicate(Box::new(err.into()))
    }
}

impl From<crate::git::message::HeaderError> for Error {
    fn from(err: crate::git::message::HeaderError) -> Self {
        Error::Message(err.into())
    }
}

impl From<crate::queue::consume::handler::Error> for Error {
    fn from(err: crate::queue::consume::handler::Error) -> Self {
        Error::Handler(Box::new(err))
    }
}

impl From<crate::queue::prune::Error> for Error {
    fn from(err: crate::queue::prune::Error) -> Self {
        Error::Prune(Box::new(err))
    }
}

impl From<crate::git::odb::loose::Error> for Error {
    fn from(err: crate::git::odb::loose::Error) -> Self {
        Error::Odb(err.into())
    }
}

impl From<crate::git::wire::HttpError> for Error {
    fn from(err: crate::git::wire::HttpError) -> Self {
        Error::Replicate(Box::new(err.into()))
    }
}
