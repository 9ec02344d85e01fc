//! Owns the differential check of `git::odb::hand_inflate` (the hand-written decoders of a
//! zlib stream's first bytes, for the walk, and of a small object's whole stream, for
//! delivery) against zlib (flate2), which they shortcut.
//!
//! Invariants checked: for any input and any wanted length, no panic and at most `want`
//! bytes; whenever zlib inflates the whole stream without error (Adler-32 checked), a prefix
//! the decoder returns is exactly zlib's first bytes; a stream zlib itself wrote (unchanged)
//! is always decoded, never left to the fall-back. The whole decoder answers only for a
//! stream zlib inflates, with zlib's bytes and the length zlib read, and never for a size
//! other than zlib's.

use std::io::{Read, Write};

use gitmq::git::odb::hand_inflate::{inflate_prefix, WholeDecoder};

/// `hand_inflate`: the hand-written prefix decoder agrees with zlib.
///
/// Layout: a flags byte, then two bytes of `want` (big-endian; `0xffff` means "all"). Flags
/// bit 0 set: the rest is data, deflated by zlib at level `(flags >> 1) % 10`; then, with bit
/// 5, the byte at the index given by the first data byte is xor-ed with the second (or 1).
/// Bit 0 clear: the rest is the stream, as is.
pub fn hand_inflate(data: &[u8]) {
    let _ = check(data);
}

fn check(data: &[u8]) -> Option<()> {
    let (&flags, rest) = data.split_first()?;
    let (want, rest) = rest.split_at_checked(2)?;
    let want = match u16::from_be_bytes([want[0], want[1]]) {
        u16::MAX => usize::MAX,
        n => usize::from(n),
    };
    let built = flags & 1 == 1;
    let mut flipped = false;
    let stream = if built {
        let level = u32::from(flags >> 1) % 10;
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
        zlib.write_all(rest).expect("deflate into memory");
        let mut stream = zlib.finish().expect("deflate into memory");
        if flags & 0x20 != 0 {
            let at = usize::from(*rest.first().unwrap_or(&0));
            let mask = rest.get(1).copied().filter(|&m| m != 0).unwrap_or(1);
            if let Some(byte) = stream.get_mut(at) {
                *byte ^= mask;
                flipped = true;
            }
        }
        stream
    } else {
        rest.to_vec()
    };
    let mut ours = Vec::new();
    let answer = inflate_prefix(&stream, want, &mut ours);
    if answer.is_ok() {
        assert!(ours.len() <= want, "at most the bytes wanted");
    }
    let mut zlib = Vec::new();
    // Bounded: a stream holds at most 1032 times its length, and the prefix at most 64 KiB.
    let mut inflater = flate2::bufread::ZlibDecoder::new(&stream[..]);
    let zlib_ok = (&mut inflater)
        .take(64 << 20)
        .read_to_end(&mut zlib)
        .is_ok();
    let zlib_read = usize::try_from(inflater.total_in()).expect("fits");
    // The whole decoder, told zlib's size (or the wanted length, if zlib failed).
    let size = if zlib_ok {
        zlib.len()
    } else {
        want.min(1 << 16)
    };
    let mut whole = Vec::new();
    let mut decoder = WholeDecoder::new();
    match decoder.inflate(&stream, size, &mut whole) {
        Ok(len) => {
            assert!(zlib_ok, "the whole decoder accepts only what zlib inflates");
            assert_eq!(whole, zlib, "zlib's bytes");
            assert_eq!(len, zlib_read, "the stream's length as zlib read it");
        }
        Err(_) => assert!(
            !built || flipped,
            "a stream zlib wrote is decoded whole by hand"
        ),
    }
    if zlib_ok {
        assert!(
            decoder.inflate(&stream, size + 1, &mut whole).is_err(),
            "a size zlib's data does not have"
        );
    }
    if built && !flipped {
        assert!(answer.is_ok(), "a stream zlib wrote is decoded by hand");
        assert!(zlib_ok, "zlib reads what it wrote");
        assert_eq!(&zlib[..], rest, "zlib's round trip");
    }
    if let (Ok(()), true) = (answer, zlib_ok) {
        assert_eq!(ours, zlib[..want.min(zlib.len())], "zlib's first bytes");
    }
    Some(())
}
