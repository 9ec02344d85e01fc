//! Owns putting a new file in place atomically: [`TempFile`] (write under a temporary name in
//! the final directory, sync, rename, sync the directory) and the temporary names themselves.
//!
//! Temporary names are `tmp_<kind>_gitmq_<pid>_<n>` (git's `tmp_pack_`/`tmp_idx_`/`tmp_obj_`
//! prefixes, no `.pack`/`.idx` suffix, so neither git nor gitmq ever takes one for a finished
//! file); the pid lets [`remove_stale_temp_files()`] tell which writer is gone.
//!
//! Invariants: a [`TempFile`] is either renamed into place by [`TempFile::persist()`] or
//! removed when dropped; nothing but [`TempFile::persist()`] gives it its final name, so a
//! reader never sees a partly written file under a final name.

use std::{
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use super::{Fs, SharedFs};

/// Every temporary file gitmq writes starts with this.
pub const TEMP_PREFIX: &str = "tmp_";

/// A temporary file of a writer that is gone is removed once it is this old even where the
/// writer's pid cannot be checked.
const STALE_TEMP_FILE: Duration = Duration::from_secs(86_400);

/// A new file being written under a temporary name, removed on drop unless persisted.
#[derive(Debug)]
pub struct TempFile {
    fs: SharedFs,
    path: PathBuf,
    file: Option<File>,
}

/// Lifecycle
impl TempFile {
    /// Create a new temporary file for a `kind` (`"pack"`, `"idx"`, `"obj"`...) in `dir`.
    pub fn create_in(fs: &SharedFs, dir: &Path, kind: &str) -> io::Result<Self> {
        let path = temp_path(dir, kind);
        let file = fs.create_new(&path)?;
        Ok(Self {
            fs: fs.clone(),
            path,
            file: Some(file),
        })
    }

    /// Flush the data written so far to the disk.
    pub fn sync(&self) -> io::Result<()> {
        self.fs.sync_data(self.file(), &self.path)
    }

    /// Give the file its final name `to` (replacing what is there). The directory is not
    /// synced: a caller putting several files in place syncs it once, with
    /// [`Fs::sync_dir`], after the last one.
    pub fn persist(mut self, to: &Path) -> io::Result<()> {
        drop(self.file.take());
        if let Err(err) = self.fs.rename(&self.path, to) {
            let _ = self.fs.remove_file(&self.path);
            return Err(err);
        }
        Ok(())
    }
}

/// Access
impl TempFile {
    /// The temporary path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file (for reading back what was written, or its metadata).
    pub fn file(&self) -> &File {
        self.file
            .as_ref()
            .expect("BUG: a temporary file is open until persisted")
    }

    /// The open file, to seek or read (writes go through [`Write`], i.e. the [`Fs`]).
    pub fn file_mut(&mut self) -> &mut File {
        self.file
            .as_mut()
            .expect("BUG: a temporary file is open until persisted")
    }

    /// The file system the file is written through.
    pub fn fs(&self) -> &SharedFs {
        &self.fs
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .expect("BUG: a temporary file is open until persisted");
        self.fs.write(file, &self.path, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = self.fs.remove_file(&self.path);
        }
    }
}

/// Write `parts` as the new file `to` (in `dir`): a temporary file, synced when `sync`,
/// renamed to `to`, and `dir` synced when `sync`. Nothing is left behind on an error.
pub fn write_file(
    fs: &SharedFs,
    dir: &Path,
    kind: &str,
    to: &Path,
    parts: &[&[u8]],
    sync: bool,
) -> io::Result<()> {
    let mut file = TempFile::create_in(fs, dir, kind)?;
    for part in parts {
        file.write_all(part)?;
    }
    if sync {
        file.sync()?;
    }
    file.persist(to)?;
    if sync {
        fs.sync_dir(dir)?;
    }
    Ok(())
}

/// A temporary file name in `dir` for a `kind` of file being written.
fn temp_path(dir: &Path, kind: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        "{TEMP_PREFIX}{kind}_gitmq_{}_{n}",
        std::process::id()
    ))
}

/// Remove the temporary files that gitmq processes left in `dir` when they were killed: those
/// whose writer's pid is no longer running (where `/proc` tells), or older than a day.
/// Returns how many were removed. Best effort: errors are ignored.
pub fn remove_stale_temp_files(fs: &dyn Fs, dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let proc_available = Path::new("/proc/self").exists();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        let Some((_, after)) = rest.split_once("_gitmq_") else {
            continue;
        };
        let pid = after.split('_').next().and_then(|p| p.parse::<u32>().ok());
        let dead = match pid {
            Some(pid) if proc_available => {
                pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
            }
            _ => false,
        };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TEMP_FILE);
        if (dead || old) && fs.remove_file(&entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::fs::real;

    #[test]
    fn a_written_file_appears_whole_under_its_name_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("pack-1.pack");
        write_file(&real(), dir.path(), "pack", &to, &[b"PACK", b"rest"], true).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"PACKrest");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_dropped_temporary_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = TempFile::create_in(&real(), dir.path(), "idx").unwrap();
        file.write_all(b"half").unwrap();
        let path = file.path().to_owned();
        assert!(path.exists());
        drop(file);
        assert!(!path.exists());
    }

    #[test]
    fn stale_temporary_files_of_dead_writers_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join("tmp_pack_gitmq_4194305_0");
        std::fs::write(&dead, "x").unwrap();
        let live = TempFile::create_in(&real(), dir.path(), "pack").unwrap();
        assert_eq!(remove_stale_temp_files(&*real(), dir.path()), 1);
        assert!(!dead.exists());
        assert!(live.path().exists());
    }
}
