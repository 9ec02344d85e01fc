//! [`FaultyFs`]: a [`gitmq::git::fs::Fs`] over the real file system that keeps a model of
//! what is durable and fails on demand (redb's crash backend, SQLite's and fjall's fault
//! tests): a power cut after the N-th sync, ENOSPC at the N-th write, EIO at the N-th sync.
//!
//! The durability model (POSIX, the adversarial reading):
//! - a file's *data* is durable as of its last `sync_data` (read back from the file then);
//!   data written since is lost; a file never synced has no data (empty);
//! - a directory's *entries* (names, and which file or directory each names) are durable as
//!   of its last `sync_dir`; creations, renames and removals since are undone, and a directory
//!   whose own entry was never made durable in its parent is gone with everything in it;
//! - at the start, everything under the root is durable as it is.
//!
//! [`Cut::Entries`] applies exactly that. [`Cut::Data`] is the other adversarial reading,
//! a file system that journals names but not data (ext4 `data=writeback`, XFS): every name
//! stays as it is, but each file holds only what was synced (a renamed, never-synced file is
//! empty). A writer that is right under both never lets a name reach unsynced data.
//!
//! Files are told apart by inode: a file created through [`gitmq::git::fs::Fs::create_new`]
//! gets a fresh identity (inodes are reused), one found otherwise is one nobody synced.
//! Syncs are modelled, not performed (the tests need no real durability, and real fsyncs
//! would make the matrix slow).

use std::{
    collections::{BTreeMap, HashMap},
    ffi::OsString,
    fs::File,
    io::{self, Write},
    os::unix::fs::{FileExt, MetadataExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use gitmq::git::fs::{Fs, RealFs};

/// Linux's `ENOSPC` and `EIO`.
const ENOSPC: i32 = 28;
const EIO: i32 = 5;

/// What goes wrong, and when (operations are counted from 1, per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: count the operations.
    None,
    /// The first `after_syncs` syncs take effect, then the power goes: every later sync fails
    /// and nothing done after that point is durable ([`FaultyFs::power_cut()`] applies it).
    PowerCut { after_syncs: usize },
    /// The `write`-th write writes half its bytes, then fails with ENOSPC.
    Enospc { write: usize },
    /// The `sync`-th sync (`sync_data` or `sync_dir`) fails with EIO and makes nothing durable.
    Eio { sync: usize },
}

/// How a power cut treats what was not synced (see the module header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Unsynced data and unsynced directory entries are lost.
    Entries,
    /// Names stay as they are; unsynced data is lost.
    Data,
}

/// How many operations of each kind went through the file system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub writes: usize,
    /// `sync_data` and `sync_dir` together (the points a power cut or EIO may hit).
    pub syncs: usize,
    /// Files and directories created.
    pub creates: usize,
    pub renames: usize,
    /// Files and directories removed.
    pub removes: usize,
}

/// One entry of a directory, as durable.
#[derive(Debug, Clone, Copy)]
enum Node {
    File(u64),
    Dir,
}

#[derive(Debug, Default)]
struct State {
    counts: Counts,
    fired: bool,
    /// The power is off: syncs fail and have no effect.
    frozen: bool,
    next_id: u64,
    /// Inode -> file identity.
    by_inode: HashMap<u64, u64>,
    /// File identity -> its data at its last sync.
    synced: HashMap<u64, Vec<u8>>,
    /// Directory (relative to the root) -> its durable entries.
    dirs: HashMap<PathBuf, BTreeMap<OsString, Node>>,
}

/// The faulty file system; see the module header.
#[derive(Debug)]
pub struct FaultyFs {
    root: PathBuf,
    fault: Fault,
    state: Mutex<State>,
}

/// Lifecycle
impl FaultyFs {
    /// A file system over `root`, whose current content counts as durable, failing per `fault`.
    pub fn new(root: &Path, fault: Fault) -> Arc<Self> {
        let mut state = State {
            frozen: fault == Fault::PowerCut { after_syncs: 0 },
            ..State::default()
        };
        snapshot_tree(root, Path::new(""), &mut state);
        Arc::new(Self {
            root: root.to_owned(),
            fault,
            state: Mutex::new(state),
        })
    }

    /// Turn the root into what a power cut now leaves of it (see [`Cut`]). Every handle on it
    /// must be closed.
    pub fn power_cut(&self, cut: Cut) {
        let state = self.lock();
        let mut tree = Vec::new();
        match cut {
            Cut::Entries => durable_tree(&state, Path::new(""), &mut tree),
            Cut::Data => data_tree(&state, &self.root, Path::new(""), &mut tree),
        }
        for entry in std::fs::read_dir(&self.root).expect("read the root") {
            let path = entry.expect("root entry").path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).expect("clear the root");
            } else {
                std::fs::remove_file(&path).expect("clear the root");
            }
        }
        for (rel, data) in tree {
            let path = self.root.join(rel);
            match data {
                None => std::fs::create_dir_all(&path).expect("recreate a directory"),
                Some(data) => std::fs::write(&path, data).expect("recreate a file"),
            }
        }
    }
}

/// Access
impl FaultyFs {
    pub fn counts(&self) -> Counts {
        self.lock().counts
    }

    /// Whether the fault happened.
    pub fn fired(&self) -> bool {
        self.lock().fired
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn relative<'p>(&self, path: &'p Path) -> Option<&'p Path> {
        path.strip_prefix(&self.root).ok()
    }

    /// Count a sync; the error it fails with, if it must.
    fn sync_fault(&self, state: &mut State) -> Option<io::Error> {
        state.counts.syncs += 1;
        if self.fault
            == (Fault::Eio {
                sync: state.counts.syncs,
            })
        {
            state.fired = true;
            return Some(io::Error::from_raw_os_error(EIO));
        }
        if state.frozen {
            state.fired = true;
            return Some(io::Error::other("the power is off"));
        }
        None
    }

    /// After a sync took effect: the power goes if this was the last one planned.
    fn after_sync(&self, state: &mut State) {
        if self.fault
            == (Fault::PowerCut {
                after_syncs: state.counts.syncs,
            })
        {
            state.frozen = true;
        }
    }
}

impl Fs for FaultyFs {
    fn create_new(&self, path: &Path) -> io::Result<File> {
        let file = RealFs.create_new(path)?;
        let mut state = self.lock();
        state.counts.creates += 1;
        let id = state.next_id;
        state.next_id += 1;
        let inode = file.metadata()?.ino();
        state.by_inode.insert(inode, id);
        Ok(file)
    }

    fn write(&self, file: &mut File, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        state.counts.writes += 1;
        if self.fault
            == (Fault::Enospc {
                write: state.counts.writes,
            })
        {
            state.fired = true;
            file.write_all(&data[..data.len() / 2])?;
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        drop(state);
        RealFs.write(file, path, data)
    }

    fn sync_data(&self, file: &File, _path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if let Some(err) = self.sync_fault(&mut state) {
            return Err(err);
        }
        let id = identity(&mut state, file.metadata()?.ino());
        let mut data = vec![0; usize::try_from(file.metadata()?.len()).expect("small files")];
        file.read_exact_at(&mut data, 0)?;
        state.synced.insert(id, data);
        self.after_sync(&mut state);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.lock().counts.renames += 1;
        RealFs.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if let Some(err) = self.sync_fault(&mut state) {
            return Err(err);
        }
        if let Some(rel) = self.relative(dir) {
            let entries = list(dir, &mut state)?;
            state.dirs.insert(normal(rel), entries);
        }
        self.after_sync(&mut state);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.lock().counts.removes += 1;
        RealFs.remove_file(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.lock().counts.creates += 1;
        RealFs.create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.lock().counts.removes += 1;
        RealFs.remove_dir(path)
    }
}

/// The identity of the file with `inode` (a new one for a file nobody created through us).
fn identity(state: &mut State, inode: u64) -> u64 {
    if let Some(id) = state.by_inode.get(&inode) {
        return *id;
    }
    let id = state.next_id;
    state.next_id += 1;
    state.by_inode.insert(inode, id);
    id
}

/// `dir`'s entries now, as nodes.
fn list(dir: &Path, state: &mut State) -> io::Result<BTreeMap<OsString, Node>> {
    let mut entries = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        let node = if metadata.is_dir() {
            Node::Dir
        } else {
            Node::File(identity(state, metadata.ino()))
        };
        entries.insert(entry.file_name(), node);
    }
    Ok(entries)
}

/// Record everything under `root/rel` as durable.
fn snapshot_tree(root: &Path, rel: &Path, state: &mut State) {
    let dir = root.join(rel);
    let entries = list(&dir, state).expect("list a directory");
    for (name, node) in &entries {
        let path = dir.join(name);
        match node {
            Node::Dir => snapshot_tree(root, &rel.join(name), state),
            Node::File(id) => {
                let data = std::fs::read(&path).expect("read a file");
                state.synced.insert(*id, data);
            }
        }
    }
    state.dirs.insert(normal(rel), entries);
}

/// What [`Cut::Entries`] leaves under `rel`: (path, `None` for a directory or the data).
fn durable_tree(state: &State, rel: &Path, out: &mut Vec<(PathBuf, Option<Vec<u8>>)>) {
    let Some(entries) = state.dirs.get(rel) else {
        return; // a directory whose entries were never synced: empty
    };
    for (name, node) in entries {
        let path = rel.join(name);
        match node {
            Node::Dir => {
                out.push((path.clone(), None));
                durable_tree(state, &path, out);
            }
            Node::File(id) => out.push((path, Some(synced_data(state, *id)))),
        }
    }
}

/// What [`Cut::Data`] leaves under `root/rel`.
fn data_tree(state: &State, root: &Path, rel: &Path, out: &mut Vec<(PathBuf, Option<Vec<u8>>)>) {
    for entry in std::fs::read_dir(root.join(rel)).expect("list a directory") {
        let entry = entry.expect("entry");
        let path = rel.join(entry.file_name());
        let metadata = entry.metadata().expect("metadata");
        if metadata.is_dir() {
            out.push((path.clone(), None));
            data_tree(state, root, &path, out);
        } else {
            let data = state
                .by_inode
                .get(&metadata.ino())
                .map(|id| synced_data(state, *id))
                .unwrap_or_default();
            out.push((path, Some(data)));
        }
    }
}

fn synced_data(state: &State, id: u64) -> Vec<u8> {
    state.synced.get(&id).cloned().unwrap_or_default()
}

/// `rel` without `.` components (the library joins paths, never with `..`).
fn normal(rel: &Path) -> PathBuf {
    rel.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// The model itself, checked on plain files.
mod tests {
    use super::*;

    fn write_new(fs: &FaultyFs, path: &Path, data: &[u8], sync: bool) {
        let mut file = fs.create_new(path).unwrap();
        fs.write(&mut file, path, data).unwrap();
        if sync {
            fs.sync_data(&file, path).unwrap();
        }
    }

    #[test]
    fn a_power_cut_keeps_synced_data_under_synced_names_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old"), b"before").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let fs = FaultyFs::new(dir.path(), Fault::None);
        write_new(&fs, &dir.path().join("tmp1"), b"synced", true);
        fs.rename(&dir.path().join("tmp1"), &dir.path().join("old"))
            .unwrap();
        write_new(&fs, &dir.path().join("sub/unsynced-dir"), b"x", true);
        fs.sync_dir(dir.path()).unwrap();
        write_new(&fs, &dir.path().join("never-named"), b"y", true);
        std::fs::create_dir(dir.path().join("new-dir")).unwrap();
        write_new(&fs, &dir.path().join("new-dir/f"), b"z", true);
        fs.sync_dir(&dir.path().join("new-dir")).unwrap();
        fs.power_cut(Cut::Entries);
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["old", "sub"], "unsynced names are gone");
        assert_eq!(std::fs::read(dir.path().join("old")).unwrap(), b"synced");
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_power_cut_of_data_keeps_names_and_empties_what_was_never_synced() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new(dir.path(), Fault::None);
        write_new(&fs, &dir.path().join("tmp"), b"unsynced", false);
        fs.rename(&dir.path().join("tmp"), &dir.path().join("ref"))
            .unwrap();
        write_new(&fs, &dir.path().join("kept"), b"data", true);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("kept"))
            .unwrap();
        file.write_all(b" and more").unwrap();
        drop(file);
        fs.power_cut(Cut::Data);
        assert_eq!(std::fs::read(dir.path().join("ref")).unwrap(), b"");
        assert_eq!(std::fs::read(dir.path().join("kept")).unwrap(), b"data");
    }

    #[test]
    fn the_nth_sync_cuts_the_power_and_later_syncs_fail() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new(dir.path(), Fault::PowerCut { after_syncs: 1 });
        write_new(&fs, &dir.path().join("a"), b"1", true);
        assert!(!fs.fired());
        let mut file = fs.create_new(&dir.path().join("b")).unwrap();
        fs.write(&mut file, &dir.path().join("b"), b"2").unwrap();
        assert!(fs.sync_data(&file, &dir.path().join("b")).is_err());
        assert!(fs.sync_dir(dir.path()).is_err());
        assert!(fs.fired());
        assert_eq!(fs.counts().syncs, 3);
        fs.power_cut(Cut::Data);
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"1");
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"");
    }

    #[test]
    fn enospc_writes_half_and_eio_fails_one_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let fs = FaultyFs::new(dir.path(), Fault::Enospc { write: 2 });
        let mut file = fs.create_new(&path).unwrap();
        fs.write(&mut file, &path, b"ab").unwrap();
        let err = fs.write(&mut file, &path, b"cdef").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(ENOSPC));
        assert_eq!(std::fs::read(&path).unwrap(), b"abcd");
        let fs = FaultyFs::new(dir.path(), Fault::Eio { sync: 2 });
        fs.sync_dir(dir.path()).unwrap();
        assert_eq!(
            fs.sync_dir(dir.path()).unwrap_err().raw_os_error(),
            Some(EIO)
        );
        fs.sync_dir(dir.path()).unwrap();
        assert_eq!(fs.counts().syncs, 3);
    }
}
