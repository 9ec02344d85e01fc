//! Owns the refs of a repository: reading loose refs and `packed-refs`, listing by prefix, and
//! handing out [`RefLock`]s to move one.
//!
//! Invariants: a loose ref overrides a packed one of the same name (git's rule); names given
//! here are full ref names that callers built from validated [`crate::TopicName`] or
//! [`crate::ConsumerName`] values, so paths stay inside the git directory; symbolic refs are
//! followed at most [`MAX_SYMREF_DEPTH`] times.

pub mod lock;
pub mod name;
pub mod packed;

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::Duration,
};

use gix_hash::ObjectId;

pub use lock::{Expected, RefLock};
pub use name::{FullName, InvalidName};

use crate::git::{
    fs::{real, SharedFs},
    hash::OBJECT_HASH,
};

/// How many symbolic refs are followed before giving up.
pub const MAX_SYMREF_DEPTH: usize = 5;

/// Returned by [`RefStore::find()`], [`RefStore::list()`] and [`RefLock::commit()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file system refused.
    #[error("ref I/O failed at {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A loose ref file does not hold an id or a `ref:` line.
    #[error("ref {name} is malformed")]
    Malformed {
        /// The full ref name.
        name: String,
    },
    /// `packed-refs` is malformed.
    #[error(transparent)]
    Packed(#[from] packed::Error),
    /// A name is not a valid full ref name (a prefix given to [`RefStore::list()`], or the
    /// target of a symbolic ref).
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// Symbolic refs nest too deep or form a loop.
    #[error("symbolic ref {name} nests deeper than {MAX_SYMREF_DEPTH}")]
    SymrefTooDeep {
        /// Where resolution started.
        name: String,
    },
    /// Another process holds the ref's lock.
    #[error(
        "ref {name} is locked by another writer (waited {waited:?}); if no gitmq or git process \
         is running, remove {lock_path} (or run `gitmq unlock`)"
    )]
    Locked {
        /// The full ref name.
        name: String,
        /// The lock file that exists.
        lock_path: PathBuf,
        /// How long gitmq waited.
        waited: Duration,
    },
    /// The compare-and-swap failed: the ref no longer holds what the caller expected.
    #[error("ref {name} changed: expected {expected:?}, found {actual:?}")]
    Changed {
        /// The full ref name.
        name: String,
        /// What the caller expected.
        expected: Expected,
        /// What the ref holds.
        actual: Option<ObjectId>,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// The refs of one git directory.
#[derive(Debug, Clone)]
pub struct RefStore {
    git_dir: PathBuf,
    fs: SharedFs,
}

/// Lifecycle
impl RefStore {
    /// The refs in `git_dir`, written through the real file system.
    pub fn at(git_dir: impl Into<PathBuf>) -> Self {
        Self::with_fs(git_dir, real())
    }

    /// The refs in `git_dir`, written through `fs`.
    pub fn with_fs(git_dir: impl Into<PathBuf>, fs: SharedFs) -> Self {
        Self {
            git_dir: git_dir.into(),
            fs,
        }
    }
}

/// Access
impl RefStore {
    /// The git directory.
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// The file system refs are written through.
    pub fn fs(&self) -> &SharedFs {
        &self.fs
    }

    /// Where the loose ref `name` lives: inside the git directory, as [`FullName`] promises.
    pub(crate) fn path_of(&self, name: &FullName) -> PathBuf {
        self.git_dir.join(name.as_str())
    }

    /// The id the ref `name` points to (following symbolic refs), or `None`.
    pub fn find(&self, name: &FullName) -> Result<Option<ObjectId>, Error> {
        let mut current = name.clone();
        for _ in 0..=MAX_SYMREF_DEPTH {
            match self.read_loose(&current)? {
                Some(Loose::Direct(id)) => return Ok(Some(id)),
                Some(Loose::Symbolic(target)) => current = target,
                None => {
                    return Ok(self
                        .packed()?
                        .into_iter()
                        .find(|r| *current == *r.name)
                        .map(|r| r.target))
                }
            }
        }
        Err(Error::SymrefTooDeep {
            name: name.to_string(),
        })
    }

    /// Every ref whose full name starts with `prefix` (which ends in `/`), loose and packed,
    /// sorted by name. Symbolic refs and names that are not valid are skipped.
    pub fn list(&self, prefix: &str) -> Result<Vec<(FullName, ObjectId)>, Error> {
        name::check_prefix(prefix)?;
        let mut found: std::collections::BTreeMap<FullName, ObjectId> = self
            .packed()?
            .into_iter()
            .filter(|r| r.name.starts_with(prefix))
            .filter_map(|r| Some((FullName::new(r.name).ok()?, r.target)))
            .collect();
        let mut loose = Vec::new();
        Self::walk_loose(&self.git_dir.join(prefix), prefix, &mut loose)?;
        for name in loose {
            let Ok(full) = FullName::new(name.as_str()) else {
                continue;
            };
            if let Some(Loose::Direct(id)) = self.read_loose(&full)? {
                found.insert(full, id);
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Lock the ref `name` for an update, waiting up to `timeout` for another holder.
    pub fn lock(&self, name: &FullName, timeout: Duration) -> Result<RefLock, Error> {
        RefLock::acquire(self, name, timeout)
    }

    fn packed(&self) -> Result<Vec<packed::PackedRef>, Error> {
        let path = self.git_dir.join("packed-refs");
        match fs::read(&path) {
            Ok(data) => Ok(packed::parse(&data)?),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(err) => Err(io_err(&path)(err)),
        }
    }

    fn read_loose(&self, name: &FullName) -> Result<Option<Loose>, Error> {
        let path = self.path_of(name);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) || path.is_dir() =>
            {
                return Ok(None)
            }
            Err(err) => return Err(io_err(&path)(err)),
        };
        let malformed = || Error::Malformed {
            name: name.to_string(),
        };
        let line = data.trim_ascii_end();
        if let Some(target) = line.strip_prefix(b"ref: ") {
            let target = std::str::from_utf8(target.trim_ascii()).map_err(|_| malformed())?;
            let target = FullName::new(target).map_err(|_| malformed())?;
            return Ok(Some(Loose::Symbolic(target)));
        }
        if line.len() != OBJECT_HASH.len_in_hex() {
            return Err(malformed());
        }
        ObjectId::from_hex(line)
            .map(|id| Some(Loose::Direct(id)))
            .map_err(|_| malformed())
    }

    fn walk_loose(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), Error> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(())
            }
            Err(err) => return Err(io_err(dir)(err)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(dir))?;
            let Ok(file_name) = entry.file_name().into_string() else {
                continue;
            };
            let name = format!("{prefix}{file_name}");
            let file_type = entry.file_type().map_err(io_err(dir))?;
            if file_type.is_dir() {
                Self::walk_loose(&entry.path(), &format!("{name}/"), out)?;
            } else if gix_validate::reference::name(name.as_bytes().into()).is_ok() {
                out.push(name);
            }
        }
        Ok(())
    }
}

/// Remove `<ref>.lock` files under `refs/heads/`, `refs/gitmq/` and `refs/remotes/` (the
/// tracking refs fetch and push move) whose last change is at least `age` ago: locks left by
/// writers killed while moving a ref. The caller must know that
/// no live writer holds them (a lock is held for milliseconds; one that is a minute old is
/// almost surely stale, but only the operator can be sure). Returns the removed paths.
pub fn remove_stale_locks(store: &RefStore, age: Duration) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    for prefix in ["refs/heads", "refs/gitmq", "refs/remotes"] {
        remove_stale_locks_in(&*store.fs, &store.git_dir.join(prefix), age, &mut removed)?;
    }
    Ok(removed)
}

fn remove_stale_locks_in(
    fs: &dyn crate::git::fs::Fs,
    dir: &Path,
    age: Duration,
    removed: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_err(dir)(err)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(io_err(&path))?;
        if file_type.is_dir() {
            remove_stale_locks_in(fs, &path, age, removed)?;
        } else if path.extension().is_some_and(|e| e == "lock") {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|elapsed| elapsed >= age);
            if old {
                fs.remove_file(&path).map_err(io_err(&path))?;
                removed.push(path);
            }
        }
    }
    Ok(())
}

enum Loose {
    Direct(ObjectId),
    Symbolic(FullName),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(full: &str) -> FullName {
        FullName::new(full).unwrap()
    }

    fn id(hex: &str) -> ObjectId {
        ObjectId::from_hex(hex.as_bytes()).unwrap()
    }

    const A: &str = "ce013625030ba8dba906f756967f9e9ca394464a";
    const B: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

    #[test]
    fn no_name_given_to_the_store_reaches_outside_the_git_directory() {
        // The trap of issue 10: `find`/`lock` took a raw `&str`, so `../x` could be read or
        // locked. They take a `FullName` now, which refuses such names; `list` checks its
        // prefix, and a symbolic ref pointing outside is malformed.
        let outer = tempfile::tempdir().unwrap();
        let git_dir = outer.path().join("q.git");
        fs::create_dir_all(git_dir.join("refs/heads")).unwrap();
        fs::write(outer.path().join("x"), format!("{A}\n")).unwrap();
        for escaping in ["../x", "refs/../../x", "refs/heads/../../../x"] {
            assert!(FullName::new(escaping).is_err(), "{escaping}");
        }
        let store = RefStore::at(&git_dir);
        assert!(matches!(store.list("../"), Err(Error::InvalidName(_))));
        assert!(matches!(
            store.list("refs/../../"),
            Err(Error::InvalidName(_))
        ));
        fs::write(git_dir.join("refs/heads/sym"), "ref: refs/../../x\n").unwrap();
        assert!(matches!(
            store.find(&name("refs/heads/sym")),
            Err(Error::Malformed { .. })
        ));
        assert!(!outer.path().join("x.lock").exists());
    }

    #[test]
    fn loose_refs_override_packed_ones_and_list_merges_both() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("packed-refs"),
            format!("# pack-refs with: peeled\n{A} refs/heads/a\n{A} refs/heads/b\n"),
        )
        .unwrap();
        fs::create_dir_all(dir.path().join("refs/heads")).unwrap();
        fs::write(dir.path().join("refs/heads/b"), format!("{B}\n")).unwrap();
        let store = RefStore::at(dir.path());
        assert_eq!(
            store.find(&name("refs/heads/a")).unwrap(),
            Some(id(A)),
            "packed only"
        );
        assert_eq!(
            store.find(&name("refs/heads/b")).unwrap(),
            Some(id(B)),
            "loose wins"
        );
        assert_eq!(store.find(&name("refs/heads/c")).unwrap(), None);
        let listed = store.list("refs/heads/").unwrap();
        assert_eq!(
            listed,
            vec![(name("refs/heads/a"), id(A)), (name("refs/heads/b"), id(B))]
        );
    }

    #[test]
    fn compare_and_swap_refuses_a_stale_expectation() {
        let dir = tempfile::tempdir().unwrap();
        let store = RefStore::at(dir.path());
        let timeout = Duration::from_millis(100);
        let lock = store.lock(&name("refs/heads/t"), timeout).unwrap();
        lock.commit(Expected::MustNotExist, &id(A), true).unwrap();
        let lock = store.lock(&name("refs/heads/t"), timeout).unwrap();
        let err = lock
            .commit(Expected::MustNotExist, &id(B), false)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Changed {
                    actual: Some(_),
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            store.find(&name("refs/heads/t")).unwrap(),
            Some(id(A)),
            "unchanged"
        );
        assert!(
            !dir.path().join("refs/heads/t.lock").exists(),
            "lock released"
        );
        let lock = store.lock(&name("refs/heads/t"), timeout).unwrap();
        lock.commit(Expected::MustMatch(id(A)), &id(B), false)
            .unwrap();
        assert_eq!(store.find(&name("refs/heads/t")).unwrap(), Some(id(B)));
    }

    #[test]
    fn delete_removes_loose_and_packed_values_with_compare_and_swap() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("packed-refs"),
            format!("# pack-refs with: peeled fully-peeled sorted \n{A} refs/gitmq/c/x/t\n{A} refs/heads/keep\n"),
        )
        .unwrap();
        let store = RefStore::at(dir.path());
        let timeout = Duration::from_millis(100);
        let lock = store.lock(&name("refs/gitmq/c/x/u"), timeout).unwrap();
        lock.commit(Expected::MustNotExist, &id(B), false).unwrap();
        // Packed and loose: the loose value (B) is what the CAS sees.
        let lock = store.lock(&name("refs/gitmq/c/x/t"), timeout).unwrap();
        lock.commit(Expected::Any, &id(B), false).unwrap();
        let lock = store.lock(&name("refs/gitmq/c/x/t"), timeout).unwrap();
        let err = lock.delete(Expected::MustMatch(id(A)), false).unwrap_err();
        assert!(matches!(err, Error::Changed { .. }), "{err}");
        assert_eq!(store.find(&name("refs/gitmq/c/x/t")).unwrap(), Some(id(B)));
        let lock = store.lock(&name("refs/gitmq/c/x/t"), timeout).unwrap();
        assert!(lock.delete(Expected::MustMatch(id(B)), true).unwrap());
        assert_eq!(
            store.find(&name("refs/gitmq/c/x/t")).unwrap(),
            None,
            "packed A gone too"
        );
        assert_eq!(store.find(&name("refs/heads/keep")).unwrap(), Some(id(A)));
        assert!(!dir.path().join("packed-refs.lock").exists());
        assert!(!dir.path().join("refs/gitmq/c/x/t.lock").exists());
        let lock = store.lock(&name("refs/gitmq/c/x/u"), timeout).unwrap();
        assert!(lock.delete(Expected::Any, false).unwrap());
        assert!(
            !dir.path().join("refs/gitmq/c").exists(),
            "empty directories removed"
        );
        assert!(dir.path().join("refs/gitmq").exists(), "refs/<kind> kept");
        let lock = store.lock(&name("refs/gitmq/c/x/u"), timeout).unwrap();
        assert!(
            !lock.delete(Expected::Any, false).unwrap(),
            "nothing to delete"
        );
        // A name that was a directory can be created again.
        let lock = store.lock(&name("refs/gitmq/c/x"), timeout).unwrap();
        lock.commit(Expected::MustNotExist, &id(A), false).unwrap();
    }

    #[test]
    fn a_foreign_lock_is_reported_after_a_bounded_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = RefStore::at(dir.path());
        let _held = store.lock(&name("refs/heads/t"), Duration::ZERO).unwrap();
        let start = std::time::Instant::now();
        let err = store
            .lock(&name("refs/heads/t"), Duration::from_millis(50))
            .unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the wait is bounded"
        );
    }

    #[test]
    fn only_locks_old_enough_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = RefStore::at(dir.path());
        let held = store.lock(&name("refs/heads/a/t"), Duration::ZERO).unwrap();
        assert!(remove_stale_locks(&store, Duration::from_secs(60))
            .unwrap()
            .is_empty());
        let removed = remove_stale_locks(&store, Duration::ZERO).unwrap();
        assert_eq!(removed, [dir.path().join("refs/heads/a/t.lock")]);
        drop(held);
    }

    #[test]
    fn symbolic_refs_are_followed_and_loops_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("refs/heads")).unwrap();
        fs::write(dir.path().join("HEAD"), "ref: refs/heads/main\n").unwrap();
        fs::write(dir.path().join("refs/heads/main"), format!("{A}\n")).unwrap();
        fs::write(dir.path().join("refs/heads/x"), "ref: refs/heads/y\n").unwrap();
        fs::write(dir.path().join("refs/heads/y"), "ref: refs/heads/x\n").unwrap();
        let store = RefStore::at(dir.path());
        assert_eq!(store.find(&name("HEAD")).unwrap(), Some(id(A)));
        assert!(matches!(
            store.find(&name("refs/heads/x")),
            Err(Error::SymrefTooDeep { .. })
        ));
    }
}
