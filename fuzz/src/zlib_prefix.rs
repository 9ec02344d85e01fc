//! Owns the differential check of `git::odb::zlib_prefix` (the walk's hand-written decoder of
//! a zlib stream's first bytes) against zlib (flate2), which it shortcuts.
//!
//! Invariant checked: for any input and any wanted length, no panic and at most `want` bytes;
//! whenever zlib inflates the whole stream without error (Adler-32 checked), a prefix the
//! decoder returns is exactly zlib's first bytes; a stream zlib itself wrote (unchanged) is
//! always decoded, never left to the fall-back.

use std::io::{Read, Write};

use gitmq::git::odb::zlib_prefix::inflate_prefix;

/// `zlib_prefix`: the hand-written prefix decoder agrees with zlib.
///
/// Layout: a flags byte, then two bytes of `want` (big-endian; `0xffff` means "all"). Flags
/// bit 0 set: the rest is data, deflated by zlib at level `(flags >> 1) % 10`; then, with bit
/// 5, the byte at the index given by the first data byte is xor-ed with the second (or 1).
/// Bit 0 clear: the rest is the stream, as is.
pub fn zlib_prefix(data: &[u8]) {
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
    let zlib_ok = flate2::bufread::ZlibDecoder::new(&stream[..])
        .take(64 << 20)
        .read_to_end(&mut zlib)
        .is_ok();
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
