//! Owns `<git-dir>/shallow`: the commits whose parents are absent from the repository on
//! purpose (git's shallow clones; gitmq's [`prune`](crate::queue::prune)).
//!
//! Format (git's `shallow.c`, `write_shallow_commits`): one id per line, 40 lowercase hex
//! digits and `\n`, sorted, no duplicates; no file at all when no commit is shallow. git,
//! `git fsck` and `git log` treat a listed commit as if it had no parents.
//!
//! Invariants: [`Shallow::write()`] replaces the file as git does, through `shallow.lock`
//! created with `O_EXCL`, synced, renamed over `shallow`, and the directory synced; a reader
//! sees the old list or the new one, never a mix. Reading is bounded ([`MAX_SHALLOW_LEN`])
//! and strict: a malformed line is an error, never skipped.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::Duration,
};

use gix_hash::{oid, ObjectId};

use crate::git::fs::{LockError, LockFile, SharedFs};

/// The file's name in the git directory.
pub const SHALLOW_FILE: &str = "shallow";
/// The lock file git and gitmq take to replace it.
#[cfg(test)]
const SHALLOW_LOCK: &str = "shallow.lock";
/// One line: 40 hex digits and a newline.
const LINE_LEN: usize = 41;
/// The largest `shallow` file read: one million boundaries (far beyond one per topic).
pub const MAX_SHALLOW_LEN: u64 = 1_000_000 * LINE_LEN as u64;

/// Returned by [`Shallow::read()`] and [`Shallow::write()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file system refused.
    #[error("reading or writing the shallow file {path} failed")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a list of ids.
    #[error("the shallow file {path} is malformed at line {line}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The first bad line, from 1.
        line: usize,
    },
    /// The file is larger than [`MAX_SHALLOW_LEN`].
    #[error("the shallow file {path} is {len} bytes, more than gitmq reads ({MAX_SHALLOW_LEN})")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: u64,
    },
    /// Another process holds `shallow.lock` (git fetching into a shallow clone?).
    #[error("{path} exists: another process is changing the shallow file (remove it if none is)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// The shallow commits of a repository, sorted.
///
/// ```
/// # fn main() -> Result<(), gitmq::git::shallow::Error> {
/// use gitmq::{git::shallow::Shallow, ObjectId};
/// let dir = tempfile::tempdir().expect("temp dir");
/// assert!(Shallow::read(dir.path())?.is_empty(), "no file: nothing is shallow");
/// let id = ObjectId::empty_tree(gix_hash::Kind::Sha1);
/// let mut shallow = Shallow::default();
/// shallow.insert(id);
/// shallow.write(&gitmq::git::fs::real(), dir.path(), false)?;
/// assert!(Shallow::read(dir.path())?.contains(&id));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shallow {
    ids: Vec<ObjectId>,
}

/// Lifecycle
impl Shallow {
    /// Read `<git_dir>/shallow`; empty when the file does not exist.
    pub fn read(git_dir: &Path) -> Result<Self, Error> {
        let path = git_dir.join(SHALLOW_FILE);
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(err) => return Err(io_err(&path)(err)),
        };
        let len = file.metadata().map_err(io_err(&path))?.len();
        if len > MAX_SHALLOW_LEN {
            return Err(Error::TooLarge { path, len });
        }
        let mut data = Vec::new();
        io::Read::read_to_end(&mut io::Read::take(file, MAX_SHALLOW_LEN + 1), &mut data)
            .map_err(io_err(&path))?;
        Self::from_bytes(&data).map_err(|line| Error::Malformed { path, line })
    }

    /// Parse the file's content; the number of the first bad line on error.
    fn from_bytes(data: &[u8]) -> Result<Self, usize> {
        let mut ids = Vec::with_capacity(data.len() / LINE_LEN);
        for (n, line) in data.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                // Only the end of the file may be empty (after the last newline).
                if n * LINE_LEN == data.len() {
                    continue;
                }
                return Err(n + 1);
            }
            let id = (line.len() == 2 * crate::git::hash::ID_LEN)
                .then(|| ObjectId::from_hex(line).ok())
                .flatten()
                .ok_or(n + 1)?;
            ids.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(Self { ids })
    }

    /// Add `id` (again is fine); whether it was new.
    pub fn insert(&mut self, id: ObjectId) -> bool {
        match self.ids.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                self.ids.insert(at, id);
                true
            }
        }
    }

    /// Keep only the ids for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&ObjectId) -> bool) {
        self.ids.retain(keep);
    }

    /// Replace `<git_dir>/shallow` with this list (remove it when the list is empty), through
    /// `shallow.lock` as git does; with `sync`, the file and the directory are fsynced.
    pub fn write(&self, fs: &SharedFs, git_dir: &Path, sync: bool) -> Result<(), Error> {
        let path = git_dir.join(SHALLOW_FILE);
        let mut lock = LockFile::acquire(fs, &path, Duration::ZERO).map_err(|err| match err {
            LockError::Locked { lock_path, .. } => Error::Locked { path: lock_path },
            LockError::Io { path, source } => Error::Io { path, source },
        })?;
        if self.ids.is_empty() {
            return lock.commit_removal(sync).map_err(io_err(&path));
        }
        let mut text = String::with_capacity(self.ids.len() * LINE_LEN);
        for id in &self.ids {
            text.push_str(&id.to_hex().to_string());
            text.push('\n');
        }
        let lock_path = lock.lock_path().to_owned();
        lock.write_all(text.as_bytes())
            .map_err(io_err(&lock_path))?;
        lock.commit(sync).map_err(io_err(&path))
    }
}

/// Access
impl Shallow {
    /// Whether `id` is shallow: its parents are absent on purpose.
    pub fn contains(&self, id: &oid) -> bool {
        !self.ids.is_empty() && self.ids.binary_search_by(|x| x.as_ref().cmp(id)).is_ok()
    }

    /// Whether no commit is shallow.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// How many commits are shallow.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The shallow commits, sorted.
    pub fn ids(&self) -> &[ObjectId] {
        &self.ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hex: &str) -> ObjectId {
        ObjectId::from_hex(hex.repeat(40).as_bytes()).unwrap()
    }

    #[test]
    fn lines_parse_sorted_and_deduplicated() {
        let text = format!("{}\n{}\n{}\n", id("b"), id("a"), id("b"));
        let shallow = Shallow::from_bytes(text.as_bytes()).unwrap();
        assert_eq!(shallow.ids(), [id("a"), id("b")]);
        assert!(Shallow::from_bytes(b"").unwrap().is_empty());
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        let good = id("a").to_string();
        assert_eq!(
            Shallow::from_bytes(format!("{good}\nxyz\n").as_bytes()),
            Err(2)
        );
        assert_eq!(
            Shallow::from_bytes(format!("{good}\n\n{good}\n").as_bytes()),
            Err(2)
        );
        assert_eq!(
            Shallow::from_bytes(good.to_uppercase().as_bytes()).map(|s| s.len()),
            Ok(1)
        );
        assert_eq!(Shallow::from_bytes(&good.as_bytes()[1..]), Err(1));
    }

    #[test]
    fn write_then_read_round_trips_and_an_empty_list_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut shallow = Shallow::default();
        assert!(shallow.insert(id("c")));
        assert!(shallow.insert(id("1")));
        assert!(!shallow.insert(id("c")));
        shallow
            .write(&crate::git::fs::real(), dir.path(), true)
            .unwrap();
        let text = fs::read_to_string(dir.path().join(SHALLOW_FILE)).unwrap();
        assert_eq!(
            text,
            format!("{}\n{}\n", id("1"), id("c")),
            "sorted hex lines"
        );
        assert_eq!(Shallow::read(dir.path()).unwrap(), shallow);
        Shallow::default()
            .write(&crate::git::fs::real(), dir.path(), false)
            .unwrap();
        assert!(!dir.path().join(SHALLOW_FILE).exists());
        assert!(!dir.path().join(SHALLOW_LOCK).exists());
    }

    #[test]
    fn a_held_lock_is_reported_not_broken() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SHALLOW_LOCK), "").unwrap();
        assert!(matches!(
            Shallow::default().write(&crate::git::fs::real(), dir.path(), false),
            Err(Error::Locked { .. })
        ));
        assert!(dir.path().join(SHALLOW_LOCK).exists());
    }
}
