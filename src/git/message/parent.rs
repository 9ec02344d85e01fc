//! Owns reading a commit's links: its tree and its parents, from the `tree` and `parent`
//! lines only, so a walk never decodes signatures, dates or messages. [`first_parent()`] is
//! what a topic's first-parent walk reads; [`links()`] (tree and every parent) is what a walk
//! over all of history reads (a push's pack, a prune's repack, a served fetch).
//!
//! Byte layout of the start of every commit body (git's `commit.c`, `parse_commit_buffer`):
//!
//! ```text
//! offset 0    "tree " <40 hex> "\n"                      TREE_LINE_LEN bytes
//! offset 46   "parent " <40 hex> "\n"                    PARENT_LINE_LEN bytes, absent on a root
//!             more "parent" lines (a merge), then "author ...", ...
//! ```
//!
//! Invariants: strict and panic-free on any input; it accepts exactly the `tree` and
//! `parent` lines that `gix_object::CommitRef::from_bytes` accepts (40 ASCII hex digits of
//! either case), so the walk and the full decode that delivers a message agree on every
//! first parent. Everything after the first parent line is left to that full decode.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use gix_hash::ObjectId;

use crate::git::hash::ID_LEN;

/// The `tree` header name and its space.
const TREE: &[u8] = b"tree ";
/// The `parent` header name and its space.
const PARENT: &[u8] = b"parent ";
/// Hex digits of a SHA-1 id.
const HEX_LEN: usize = 40;
/// `tree <hex>\n`.
pub const TREE_LINE_LEN: usize = TREE.len() + HEX_LEN + 1;
/// `parent <hex>\n`.
pub const PARENT_LINE_LEN: usize = PARENT.len() + HEX_LEN + 1;
/// How many bytes of a commit [`first_parent()`] needs: its `tree` line and one more line's
/// worth.
pub const FIRST_PARENT_PREFIX_LEN: usize = TREE_LINE_LEN + PARENT_LINE_LEN;

/// Returned by [`first_parent()`]: the start of the commit is not a `tree` line followed by
/// either a valid `parent` line or another header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("commit does not start with a valid tree line and first parent: {reason}")]
pub struct Malformed {
    /// What is wrong.
    pub reason: &'static str,
}

/// The first parent of the commit whose body starts with `prefix`, `None` for a root
/// commit. `prefix` holds at least [`FIRST_PARENT_PREFIX_LEN`] bytes of the body, or all of
/// it.
///
/// ```
/// use gitmq::git::message::parent::first_parent;
/// let root = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor a <a@b> 0 +0000\n";
/// assert_eq!(first_parent(root), Ok(None));
/// let child = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
///               parent 1111111111111111111111111111111111111111\nauthor";
/// assert_eq!(first_parent(child).unwrap().unwrap().to_string(), "1".repeat(40));
/// assert!(first_parent(b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nparent 11\n").is_err());
/// ```
pub fn first_parent(prefix: &[u8]) -> Result<Option<ObjectId>, Malformed> {
    let malformed = |reason| Malformed { reason };
    let after_tree = after_tree_line(prefix).ok_or(malformed("no tree line"))?;
    if after_tree.starts_with(PARENT) {
        let id = hex_line(after_tree, PARENT).ok_or(malformed("bad parent line"))?;
        return Ok(Some(ObjectId::from(id)));
    }
    // Another header follows: a root commit. Too short to tell is not a commit at all (a
    // commit needs its author line).
    if after_tree.len() < PARENT.len() {
        return Err(malformed("commit ends after its tree line"));
    }
    Ok(None)
}

/// The tree and every parent of the commit with `body` (parents in order: the first parent
/// first). Strict like [`first_parent()`]: a `tree` line, then `parent` lines, then another
/// header.
///
/// ```
/// use gitmq::git::message::parent::links;
/// let merge = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
///               parent 1111111111111111111111111111111111111111\n\
///               parent 2222222222222222222222222222222222222222\nauthor a <a@b> 0 +0000\n";
/// let (tree, parents) = links(merge).unwrap();
/// assert_eq!(tree.to_string(), "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
/// assert_eq!(parents.len(), 2);
/// ```
pub fn links(body: &[u8]) -> Result<(ObjectId, Vec<ObjectId>), Malformed> {
    let malformed = |reason| Malformed { reason };
    let tree = hex_line(body, TREE).ok_or(malformed("no tree line"))?;
    let mut parents = Vec::new();
    let mut rest = body.get(TREE_LINE_LEN..).unwrap_or_default();
    while rest.starts_with(PARENT) {
        let id = hex_line(rest, PARENT).ok_or(malformed("bad parent line"))?;
        parents.push(ObjectId::from(id));
        rest = rest.get(PARENT_LINE_LEN..).unwrap_or_default();
    }
    if rest.len() < PARENT.len() {
        return Err(malformed("commit ends after its parent lines"));
    }
    Ok((ObjectId::from(tree), parents))
}

/// What follows the valid `tree <40 hex>\n` line at the start of `bytes`, if it starts with
/// one. The empty tree (every message's tree) is recognised by one comparison instead of
/// decoding its digits: a walk and a delivery each check a tree line per message.
pub(super) fn after_tree_line(bytes: &[u8]) -> Option<&[u8]> {
    let line = bytes.strip_prefix(TREE)?.get(..=HEX_LEN)?;
    let empty = line.strip_suffix(b"\n") == Some(&super::EMPTY_TREE_HEX[..]);
    if !empty {
        hex_line(bytes, TREE)?;
    }
    bytes.get(TREE_LINE_LEN..)
}

/// The id on the line `<name><40 hex>\n` at the start of `bytes`, if it is one.
fn hex_line(bytes: &[u8], name: &[u8]) -> Option<[u8; ID_LEN]> {
    let line = bytes.strip_prefix(name)?.get(..=HEX_LEN)?;
    let (newline, hex) = line.split_last()?;
    if *newline != b'\n' {
        return None;
    }
    decode_hex(hex)
}

/// Decode 40 hex digits of either case. This runs about three times per message (walk and
/// delivery), so lowercase digits, which git and gitmq write, are decoded eight at a time;
/// anything else takes a table read per digit.
pub(super) fn decode_hex(hex: &[u8]) -> Option<[u8; ID_LEN]> {
    decode_lowercase_hex(hex).or_else(|| decode_hex_by_table(hex))
}

/// Eight lowercase hex digits at a time, as one big-endian `u64`; `None` if any byte is
/// not `0-9a-f`. No step carries between bytes: every byte is below 0x80 before any add.
fn decode_lowercase_hex(hex: &[u8]) -> Option<[u8; ID_LEN]> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bit of each byte set iff that byte of `w` (< 0x80) is >= `bound`.
    let at_least = |w: u64, bound: u8| (w + LOW * u64::from(0x80 - bound)) & HIGH;
    let mut id = [0u8; ID_LEN];
    if hex.len() != 2 * ID_LEN {
        return None;
    }
    for (out, chunk) in id.chunks_exact_mut(4).zip(hex.chunks_exact(8)) {
        let w = u64::from_be_bytes(chunk.try_into().ok()?);
        if w & HIGH != 0 {
            return None;
        }
        let digit = at_least(w, b'0') & !at_least(w, b'9' + 1);
        let letter = at_least(w, b'a') & !at_least(w, b'f' + 1);
        if digit | letter != HIGH {
            return None;
        }
        // '0'..'9' -> 0..9, 'a'..'f' -> 1..6 + 9 (letters have bit 6 set, digits not).
        let nibbles = (w & (LOW * 0x0f)) + ((w >> 6) & LOW) * 9;
        // Pairs of nibbles into bytes, then the four bytes together.
        let pairs = (nibbles | (nibbles >> 4)) & 0x00ff_00ff_00ff_00ff;
        let quads = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
        let bytes = (quads | (quads >> 16)) & 0xffff_ffff;
        out.copy_from_slice(&u32::try_from(bytes).ok()?.to_be_bytes());
    }
    Some(id)
}

/// One table read per digit, either case.
fn decode_hex_by_table(hex: &[u8]) -> Option<[u8; ID_LEN]> {
    let mut id = [0u8; ID_LEN];
    if hex.len() != 2 * ID_LEN {
        return None;
    }
    let mut invalid = 0u8;
    for (byte, pair) in id.iter_mut().zip(hex.chunks_exact(2)) {
        let (high, low) = match pair {
            [high, low] => (nibble(*high), nibble(*low)),
            _ => (INVALID, INVALID),
        };
        invalid |= high | low;
        *byte = (high << 4) | (low & 0x0f);
    }
    (invalid & INVALID == 0).then_some(id)
}

/// Marks a byte that is not a hex digit: its high bits are never set by a digit's value.
const INVALID: u8 = 0xf0;

/// The value of a hex digit, or [`INVALID`].
fn nibble(digit: u8) -> u8 {
    HEX_VALUES
        .get(usize::from(digit))
        .copied()
        .unwrap_or(INVALID)
}

/// Hex digit values by byte.
static HEX_VALUES: [u8; 256] = hex_values();

#[allow(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of range fails the build"
)]
const fn hex_values() -> [u8; 256] {
    let mut table = [INVALID; 256];
    let mut byte: u8 = 0;
    loop {
        table[byte as usize] = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            b'A'..=b'F' => byte - b'A' + 10,
            _ => INVALID,
        };
        if byte == u8::MAX {
            return table;
        }
        byte += 1;
    }
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "fixtures build small values on purpose"
)]
mod tests {
    use super::*;
    use crate::git::hash::OBJECT_HASH;
    use crate::git::message::{encode, Identity, MessageRef};

    fn commit(parents: &[ObjectId]) -> Vec<u8> {
        let mut body = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n".to_vec();
        for parent in parents {
            body.extend_from_slice(format!("parent {parent}\n").as_bytes());
        }
        body.extend_from_slice(b"author a <a@b> 1 +0000\ncommitter a <a@b> 1 +0000\n\nmsg");
        body
    }

    #[test]
    fn the_first_parent_is_found_in_roots_children_and_merges() {
        let (a, b) = (
            ObjectId::empty_blob(OBJECT_HASH),
            ObjectId::empty_tree(OBJECT_HASH),
        );
        assert_eq!(first_parent(&commit(&[])), Ok(None));
        assert_eq!(first_parent(&commit(&[a])), Ok(Some(a)));
        assert_eq!(
            first_parent(&commit(&[b, a])),
            Ok(Some(b)),
            "first of a merge"
        );
        let upper = String::from_utf8(commit(&[a]))
            .unwrap()
            .replace("parent e69de29", "parent E69DE29");
        assert_eq!(
            first_parent(upper.as_bytes()),
            Ok(Some(a)),
            "gix accepts either case"
        );
    }

    #[test]
    fn what_gitmq_encodes_parses_like_the_full_decoder() {
        let author = Identity::new("p", "p@example.com").unwrap();
        for parent in [None, Some(ObjectId::empty_blob(OBJECT_HASH))] {
            let mut body = Vec::new();
            encode(
                &mut body,
                parent.as_deref(),
                &author,
                gix_date::Time::new(5, 0),
                b"x",
            );
            let full = MessageRef::from_bytes(ObjectId::null(OBJECT_HASH), &body).unwrap();
            assert_eq!(first_parent(&body), Ok(full.parent));
            let prefix = &body[..FIRST_PARENT_PREFIX_LEN.min(body.len())];
            assert_eq!(
                first_parent(prefix),
                Ok(full.parent),
                "the prefix is enough"
            );
        }
    }

    #[test]
    fn both_hex_decoders_agree_with_gix_on_every_byte_in_every_place() {
        let good = ObjectId::empty_blob(OBJECT_HASH).to_string().into_bytes();
        let expected = ObjectId::from_hex(&good).ok().map(|id| {
            let mut raw = [0u8; ID_LEN];
            raw.copy_from_slice(id.as_bytes());
            raw
        });
        assert_eq!(decode_lowercase_hex(&good), expected);
        for at in 0..good.len() {
            for byte in 0..=255u8 {
                let mut hex = good.clone();
                hex[at] = byte;
                let gix = ObjectId::from_hex(&hex).ok().map(|id| {
                    let mut raw = [0u8; ID_LEN];
                    raw.copy_from_slice(id.as_bytes());
                    raw
                });
                assert_eq!(decode_hex(&hex), gix, "byte {byte:#04x} at {at}");
                assert_eq!(decode_hex_by_table(&hex), gix, "table: {byte:#04x} at {at}");
                if decode_lowercase_hex(&hex).is_some() {
                    assert!(gix.is_some() && !byte.is_ascii_uppercase());
                }
            }
        }
        assert_eq!(decode_hex(&good[1..]), None, "39 digits");
    }

    #[test]
    fn broken_starts_are_errors() {
        let good = commit(&[ObjectId::empty_blob(OBJECT_HASH)]);
        for bad in [
            &b""[..],
            b"tree",
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904",
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n",
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\npar",
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee490g\nauthor",
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee49041\nauthor",
            b"parent 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n",
            &good[..good.len().min(60)],
            &good[..TREE_LINE_LEN + PARENT_LINE_LEN - 1],
        ] {
            assert!(
                first_parent(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn random_bytes_never_panic_and_agree_with_gix_when_both_accept() {
        let good = commit(&[ObjectId::empty_blob(OBJECT_HASH)]);
        let mut rng = crate::test_support::TestRng::new(0x9e37_79b9_7f4a_7c15_u64);
        let mut next = move || rng.next_u64();
        for _ in 0..20_000 {
            let mut body = good.clone();
            for _ in 0..(next() % 3) {
                let at = (next() % body.len() as u64) as usize;
                body[at] = [b'\n', b' ', b'a', b'G', b'0', next() as u8][(next() % 6) as usize];
            }
            body.truncate((next() % (body.len() as u64 + 1)) as usize);
            let ours = first_parent(&body);
            let full = gix_object::CommitRef::from_bytes(&body, OBJECT_HASH)
                .ok()
                .map(|commit| commit.parents().next());
            if let Some(theirs) = full {
                assert_eq!(ours, Ok(theirs), "{:?}", String::from_utf8_lossy(&body));
            }
        }
    }
}
