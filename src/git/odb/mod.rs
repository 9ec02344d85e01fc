//! Owns the object database of a repository: where objects are looked up and written.
//!
//! Invariants: gitmq reads objects by id only through [`Odb`]: first in the packs already
//! known (the common case: gitmq writes packs), then as a loose object, then in the packs after
//! a rescan of `objects/pack` (a pack another process wrote since). [`Odb::locate()`] and
//! [`Odb::locate_near()`] search in the same order and hand back a [`Location`], read again by
//! [`Odb::object_at()`] without a second search; a location names a pack by its stable
//! [`PackKey`], so it stays valid while the pack is closed to save memory, and reading it
//! after the pack was removed is [`Error::StaleLocation`]. An `Odb` handle owns its pack
//! windows and delta-base cache, so reading takes `&mut self`; handles are cheap to make
//! (packs open lazily) and each consumer owns one.

pub mod commit_graph;
pub mod hand_inflate;
pub mod loose;
pub mod pack;
pub mod stored;

use std::path::{Path, PathBuf};

use gix_hash::{oid, ObjectId};

pub use loose::LooseStore;

use crate::git::shallow::Shallow;

use self::pack::{
    read::{DeltaBaseCache, PackFile},
    set::{Near, PackKey, PackSet},
};

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
    /// A [`Location`] names a pack this database no longer holds: it was removed (by a
    /// repack or `git gc`) since the object was located. Locate the object again.
    #[error("an object was located in a pack that has since been removed; locate it again")]
    StaleLocation,
    /// The shallow file (the boundaries of pruned history) could not be read.
    #[error(transparent)]
    Shallow(#[from] crate::git::shallow::Error),
    /// The object exists but is not a commit.
    #[error("object {id} is a {kind}, not a commit")]
    NotACommit {
        /// The object's id.
        id: ObjectId,
        /// Its kind.
        kind: gix_object::Kind,
    },
}

fn pack_err(err: pack::read::Error) -> Error {
    Error::Pack(err.into())
}

/// Where an object is stored, as [`Odb::locate()`] found it: read it again with
/// [`Odb::object_at()`] without looking its id up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// An entry of a pack.
    Packed {
        /// The pack.
        pack: PackKey,
        /// The entry's offset in it.
        offset: u64,
    },
    /// A loose object.
    Loose(ObjectId),
}

/// How many more times a miss lists `objects/pack` while listings keep finding new packs: a
/// consolidation that removed a listed pack has renamed its replacement before, so one more
/// listing finds it (found by the `queue_model` fuzz target).
const EXTRA_RESCANS: usize = 3;

/// After a miss: list `objects/pack` again and retry `find` in the listed packs, while
/// listings keep finding new packs (at most [`EXTRA_RESCANS`] times). A consolidation may have
/// removed a pack between our listing and opening it; its objects are then in a pack that a
/// further listing finds.
fn relist_until_found<T>(
    packs: &mut PackSet,
    id: &oid,
    mut find: impl FnMut(&mut PackSet) -> Result<Option<T>, pack::set::Error>,
) -> Result<T, Error> {
    for _ in 0..EXTRA_RESCANS {
        if packs.rescan()? == 0 {
            break;
        }
        if let Some(found) = find(packs)? {
            return Ok(found);
        }
    }
    Err(Error::Missing { id: id.to_owned() })
}

/// Every object store of one repository, with the caches to read them.
#[derive(Debug)]
pub struct Odb {
    objects_dir: PathBuf,
    loose: LooseStore,
    packs: Option<PackSet>,
    cache: DeltaBaseCache,
    /// `<git dir>/shallow`, read on first use and again by [`Odb::reload_shallow()`].
    shallow: Option<Shallow>,
    /// `objects/info/commit-graph`, read on first use (when `graph_read`), if there is one.
    graph: Option<commit_graph::CommitGraph>,
    graph_read: bool,
    /// Where the last graph answer's parent lies in the graph: the next step's commit.
    graph_hint: Option<usize>,
}

/// Lifecycle
impl Odb {
    /// The database in `objects_dir`, written through the real file system; packs are listed
    /// on the first read.
    pub fn at(objects_dir: impl Into<PathBuf>) -> Self {
        Self::with_fs(objects_dir, crate::git::fs::real())
    }

    /// The database in `objects_dir`, written through `fs`; packs are listed on the first
    /// read.
    pub fn with_fs(objects_dir: impl Into<PathBuf>, fs: crate::git::fs::SharedFs) -> Self {
        let objects_dir = objects_dir.into();
        Self {
            loose: LooseStore::with_fs(&objects_dir, fs),
            objects_dir,
            packs: None,
            cache: DeltaBaseCache::default(),
            shallow: None,
            graph: None,
            graph_read: false,
            graph_hint: None,
        }
    }
}

/// A second handle on the same database for another thread: [`Location`]s this handle
/// handed out read the same objects there (its packs are listed under the same keys, see
/// [`PackSet::sibling()`](pack::set::PackSet::sibling)); nothing is open or cached yet.
impl Odb {
    /// Whether this handle has listed its packs (a sibling names them by the same keys
    /// only then).
    pub fn has_listed_packs(&self) -> bool {
        self.packs.is_some()
    }

    /// The sibling handle.
    #[must_use]
    pub fn sibling(&self) -> Self {
        Self {
            objects_dir: self.objects_dir.clone(),
            loose: self.loose.clone(),
            packs: self.packs.as_ref().map(pack::set::PackSet::sibling),
            cache: DeltaBaseCache::new(self.cache.limit()),
            shallow: None,
            graph: None,
            graph_read: false,
            graph_hint: None,
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

    /// The file system objects are written through.
    pub fn fs(&self) -> &crate::git::fs::SharedFs {
        self.loose.fs()
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
        if let Some(kind) = packs.read(id, body, cache)? {
            return Ok(kind);
        }
        relist_until_found(packs, id, |packs| packs.read_listed(id, body, cache))
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

    /// Where the object `id` is stored, searched in the same order as [`read()`](Self::read).
    pub fn locate(&mut self, id: &oid) -> Result<Location, Error> {
        let packs = self.packs()?;
        if let Some((pack, offset)) = packs.locate_listed(id)? {
            return Ok(Location::Packed { pack, offset });
        }
        if self.loose.contains(id) {
            return Ok(Location::Loose(id.to_owned()));
        }
        if let Some((pack, offset)) = self.packs()?.locate(id)? {
            return Ok(Location::Packed { pack, offset });
        }
        relist_until_found(self.packs()?, id, |packs| packs.locate_listed(id))
            .map(|(pack, offset)| Location::Packed { pack, offset })
    }

    /// Like [`locate()`](Self::locate), but first tries the pack entries next to `near`,
    /// where the previous step of a walk found its object; returns where to look next.
    pub fn locate_near(
        &mut self,
        id: &oid,
        near: Option<Near>,
    ) -> Result<(Location, Option<Near>), Error> {
        // The listed packs first: a miss looks at loose objects before listing packs again.
        if let Some((pack, offset, near)) = self.packs()?.locate_near_listed(id, near)? {
            return Ok((Location::Packed { pack, offset }, Some(near)));
        }
        if self.loose.contains(id) {
            return Ok((Location::Loose(id.to_owned()), None));
        }
        if let Some((pack, offset, near)) = self.packs()?.locate_near(id, None)? {
            return Ok((Location::Packed { pack, offset }, Some(near)));
        }
        relist_until_found(self.packs()?, id, |packs| {
            packs.locate_near_listed(id, None)
        })
        .map(|(pack, offset, near)| (Location::Packed { pack, offset }, Some(near)))
    }

    /// The object at `location`: its kind and body, borrowed from a pack's read window when
    /// it is stored there uncompressed in one block, else read into `scratch`.
    pub fn object_at<'a>(
        &'a mut self,
        location: &Location,
        scratch: &'a mut Vec<u8>,
    ) -> Result<(gix_object::Kind, &'a [u8]), Error> {
        match *location {
            Location::Packed { pack, offset } => {
                let (pack, cache) = self.pack(pack)?;
                pack.object_at(offset, scratch, cache).map_err(pack_err)
            }
            Location::Loose(id) => Ok((self.read_loose(&id, scratch)?, scratch.as_slice())),
        }
    }

    /// Whether the object at `location` reads without inflating: a pack entry stored in one
    /// block (as gitmq writes messages). A loose object never does.
    pub fn is_stored_at(&mut self, location: &Location) -> Result<bool, Error> {
        match *location {
            Location::Packed { pack, offset } => {
                let (pack, _) = self.pack(pack)?;
                pack.is_stored_at(offset).map_err(pack_err)
            }
            Location::Loose(_) => Ok(false),
        }
    }

    /// The first bytes of the object at `location`: at least `min(want, size)` and at most
    /// all of them (see [`PackFile::object_prefix_at()`](pack::read::PackFile::object_prefix_at)).
    pub fn object_prefix_at<'a>(
        &'a mut self,
        location: &Location,
        want: usize,
        scratch: &'a mut Vec<u8>,
    ) -> Result<(gix_object::Kind, &'a [u8]), Error> {
        match *location {
            Location::Packed { pack, offset } => {
                let (pack, cache) = self.pack(pack)?;
                pack.object_prefix_at(offset, want, scratch, cache)
                    .map_err(pack_err)
            }
            Location::Loose(id) => Ok((self.read_loose(&id, scratch)?, scratch.as_slice())),
        }
    }

    fn pack(&mut self, key: PackKey) -> Result<(&mut PackFile, &mut DeltaBaseCache), Error> {
        self.packs()?;
        let (packs, cache) = (
            self.packs.as_mut().expect("BUG: listed above"),
            &mut self.cache,
        );
        match packs.pack(key)? {
            Some(pack) => Ok((pack, cache)),
            None => Err(Error::StaleLocation),
        }
    }

    fn read_loose(&self, id: &oid, body: &mut Vec<u8>) -> Result<gix_object::Kind, Error> {
        self.loose
            .read(id, body)?
            .ok_or_else(|| Error::Missing { id: id.to_owned() })
    }

    /// Whether any commit is shallow (the shallow file lists one): some history was pruned.
    pub fn has_shallow(&mut self) -> Result<bool, Error> {
        if self.shallow.is_none() {
            self.reload_shallow()?;
        }
        Ok(self.shallow.as_ref().is_some_and(|s| !s.is_empty()))
    }

    /// Whether `id` is a shallow commit: one whose parents were pruned on purpose (listed in
    /// `<git dir>/shallow`, the parent of `objects/`). The list is read once per handle;
    /// [`reload_shallow()`](Self::reload_shallow) reads it again.
    pub fn is_shallow(&mut self, id: &oid) -> Result<bool, Error> {
        if self.shallow.is_none() {
            self.reload_shallow()?;
        }
        Ok(self.shallow.as_ref().is_some_and(|s| s.contains(id)))
    }

    /// Read the shallow list again (a prune may have moved a boundary since).
    pub fn reload_shallow(&mut self) -> Result<(), Error> {
        let git_dir = self.objects_dir.parent().unwrap_or(&self.objects_dir);
        self.shallow = Some(Shallow::read(git_dir)?);
        Ok(())
    }

    /// The first parent of commit `id` according to git's commit-graph file, read on first
    /// use (see [`commit_graph`]); [`FirstParent::Unknown`](commit_graph::FirstParent) when
    /// there is no graph (or it cannot be read) or it does not list `id`.
    pub fn graph_first_parent(&mut self, id: &oid) -> commit_graph::FirstParent {
        if !self.graph_read {
            self.graph_read = true;
            self.graph = commit_graph::CommitGraph::open(&self.objects_dir)
                .ok()
                .flatten();
        }
        let hint = &mut self.graph_hint;
        self.graph
            .as_ref()
            .map_or(commit_graph::FirstParent::Unknown, |graph| {
                graph.first_parent_near(id, hint)
            })
    }

    /// Whether the object exists in any store.
    pub fn contains(&mut self, id: &oid) -> bool {
        self.loose.contains(id) || self.packs().is_ok_and(|packs| packs.contains(id))
    }
}
