//! Owns the windows of one pack: a few large buffers filled by `pread`, so that reading many
//! small entries near each other costs one system call per window, not one per entry.
//!
//! Invariants: at most `max` windows of at most `size` bytes each; a window starts at a
//! multiple of `size / 2`, so any position has a window holding at least `size / 2` bytes
//! from it on (or every byte up to the end of the pack data); windows never cover the
//! trailer. Eviction is least recently used. No `unsafe`: `read_exact_at` fills
//! initialized buffers, which are reused without zeroing again.

use std::{fs::File, io, os::unix::fs::FileExt};

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

/// The windows of one pack file.
#[derive(Debug)]
pub(super) struct Windows {
    size: usize,
    max: usize,
    list: Vec<Window>,
    clock: u64,
    last_hit: usize,
}

impl Windows {
    /// Windows of `size` bytes (at least 2), at most `max` (at least 1) of them.
    pub(super) fn new(size: usize, max: usize) -> Self {
        Self {
            size: size.max(2),
            max: max.max(1),
            list: Vec::new(),
            clock: 0,
            last_hit: 0,
        }
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
            None => self.load(file, data_end, at)?,
        };
        self.last_hit = slot;
        let window = self.list.get_mut(slot).expect("BUG: slot is in range");
        window.last_used = self.clock;
        let from = usize::try_from(at - window.start).expect("inside a window");
        Ok(window.data.get(from..).unwrap_or_default())
    }

    /// Read the window holding `at` into the least recently used slot; its index.
    fn load(&mut self, file: &File, data_end: u64, at: u64) -> io::Result<usize> {
        let half = (self.size / 2) as u64;
        let start = at - at % half;
        let len = usize::try_from((data_end - start).min(self.size as u64))
            .expect("at most the window size");
        let slot = if self.list.len() < self.max {
            self.list.push(Window {
                start,
                data: Vec::new(),
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
        if let Err(err) = file.read_exact_at(&mut window.data, start) {
            window.data.clear();
            return Err(err);
        }
        Ok(slot)
    }
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
        let mut windows = Windows::new(64, 2);
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
}
