//! Owns decoding zlib streams made only of *stored* (uncompressed) deflate blocks: the fast
//! path for what gitmq's pack writer (and git with `core.compression=0`) writes. Such a stream
//! is copied out, or borrowed, instead of being run through an inflater.
//!
//! Byte layout ([RFC 1950](https://www.rfc-editor.org/rfc/rfc1950) zlib around
//! [RFC 1951](https://www.rfc-editor.org/rfc/rfc1951) section 3.2.4 stored blocks):
//!
//! ```text
//! offset 0   CMF: 0x78 (CM = 8 deflate, CINFO <= 7)        ZLIB_CM_DEFLATE
//! offset 1   FLG: FDICT clear, (CMF * 256 + FLG) % 31 == 0  (gitmq writes 0x01)
//! then, per block, byte aligned:
//!   +0       block header: bit 0 BFINAL, bits 1-2 BTYPE = 00 (stored), bits 3-7 zero
//!   +1       LEN, u16 little-endian: data bytes in the block (at most 65,535)
//!   +3       NLEN, u16 little-endian: !LEN
//!   +5       LEN data bytes
//! after the block with BFINAL set: Adler-32 of all data, u32 big-endian
//! ```
//!
//! Invariants: [`parse()`] reads only inside the slice it is given and never allocates; it
//! answers `Ok(None)` for anything that is not purely stored blocks (a compressed block, a
//! preset dictionary, non-zero padding bits), so the caller inflates those with zlib; it
//! answers an error for a stream that is stored blocks but broken (LEN/NLEN disagree, it ends
//! early, its data is not the expected length, its Adler-32 is wrong). A caller that falls
//! back to zlib on any answer but `Ok(Some)` can never read less than zlib would. The stored
//! stream's block headers are each one whole byte because a stored block's data ends on a
//! byte boundary, and the stream starts on one.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::ops::Range;

/// The compression method nibble of a zlib CMF byte: deflate.
const ZLIB_CM_DEFLATE: u8 = 8;
/// The largest window size exponent allowed in CMF (`CINFO`, 2^(8+7) = 32 KiB).
const ZLIB_MAX_CINFO: u8 = 7;
/// FLG bit: a preset dictionary id follows the header (never in git objects).
const ZLIB_FDICT: u8 = 0x20;
/// Bytes of the zlib header (CMF, FLG).
pub const ZLIB_HEADER_LEN: usize = 2;
/// Bytes of a stored block's header: type byte, LEN, NLEN.
pub const STORED_BLOCK_HEADER_LEN: usize = 1 + 2 + 2;
/// The most data one stored block holds.
pub const MAX_STORED_BLOCK_LEN: usize = u16::MAX as usize;
/// Bytes of the Adler-32 trailer.
pub const ADLER_LEN: usize = 4;
/// BFINAL: this is the last block.
const BFINAL: u8 = 0x01;

/// Returned by [`parse()`] for a stream of stored blocks that is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A block's NLEN is not the complement of its LEN.
    #[error("stored block at stream offset {at} has LEN {len:#06x} and NLEN {nlen:#06x}, which do not match")]
    LengthMismatch {
        /// Where the block header starts in the stream.
        at: usize,
        /// LEN.
        len: u16,
        /// NLEN.
        nlen: u16,
    },
    /// The stream ends inside a block or before its Adler-32.
    #[error("stored stream is truncated at offset {at}")]
    Truncated {
        /// How far the stream was read.
        at: usize,
    },
    /// The blocks hold more or fewer bytes than expected.
    #[error("stored stream holds {actual} bytes, {expected} were expected")]
    SizeMismatch {
        /// What the caller declared (an object's size).
        expected: usize,
        /// What the blocks hold, or at least hold (counting stops past `expected`).
        actual: usize,
    },
    /// The Adler-32 trailer does not match the data.
    #[error("stored stream has Adler-32 {stored:#010x}, its data sums to {actual:#010x}")]
    ChecksumMismatch {
        /// The trailer.
        stored: u32,
        /// The checksum of the data.
        actual: u32,
    },
}

/// A zlib stream of stored blocks, validated by [`parse()`]: its data are the blocks' data
/// in order.
#[derive(Debug, Clone)]
pub struct StoredStream<'a> {
    stream: &'a [u8],
    /// The bytes of the whole zlib stream (header to Adler-32).
    len: usize,
    /// The data of the only block, when there is exactly one (the common case).
    single: Option<Range<usize>>,
    data_len: usize,
}

/// Parse the start of `stream` as a zlib stream of stored blocks holding exactly `expected`
/// bytes, and check its Adler-32 when `verify_checksum`. Bytes after the stream (the next
/// pack entry) are ignored.
///
/// `Ok(None)`: not purely stored blocks; inflate it with zlib.
///
/// ```
/// use gitmq::git::odb::stored;
/// // "hi" as one final stored block: header, block, Adler-32.
/// let stream = [0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, b'h', b'i', 0x01, 0x3b, 0x00, 0xd2];
/// let parsed = stored::parse(&stream, 2, true).unwrap().expect("stored");
/// assert_eq!(parsed.single(), Some(&b"hi"[..]));
/// assert_eq!(parsed.stream_len(), stream.len());
/// // A deflated stream is left to zlib.
/// assert!(stored::parse(&[0x78, 0x9c, 0xcb, 0xc8, 0x04, 0x00], 2, true).unwrap().is_none());
/// ```
pub fn parse(
    stream: &[u8],
    expected: usize,
    verify_checksum: bool,
) -> Result<Option<StoredStream<'_>>, Error> {
    if !zlib_header_ok(stream) {
        return Ok(None);
    }
    let mut at = ZLIB_HEADER_LEN;
    let mut data_len = 0usize;
    let mut first_block: Option<Range<usize>> = None;
    let mut blocks = 0usize;
    loop {
        let Some(&block_type) = stream.get(at) else {
            return if blocks == 0 {
                Ok(None)
            } else {
                Err(Error::Truncated { at })
            };
        };
        if block_type & !BFINAL != 0 {
            // A compressed block, or stored with padding bits set: zlib's business.
            return Ok(None);
        }
        let header: [u8; STORED_BLOCK_HEADER_LEN] = stream
            .get(at..at + STORED_BLOCK_HEADER_LEN)
            .and_then(|header| header.try_into().ok())
            .ok_or(Error::Truncated { at })?;
        let len = deflate_u16(header[1], header[2]);
        let nlen = deflate_u16(header[3], header[4]);
        if len != !nlen {
            return Err(Error::LengthMismatch { at, len, nlen });
        }
        let data_start = at + STORED_BLOCK_HEADER_LEN;
        let data_end = data_start + usize::from(len);
        if data_end > stream.len() {
            return Err(Error::Truncated { at: stream.len() });
        }
        data_len = data_len
            .checked_add(usize::from(len))
            .filter(|total| *total <= expected)
            .ok_or(Error::SizeMismatch {
                expected,
                actual: data_len.saturating_add(usize::from(len)),
            })?;
        if blocks == 0 {
            first_block = Some(data_start..data_end);
        }
        blocks += 1;
        at = data_end;
        if block_type & BFINAL != 0 {
            break;
        }
    }
    if data_len != expected {
        return Err(Error::SizeMismatch {
            expected,
            actual: data_len,
        });
    }
    let trailer: [u8; ADLER_LEN] = stream
        .get(at..at + ADLER_LEN)
        .and_then(|trailer| trailer.try_into().ok())
        .ok_or(Error::Truncated { at: stream.len() })?;
    let stored = u32::from_be_bytes(trailer);
    let parsed = StoredStream {
        stream,
        len: at + ADLER_LEN,
        single: if blocks == 1 { first_block } else { None },
        data_len,
    };
    if verify_checksum {
        let actual = parsed.blocks().fold(1, zlib_rs::adler32::adler32);
        if actual != stored {
            return Err(Error::ChecksumMismatch { stored, actual });
        }
    }
    Ok(Some(parsed))
}

/// Access
impl<'a> StoredStream<'a> {
    /// The bytes of the zlib stream, from its header to its Adler-32 included.
    pub fn stream_len(&self) -> usize {
        self.len
    }

    /// The number of data bytes.
    pub fn data_len(&self) -> usize {
        self.data_len
    }

    /// The data, borrowed, when the stream has exactly one block.
    pub fn single(&self) -> Option<&'a [u8]> {
        let range = self.single.clone()?;
        self.stream.get(range)
    }

    /// Where the data of the only block lies in the stream, when there is exactly one.
    pub fn single_range(&self) -> Option<Range<usize>> {
        self.single.clone()
    }

    /// Each block's data, in order.
    pub fn blocks(&self) -> Blocks<'a> {
        Blocks {
            stream: self.stream.get(..self.len).unwrap_or_default(),
            at: ZLIB_HEADER_LEN,
        }
    }

    /// Append the data to `out`.
    pub fn copy_to(&self, out: &mut Vec<u8>) {
        self.copy_from_to(0, out);
    }

    /// Append the data after its first `skip` bytes to `out`.
    pub fn copy_from_to(&self, skip: usize, out: &mut Vec<u8>) {
        out.reserve(self.data_len.saturating_sub(skip));
        let mut skip = skip;
        for block in self.blocks() {
            let rest = block.get(skip..).unwrap_or_default();
            skip = skip.saturating_sub(block.len());
            out.extend_from_slice(rest);
        }
    }
}

/// The data of the first block of `stream`, if it starts with a zlib header and a stored
/// block that lies whole inside it: enough to read a loose object's header before knowing
/// its size. Nothing is validated past that block.
pub fn first_block(stream: &[u8]) -> Option<&[u8]> {
    let header_ok = zlib_header_ok(stream);
    let header: [u8; STORED_BLOCK_HEADER_LEN] = stream
        .get(ZLIB_HEADER_LEN..ZLIB_HEADER_LEN + STORED_BLOCK_HEADER_LEN)?
        .try_into()
        .ok()?;
    let len = deflate_u16(header[1], header[2]);
    let nlen = deflate_u16(header[3], header[4]);
    if !header_ok || header[0] & !BFINAL != 0 || len != !nlen {
        return None;
    }
    let start = ZLIB_HEADER_LEN + STORED_BLOCK_HEADER_LEN;
    stream.get(start..start + usize::from(len))
}

/// The data of each block of a [`StoredStream`]. Returned by [`StoredStream::blocks()`].
#[derive(Debug, Clone)]
pub struct Blocks<'a> {
    /// The validated stream, up to its Adler-32 included.
    stream: &'a [u8],
    /// The next block header.
    at: usize,
}

impl<'a> Iterator for Blocks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // Validated by parse(): headers are in bounds until the trailer.
        let header = self
            .stream
            .get(self.at..self.at + STORED_BLOCK_HEADER_LEN)?;
        let len = usize::from(deflate_u16(*header.get(1)?, *header.get(2)?));
        let start = self.at + STORED_BLOCK_HEADER_LEN;
        let data = self.stream.get(start..start + len)?;
        self.at = if header.first()? & BFINAL != 0 {
            self.stream.len()
        } else {
            start + len
        };
        Some(data)
    }
}

/// A deflate `u16`: deflate stores LEN and NLEN least significant byte first (the one
/// little-endian field in git's formats; `little_endian_bytes` is denied crate-wide).
fn deflate_u16(low: u8, high: u8) -> u16 {
    u16::from_be_bytes([high, low])
}

/// Whether `stream` starts with a zlib header for deflate without a preset dictionary.
fn zlib_header_ok(stream: &[u8]) -> bool {
    let (Some(&cmf), Some(&flg)) = (stream.first(), stream.get(1)) else {
        return false;
    };
    cmf & 0x0f == ZLIB_CM_DEFLATE
        && cmf >> 4 <= ZLIB_MAX_CINFO
        && flg & ZLIB_FDICT == 0
        && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
}

/// The length of the zlib stream gitmq's writer makes for `size` bytes: the header, one
/// block per 65,535 bytes (one empty block for none), the data and the Adler-32. Other
/// writers may cut blocks smaller; this is what a reader asks for first.
pub fn stream_len_of(size: usize) -> usize {
    let blocks = size.div_ceil(MAX_STORED_BLOCK_LEN).max(1);
    ZLIB_HEADER_LEN
        .saturating_add(blocks.saturating_mul(STORED_BLOCK_HEADER_LEN))
        .saturating_add(size)
        .saturating_add(ADLER_LEN)
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "fixtures build small values on purpose"
)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::git::odb::pack::write::append_zlib_stored;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(stream)
            .read_to_end(&mut out)
            .expect("valid zlib");
        out
    }

    #[test]
    fn what_the_writer_stores_parses_back_for_every_size_class() {
        for len in [0, 1, 65_535, 65_536, 200_000] {
            let data = data(len);
            let mut stream = Vec::new();
            append_zlib_stored(&mut stream, &data);
            assert_eq!(inflate(&stream), data, "the writer makes valid zlib");
            assert_eq!(stream.len(), stream_len_of(len), "predicted length, {len}");
            stream.extend_from_slice(b"next entry");
            let parsed = parse(&stream, len, true).unwrap().expect("stored");
            assert_eq!(parsed.stream_len(), stream_len_of(len));
            assert_eq!(parsed.data_len(), len);
            let mut out = vec![9];
            parsed.copy_to(&mut out);
            assert_eq!(&out[1..], &data[..], "copy appends, {len}");
            let blocks = parsed.blocks().count();
            assert_eq!(blocks, len.div_ceil(MAX_STORED_BLOCK_LEN).max(1));
            assert_eq!(parsed.single().is_some(), blocks == 1);
            if let Some(single) = parsed.single() {
                assert_eq!(single, &data[..]);
            }
        }
    }

    #[test]
    fn zlib_level_0_streams_parse_too() {
        let data = data(150_000);
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::none());
        enc.write_all(&data).unwrap();
        let stream = enc.finish().unwrap();
        let parsed = parse(&stream, data.len(), true).unwrap().expect("stored");
        let mut out = Vec::new();
        parsed.copy_to(&mut out);
        assert_eq!(out, data);
        assert_eq!(parsed.stream_len(), stream.len());
    }

    #[test]
    fn compressed_streams_are_left_to_zlib() {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"hello hello hello").unwrap();
        let stream = enc.finish().unwrap();
        assert_eq!(parse(&stream, 17, true).unwrap().map(|s| s.len), None);
        for not_zlib in [
            &b""[..],
            b"x",
            b"\x78",
            b"\x78\x02",
            b"\x79\x01\x01",
            b"\x78\x20",
        ] {
            assert!(parse(not_zlib, 0, true).unwrap().is_none(), "{not_zlib:?}");
        }
        // Stored, but padding bits set in the block header: zlib accepts it, we defer.
        let mut stream = Vec::new();
        append_zlib_stored(&mut stream, b"abc");
        stream[2] |= 0x80;
        assert!(parse(&stream, 3, true).unwrap().is_none());
    }

    #[test]
    fn broken_stored_streams_are_errors_not_panics() {
        let mut good = Vec::new();
        append_zlib_stored(&mut good, b"abcdef");
        let mut nlen = good.clone();
        nlen[5] ^= 1;
        assert!(matches!(
            parse(&nlen, 6, true),
            Err(Error::LengthMismatch { at: 2, .. })
        ));
        for cut in 3..good.len() {
            assert!(
                matches!(parse(&good[..cut], 6, true), Err(Error::Truncated { .. })),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            parse(&good, 5, true),
            Err(Error::SizeMismatch { expected: 5, .. })
        ));
        assert!(matches!(
            parse(&good, 7, true),
            Err(Error::SizeMismatch {
                expected: 7,
                actual: 6
            })
        ));
        let mut sum = good.clone();
        *sum.last_mut().unwrap() ^= 1;
        assert!(matches!(
            parse(&sum, 6, true),
            Err(Error::ChecksumMismatch { .. })
        ));
        assert!(parse(&sum, 6, false).unwrap().is_some(), "unchecked");
        // A non-final block with nothing after it.
        let mut open = good.clone();
        open[2] = 0;
        open.truncate(2 + 5 + 6);
        assert!(matches!(
            parse(&open, 6, true),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::test_support::TestRng::new(0x2545_f491_4f6c_dd1d_u64);
        let mut next = move || rng.next_u64();
        let mut good = Vec::new();
        append_zlib_stored(&mut good, &data(300));
        for _ in 0..20_000 {
            let mut stream = good.clone();
            for _ in 0..(next() % 4) {
                let at = (next() % stream.len() as u64) as usize;
                stream[at] = next() as u8;
            }
            let cut = (next() % (stream.len() as u64 + 1)) as usize;
            stream.truncate(cut);
            let expected = (next() % 400) as usize;
            if let Ok(Some(parsed)) = parse(&stream, expected, true) {
                let mut out = Vec::new();
                parsed.copy_to(&mut out);
                assert_eq!(out.len(), expected);
                assert_eq!(
                    inflate(&stream[..parsed.stream_len()]),
                    out,
                    "agrees with zlib"
                );
            }
        }
    }
}
