//! Owns keeping a repository's MIDX chain (`objects/pack/multi-pack-index.d/`) covering its
//! packs, cheaply and incrementally: the producer's background step, which replaced
//! copy-and-rehash consolidation (nothing in a pack is read, copied or hashed again).
//!
//! Data flow of [`update()`]: take `gitmq-consolidate.lock` (skip if a prune or consolidate
//! runs: they change the packs and call [`update_locked()`] themselves) -> take
//! `multi-pack-index.d/multi-pack-index-chain.lock` (git's lock for an incremental write,
//! `midx-write.c`) -> read the chain; keep each layer whose packs all still exist -> packs with
//! an index that no kept layer covers: once there are [`Policy::layer_packs`] of them (or
//! when forced), merge their `.idx` files into a new layer -> while the newest
//! [`Policy::merge_layers`] layers are of similar size (largest <= half that many times the
//! smallest), merge them into one; past `2 x merge_layers` layers (sizes too irregular to
//! match), merge the newest `merge_layers` anyway -> each new layer: temporary file in the chain directory,
//! synced, renamed to `multi-pack-index-<checksum>.midx`, directory synced -> write the chain
//! (oldest first) into the lock, sync, rename, sync -> remove layers no longer in the chain,
//! and `objects/pack/multi-pack-index` (git reads that one first; `git multi-pack-index
//! write --incremental` removes it too).
//!
//! Cost: each object's 28 bytes of MIDX are written about 1 + log_T(objects / (B x batch))
//! times (T = `merge_layers`, B = `layer_packs`): 2.5 times on average over 10M messages in
//! batches of 10,000 with the defaults, at most 14 layers (never more than 2 x T, whatever
//! the batch sizes), plus at most B - 1 packs no layer covers yet.
//!
//! Invariants: a layer is complete, synced and named before the chain names it; the chain
//! changes only by rename under its lock; a layer file is removed only after the chain that
//! dropped it was committed (a reader holding it open keeps reading it).

use std::{
    collections::HashSet,
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use gix_hash::ObjectId;

use super::{
    chain_path, io_err, layer_path,
    write::{write_midx, Source, MAX_SOURCES},
    Error, CHAIN_DIR, MIDX_FILE,
};
use crate::git::fs::{LockError, LockFile, SharedFs, TempFile};

/// When layers are written and merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Write a layer once this many packs are not covered (at least 1).
    pub layer_packs: usize,
    /// Merge the newest layers once this many of them are of similar size (at least 2).
    pub merge_layers: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            layer_packs: 8,
            merge_layers: 8,
        }
    }
}

/// What an update of the chain did (the producer's background step, `chain::update`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Layers written (new and merged).
    pub layers_written: usize,
    /// Objects written into them (an object merged twice counts twice).
    pub objects_written: u64,
    /// Packs that a layer covers now and none did before.
    pub packs_added: usize,
    /// Layers dropped because a pack they name is gone.
    pub layers_dropped: usize,
    /// Layers in the chain afterwards.
    pub layers: usize,
    /// True when another writer held a lock: nothing was done.
    pub skipped: bool,
}

/// One layer of the chain as the writer sees it.
#[derive(Debug, Clone)]
struct Layer {
    checksum: ObjectId,
    objects: u32,
    packs: Vec<String>,
}

/// Bring the MIDX chain of the repository at `git_dir` up to date per `policy` (see the module
/// header); `sync` makes every new file durable before the chain names it. Skips (reporting
/// [`Report::skipped`]) when a prune, a consolidation or another chain writer holds its lock.
pub fn update(fs: &SharedFs, git_dir: &Path, policy: Policy, sync: bool) -> Result<Report, Error> {
    let lock = crate::git::odb::pack::consolidate::LOCK_FILE;
    let _packs = match LockFile::hold(fs, &git_dir.join(lock), Duration::ZERO) {
        Ok(held) => held,
        Err(LockError::Locked { .. }) => {
            return Ok(Report {
                skipped: true,
                ..Report::default()
            })
        }
        Err(err) => return Err(err.into()),
    };
    update_locked(fs, git_dir, policy, sync, false)
}

/// Like [`update()`], for a caller that holds `gitmq-consolidate.lock` (a prune or a
/// consolidation that changed the packs): with `force`, every pack not covered gets a layer
/// now, so the chain covers every pack when this returns.
pub fn update_locked(
    fs: &SharedFs,
    git_dir: &Path,
    policy: Policy,
    sync: bool,
    force: bool,
) -> Result<Report, Error> {
    let pack_dir = git_dir.join("objects").join("pack");
    let dir = pack_dir.join(CHAIN_DIR);
    // Through the Fs seam like every write; the directory's name made durable before any
    // layer in it is.
    let created = crate::git::fs::create_dir_all(&**fs, &dir).map_err(io_err(&dir))?;
    if sync {
        crate::git::fs::sync_parents(&**fs, &created).map_err(io_err(&dir))?;
    }
    let chain_file = chain_path(&pack_dir);
    let lock = match LockFile::acquire(fs, &chain_file, Duration::from_millis(100)) {
        Ok(lock) => lock,
        Err(LockError::Locked { .. }) => {
            return Ok(Report {
                skipped: true,
                ..Report::default()
            })
        }
        Err(err) => return Err(err.into()),
    };
    crate::git::fs::atomic::remove_stale_temp_files(&**fs, &dir);
    let listed = list_indexes(&pack_dir)?;
    let (mut chain, dropped) = read_chain(&pack_dir, &listed)?;
    let single = pack_dir.join(MIDX_FILE);
    let mut report = Report {
        layers_dropped: dropped,
        ..Report::default()
    };
    let covered: HashSet<&str> = chain
        .iter()
        .flat_map(|l| l.packs.iter().map(String::as_str))
        .collect();
    let mut uncovered: Vec<&String> = listed
        .iter()
        .filter(|name| !covered.contains(name.as_str()))
        .collect();
    uncovered.sort_unstable();
    let due = uncovered.len() >= policy.layer_packs.max(1)
        || (force && !uncovered.is_empty())
        || dropped > 0
        || single.exists();
    if !due {
        report.layers = chain.len();
        drop(lock);
        return Ok(report);
    }
    for group in uncovered.chunks(MAX_SOURCES / 2) {
        let sources = group
            .iter()
            .map(|name| Source::idx(&pack_dir.join(name)))
            .collect::<Result<Vec<_>, _>>()?;
        let layer = write_layer(fs, &pack_dir, &sources, sync)?;
        report.layers_written += 1;
        report.objects_written += u64::from(layer.objects);
        report.packs_added += group.len();
        chain.push(layer);
    }
    let merge = policy.merge_layers.max(2);
    let ratio = (merge / 2).max(1) as u64;
    while chain.len() >= merge {
        let top = &chain[chain.len() - merge..];
        let largest = top.iter().map(|l| u64::from(l.objects)).max().unwrap_or(0);
        let smallest = top.iter().map(|l| u64::from(l.objects)).min().unwrap_or(0);
        if largest > ratio * smallest.max(1) {
            break;
        }
        merge_newest(fs, &pack_dir, &mut chain, merge, sync, &mut report)?;
    }
    // Sizes too irregular for the rule above (2, 5, 2, 5, ... objects a layer: no run of
    // similar ones) would never merge; past `2 x merge` layers the newest `merge` merge
    // whatever their sizes, so the chain, and a lookup's work, stay bounded.
    while chain.len() > 2 * merge {
        merge_newest(fs, &pack_dir, &mut chain, merge, sync, &mut report)?;
    }
    if sync {
        fs.sync_dir(&dir).map_err(io_err(&dir))?;
    }
    let mut lock = lock;
    let mut content = String::with_capacity(chain.len() * 41);
    for layer in &chain {
        content.push_str(&layer.checksum.to_string());
        content.push('\n');
    }
    lock.write_all(content.as_bytes())
        .map_err(io_err(&chain_file))?;
    lock.commit(sync).map_err(io_err(&chain_file))?;
    // The old files go only once the new chain is in place.
    let kept: HashSet<ObjectId> = chain.iter().map(|l| l.checksum).collect();
    remove_unlisted_layers(fs, &dir, &kept);
    if single.exists() {
        let _ = fs.remove_file(&single);
    }
    report.layers = chain.len();
    Ok(report)
}

/// Merge the newest `count` layers of `chain` into one layer, which takes their place.
fn merge_newest(
    fs: &SharedFs,
    pack_dir: &Path,
    chain: &mut Vec<Layer>,
    count: usize,
    sync: bool,
    report: &mut Report,
) -> Result<(), Error> {
    let top = &chain[chain.len() - count..];
    let sources = top
        .iter()
        .rev() // newest first: a duplicate id is taken from the newest layer
        .map(|l| Source::midx(&layer_path(pack_dir, &l.checksum)))
        .collect::<Result<Vec<_>, _>>()?;
    let layer = write_layer(fs, pack_dir, &sources, sync)?;
    report.layers_written += 1;
    report.objects_written += u64::from(layer.objects);
    chain.truncate(chain.len() - count);
    chain.push(layer);
    Ok(())
}

/// Write the merge of `sources` as a layer file (synced and named; the directory is synced
/// by the caller before the chain names it).
fn write_layer(
    fs: &SharedFs,
    pack_dir: &Path,
    sources: &[Source],
    sync: bool,
) -> Result<Layer, Error> {
    let dir = pack_dir.join(CHAIN_DIR);
    let mut file = TempFile::create_in(fs, &dir, "midx").map_err(io_err(&dir))?;
    let tmp = file.path().to_owned();
    let written = write_midx(sources, &mut file, &tmp)?;
    if sync {
        file.sync().map_err(io_err(&tmp))?;
    }
    let path = layer_path(pack_dir, &written.checksum);
    file.persist(&path).map_err(io_err(&path))?;
    Ok(Layer {
        checksum: written.checksum,
        objects: written.objects,
        packs: written.packs,
    })
}

/// The `pack-<hex>.idx` names in `pack_dir` whose `.pack` exists too.
fn list_indexes(pack_dir: &Path) -> Result<Vec<String>, Error> {
    let mut names = HashSet::new();
    let entries = match fs::read_dir(pack_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_err(pack_dir)(err)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(pack_dir))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.insert(name);
        }
    }
    Ok(names
        .iter()
        .filter(|name| {
            name.strip_prefix("pack-")
                .and_then(|n| n.strip_suffix(".idx"))
                .is_some_and(|hex| {
                    hex.len() == 40
                        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                        && names.contains(&format!("pack-{hex}.pack"))
                })
        })
        .cloned()
        .collect())
}

/// The chain's layers whose packs all exist in `listed`, oldest first, and how many were
/// dropped. A layer that is missing or unreadable ends the chain (as in git's reader); the
/// layers above it are dropped too, and their packs indexed again.
fn read_chain(pack_dir: &Path, listed: &[String]) -> Result<(Vec<Layer>, usize), Error> {
    let chain_file = chain_path(pack_dir);
    let content = match fs::read(&chain_file) {
        Ok(content) if content.len() <= 1 << 20 => content,
        Ok(_) => return Ok((Vec::new(), 1)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(err) => return Err(io_err(&chain_file)(err)),
    };
    let listed: HashSet<&str> = listed.iter().map(String::as_str).collect();
    let lines: Vec<&[u8]> = content
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut layers = Vec::with_capacity(lines.len());
    let mut dropped = 0;
    let mut broken = false;
    for line in &lines {
        let layer = (!broken)
            .then(|| ObjectId::from_hex(line).ok())
            .flatten()
            .and_then(|checksum| {
                let path = layer_path(pack_dir, &checksum);
                let source = Source::midx(&path).ok()?;
                Some(Layer {
                    checksum,
                    objects: source.len(),
                    packs: source.packs().to_vec(),
                })
            });
        match layer {
            Some(layer) if layer.packs.iter().all(|p| listed.contains(p.as_str())) => {
                layers.push(layer);
            }
            Some(_) => dropped += 1,
            None => {
                broken = true;
                dropped += 1;
            }
        }
    }
    Ok((layers, dropped))
}

/// Remove `multi-pack-index-*.midx` files in `dir` that the chain does not name (left by a
/// writer that died between naming a layer and committing the chain).
fn remove_unlisted_layers(fs: &SharedFs, dir: &Path, kept: &HashSet<ObjectId>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(hex) = name
            .to_str()
            .and_then(|n| n.strip_prefix("multi-pack-index-"))
            .and_then(|n| n.strip_suffix(".midx"))
        else {
            continue;
        };
        if ObjectId::from_hex(hex.as_bytes()).is_ok_and(|c| !kept.contains(&c)) {
            let path: PathBuf = entry.path();
            let _ = fs.remove_file(&path);
        }
    }
}
