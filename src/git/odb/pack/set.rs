//! Owns the set of packs in an `objects/pack` directory: discovery, lookup across packs, and
//! the rescan that finds packs written (or notices packs deleted) by other processes.
//!
//! Invariants:
//! - Only `pack-<40 hex>.pack` files whose `pack-<40 hex>.idx` also exists are considered:
//!   git renames the index into place last, so an index means a complete pack. Temporary
//!   files, `.keep`, `.promisor`, `.rev` and `.bitmap` are ignored.
//! - A multi-pack-index (single file or chain, [`super::midx::read`]), when present, is asked
//!   after the open packs miss: it names the one pack to open, or rules out every pack it
//!   covers, so a lookup never opens hundreds of closed packs one by one.
//! - Packs are opened lazily, on the first read that needs them, and tried most recently hit
//!   first, open ones before closed ones. A pack is named by a [`PackKey`] that outlives
//!   reordering, closing and rescans.
//! - Memory is bounded ([`PackSet::with_max_open_bytes()`]): only the pack being read keeps
//!   read windows; opening a pack drops the windows of, then closes, the least recently used
//!   others beyond the bound. A closed pack keeps its [`KeyFilter`] (4 bytes per object), so
//!   a lookup reopens it only if it may hold the id (no index is hashed on open: see
//!   `read.rs`).
//! - A miss in every known pack rescans the directory once before answering `None`: new packs
//!   are added (and tried first), packs whose files are gone are dropped. A pack that vanishes
//!   between being listed and being opened (a concurrent `git gc`) is dropped, not an error.
//! - Read-only: gitmq's pack writer and git own the directory's content.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::{
    collections::HashSet,
    fs, io,
    path::{Path, PathBuf},
};

use gix_hash::oid;

use super::{
    filter::KeyFilter,
    midx::read::MultiPackIndex,
    read::{self, DeltaBaseCache, Options, PackFile},
};

/// Returned by [`PackSet::open()`] and [`PackSet::read()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Listing the pack directory failed.
    #[error("listing packs in {path} failed")]
    List {
        /// The pack directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Opening or reading one pack failed.
    #[error(transparent)]
    Pack(#[from] read::Error),
}

/// A stable name for one pack of a [`PackSet`], handed out by [`PackSet::locate()`] and
/// taken by [`PackSet::pack()`]: unlike a position in the set, it survives reordering and
/// rescans, and names nothing once the set has dropped that pack. (Keys are a counter: one
/// set would have to list four billion packs before one repeats.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackKey(u32);

/// Where a walk last found an object: a pack and a place in its order, whose neighbours
/// [`PackSet::locate_near()`] tries before searching any index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Near {
    pack: PackKey,
    rank: u32,
    /// Try the entry before first (gitmq writes parents first), else the one after (git gc
    /// writes children first); the last step that hit decides.
    before_first: bool,
}

impl Near {
    /// The pack the object was found in.
    pub fn pack(&self) -> PackKey {
        self.pack
    }

    /// The object's place in that pack's order.
    pub fn rank(&self) -> u32 {
        self.rank
    }
}

/// A listed pack, opened on first use (and closed when memory runs short).
#[derive(Debug)]
struct Slot {
    key: PackKey,
    path: PathBuf,
    pack: Option<PackFile>,
    /// When the pack was last asked (the set's clock).
    last_used: u64,
    /// Built at the first open and kept: lookups skip a closed pack it rules out.
    filter: Option<KeyFilter>,
}

/// The default bound on the memory of a [`PackSet`]'s open packs (see
/// [`PackSet::with_max_open_bytes()`]). Measured on 10 million messages in 411 packs:
/// 64 MiB peaked at 243 MB RSS, 32 MiB at 207 MB but reopened packs often.
pub const DEFAULT_MAX_OPEN_BYTES: usize = 48 << 20;

/// The packs of one `objects/pack` directory.
///
/// ```
/// # fn main() -> Result<(), gitmq::git::odb::pack::set::Error> {
/// use gitmq::git::odb::pack::{read::DeltaBaseCache, set::PackSet};
///
/// let dir = tempfile::tempdir().expect("temp dir");
/// let mut packs = PackSet::open(dir.path().join("objects/pack"))?;
/// let mut cache = DeltaBaseCache::default(); // shared by every read, bounded in bytes
/// let mut body = Vec::new();
/// let id = gitmq::ObjectId::empty_tree(gix_hash::Kind::Sha1);
/// assert_eq!(packs.read(&id, &mut body, &mut cache)?, None, "no pack holds it");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PackSet {
    dir: PathBuf,
    options: Options,
    /// Most recently hit first.
    slots: Vec<Slot>,
    /// The key of the next pack listed.
    next_key: u32,
    /// Where [`pack()`](Self::pack) found its last pack (a hint: slots move).
    key_hint: usize,
    /// Counts pack accesses, to find the least recently used.
    clock: u64,
    /// Open packs are closed, least recently used first, beyond this many bytes.
    max_open_bytes: usize,
    /// The pack last read (the only one that keeps its read windows).
    reading: Option<PackKey>,
    /// The multi-pack-index (issue 11), reloaded on each rescan; empty if there is none.
    midx: MultiPackIndex,
}

/// Lifecycle
impl PackSet {
    /// The packs in `dir` (usually `objects/pack`), read with default [`Options`]. A missing
    /// directory is an empty set.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::open_with(dir, Options::default())
    }

    /// The packs in `dir`, each read with `options`.
    pub fn open_with(dir: impl Into<PathBuf>, options: Options) -> Result<Self, Error> {
        let dir = dir.into();
        let mut set = Self {
            slots: Vec::new(),
            dir,
            options,
            next_key: 0,
            key_hint: 0,
            clock: 0,
            max_open_bytes: DEFAULT_MAX_OPEN_BYTES,
            reading: None,
            midx: MultiPackIndex::default(),
        };
        set.midx = MultiPackIndex::open(&set.dir).unwrap_or_default();
        set.slots = list(&set.dir)?
            .into_iter()
            .map(|path| set.new_slot(path))
            .collect();
        Ok(set)
    }

    fn new_slot(&mut self, path: PathBuf) -> Slot {
        let key = PackKey(self.next_key);
        self.next_key = self.next_key.wrapping_add(1);
        Slot {
            key,
            path,
            pack: None,
            last_used: 0,
            filter: None,
        }
    }

    /// A set listing the same packs under the same [`PackKey`]s, none of them open: for a
    /// second thread reading what this set's lookups found. Its packs open on first use,
    /// each with its own windows; it has no multi-pack-index (a lookup by id searches each
    /// pack's index), and a rescan lists anew as any set does.
    #[must_use]
    pub fn sibling(&self) -> Self {
        Self {
            dir: self.dir.clone(),
            options: self.options,
            slots: self
                .slots
                .iter()
                .map(|slot| Slot {
                    key: slot.key,
                    path: slot.path.clone(),
                    pack: None,
                    last_used: 0,
                    filter: slot.filter.clone(),
                })
                .collect(),
            next_key: self.next_key,
            key_hint: 0,
            clock: 0,
            max_open_bytes: self.max_open_bytes,
            reading: None,
            midx: MultiPackIndex::default(),
        }
    }

    /// Bound the memory of the open packs (indexes, pack orders, read windows; see
    /// [`PackFile::footprint()`]) to about `bytes`: opening a pack first drops the read
    /// windows of the least recently used others, then closes them, until the rest fits. A closed pack keeps its [`PackKey`] and reopens on
    /// demand, without hashing its index again. The pack being opened always stays, so one
    /// pack larger than the bound still reads.
    #[must_use]
    pub fn with_max_open_bytes(mut self, bytes: usize) -> Self {
        self.max_open_bytes = bytes;
        self
    }
}

/// Access
impl PackSet {
    /// The pack directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many packs are open, and the memory they may hold (see
    /// [`PackFile::footprint()`]).
    pub fn open_footprint(&self) -> (usize, usize) {
        let open = self.slots.iter().filter_map(|slot| slot.pack.as_ref());
        open.fold((0, 0), |(count, bytes), pack| {
            (count + 1, bytes + pack.footprint())
        })
    }

    /// The paths of the packs currently known, most recently hit first.
    pub fn pack_paths(&self) -> impl Iterator<Item = &Path> {
        self.slots.iter().map(|slot| slot.path.as_path())
    }

    /// Read the object `id` into `out` (cleared first) and return its kind; `None` if no pack
    /// holds it, even after a rescan.
    pub fn read(
        &mut self,
        id: &oid,
        out: &mut Vec<u8>,
        cache: &mut DeltaBaseCache,
    ) -> Result<Option<gix_object::Kind>, Error> {
        let mut read = |pack: &mut PackFile| pack.read(id, out, cache);
        let first = self.first_hit(usize::MAX, id, &mut read);
        if let Ok(Some(kind)) = first {
            return Ok(Some(kind));
        }
        let added = self.rescan()?;
        match self.first_hit(added, id, &mut read)? {
            Some(kind) => Ok(Some(kind)),
            None => first,
        }
    }

    /// Like [`read()`](Self::read), but only from the packs already listed: never lists the
    /// directory. For a caller that looks in other stores (loose objects) before paying for a
    /// rescan, as git does: packs, then loose, then [`rescan()`](Self::rescan) and packs again.
    pub fn read_listed(
        &mut self,
        id: &oid,
        out: &mut Vec<u8>,
        cache: &mut DeltaBaseCache,
    ) -> Result<Option<gix_object::Kind>, Error> {
        self.first_hit(usize::MAX, id, &mut |pack: &mut PackFile| {
            pack.read(id, out, cache)
        })
    }

    /// Where `id` lies: the key of the pack holding it and the entry's offset, for
    /// [`pack()`](Self::pack) and [`PackFile::object_at()`]; `None` if no pack holds it,
    /// even after a rescan.
    pub fn locate(&mut self, id: &oid) -> Result<Option<(PackKey, u64)>, Error> {
        let first = self.locate_listed(id);
        if let Ok(Some(found)) = first {
            return Ok(Some(found));
        }
        let added = self.rescan()?;
        match self.first_hit(added, id, &mut |pack: &mut PackFile| {
            Ok(offset_of(pack, id))
        })? {
            Some(offset) => Ok(Some((self.first_key(), offset))),
            None => first,
        }
    }

    /// Like [`locate()`](Self::locate), but only in the packs already listed (see
    /// [`read_listed()`](Self::read_listed)).
    pub fn locate_listed(&mut self, id: &oid) -> Result<Option<(PackKey, u64)>, Error> {
        let offset = self.first_hit(usize::MAX, id, &mut |pack: &mut PackFile| {
            Ok(offset_of(pack, id))
        })?;
        Ok(offset.map(|offset| (self.first_key(), offset)))
    }

    /// Like [`locate()`](Self::locate), trying first the entries next to `near` in its
    /// pack's order (see [`PackFile::neighbor_with_id()`]); also where to look next.
    pub fn locate_near(
        &mut self,
        id: &oid,
        near: Option<Near>,
    ) -> Result<Option<(PackKey, u64, Near)>, Error> {
        let first = self.locate_near_listed(id, near);
        if let Ok(Some(found)) = first {
            return Ok(Some(found));
        }
        let added = self.rescan()?;
        match self.first_hit(added, id, &mut |pack: &mut PackFile| {
            Ok(pack.index().lookup(id))
        })? {
            Some(position) => Ok(Some(self.near_first(position, near))),
            None => first,
        }
    }

    /// Like [`locate_near()`](Self::locate_near), but only in the packs already listed.
    pub fn locate_near_listed(
        &mut self,
        id: &oid,
        near: Option<Near>,
    ) -> Result<Option<(PackKey, u64, Near)>, Error> {
        if let Some(near) = near {
            if let Some(pack) = self.pack(near.pack)? {
                if let Some((rank, offset)) =
                    pack.neighbor_with_id(near.rank, id, near.before_first)
                {
                    let next = Near {
                        rank,
                        before_first: rank < near.rank,
                        ..near
                    };
                    return Ok(Some((near.pack, offset, next)));
                }
            }
        }
        let position = self.first_hit(usize::MAX, id, &mut |pack: &mut PackFile| {
            Ok(pack.index().lookup(id))
        })?;
        Ok(position.map(|position| self.near_first(position, near)))
    }

    /// The location of `position` in the first pack (where `first_hit()` puts its hit).
    fn near_first(&mut self, position: u32, previous: Option<Near>) -> (PackKey, u64, Near) {
        let key = self.first_key();
        let pack = self
            .slots
            .first_mut()
            .and_then(|slot| slot.pack.as_mut())
            .expect("BUG: first_hit() puts its hit first, opened");
        let offset = pack.index().offset_at(position);
        let near = Near {
            pack: key,
            rank: pack.rank_of(position),
            before_first: previous.is_none_or(|near| near.before_first),
        };
        (key, offset, near)
    }

    /// The pack named `key`, opened; `None` once the set no longer holds it (its files
    /// vanished, or a rescan found them gone).
    pub fn pack(&mut self, key: PackKey) -> Result<Option<&mut PackFile>, Error> {
        let hinted = self
            .slots
            .get(self.key_hint)
            .is_some_and(|slot| slot.key == key);
        let found = if hinted {
            Some(self.key_hint)
        } else {
            self.slots.iter().position(|slot| slot.key == key)
        };
        let Some(slot) = found else {
            return Ok(None);
        };
        self.key_hint = slot;
        if !self.load(slot, true)? {
            return Ok(None);
        }
        self.touch(slot);
        Ok(self.slots.get_mut(slot).and_then(|slot| slot.pack.as_mut()))
    }

    /// The key of the most recently hit pack (where [`first_hit()`](Self::first_hit) puts
    /// its hit).
    fn first_key(&self) -> PackKey {
        self.slots
            .first()
            .map(|slot| slot.key)
            .expect("BUG: called after a hit, so a slot exists")
    }

    /// Whether some pack holds `id` (rescanning once on a miss). Packs that fail to open are
    /// taken not to hold it.
    pub fn contains(&mut self, id: &oid) -> bool {
        let mut holds = |pack: &mut PackFile| Ok(pack.contains(id).then_some(()));
        if matches!(self.first_hit(usize::MAX, id, &mut holds), Ok(Some(()))) {
            return true;
        }
        match self.rescan() {
            Ok(added) => matches!(self.first_hit(added, id, &mut holds), Ok(Some(()))),
            Err(_) => false,
        }
    }

    /// Every known pack, opened: for reading whole packs in pack order
    /// ([`PackFile::read_nth()`]). Packs that vanished are dropped. Ignores the bound on
    /// open memory.
    pub fn packs(&mut self) -> Result<Vec<&mut PackFile>, Error> {
        let mut slot = 0;
        while slot < self.slots.len() {
            if self.load(slot, false)? {
                slot += 1;
            }
        }
        Ok(self
            .slots
            .iter_mut()
            .filter_map(|slot| slot.pack.as_mut())
            .collect())
    }

    /// Ask the packs of the first `end` slots in turn, opening them as needed, until `ask`
    /// answers `Some`; that slot becomes the first. Slots of vanished packs are removed on
    /// the way. A pack that fails to open is skipped, and its error returned only if no
    /// other pack answers (the object might be in it).
    fn first_hit<T>(
        &mut self,
        mut end: usize,
        id: &oid,
        ask: &mut impl FnMut(&mut PackFile) -> Result<Option<T>, read::Error>,
    ) -> Result<Option<T>, Error> {
        let mut failure = None;
        // Open packs first (asking one costs a lookup), then the closed ones (opening one
        // costs reading its index, and may close others).
        let mut midx_absent = false;
        for open_only in [true, false] {
            if !open_only {
                // Between the two passes, the multi-pack-index (issue 11) names the one pack
                // to open, or rules out every pack it covers.
                match self.midx_route(end, id, ask)? {
                    MidxRoute::Hit(answer) => return Ok(Some(answer)),
                    MidxRoute::Absent => midx_absent = true,
                    MidxRoute::Unknown => {}
                }
            }
            let mut slot = 0;
            while slot < end.min(self.slots.len()) {
                let Some(entry) = self.slots.get(slot) else {
                    break;
                };
                let ruled_out = entry.filter.as_ref().is_some_and(|f| !f.may_hold(id))
                    || (midx_absent && self.midx.covers(pack_stem(&entry.path)));
                if entry.pack.is_some() != open_only || (!open_only && ruled_out) {
                    slot += 1;
                    continue;
                }
                match self.load(slot, true) {
                    Ok(true) => {}
                    Ok(false) => {
                        end = end.saturating_sub(1);
                        continue;
                    }
                    Err(err) => {
                        failure.get_or_insert(err);
                        slot += 1;
                        continue;
                    }
                }
                let pack = self
                    .slots
                    .get_mut(slot)
                    .and_then(|slot| slot.pack.as_mut())
                    .expect("BUG: load() opened the slot");
                if let Some(answer) = ask(pack)? {
                    self.touch(slot);
                    if let Some(hit) = self.slots.get_mut(..=slot) {
                        hit.rotate_right(1);
                    }
                    return Ok(Some(answer));
                }
                slot += 1;
            }
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(None),
        }
    }

    /// What the multi-pack-index says of `id` among the first `end` slots: the answer of the
    /// one pack it names, or that no pack it covers holds `id`. `Unknown` (search as without
    /// it) when there is none, it fails, or it names a pack this set does not list.
    fn midx_route<T>(
        &mut self,
        end: usize,
        id: &oid,
        ask: &mut impl FnMut(&mut PackFile) -> Result<Option<T>, read::Error>,
    ) -> Result<MidxRoute<T>, Error> {
        let stem = match self.midx.lookup(id) {
            Ok(Some((stem, _offset))) => stem,
            Ok(None) if !self.midx.is_empty() => return Ok(MidxRoute::Absent),
            Ok(None) | Err(_) => return Ok(MidxRoute::Unknown),
        };
        let listed = self
            .slots
            .get(..end.min(self.slots.len()))
            .unwrap_or_default();
        let Some(slot) = listed.iter().position(|s| pack_stem(&s.path) == stem) else {
            return Ok(MidxRoute::Unknown);
        };
        if !self.load(slot, true)? {
            return Ok(MidxRoute::Unknown);
        }
        let Some(pack) = self.slots.get_mut(slot).and_then(|s| s.pack.as_mut()) else {
            return Ok(MidxRoute::Unknown);
        };
        let Some(answer) = ask(pack)? else {
            return Ok(MidxRoute::Unknown);
        };
        self.touch(slot);
        if let Some(hit) = self.slots.get_mut(..=slot) {
            hit.rotate_right(1);
        }
        Ok(MidxRoute::Hit(answer))
    }

    /// Open the pack of `slot` if needed, then (with `trim`) close others beyond the memory
    /// bound. `false` if its files are gone: the slot is removed.
    fn load(&mut self, slot: usize, trim: bool) -> Result<bool, Error> {
        let Some(entry) = self.slots.get_mut(slot) else {
            return Ok(false);
        };
        if entry.pack.is_some() {
            return Ok(true);
        }
        if trim {
            // Make room first: the index is read whole, and its order built, on opening.
            let index_len = fs::metadata(entry.path.with_extension("idx")).map_or(0, |m| m.len());
            self.close_unused(slot, read::footprint_of(index_len, self.options));
        }
        let Some(entry) = self.slots.get_mut(slot) else {
            return Ok(false);
        };
        let opened = PackFile::open_with(&entry.path, self.options);
        match opened {
            Ok(pack) => {
                if entry.filter.is_none() {
                    entry.filter = Some(KeyFilter::of(pack.index()));
                }
                entry.pack = Some(pack);
                Ok(true)
            }
            Err(err) if err.is_not_found() => {
                self.slots.remove(slot);
                Ok(false)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Mark `slot` used now. When reads move to another pack, the previous one's read
    /// windows are dropped and their buffers handed to this one: a scan reads one pack after
    /// another, so at most one pack holds windows while the others hold their indexes
    /// (bounded at the next open).
    fn touch(&mut self, slot: usize) {
        self.clock += 1;
        let Some(entry) = self.slots.get_mut(slot) else {
            return;
        };
        entry.last_used = self.clock;
        let key = entry.key;
        if self.reading == Some(key) {
            return;
        }
        if let Some(previous) = self.reading.replace(key) {
            if let Some(from) = self.slots.iter().position(|slot| slot.key == previous) {
                hand_windows_over(&mut self.slots, from, slot);
            }
        }
    }

    /// While the memory of the open packs and `extra` bytes is over the bound, drop the read
    /// windows of the least recently used packs but `keep`, then close them.
    fn close_unused(&mut self, keep: usize, extra: usize) {
        let footprint = |slot: &Slot| slot.pack.as_ref().map_or(0, PackFile::footprint);
        let mut total = self
            .slots
            .iter()
            .map(footprint)
            .sum::<usize>()
            .saturating_add(extra);
        if total <= self.max_open_bytes {
            return;
        }
        let mut open: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(at, slot)| *at != keep && slot.pack.is_some())
            .map(|(at, slot)| (slot.last_used, at))
            .collect();
        open.sort_unstable();
        for close in [false, true] {
            for &(_, at) in &open {
                if total <= self.max_open_bytes {
                    return;
                }
                let Some(slot) = self.slots.get_mut(at) else {
                    continue;
                };
                total -= footprint(slot);
                if close {
                    slot.pack = None;
                } else if let Some(pack) = slot.pack.as_mut() {
                    pack.release_windows();
                }
                total += footprint(slot);
            }
        }
    }

    /// List the directory again: drop packs whose files are gone, put new ones first (they
    /// are the likeliest to hold what was just missed). Returns how many were added.
    pub fn rescan(&mut self) -> Result<usize, Error> {
        let listed = list(&self.dir)?;
        if self.midx.reload(&self.dir).is_err() {
            self.midx = MultiPackIndex::default();
        }
        let listed_set: HashSet<&PathBuf> = listed.iter().collect();
        self.slots.retain(|slot| listed_set.contains(&slot.path));
        let known: HashSet<PathBuf> = self.slots.iter().map(|slot| slot.path.clone()).collect();
        let new: Vec<Slot> = listed
            .into_iter()
            .filter(|path| !known.contains(path))
            .map(|path| self.new_slot(path))
            .collect();
        let added = new.len();
        self.slots.splice(0..0, new);
        Ok(added)
    }
}

/// What [`PackSet::midx_route()`] found.
enum MidxRoute<T> {
    Hit(T),
    Absent,
    Unknown,
}

/// `pack-<hex>` of `objects/pack/pack-<hex>.pack`.
/// Reads moved from the pack of slot `from` to that of slot `to`: the windows' buffers move
/// with them (no allocation, no zeroing), or are dropped if `to` is not open.
fn hand_windows_over(slots: &mut [Slot], from: usize, to: usize) {
    let pair = if from < to {
        slots
            .split_at_mut_checked(to)
            .map(|(low, high)| (low.get_mut(from), high.first_mut()))
    } else {
        slots
            .split_at_mut_checked(from)
            .map(|(low, high)| (high.first_mut(), low.get_mut(to)))
    };
    let Some((Some(from), to)) = pair else {
        return;
    };
    if let Some(from) = from.pack.as_mut() {
        match to.and_then(|to| to.pack.as_mut()) {
            Some(to) => from.hand_windows_to(to),
            None => from.release_windows(),
        }
    }
}

fn pack_stem(path: &Path) -> &str {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
}

/// The offset of `id`'s entry in `pack`, if it holds it.
fn offset_of(pack: &PackFile, id: &oid) -> Option<u64> {
    let index = pack.index();
    index.lookup(id).map(|position| index.offset_at(position))
}

/// The `pack-<hex>.pack` paths in `dir` whose `.idx` exists, newest first (by modification
/// time, then name, so the order is stable).
fn list(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let list_err = |source| Error::List {
        path: dir.to_owned(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(list_err(err)),
    };
    let mut names = HashSet::new();
    for entry in entries {
        let entry = entry.map_err(list_err)?;
        if let Ok(name) = entry.file_name().into_string() {
            names.insert(name);
        }
    }
    let mut packs: Vec<(std::time::SystemTime, PathBuf)> = names
        .iter()
        .filter_map(|name| {
            let stem = name.strip_suffix(".idx")?;
            let hex = stem.strip_prefix("pack-")?;
            let pack = format!("{stem}.pack");
            (is_hex_id(hex) && names.contains(&pack)).then(|| dir.join(pack))
        })
        .map(|path| {
            let mtime = fs::metadata(&path)
                .and_then(|meta| meta.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (mtime, path)
        })
        .collect();
    packs.sort_unstable_by(|a, b| b.cmp(a));
    Ok(packs.into_iter().map(|(_, path)| path).collect())
}

fn is_hex_id(hex: &str) -> bool {
    hex.len() == 2 * crate::git::hash::ID_LEN
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_well_named_packs_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let hex = "0123456789abcdef0123456789abcdef01234567";
        let other = "1123456789abcdef0123456789abcdef01234567";
        for name in [
            format!("pack-{hex}.pack"),
            format!("pack-{hex}.idx"),
            format!("pack-{hex}.keep"),
            format!("pack-{other}.pack"), // no idx yet
            "tmp_pack_abc".into(),
            "tmp_idx_abc".into(),
            format!("pack-{}.idx", hex.to_uppercase()),
            format!("pack-{}.pack", hex.to_uppercase()),
            "pack-123.idx".into(),
            "pack-123.pack".into(),
            "multi-pack-index".into(),
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        let listed = list(dir.path()).unwrap();
        assert_eq!(listed, [dir.path().join(format!("pack-{hex}.pack"))]);
        assert!(list(&dir.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn an_empty_set_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = PackSet::open(dir.path().join("pack")).unwrap();
        let mut out = Vec::new();
        let id = gix_hash::ObjectId::null(crate::git::hash::OBJECT_HASH);
        assert_eq!(
            set.read(&id, &mut out, &mut DeltaBaseCache::default())
                .unwrap(),
            None
        );
        assert!(!set.contains(&id));
    }
}
