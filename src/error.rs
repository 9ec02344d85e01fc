//! Owns [`Error`], the crate-level error: a transparent wrapper of each module's error.

/// Any gitmq error. Each variant wraps the error of the module that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A topic or consumer name was refused.
    #[error(transparent)]
    Name(#[from] crate::name::Error),
    /// An identity was refused or a commit did not decode.
    #[error(transparent)]
    Message(#[from] crate::message::Error),
    /// Opening or creating the repository failed.
    #[error(transparent)]
    Repo(#[from] crate::repo::Error),
    /// Reading or writing an object failed.
    #[error(transparent)]
    Odb(#[from] crate::odb::Error),
    /// Reading or moving a ref failed.
    #[error(transparent)]
    Refs(#[from] crate::refs::Error),
    /// Appending failed.
    #[error(transparent)]
    Produce(#[from] crate::produce::Error),
    /// Copying messages onto another parent failed.
    #[error(transparent)]
    Restack(#[from] crate::restack::Error),
    /// A start point or position was refused.
    #[error(transparent)]
    Position(#[from] crate::position::Error),
    /// Joining or splitting topics failed.
    #[error(transparent)]
    Topology(#[from] crate::topology::Error),
    /// Walking a topic failed.
    #[error(transparent)]
    Walk(#[from] crate::walk::Error),
    /// A handler failed on a message every time and dead letters are off (boxed: rare).
    #[error(transparent)]
    Handler(Box<crate::handler::Error>),
    /// A payload did not (de)serialize as JSON.
    #[cfg(feature = "json")]
    #[error(transparent)]
    Json(#[from] crate::typed::Error),
    /// Pruning a topic failed (boxed: prune errors are large and rare).
    #[error(transparent)]
    Prune(Box<crate::prune::Error>),
    /// Talking to a remote failed (boxed: transport errors are large and rare).
    #[error(transparent)]
    Transport(Box<crate::transport::Error>),
}

impl From<crate::transport::Error> for Error {
    fn from(err: crate::transport::Error) -> Self {
        Error::Transport(Box::new(err))
    }
}

impl From<crate::message::HeaderError> for Error {
    fn from(err: crate::message::HeaderError) -> Self {
        Error::Message(err.into())
    }
}

impl From<crate::handler::Error> for Error {
    fn from(err: crate::handler::Error) -> Self {
        Error::Handler(Box::new(err))
    }
}

impl From<crate::prune::Error> for Error {
    fn from(err: crate::prune::Error) -> Self {
        Error::Prune(Box::new(err))
    }
}

impl From<crate::odb::loose::Error> for Error {
    fn from(err: crate::odb::loose::Error) -> Self {
        Error::Odb(err.into())
    }
}
