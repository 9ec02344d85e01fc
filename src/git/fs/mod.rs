//! Owns every step a writer takes on the file system, and the seam they all go through.
//!
//! Two protocols are built here and nowhere else:
//! - [`lock::LockFile`]: git's lock file (`<target>.lock`, created with `O_CREAT|O_EXCL`,
//!   waited for with quadratic back-off and jitter until a deadline, written, then renamed over
//!   its target), used for refs, `packed-refs`, `shallow` and `config`, and as a held mutex
//!   (`gitmq-consolidate.lock`).
//! - [`atomic::TempFile`]: a new file written under a temporary name in its final directory,
//!   synced, renamed into place, and its directory synced: packs, indexes, loose objects.
//!
//! Every write, flush, rename, directory flush, removal, exclusive creation and directory
//! creation goes through [`Fs`], so a test can put a file system that fails on demand under
//! any writer ([`RealFs`] is the real one). Reads do not: they cannot make anything durable.
//!
//! Invariant (the order every writer follows): write the data, sync it (when the caller's
//! durability asks), rename it into place, sync its directory, and only then move a ref that
//! names it. A temporary or lock file that is dropped unfinished is removed.

pub mod atomic;
pub mod lock;

use std::{
    fmt,
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

pub use atomic::TempFile;
pub use lock::{LockError, LockFile, DEFAULT_LOCK_TIMEOUT};

/// The file-system operations that change what is on disk. Implementations must behave like
/// the POSIX calls they are named after; a test implementation may fail any of them.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Create `path` for writing (and reading back); fail with
    /// [`io::ErrorKind::AlreadyExists`] if it exists.
    fn create_new(&self, path: &Path) -> io::Result<File>;
    /// Write all of `data` at `file`'s position (`path` names the file, for errors and tests).
    fn write(&self, file: &mut File, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Flush `file`'s data (and the metadata needed to read it back) to the disk.
    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()>;
    /// Rename `from` to `to`, replacing `to` atomically.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Flush directory `dir`, so that names created or renamed in it survive a power loss.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Remove the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Create the directory `path` (its parent exists); fail with
    /// [`io::ErrorKind::AlreadyExists`] if it exists. Its name is durable only once its parent
    /// is synced.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Remove the empty directory `path`.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
}

/// A file system shared by every writer of a repository.
pub type SharedFs = Arc<dyn Fs>;

/// The real file system: each operation is the `std::fs` call of its name.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl Fs for RealFs {
    fn create_new(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    fn write(&self, file: &mut File, _path: &Path, data: &[u8]) -> io::Result<()> {
        file.write_all(data)
    }

    fn sync_data(&self, file: &File, _path: &Path) -> io::Result<()> {
        file.sync_data()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }
}

/// The real file system, shared.
pub fn real() -> SharedFs {
    static REAL: OnceLock<SharedFs> = OnceLock::new();
    REAL.get_or_init(|| Arc::new(RealFs)).clone()
}

/// A file being written through an [`Fs`]: `Write` goes through [`Fs::write`].
#[derive(Debug)]
pub struct FsWriter<'a> {
    fs: &'a dyn Fs,
    file: &'a mut File,
    path: &'a Path,
}

impl<'a> FsWriter<'a> {
    /// Writes to `file` (named `path`) through `fs`.
    pub fn new(fs: &'a dyn Fs, file: &'a mut File, path: &'a Path) -> Self {
        Self { fs, file, path }
    }
}

impl Write for FsWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.fs.write(self.file, self.path, buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.fs.write(self.file, self.path, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Create `dir` and whichever of its parents are missing, through `fs`; the directories this
/// call created, outermost first. A writer that must make a file in `dir` durable syncs the
/// parent of each of them too ([`sync_parents()`]): a new directory's name is only durable
/// once its parent is synced.
pub fn create_dir_all(fs: &dyn Fs, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut current = Some(dir);
    while let Some(path) = current.filter(|p| !p.as_os_str().is_empty() && !p.is_dir()) {
        missing.push(path.to_owned());
        current = path.parent();
    }
    missing.reverse();
    let mut created = Vec::with_capacity(missing.len());
    for path in missing {
        match fs.create_dir(&path) {
            Ok(()) => created.push(path),
            // Another writer made it meanwhile: not ours to sync.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
            Err(err) => return Err(err),
        }
    }
    Ok(created)
}

/// Sync the parent of each directory in `created` (from [`create_dir_all()`]), innermost
/// first, so their names survive a power loss.
pub fn sync_parents(fs: &dyn Fs, created: &[PathBuf]) -> io::Result<()> {
    for dir in created.iter().rev() {
        if let Some(parent) = dir.parent() {
            fs.sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Remove the file at `path` through `fs`; a file that is already gone is not an error.
pub fn remove_if_exists(fs: &dyn Fs, path: &Path) -> io::Result<()> {
    match fs.remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}
