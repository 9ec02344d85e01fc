//! Owns looking ids up in a repository's MIDX (the single file, else the chain's layers), in
//! bounded memory: per layer its fan-out, its pack names and 4 bytes per object (bytes 1 to 4
//! of each id, as [`KeyFilter`](super::super::filter::KeyFilter) keeps), never the file.
//!
//! A lookup: fan-out bucket -> binary search of the keys in memory -> for the (usually one)
//! matching key, one positioned read of its 20-byte id to confirm and one of its OOFF row
//! (and LOFF, for a pack past 2 GiB). An id no layer holds costs no read at all (but one in
//! 2^32 per object).
//!
//! Invariants: layers are immutable (named by their checksum), so a reload keeps the layers
//! it already has and reads only new ones; a layer file removed after it was opened stays
//! readable (the open file). What a MIDX says is a hint, checked by the caller against the
//! pack's own index: a stale or corrupt MIDX can cost a lookup, never return a wrong object.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::{
    collections::HashSet,
    fs::{self, File},
    io::{self, Read},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use gix_hash::{oid, ObjectId};

use super::{chain_path, io_err, layer_path, read_head, Error, MIDX_FILE, OFFSET_ENTRY_LEN};
use crate::git::odb::pack::format::HASH_LEN;

/// One MIDX file, open for lookups.
#[derive(Debug)]
pub struct Layer {
    path: PathBuf,
    file: File,
    packs: Vec<String>,
    fan: [u32; 256],
    keys: Vec<u32>,
    ids_at: u64,
    offsets_at: u64,
    large: Option<(u64, u64)>,
    checksum: Option<ObjectId>,
}

impl Layer {
    /// Open the MIDX file `path`: its head, and one pass over its ids to keep their keys.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path).map_err(io_err(path))?;
        let head = read_head(&file, path)?;
        let count = usize::try_from(head.count).map_err(|_| Error::TooLarge { what: "ids" })?;
        let mut keys = Vec::with_capacity(count);
        let mut reader = io::BufReader::with_capacity(1 << 16, &file);
        io::Seek::seek(&mut reader, io::SeekFrom::Start(head.ids_at)).map_err(io_err(path))?;
        let mut id = [0u8; HASH_LEN];
        for _ in 0..count {
            reader.read_exact(&mut id).map_err(io_err(path))?;
            keys.push(key_of(&id));
        }
        Ok(Self {
            path: path.to_owned(),
            packs: head.packs,
            fan: head.fan,
            keys,
            ids_at: head.ids_at,
            offsets_at: head.offsets_at,
            large: head.large,
            checksum: None,
            file,
        })
    }

    /// The pack index names this layer covers, by pack-int-id.
    pub fn packs(&self) -> &[String] {
        &self.packs
    }

    /// Objects in this layer.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds no object.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Memory held: 4 bytes per object, the fan-out and the names.
    pub fn footprint(&self) -> usize {
        self.keys.len() * 4 + 1024 + self.packs.iter().map(|p| p.len() + 24).sum::<usize>()
    }

    /// Where `id` is: the pack index name and the entry's offset; `None` if this layer does
    /// not hold it.
    pub fn lookup(&self, id: &oid) -> Result<Option<(&str, u64)>, Error> {
        let bytes = id.as_bytes();
        let Some(&first) = bytes.first() else {
            return Ok(None);
        };
        let key = key_of(bytes);
        let low = match usize::from(first).checked_sub(1) {
            Some(before) => self.fan.get(before).copied().unwrap_or(0),
            None => 0,
        };
        let high = self.fan.get(usize::from(first)).copied().unwrap_or(0);
        let (low, high) = (low as usize, (high as usize).min(self.keys.len()));
        let Some(bucket) = self.keys.get(low..high) else {
            return Ok(None);
        };
        let start = bucket.partition_point(|&k| k < key);
        for (i, _) in bucket
            .iter()
            .enumerate()
            .skip(start)
            .take_while(|(_, &k)| k == key)
        {
            let position = (low + i) as u64;
            let mut found = [0u8; HASH_LEN];
            self.file
                .read_exact_at(&mut found, self.ids_at + position * HASH_LEN as u64)
                .map_err(io_err(&self.path))?;
            if found != bytes {
                continue;
            }
            let mut row = [0u8; OFFSET_ENTRY_LEN];
            self.file
                .read_exact_at(
                    &mut row,
                    self.offsets_at + position * OFFSET_ENTRY_LEN as u64,
                )
                .map_err(io_err(&self.path))?;
            let [p0, p1, p2, p3, o0, o1, o2, o3] = row;
            let pack = u32::from_be_bytes([p0, p1, p2, p3]) as usize;
            let raw = u32::from_be_bytes([o0, o1, o2, o3]);
            let offset = self.offset(raw)?;
            let name = self
                .packs
                .get(pack)
                .ok_or_else(|| Error::corrupt(&self.path, "pack-int-id out of range"))?;
            return Ok(Some((name.as_str(), offset)));
        }
        Ok(None)
    }

    fn offset(&self, raw: u32) -> Result<u64, Error> {
        match self.large {
            Some((at, count)) if raw & super::LARGE_OFFSET_NEEDED != 0 => {
                let slot = u64::from(raw & !super::LARGE_OFFSET_NEEDED);
                if slot >= count {
                    return Err(Error::corrupt(&self.path, "large offset out of range"));
                }
                let mut bytes = [0u8; 8];
                self.file
                    .read_exact_at(&mut bytes, at + slot * 8)
                    .map_err(io_err(&self.path))?;
                Ok(u64::from_be_bytes(bytes))
            }
            _ => Ok(u64::from(raw)),
        }
    }
}

/// Bytes 1 to 4 of an id (byte 0 is the fan-out bucket).
fn key_of(id: &[u8]) -> u32 {
    match id.get(1..5) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// A repository's MIDX: the single file, or the layers of the chain (newest first).
#[derive(Debug, Default)]
pub struct MultiPackIndex {
    /// Newest first.
    layers: Vec<Layer>,
    /// The pack names covered (without `.idx`/`.pack`).
    covered: HashSet<String>,
    /// What was read to build it: the chain file's content (or the single file's size and
    /// modification time), to reload only on a change.
    stamp: Vec<u8>,
}

impl MultiPackIndex {
    /// The MIDX of `pack_dir` (`objects/pack`): `objects/pack/multi-pack-index` if present,
    /// else the chain; empty when there is neither. A layer that fails to open ends the chain
    /// there, as git does (the layers below it still serve).
    pub fn open(pack_dir: &Path) -> Result<Self, Error> {
        let mut midx = Self::default();
        midx.reload(pack_dir)?;
        Ok(midx)
    }

    /// Read the MIDX of `pack_dir` again if it changed; the layers already open are kept.
    /// Returns whether anything changed.
    pub fn reload(&mut self, pack_dir: &Path) -> Result<bool, Error> {
        let single = pack_dir.join(MIDX_FILE);
        let (stamp, paths) = match fs::metadata(&single) {
            Ok(meta) => {
                let mut stamp = b"single ".to_vec();
                stamp.extend_from_slice(
                    format!("{} {:?}", meta.len(), meta.modified().ok()).as_bytes(),
                );
                (stamp, vec![(None, single)])
            }
            Err(_) => {
                let chain = chain_path(pack_dir);
                let content = match fs::read(&chain) {
                    Ok(content) if content.len() <= 1 << 20 => content,
                    Ok(_) => return Err(Error::corrupt(&chain, "chain file too large")),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
                    Err(err) => return Err(io_err(&chain)(err)),
                };
                let paths = content
                    .split(|&b| b == b'\n')
                    .filter_map(|line| std::str::from_utf8(line).ok())
                    .map_while(|hex| ObjectId::from_hex(hex.trim().as_bytes()).ok())
                    .map(|checksum| (Some(checksum), layer_path(pack_dir, &checksum)))
                    .collect::<Vec<_>>();
                (content, paths)
            }
        };
        if stamp == self.stamp {
            return Ok(false);
        }
        let mut old: Vec<Layer> = std::mem::take(&mut self.layers);
        let mut layers = Vec::with_capacity(paths.len());
        // Oldest first in the chain; a missing or bad layer ends it.
        for (checksum, path) in paths {
            let reused = checksum.and_then(|c| {
                let at = old.iter().position(|l| l.checksum == Some(c))?;
                Some(old.swap_remove(at))
            });
            let layer = match reused {
                Some(layer) => layer,
                None => match Layer::open(&path) {
                    Ok(mut layer) => {
                        layer.checksum = checksum;
                        layer
                    }
                    Err(_) => break,
                },
            };
            layers.push(layer);
        }
        layers.reverse();
        self.covered = layers
            .iter()
            .flat_map(|l| l.packs.iter())
            .map(|name| name.strip_suffix(".idx").unwrap_or(name).to_owned())
            .collect();
        self.layers = layers;
        self.stamp = stamp;
        Ok(true)
    }

    /// Whether the MIDX names no pack.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Layers (1 for a single MIDX file).
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Whether the pack `stem` (`pack-<hex>`, no extension) is covered: if it holds an id,
    /// [`lookup()`](Self::lookup) finds it.
    pub fn covers(&self, stem: &str) -> bool {
        self.covered.contains(stem)
    }

    /// Memory held by all layers.
    pub fn footprint(&self) -> usize {
        self.layers.iter().map(Layer::footprint).sum()
    }

    /// Where `id` is: the pack's name (`pack-<hex>`, no extension) and the entry's offset,
    /// from the newest layer that holds it.
    pub fn lookup(&self, id: &oid) -> Result<Option<(&str, u64)>, Error> {
        for layer in &self.layers {
            if let Some((name, offset)) = layer.lookup(id)? {
                return Ok(Some((name.strip_suffix(".idx").unwrap_or(name), offset)));
            }
        }
        Ok(None)
    }
}
