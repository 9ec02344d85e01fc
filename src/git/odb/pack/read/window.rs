//! Owns the windows of one pack: a few large buffers filled by `pread`, so that reading many
//! small entries near each other costs one system call per window, not one per entry.
//!
//! Invariants: at most `max` windows of at most `size` bytes each; a request for at most
//! `size / 2` bytes at a position is always served whole from one window (or with every byte
//! up to the end of the pack data); windows never cover the trailer. A new window is placed
//! in the direction of travel: starting at the requested position (aligned down to
//! [`ALIGN`]) when reads move forward, ending a little past the request when they move
//! backward (a walk reads a pack from its end, an entry's header before its data), so a scan
//! either way reads each byte about once.
//! Eviction is least recently used. `read_exact_at` fills initialized buffers, which are
//! reused without zeroing again.
//!
//! Mapped: when allowed ([`Windows::new()`]'s `map`), reads map one window of at most
//! [`MAP_WINDOW`] bytes of the pack read-only instead ([`map_pack()`], the one `unsafe`
//! block of the crate, with its proof), placed the same way as a read window, and every
//! slice borrows from the mapping: nothing is copied, a walk and the delivery after it read
//! the page cache in place. One mapping at a time, so a large pack (a fetched or `git gc`
//! one) never has more than that window resident in this process (mapped pages count in its
//! RSS). Dropping the windows ([`Windows::release()`], [`Windows::take_buffers()`]) unmaps.
//! A pack that cannot be mapped is read by windows.
//! Measured (`gitmq bench consume`, the command on gitmq-written packs, same run): see
//! ARCHITECTURE.md, "Reading packs: mapped or read".

use std::{fs::File, io, os::unix::fs::FileExt};

use memmap2::Mmap;

/// A run of pack bytes starting at `start`.
#[derive(Debug)]
struct Window {
    start: u64,
    data: Vec<u8>,
    last_used: u64,
}

impl Window {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }
}

/// The largest mapped window: all of a pack gitmq writes (a batch), a slice of larger ones.
pub(super) const MAP_WINDOW: u64 = 32 << 20;

/// Window starts are aligned down to this (a page).
const ALIGN: u64 = 4096;
/// A window placed for a backward scan reaches at most this far past the request (and at
/// most an eighth of a window): room for the rest of the entry whose header was asked for.
const BACKWARD_SLACK: u64 = 16 << 10;

/// The windows of one pack file.
#[derive(Debug)]
pub(super) struct Windows {
    size: usize,
    max: usize,
    list: Vec<Window>,
    clock: u64,
    last_hit: usize,
    /// Where the last window was loaded for, to tell the direction of travel.
    last_load: Option<u64>,
    /// Bytes read from the file so far.
    bytes_read: u64,
    /// Buffers handed over by another pack's windows ([`Windows::take_buffers()`]), used
    /// before allocating: at most `max`, their stale bytes overwritten by the next read.
    spare: Vec<Vec<u8>>,
    /// Whether to map the pack instead (until a mapping fails).
    map_allowed: bool,
    /// A window of the pack, mapped read-only.
    map: Option<Mapped>,
    /// The size of a mapped window ([`MAP_WINDOW`]; smaller in tests).
    map_window: u64,
}

/// A mapped window: the pack's bytes from `start`, never past the data end.
#[derive(Debug)]
struct Mapped {
    map: Mmap,
    start: u64,
}

impl Mapped {
    fn end(&self) -> u64 {
        self.start + self.map.len() as u64
    }
}

impl Windows {
    /// Windows of `size` bytes (at least 2), at most `max` (at least 1) of them; or, if
    /// `map`, one mapped window of at most [`MAP_WINDOW`] bytes (read windows where the pack
    /// cannot be mapped).
    pub(super) fn new(size: usize, max: usize, map: bool) -> Self {
        Self {
            size: size.max(2),
            max: max.max(1),
            list: Vec::new(),
            clock: 0,
            last_hit: 0,
            last_load: None,
            bytes_read: 0,
            spare: Vec::new(),
            map_allowed: map,
            map: None,
            map_window: MAP_WINDOW,
        }
    }

    /// The memory the windows hold (a mapped window counts whole: its pages are resident
    /// once read).
    pub(super) fn bytes(&self) -> usize {
        let spare: usize = self.spare.iter().map(Vec::capacity).sum();
        let mapped = self.mapped_len();
        spare + mapped + self.list.iter().map(|w| w.data.capacity()).sum::<usize>()
    }

    /// The length of the mapping, 0 when not mapped.
    pub(super) fn mapped_len(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.map.len())
    }

    /// Drop every window and the mapping (they are read again when needed).
    pub(super) fn release(&mut self) {
        self.list = Vec::new();
        self.spare = Vec::new();
        self.last_hit = 0;
        self.map = None;
    }

    /// Drop every window, handing back its buffer (length and stale bytes kept) for another
    /// pack's windows: a scan that moves from pack to pack then neither allocates nor zeroes
    /// a window again (measured on 1M messages in 100 packs: fresh 256 KiB windows cost 12%
    /// of `gitmq consume` in page faults and zeroing).
    pub(super) fn take_buffers(&mut self) -> Vec<Vec<u8>> {
        self.last_hit = 0;
        self.map = None;
        let mut buffers: Vec<Vec<u8>> = self.list.drain(..).map(|w| w.data).collect();
        buffers.append(&mut self.spare);
        buffers
    }

    /// Keep `buffers` (from [`take_buffers()`](Self::take_buffers)) for the next windows
    /// loaded, at most as many as windows are allowed.
    pub(super) fn adopt_buffers(&mut self, buffers: Vec<Vec<u8>>) {
        let room = self.max.saturating_sub(self.list.len() + self.spare.len());
        self.spare.extend(buffers.into_iter().take(room));
    }

    /// The longest `want` that [`slice()`](Self::slice) always satisfies.
    pub(super) fn max_want(&self) -> usize {
        self.size / 2
    }

    /// The bytes of `file` from `at` to the end of a window holding at least
    /// `min(want, data_end - at)` of them; empty if `at >= data_end`.
    /// `want` must not exceed [`max_want()`](Self::max_want).
    pub(super) fn slice(
        &mut self,
        file: &File,
        data_end: u64,
        at: u64,
        want: usize,
    ) -> io::Result<&[u8]> {
        if at >= data_end {
            return Ok(&[]);
        }
        if self.map_allowed {
            let need_end = at.saturating_add(want as u64).min(data_end);
            let covered = self
                .map
                .as_ref()
                .is_some_and(|m| m.start <= at && need_end <= m.end());
            if !covered {
                self.map = None;
                let size = self.map_window.max(self.size as u64);
                let (start, len) = self.place(at, need_end, data_end, size);
                self.map = map_pack(file, data_end, start, len);
                self.map_allowed = self.map.is_some();
                if self.map.is_some() {
                    self.bytes_read += len;
                }
            }
            if let Some(start) = self.map.as_ref().map(|m| m.start) {
                let from = usize::try_from(at - start).expect("inside the mapping");
                let mapped = self.map.as_ref().map_or(&[][..], |m| &m.map[..]);
                return Ok(mapped.get(from..).unwrap_or_default());
            }
        }
        let need_end = at.saturating_add(want as u64).min(data_end);
        self.clock += 1;
        let hit = self
            .list
            .get(self.last_hit)
            .filter(|w| w.start <= at && need_end <= w.end())
            .map(|_| self.last_hit)
            .or_else(|| {
                self.list
                    .iter()
                    .position(|w| w.start <= at && need_end <= w.end())
            });
        let slot = match hit {
            Some(slot) => slot,
            None => self.load(file, data_end, at, need_end)?,
        };
        self.last_hit = slot;
        let window = self.list.get_mut(slot).expect("BUG: slot is in range");
        window.last_used = self.clock;
        let from = usize::try_from(at - window.start).expect("inside a window");
        Ok(window.data.get(from..).unwrap_or_default())
    }

    /// Where a window of at most `size` bytes holding `at..need_end` goes (start, length),
    /// in the direction of travel (see the module header).
    fn place(&mut self, at: u64, need_end: u64, data_end: u64, size: u64) -> (u64, u64) {
        let backward = self.last_load.is_some_and(|last| at < last);
        self.last_load = Some(at);
        let start = if backward {
            // End a little past what is needed (the rest of this entry is likely read
            // next): the next entries are below it.
            let end = need_end.max(at.saturating_add((size / 8).min(BACKWARD_SLACK)));
            end.saturating_sub(size).div_ceil(ALIGN) * ALIGN
        } else {
            at - at % ALIGN
        };
        // Aligning may not leave `at` outside or `need_end` past the window.
        let start = if start > at || need_end - start > size {
            at
        } else {
            start
        };
        (start, (data_end - start).min(size))
    }

    /// Read a window holding `at..need_end` into the least recently used slot; its index.
    fn load(&mut self, file: &File, data_end: u64, at: u64, need_end: u64) -> io::Result<usize> {
        let (start, len) = self.place(at, need_end, data_end, self.size as u64);
        let len = usize::try_from(len).expect("at most the window size");
        let slot = if self.list.len() < self.max {
            self.list.push(Window {
                start,
                data: self.spare.pop().unwrap_or_default(),
                last_used: 0,
            });
            self.list.len() - 1
        } else {
            self.list
                .iter()
                .enumerate()
                .min_by_key(|(_, w)| w.last_used)
                .map(|(slot, _)| slot)
                .expect("BUG: max is at least 1")
        };
        let window = self.list.get_mut(slot).expect("BUG: slot is in range");
        window.start = start;
        // Stale bytes are overwritten by the read; only growth needs initializing.
        if window.data.len() > len {
            window.data.truncate(len);
        } else {
            window.data.resize(len, 0);
        }
        self.bytes_read += len as u64;
        if let Err(err) = file.read_exact_at(&mut window.data, start) {
            window.data.clear();
            return Err(err);
        }
        Ok(slot)
    }
}

/// Map `len` bytes of `file` from `start` read-only, if the file holds at least `data_end`
/// bytes (and `start + len <= data_end`); `None` if it cannot be mapped (then it is read by
/// windows).
fn map_pack(file: &File, data_end: u64, start: u64, len: u64) -> Option<Mapped> {
    let file_len = file.metadata().ok()?.len();
    if file_len < data_end || start.checked_add(len)? > data_end || len == 0 {
        return None;
    }
    let len = usize::try_from(len).ok()?;
    // SAFETY: `Mmap::map` is unsafe because the bytes behind the returned slice are the
    // file's: if the file changed while mapped, safe code would see memory change under a
    // shared reference, and if it shrank, touching a page past its new end raises SIGBUS.
    // - Nothing writes a pack file once it has its name. git and gitmq write a pack (and its
    //   index) under a temporary name and rename it into place (`git/odb/pack/write/install`,
    //   `index_pack`); no git command or gitmq code opens a named pack for writing, and
    //   repack, gc, prune and `gitmq consolidate` write new packs and unlink old ones. An
    //   unlinked pack's inode stays until the mapping is dropped, so its pages stay valid.
    //   The slice we hand out therefore never changes while it is borrowed.
    // - Only a process outside that contract (truncating or rewriting a named pack in place,
    //   which git's own readers do not survive either: git and gix-pack map packs the same
    //   way) can change it. Truncation then ends this process with SIGBUS on the first
    //   access past the new end: it is killed, it never reads a changed or torn value, and
    //   acknowledged positions are refs, which such a death does not touch. A rewrite in
    //   place is caught where it matters: delivery re-checks each message's first parent,
    //   and `verify_checksum()` hashes the pack.
    // - The mapping is read-only and private to this `Windows`, dropped (unmapped) with it;
    //   slices borrow from `&self`, so none outlives it. The file was checked to hold
    //   `data_end` bytes and the window lies below `data_end`, so every slice is bounded
    //   by it.
    #[allow(unsafe_code, reason = "mapping packs: see the SAFETY comment")]
    let map = unsafe { memmap2::MmapOptions::new().offset(start).len(len).map(file) }.ok()?;
    (map.len() == len).then_some(Mapped { map, start })
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "fixtures build small values on purpose"
)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn slices_cross_window_boundaries_and_stop_at_the_data_end() {
        let mut file = tempfile::tempfile().unwrap();
        let bytes: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        file.write_all(&bytes).unwrap();
        let mut windows = Windows::new(64, 2, false);
        let data_end = 980;
        for at in (0..1000u64).step_by(7) {
            for want in [1, 10, 32] {
                let got = windows.slice(&file, data_end, at, want).unwrap().to_vec();
                if at >= data_end {
                    assert!(got.is_empty());
                    continue;
                }
                let need = want.min((data_end - at) as usize);
                assert!(got.len() >= need, "at {at} want {want}");
                assert!(at + got.len() as u64 <= data_end, "never past the data");
                assert_eq!(got, &bytes[at as usize..at as usize + got.len()]);
            }
        }
        assert!(windows.list.len() <= 2);
        assert!(windows.list.iter().all(|w| w.data.len() <= 64));
    }

    #[test]
    fn a_mapped_pack_serves_the_same_bytes_up_to_the_data_end_and_outlives_its_unlinking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.pack");
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let data_end = 99_980;
        let mut windows = Windows::new(4096, 2, true);
        assert_eq!(
            windows.slice(&file, data_end, 5, 10).unwrap()[..10],
            bytes[5..15]
        );
        assert!(windows.map.is_some(), "mapped on first read");
        assert_eq!(windows.bytes(), data_end as usize, "a mapping counts whole");
        // Removing the name (as prune does) leaves the mapped pages readable.
        std::fs::remove_file(&path).unwrap();
        for at in (0..100_000u64).step_by(997) {
            let got = windows.slice(&file, data_end, at, 300).unwrap();
            if at >= data_end {
                assert!(got.is_empty());
                continue;
            }
            assert_eq!(
                at + got.len() as u64,
                data_end,
                "up to the data end, never past"
            );
            assert_eq!(got, &bytes[at as usize..data_end as usize]);
        }
        windows.release();
        assert!(
            windows.map.is_none() && windows.bytes() == 0,
            "released: unmapped"
        );
    }

    #[test]
    fn mapped_windows_move_either_way_one_at_a_time_and_serve_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.pack");
        let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let data_end = bytes.len() as u64 - 20;
        let entries: Vec<u64> = (0..data_end - 400).step_by(377).collect();
        for (direction, order) in [
            ("forward", entries.clone()),
            ("backward", entries.iter().rev().copied().collect()),
        ] {
            let mut windows = Windows::new(4096, 4, true);
            windows.map_window = 64 << 10;
            for at in order {
                let got = windows.slice(&file, data_end, at, 400).unwrap();
                assert!(got.len() >= 400, "{direction}: at {at}");
                assert_eq!(&got[..400], &bytes[at as usize..at as usize + 400]);
                assert!(at + got.len() as u64 <= data_end, "never past the data");
                assert!(windows.mapped_len() <= 64 << 10, "one window at most");
                assert!(windows.list.is_empty(), "{direction}: no read windows");
            }
            assert!(
                windows.bytes_read < data_end + data_end / 5,
                "{direction}: mapped {} bytes of {data_end}",
                windows.bytes_read
            );
        }
    }

    #[test]
    fn a_file_shorter_than_its_data_end_is_not_mapped_and_reads_fail_as_before() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[7u8; 1000]).unwrap();
        let mut windows = Windows::new(4096, 2, true);
        assert!(windows.slice(&file, 2000, 0, 100).is_err(), "short read");
        assert!(windows.map.is_none() && !windows.map_allowed);
    }

    #[test]
    fn scans_in_either_direction_read_each_byte_about_once() {
        let mut file = tempfile::tempfile().unwrap();
        let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&bytes).unwrap();
        let data_end = bytes.len() as u64;
        let entries: Vec<u64> = (0..data_end - 400).step_by(377).collect();
        let forward = entries.iter().copied();
        let backward = entries.iter().rev().copied();
        for (direction, order) in [
            ("forward", forward.collect::<Vec<_>>()),
            ("backward", backward.collect()),
        ] {
            let mut windows = Windows::new(64 << 10, 4, false);
            for at in order {
                let got = windows.slice(&file, data_end, at, 400).unwrap();
                assert_eq!(&got[..400], &bytes[at as usize..at as usize + 400]);
            }
            assert!(
                windows.bytes_read < data_end + data_end / 5,
                "{direction}: read {} bytes of {data_end}",
                windows.bytes_read
            );
        }
    }
}
