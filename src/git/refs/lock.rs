//! Owns moving a ref: git's lock-file protocol with compare-and-swap.
//!
//! Protocol (git's `lockfile.c` and `refs/files-backend.c`): create `<ref>.lock` with
//! `O_CREAT|O_EXCL` (retrying with quadratic backoff and ±25% jitter until a deadline), read
//! the ref's current value while holding the lock, check it against the caller's
//! [`Expected`] value, write `<hex>\n` into the lock file, optionally fsync it, rename it over
//! the ref, and optionally fsync the directory.
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
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use gix_hash::{oid, ObjectId};

use super::{io_err, Error, RefStore};

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
    name: String,
    path: PathBuf,
    lock_path: PathBuf,
    file: Option<fs::File>,
}

/// Lifecycle
impl RefLock {
    /// Take the lock on the full ref `name`, waiting up to `timeout` for another holder.
    pub(super) fn acquire(store: &RefStore, name: &str, timeout: Duration) -> Result<Self, Error> {
        let path = store.git_dir().join(name);
        let lock_path = lock_path_of(&path);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let start = Instant::now();
        let mut attempt: u64 = 0;
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock_path)
            {
                Ok(file) => {
                    return Ok(Self {
                        store: store.clone(),
                        name: name.to_owned(),
                        path,
                        lock_path,
                        file: Some(file),
                    })
                }
                // A deletion removed the (empty) directory since `create_dir_all`: make it again.
                Err(err) if err.kind() == io::ErrorKind::NotFound && attempt < 3 => {
                    attempt += 1;
                    if let Some(dir) = path.parent() {
                        fs::create_dir_all(dir).map_err(io_err(dir))?;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    let waited = start.elapsed();
                    if waited >= timeout {
                        return Err(Error::Locked {
                            name: name.to_owned(),
                            lock_path,
                            waited,
                        });
                    }
                    attempt += 1;
                    std::thread::sleep(backoff(attempt).min(timeout.saturating_sub(waited)));
                }
                Err(err) => return Err(io_err(&lock_path)(err)),
            }
        }
    }

    /// Move the ref to `new` if it currently matches `expected`; with `sync`, the new value and
    /// its directory are fsynced before this returns. On a mismatch the lock is released and
    /// [`Error::Changed`] tells what the ref holds now.
    pub fn commit(mut self, expected: Expected, new: &oid, sync: bool) -> Result<(), Error> {
        self.check(expected)?;
        let mut file = self.file.take().expect("BUG: a lock is committed once");
        let mut line = [0u8; 41];
        let hex_len = new.hex_to_buf(&mut line).len();
        line[hex_len] = b'\n';
        file.write_all(&line[..=hex_len])
            .map_err(io_err(&self.lock_path))?;
        if sync {
            crate::git::fs::sync_file(&file).map_err(io_err(&self.lock_path))?;
        }
        drop(file);
        fs::rename(&self.lock_path, &self.path).map_err(io_err(&self.path))?;
        if sync {
            let dir = self.path.parent().expect("BUG: a ref path has a directory");
            crate::git::fs::sync_dir(dir).map_err(io_err(dir))?;
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
                name: self.name.clone(),
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
    pub fn delete(mut self, expected: Expected, sync: bool) -> Result<bool, Error> {
        let actual = self.check(expected)?;
        let dir = self
            .path
            .parent()
            .expect("BUG: a ref path has a directory")
            .to_owned();
        if actual.is_none() && !self.path.is_file() {
            drop(self.file.take());
            fs::remove_file(&self.lock_path).map_err(io_err(&self.lock_path))?;
            remove_empty_parents(self.store.git_dir(), &dir);
            return Ok(false);
        }
        let packed = RefLock::acquire(&self.store, PACKED_REFS, PACKED_REFS_LOCK_TIMEOUT)?;
        packed.remove_packed_entry(&self.name, sync)?;
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_err(&self.path)(err)),
        }
        if sync {
            crate::git::fs::sync_dir(&dir).map_err(io_err(&dir))?;
        }
        drop(self.file.take());
        fs::remove_file(&self.lock_path).map_err(io_err(&self.lock_path))?;
        remove_empty_parents(self.store.git_dir(), &dir);
        Ok(true)
    }

    /// With this lock being `packed-refs.lock`: rewrite `packed-refs` without `name`'s entry.
    fn remove_packed_entry(mut self, name: &str, sync: bool) -> Result<(), Error> {
        let data = match fs::read(&self.path) {
            Ok(data) => data,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(io_err(&self.path)(err)),
        };
        super::packed::parse(&data)?;
        let Some(rewritten) = super::packed::without(&data, name) else {
            return Ok(());
        };
        let mut file = self.file.take().expect("BUG: a fresh lock has its file");
        file.write_all(&rewritten)
            .map_err(io_err(&self.lock_path))?;
        if sync {
            crate::git::fs::sync_file(&file).map_err(io_err(&self.lock_path))?;
        }
        drop(file);
        if let Err(err) = fs::rename(&self.lock_path, &self.path) {
            let _ = fs::remove_file(&self.lock_path);
            return Err(io_err(&self.path)(err));
        }
        if sync {
            let dir = self.store.git_dir();
            crate::git::fs::sync_dir(dir).map_err(io_err(dir))?;
        }
        Ok(())
    }
}

/// The file git packs refs into, and locks as `packed-refs.lock` to rewrite.
const PACKED_REFS: &str = "packed-refs";

/// How long a deletion waits for another writer of `packed-refs` (e.g. `git pack-refs`).
pub const PACKED_REFS_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Remove `dir` and its parents while they are empty, stopping at `refs/<kind>` (as git does,
/// so a later ref whose name is a removed directory's can be created).
fn remove_empty_parents(git_dir: &Path, dir: &Path) {
    let mut current = Some(dir);
    while let Some(dir) = current {
        let depth = dir
            .strip_prefix(git_dir)
            .map_or(0, |rel| rel.components().count());
        if depth <= 2 || fs::remove_dir(dir).is_err() {
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
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for RefLock {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.lock_path);
        }
    }
}

fn lock_path_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// git's `lockfile.c` backoff: `n²` ms with ±25% jitter, capped at one second.
fn backoff(attempt: u64) -> Duration {
    let base = (attempt * attempt).min(1000);
    let nanos = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos(),
    );
    let jitter_permille = 750 + (nanos ^ (nanos >> 7)) % 501;
    Duration::from_micros(base * jitter_permille)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_micros(1250));
        assert!(backoff(10) >= Duration::from_millis(75));
        assert!(backoff(1000) <= Duration::from_millis(1250));
    }
}
