//! Owns moving a ref: git's lock-file protocol with compare-and-swap.
//!
//! Protocol (git's `lockfile.c` and `refs/files-backend.c`): create `<ref>.lock` with
//! `O_CREAT|O_EXCL` (retrying with quadratic backoff and ±25% jitter until a deadline), read
//! the ref's current value while holding the lock, check it against the caller's
//! [`Expected`] value, write `<hex>\n` into the lock file, optionally fsync it, rename it over
//! the ref, and optionally fsync the directory.
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
use crate::durability;

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
        let actual = self.current()?;
        if !expected.admits(actual) {
            return Err(Error::Changed {
                name: self.name.clone(),
                expected,
                actual,
            });
        }
        let mut file = self.file.take().expect("BUG: a lock is committed once");
        let mut line = [0u8; 41];
        let hex_len = new.hex_to_buf(&mut line).len();
        line[hex_len] = b'\n';
        file.write_all(&line[..=hex_len])
            .map_err(io_err(&self.lock_path))?;
        if sync {
            durability::sync_file(&file).map_err(io_err(&self.lock_path))?;
        }
        drop(file);
        fs::rename(&self.lock_path, &self.path).map_err(io_err(&self.path))?;
        if sync {
            let dir = self.path.parent().expect("BUG: a ref path has a directory");
            durability::sync_dir(dir).map_err(io_err(dir))?;
        }
        Ok(())
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
