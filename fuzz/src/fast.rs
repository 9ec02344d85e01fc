//! Owns the checks of gitmq's fast decoders against the reference decoders they shortcut:
//! `git::odb::stored::parse` (stored zlib blocks) against zlib itself, and
//! `git::message::parent::first_parent` and `git::message::decode::decode` (the walk's and
//! the consumer's commit parsers) against gix-object.
//!
//! Each target has a raw mode (the input as is) and a structured mode (the input shapes a
//! valid-looking stream or commit, so most runs reach the fast path rather than its first
//! rejection); the first input byte chooses.

use gitmq::{
    git::hash::{object_id, OBJECT_HASH},
    git::message::{
        decode::decode,
        parent::{first_parent as walk_first_parent, FIRST_PARENT_PREFIX_LEN},
    },
    git::odb::stored,
    MessageRef, ObjectId,
};
use gix_object::Kind;
use std::io::Read;

/// The empty tree, which every message names.
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// `stored_stream`: `stored::parse` agrees with zlib on every stream it claims.
///
/// Layout: a flags byte; bit 0 set: the rest is data, encoded as stored blocks by zlib at
/// level 0, then, with bit 1, the byte at the index given by the next byte is flipped;
/// `expected` is the data's length, one more with bit 2, one less with bit 3. Bit 0 clear:
/// two bytes of `expected` (big-endian), then the stream as is. Bit 7 picks whether the
/// Adler-32 is verified.
pub fn stored_stream(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (stream, expected) = if flags & 1 == 1 {
        let (flip, payload) = match rest.split_first() {
            Some((&flip, payload)) if flags & 2 == 2 => (Some(usize::from(flip)), payload),
            _ => (None, rest),
        };
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::none());
        std::io::Write::write_all(&mut encoder, payload).expect("encode into memory");
        let mut stream = encoder.finish().expect("encode into memory");
        if let Some(byte) = flip.and_then(|at| stream.get_mut(at)) {
            *byte ^= 0x5a;
        }
        let mut expected = payload.len();
        if flags & 4 == 4 {
            expected += 1;
        }
        if flags & 8 == 8 {
            expected = expected.saturating_sub(1);
        }
        (stream, expected)
    } else {
        let Some((length, stream)) = rest.split_at_checked(2) else {
            return;
        };
        (
            stream.to_vec(),
            usize::from(u16::from_be_bytes([length[0], length[1]])),
        )
    };
    let verify = flags & 0x80 == 0;
    let parsed = stored::parse(&stream, expected, verify);
    let zlib = inflate_zlib(&stream);
    let deflate = inflate_deflate(&stream);
    match &parsed {
        Ok(Some(stream_ref)) => {
            let mut copied = Vec::new();
            stream_ref.copy_to(&mut copied);
            let inflated = deflate.as_ref().expect("inflate reads what parse accepted");
            assert_eq!(&copied, inflated, "the same data as inflate");
            assert_eq!(copied.len(), expected, "as many bytes as expected");
            assert_eq!(stream_ref.data_len(), expected);
            if verify {
                let (checked, consumed) = zlib.as_ref().expect("zlib accepts what parse verified");
                assert_eq!(checked, &copied, "the same data as zlib");
                assert_eq!(stream_ref.stream_len(), *consumed, "the same stream length");
            }
            let joined: Vec<u8> = stream_ref.blocks().flatten().copied().collect();
            assert_eq!(joined, copied, "the blocks are the data");
            if let Some(single) = stream_ref.single() {
                assert_eq!(single, &copied[..]);
                assert_eq!(stored::first_block(&stream), Some(single));
            }
            for skip in [0, 1, expected / 2, expected] {
                let mut tail = Vec::new();
                stream_ref.copy_from_to(skip, &mut tail);
                assert_eq!(tail, copied[skip.min(copied.len())..], "skip {skip}");
            }
        }
        Ok(None) => {}
        Err(stored::Error::SizeMismatch { .. }) => {
            if let Ok(inflated) = &deflate {
                assert_ne!(inflated.len(), expected, "inflate finds another size too");
            }
        }
        Err(err) => assert!(zlib.is_err(), "parse refused a stream zlib accepts: {err}"),
    }
    if verify {
        if let Ok(Some(checked)) = &parsed {
            let unchecked = stored::parse(&stream, expected, false)
                .expect("what passes with the checksum passes without")
                .expect("still stored");
            assert_eq!(unchecked.stream_len(), checked.stream_len());
        }
    }
}

/// zlib's reading of `stream`: the data and the bytes of the zlib stream (trailer included),
/// or an error if it is not one whole, valid zlib stream (Adler-32 checked).
fn inflate_zlib(stream: &[u8]) -> Result<(Vec<u8>, usize), std::io::Error> {
    let mut decoder = flate2::bufread::ZlibDecoder::new(stream);
    let mut out = Vec::new();
    // Bounded: a stream holds at most 1032 times its length; these inputs are small.
    (&mut decoder).take(64 << 20).read_to_end(&mut out)?;
    let consumed = usize::try_from(decoder.total_in()).expect("fits");
    Ok((out, consumed))
}

/// The data of the deflate stream after the 2-byte zlib header, the trailer not read (so not
/// checked).
fn inflate_deflate(stream: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let body = stream.get(stored::ZLIB_HEADER_LEN..).unwrap_or_default();
    let mut out = Vec::new();
    flate2::bufread::DeflateDecoder::new(body)
        .take(64 << 20)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Hex of `bytes`, each digit upper- or lowercase by the bits of `case`, and a digit replaced
/// by `junk` at `junk_at` (if in range).
fn hex(bytes: &[u8; 20], case: u64, junk: Option<(usize, u8)>) -> String {
    let mut text: Vec<u8> = ObjectId::from_bytes_or_panic(bytes)
        .to_string()
        .into_bytes();
    for (i, digit) in text.iter_mut().enumerate() {
        if case >> (i % 64) & 1 == 1 {
            digit.make_ascii_uppercase();
        }
    }
    if let Some((at, byte)) = junk {
        if let Some(slot) = text.get_mut(at) {
            *slot = byte;
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Up to `N` bytes of `data` from `*at` on, zero-padded; advances `*at`.
fn take<const N: usize>(data: &[u8], at: &mut usize) -> [u8; N] {
    let mut out = [0u8; N];
    for slot in &mut out {
        *slot = data.get(*at).copied().unwrap_or(0);
        *at += 1;
    }
    out
}

/// `first_parent`: the walk's parser reads the same first parent as gix-object, or refuses
/// what gix refuses.
///
/// Layout: a flags byte. Bit 0 clear: the rest is a commit body as is. Bit 0 set: a commit
/// is built (tree and `flags >> 1 & 3` parent lines, a valid author and committer, a
/// message) with ids from the next 20-byte groups, each hex digit's case from 8 bytes of
/// case bits, and, with bit 3, one digit of the first parent line replaced by the next byte
/// (at the position the byte after gives).
pub fn first_parent(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let body = if flags & 1 == 1 {
        let mut at = 0;
        let case = u64::from_be_bytes(take::<8>(rest, &mut at));
        let junk = (flags & 8 == 8).then(|| {
            let [byte, position] = take::<2>(rest, &mut at);
            (usize::from(position % 44), byte)
        });
        let tree = take::<20>(rest, &mut at);
        let mut body = format!("tree {}\n", hex(&tree, case, None));
        for n in 0..(flags >> 1 & 3) {
            let id = take::<20>(rest, &mut at);
            let junk = if n == 0 { junk } else { None };
            body.push_str("parent ");
            body.push_str(&hex(&id, case.rotate_left(7), junk));
            body.push('\n');
        }
        body.push_str("author a <a@b> 1 +0000\ncommitter a <a@b> 1 +0000\n\n");
        let mut body = body.into_bytes();
        body.extend_from_slice(rest.get(at..).unwrap_or_default());
        body
    } else {
        rest.to_vec()
    };
    let fast = walk_first_parent(&body);
    let prefix = walk_first_parent(&body[..body.len().min(FIRST_PARENT_PREFIX_LEN)]);
    if body.len() >= FIRST_PARENT_PREFIX_LEN {
        assert_eq!(
            fast, prefix,
            "a prefix of FIRST_PARENT_PREFIX_LEN bytes is enough"
        );
    }
    let reference =
        gix_object::CommitRef::from_bytes(&body, OBJECT_HASH).map(|commit| commit.parents().next());
    match reference {
        Ok(parent) => assert_eq!(fast, Ok(parent), "the walk's first parent is gix's"),
        Err(_) if flags & 1 == 1 => assert!(
            fast.is_err(),
            "a built commit gix refuses has a bad tree or parent line: {fast:?}"
        ),
        Err(_) => {}
    }
}

/// `fast_decode`: the consumer's fast commit decoder returns exactly what the full decode
/// (gix-object) returns, or defers to it.
///
/// Layout: a flags byte, then NUL-separated fields: name, email, seconds, offset, extra
/// header lines (split at `\n`), payload. Bits 0-1: parent lines (0-3); bit 2: the
/// committer differs from the author; bit 3: uppercase hex; bit 4: a `gpgsig`-style
/// continued header; bit 5: the raw input instead (after the flags byte).
pub fn fast_decode(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let body = if flags & 0x20 == 0x20 {
        rest.to_vec()
    } else {
        build_commit(flags, rest)
    };
    let id = object_id(Kind::Commit, &body);
    let full = MessageRef::from_bytes(id, &body);
    let fast = decode(id, &body);
    match (&fast, &full) {
        (Ok(fast), Ok(full)) => {
            assert_eq!(
                fast, full,
                "the fast decoder agrees with gitmq's gix decode"
            );
            assert_eq!(fast.stable_id(), full.stable_id());
            assert!(fast.headers().eq(full.headers()));
            let commit = gix_object::CommitRef::from_bytes(&body, OBJECT_HASH)
                .expect("gix parsed it for MessageRef");
            let mut parents = commit.parents();
            assert_eq!(fast.parent, parents.next(), "gix's first parent");
            assert_eq!(fast.other_parents, parents.collect::<Vec<_>>());
            let author = commit.author().expect("gix parsed it for MessageRef");
            assert_eq!(fast.author, author.name, "gix's author");
            assert_eq!(fast.email, author.email, "gix's email");
            assert_eq!(fast.payload, commit.message, "gix's message is the payload");
            assert_eq!(
                walk_first_parent(&body),
                Ok(fast.parent),
                "the walk reads the same parent"
            );
        }
        (Err(_), Err(_)) => {}
        (fast, full) => panic!("the decoders disagree: fast {fast:?}, full {full:?}"),
    }
}

/// A commit in (or near) the canonical layout, from the fields of `rest`.
fn build_commit(flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut fields = rest.split(|b| *b == 0);
    let mut field = || fields.next().unwrap_or_default();
    let (name, email, seconds, offset, headers, payload) =
        (field(), field(), field(), field(), field(), field());
    let name: &[u8] = if name.is_empty() { b"gitmq" } else { name };
    let seconds: &[u8] = if seconds.is_empty() {
        b"1700000000"
    } else {
        seconds
    };
    let offset: &[u8] = if offset.is_empty() { b"+0000" } else { offset };
    let mut body = format!("tree {EMPTY_TREE}\n").into_bytes();
    for n in 0..(flags & 3) {
        let id = object_id(Kind::Blob, &[n]).to_string();
        let id = if flags & 8 == 8 {
            id.to_ascii_uppercase()
        } else {
            id
        };
        body.extend_from_slice(format!("parent {id}\n").as_bytes());
    }
    let signature = |body: &mut Vec<u8>, role: &[u8], name: &[u8]| {
        body.extend_from_slice(role);
        body.extend_from_slice(name);
        body.extend_from_slice(b" <");
        body.extend_from_slice(email);
        body.extend_from_slice(b"> ");
        body.extend_from_slice(seconds);
        body.push(b' ');
        body.extend_from_slice(offset);
        body.push(b'\n');
    };
    signature(&mut body, b"author ", name);
    let committer: &[u8] = if flags & 4 == 4 {
        b"someone else"
    } else {
        name
    };
    signature(&mut body, b"committer ", committer);
    for line in headers.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        body.extend_from_slice(line);
        body.push(b'\n');
    }
    if flags & 0x10 == 0x10 {
        body.extend_from_slice(b"gpgsig -----BEGIN-----\n line\n -----END-----\n");
    }
    body.push(b'\n');
    body.extend_from_slice(payload);
    body
}
