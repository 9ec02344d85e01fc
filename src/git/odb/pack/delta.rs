//! Owns applying git's delta format: rebuilding an object from a base and copy/insert
//! instructions. Nothing else in gitmq interprets delta bytes.
//!
//! Invariants: the declared result size is checked against the caller's limit before anything
//! is allocated; every copy stays inside the base and every instruction inside the delta; the
//! result never grows past its declared size and must reach it exactly. Bad input is an
//! [`Error`], never a panic or an unbounded allocation.
//!
//! Layout (git's [`patch-delta.c`](https://github.com/git/git/blob/v2.47.0/patch-delta.c) and
//! `Documentation/gitformat-pack.txt`, "Deltified representation"):
//!
//! ```text
//! varint     base size     7-bit groups, least significant first, MSB set = more follow
//! varint     result size   same encoding
//! then instructions until the end of the delta:
//!   1oooosss  copy: for each set bit, one byte follows, least significant first:
//!             bits 0-3 select offset bytes 0-3, bits 4-6 select size bytes 0-2;
//!             a size of 0 means 0x10000 (COPY_ZERO_SIZE)
//!   0nnnnnnn  insert: the next n (1..=127) bytes of the delta are appended as they are
//!   00000000  reserved: an error
//! ```

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

/// Set in an instruction byte that copies from the base; clear for an insert.
const COPY_FLAG: u8 = 0x80;
/// Bits of a copy instruction selecting which offset bytes follow.
const COPY_OFFSET_BITS: [u8; 4] = [0x01, 0x02, 0x04, 0x08];
/// Bits of a copy instruction selecting which size bytes follow.
const COPY_SIZE_BITS: [u8; 3] = [0x10, 0x20, 0x40];
/// The copy size meant by an encoded size of 0.
const COPY_ZERO_SIZE: u64 = 0x10000;
/// The longest size varint that still fits a u64 (10 groups of 7 bits).
const MAX_SIZE_LEN: usize = 10;

/// Returned by [`apply()`] and [`header()`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The delta ends in the middle of its header or of an instruction.
    #[error("delta is truncated at byte {offset}")]
    Truncated {
        /// Where the missing bytes should have been.
        offset: usize,
    },
    /// A size varint in the header does not fit a u64.
    #[error("delta size at byte {offset} overflows")]
    SizeOverflow {
        /// Where the varint starts.
        offset: usize,
    },
    /// The base given is not as long as the delta says.
    #[error("delta expects a base of {declared} bytes, the base has {actual}")]
    BaseSizeMismatch {
        /// The base size in the delta header.
        declared: u64,
        /// The length of the base given.
        actual: u64,
    },
    /// The declared result is larger than the caller's limit.
    #[error("delta declares a result of {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The result size in the delta header.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// Instruction byte 0 is reserved by git.
    #[error("delta has the reserved instruction 0 at byte {offset}")]
    ReservedInstruction {
        /// Where the instruction is.
        offset: usize,
    },
    /// A copy reaches outside the base.
    #[error(
        "delta copy at byte {offset} reads {len} bytes at {base_offset}, outside the {base_len}-byte base"
    )]
    CopyOutOfBounds {
        /// Where the instruction is.
        offset: usize,
        /// The first base byte it copies.
        base_offset: u64,
        /// How many bytes it copies.
        len: u64,
        /// The length of the base.
        base_len: u64,
    },
    /// An instruction would make the result longer than declared.
    #[error("delta instruction at byte {offset} writes past the declared result size {declared}")]
    ResultOverflow {
        /// Where the instruction is.
        offset: usize,
        /// The result size in the delta header.
        declared: u64,
    },
    /// The instructions end before the result reaches its declared size.
    #[error("delta declares a result of {declared} bytes but builds {actual}")]
    SizeMismatch {
        /// The result size in the delta header.
        declared: u64,
        /// How many bytes the instructions produced.
        actual: u64,
    },
}

/// The sizes at the start of a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The length the base must have.
    pub base_size: u64,
    /// The length of the result.
    pub result_size: u64,
    /// Bytes taken by both varints; instructions start here.
    pub len: usize,
}

/// Parse a delta size varint at the start of `data`: the size and its length in bytes.
/// `None` if it is truncated or does not fit a u64.
pub fn decode_size(data: &[u8]) -> Option<(u64, usize)> {
    let mut size = 0u64;
    for (at, byte) in data.iter().enumerate().take(MAX_SIZE_LEN) {
        let group = u64::from(byte & 0x7f);
        let shift = 7 * u32::try_from(at).expect("at most MAX_SIZE_LEN groups");
        if shift == 63 && group > 1 {
            return None;
        }
        size |= group << shift;
        if byte & 0x80 == 0 {
            return Some((size, at + 1));
        }
    }
    None
}

/// Parse the two sizes at the start of `delta`.
pub fn header(delta: &[u8]) -> Result<Header, Error> {
    let (base_size, base_len) = size_at(delta, 0)?;
    let (result_size, result_len) = size_at(delta, base_len)?;
    Ok(Header {
        base_size,
        result_size,
        len: base_len + result_len,
    })
}

fn size_at(delta: &[u8], offset: usize) -> Result<(u64, usize), Error> {
    let rest = delta.get(offset..).unwrap_or_default();
    decode_size(rest).ok_or(if rest.len() >= MAX_SIZE_LEN {
        Error::SizeOverflow { offset }
    } else {
        Error::Truncated {
            offset: delta.len(),
        }
    })
}

/// Rebuild the object `delta` describes from `base` into `out` (cleared first).
///
/// The declared result size must not exceed `limit`; it is checked before `out` grows.
pub fn apply(base: &[u8], delta: &[u8], limit: u64, out: &mut Vec<u8>) -> Result<(), Error> {
    let header = header(delta)?;
    let base_len = base.len() as u64;
    if header.base_size != base_len {
        return Err(Error::BaseSizeMismatch {
            declared: header.base_size,
            actual: base_len,
        });
    }
    let too_large = Error::TooLarge {
        size: header.result_size,
        limit,
    };
    if header.result_size > limit {
        return Err(too_large);
    }
    let declared = usize::try_from(header.result_size).map_err(|_| too_large.clone())?;
    out.clear();
    out.try_reserve_exact(declared).map_err(|_| too_large)?;

    let mut at = header.len;
    while let Some(&cmd) = delta.get(at) {
        let instruction = at;
        at += 1;
        let remaining = declared - out.len();
        let overflow = Error::ResultOverflow {
            offset: instruction,
            declared: header.result_size,
        };
        if cmd & COPY_FLAG != 0 {
            let (base_offset, len, next) = decode_copy(delta, cmd, at)?;
            at = next;
            let out_of_bounds = Error::CopyOutOfBounds {
                offset: instruction,
                base_offset,
                len,
                base_len,
            };
            let start = usize::try_from(base_offset).map_err(|_| out_of_bounds.clone())?;
            let len = usize::try_from(len).map_err(|_| out_of_bounds.clone())?;
            let end = start.checked_add(len).ok_or(out_of_bounds.clone())?;
            let bytes = base.get(start..end).ok_or(out_of_bounds)?;
            if len > remaining {
                return Err(overflow);
            }
            out.extend_from_slice(bytes);
        } else if cmd != 0 {
            let len = usize::from(cmd);
            if len > remaining {
                return Err(overflow);
            }
            let bytes = delta.get(at..at + len).ok_or(Error::Truncated {
                offset: delta.len(),
            })?;
            at += len;
            out.extend_from_slice(bytes);
        } else {
            return Err(Error::ReservedInstruction {
                offset: instruction,
            });
        }
    }
    if out.len() != declared {
        return Err(Error::SizeMismatch {
            declared: header.result_size,
            actual: out.len() as u64,
        });
    }
    Ok(())
}

/// Decode the operand bytes of copy instruction `cmd` starting at `at`: base offset, length,
/// and where the next instruction starts.
fn decode_copy(delta: &[u8], cmd: u8, mut at: usize) -> Result<(u64, u64, usize), Error> {
    let mut next_byte = || {
        let byte = delta.get(at).copied().ok_or(Error::Truncated {
            offset: delta.len(),
        });
        at += 1;
        byte.map(u64::from)
    };
    let mut offset = 0u64;
    for (i, bit) in COPY_OFFSET_BITS.iter().enumerate() {
        if cmd & bit != 0 {
            offset |= next_byte()? << (8 * i);
        }
    }
    let mut len = 0u64;
    for (i, bit) in COPY_SIZE_BITS.iter().enumerate() {
        if cmd & bit != 0 {
            len |= next_byte()? << (8 * i);
        }
    }
    if len == 0 {
        len = COPY_ZERO_SIZE;
    }
    Ok((offset, len, at))
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "fixtures build small values on purpose"
)]
mod tests {
    use super::*;

    fn size(mut value: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn copy(offset: u32, len: u32, out: &mut Vec<u8>) {
        let mut cmd = COPY_FLAG;
        let mut operands = Vec::new();
        for (i, bit) in COPY_OFFSET_BITS.iter().enumerate() {
            let byte = (offset >> (8 * i)) as u8;
            if byte != 0 {
                cmd |= bit;
                operands.push(byte);
            }
        }
        let len = if len == 0x10000 { 0 } else { len };
        for (i, bit) in COPY_SIZE_BITS.iter().enumerate() {
            let byte = (len >> (8 * i)) as u8;
            if byte != 0 {
                cmd |= bit;
                operands.push(byte);
            }
        }
        out.push(cmd);
        out.extend_from_slice(&operands);
    }

    fn insert(bytes: &[u8], out: &mut Vec<u8>) {
        for chunk in bytes.chunks(127) {
            out.push(chunk.len() as u8);
            out.extend_from_slice(chunk);
        }
    }

    fn delta(base_size: u64, result_size: u64, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        size(base_size, &mut out);
        size(result_size, &mut out);
        out.extend_from_slice(body);
        out
    }

    fn run(base: &[u8], delta: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        apply(base, delta, 1 << 20, &mut out).map(|()| out)
    }

    #[test]
    fn sizes_decode_like_git() {
        assert_eq!(decode_size(&[0x05]), Some((5, 1)));
        assert_eq!(decode_size(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(decode_size(&[0xff, 0x7f, 0xaa]), Some((0x3fff, 2)));
        let mut max = Vec::new();
        size(u64::MAX, &mut max);
        assert_eq!(decode_size(&max), Some((u64::MAX, 10)));
        assert_eq!(decode_size(&[]), None, "empty");
        assert_eq!(decode_size(&[0x80, 0x80]), None, "truncated");
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(decode_size(&over), None, "65 bits");
        assert_eq!(decode_size(&[0xff; 11]), None, "too many groups");
    }

    #[test]
    fn copies_and_inserts_rebuild_the_target() {
        let base = b"0123456789abcdefghij";
        let mut body = Vec::new();
        copy(10, 5, &mut body);
        insert(b"--", &mut body);
        copy(0, 3, &mut body);
        assert_eq!(run(base, &delta(20, 10, &body)).unwrap(), b"abcde--012");
    }

    #[test]
    fn a_copy_of_size_zero_means_64_kib() {
        let base: Vec<u8> = (0..0x10010u32).map(|i| i as u8).collect();
        let mut body = Vec::new();
        copy(16, 0x10000, &mut body);
        assert_eq!(body, [0x81, 16], "size bytes are omitted");
        let out = run(&base, &delta(base.len() as u64, 0x10000, &body)).unwrap();
        assert_eq!(out, &base[16..16 + 0x10000]);
    }

    #[test]
    fn a_copy_outside_the_base_is_refused() {
        let base = b"0123456789";
        for (offset, len) in [(8, 3), (10, 1), (u32::MAX, 1)] {
            let mut body = Vec::new();
            copy(offset, len, &mut body);
            let err = run(base, &delta(10, u64::from(len), &body)).unwrap_err();
            assert!(matches!(err, Error::CopyOutOfBounds { .. }), "{err}");
        }
    }

    #[test]
    fn truncated_instructions_are_refused() {
        let base = b"0123456789";
        // A copy announcing an offset byte and a size byte, with only the offset present.
        let err = run(base, &delta(10, 2, &[0x91, 0x01])).unwrap_err();
        assert_eq!(err, Error::Truncated { offset: 4 });
        // An insert of 5 bytes with 2 present.
        let err = run(base, &delta(10, 5, &[0x05, b'a', b'b'])).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
        // The header itself cut short.
        assert!(matches!(
            run(base, &[0x0a]).unwrap_err(),
            Error::Truncated { .. }
        ));
        assert!(matches!(
            run(base, &[0x8a]).unwrap_err(),
            Error::Truncated { .. }
        ));
        assert!(matches!(
            run(base, &[]).unwrap_err(),
            Error::Truncated { .. }
        ));
    }

    #[test]
    fn the_result_must_have_exactly_the_declared_size() {
        let base = b"0123456789";
        let mut body = Vec::new();
        copy(0, 4, &mut body);
        let err = run(base, &delta(10, 5, &body)).unwrap_err();
        assert_eq!(
            err,
            Error::SizeMismatch {
                declared: 5,
                actual: 4
            }
        );
        let err = run(base, &delta(10, 3, &body)).unwrap_err();
        assert!(
            matches!(err, Error::ResultOverflow { .. }),
            "copy past: {err}"
        );
        let err = run(base, &delta(10, 1, &[0x02, b'a', b'b'])).unwrap_err();
        assert!(
            matches!(err, Error::ResultOverflow { .. }),
            "insert past: {err}"
        );
    }

    #[test]
    fn a_huge_declared_size_is_refused_before_allocating() {
        let mut out = Vec::new();
        let err = apply(b"", &delta(0, u64::MAX, &[0x01, b'x']), 1 << 20, &mut out).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
        assert_eq!(out.capacity(), 0, "nothing was allocated");
        let err = apply(b"", &delta(0, (1 << 20) + 1, &[]), 1 << 20, &mut out).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "one past the limit");
    }

    #[test]
    fn instruction_zero_and_a_wrong_base_size_are_refused() {
        let err = run(b"abc", &delta(3, 1, &[0x00, 0x01, b'x'])).unwrap_err();
        assert_eq!(err, Error::ReservedInstruction { offset: 2 });
        let err = run(b"abc", &delta(4, 1, &[0x01, b'x'])).unwrap_err();
        assert!(matches!(err, Error::BaseSizeMismatch { .. }), "{err}");
        let mut over = vec![0xff; 9];
        over.push(0x7f);
        assert!(matches!(
            run(b"", &over).unwrap_err(),
            Error::SizeOverflow { offset: 0 }
        ));
    }

    /// A naive delta encoder (copy any run of 4+ matching bytes found by a linear search,
    /// insert the rest) as the oracle for random bases and targets.
    #[test]
    fn random_deltas_rebuild_random_targets() {
        let mut rng = crate::test_support::TestRng::new(0x9e37_79b9_7f4a_7c15u64);
        let mut next = move || rng.next_u64();
        for _ in 0..200 {
            let base: Vec<u8> = (0..next() % 300)
                .map(|_| b"abcd"[(next() % 4) as usize])
                .collect();
            let target: Vec<u8> = (0..next() % 400)
                .map(|_| b"abcde"[(next() % 5) as usize])
                .collect();
            let mut body = Vec::new();
            let mut pending = Vec::new();
            let mut at = 0;
            while at < target.len() {
                let want = &target[at..(at + 8).min(target.len())];
                match base.windows(want.len()).position(|w| w == want) {
                    Some(found) if want.len() >= 4 => {
                        insert(&pending, &mut body);
                        pending.clear();
                        copy(found as u32, want.len() as u32, &mut body);
                        at += want.len();
                    }
                    _ => {
                        pending.push(target[at]);
                        at += 1;
                    }
                }
            }
            insert(&pending, &mut body);
            let d = delta(base.len() as u64, target.len() as u64, &body);
            assert_eq!(run(&base, &d).unwrap(), target);
            for cut in 0..d.len() {
                let _ = run(&base, &d[..cut]); // must not panic
            }
        }
    }
}
