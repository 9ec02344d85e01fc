//! Owns the object database of a repository: where objects are looked up and written.
//!
//! Invariant: gitmq reads objects by id only through [`Odb`], which tries loose objects.
//! (Packs are read in a later slice.) Writes of single objects go to the loose store.

pub mod loose;
pub mod pack;

use std::path::PathBuf;

use gix_hash::{oid, ObjectId};

pub use loose::LooseStore;

/// Returned by [`Odb::read()`] and [`Odb::read_commit()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a loose object failed.
    #[error(transparent)]
    Loose(#[from] loose::Error),
    /// No store holds the object.
    #[error("object {id} is missing from the repository")]
    Missing {
        /// The missing id.
        id: ObjectId,
    },
    /// The object exists but is not a commit.
    #[error("object {id} is a {kind}, not a commit")]
    NotACommit {
        /// The object's id.
        id: ObjectId,
        /// Its kind.
        kind: gix_object::Kind,
    },
}

/// Every object store of one repository.
#[derive(Debug, Clone)]
pub struct Odb {
    loose: LooseStore,
}

/// Lifecycle
impl Odb {
    /// The database in `objects_dir`.
    pub fn at(objects_dir: impl Into<PathBuf>) -> Self {
        Self {
            loose: LooseStore::at(objects_dir),
        }
    }
}

/// Access
impl Odb {
    /// The loose object store.
    pub fn loose(&self) -> &LooseStore {
        &self.loose
    }

    /// Read the object `id` into `body` and return its kind.
    pub fn read(&self, id: &oid, body: &mut Vec<u8>) -> Result<gix_object::Kind, Error> {
        match self.loose.read(id, body)? {
            Some(kind) => Ok(kind),
            None => Err(Error::Missing { id: id.to_owned() }),
        }
    }

    /// Read the commit `id` into `body`; an error if it is another kind of object.
    pub fn read_commit(&self, id: &oid, body: &mut Vec<u8>) -> Result<(), Error> {
        match self.read(id, body)? {
            gix_object::Kind::Commit => Ok(()),
            kind => Err(Error::NotACommit {
                id: id.to_owned(),
                kind,
            }),
        }
    }

    /// Whether the object exists in any store.
    pub fn contains(&self, id: &oid) -> bool {
        self.loose.contains(id)
    }
}
