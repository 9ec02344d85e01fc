//! Owns the `gpgsig` header of a commit: finding it, taking it out (what was signed),
//! putting one in, and marking a copy whose signature could not be kept. No cryptography
//! here: this module is always compiled, so copies made without the `sign` feature are
//! marked too.
//!
//! Layout, as `git commit -S` writes it ([commit.c `add_header_signature`] at
//! git v2.47.0): the header is the last one, right before the blank line; its value is the
//! armored signature, its first line after `gpgsig `, every further line after one space:
//!
//! ```text
//! committer <ident>\n
//! gitmq-id <id>\n                          (extra headers stay where they are)
//! gpgsig -----BEGIN SSH SIGNATURE-----\n
//!  <base64, 70 columns>\n                  (one leading space per continuation line)
//!  -----END SSH SIGNATURE-----\n
//! \n
//! <payload>
//! ```
//!
//! What was signed is the commit without the `gpgsig` header and its continuation lines,
//! wherever it stands (git's `parse_buffer_signed_by_header`): every other byte, in order.
//!
//! Invariants: [`split()`] never panics and never allocates beyond its two output buffers'
//! growth by the input's length; a commit with two `gpgsig` headers is malformed (git would
//! concatenate them into one unreadable signature). [`mark_unsigned_copy()`] adds a
//! `gitmq-unsigned-copy-of <id>` header (after the others, where git puts a signature), whose
//! value is a full hex id: `git fsck --strict` accepts it like any extra header.
//!
//! [commit.c `add_header_signature`]: https://github.com/git/git/blob/v2.47.0/commit.c

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use gix_hash::oid;

/// The header git writes a signature into (SHA-1 repositories).
pub const GPGSIG: &[u8] = b"gpgsig";

/// The header a copy carries when the original's signature could not be kept (no key to
/// re-sign it with): the original's commit id.
pub const UNSIGNED_COPY_OF: &[u8] = b"gitmq-unsigned-copy-of";

/// The longest signature [`split()`] takes out (an SSH RSA-8192 signature armored is ~1.5 KiB;
/// an ed25519 one 300 bytes).
pub const MAX_SIGNATURE_LEN: usize = 16 * 1024;

/// What [`split()`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No `gpgsig` header.
    Unsigned,
    /// One `gpgsig` header: the signature and the signed payload are in the buffers.
    Signed,
    /// Two `gpgsig` headers, or one longer than [`MAX_SIGNATURE_LEN`].
    Malformed,
}

/// The offset of the blank line that ends `body`'s header block (the header's last newline
/// is at `offset - 1`), or `None` if there is none (then the body is all header).
pub fn header_end(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let rest = body.get(at..)?;
        if rest.first() == Some(&b'\n') {
            return Some(at);
        }
        at += rest.iter().position(|b| *b == b'\n')? + 1;
    }
}

/// Split the commit `body` into its signature (into `signature`, cleared first: the armored
/// text, continuation spaces removed, each line with its newline) and the signed payload
/// (into `payload`, cleared first).
pub fn split(body: &[u8], signature: &mut Vec<u8>, payload: &mut Vec<u8>) -> Found {
    signature.clear();
    payload.clear();
    let end = header_end(body).unwrap_or(body.len());
    let (header, message) = body.split_at(end.min(body.len()));
    let mut found = Found::Unsigned;
    let mut in_signature = false;
    for line in lines(header) {
        if in_signature && line.first() == Some(&b' ') {
            signature.extend_from_slice(line.get(1..).unwrap_or_default());
        } else if let Some(value) = header_value(line, GPGSIG) {
            if found != Found::Unsigned {
                return Found::Malformed;
            }
            found = Found::Signed;
            in_signature = true;
            signature.extend_from_slice(value);
        } else {
            in_signature = false;
            payload.extend_from_slice(line);
        }
        if signature.len() > MAX_SIGNATURE_LEN {
            return Found::Malformed;
        }
    }
    payload.extend_from_slice(message);
    found
}

/// Whether `body`'s header block has a `gpgsig` header.
pub fn is_signed(body: &[u8]) -> bool {
    let end = header_end(body).unwrap_or(body.len());
    lines(body.get(..end).unwrap_or_default()).any(|line| header_value(line, GPGSIG).is_some())
}

/// Insert the armored `signature` (lines ending in `\n`) as the `gpgsig` header at the end of
/// the header block of `body`, which must have none (git's layout, see the module docs).
pub fn insert(body: &mut Vec<u8>, signature: &[u8]) {
    insert_at(body, 0, signature);
}

/// [`insert()`] into the commit body `body[start..]` (the last of several back to back).
pub fn insert_at(body: &mut Vec<u8>, start: usize, signature: &[u8]) {
    let commit = body.get(start..).unwrap_or_default();
    let at = start + header_end(commit).unwrap_or(commit.len());
    let mut header = Vec::with_capacity(GPGSIG.len() + signature.len() + 8);
    header.extend_from_slice(GPGSIG);
    for line in lines(signature) {
        header.push(b' ');
        header.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            header.push(b'\n');
        }
    }
    body.splice(at..at, header);
}

/// Write into `out` (cleared first) the commit `body` without its `gpgsig` header; whether it
/// had one.
pub fn strip(body: &[u8], out: &mut Vec<u8>) -> bool {
    let mut signature = Vec::new();
    match split(body, &mut signature, out) {
        Found::Unsigned => false,
        Found::Signed => true,
        Found::Malformed => {
            // Two signatures: drop every gpgsig header and its continuations.
            out.clear();
            let end = header_end(body).unwrap_or(body.len());
            let (header, message) = body.split_at(end.min(body.len()));
            let mut in_signature = false;
            for line in lines(header) {
                if in_signature && line.first() == Some(&b' ') {
                    continue;
                }
                in_signature = header_value(line, GPGSIG).is_some();
                if !in_signature {
                    out.extend_from_slice(line);
                }
            }
            out.extend_from_slice(message);
            true
        }
    }
}

/// Replace the signature of a copy that cannot be re-signed: `body` (a copy of `original`,
/// signed) loses its `gpgsig` header and gains `gitmq-unsigned-copy-of <original>` at the end
/// of its header block. A body without a signature is left alone; a copy of a copy keeps the
/// header it has (it names the first signed original).
pub fn mark_unsigned_copy(body: &mut Vec<u8>, original: &oid) {
    let mut stripped = Vec::with_capacity(body.len());
    if !strip(body, &mut stripped) {
        return;
    }
    let at = header_end(&stripped).unwrap_or(stripped.len());
    let mut hex = [0u8; 40];
    let mut line = Vec::with_capacity(UNSIGNED_COPY_OF.len() + 42);
    line.extend_from_slice(UNSIGNED_COPY_OF);
    line.push(b' ');
    line.extend_from_slice(original.hex_to_buf(&mut hex).as_bytes());
    line.push(b'\n');
    stripped.splice(at..at, line);
    *body = stripped;
}

/// The `gitmq-unsigned-copy-of` value of `body`, if it has one.
pub fn unsigned_copy_of(body: &[u8]) -> Option<&[u8]> {
    let end = header_end(body).unwrap_or(body.len());
    lines(body.get(..end).unwrap_or_default())
        .find_map(|line| header_value(line, UNSIGNED_COPY_OF))
        .map(|value| value.strip_suffix(b"\n").unwrap_or(value))
}

/// Write into `out` (cleared first) `body` without the header lines a copy changes: `gpgsig`
/// (and its continuations) and `gitmq-unsigned-copy-of`. A message and all its copies, signed,
/// re-signed or marked, give the same bytes (their parent lines aside).
pub fn without_signature_headers(body: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let end = header_end(body).unwrap_or(body.len());
    let (header, message) = body.split_at(end.min(body.len()));
    let mut in_signature = false;
    for line in lines(header) {
        if in_signature && line.first() == Some(&b' ') {
            continue;
        }
        in_signature = header_value(line, GPGSIG).is_some();
        if !in_signature && header_value(line, UNSIGNED_COPY_OF).is_none() {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(message);
}

/// The lines of `text`, each with its newline (the last one may have none).
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split_inclusive(|b| *b == b'\n')
}

/// The value of `line` (with its newline) if it is the header `name`.
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    line.strip_prefix(name)?.strip_prefix(b" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED: &[u8] = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\ngitmq-id 7\ngpgsig -----BEGIN SSH SIGNATURE-----\n U1NIU0lH\n -----END SSH SIGNATURE-----\n\nhi\n";
    const PAYLOAD: &[u8] = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\ngitmq-id 7\n\nhi\n";
    const ARMOR: &[u8] = b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n";

    #[test]
    fn split_takes_out_the_signature_and_keeps_every_other_byte() {
        let (mut sig, mut payload) = (Vec::new(), Vec::new());
        assert_eq!(split(SIGNED, &mut sig, &mut payload), Found::Signed);
        assert_eq!(sig, ARMOR);
        assert_eq!(payload, PAYLOAD);
        assert_eq!(split(PAYLOAD, &mut sig, &mut payload), Found::Unsigned);
        assert_eq!(payload, PAYLOAD, "an unsigned body is its own payload");
        assert!(is_signed(SIGNED) && !is_signed(PAYLOAD));
    }

    #[test]
    fn insert_is_the_inverse_of_split() {
        let mut body = PAYLOAD.to_vec();
        insert(&mut body, ARMOR);
        assert_eq!(
            body, SIGNED,
            "git's layout: last header, continuation spaces"
        );
        let mut out = Vec::new();
        assert!(strip(&body, &mut out));
        assert_eq!(out, PAYLOAD);
    }

    #[test]
    fn a_signature_line_in_the_payload_is_not_a_header() {
        let body = b"tree x\ncommitter c\n\ngpgsig -----BEGIN\n x\n";
        let (mut sig, mut payload) = (Vec::new(), Vec::new());
        assert_eq!(split(body, &mut sig, &mut payload), Found::Unsigned);
        assert_eq!(payload, body);
    }

    #[test]
    fn two_signatures_are_malformed_and_strip_removes_both() {
        let body = b"tree x\ngpgsig a\n b\ngpgsig c\n d\nother 1\n\nmsg";
        let (mut sig, mut payload) = (Vec::new(), Vec::new());
        assert_eq!(split(body, &mut sig, &mut payload), Found::Malformed);
        let mut out = Vec::new();
        assert!(strip(body, &mut out));
        assert_eq!(out, b"tree x\nother 1\n\nmsg");
    }

    #[test]
    fn a_marked_copy_names_its_original_and_loses_the_signature() {
        let original =
            gix_hash::ObjectId::from_hex(b"ce013625030ba8dba906f756967f9e9ca394464a").expect("hex");
        let mut body = SIGNED.to_vec();
        mark_unsigned_copy(&mut body, &original);
        assert!(!is_signed(&body));
        assert_eq!(
            unsigned_copy_of(&body),
            Some(&b"ce013625030ba8dba906f756967f9e9ca394464a"[..])
        );
        assert!(body.ends_with(
            b"gitmq-id 7\ngitmq-unsigned-copy-of ce013625030ba8dba906f756967f9e9ca394464a\n\nhi\n"
        ));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        without_signature_headers(&body, &mut a);
        without_signature_headers(SIGNED, &mut b);
        assert_eq!(a, b, "same content with or without the signature");
        assert_eq!(a, PAYLOAD);
        let unsigned = PAYLOAD.to_vec();
        let mut copy = unsigned.clone();
        mark_unsigned_copy(&mut copy, &original);
        assert_eq!(copy, unsigned, "nothing to mark on an unsigned message");
    }

    #[test]
    fn header_end_finds_the_blank_line_or_nothing() {
        assert_eq!(header_end(b"a\nb\n\nc"), Some(4));
        assert_eq!(header_end(b"\nc"), Some(0));
        assert_eq!(header_end(b"a\nb\n"), None);
        assert_eq!(header_end(b""), None);
    }
}
