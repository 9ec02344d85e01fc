//! Owns git's lock-file protocol ([`LockFile`]), the only lock gitmq takes on disk.
//!
//! Protocol (git's `lockfile.c`): create `<target>.lock` with `O_CREAT|O_EXCL`; if it exists,
//! retry with quadratic back-off (`n²` ms, ±25% jitter, at most one second a wait) until a
//! deadline, then report the lock with its path (never break it). While held, the new contents
//! are written into the lock file; [`LockFile::commit()`] syncs it (when asked), renames it over
//! the target and syncs the directory (when asked). A lock dropped without a commit is
//! removed, so a failed write never leaves `<target>.lock` behind.
//!
//! A lock may also be a mutex held for a while ([`LockFile::hold()`]): its file holds the
//! holder's pid and boot id, and a lock whose holder is no longer running (where `/proc`
//! tells), that was taken before the machine last booted, or that names none and is older
//! than [`STALE_HELD_LOCK`], is taken over. Commit-style locks are never taken over:
//! a writer killed while holding one leaves it for a person (or `gitmq unlock`) to remove.

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use super::{remove_if_exists, SharedFs};

/// How long writers wait for another holder of a lock by default (git's `core.filesRefLockTimeout`
/// is 100 ms; gitmq's producers contend on one topic ref, so they wait longer).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A held lock ([`LockFile::hold()`]) that names no holder is taken over once it is this old.
pub const STALE_HELD_LOCK: Duration = Duration::from_secs(600);

/// Returned by [`LockFile::acquire()`] and [`LockFile::hold()`].
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another writer held the lock until the deadline.
    #[error("{lock_path} is held by another writer (waited {waited:?})")]
    Locked {
        /// The lock file that exists.
        lock_path: PathBuf,
        /// How long this writer waited.
        waited: Duration,
    },
    /// The file system refused.
    #[error("lock file {path} failed")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// An exclusive lock on a file (`<target>.lock`), held until committed or dropped.
#[derive(Debug)]
pub struct LockFile {
    fs: SharedFs,
    target: PathBuf,
    lock_path: PathBuf,
    file: Option<File>,
}

/// Lifecycle
impl LockFile {
    /// Take the lock on `target` (creating `<target>.lock`), waiting up to `timeout` for
    /// another holder. The target's directory must exist.
    pub fn acquire(fs: &SharedFs, target: &Path, timeout: Duration) -> Result<Self, LockError> {
        let lock_path = lock_path_of(target);
        let file = create_waiting(fs, &lock_path, timeout, |_| false)?;
        Ok(Self {
            fs: fs.clone(),
            target: target.to_owned(),
            lock_path,
            file: Some(file),
        })
    }

    /// Hold the mutex `lock_path` (the file itself is the lock; it is never committed), waiting
    /// up to `timeout`. The file holds this process's pid; a lock left by a process that is
    /// gone is taken over.
    pub fn hold(fs: &SharedFs, lock_path: &Path, timeout: Duration) -> Result<Self, LockError> {
        let mut file = create_waiting(fs, lock_path, timeout, is_stale_held_lock)?;
        // Who holds it, so that a lock left by a killed process (or by a machine that went
        // down: pids are reused after a reboot) is seen at once; best effort.
        let holder = match boot_id() {
            Some(boot) => format!("{} {boot}\n", std::process::id()),
            None => format!("{}\n", std::process::id()),
        };
        let _ = fs.write(&mut file, lock_path, holder.as_bytes());
        Ok(Self {
            fs: fs.clone(),
            target: lock_path.to_owned(),
            lock_path: lock_path.to_owned(),
            file: Some(file),
        })
    }

    /// Write `data` into the lock file (the target's new contents).
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .expect("BUG: a lock is written before it is committed");
        self.fs.write(file, &self.lock_path, data)
    }

    /// Replace the target with what was written: with `sync`, the lock file is synced before
    /// the rename and the directory after it. On an error the lock file is removed and the
    /// target is as it was (or, if only the directory sync failed, replaced but not durable).
    pub fn commit(mut self, sync: bool) -> io::Result<()> {
        let file = self.file.take().expect("BUG: a lock is committed once");
        let result = (|| {
            if sync {
                self.fs.sync_data(&file, &self.lock_path)?;
            }
            drop(file);
            self.fs.rename(&self.lock_path, &self.target)
        })();
        if let Err(err) = result {
            let _ = remove_if_exists(&*self.fs, &self.lock_path);
            return Err(err);
        }
        if sync {
            self.fs.sync_dir(self.dir())?;
        }
        Ok(())
    }

    /// Remove the target (if it exists) while holding the lock, then release the lock; with
    /// `sync`, the directory is synced.
    pub fn commit_removal(self, sync: bool) -> io::Result<()> {
        remove_if_exists(&*self.fs, &self.target)?;
        if sync {
            self.fs.sync_dir(self.dir())?;
        }
        self.release()
    }

    /// Give the lock up without changing the target.
    pub fn release(mut self) -> io::Result<()> {
        drop(self.file.take());
        self.fs.remove_file(&self.lock_path)
    }
}

/// Access
impl LockFile {
    /// The file the lock guards.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The lock file.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// The file system the lock was taken on.
    pub fn fs(&self) -> &SharedFs {
        &self.fs
    }

    fn dir(&self) -> &Path {
        self.target
            .parent()
            .expect("BUG: a lock target has a directory")
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = self.fs.remove_file(&self.lock_path);
        }
    }
}

/// `<path>.lock`.
pub fn lock_path_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Create `lock_path` exclusively, retrying with [`backoff()`] until `timeout`; a lock for
/// which `stale` is true is removed and creation tried again.
fn create_waiting(
    fs: &SharedFs,
    lock_path: &Path,
    timeout: Duration,
    stale: impl Fn(&Path) -> bool,
) -> Result<File, LockError> {
    let start = Instant::now();
    let mut attempt: u64 = 0;
    loop {
        match fs.create_new(lock_path) {
            Ok(file) => return Ok(file),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                if stale(lock_path) {
                    let _ = fs.remove_file(lock_path);
                    continue;
                }
                let waited = start.elapsed();
                if waited >= timeout {
                    return Err(LockError::Locked {
                        lock_path: lock_path.to_owned(),
                        waited,
                    });
                }
                attempt += 1;
                std::thread::sleep(backoff(attempt).min(timeout.saturating_sub(waited)));
            }
            Err(source) => {
                return Err(LockError::Io {
                    path: lock_path.to_owned(),
                    source,
                })
            }
        }
    }
}

/// Whether the held lock at `path` was left by a holder that is gone: it was taken before the
/// machine last booted (it names another boot, or names nobody and predates the boot: a power
/// cut may leave its content unwritten), or it names a process that is no longer running
/// (where `/proc` tells), or it names none (a holder killed before it wrote its pid, or an
/// older gitmq) and is older than [`STALE_HELD_LOCK`]. A lock naming a running process of
/// this boot is never stale.
fn is_stale_held_lock(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut fields = text.split_whitespace();
    let pid = fields.next().and_then(|pid| pid.parse::<u32>().ok());
    let boot = fields.next();
    if boot.is_some_and(|boot| boot_id().is_some_and(|now| now != boot)) {
        return true;
    }
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    match pid {
        Some(pid) => {
            pid != std::process::id()
                && Path::new("/proc/self").exists()
                && !Path::new(&format!("/proc/{pid}")).exists()
        }
        None => modified.is_some_and(|t| {
            boot_time().is_some_and(|boot| t < boot)
                || SystemTime::now()
                    .duration_since(t)
                    .is_ok_and(|age| age > STALE_HELD_LOCK)
        }),
    }
}

/// This boot's id (Linux), which names the boot a held lock was taken in.
fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty() && !id.contains(char::is_whitespace)).then(|| id.to_owned())
}

/// When the machine booted (Linux: `btime` in `/proc/stat`).
fn boot_time() -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let seconds = stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse::<u64>()
        .ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// git's `lockfile.c` back-off: `n²` ms with ±25% jitter, capped at one second.
pub fn backoff(attempt: u64) -> Duration {
    let base = (attempt * attempt).min(1000);
    let nanos = u64::from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos(),
    );
    let jitter_permille = 750 + (nanos ^ (nanos >> 7)) % 501;
    Duration::from_micros(base * jitter_permille)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::fs::real;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_micros(1250));
        assert!(backoff(10) >= Duration::from_millis(75));
        assert!(backoff(1000) <= Duration::from_millis(1250));
    }

    #[test]
    fn a_committed_lock_replaces_its_target_and_leaves_no_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("config");
        std::fs::write(&target, "old").unwrap();
        let mut lock = LockFile::acquire(&real(), &target, Duration::ZERO).unwrap();
        lock.write_all(b"new").unwrap();
        lock.commit(true).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert!(!lock_path_of(&target).exists());
    }

    #[test]
    fn a_dropped_lock_is_removed_and_the_target_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("config");
        std::fs::write(&target, "old").unwrap();
        let mut lock = LockFile::acquire(&real(), &target, Duration::ZERO).unwrap();
        lock.write_all(b"half").unwrap();
        drop(lock);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        assert!(!lock_path_of(&target).exists());
    }

    #[test]
    fn a_held_lock_is_reported_after_the_timeout_and_not_broken() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("ref");
        let _held = LockFile::acquire(&real(), &target, Duration::ZERO).unwrap();
        let err = LockFile::acquire(&real(), &target, Duration::from_millis(30)).unwrap_err();
        assert!(
            matches!(err, LockError::Locked { waited, .. } if waited >= Duration::from_millis(30))
        );
        assert!(lock_path_of(&target).exists());
    }

    #[test]
    fn a_held_mutex_of_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gitmq-consolidate.lock");
        // A pid that cannot be running: above the kernel's pid_max limit.
        std::fs::write(&path, "4194305").unwrap();
        let held = LockFile::hold(&real(), &path, Duration::ZERO).unwrap();
        let holder = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            holder.split_whitespace().next(),
            Some(std::process::id().to_string().as_str())
        );
        assert!(matches!(
            LockFile::hold(&real(), &path, Duration::ZERO),
            Err(LockError::Locked { .. })
        ));
        drop(held);
        assert!(!path.exists());
    }

    /// After a power cut and a reboot, a held lock names a pid of the last boot, which may be
    /// a running process now (pids start over), or names nobody (its content was not synced):
    /// either kept prune and consolidation out for good (or for ten minutes).
    #[test]
    fn a_held_mutex_from_before_the_last_boot_is_taken_over() {
        if boot_id().is_none() || boot_time().is_none() {
            return; // not Linux
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gitmq-consolidate.lock");
        // pid 1 runs, but in this boot it never took the lock.
        std::fs::write(&path, "1 00000000-0000-0000-0000-000000000000\n").unwrap();
        drop(LockFile::hold(&real(), &path, Duration::ZERO).unwrap());
        // Empty, and written before the boot.
        let file = std::fs::File::create(&path).unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1))
            .unwrap();
        drop(LockFile::hold(&real(), &path, Duration::ZERO).unwrap());
        // pid 1 of this boot does hold it.
        std::fs::write(&path, format!("1 {}\n", boot_id().unwrap())).unwrap();
        assert!(matches!(
            LockFile::hold(&real(), &path, Duration::ZERO),
            Err(LockError::Locked { .. })
        ));
    }
}
