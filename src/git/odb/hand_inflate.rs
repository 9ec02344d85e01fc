//! Owns inflating zlib streams by hand where zlib's set-up costs more than the data: the
//! walk's prefix read of a compressed commit (its `tree` and first `parent` lines,
//! [`FIRST_PARENT_PREFIX_LEN`] bytes, [`PrefixDecoder`]), and delivery's read of a whole
//! small object, a commit as `git fast-import` or a fetch wrote it ([`WholeDecoder`]). A zlib
//! inflater builds its whole lookup tables before the first symbol (zlib-rs's
//! `inflate_table`: 39% of a consume of a `git fast-import` pack, when the walk used it; 24%
//! when only delivery did), for streams of a few hundred symbols.
//!
//! Formats: [RFC 1950](https://www.rfc-editor.org/rfc/rfc1950) (the zlib header, CMF and FLG)
//! around [RFC 1951](https://www.rfc-editor.org/rfc/rfc1951) deflate blocks, all three kinds:
//! stored, fixed Huffman and dynamic Huffman, with back-references (a distance only into the
//! output so far: this reads from the stream's start, so there is no earlier window). Huffman
//! codes are canonical, so a code is found from the count of codes of each length and the
//! symbols sorted by length, as zlib's `contrib/puff/puff.c` does (one compare per length on
//! 15 peeked bits here, not one bit at a time); codes of up to 6 bits (literals) or 7 (code
//! lengths) are looked up in a small first-level table first. A dynamic header's lengths go
//! straight into a list of the used symbols, so building costs a pass over those (about 80 of
//! 316 in a commit) and a 64-entry table, where zlib fills a 512-entry table and sub-tables
//! for the literals and a 64-entry one for distances before the first symbol. The caller
//! keeps a [`PrefixDecoder`] (as it keeps its `flate2::Decompress`), so nothing is zeroed
//! per stream. Used by `PackFile::inflate_prefix` (the walk's `object_prefix_at`). The
//! [`WholeDecoder`] has a 256-entry literal table and a 32-entry distance table (a whole
//! commit holds a few hundred symbols and a dozen matches; 256 beat 512 and 1024), grows its
//! tables by doubling (each entry written about twice, by a copy), keeps its bit reader in
//! registers through the symbol loop, copies matches eight bytes at a time, and checks the
//! Adler-32 (zlib-rs's, SIMD). Used by `PackFile::inflate` for objects of up to 4 KiB.
//!
//! Invariants:
//! - [`inflate_prefix()`] reads only inside the slice it is given, never panics, ends (every
//!   step consumes input or writes output, and it stops at `want` bytes), and writes at most
//!   `want` bytes into `out`: nothing else is allocated.
//! - It answers [`FallBack`] for anything it does not decode exactly as zlib would or finds
//!   odd: a header zlib refuses or with a preset dictionary, input ending before `want` bytes,
//!   an over-subscribed or incomplete code set (zlib's deflate writes only complete ones), a
//!   missing end-of-block code, an invalid symbol, a distance past the output so far, a
//!   stored block whose LEN and NLEN disagree. The caller then inflates with zlib, which gives
//!   the data or its own error: this decoder can never make a valid stream unreadable, and a
//!   corrupt one still gets zlib's error.
//! - Nothing past the bytes decoded is checked, and not the Adler-32 (a prefix cannot be):
//!   the walk that uses this reads the whole object again before delivering it.
//! - [`WholeDecoder::inflate()`] answers only with exactly the declared size, the stream
//!   ended (its last block's end code) and its Adler-32 equal to the data's: what zlib (and
//!   `PackFile::inflate` after it) demands. Everything above holds for it too; it writes at
//!   most the declared size plus eight bytes of copy room into `out`.
//!
//! Measured (criterion, `cargo bench --bench hand_inflate`: the first 94 bytes of 1,000
//! commits laid out as `git fast-import` writes messages, 348 bytes each, deflated at zlib's
//! default level 6 to 234, one dynamic block each; 2 shared cores at load 4): 1.78 us per
//! commit here against 3.25 us for flate2/zlib-rs's `Decompress` reset and run to 94 bytes
//! (it inflates the whole commit: 3.82 us), 1.8x (1.4x-2.3x over runs). Table sizes were
//! chosen by the same bench: 64 literal entries beat 32, 128 (1.4x slower) and 256. End to
//! end, consuming a 200k-message fast-import pack (`gitmq consume --no-commit`) took 1.04-1.24 s
//! of user CPU against 1.35-1.59 s with zlib in the walk (`git log`: 1.29-1.46 s).
//! Whole commits (same bench, group `whole commit`, three runs at load 1.3-1.7): 2.24-2.95
//! us against zlib-rs's 2.98-3.76 us, 1.06x-1.33x; end to end it is the CPU of delivery on
//! a `git fast-import` pack, see `queue::consume::read_ahead`.
//!
//! [`FIRST_PARENT_PREFIX_LEN`]: crate::git::message::parent::FIRST_PARENT_PREFIX_LEN

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]
// Every `as` narrowing here is of a value already masked or bounded to the target's width
// (bit fields of at most 16 bits, symbols below 288, code lengths below 16).
#![allow(clippy::cast_possible_truncation)]

use std::sync::OnceLock;

/// Returned by [`inflate_prefix()`] for a stream it leaves to zlib (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallBack;

/// The compression method nibble of a zlib CMF byte: deflate.
const ZLIB_CM_DEFLATE: u8 = 8;
/// The largest window size exponent allowed in CMF (`CINFO`, 2^(8+7) = 32 KiB).
const ZLIB_MAX_CINFO: u8 = 7;
/// FLG bit: a preset dictionary id follows the header (never in git objects).
const ZLIB_FDICT: u8 = 0x20;
/// Bytes of the zlib header (CMF, FLG).
const ZLIB_HEADER_LEN: usize = 2;

/// The longest Huffman code deflate allows.
const MAX_BITS: usize = 15;
/// Literal/length symbols a dynamic block may code (zlib refuses more than 286).
const MAX_LIT_CODES: usize = 286;
/// Distance symbols a dynamic block may code (zlib refuses more than 30).
const MAX_DIST_CODES: usize = 30;
/// Symbols of the fixed literal/length code (286 and 287 are coded but invalid).
const FIXED_LIT_CODES: usize = 288;
/// Symbols of the fixed distance code (30 and 31 are coded but invalid).
const FIXED_DIST_CODES: usize = 32;
/// Symbols of the code-length code.
const CODE_LEN_CODES: usize = 19;
/// The order in which a dynamic block header lists the code-length code's lengths.
const CODE_LEN_ORDER: [usize; CODE_LEN_CODES] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];
/// The end-of-block literal/length symbol.
const END_OF_BLOCK: u16 = 256;

/// Base length and extra bits of length symbols 257..=285.
const LENGTHS: [(u16, u8); 29] = [
    (3, 0),
    (4, 0),
    (5, 0),
    (6, 0),
    (7, 0),
    (8, 0),
    (9, 0),
    (10, 0),
    (11, 1),
    (13, 1),
    (15, 1),
    (17, 1),
    (19, 2),
    (23, 2),
    (27, 2),
    (31, 2),
    (35, 3),
    (43, 3),
    (51, 3),
    (59, 3),
    (67, 4),
    (83, 4),
    (99, 4),
    (115, 4),
    (131, 5),
    (163, 5),
    (195, 5),
    (227, 5),
    (258, 0),
];
/// Base distance and extra bits of distance symbols 0..=29.
const DISTANCES: [(u16, u8); 30] = [
    (1, 0),
    (2, 0),
    (3, 0),
    (4, 0),
    (5, 1),
    (7, 1),
    (9, 2),
    (13, 2),
    (17, 3),
    (25, 3),
    (33, 4),
    (49, 4),
    (65, 5),
    (97, 5),
    (129, 6),
    (193, 6),
    (257, 7),
    (385, 7),
    (513, 8),
    (769, 8),
    (1025, 9),
    (1537, 9),
    (2049, 10),
    (3073, 10),
    (4097, 11),
    (6145, 11),
    (8193, 12),
    (12289, 12),
    (16385, 13),
    (24577, 13),
];

/// Decode the first `want` bytes of the zlib stream at the start of `stream` into `out`
/// (cleared first): afterwards `out` holds exactly `min(want, n)` bytes, `n` being all the
/// stream's data (it holds fewer than `want` only when the stream ended). [`FallBack`] for
/// anything to leave to zlib (see the module docs); `out` then holds no promise.
///
/// ```
/// use gitmq::git::odb::hand_inflate::inflate_prefix;
/// use std::io::Write;
///
/// let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
/// zlib.write_all(b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor ...").unwrap();
/// let stream = zlib.finish().unwrap();
/// let mut out = Vec::new();
/// inflate_prefix(&stream, 4, &mut out).unwrap();
/// assert_eq!(out, b"tree");
/// ```
pub fn inflate_prefix(stream: &[u8], want: usize, out: &mut Vec<u8>) -> Result<(), FallBack> {
    PrefixDecoder::new().inflate_prefix(stream, want, out)
}

/// The tables [`inflate_prefix()`] builds, kept by a caller that decodes many streams so that
/// they are not allocated and zeroed for each (as `flate2::Decompress` is kept and reset).
#[derive(Debug, Clone)]
pub struct PrefixDecoder {
    lit: LitCode,
    dist: DistCode,
    header: HeaderScratch,
}

impl Default for PrefixDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl PrefixDecoder {
    /// A decoder (about 3 KiB, no heap of its own).
    pub fn new() -> Self {
        Self {
            lit: LitCode::new(),
            dist: DistCode::new(),
            header: HeaderScratch::new(),
        }
    }

    /// [`inflate_prefix()`] with this decoder's tables.
    pub fn inflate_prefix(
        &mut self,
        stream: &[u8],
        want: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), FallBack> {
        out.clear();
        let (header, body) = stream.split_at_checked(ZLIB_HEADER_LEN).ok_or(FallBack)?;
        let &[cmf, flg] = header else {
            return Err(FallBack);
        };
        if cmf & 0x0f != ZLIB_CM_DEFLATE
            || cmf >> 4 > ZLIB_MAX_CINFO
            || (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0
            || flg & ZLIB_FDICT != 0
        {
            return Err(FallBack);
        }
        let mut bits = Bits::new(body);
        while out.len() < want {
            let last = bits.take(1)? == 1;
            match bits.take(2)? {
                0 => stored(&mut bits, want, out)?,
                1 => {
                    let (lit, dist) = fixed_codes();
                    codes_block(&mut bits, lit, dist, want, out)?;
                }
                2 => {
                    self.header.read(&mut bits, &mut self.lit, &mut self.dist)?;
                    codes_block(&mut bits, &self.lit, &self.dist, want, out)?;
                }
                _ => return Err(FallBack),
            }
            if last {
                break;
            }
        }
        out.truncate(want);
        Ok(())
    }
}

/// Decodes whole zlib streams of small objects by hand (see the module docs): tables sized
/// for every symbol of an object rather than a prefix, kept by a caller that decodes many.
#[derive(Debug, Clone)]
pub struct WholeDecoder {
    lit: WholeLitCode,
    dist: WholeDistCode,
    header: HeaderScratch,
}

impl Default for WholeDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl WholeDecoder {
    /// A decoder (about 4 KiB, no heap of its own).
    pub fn new() -> Self {
        Self {
            lit: WholeLitCode::new(),
            dist: WholeDistCode::new(),
            header: HeaderScratch::new(),
        }
    }

    /// Decode the whole zlib stream at the start of `stream`, whose data must be exactly
    /// `size` bytes, into `out` (cleared first, then exactly those bytes), checking its
    /// Adler-32; the stream's length (header to Adler-32 included). [`FallBack`] for anything
    /// to leave to zlib, as [`inflate_prefix()`], and for data longer or shorter than `size`
    /// or a wrong Adler-32; `out` then holds no promise.
    ///
    /// ```
    /// use gitmq::git::odb::hand_inflate::WholeDecoder;
    /// use std::io::Write;
    ///
    /// let data = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor ...";
    /// let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    /// zlib.write_all(data).unwrap();
    /// let stream = zlib.finish().unwrap();
    /// let mut out = Vec::new();
    /// let len = WholeDecoder::new().inflate(&stream, data.len(), &mut out).unwrap();
    /// assert_eq!((out.as_slice(), len), (&data[..], stream.len()));
    /// ```
    pub fn inflate(
        &mut self,
        stream: &[u8],
        size: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize, FallBack> {
        out.clear();
        let body = zlib_body(stream)?;
        out.resize(size + COPY_CHUNK, 0);
        let mut written = 0;
        let mut bits = Bits::new(body);
        loop {
            let last = bits.take(1)? == 1;
            match bits.take(2)? {
                0 => {
                    bits.align();
                    let len = bits.take(16)?;
                    let nlen = bits.take(16)?;
                    if len != !nlen & 0xffff {
                        return Err(FallBack);
                    }
                    let end = written + len as usize;
                    if end > size {
                        return Err(FallBack);
                    }
                    out.get_mut(written..end)
                        .ok_or(FallBack)?
                        .copy_from_slice(bits.bytes(len as usize)?);
                    written = end;
                }
                1 => {
                    let (lit, dist) = fixed_codes();
                    written = codes_into(&mut bits, lit, dist, out, written, size)?;
                }
                2 => {
                    self.header.read(&mut bits, &mut self.lit, &mut self.dist)?;
                    written = codes_into(&mut bits, &self.lit, &self.dist, out, written, size)?;
                }
                _ => return Err(FallBack),
            }
            if last {
                break;
            }
        }
        if written != size {
            return Err(FallBack);
        }
        out.truncate(size);
        bits.align();
        let trailer = bits.bytes(ADLER_LEN)?;
        let adler = u32::from_be_bytes(trailer.try_into().map_err(|_| FallBack)?);
        if zlib_rs::adler32::adler32(1, out) != adler {
            return Err(FallBack);
        }
        Ok(ZLIB_HEADER_LEN + bits.at)
    }
}

/// Bytes a match copies at a time when it can (see `codes_into`).
const COPY_CHUNK: usize = 8;
/// Bytes of the Adler-32 after the last block.
const ADLER_LEN: usize = 4;

/// The deflate data after a zlib header this module decodes (see [`inflate_prefix()`]).
fn zlib_body(stream: &[u8]) -> Result<&[u8], FallBack> {
    let (header, body) = stream.split_at_checked(ZLIB_HEADER_LEN).ok_or(FallBack)?;
    let &[cmf, flg] = header else {
        return Err(FallBack);
    };
    if cmf & 0x0f != ZLIB_CM_DEFLATE
        || cmf >> 4 > ZLIB_MAX_CINFO
        || (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0
        || flg & ZLIB_FDICT != 0
    {
        return Err(FallBack);
    }
    Ok(body)
}

/// The codes of a Huffman block into `out` from `written` to the block's end: where its
/// data ends. [`FallBack`] for data past `size` (`out` has [`COPY_CHUNK`] bytes of room
/// past it, for copies). Not inlined: the loop gets the
/// registers to itself (inlined into its caller it kept its state on the stack).
#[inline(never)]
fn codes_into<const L: usize, const LT: usize, const D: usize, const DT: usize>(
    bits: &mut Bits<'_>,
    lit: &Huffman<L, LT>,
    dist: &Huffman<D, DT>,
    out: &mut [u8],
    written: usize,
    size: usize,
) -> Result<usize, FallBack> {
    // The loop works on a copy, which stays in registers (nothing it calls takes its
    // address), and hands it back.
    let (result, local) = codes_into_copy(*bits, lit, dist, out, written, size);
    *bits = local;
    result
}

#[inline(always)]
fn codes_into_copy<'a, const L: usize, const LT: usize, const D: usize, const DT: usize>(
    mut bits: Bits<'a>,
    lit: &Huffman<L, LT>,
    dist: &Huffman<D, DT>,
    out: &mut [u8],
    mut written: usize,
    size: usize,
) -> (Result<usize, FallBack>, Bits<'a>) {
    macro_rules! ok_or_fall_back {
        ($e:expr) => {
            match $e {
                Some(value) => value,
                None => return (Err(FallBack), bits),
            }
        };
    }
    macro_rules! or_fall_back {
        ($e:expr) => {
            match $e {
                Ok(value) => value,
                Err(FallBack) => return (Err(FallBack), bits),
            }
        };
    }
    loop {
        let symbol = or_fall_back!(lit.decode(&mut bits));
        if symbol < END_OF_BLOCK {
            if written == size {
                return (Err(FallBack), bits);
            }
            *ok_or_fall_back!(out.get_mut(written)) = symbol as u8;
            written += 1;
            continue;
        }
        if symbol == END_OF_BLOCK {
            return (Ok(written), bits);
        }
        let &(base, extra) = ok_or_fall_back!(LENGTHS.get(usize::from(symbol - 257)));
        let len = usize::from(base) + or_fall_back!(bits.take(u32::from(extra))) as usize;
        let symbol = or_fall_back!(dist.decode(&mut bits));
        let &(base, extra) = ok_or_fall_back!(DISTANCES.get(usize::from(symbol)));
        let distance = usize::from(base) + or_fall_back!(bits.take(u32::from(extra))) as usize;
        let start = ok_or_fall_back!(written.checked_sub(distance));
        let end = written + len;
        if end > size {
            return (Err(FallBack), bits);
        }
        if distance >= COPY_CHUNK {
            // Eight bytes at a time, the last chunk into the room past `size`: a chunk
            // reads only bytes written before it (the distance is at least a chunk), and
            // a library copy costs more than these few for a match of a few bytes.
            let (mut from, mut to) = (start, written);
            while to < end {
                let chunk: [u8; COPY_CHUNK] = ok_or_fall_back!(out
                    .get(from..from + COPY_CHUNK)
                    .and_then(|c| c.try_into().ok()));
                ok_or_fall_back!(out.get_mut(to..to + COPY_CHUNK)).copy_from_slice(&chunk);
                from += COPY_CHUNK;
                to += COPY_CHUNK;
            }
        } else {
            // Overlapping: each byte may be one this copy wrote.
            for at in start..start + len {
                let byte = *ok_or_fall_back!(out.get(at));
                *ok_or_fall_back!(out.get_mut(at + distance)) = byte;
            }
        }
        written = end;
    }
}

/// What reading a dynamic block's header needs besides the codes it builds: the code-length
/// code and the list of used symbols (kept with a decoder so nothing is zeroed per stream).
#[derive(Debug, Clone)]
struct HeaderScratch {
    code_len: CodeLenCode,
    /// A dynamic header's used symbols (code length not 0) and their lengths, in symbol
    /// order: literal/length symbols, then distance symbols (numbered after them).
    used: [(u16, u8); MAX_LIT_CODES + MAX_DIST_CODES],
}

impl HeaderScratch {
    fn new() -> Self {
        Self {
            code_len: CodeLenCode::new(),
            used: [(0, 0); MAX_LIT_CODES + MAX_DIST_CODES],
        }
    }

    /// The literal/length and distance codes of a dynamic block, read from its header.
    fn read<const LT: usize, const DT: usize>(
        &mut self,
        bits: &mut Bits<'_>,
        lit_code: &mut Huffman<MAX_LIT_CODES, LT>,
        dist_code: &mut Huffman<MAX_DIST_CODES, DT>,
    ) -> Result<(), FallBack> {
        let nlit = bits.take(5)? as usize + 257;
        let ndist = bits.take(5)? as usize + 1;
        let ncode = bits.take(4)? as usize + 4;
        if nlit > MAX_LIT_CODES || ndist > MAX_DIST_CODES {
            return Err(FallBack);
        }
        let mut code_lens = [0u8; CODE_LEN_CODES];
        for &symbol in CODE_LEN_ORDER.iter().take(ncode) {
            *code_lens.get_mut(symbol).ok_or(FallBack)? = bits.take(3)? as u8;
        }
        self.code_len.build(&code_lens)?;
        // The lengths are read into the list of used symbols and the count per length of
        // each code: unused symbols (most of the 286 in a small object) cost nothing more.
        let total = nlit + ndist;
        let mut lit_count = [0u16; MAX_BITS + 1];
        let mut dist_count = [0u16; MAX_BITS + 1];
        let mut used = 0;
        let mut previous = None;
        let mut at = 0;
        while at < total {
            let symbol = self.code_len.decode(bits)?;
            let (len, repeat) = match symbol {
                0..=15 => (symbol as u8, 1),
                16 => (previous.ok_or(FallBack)?, 3 + bits.take(2)? as usize),
                17 => (0, 3 + bits.take(3)? as usize),
                _ => (0, 11 + bits.take(7)? as usize),
            };
            let end = at + repeat;
            if end > total {
                return Err(FallBack);
            }
            if len != 0 {
                for symbol in at..end {
                    *self.used.get_mut(used).ok_or(FallBack)? = (symbol as u16, len);
                    used += 1;
                    let count = if symbol < nlit {
                        &mut lit_count
                    } else {
                        &mut dist_count
                    };
                    *count.get_mut(usize::from(len)).ok_or(FallBack)? += 1;
                }
            }
            previous = Some(len);
            at = end;
        }
        let lit_used = lit_count
            .iter()
            .skip(1)
            .map(|&n| usize::from(n))
            .sum::<usize>();
        let (lit, dist) = self
            .used
            .get(..used)
            .ok_or(FallBack)?
            .split_at_checked(lit_used)
            .ok_or(FallBack)?;
        if !lit.iter().any(|&(symbol, _)| symbol == END_OF_BLOCK) {
            return Err(FallBack);
        }
        lit_code.build_from(&lit_count, lit, 0)?;
        dist_code.build_from(&dist_count, dist, nlit as u16)
    }
}

/// A stored block: LEN, NLEN, then LEN bytes, from the next byte boundary.
fn stored(bits: &mut Bits<'_>, want: usize, out: &mut Vec<u8>) -> Result<(), FallBack> {
    bits.align();
    let len = bits.take(16)?;
    let nlen = bits.take(16)?;
    if len != !nlen & 0xffff {
        return Err(FallBack);
    }
    let len = len as usize;
    let take = len.min(want.saturating_sub(out.len()));
    // Stopping at `want` leaves the rest of the block (and stream) unread.
    out.extend_from_slice(bits.bytes(take)?);
    Ok(())
}

/// The codes of a Huffman block, until its end or `want` bytes of output.
fn codes_block<const L: usize, const LT: usize, const D: usize, const DT: usize>(
    bits: &mut Bits<'_>,
    lit: &Huffman<L, LT>,
    dist: &Huffman<D, DT>,
    want: usize,
    out: &mut Vec<u8>,
) -> Result<(), FallBack> {
    while out.len() < want {
        let symbol = lit.decode(bits)?;
        if symbol < END_OF_BLOCK {
            out.push(symbol as u8);
            continue;
        }
        if symbol == END_OF_BLOCK {
            return Ok(());
        }
        let &(base, extra) = LENGTHS.get(usize::from(symbol - 257)).ok_or(FallBack)?;
        let len = usize::from(base) + bits.take(u32::from(extra))? as usize;
        let symbol = dist.decode(bits)?;
        let &(base, extra) = DISTANCES.get(usize::from(symbol)).ok_or(FallBack)?;
        let distance = usize::from(base) + bits.take(u32::from(extra))? as usize;
        let start = out.len().checked_sub(distance).ok_or(FallBack)?;
        let len = len.min(want - out.len());
        if len <= distance {
            out.extend_from_within(start..start + len);
        } else {
            // Overlapping: each byte may be one this copy wrote.
            for at in start..start + len {
                let byte = *out.get(at).ok_or(FallBack)?;
                out.push(byte);
            }
        }
    }
    Ok(())
}

/// The fixed codes (RFC 1951 section 3.2.6), built once.
fn fixed_codes() -> &'static (FixedLitCode, FixedDistCode) {
    static FIXED: OnceLock<(FixedLitCode, FixedDistCode)> = OnceLock::new();
    FIXED.get_or_init(|| {
        let mut lens = [8u8; FIXED_LIT_CODES];
        lens.iter_mut().skip(144).take(112).for_each(|len| *len = 9);
        lens.iter_mut().skip(256).take(24).for_each(|len| *len = 7);
        let mut lit = Huffman::new();
        let mut dist = Huffman::new();
        lit.build(&lens)
            .expect("BUG: the fixed literal code is complete");
        dist.build(&[5u8; FIXED_DIST_CODES])
            .expect("BUG: the fixed distance code is complete");
        (lit, dist)
    })
}

/// A canonical Huffman code of at most `N` symbols: codes of up to `log2(T)` bits are looked
/// up in a first-level table of `T` entries (a power of two; 1: no table), longer ones are
/// found by length from per-length limits.
#[derive(Debug, Clone)]
struct Huffman<const N: usize, const T: usize> {
    /// Indexed by the next `log2(T)` stream bits: `symbol << 4 | length` of the code they
    /// start with, or 0 for a code longer than the table (or none).
    table: [u16; T],
    /// `limit[len]`: one past the last code of length `len`, left-justified in 15 bits
    /// (canonical codes of one length are consecutive and sort before longer ones); index 0
    /// unused. Non-decreasing over `len`; `limit[15]` is 2^15 for a complete code.
    limit: [u32; MAX_BITS + 1],
    /// `offset[len]`: index in `symbols` of the first code of length `len`, minus that code.
    offset: [u32; MAX_BITS + 1],
    /// The shortest code length in use.
    min_len: usize,
    /// Symbols in code order: by length, then by symbol value.
    symbols: [u16; N],
}

/// A dynamic block's literal/length code: a 64-entry table (codes of up to 6 bits; measured
/// faster than 32, 128 or 256 entries: filling a larger table costs more than the longer
/// codes it saves decoding by length, for ~100 symbols).
type LitCode = Huffman<MAX_LIT_CODES, 64>;
/// A dynamic block's distance code: no table (a prefix holds few back-references).
type DistCode = Huffman<MAX_DIST_CODES, 1>;
/// A whole object's literal/length code.
type WholeLitCode = Huffman<MAX_LIT_CODES, 256>;
/// A whole object's distance code.
type WholeDistCode = Huffman<MAX_DIST_CODES, 32>;
/// The code-length code (at most 7 bits): all of it in a table.
type CodeLenCode = Huffman<CODE_LEN_CODES, 128>;
/// The fixed literal/length code (7 to 9 bits): all of it in a table.
type FixedLitCode = Huffman<FIXED_LIT_CODES, 512>;
/// The fixed distance code (5 bits): all of it in a table.
type FixedDistCode = Huffman<FIXED_DIST_CODES, 32>;

/// Length bits of a table entry.
const ENTRY_LEN_MASK: u16 = 0xf;
/// Symbol shift of a table entry.
const ENTRY_SYMBOL_SHIFT: u16 = 4;

impl<const N: usize, const T: usize> Huffman<N, T> {
    fn new() -> Self {
        Self {
            table: [0; T],
            limit: [0; MAX_BITS + 1],
            offset: [0; MAX_BITS + 1],
            min_len: 1,
            symbols: [0; N],
        }
    }

    /// The code whose lengths (0: unused) are `lens` (at most `N`); [`FallBack`] unless it
    /// is complete.
    fn build(&mut self, lens: &[u8]) -> Result<(), FallBack> {
        let mut count = [0u16; MAX_BITS + 1];
        let mut used = [(0u16, 0u8); N];
        let mut n = 0;
        for (symbol, &len) in lens.iter().enumerate() {
            if len != 0 {
                *count.get_mut(usize::from(len)).ok_or(FallBack)? += 1;
                *used.get_mut(n).ok_or(FallBack)? = (symbol as u16, len);
                n += 1;
            }
        }
        self.build_from(&count, used.get(..n).ok_or(FallBack)?, 0)
    }

    /// The code of the symbols `used` (in symbol order, numbered from `first_symbol`, with
    /// their lengths), of which `count[len]` have length `len`; [`FallBack`] unless it is
    /// complete.
    fn build_from(
        &mut self,
        count: &[u16; MAX_BITS + 1],
        used: &[(u16, u8)],
        first_symbol: u16,
    ) -> Result<(), FallBack> {
        let mut left: i32 = 1;
        // start[len]: where the next symbol of length `len` goes in `symbols`.
        let mut start = [0u16; MAX_BITS + 1];
        let mut first = 0u16;
        let mut code = 0u32;
        self.min_len = 0;
        for len in 1..=MAX_BITS {
            let n = *count.get(len).ok_or(FallBack)?;
            left = (left << 1) - i32::from(n);
            if left < 0 {
                return Err(FallBack); // over-subscribed
            }
            if n != 0 && self.min_len == 0 {
                self.min_len = len;
            }
            *start.get_mut(len).ok_or(FallBack)? = first;
            // code: the first code of this length; offset maps code -> symbol index.
            *self.offset.get_mut(len).ok_or(FallBack)? = u32::from(first).wrapping_sub(code);
            first += n;
            code += u32::from(n);
            *self.limit.get_mut(len).ok_or(FallBack)? = code << (MAX_BITS - len);
            code <<= 1;
        }
        if left != 0 {
            return Err(FallBack); // incomplete (or empty)
        }
        for &(symbol, len) in used {
            let next = start.get_mut(usize::from(len)).ok_or(FallBack)?;
            *self.symbols.get_mut(usize::from(*next)).ok_or(FallBack)? =
                symbol.wrapping_sub(first_symbol);
            *next += 1;
        }
        self.fill_table(count);
        Ok(())
    }

    /// Enter every code of at most `log2(T)` bits in the table, at each index whose low bits
    /// are the code as sent (first bit lowest). The table grows by doubling: the first
    /// `2^len` entries hold every code of at most `len` bits at its one index below `2^len`
    /// (0 elsewhere); a copy of them above makes that true of `len + 1` bits but for the
    /// codes of `len + 1` bits, then entered once each. So every entry is written about
    /// twice, by a copy, where entering each code at all its indices wrote one at a time.
    fn fill_table(&mut self, count: &[u16; MAX_BITS + 1]) {
        let table_bits = T.trailing_zeros() as usize;
        if let Some(first) = self.table.first_mut() {
            *first = 0;
        }
        let mut filled = 1;
        let mut code = 0u16;
        let mut index = 0;
        for (len, &n) in count.iter().enumerate().take(table_bits + 1).skip(1) {
            self.table.copy_within(0..filled, filled);
            filled *= 2;
            for _ in 0..n {
                let symbol = self.symbols.get(index).copied().unwrap_or(0);
                index += 1;
                let at = usize::from(code.reverse_bits() >> (16 - len));
                if let Some(slot) = self.table.get_mut(at) {
                    *slot = symbol << ENTRY_SYMBOL_SHIFT | len as u16;
                }
                code += 1;
            }
            code <<= 1;
        }
    }

    /// The next symbol.
    #[inline]
    fn decode(&self, bits: &mut Bits<'_>) -> Result<u16, FallBack> {
        if bits.count < MAX_BITS as u32 {
            bits.refill();
        }
        let entry = self.table.get(bits.buf as usize & (T - 1)).copied();
        let entry = entry.unwrap_or(0);
        let len = u32::from(entry & ENTRY_LEN_MASK);
        if len != 0 && len <= bits.count {
            bits.consume(len);
            return Ok(entry >> ENTRY_SYMBOL_SHIFT);
        }
        let (symbol, len) = self.decode_long(bits.buf, bits.count)?;
        bits.consume(len);
        Ok(symbol)
    }

    /// The next symbol and its code's length, the code longer than the table (or the input
    /// ending inside it), from the stream's next `count` bits in `buf` (passed by value, so
    /// that a caller's bit reader can stay in registers).
    #[cold]
    #[inline(never)]
    fn decode_long(&self, buf: u64, count: u32) -> Result<(u16, u32), FallBack> {
        // The next 15 stream bits, the first one as the most significant (codes are sent
        // from their most significant bit).
        let peek = u32::from((buf as u16).reverse_bits() >> 1);
        let mut len = self.min_len;
        while peek >= *self.limit.get(len).ok_or(FallBack)? {
            len += 1;
        }
        if len as u32 > count {
            return Err(FallBack); // the input ends inside this code
        }
        let code = peek >> (MAX_BITS - len);
        let index = self.offset.get(len).ok_or(FallBack)?.wrapping_add(code);
        let symbol = *self.symbols.get(index as usize).ok_or(FallBack)?;
        Ok((symbol, len as u32))
    }
}

/// Reads a deflate stream's bits, least significant first.
#[derive(Clone, Copy)]
struct Bits<'a> {
    input: &'a [u8],
    at: usize,
    /// Bits read from `input` and not consumed yet, the next one lowest; above `count`,
    /// zeros or the input bits that follow (never anything else).
    buf: u64,
    /// How many bits of `buf` are valid.
    count: u32,
}

impl<'a> Bits<'a> {
    fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            at: 0,
            buf: 0,
            count: 0,
        }
    }

    /// Fill `buf` to at least 56 bits, or with all the input left.
    #[inline]
    fn refill(&mut self) {
        if let Some(word) = self.input.get(self.at..self.at + 8) {
            let word: [u8; 8] = word.try_into().expect("BUG: a slice of 8 bytes");
            // Deflate packs bits least significant first (RFC 1951 section 3.1.1): a
            // little-endian load puts the next byte above the bits held. Bits shifted in past
            // `count` are those of the next byte, loaded again (to the same place) next time.
            #[allow(clippy::little_endian_bytes)]
            let word = u64::from_le_bytes(word);
            self.buf |= word << self.count;
            let bytes = (63 - self.count) / 8;
            self.at += bytes as usize;
            self.count += bytes * 8;
            return;
        }
        while self.count <= 56 {
            let Some(&byte) = self.input.get(self.at) else {
                return;
            };
            self.at += 1;
            self.buf |= u64::from(byte) << self.count;
            self.count += 8;
        }
    }

    #[inline]
    fn consume(&mut self, n: u32) {
        self.buf >>= n;
        self.count -= n;
    }

    /// The next `n` (at most 16) bits as a number, the first one lowest.
    #[inline]
    fn take(&mut self, n: u32) -> Result<u32, FallBack> {
        if self.count < n {
            self.refill();
            if self.count < n {
                return Err(FallBack);
            }
        }
        let value = (self.buf & ((1u64 << n) - 1)) as u32;
        self.consume(n);
        Ok(value)
    }

    /// Drop the bits up to the next byte boundary.
    fn align(&mut self) {
        self.consume(self.count % 8);
    }

    /// The next `n` bytes (from a byte boundary: after [`align()`](Self::align)).
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], FallBack> {
        // Whole bytes still in `buf` go back to the input first.
        let back = (self.count / 8) as usize;
        self.at -= back;
        self.buf = 0;
        self.count = 0;
        let bytes = self.input.get(self.at..self.at + n).ok_or(FallBack)?;
        self.at += n;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::{inflate_prefix, FallBack, WholeDecoder};

    fn deflate(data: &[u8], level: u32) -> Vec<u8> {
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
        zlib.write_all(data).unwrap();
        zlib.finish().unwrap()
    }

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(stream)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// The first `want` bytes as this module decodes them.
    fn prefix(stream: &[u8], want: usize) -> Result<Vec<u8>, FallBack> {
        let mut out = vec![1, 2, 3];
        inflate_prefix(stream, want, &mut out).map(|()| out)
    }

    /// The whole stream as this module decodes it, told its data is `size` bytes, and the
    /// stream's length.
    fn whole(stream: &[u8], size: usize) -> Result<(Vec<u8>, usize), FallBack> {
        let mut out = vec![1, 2, 3];
        WholeDecoder::new()
            .inflate(stream, size, &mut out)
            .map(|len| (out, len))
    }

    /// Asserts the prefix of every length up to the whole data (and past it) is zlib's, and
    /// so is the whole data, decoded only when told its size, with bytes after the stream
    /// left alone.
    fn agrees_with_zlib(stream: &[u8]) {
        let full = inflate(stream);
        assert_eq!(whole(stream, full.len()), Ok((full.clone(), stream.len())));
        let mut followed = stream.to_vec();
        followed.extend_from_slice(b"next entry");
        assert_eq!(
            whole(&followed, full.len()),
            Ok((full.clone(), stream.len()))
        );
        assert_eq!(whole(stream, full.len() + 1), Err(FallBack), "too short");
        if let Some(shorter) = full.len().checked_sub(1) {
            assert_eq!(whole(stream, shorter), Err(FallBack), "too long");
        }
        for want in (0..full.len() + 3)
            .step_by(7)
            .chain([full.len(), usize::MAX])
        {
            let expected = &full[..want.min(full.len())];
            assert_eq!(
                prefix(stream, want).as_deref(),
                Ok(expected),
                "the first {want} bytes are zlib's"
            );
        }
    }

    /// A commit as `git fast-import` writes a message: empty tree, a parent, a JSON payload.
    fn commit(i: u64) -> Vec<u8> {
        let parent = format!(
            "{:040x}",
            u128::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) * 7919
        );
        format!(
            "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nparent {}\nauthor bench <bench@example.com> {} +0000\ncommitter bench <bench@example.com> {} +0000\n\n{{\"id\":{i},\"type\":\"order.created\",\"customer\":\"c-{i:06}\",\"total\":{}.{:02}}}\n",
            &parent[parent.len() - 40..],
            1_700_000_000 + i,
            1_700_000_000 + i,
            i % 1000,
            i % 100
        )
        .into_bytes()
    }

    /// The block type of a stream's first block.
    fn first_block_type(stream: &[u8]) -> u8 {
        (stream[2] >> 1) & 3
    }

    #[test]
    fn a_stored_stream_decodes_as_zlib_does() {
        let stream = deflate(&commit(1), 0);
        assert_eq!(first_block_type(&stream), 0, "level 0 writes stored blocks");
        agrees_with_zlib(&stream);
    }

    #[test]
    fn a_fixed_huffman_block_decodes_as_zlib_does() {
        let stream = deflate(b"tree tree tree parent", 6);
        assert_eq!(
            first_block_type(&stream),
            1,
            "a short input gets fixed codes"
        );
        agrees_with_zlib(&stream);
    }

    #[test]
    fn a_dynamic_huffman_commit_decodes_as_zlib_does() {
        for i in 0..50 {
            let stream = deflate(&commit(i), 6);
            assert_eq!(first_block_type(&stream), 2, "a commit gets dynamic codes");
            agrees_with_zlib(&stream);
        }
    }

    #[test]
    fn an_overlapping_back_reference_repeats_what_it_writes() {
        let data: Vec<u8> = b"ab".iter().cycle().take(1000).copied().collect();
        let stream = deflate(&data, 9);
        assert!(stream.len() < 40, "runs are back-references of distance 2");
        agrees_with_zlib(&stream);
        let zeros = deflate(&[0u8; 5000], 6);
        agrees_with_zlib(&zeros);
    }

    #[test]
    fn several_blocks_decode_in_order() {
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        zlib.write_all(b"first block, ").unwrap();
        zlib.flush().unwrap(); // a sync flush: the block ends, an empty stored block follows
        zlib.write_all(&commit(7)).unwrap();
        let stream = zlib.finish().unwrap();
        agrees_with_zlib(&stream);
    }

    #[test]
    fn wanting_more_than_the_stream_holds_gives_all_of_it() {
        let data = commit(3);
        let stream = deflate(&data, 6);
        assert_eq!(prefix(&stream, data.len() + 100), Ok(data.clone()));
        assert_eq!(prefix(&deflate(b"", 6), 10), Ok(Vec::new()));
    }

    #[test]
    fn a_truncated_stream_falls_back() {
        let data = commit(4);
        let stream = deflate(&data, 6);
        // Cut inside the header (before any data can be decoded).
        assert_eq!(prefix(&stream[..20], 94), Err(FallBack));
        // Cut before the end of the data: the prefix that fits decodes, more falls back.
        assert_eq!(
            prefix(&stream[..stream.len() - 30], usize::MAX),
            Err(FallBack)
        );
        let stored = deflate(&data, 0);
        assert_eq!(prefix(&stored[..50], 94), Err(FallBack));
        assert_eq!(prefix(&stored[..50], 10), Ok(data[..10].to_vec()));
        assert_eq!(prefix(&[], 1), Err(FallBack));
        assert_eq!(prefix(&[0x78], 1), Err(FallBack));
        // Whole: any cut, even one inside the Adler-32 only, falls back.
        for cut in 0..stream.len() {
            assert_eq!(
                whole(&stream[..cut], data.len()),
                Err(FallBack),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_wrong_adler32_falls_back_whole() {
        let data = commit(8);
        for level in [0, 1, 6, 9] {
            let mut stream = deflate(&data, level);
            assert!(whole(&stream, data.len()).is_ok());
            let last = stream.len() - 1;
            stream[last] ^= 1;
            assert_eq!(whole(&stream, data.len()), Err(FallBack), "level {level}");
        }
    }

    #[test]
    fn a_bad_header_falls_back() {
        let stream = deflate(&commit(5), 6);
        let with = |cmf: u8, flg: u8| {
            let mut s = stream.clone();
            s[0] = cmf;
            s[1] = flg;
            prefix(&s, 94)
        };
        assert!(with(0x78, 0x9c).is_ok(), "zlib's default header");
        assert_eq!(with(0x78, 0x9d), Err(FallBack), "the check bits disagree");
        assert_eq!(with(0x77, 0x9c), Err(FallBack), "not deflate");
        assert_eq!(with(0x88, 0x1c), Err(FallBack), "a window over 32 KiB");
        assert_eq!(with(0x78, 0xbb), Err(FallBack), "a preset dictionary");
        let mut reserved = stream.clone();
        reserved[2] |= 0b110; // block type 3
        assert_eq!(prefix(&reserved, 94), Err(FallBack));
    }

    #[test]
    fn broken_codes_fall_back() {
        // A stored block whose NLEN is not LEN's complement.
        assert_eq!(
            prefix(
                &[0x78, 0x01, 0x01, 0x03, 0x00, 0xfc, 0xfe, b'a', b'b', b'c'],
                3
            ),
            Err(FallBack)
        );
        assert_eq!(
            prefix(
                &[0x78, 0x01, 0x01, 0x03, 0x00, 0xfc, 0xff, b'a', b'b', b'c'],
                3
            ),
            Ok(b"abc".to_vec())
        );
        // A fixed block starting with a distance before any output (length 3, distance 1).
        assert_eq!(prefix(&[0x78, 0x01, 0x03, 0x02, 0x00], 3), Err(FallBack));
        // Every bit flip of a commit: either zlib's bytes or a fall-back, never a panic.
        let data = commit(6);
        let stream = deflate(&data, 6);
        let full = inflate(&stream);
        for bit in 0..stream.len() * 8 {
            let mut flipped = stream.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let mut zlib = Vec::new();
            let zlib_ok = flate2::read::ZlibDecoder::new(&flipped[..])
                .read_to_end(&mut zlib)
                .is_ok();
            if let (Ok(ours), true) = (prefix(&flipped, 94), zlib_ok) {
                assert_eq!(ours, zlib[..94.min(zlib.len())], "bit {bit}");
            }
            if let Ok((ours, _)) = whole(&flipped, data.len()) {
                assert!(
                    zlib_ok,
                    "bit {bit}: accepted whole only if zlib inflates it"
                );
                assert_eq!(ours, zlib, "bit {bit}");
            }
        }
        assert_eq!(full, data);
    }

    #[test]
    fn random_payloads_at_every_level_decode_as_zlib_does() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..300 {
            let len = (next() % 2000) as usize;
            // Mixes of few symbols (long matches), text and noise.
            let alphabet = [2u64, 16, 64, 256][round % 4];
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 5 == 0 {
                        b'x'
                    } else {
                        (r % alphabet) as u8
                    }
                })
                .collect();
            for level in 0..=9 {
                let stream = deflate(&data, level);
                assert_eq!(
                    whole(&stream, len),
                    Ok((data.clone(), stream.len())),
                    "round {round}, level {level}, whole"
                );
                for want in [0, 1, 94, len / 2, len, len + 1] {
                    assert_eq!(
                        prefix(&stream, want).as_deref(),
                        Ok(&data[..want.min(len)]),
                        "round {round}, level {level}, want {want}"
                    );
                }
            }
        }
    }
}
