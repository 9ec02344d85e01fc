//! Owns the object database of a repository: where objects are looked up and written.
//!
//! Invariants: gitmq reads objects by id only through [`Odb`]: first in the packs already
//! known (the common case: gitmq writes packs), then as a loose object, then in the packs after
//! a rescan of `objects/pack` (a pack another process wrote since). An `Odb` handle owns its
//! pack windows and delta-base cache, so reading takes `&mut self`; handles are cheap to make
//! (packs open lazily) and each consumer owns one.

pub mod loose;
pub mod pack;
pub mod stored;

use std::path::{Path, PathBuf};

use gix_hash::{oid, ObjectId};

pub use loose::LooseStore;

use self::pack::{read::DeltaBaseCache, set::PackSet};

/// Returned by [`Odb::read()`] and [`Odb::read_commit()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a loose object failed.
    #[error(transparent)]
    Loose(#[from] loose::Error),
    /// Reading a pack failed.
    #[error(transparent)]
    Pack(#[from] pack::set::Error),
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

/// Every object store of one repository, with the caches to read them.
#[derive(Debug)]
pub struct Odb {
    objects_dir: PathBuf,
    loose: LooseStore,
    packs: Option<PackSet>,
    cache: DeltaBaseCache,
}

/// Lifecycle
impl Odb {
    /// The database in `objects_dir`; packs are listed on the first read.
    pub fn at(objects_dir: impl Into<PathBuf>) -> Self {
        let objects_dir = objects_dir.into();
        Self {
            loose: LooseStore::at(&objects_dir),
            objects_dir,
            packs: None,
            cache: DeltaBaseCache::default(),
        }
    }
}

/// Access
impl Odb {
    /// The `objects/` directory.
    pub fn objects_dir(&self) -> &Path {
        &self.objects_dir
    }

    /// The loose object store.
    pub fn loose(&self) -> &LooseStore {
        &self.loose
    }

    /// The packs, listed on first use.
    pub fn packs(&mut self) -> Result<&mut PackSet, Error> {
        if self.packs.is_none() {
            self.packs = Some(PackSet::open(self.objects_dir.join("pack"))?);
        }
        Ok(self.packs.as_mut().expect("BUG: set above"))
    }

    /// Read the object `id` into `body` and return its kind.
    pub fn read(&mut self, id: &oid, body: &mut Vec<u8>) -> Result<gix_object::Kind, Error> {
        self.packs()?;
        let (packs, cache) = (
            self.packs.as_mut().expect("BUG: listed above"),
            &mut self.cache,
        );
        if let Some(kind) = packs.read_listed(id, body, cache)? {
            return Ok(kind);
        }
        if let Some(kind) = self.loose.read(id, body)? {
            return Ok(kind);
        }
        match packs.read(id, body, cache)? {
            Some(kind) => Ok(kind),
            None => Err(Error::Missing { id: id.to_owned() }),
        }
    }

    /// Read the commit `id` into `body`; an error if it is another kind of object.
    pub fn read_commit(&mut self, id: &oid, body: &mut Vec<u8>) -> Result<(), Error> {
        match self.read(id, body)? {
            gix_object::Kind::Commit => Ok(()),
            kind => Err(Error::NotACommit {
                id: id.to_owned(),
                kind,
            }),
        }
    }

    /// Whether the object exists in any store.
    pub fn contains(&mut self, id: &oid) -> bool {
        self.loose.contains(id) || self.packs().is_ok_and(|packs| packs.contains(id))
    }
}
