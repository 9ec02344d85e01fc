//! Owns rewriting a repository's objects after a cut: one new pack of everything reachable,
//! then the old packs and loose objects removed under a grace rule.
//!
//! Data flow: list the old files (packs with an index and no `.keep`, loose objects) ->
//! read every ref under `refs/` and `HEAD` -> walk everything reachable from them (commits'
//! trees and parents, trees' entries, tags' targets), a shallow commit's parents excepted ->
//! stream those objects, oldest first, into one new pack ([`PackStream`]), renamed into place
//! (and synced) -> read the refs again and walk from any that moved: an object they reach
//! that is not in the new pack keeps every old file holding it -> decide which other old
//! files go (one old index in memory at a time) -> remove: index before pack, then loose
//! objects.
//!
//! The grace rule (like `git gc`'s `gc.pruneExpire`, but for whole files): an old file is
//! removed if every object in it is in the new pack (nothing is lost however young it is), or
//! if it was last modified more than `grace` before the prune started. A producer renames its
//! pack and only then moves its ref, milliseconds later (at most its ref-lock timeout, 10 s);
//! a pack written but not yet named by a ref holds objects the new pack lacks, so it stays
//! for the grace period, by which time its ref has moved (and the next prune copies it).
//! Files that appear after the listing are never considered.
//!
//! Invariants: nothing is removed unless the new pack is complete, indexed and renamed (and
//! synced when asked); every object reachable from the refs read after the new pack was
//! written is in the new pack or in a file that stays. Memory: about 60 bytes per reachable
//! object (its id in a set and a list), plus one index of an old pack at a time.

use std::{
    collections::HashSet,
    fs, io,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use gix_hash::ObjectId;

use super::{io_err, Error, Options};
use crate::{
    git::fs::{remove_if_exists, Fs},
    git::hash::OBJECT_HASH,
    git::odb::{
        pack::{index::PackIndex, write::PackStream},
        Odb,
    },
    git::refs::FullName,
    git::shallow::Shallow,
    Repository,
};

/// What [`repack()`] did.
#[derive(Debug, Default)]
pub(super) struct Repacked {
    pub objects: u64,
    pub new_pack: Option<PathBuf>,
    pub packs_removed: usize,
    pub loose_removed: usize,
    /// Old files left because they are younger than the grace period (or hold objects a
    /// moved ref reaches).
    pub files_kept: usize,
}

/// An old file, a candidate for removal.
#[derive(Debug)]
enum OldFile {
    Pack {
        pack: PathBuf,
        modified: SystemTime,
    },
    /// A pack without its index: a writer killed between renaming the pack and its index
    /// left it (git reads no pack without an index, and `git fsck` does not report it).
    Orphan {
        pack: PathBuf,
        modified: SystemTime,
    },
    Loose {
        path: PathBuf,
        id: ObjectId,
        modified: SystemTime,
    },
}

/// Rewrite the objects of `repo`: see the module docs.
pub(super) fn repack(
    repo: &Repository,
    shallow: &Shallow,
    started: SystemTime,
    options: &Options,
) -> Result<Repacked, Error> {
    let objects_dir = repo.git_dir().join("objects");
    let pack_dir = objects_dir.join("pack");
    let old = list_old_files(&objects_dir)?;
    let first_tips = tips(repo)?;
    let mut odb = repo.odb();
    let (order, kept) = reachable(&mut odb, &first_tips, shallow, &HashSet::new())?;

    let count = u32::try_from(order.len()).map_err(|_| Error::TooManyObjects)?;
    let mut stream = PackStream::create(repo.fs(), &pack_dir, count, options.compression)?;
    let mut body = Vec::new();
    for id in order.iter().rev() {
        let kind = odb.read(id, &mut body)?;
        stream
            .add(id, kind, &body)
            .map_err(|source| crate::git::odb::pack::write::Error::Io {
                path: pack_dir.clone(),
                source,
            })?;
    }
    drop(order);
    let (written, _) = stream.finish(&pack_dir, options.sync)?;
    drop(odb);

    let cutoff = started
        .checked_sub(options.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = Repacked {
        objects: u64::from(count),
        new_pack: Some(written.pack_path.clone()),
        ..Repacked::default()
    };
    // Refs that moved since they were read (a producer's batch, a fetch, a commit) may reach
    // objects outside the new pack: the files holding them stay.
    let moved: Vec<ObjectId> = tips(repo)?
        .into_iter()
        .filter(|id| !kept.contains(id))
        .collect();
    let extra = if moved.is_empty() {
        HashSet::new()
    } else {
        reachable(&mut repo.odb(), &moved, shallow, &kept)?.1
    };

    let mut doomed = Vec::new();
    for file in old {
        let goes = match &file {
            OldFile::Pack { pack, modified } => {
                if *pack == written.pack_path {
                    continue; // the same objects written again: the same name
                }
                let index = read_index(&pack.with_extension("idx"))?;
                let needed = extra.iter().any(|id| index.lookup(id).is_some());
                let all_kept = || index.iter().all(|(id, _)| kept.contains(id));
                !needed && (*modified < cutoff || all_kept())
            }
            OldFile::Orphan { modified, .. } => *modified < cutoff,
            OldFile::Loose { id, modified, .. } => {
                !extra.contains(id) && (*modified < cutoff || kept.contains(id))
            }
        };
        if goes {
            doomed.push(file);
        } else {
            report.files_kept += 1;
        }
    }

    if !doomed.is_empty() {
        drop_indexes_over(repo, &pack_dir, &objects_dir, &doomed, options.sync)?;
    }
    for file in doomed {
        match file {
            OldFile::Pack { pack, .. } | OldFile::Orphan { pack, .. } => {
                // Index first: readers look for the index, so none opens a half-removed pack.
                remove(&**repo.fs(), &pack.with_extension("idx"))?;
                remove(&**repo.fs(), &pack)?;
                for extension in ["rev", "bitmap", "mtimes", "promisor"] {
                    remove(&**repo.fs(), &pack.with_extension(extension))?;
                }
                report.packs_removed += 1;
            }
            OldFile::Loose { path, .. } => {
                remove(&**repo.fs(), &path)?;
                if let Some(dir) = path.parent() {
                    let _ = repo.fs().remove_dir(dir); // only if empty
                }
                report.loose_removed += 1;
            }
        }
    }
    if report.packs_removed > 0 {
        // The chain went before the packs: write it again (under the pack lock held).
        crate::git::odb::pack::midx::chain::update_locked(
            repo.fs(),
            repo.git_dir(),
            crate::git::odb::pack::midx::chain::Policy::default(),
            options.sync,
            true,
        )?;
    }
    Ok(report)
}

/// Before any of `doomed` goes, remove what indexes them, so that no reader (git's
/// included: `git fsck` checks a MIDX's packs and a commit-graph's commits) is ever told
/// of an object that is gone, even if the prune is killed halfway: git's single
/// multi-pack-index and commit-graph, and gitmq's MIDX chain when a pack goes (written again
/// once the packs are removed). With `sync`, the removals are durable before the first pack
/// goes. Found by the SIGKILLed-prune test: a prune killed after removing packs left a chain
/// naming them, and `git fsck --strict` failed.
fn drop_indexes_over(
    repo: &Repository,
    pack_dir: &Path,
    objects_dir: &Path,
    doomed: &[OldFile],
    sync: bool,
) -> Result<(), Error> {
    let fs = &**repo.fs();
    let info_dir = objects_dir.join("info");
    remove(fs, &pack_dir.join("multi-pack-index"))?;
    remove(fs, &info_dir.join("commit-graph"))?;
    let mut dirs = vec![pack_dir.to_owned(), info_dir];
    if doomed
        .iter()
        .any(|file| matches!(file, OldFile::Pack { .. } | OldFile::Orphan { .. }))
    {
        let chain = crate::git::odb::pack::midx::chain_path(pack_dir);
        remove(fs, &chain)?;
        dirs.extend(chain.parent().map(Path::to_owned));
    }
    if sync {
        for dir in dirs.iter().filter(|dir| dir.is_dir()) {
            fs.sync_dir(dir).map_err(io_err(dir))?;
        }
    }
    Ok(())
}

/// Remove `path` if it exists, through the repository's file system.
fn remove(fs: &dyn Fs, path: &Path) -> Result<(), Error> {
    remove_if_exists(fs, path).map_err(io_err(path))
}

fn read_index(path: &Path) -> Result<PackIndex, Error> {
    let data = fs::read(path).map_err(io_err(path))?;
    PackIndex::from_bytes(data).map_err(|source| Error::Index {
        path: path.to_owned(),
        source,
    })
}

/// Every ref under `refs/` (loose and packed) and `HEAD`, as the ids they name.
pub(super) fn tips(repo: &Repository) -> Result<Vec<ObjectId>, Error> {
    let mut tips: Vec<ObjectId> = repo
        .refs()
        .list("refs/")?
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    tips.extend(
        repo.refs()
            .find(&FullName::new("HEAD").expect("BUG: HEAD is a ref name"))?,
    );
    tips.sort_unstable();
    tips.dedup();
    Ok(tips)
}

/// Every object reachable from `tips` and not in `known`, without the parents of shallow
/// commits: in the order first reached (newest first along a chain), and as a set.
fn reachable(
    odb: &mut Odb,
    tips: &[ObjectId],
    shallow: &Shallow,
    known: &HashSet<ObjectId>,
) -> Result<(Vec<ObjectId>, HashSet<ObjectId>), Error> {
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    let mut stack: Vec<ObjectId> = tips.iter().rev().copied().collect();
    let mut body = Vec::new();
    let mut children = Vec::new();
    while let Some(id) = stack.pop() {
        if known.contains(&id) || !seen.insert(id) {
            continue;
        }
        order.push(id);
        let kind = odb.read(&id, &mut body)?;
        children.clear();
        let corrupt = |reason| Error::Corrupt { id, reason };
        match kind {
            gix_object::Kind::Commit => {
                let (tree, parents) = crate::git::message::parent::links(&body)
                    .map_err(|_| corrupt("the commit does not parse"))?;
                children.push(tree);
                if !shallow.contains(&id) {
                    children.extend(parents);
                }
            }
            gix_object::Kind::Tree => {
                for entry in gix_object::TreeRefIter::from_bytes(&body, OBJECT_HASH) {
                    let entry = entry.map_err(|_| corrupt("the tree does not parse"))?;
                    if !entry.mode.is_commit() {
                        children.push(entry.oid.to_owned());
                    }
                }
            }
            gix_object::Kind::Tag => {
                children.push(
                    gix_object::TagRefIter::from_bytes(&body, OBJECT_HASH)
                        .target_id()
                        .map_err(|_| corrupt("the tag does not parse"))?,
                );
            }
            gix_object::Kind::Blob => {}
        }
        // The first child on top: a commit's tree, then its parents, depth first.
        stack.extend(children.drain(..).rev());
    }
    Ok((order, seen))
}

/// The packs (with an index, without `.keep`) and loose objects in `objects_dir`, with the
/// time each was last modified.
fn list_old_files(objects_dir: &Path) -> Result<Vec<OldFile>, Error> {
    let mut out = Vec::new();
    let pack_dir = objects_dir.join("pack");
    for entry in read_dir(&pack_dir)? {
        let entry = entry.map_err(io_err(&pack_dir))?;
        let path = entry.path();
        let is_pack = entry.file_name().to_str().is_some_and(|name| {
            name.strip_prefix("pack-")
                .and_then(|n| n.strip_suffix(".pack"))
                .is_some_and(|stem| stem.len() == 40 && stem.bytes().all(|b| b.is_ascii_hexdigit()))
        });
        if !is_pack || path.with_extension("keep").exists() {
            continue;
        }
        let Some(modified) = modified(&path)? else {
            continue;
        };
        out.push(if path.with_extension("idx").is_file() {
            OldFile::Pack {
                pack: path,
                modified,
            }
        } else {
            OldFile::Orphan {
                pack: path,
                modified,
            }
        });
    }
    for fan in 0..=255u8 {
        let dir = objects_dir.join(format!("{fan:02x}"));
        for entry in read_dir(&dir)? {
            let entry = entry.map_err(io_err(&dir))?;
            let Some(rest) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(id) = ObjectId::from_hex(format!("{fan:02x}{rest}").as_bytes()) else {
                continue; // a temporary file
            };
            let path = entry.path();
            let Some(modified) = modified(&path)? else {
                continue;
            };
            out.push(OldFile::Loose { path, id, modified });
        }
    }
    Ok(out)
}

fn read_dir(dir: &Path) -> Result<impl Iterator<Item = io::Result<fs::DirEntry>>, Error> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries).into_iter().flatten()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None.into_iter().flatten()),
        Err(err) => Err(io_err(dir)(err)),
    }
}

/// When `path` was last modified; `None` if it is gone.
fn modified(path: &Path) -> Result<Option<SystemTime>, Error> {
    match fs::metadata(path).and_then(|m| m.modified()) {
        Ok(time) => Ok(Some(time)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_err(path)(err)),
    }
}

/// The bytes of every file under `objects_dir`.
pub(super) fn disk_usage(objects_dir: &Path) -> Result<u64, Error> {
    let mut total = 0;
    let mut dirs = vec![objects_dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in read_dir(&dir)? {
            let Ok(entry) = entry else { continue };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// The default grace period: see the module docs.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(600);
