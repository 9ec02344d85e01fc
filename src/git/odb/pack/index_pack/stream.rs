//! The stream pass of [`super::index_pack()`]: read the pack once, copy it to the temporary
//! file, hash it, and record every entry (base objects get their ids here).
//!
//! Invariants: at most [`INPUT_BUF_LEN`] + [`OUTPUT_BUF_LEN`] bytes are buffered whatever the
//! pack says; every byte read is hashed into the pack checksum (except the trailer), written
//! to the file and, inside an entry, fed to its CRC-32, in one place ([`Input::consume()`]).

use std::{
    io::{BufWriter, Read, Write},
    path::PathBuf,
};

use flate2::{Decompress, FlushDecompress, Status};
use gix_hash::ObjectId;

use super::{io_err, Base, Entry, Error, Limits};
use crate::{
    git::fs::TempFile,
    git::hash::{Hasher, ID_LEN},
    git::odb::pack::format::{
        decode_entry_header, decode_ofs_delta_distance, read_u32, EntryKind, MAX_ENTRY_HEADER_LEN,
        PACK_HEADER_LEN, PACK_SIGNATURE, PACK_VERSION,
    },
};

/// Bytes read from the input at a time.
const INPUT_BUF_LEN: usize = 64 << 10;
/// Bytes inflated at a time.
const OUTPUT_BUF_LEN: usize = 64 << 10;
/// Entries reserved up front at most, whatever the header's count says.
const MAX_RESERVED_ENTRIES: usize = 1 << 16;
/// The longest OFS_DELTA distance varint that fits a u64.
const MAX_OFS_LEN: usize = 10;

/// What the stream pass produced.
pub(super) struct Streamed {
    /// The temporary pack file, complete with its trailer, open for reading.
    pub file: TempFile,
    /// Every entry, in pack order (so sorted by offset).
    pub entries: Vec<Entry>,
    /// The pack checksum (trailer).
    pub checksum: ObjectId,
    /// The pack's length in bytes.
    pub bytes: u64,
}

/// The incoming pack: a read buffer over the input, and what every consumed byte feeds.
struct Input<R> {
    reader: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Bytes consumed so far: the offset in the pack of the next byte.
    offset: u64,
    max_pack_size: u64,
    pack_hash: Hasher,
    crc: flate2::Crc,
    out: BufWriter<TempFile>,
    out_path: PathBuf,
}

impl<R: Read> Input<R> {
    /// Make sure unconsumed bytes are buffered; `false` at the end of the input.
    fn fill(&mut self) -> Result<bool, Error> {
        if self.pos < self.end {
            return Ok(true);
        }
        self.pos = 0;
        self.end = 0;
        loop {
            match self.reader.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end = n.min(self.buf.len());
                    return Ok(true);
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Read {
                        offset: self.offset,
                        source,
                    })
                }
            }
        }
    }

    fn fill_or_truncated(&mut self) -> Result<(), Error> {
        if self.fill()? {
            Ok(())
        } else {
            Err(Error::Truncated {
                offset: self.offset,
            })
        }
    }

    /// Account for the next `n` buffered bytes: hash, CRC, copy to the file.
    fn consume(&mut self, n: usize, hash: bool) -> Result<(), Error> {
        let end = self.pos.saturating_add(n).min(self.end);
        let bytes = self.buf.get(self.pos..end).unwrap_or_default();
        let len = bytes.len() as u64;
        self.offset = self.offset.saturating_add(len);
        if self.offset > self.max_pack_size {
            return Err(Error::PackTooLarge {
                limit: self.max_pack_size,
            });
        }
        if hash {
            self.pack_hash.update(bytes);
        }
        self.crc.update(bytes);
        self.out.write_all(bytes).map_err(io_err(&self.out_path))?;
        self.pos = end;
        Ok(())
    }

    /// Read exactly `out.len()` bytes.
    fn take(&mut self, out: &mut [u8], hash: bool) -> Result<(), Error> {
        let mut filled = 0;
        while filled < out.len() {
            self.fill_or_truncated()?;
            let available = self.buf.get(self.pos..self.end).unwrap_or_default();
            let n = available.len().min(out.len() - filled);
            if let (Some(dst), Some(src)) = (out.get_mut(filled..filled + n), available.get(..n)) {
                dst.copy_from_slice(src);
            }
            self.consume(n, hash)?;
            filled += n;
        }
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, Error> {
        let mut one = [0u8];
        self.take(&mut one, true)?;
        let [byte] = one;
        Ok(byte)
    }

    /// Read a varint whose bytes have the MSB set while more follow, at most `N` bytes.
    fn varint<const N: usize>(&mut self, entry: u64) -> Result<([u8; N], usize), Error> {
        let mut bytes = [0u8; N];
        for (len, slot) in bytes.iter_mut().enumerate() {
            *slot = self.byte()?;
            if *slot & 0x80 == 0 {
                return Ok((bytes, len + 1));
            }
        }
        Err(Error::BadEntry {
            offset: entry,
            reason: "overlong size or offset",
        })
    }

    /// Inflate one zlib stream of `size` bytes, handing the output to `sink`.
    fn inflate(
        &mut self,
        inflater: &mut Decompress,
        output: &mut [u8],
        entry: u64,
        size: u64,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), Error> {
        inflater.reset(true);
        loop {
            self.fill_or_truncated()?;
            let input = self.buf.get(self.pos..self.end).unwrap_or_default();
            let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
            let status = inflater
                .decompress(input, output, FlushDecompress::None)
                .map_err(|source| Error::Zlib {
                    offset: entry,
                    source,
                })?;
            let consumed = usize::try_from(inflater.total_in() - in_before).unwrap_or(usize::MAX);
            let produced = usize::try_from(inflater.total_out() - out_before).unwrap_or(usize::MAX);
            if inflater.total_out() > size {
                return Err(Error::SizeMismatch {
                    offset: entry,
                    declared: size,
                    actual: inflater.total_out(),
                });
            }
            sink(output.get(..produced).unwrap_or_default());
            self.consume(consumed, true)?;
            match status {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError if consumed == 0 && produced == 0 => {
                    return Err(Error::BadEntry {
                        offset: entry,
                        reason: "zlib stream makes no progress",
                    })
                }
                Status::Ok | Status::BufError => {}
            }
        }
        if inflater.total_out() != size {
            return Err(Error::SizeMismatch {
                offset: entry,
                declared: size,
                actual: inflater.total_out(),
            });
        }
        Ok(())
    }
}

/// Read the whole pack from `reader` into `file` (a new temporary file).
pub(super) fn read_pack(
    reader: impl Read,
    file: TempFile,
    limits: &Limits,
) -> Result<Streamed, Error> {
    let tmp_pack = &file.path().to_owned();
    let mut input = Input {
        reader,
        buf: vec![0; INPUT_BUF_LEN],
        pos: 0,
        end: 0,
        offset: 0,
        max_pack_size: limits.max_pack_size,
        pack_hash: Hasher::new(),
        crc: flate2::Crc::new(),
        out: BufWriter::with_capacity(256 << 10, file),
        out_path: tmp_pack.to_owned(),
    };

    let mut header = [0u8; PACK_HEADER_LEN];
    input.take(&mut header, true)?;
    if header.get(..4) != Some(&PACK_SIGNATURE[..]) {
        return Err(Error::BadHeader {
            reason: "it does not start with PACK",
        });
    }
    // Version 2 only: git writes nothing else, and gitmq's reader reads nothing else.
    if read_u32(&header, 4) != Some(PACK_VERSION) {
        return Err(Error::BadHeader {
            reason: "its version is not 2",
        });
    }
    let count = read_u32(&header, 8).unwrap_or_default();
    if count > limits.max_objects {
        return Err(Error::TooManyObjects {
            count,
            limit: limits.max_objects,
        });
    }

    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let mut entries = Vec::with_capacity(count.min(MAX_RESERVED_ENTRIES));
    let mut inflater = Decompress::new(true);
    let mut output = vec![0u8; OUTPUT_BUF_LEN];
    for _ in 0..count {
        entries.push(read_entry(&mut input, &mut inflater, &mut output, limits)?);
    }

    let checksum = input.pack_hash.clone().finalize();
    let mut trailer = [0u8; ID_LEN];
    input.take(&mut trailer, false)?;
    let trailer = ObjectId::Sha1(trailer);
    if trailer != checksum {
        return Err(Error::ChecksumMismatch {
            trailer,
            actual: checksum,
        });
    }
    if input.fill()? {
        return Err(Error::TrailingData {
            offset: input.offset,
        });
    }
    let bytes = input.offset;
    let file = input
        .out
        .into_inner()
        .map_err(|err| io_err(tmp_pack)(err.into_error()))?;
    Ok(Streamed {
        file,
        entries,
        checksum,
        bytes,
    })
}

fn read_entry<R: Read>(
    input: &mut Input<R>,
    inflater: &mut Decompress,
    output: &mut [u8],
    limits: &Limits,
) -> Result<Entry, Error> {
    let offset = input.offset;
    input.crc = flate2::Crc::new();
    let (header, len) = input.varint::<MAX_ENTRY_HEADER_LEN>(offset)?;
    let (kind, size, _) =
        decode_entry_header(header.get(..len).unwrap_or_default()).ok_or(Error::BadEntry {
            offset,
            reason: "bad type or size",
        })?;
    if size > limits.max_object_size {
        return Err(Error::ObjectTooLarge {
            offset,
            size,
            limit: limits.max_object_size,
        });
    }
    let (base, object_kind) = match kind {
        EntryKind::Base(kind) => (Base::None, Some(kind)),
        EntryKind::OfsDelta => {
            let (bytes, len) = input.varint::<MAX_OFS_LEN>(offset)?;
            let (distance, _) = decode_ofs_delta_distance(bytes.get(..len).unwrap_or_default())
                .ok_or(Error::BadEntry {
                    offset,
                    reason: "bad delta base distance",
                })?;
            let base = offset
                .checked_sub(distance)
                .filter(|_| distance > 0)
                .filter(|&base| base >= PACK_HEADER_LEN as u64)
                .ok_or(Error::BadEntry {
                    offset,
                    reason: "delta base lies outside the pack",
                })?;
            (Base::Offset(base), None)
        }
        EntryKind::RefDelta => {
            let mut id = [0u8; ID_LEN];
            input.take(&mut id, true)?;
            (Base::Id(ObjectId::Sha1(id)), None)
        }
    };
    let data_offset = input.offset;
    let id = if let Some(kind) = object_kind {
        let mut hasher = Hasher::for_object(
            kind,
            usize::try_from(size).map_err(|_| Error::ObjectTooLarge {
                offset,
                size,
                limit: limits.max_object_size,
            })?,
        );
        input.inflate(inflater, output, offset, size, |bytes| hasher.update(bytes))?;
        Some(hasher.finalize())
    } else {
        input.inflate(inflater, output, offset, size, |_| {})?;
        None
    };
    Ok(Entry {
        offset,
        data_offset,
        end: input.offset,
        size,
        crc32: input.crc.sum(),
        base,
        kind: object_kind,
        id,
    })
}
