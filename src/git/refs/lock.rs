//! Owns moving a ref: git's lock-file protocol with compare-and-swap.
//!
//! Protocol (git's `lockfile.c` and `refs/files-backend.c`): create `<ref>.lock` with
//! `O_CREAT|O_EXCL` (retrying with quadratic backoff and ±25% jitter until a deadline), read
//! the ref's current value while holding the lock, check it against the caller's
//! [`Expected`] value, write `<hex>\n` into the lock file, optionally fsync it, rename it over
//! the ref, and optionally fsync the directory, and the parent of every directory the lock
//! had to create (a new consumer's `refs/gitmq/consumers/<c>/`, a topic `eu/orders`'s
//! `refs/heads/eu/`): a new directory's name is durable only once its parent is synced.
//!
//! Deleting ([`RefLock::delete()`], git's `files_transaction_finish` order): with the ref's
//! lock held and its value checked, take `packed-refs.lock`, rewrite `packed-refs` without the
//! entry (if it has one) and rename it into place, then unlink the loose file, then remove
//! directories the deletion left empty. Removing the packed entry first means no reader ever
//! sees an older packed value come back once the loose file is gone.
//!
//! Invariants: while a [`RefLock`] lives, no cooperating writer (gitmq or git) can move the ref;
//! a lock that is dropped without [`RefLock::commit()`] is removed; a lock held by someone else
//! past the deadline is reported (with its path) and never broken or overwritten.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::Duration,
};

use gix_hash::{oid, ObjectId};

use super::{io_err, name::FullName, Error, RefStore};
use crate::git::fs::{create_dir_all, remove_if_exists, sync_parents, Fs, LockError, LockFile};

/// What the ref must hold for a [`RefLock::commit()`] to go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Whatever it holds.
    Any,
    /// The ref must not exist yet.
    MustNotExist,
    /// The ref must point at this id.
    MustMatch(ObjectId),
}

impl Expected {
    /// `MustMatch(id)` for `Some(id)`, `MustNotExist` for `None`.
    pub fn from_current(current: Option<ObjectId>) -> Self {
        current.map_or(Expected::MustNotExist, Expected::MustMatch)
    }

    fn admits(self, actual: Option<ObjectId>) -> bool {
        match self {
            Expected::Any => true,
            Expected::MustNotExist => actual.is_none(),
            Expected::MustMatch(id) => actual == Some(id),
        }
    }
}

/// An exclusive lock on one ref, held until committed or dropped.
#[derive(Debug)]
pub struct RefLock {
    store: RefStore,
    name: FullName,
    lock: LockFile,
    /// Directories created to hold the ref, outermost first.
    created_dirs: Vec<PathBuf>,
}

/// Lifecycle
impl RefLock {
    /// Take the lock on the ref `name`, waiting up to `timeout` for another holder.
    pub(super) fn acquire(
        store: &RefStore,
        name: &FullName,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let path = store.path_of(name);
        let dir = path.parent().expect("BUG: a ref path has a directory");
        // A deletion may remove the (empty) directory between `create_dir_all` and the lock's
        // creation: make it again, a few times.
        let mut attempt = 0;
        let mut created_dirs = Vec::new();
        let lock = loop {
            created_dirs.extend(create_dir_all(&**store.fs(), dir).map_err(io_err(dir))?);
            match LockFile::acquire(store.fs(), &path, timeout) {
                Err(LockError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound && attempt < 3 =>
                {
                    attempt += 1;
                }
                result => break result.map_err(|err| lock_error(name, err))?,
            }
        };
        Ok(Self {
            store: store.clone(),
            name: name.clone(),
            lock,
            created_dirs,
        })
    }

    /// Move the ref to `new` if it currently matches `expected`; with `sync`, the new value, its
    /// directory and the parents of directories created for it are fsynced before this returns.
    /// On a mismatch the lock is released and [`Error::Changed`] tells what the ref holds now.
    pub fn commit(mut self, expected: Expected, new: &oid, sync: bool) -> Result<(), Error> {
        self.check(expected)?;
        let mut line = [0u8; 41];
        let hex_len = new.hex_to_buf(&mut line).len();
        line[hex_len] = b'\n';
        let lock_path = self.lock.lock_path().to_owned();
        self.lock
            .write_all(&line[..=hex_len])
            .map_err(io_err(&lock_path))?;
        self.lock.commit(sync).map_err(io_err(&lock_path))?;
        if sync {
            sync_parents(&**self.store.fs(), &self.created_dirs).map_err(io_err(&lock_path))?;
        }
        Ok(())
    }
}

/// Checking
impl RefLock {
    /// What the ref holds, if it is what `expected` admits; else [`Error::Changed`].
    fn check(&self, expected: Expected) -> Result<Option<ObjectId>, Error> {
        let actual = self.current()?;
        if expected.admits(actual) {
            Ok(actual)
        } else {
            Err(Error::Changed {
                name: self.name.to_string(),
                expected,
                actual,
            })
        }
    }
}

/// Deleting
impl RefLock {
    /// Delete the ref if it currently matches `expected`: its `packed-refs` entry first (under
    /// `packed-refs.lock`, waiting up to [`PACKED_REFS_LOCK_TIMEOUT`]), then its loose file.
    /// Whether there was anything to delete; on a mismatch, [`Error::Changed`] and nothing
    /// changes. With `sync`, `packed-refs` and the directories are fsynced.
    pub fn delete(self, expected: Expected, sync: bool) -> Result<bool, Error> {
        let actual = self.check(expected)?;
        let path = self.store.path_of(&self.name);
        let dir = path
            .parent()
            .expect("BUG: a ref path has a directory")
            .to_owned();
        let git_dir = self.store.git_dir().to_owned();
        let fs = self.store.fs().clone();
        if actual.is_none() && !path.is_file() {
            let lock_path = self.lock.lock_path().to_owned();
            self.lock.release().map_err(io_err(&lock_path))?;
            remove_empty_parents(&*fs, &git_dir, &dir);
            return Ok(false);
        }
        self.store.remove_packed_entry(&self.name, sync)?;
        remove_if_exists(&*fs, &path).map_err(io_err(&path))?;
        if sync {
            fs.sync_dir(&dir).map_err(io_err(&dir))?;
        }
        let lock_path = self.lock.lock_path().to_owned();
        self.lock.release().map_err(io_err(&lock_path))?;
        remove_empty_parents(&*fs, &git_dir, &dir);
        Ok(true)
    }
}

/// Packed refs
impl RefStore {
    /// Rewrite `packed-refs` without `name`'s entry, under `packed-refs.lock`.
    fn remove_packed_entry(&self, name: &FullName, sync: bool) -> Result<(), Error> {
        let path = self.git_dir().join(PACKED_REFS);
        let mut lock = LockFile::acquire(self.fs(), &path, PACKED_REFS_LOCK_TIMEOUT)
            .map_err(|err| lock_error(name, err))?;
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(io_err(&path)(err)),
        };
        super::packed::parse(&data)?;
        let Some(rewritten) = super::packed::without(&data, name) else {
            return Ok(());
        };
        let lock_path = lock.lock_path().to_owned();
        lock.write_all(&rewritten).map_err(io_err(&lock_path))?;
        lock.commit(sync).map_err(io_err(&path))
    }
}

/// The file git packs refs into, and locks as `packed-refs.lock` to rewrite.
const PACKED_REFS: &str = "packed-refs";

/// How long a deletion waits for another writer of `packed-refs` (e.g. `git pack-refs`).
pub const PACKED_REFS_LOCK_TIMEOUT: Duration = crate::git::fs::DEFAULT_LOCK_TIMEOUT;

/// The ref error for a lock that could not be taken on behalf of `name`.
fn lock_error(name: &FullName, err: LockError) -> Error {
    match err {
        LockError::Locked { lock_path, waited } => Error::Locked {
            name: name.to_string(),
            lock_path,
            waited,
        },
        LockError::Io { path, source } => Error::Io { path, source },
    }
}

/// Remove `dir` and its parents while they are empty, stopping at `refs/<kind>` (as git does,
/// so a later ref whose name is a removed directory's can be created).
fn remove_empty_parents(fs: &dyn Fs, git_dir: &Path, dir: &Path) {
    let mut current = Some(dir);
    while let Some(dir) = current {
        let depth = dir
            .strip_prefix(git_dir)
            .map_or(0, |rel| rel.components().count());
        if depth <= 2 || fs.remove_dir(dir).is_err() {
            return;
        }
        current = dir.parent();
    }
}

/// Access
impl RefLock {
    /// The ref's value now; nobody else can change it while the lock is held.
    pub fn current(&self) -> Result<Option<ObjectId>, Error> {
        self.store.find(&self.name)
    }

    /// The full ref name.
    pub fn name(&self) -> &FullName {
        &self.name
    }
}
