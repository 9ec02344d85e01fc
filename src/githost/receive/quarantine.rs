//! Owns where a pushed pack waits until it is checked: a directory of its own under
//! `objects/` (git's "quarantine", `objects/tmp_objdir-incoming-*`), so objects of a push that
//! is refused never enter the object database where a later push could name them.
//!
//! Order: [`Quarantine::receive()`] indexes the pack into `objects/incoming-gitmq-<pid>-<n>/`
//! with [`index_pack()`] (checked, fsynced when asked); the caller checks it; then
//! [`Quarantine::migrate()`] renames the pack, then its index, into `objects/pack/` (git's
//! order: readers look for the index) and fsyncs that directory. Only then may a ref move.
//!
//! Invariants: the directory is removed when the [`Quarantine`] drops, whatever happened
//! (a truncated or refused push leaves nothing behind); directories left by a killed process
//! are removed by [`remove_stale()`] once they are older than [`STALE_AFTER`].

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime},
};

use crate::git::{
    fs::SharedFs,
    odb::pack::{
        index_pack::{self, index_pack, IndexedPack, Limits},
        write::WrittenPack,
    },
};

/// The prefix of quarantine directories in `objects/`.
pub(crate) const PREFIX: &str = "incoming-gitmq-";
/// How old a quarantine directory must be before [`remove_stale()`] takes it for a dead
/// process's (a push is indexed in minutes at worst).
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A received pack, indexed in its own directory.
#[derive(Debug)]
pub(crate) struct Quarantine {
    dir: PathBuf,
    pub indexed: IndexedPack,
}

/// Returned by [`Quarantine::receive()`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot create the quarantine directory {path}")]
    Create { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Index(#[from] index_pack::Error),
}

/// Removes a directory tree on drop.
struct DirGuard(Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

impl Quarantine {
    /// Read a pack from `input` and index it into a new quarantine directory in
    /// `objects_dir`.
    pub(crate) fn receive(
        fs: &SharedFs,
        input: impl io::Read,
        objects_dir: &Path,
        limits: &Limits,
        sync: bool,
    ) -> Result<Self, Error> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let dir = objects_dir.join(format!(
            "{PREFIX}{}-{}-{nanos:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&dir).map_err(|source| Error::Create {
            path: dir.clone(),
            source,
        })?;
        let mut guard = DirGuard(Some(dir.clone()));
        let indexed = index_pack(fs, input, &dir, limits, sync)?;
        guard.0 = None;
        Ok(Self { dir, indexed })
    }

    /// The quarantined pack file, if the pack held any object.
    pub(crate) fn pack(&self) -> Option<&WrittenPack> {
        self.indexed.written.as_ref()
    }

    /// Move the pack and its index into `pack_dir` (pack first), then sync the directory.
    pub(crate) fn migrate(&self, fs: &SharedFs, pack_dir: &Path, sync: bool) -> io::Result<()> {
        let Some(written) = self.pack() else {
            return Ok(());
        };
        let name = |path: &Path| pack_dir.join(path.file_name().unwrap_or_default());
        let (pack, index) = (name(&written.pack_path), name(&written.index_path));
        if pack.exists() && index.exists() {
            return Ok(()); // the same pack (same checksum) is in place already
        }
        fs.rename(&written.pack_path, &pack)?;
        fs.rename(&written.index_path, &index)?;
        if sync {
            fs.sync_dir(pack_dir)?;
        }
        Ok(())
    }
}

impl Drop for Quarantine {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Remove quarantine directories in `objects_dir` older than [`STALE_AFTER`]; how many.
pub(crate) fn remove_stale(objects_dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(objects_dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(PREFIX));
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_AFTER);
        if is_ours && old && fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}
