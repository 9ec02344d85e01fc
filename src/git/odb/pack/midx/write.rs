//! Owns writing one MIDX file by merging sorted sources: pack indexes (`.idx` v2) and MIDX
//! files (layers being merged), in bounded memory and without re-reading any pack.
//!
//! Passes (every source is read front to back, through a small buffer, never whole):
//! 1. merge the sources' sorted ids with a loser tree (`Tournament`); record on a *tape*
//!    which source each id came from (one byte per id, its top bit set for an id already
//!    taken from an earlier source: the empty tree is in every gitmq pack), and count the
//!    fan-out;
//! 2. replay the tape over the sources' ids: OIDL;
//! 3. replay it over their offsets: OOFF (pack-int-ids renumbered into the merged, sorted
//!    pack list), then LOFF.
//!
//! Costs: one byte of tape per object merged and ~1 MiB of read buffers, one replay of a
//! tree path per id (log2 of the sources matches, ids compared by their first 8 bytes as an
//! integer first); the output is hashed as it streams (the trailer).
//!
//! Kept over gix-pack's `multi_index::write_from_index_paths` (issue 11, item 5): `cargo bench
//! --bench midx`, same `.idx` files, same output size, load average ~8 on 2 cores:
//!
//! | packs x 10,000 messages | gitmq | gix-pack |
//! |---|---:|---:|
//! | 8 (the producer's layer) | 24.8 ms | 40.3 ms |
//! | 64 (a rewrite) | 193.5 ms | 432.2 ms |
//!
//! (Before the 8-byte integer prefix in the heap: 35.9 ms and 431.8 ms.)
//!
//! The loser tree replaced a `BinaryHeap` of (prefix, id, source): same bench, gitmq rows only,
//! load average ~1.7, criterion medians: 8 packs 10.50 -> 8.00 ms (131 -> 100 ns per object),
//! 64 packs 109.3 -> 86.5 ms. What is left per object is mostly the tree's dependent
//! comparisons (~30%) and the trailer's SHA-1 (~22%).

use std::{
    fs::File,
    io::{self, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use gix_hash::ObjectId;

use super::{
    io_err, read_head, Error, CHUNK_ALIGNMENT, CHUNK_LARGE_OFFSETS, CHUNK_OBJECT_OFFSETS,
    CHUNK_OID_FANOUT, CHUNK_OID_LOOKUP, CHUNK_PACK_NAMES, HASH_VERSION_SHA1, HEADER_LEN,
    LARGE_OFFSET_NEEDED, MIDX_SIGNATURE, MIDX_VERSION, OFFSET_ENTRY_LEN, TOC_ENTRY_LEN,
};
use crate::git::{
    hash::Hasher,
    odb::pack::format::{FAN_LEN, HASH_LEN, IDX_HEADER_LEN, IDX_V2_MAGIC, IDX_VERSION},
};

/// Most sources one merge takes (the tape stores a source in 7 bits).
pub const MAX_SOURCES: usize = 127;
const DUPLICATE: u8 = 0x80;

/// One sorted input of a merge.
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    file: File,
    count: u32,
    ids_at: u64,
    offsets_at: u64,
    /// Where the 64-bit offsets start and how many there are (idx: the large table; MIDX:
    /// LOFF).
    large: Option<(u64, u64)>,
    /// Pack index names, by the source's pack-int-id (one for an idx).
    packs: Vec<String>,
    is_idx: bool,
}

impl Source {
    /// The pack index `path` (`pack-<hex>.idx`), checked for its magic, version and size.
    pub fn idx(path: &Path) -> Result<Self, Error> {
        let bad = |reason| Error::corrupt_idx(path, reason);
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let mut head = [0u8; IDX_HEADER_LEN];
        file.read_exact_at(&mut head, 0)
            .map_err(|_| bad("shorter than its header"))?;
        if head[..4] != IDX_V2_MAGIC || head[4..8] != IDX_VERSION.to_be_bytes() {
            return Err(bad("not a v2 index"));
        }
        let count = u32::from_be_bytes(head[IDX_HEADER_LEN - 4..].try_into().expect("4 bytes"));
        let n = u64::from(count);
        let fixed = IDX_HEADER_LEN as u64 + n * (HASH_LEN as u64 + 8) + 2 * HASH_LEN as u64;
        let extra = len.checked_sub(fixed).ok_or_else(|| bad("too short"))?;
        if extra % 8 != 0 {
            return Err(bad("large offset table has a bad size"));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad("name is not UTF-8"))?
            .to_owned();
        let ids_at = IDX_HEADER_LEN as u64;
        let offsets_at = ids_at + n * (HASH_LEN as u64 + 4);
        Ok(Self {
            path: path.to_owned(),
            file,
            count,
            ids_at,
            offsets_at,
            large: (extra > 0).then_some((offsets_at + n * 4, extra / 8)),
            packs: vec![name],
            is_idx: true,
        })
    }

    /// The MIDX file `path` (a layer of a chain, or a single MIDX).
    pub fn midx(path: &Path) -> Result<Self, Error> {
        let file = File::open(path).map_err(io_err(path))?;
        let head = read_head(&file, path)?;
        Ok(Self {
            path: path.to_owned(),
            file,
            count: head.count,
            ids_at: head.ids_at,
            offsets_at: head.offsets_at,
            large: head.large,
            packs: head.packs,
            is_idx: false,
        })
    }

    /// Objects in this source.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether it holds no object.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The pack index names it covers.
    pub fn packs(&self) -> &[String] {
        &self.packs
    }

    /// The offset of its entry `raw` (a 32-bit idx offset, or an OOFF offset).
    fn resolve_offset(&self, raw: u32) -> Result<u64, Error> {
        let Some((large_at, large_count)) = self.large else {
            // No 64-bit table: the 32 bits are the offset (idx: MSB clear; MIDX without LOFF).
            return if self.is_idx && raw & LARGE_OFFSET_NEEDED != 0 {
                Err(Error::corrupt_idx(
                    &self.path,
                    "large offset without a table",
                ))
            } else {
                Ok(u64::from(raw))
            };
        };
        if raw & LARGE_OFFSET_NEEDED == 0 {
            return Ok(u64::from(raw));
        }
        let slot = u64::from(raw & !LARGE_OFFSET_NEEDED);
        if slot >= large_count {
            return Err(Error::corrupt(&self.path, "large offset out of range"));
        }
        let mut bytes = [0u8; 8];
        self.file
            .read_exact_at(&mut bytes, large_at + slot * 8)
            .map_err(io_err(&self.path))?;
        Ok(u64::from_be_bytes(bytes))
    }
}

/// Reads a run of fixed-size records front to back through a small buffer.
struct Run<'a> {
    source: &'a Source,
    next: u64,
    end: u64,
    buf: Vec<u8>,
    at: usize,
}

impl<'a> Run<'a> {
    fn new(source: &'a Source, start: u64, len: u64, buf_len: usize) -> Self {
        Self {
            source,
            next: start,
            end: start + len,
            buf: Vec::with_capacity(buf_len),
            at: 0,
        }
    }

    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&[u8], Error> {
        if self.at + n > self.buf.len() {
            let keep = self.buf.len() - self.at;
            self.buf.copy_within(self.at.., 0);
            let room = self.buf.capacity().max(n) - keep;
            let want = usize::try_from((self.end - self.next).min(room as u64))
                .expect("bounded by the buffer");
            self.buf.resize(keep + want, 0);
            self.source
                .file
                .read_exact_at(&mut self.buf[keep..], self.next)
                .map_err(io_err(&self.source.path))?;
            self.next += want as u64;
            self.at = 0;
            if self.buf.len() < n {
                return Err(Error::corrupt(&self.source.path, "ends early"));
            }
        }
        let out = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }
}

/// What [`write_midx()`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The file's checksum (its trailer; a layer's name).
    pub checksum: ObjectId,
    /// Objects in it.
    pub objects: u32,
    /// Packs it names.
    pub packs: Vec<String>,
}

/// A writer that hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_all(buf)?;
        self.hasher.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Merge `sources` into one MIDX file written to `out` (named `out_path` in errors): the
/// union of their objects, each id once (from the first source holding it), their packs
/// renumbered by sorted name. Returns the checksum, which `out` also ends with.
pub fn write_midx(sources: &[Source], out: impl Write, out_path: &Path) -> Result<Written, Error> {
    if sources.len() > MAX_SOURCES {
        return Err(Error::TooLarge {
            what: "more than 127 sources in one merge",
        });
    }
    // Packs, sorted by name; each source's pack-int-ids mapped into that order.
    let mut names: Vec<(&str, usize, usize)> = Vec::new();
    for (s, source) in sources.iter().enumerate() {
        for (p, name) in source.packs.iter().enumerate() {
            names.push((name.as_str(), s, p));
        }
    }
    names.sort_unstable();
    let mut packs: Vec<String> = Vec::with_capacity(names.len());
    let mut remap: Vec<Vec<u32>> = sources.iter().map(|s| vec![0; s.packs.len()]).collect();
    for (name, s, p) in names {
        if packs.last().is_none_or(|last| last != name) {
            packs.push(name.to_owned());
        }
        remap[s][p] =
            u32::try_from(packs.len() - 1).map_err(|_| Error::TooLarge { what: "2^32 packs" })?;
    }

    let buf_len = (1 << 20) / sources.len().max(1);
    let (tape, fan, count) = merge_ids(sources, buf_len)?;
    let large = count_large(sources, &tape, buf_len)?;

    // Layout.
    let names_len: usize = packs.iter().map(|n| n.len() + 1).sum();
    let names_padded = names_len.next_multiple_of(CHUNK_ALIGNMENT);
    let n = u64::from(count);
    let mut chunks: Vec<([u8; 4], u64)> = vec![
        (CHUNK_PACK_NAMES, names_padded as u64),
        (CHUNK_OID_FANOUT, (FAN_LEN * 4) as u64),
        (CHUNK_OID_LOOKUP, n * HASH_LEN as u64),
        (CHUNK_OBJECT_OFFSETS, n * OFFSET_ENTRY_LEN as u64),
    ];
    if large > 0 {
        chunks.push((CHUNK_LARGE_OFFSETS, large * 8));
    }
    let mut out = io::BufWriter::with_capacity(
        1 << 16,
        Hashing {
            inner: out,
            hasher: Hasher::new(),
        },
    );
    let w = io_err(out_path);
    let mut head = Vec::with_capacity(HEADER_LEN + (chunks.len() + 1) * TOC_ENTRY_LEN);
    head.extend_from_slice(&MIDX_SIGNATURE);
    head.extend_from_slice(&[
        MIDX_VERSION,
        HASH_VERSION_SHA1,
        u8::try_from(chunks.len()).expect("at most 5 chunks"),
        0,
    ]);
    let pack_count =
        u32::try_from(packs.len()).map_err(|_| Error::TooLarge { what: "2^32 packs" })?;
    head.extend_from_slice(&pack_count.to_be_bytes());
    let mut at = (HEADER_LEN + (chunks.len() + 1) * TOC_ENTRY_LEN) as u64;
    for (id, len) in &chunks {
        head.extend_from_slice(id);
        head.extend_from_slice(&at.to_be_bytes());
        at += len;
    }
    head.extend_from_slice(&[0; 4]);
    head.extend_from_slice(&at.to_be_bytes());
    out.write_all(&head).map_err(io_err(out_path))?;

    // PNAM, OIDF.
    for name in &packs {
        out.write_all(name.as_bytes())
            .and_then(|()| out.write_all(&[0]))
            .map_err(io_err(out_path))?;
    }
    out.write_all(&[0; CHUNK_ALIGNMENT][..names_padded - names_len])
        .map_err(io_err(out_path))?;
    for total in fan {
        out.write_all(&total.to_be_bytes())
            .map_err(io_err(out_path))?;
    }

    // OIDL: the ids again, in tape order.
    let mut runs: Vec<Run> = sources
        .iter()
        .map(|s| Run::new(s, s.ids_at, u64::from(s.count) * HASH_LEN as u64, buf_len))
        .collect();
    for &step in &tape {
        let id = runs[usize::from(step & !DUPLICATE)].take(HASH_LEN)?;
        if step & DUPLICATE == 0 {
            out.write_all(id).map_err(io_err(out_path))?;
        }
    }

    // OOFF, then LOFF.
    write_offsets(sources, &tape, &remap, large, buf_len, &mut out, out_path)?;
    let Hashing { mut inner, hasher } = out.into_inner().map_err(|e| w(e.into_error()))?;
    let checksum = hasher.finalize();
    inner
        .write_all(checksum.as_bytes())
        .map_err(io_err(out_path))?;
    Ok(Written {
        checksum,
        objects: count,
        packs,
    })
}

/// Pass 3: OOFF in tape order (pack-int-ids renumbered by `remap`), then LOFF when `large`
/// offsets need it.
fn write_offsets(
    sources: &[Source],
    tape: &[u8],
    remap: &[Vec<u32>],
    large: u64,
    buf_len: usize,
    out: &mut impl Write,
    out_path: &Path,
) -> Result<(), Error> {
    let mut runs = offset_runs(sources, buf_len);
    let mut large_offsets = Vec::new();
    for &step in tape {
        let s = usize::from(step & !DUPLICATE);
        let (pack, offset) = next_offset(&mut runs[s], &sources[s])?;
        if step & DUPLICATE != 0 {
            continue;
        }
        let pack = *remap[s]
            .get(pack as usize)
            .ok_or_else(|| Error::corrupt(&sources[s].path, "pack-int-id out of range"))?;
        let raw = if large > 0 && offset >= u64::from(LARGE_OFFSET_NEEDED) {
            let slot = u32::try_from(large_offsets.len()).expect("fewer than 2^31 large offsets");
            large_offsets.push(offset);
            LARGE_OFFSET_NEEDED | slot
        } else {
            u32::try_from(offset).map_err(|_| Error::corrupt(&sources[s].path, "offset"))?
        };
        out.write_all(&pack.to_be_bytes())
            .and_then(|()| out.write_all(&raw.to_be_bytes()))
            .map_err(io_err(out_path))?;
    }
    for offset in large_offsets {
        out.write_all(&offset.to_be_bytes())
            .map_err(io_err(out_path))?;
    }
    Ok(())
}

/// Pass 1: the tape, the fan-out of the ids kept, and their number.
fn merge_ids(sources: &[Source], buf_len: usize) -> Result<(Vec<u8>, [u32; FAN_LEN], u32), Error> {
    let total: u64 = sources.iter().map(|s| u64::from(s.count)).sum();
    let mut tape = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut runs: Vec<Run> = sources
        .iter()
        .map(|s| Run::new(s, s.ids_at, u64::from(s.count) * HASH_LEN as u64, buf_len))
        .collect();
    let mut left: Vec<u32> = sources.iter().map(|s| s.count).collect();
    let mut heads = Tournament::new(sources.len());
    for (s, run) in runs.iter_mut().enumerate() {
        if left[s] > 0 {
            left[s] -= 1;
            heads.set(s, run.take(HASH_LEN)?);
        }
    }
    heads.build();
    let mut fan = [0u32; FAN_LEN];
    let mut last: Option<(u64, [u8; HASH_LEN])> = None;
    let mut count = 0u32;
    while let Some(source) = heads.winner() {
        let (key, id) = (heads.keys[source], heads.ids[source]);
        let s = u8::try_from(source).expect("at most 127 sources");
        match last {
            Some((last_key, previous)) if last_key == key && previous == id => {
                tape.push(s | DUPLICATE);
            }
            Some((last_key, previous)) if last_key > key || (last_key == key && previous > id) => {
                return Err(Error::corrupt(&sources[source].path, "ids out of order"));
            }
            _ => {
                tape.push(s);
                fan[usize::from(id[0])] += 1;
                count = count.checked_add(1).ok_or(Error::TooLarge {
                    what: "2^32 objects",
                })?;
                last = Some((key, id));
            }
        }
        if left[source] > 0 {
            left[source] -= 1;
            heads.set(source, runs[source].take(HASH_LEN)?);
        } else {
            heads.finish(source);
        }
        heads.replay(source);
    }
    let mut total = 0;
    for slot in &mut fan {
        total += *slot;
        *slot = total;
    }
    Ok((tape, fan, count))
}

/// A loser tree over the sources' current ids: the smallest is at the root, and replacing it
/// replays only its path (log2 of the sources' number of matches, each an integer comparison
/// of the ids' first 8 bytes; whole ids only on a tie).
///
/// Invariant: `tree[0]` is the leaf that wins every match on its path; `tree[node]` for
/// every node from 1 is the loser of the match at `node`, whose children are `2 node` and
/// `2 node + 1` (leaves are `leaves + leaf`). Leaves past the sources, and sources run dry, are done and
/// lose to every live one; ties go to the lower leaf (the earlier source).
struct Tournament {
    /// Each leaf's current id's first 8 bytes as an integer ([`prefix()`]).
    keys: Vec<u64>,
    ids: Vec<[u8; HASH_LEN]>,
    done: Vec<bool>,
    tree: Vec<usize>,
    leaves: usize,
}

impl Tournament {
    /// A tree of `sources` leaves, all done until [`Tournament::set`].
    fn new(sources: usize) -> Self {
        let leaves = sources.next_power_of_two().max(1);
        Self {
            keys: vec![u64::MAX; leaves],
            ids: vec![[0xff; HASH_LEN]; leaves],
            done: vec![true; leaves],
            tree: vec![0; leaves],
            leaves,
        }
    }

    /// Give `leaf` the id `id` (20 bytes).
    fn set(&mut self, leaf: usize, id: &[u8]) {
        let id: [u8; HASH_LEN] = id.try_into().expect("20 bytes");
        self.keys[leaf] = prefix(&id);
        self.ids[leaf] = id;
        self.done[leaf] = false;
    }

    /// `leaf` has no id left.
    fn finish(&mut self, leaf: usize) {
        self.keys[leaf] = u64::MAX;
        self.done[leaf] = true;
    }

    /// Whether `a`'s id comes before `b`'s.
    #[inline]
    fn before(&self, a: usize, b: usize) -> bool {
        let (key_a, key_b) = (self.keys[a], self.keys[b]);
        if key_a != key_b {
            // A done leaf holds the largest key: a live one with a smaller key wins.
            return key_a < key_b;
        }
        self.tie_before(a, b)
    }

    /// [`Tournament::before`] for equal keys (a duplicate, a done leaf, or ids sharing 8
    /// bytes).
    #[cold]
    #[inline(never)]
    fn tie_before(&self, a: usize, b: usize) -> bool {
        (self.done[a], &self.ids[a], a) < (self.done[b], &self.ids[b], b)
    }

    /// Play every match once (after the first [`Tournament::set`]s).
    fn build(&mut self) {
        let n = self.leaves;
        let mut winners = vec![0; 2 * n];
        for leaf in 0..n {
            winners[n + leaf] = leaf;
        }
        for node in (1..n).rev() {
            let (a, b) = (winners[2 * node], winners[2 * node + 1]);
            let (winner, loser) = if self.before(a, b) { (a, b) } else { (b, a) };
            winners[node] = winner;
            self.tree[node] = loser;
        }
        self.tree[0] = if n > 1 { winners[1] } else { 0 };
    }

    /// The leaf holding the smallest id, unless every leaf is done.
    fn winner(&self) -> Option<usize> {
        let leaf = self.tree[0];
        (!self.done[leaf]).then_some(leaf)
    }

    /// Replay the matches of `leaf` (the last winner, since given a new id or finished).
    fn replay(&mut self, leaf: usize) {
        let mut winner = leaf;
        // The match above the leaf's own node.
        let leaf_node = self.leaves + leaf;
        let mut node = leaf_node / 2;
        while node > 0 {
            let other = self.tree[node];
            // Selects, not branches: which side wins is a coin toss for random ids.
            let other_wins = self.before(other, winner);
            self.tree[node] = if other_wins { winner } else { other };
            winner = if other_wins { other } else { winner };
            node /= 2;
        }
        self.tree[0] = winner;
    }
}

/// The first 8 bytes of an id as a big-endian integer: the tournament compares these first
/// (one integer comparison instead of a 20-byte `memcmp` call), the whole id only on a tie.
fn prefix(id: &[u8; HASH_LEN]) -> u64 {
    u64::from_be_bytes(id[..8].try_into().expect("8 of 20 bytes"))
}

fn offset_runs(sources: &[Source], buf_len: usize) -> Vec<Run<'_>> {
    sources
        .iter()
        .map(|s| {
            let width = if s.is_idx { 4 } else { OFFSET_ENTRY_LEN as u64 };
            Run::new(s, s.offsets_at, u64::from(s.count) * width, buf_len)
        })
        .collect()
}

/// The next (pack-int-id in the source, offset) of `run`.
fn next_offset(run: &mut Run, source: &Source) -> Result<(u32, u64), Error> {
    if source.is_idx {
        let raw = u32::from_be_bytes(run.take(4)?.try_into().expect("4 bytes"));
        return Ok((0, source.resolve_offset(raw)?));
    }
    let row = run.take(OFFSET_ENTRY_LEN)?;
    let pack = u32::from_be_bytes(row[..4].try_into().expect("4 bytes"));
    let raw = u32::from_be_bytes(row[4..].try_into().expect("4 bytes"));
    Ok((pack, source.resolve_offset(raw)?))
}

/// How many kept objects lie at offsets >= 2^31 (they go to LOFF); 0 without reading
/// anything when no source has a 64-bit table.
fn count_large(sources: &[Source], tape: &[u8], buf_len: usize) -> Result<u64, Error> {
    if sources.iter().all(|s| s.large.is_none()) {
        return Ok(0);
    }
    let mut runs = offset_runs(sources, buf_len);
    let mut large = 0;
    for &step in tape {
        let s = usize::from(step & !DUPLICATE);
        let (_, offset) = next_offset(&mut runs[s], &sources[s])?;
        if step & DUPLICATE == 0 && offset >= u64::from(LARGE_OFFSET_NEEDED) {
            large += 1;
        }
    }
    Ok(large)
}
