//! Owns the reads a consumer makes: an object, or only its first bytes, at an offset the
//! index gave, borrowed straight from a read window when the entry is stored uncompressed in
//! one block (every message gitmq writes), else inflated into the caller's scratch buffer.
//!
//! Invariants: a borrowed body is exactly the entry's declared size and lies inside the pack
//! data; with [`VERIFY_STORED_CHECKSUM`] its Adler-32 was checked, as zlib would. Whole
//! objects read here are not added to the [`DeltaBaseCache`]: a consumer reads each message
//! once, and bases of deltas are still cached while chains resolve. A prefix read
//! ([`PackFile::object_prefix_at()`]) checks no checksum: it serves a walk that reads the
//! whole object again before delivering it; its first bytes are decoded by hand when they
//! can be (`odb::hand_inflate`), falling back to zlib for anything else.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use flate2::{FlushDecompress, Status};

use super::{
    entry::{Entry, Source, INFLATE_SLACK},
    io_err, DeltaBaseCache, Error, PackFile,
};
use crate::git::odb::{
    pack::format::{decode_entry_header, EntryKind, MAX_ENTRY_HEADER_LEN, PACK_HEADER_LEN},
    stored,
};

/// Whether a stored entry's Adler-32 is checked when it is read whole. It costs about as
/// much as copying the body, and it is what zlib (and git) would check.
pub const VERIFY_STORED_CHECKSUM: bool = true;

/// Borrowed reads
impl PackFile {
    /// The object at `offset` (an entry offset from [`index()`](Self::index)): its kind and
    /// body. The body is borrowed from a read window when the entry is stored in one block,
    /// else inflated (and delta-resolved) into `scratch`.
    pub fn object_at<'a>(
        &'a mut self,
        offset: u64,
        scratch: &'a mut Vec<u8>,
        cache: &mut DeltaBaseCache,
    ) -> Result<(gix_object::Kind, &'a [u8]), Error> {
        if let Some((kind, start, len)) = self.stored_at(offset, VERIFY_STORED_CHECKSUM)? {
            return Ok((kind, self.window_bytes(start, len)?));
        }
        let entry = self.entry_at(offset)?;
        let Source::Whole(kind) = entry.source else {
            let kind = self.read_at(offset, scratch, cache)?;
            return Ok((kind, scratch.as_slice()));
        };
        self.inflate(offset, entry, self.options.max_object_size, scratch)?;
        Ok((kind, scratch.as_slice()))
    }

    /// Whether the entry at `offset` is a whole object stored in one block, which
    /// [`object_at()`](Self::object_at) borrows without inflating (its checksum unchecked
    /// here).
    pub fn is_stored_at(&mut self, offset: u64) -> Result<bool, Error> {
        Ok(self.stored_at(offset, false)?.is_some())
    }

    /// The first bytes of the object at `offset`: at least `min(want, size)` of them, and
    /// at most all of them. Cheaper than [`object_at()`](Self::object_at) for a compressed
    /// entry, of which only the start is inflated; nothing past those bytes is checked.
    pub fn object_prefix_at<'a>(
        &'a mut self,
        offset: u64,
        want: usize,
        scratch: &'a mut Vec<u8>,
        cache: &mut DeltaBaseCache,
    ) -> Result<(gix_object::Kind, &'a [u8]), Error> {
        if let Some((kind, start, len)) = self.stored_at(offset, false)? {
            return Ok((kind, self.window_bytes(start, len)?));
        }
        let entry = self.entry_at(offset)?;
        let Source::Whole(kind) = entry.source else {
            let kind = self.read_at(offset, scratch, cache)?;
            return Ok((kind, scratch.as_slice()));
        };
        self.inflate_prefix(offset, entry, want, scratch)?;
        Ok((kind, scratch.as_slice()))
    }

    /// The common case in one window read: the entry at `offset` is a whole object stored
    /// in one block, lying in a window with its header. Its kind and where its body lies
    /// (start, length); `None` for the general path to read (and judge).
    fn stored_at(
        &mut self,
        offset: u64,
        verify: bool,
    ) -> Result<Option<(gix_object::Kind, u64, usize)>, Error> {
        let data_end = self.data_end();
        if offset < PACK_HEADER_LEN as u64 || offset >= data_end {
            return Ok(None);
        }
        let limit = self.options.max_object_size;
        let bytes = self
            .windows
            .slice(&self.file, data_end, offset, MAX_ENTRY_HEADER_LEN)
            .map_err(io_err(&self.path))?;
        let Some((EntryKind::Base(kind), size, header_len)) = decode_entry_header(bytes) else {
            return Ok(None);
        };
        let Some(size) = usize::try_from(size).ok().filter(|_| size <= limit) else {
            return Ok(None);
        };
        let Some(stream) = bytes.get(header_len..) else {
            return Ok(None);
        };
        Ok(match stored::parse(stream, size, verify) {
            Ok(Some(stream)) => stream.single_range().map(|range| {
                (
                    kind,
                    offset + (header_len + range.start) as u64,
                    range.len(),
                )
            }),
            _ => None,
        })
    }

    /// `len` bytes at `start`, which [`stored_at()`](Self::stored_at) found inside one
    /// window.
    fn window_bytes(&mut self, start: u64, len: usize) -> Result<&[u8], Error> {
        let data_end = self.data_end();
        let bytes = self
            .windows
            .slice(&self.file, data_end, start, len)
            .map_err(io_err(&self.path))?;
        Ok(bytes
            .get(..len)
            .expect("BUG: stored_at() found these bytes in a window"))
    }

    /// Inflate at least `min(want, size)` bytes of `entry`'s zlib stream into `out`
    /// (cleared first).
    fn inflate_prefix(
        &mut self,
        offset: u64,
        entry: Entry,
        want: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let size = usize::try_from(entry.size).unwrap_or(usize::MAX);
        let target = want.min(size);
        out.clear();
        out.reserve(target.saturating_add(INFLATE_SLACK));
        let data_end = self.data_end();
        let Self {
            file,
            windows,
            inflater,
            prefix,
            path,
            ..
        } = self;
        let corrupt = |reason| Error::Corrupt {
            path: path.clone(),
            offset,
            reason,
        };
        // The walk wants ~100 bytes: decoded by hand from the window when it can, which
        // skips building zlib's tables; anything else (and every error) is zlib's.
        let input = windows
            .slice(file, data_end, entry.data_at, 1)
            .map_err(io_err(path))?;
        if prefix.inflate_prefix(input, target, out).is_ok() && out.len() == target {
            return Ok(());
        }
        out.clear();
        inflater.reset(true);
        let mut at = entry.data_at;
        while out.len() < target {
            let input = windows.slice(file, data_end, at, 1).map_err(io_err(path))?;
            if input.is_empty() {
                return Err(corrupt("zlib stream runs past the end of the pack data"));
            }
            let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
            let status = inflater
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|source| Error::Inflate {
                    path: path.clone(),
                    offset,
                    source,
                })?;
            let consumed = inflater.total_in() - in_before;
            at += consumed;
            if out.len() > size {
                return Err(corrupt("zlib stream is longer than the declared size"));
            }
            match status {
                Status::StreamEnd if out.len() < target => {
                    return Err(corrupt("zlib stream is shorter than the declared size"));
                }
                Status::StreamEnd => break,
                Status::Ok | Status::BufError => {
                    if consumed == 0 && inflater.total_out() == out_before {
                        return Err(corrupt("zlib stream makes no progress"));
                    }
                }
            }
        }
        Ok(())
    }
}
