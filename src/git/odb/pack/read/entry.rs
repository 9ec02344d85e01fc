//! Owns the entries of a pack as [`PackFile`] reads them: parsing an entry's header,
//! inflating its zlib stream to exactly its declared size, and resolving delta chains
//! iteratively, bases first from the cache.
//!
//! Invariants: every size is checked against a limit before its buffer grows; a zlib stream
//! must end exactly at its declared size and inside the pack data; a chain is at most
//! `max_chain_len` deltas, so a REF_DELTA cycle ends in an error. Entry layout: see
//! [`super::super::format`].

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::os::unix::fs::FileExt;

use flate2::{FlushDecompress, Status};
use gix_hash::{oid, ObjectId};

use super::{io_err, DeltaBaseCache, Error, PackFile, DIRECT_CHUNK_LEN, VERIFY_STORED_CHECKSUM};
use crate::{
    git::hash,
    git::odb::pack::{
        delta,
        format::{
            decode_entry_header, decode_ofs_delta_distance, EntryKind, HASH_LEN,
            MAX_ENTRY_HEADER_LEN, PACK_HEADER_LEN,
        },
    },
    git::odb::stored,
};

/// Bytes of an entry read before its zlib stream: the header and a base id (longer than
/// any base distance).
const ENTRY_PREFIX_LEN: usize = MAX_ENTRY_HEADER_LEN + HASH_LEN;
/// Output room reserved past an entry's declared size: zlib decodes with its fast loop only
/// while at least 258 bytes (one longest match) of output room are left, so without slack
/// every small object would be decoded by the slow loop (measured: 1.4x slower on commits).
/// A valid stream never writes into it; a stream that does is refused as too long.
pub(super) const INFLATE_SLACK: usize = 512;
/// The largest object decoded by hand (`odb::hand_inflate::WholeDecoder`), not by zlib.
const HAND_DECODED_MAX: usize = 4096;
/// Bytes of a hand-decoded stream asked for past its object's size: zlib's own bound for
/// what deflate writes for 4 KiB (`compressBound`) is 13 more; a longer stream falls back.
const HAND_DECODED_ROOM: usize = 64;
/// Scratch buffers larger than this are shrunk after each read.
const SCRATCH_KEEP_LEN: usize = 8 << 20;

/// Where an entry's object comes from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source {
    /// The zlib stream holds the object.
    Whole(gix_object::Kind),
    /// The zlib stream holds a delta against the entry at this offset.
    DeltaAt(u64),
    /// The zlib stream holds a delta against the object with this id.
    DeltaOf(ObjectId),
}

/// A parsed entry header.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) source: Source,
    /// The inflated size of the zlib stream (object or delta).
    pub(super) size: u64,
    /// Where the zlib stream starts.
    pub(super) data_at: u64,
}

/// One delta of a chain being resolved.
#[derive(Debug, Clone, Copy)]
struct Link {
    offset: u64,
    entry: Entry,
}

/// Buffers reused across reads.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    chain: Vec<Link>,
    base: Vec<u8>,
    result: Vec<u8>,
    delta: Vec<u8>,
}

impl Scratch {
    pub(super) fn trim(&mut self) {
        for buf in [&mut self.base, &mut self.result, &mut self.delta] {
            if buf.capacity() > SCRATCH_KEEP_LEN {
                *buf = Vec::new();
            }
        }
    }
}

/// Entries and chains
impl PackFile {
    pub(super) fn verify_id(
        &self,
        id: &oid,
        offset: u64,
        kind: gix_object::Kind,
        body: &[u8],
    ) -> Result<(), Error> {
        let actual = hash::object_id(kind, body);
        if actual != id {
            return Err(Error::IdMismatch {
                path: self.path.clone(),
                offset,
                id: id.to_owned(),
                actual,
            });
        }
        Ok(())
    }

    /// Where entries end and the trailer begins.
    pub(super) fn data_end(&self) -> u64 {
        self.len - HASH_LEN as u64
    }

    fn corrupt(&self, offset: u64, reason: &'static str) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            offset,
            reason,
        }
    }

    pub(super) fn read_at(
        &mut self,
        offset: u64,
        out: &mut Vec<u8>,
        cache: &mut DeltaBaseCache,
    ) -> Result<gix_object::Kind, Error> {
        let entry = self.entry_at(offset)?;
        if let Source::Whole(kind) = entry.source {
            self.inflate(offset, entry, self.options.max_object_size, out)?;
            // The next delta read in pack order is likely to need it as its base.
            cache.insert(&self.checksum, offset, kind, out);
            return Ok(kind);
        }
        if let Some((kind, data)) = cache.get(&self.checksum, offset) {
            out.clear();
            out.extend_from_slice(data);
            return Ok(kind);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.resolve(offset, entry, out, cache, &mut scratch);
        scratch.trim();
        self.scratch = scratch;
        result
    }

    /// Parse the header of the entry at `offset`.
    pub(super) fn entry_at(&mut self, offset: u64) -> Result<Entry, Error> {
        let data_end = self.data_end();
        if offset < PACK_HEADER_LEN as u64 || offset >= data_end {
            return Err(self.corrupt(offset, "entry offset is outside the pack data"));
        }
        let bytes = self
            .windows
            .slice(&self.file, data_end, offset, ENTRY_PREFIX_LEN)
            .map_err(io_err(&self.path))?;
        let parsed = decode_entry_header(bytes).and_then(|(kind, size, header_len)| {
            let rest = bytes.get(header_len..).unwrap_or_default();
            let (source, extra) = match kind {
                EntryKind::Base(kind) => (Ok(Source::Whole(kind)), 0),
                EntryKind::OfsDelta => {
                    let (distance, len) = decode_ofs_delta_distance(rest)?;
                    let base = offset
                        .checked_sub(distance)
                        .filter(|base| distance != 0 && *base >= PACK_HEADER_LEN as u64)
                        .map(Source::DeltaAt)
                        .ok_or("delta base offset is outside the pack data");
                    (base, len)
                }
                EntryKind::RefDelta => {
                    let id = ObjectId::from_bytes_or_panic(rest.get(..HASH_LEN)?);
                    (Ok(Source::DeltaOf(id)), HASH_LEN)
                }
            };
            Some((source, size, (header_len + extra) as u64))
        });
        let (source, size, prefix_len) =
            parsed.ok_or_else(|| self.corrupt(offset, "entry header is truncated or invalid"))?;
        let source = source.map_err(|reason| self.corrupt(offset, reason))?;
        Ok(Entry {
            source,
            size,
            data_at: offset + prefix_len,
        })
    }

    /// Resolve the delta chain starting with `entry` at `offset` into `out`.
    fn resolve(
        &mut self,
        offset: u64,
        entry: Entry,
        out: &mut Vec<u8>,
        cache: &mut DeltaBaseCache,
        scratch: &mut Scratch,
    ) -> Result<gix_object::Kind, Error> {
        let limit = self.options.max_object_size;
        scratch.chain.clear();
        let mut link = Link { offset, entry };
        let kind = loop {
            if scratch.chain.len() >= self.options.max_chain_len {
                return Err(Error::ChainTooLong {
                    path: self.path.clone(),
                    offset,
                    limit: self.options.max_chain_len,
                });
            }
            scratch.chain.push(link);
            let base_offset = match link.entry.source {
                Source::DeltaAt(base_offset) => base_offset,
                Source::DeltaOf(base) => match self.index.lookup(&base) {
                    Some(position) => self.index.offset_at(position),
                    None => {
                        return Err(Error::BaseOutsidePack {
                            path: self.path.clone(),
                            offset: link.offset,
                            base,
                        })
                    }
                },
                Source::Whole(_) => unreachable!("BUG: only deltas are pushed on the chain"),
            };
            if let Some((kind, data)) = cache.get(&self.checksum, base_offset) {
                scratch.base.clear();
                scratch.base.extend_from_slice(data);
                break kind;
            }
            let base = self.entry_at(base_offset)?;
            if let Source::Whole(kind) = base.source {
                self.inflate(base_offset, base, limit, &mut scratch.base)?;
                cache.insert(&self.checksum, base_offset, kind, &scratch.base);
                break kind;
            }
            link = Link {
                offset: base_offset,
                entry: base,
            };
        };
        // A delta's instructions are a little longer than its result at worst.
        let delta_limit = limit.saturating_mul(2).saturating_add(1024);
        while let Some(link) = scratch.chain.pop() {
            self.inflate(link.offset, link.entry, delta_limit, &mut scratch.delta)?;
            let last = scratch.chain.is_empty();
            let target = if last { &mut *out } else { &mut scratch.result };
            delta::apply(&scratch.base, &scratch.delta, limit, target).map_err(|source| {
                Error::Delta {
                    path: self.path.clone(),
                    offset: link.offset,
                    source,
                }
            })?;
            cache.insert(&self.checksum, link.offset, kind, target);
            if !last {
                std::mem::swap(&mut scratch.base, &mut scratch.result);
            }
        }
        Ok(kind)
    }

    /// Inflate the zlib stream of `entry` (at `offset`) into `out` (cleared first): exactly
    /// its declared size, which must not exceed `limit`.
    pub(super) fn inflate(
        &mut self,
        offset: u64,
        entry: Entry,
        limit: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let too_large = || Error::TooLarge {
            path: self.path.clone(),
            offset,
            size: entry.size,
            limit,
        };
        if entry.size > limit {
            return Err(too_large());
        }
        let size = usize::try_from(entry.size).map_err(|_| too_large())?;
        out.clear();
        out.try_reserve_exact(size.saturating_add(INFLATE_SLACK))
            .map_err(|_| too_large())?;
        let data_end = self.data_end();
        let Self {
            file,
            windows,
            inflater,
            whole,
            path,
            ..
        } = self;
        let corrupt = |reason| Error::Corrupt {
            path: path.clone(),
            offset,
            reason,
        };
        // gitmq's writer stores entries uncompressed: copy those out without zlib. Anything
        // else, including a broken stored stream, goes to zlib, which has the last word.
        let stored_len = stored::stream_len_of(size);
        if stored_len <= windows.max_want() {
            let input = windows
                .slice(file, data_end, entry.data_at, stored_len)
                .map_err(io_err(path))?;
            if let Ok(Some(stream)) = stored::parse(input, size, VERIFY_STORED_CHECKSUM) {
                stream.copy_to(out);
                return Ok(());
            }
        }
        // A small object (a commit, a delta) is decoded by hand when it can be, which skips
        // building zlib's tables; anything odd (and every error) is zlib's.
        if size <= HAND_DECODED_MAX {
            let want = (size + HAND_DECODED_ROOM).min(windows.max_want());
            let input = windows
                .slice(file, data_end, entry.data_at, want)
                .map_err(io_err(path))?;
            if whole.inflate(input, size, out).is_ok() {
                return Ok(());
            }
            out.clear();
        }
        // An entry too big for the windows is streamed through its own buffer.
        let mut direct = (size > windows.max_want()).then(Vec::new);
        inflater.reset(true);
        let mut at = entry.data_at;
        loop {
            let input: &[u8] = match direct.as_mut() {
                Some(chunk) => {
                    let len = usize::try_from(data_end.saturating_sub(at).min(DIRECT_CHUNK_LEN))
                        .expect("at most 1 MiB");
                    chunk.resize(len, 0);
                    file.read_exact_at(chunk, at).map_err(io_err(path))?;
                    chunk
                }
                None => windows.slice(file, data_end, at, 1).map_err(io_err(path))?,
            };
            if input.is_empty() {
                return Err(corrupt("zlib stream runs past the end of the pack data"));
            }
            let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
            let status = if out.len() < size {
                inflater.decompress_vec(input, out, FlushDecompress::None)
            } else {
                // Full: any further byte is one too many, but the stream must still end.
                let mut tail = [0u8; 1];
                inflater.decompress(input, &mut tail, FlushDecompress::None)
            }
            .map_err(|source| Error::Inflate {
                path: path.clone(),
                offset,
                source,
            })?;
            let consumed = inflater.total_in() - in_before;
            at += consumed;
            if inflater.total_out() > size as u64 {
                return Err(corrupt("zlib stream is longer than the declared size"));
            }
            match status {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError => {
                    if consumed == 0 && inflater.total_out() == out_before {
                        return Err(corrupt("zlib stream makes no progress"));
                    }
                }
            }
        }
        if out.len() != size {
            return Err(corrupt("zlib stream is shorter than the declared size"));
        }
        Ok(())
    }
}
