//! Owns finding, creating and opening a git repository, and the handles into it.
//!
//! Invariants: a [`Repository`] always points at a git directory with `objects/` and `refs/`
//! in SHA-1 format with the files ref backend (others are refused at open, never misread);
//! [`Repository::init()`] writes the empty tree object every message points to.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use gix_hash::ObjectId;

use crate::git::{
    fs::{real, SharedFs},
    odb::Odb,
    refs::RefStore,
};

/// Returned by [`Repository::init()`], [`Repository::open()`] and [`Repository::discover()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file system refused.
    #[error("repository I/O failed at {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Neither the path nor its `.git` is a git directory.
    #[error(
        "{path} is not a git repository (or any of its parents); create one with `gitmq init`"
    )]
    NotARepository {
        /// Where the search started.
        path: PathBuf,
    },
    /// `init` on a directory that holds other files.
    #[error("{path} exists and is not empty")]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// The repository uses a format gitmq does not read.
    #[error("{path} uses {feature}, which gitmq does not support")]
    Unsupported {
        /// The git directory.
        path: PathBuf,
        /// The feature, as named in its config.
        feature: String,
    },
    /// Writing the empty tree failed.
    #[error(transparent)]
    Loose(#[from] crate::git::odb::loose::Error),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// A git repository used as a queue.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = gitmq::Repository::init(dir.path())?;
/// let topic = gitmq::TopicName::new("orders")?;
/// let id = repo.producer(&topic).publish(b"{\"order\":1}")?;
/// assert_eq!(repo.head(&topic)?, Some(id));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Repository {
    git_dir: PathBuf,
    refs: RefStore,
    /// The key copies are re-signed with ([`crate::git::sign::copy`]).
    pub(crate) copy_signer: Option<std::sync::Arc<crate::git::sign::Signer>>,
    fs: SharedFs,
}

/// Lifecycle
impl Repository {
    /// Create a bare repository at `path` (which may exist if empty), or open the repository
    /// already there. The result is a repository git 2.x accepts.
    pub fn init(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        if let Ok(repo) = Self::open(path) {
            repo.ensure_empty_tree()?;
            return Ok(repo);
        }
        match fs::read_dir(path) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::NotEmpty {
                        path: path.to_owned(),
                    });
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(path).map_err(io_err(path))?;
            }
            Err(err) => return Err(io_err(path)(err)),
        }
        for dir in ["objects/info", "objects/pack", "refs/heads", "refs/tags"] {
            let dir = path.join(dir);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        let files: [(&str, &str); 3] = [
            (
                "config",
                "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n",
            ),
            ("description", "A gitmq message queue.\n"),
            ("HEAD", "ref: refs/heads/main\n"),
        ];
        for (name, content) in files {
            let file = path.join(name);
            fs::write(&file, content).map_err(io_err(&file))?;
        }
        let repo = Self::open(path)?;
        repo.ensure_empty_tree()?;
        Ok(repo)
    }

    /// Open the repository at `path`: a git directory (bare), or a work tree holding `.git`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with_fs(path, real())
    }

    /// Open the repository at `path` as [`open()`](Self::open) does, with every write going
    /// through `fs` (a test puts a file system that fails on demand here).
    pub fn open_with_fs(path: impl AsRef<Path>, fs: SharedFs) -> Result<Self, Error> {
        let path = path.as_ref();
        let git_dir = Self::git_dir_at(path).ok_or_else(|| Error::NotARepository {
            path: path.to_owned(),
        })?;
        check_format(&git_dir)?;
        Ok(Self {
            refs: RefStore::with_fs(&git_dir, fs.clone()),
            git_dir,
            copy_signer: None,
            fs,
        })
    }

    /// Open the repository at `start` or in the nearest of its parent directories.
    pub fn discover(start: impl AsRef<Path>) -> Result<Self, Error> {
        let start = start.as_ref();
        let absolute = std::path::absolute(start).map_err(io_err(start))?;
        for dir in absolute.ancestors() {
            if Self::git_dir_at(dir).is_some() {
                return Self::open(dir);
            }
        }
        Err(Error::NotARepository {
            path: start.to_owned(),
        })
    }

    fn git_dir_at(path: &Path) -> Option<PathBuf> {
        let dot_git = path.join(".git");
        if dot_git.is_dir() && is_git_dir(&dot_git) {
            return Some(dot_git);
        }
        if dot_git.is_file() {
            // A worktree or submodule: `.git` is a file saying `gitdir: <path>`.
            let content = fs::read_to_string(&dot_git).ok()?;
            let target = content.strip_prefix("gitdir:")?.trim();
            let target = path.join(target);
            return is_git_dir(&target).then_some(target);
        }
        is_git_dir(path).then(|| path.to_owned())
    }

    fn ensure_empty_tree(&self) -> Result<(), Error> {
        let empty_tree = ObjectId::empty_tree(crate::git::hash::OBJECT_HASH);
        let mut odb = self.odb();
        if !odb.contains(&empty_tree) {
            let mut dirs = Vec::new();
            odb.loose()
                .write(gix_object::Kind::Tree, b"", true, &mut dirs)?;
            odb.loose().sync_dirs(&mut dirs)?;
        }
        Ok(())
    }
}

/// Access
impl Repository {
    /// The git directory (`.git`, or the repository itself when bare).
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// A new handle on the object database (packs are listed on its first read).
    pub fn odb(&self) -> Odb {
        Odb::with_fs(self.git_dir.join("objects"), self.fs.clone())
    }

    /// The file system every write of this repository goes through.
    pub fn fs(&self) -> &SharedFs {
        &self.fs
    }

    /// The refs.
    pub fn refs(&self) -> &RefStore {
        &self.refs
    }
}

fn is_git_dir(path: &Path) -> bool {
    path.join("HEAD").is_file() && path.join("objects").is_dir() && path.join("refs").is_dir()
}

/// Refuse repositories gitmq would misread: SHA-256 objects or the reftable ref backend.
fn check_format(git_dir: &Path) -> Result<(), Error> {
    let config = git_dir.join("config");
    let content = match fs::read_to_string(&config) {
        Ok(content) => content.to_ascii_lowercase(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_err(&config)(err)),
    };
    for line in content.lines() {
        let line: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        for (key, ok) in [("objectformat=", "sha1"), ("refstorage=", "files")] {
            if let Some(value) = line.strip_prefix(key) {
                if value != ok {
                    return Err(Error::Unsupported {
                        path: git_dir.to_owned(),
                        feature: line.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_a_repository_that_opens_and_init_again_reopens_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.git");
        let repo = Repository::init(&path).unwrap();
        assert!(repo
            .odb()
            .contains(&ObjectId::empty_tree(crate::git::hash::OBJECT_HASH)));
        Repository::init(&path).expect("init is idempotent");
        Repository::open(&path).unwrap();
    }

    #[test]
    fn init_refuses_a_non_empty_directory_and_open_refuses_a_plain_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), "x").unwrap();
        assert!(matches!(
            Repository::init(dir.path()),
            Err(Error::NotEmpty { .. })
        ));
        assert!(matches!(
            Repository::open(dir.path()),
            Err(Error::NotARepository { .. })
        ));
    }

    #[test]
    fn discover_finds_the_git_dir_of_a_work_tree_from_a_subdirectory() {
        let dir = tempfile::tempdir().unwrap();
        Repository::init(dir.path().join(".git")).unwrap();
        let sub = dir.path().join("a/b");
        fs::create_dir_all(&sub).unwrap();
        let repo = Repository::discover(&sub).unwrap();
        assert_eq!(
            repo.git_dir(),
            std::path::absolute(dir.path().join(".git")).unwrap()
        );
    }

    #[test]
    fn sha256_and_reftable_repositories_are_refused() {
        for extension in ["objectformat = sha256", "refStorage = reftable"] {
            let dir = tempfile::tempdir().unwrap();
            Repository::init(dir.path()).unwrap();
            fs::write(
                dir.path().join("config"),
                format!("[core]\n\trepositoryformatversion = 1\n[extensions]\n\t{extension}\n"),
            )
            .unwrap();
            assert!(matches!(
                Repository::open(dir.path()),
                Err(Error::Unsupported { .. })
            ));
        }
    }
}
