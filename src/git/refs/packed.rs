//! Owns reading `packed-refs` (the single file where `git pack-refs` and `git gc` move refs)
//! and removing one entry from it ([`without()`], for deleting a ref).
//!
//! Byte layout (git's `refs/packed-backend.c`):
//!
//! ```text
//! # pack-refs with: peeled fully-peeled sorted \n     (optional header, traits)
//! <40 hex> SP <full ref name> LF                       (one per ref)
//! ^<40 hex> LF                                         (optional: the peeled id of the tag above)
//! ```
//!
//! Invariants: parsing never panics; a malformed line is an error naming its line number;
//! [`without()`] keeps every other byte of the file as it was (header, order, peeled lines),
//! so what git wrote stays what git wrote.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use gix_hash::ObjectId;

use crate::git::hash::OBJECT_HASH;

/// One entry of `packed-refs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedRef {
    /// The full ref name, e.g. `refs/heads/orders`.
    pub name: String,
    /// The id the ref points to.
    pub target: ObjectId,
    /// For an annotated tag, the object it peels to.
    pub peeled: Option<ObjectId>,
}

/// Returned by [`parse()`].
#[derive(Debug, thiserror::Error)]
#[error("packed-refs line {line} is malformed: {reason}")]
pub struct Error {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: &'static str,
}

/// Parse the content of a `packed-refs` file.
pub fn parse(data: &[u8]) -> Result<Vec<PackedRef>, Error> {
    let mut refs: Vec<PackedRef> = Vec::new();
    for (index, line) in data.split(|b| *b == b'\n').enumerate() {
        let line_no = index + 1;
        let err = |reason| Error {
            line: line_no,
            reason,
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        if let Some(hex) = line.strip_prefix(b"^") {
            let peeled = parse_hex(hex).ok_or_else(|| err("bad peeled id"))?;
            let last = refs
                .last_mut()
                .ok_or_else(|| err("peeled line before any ref"))?;
            last.peeled = Some(peeled);
            continue;
        }
        let hex = line.get(..40).ok_or_else(|| err("line too short"))?;
        let target = parse_hex(hex).ok_or_else(|| err("bad object id"))?;
        let name = line
            .get(40..)
            .and_then(|rest| rest.strip_prefix(b" "))
            .ok_or_else(|| err("missing space after the id"))?;
        let name = std::str::from_utf8(name).map_err(|_| err("ref name is not UTF-8"))?;
        if name.is_empty() {
            return Err(err("empty ref name"));
        }
        refs.push(PackedRef {
            name: name.to_owned(),
            target,
            peeled: None,
        });
    }
    Ok(refs)
}

/// The content of `packed-refs` `data` without the entry for the full ref `name` (and its
/// peeled `^` line), or `None` if `data` has no such entry. Every other line is kept byte for
/// byte. `data` must have parsed with [`parse()`].
pub fn without(data: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut found = false;
    let mut skipping_peeled = false;
    for line in data.split_inclusive(|b| *b == b'\n') {
        if skipping_peeled && line.starts_with(b"^") {
            continue;
        }
        skipping_peeled = false;
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        let is_entry = !content.starts_with(b"#")
            && !content.starts_with(b"^")
            && content.get(40..).and_then(|rest| rest.strip_prefix(b" ")) == Some(name.as_bytes());
        if is_entry {
            found = true;
            skipping_peeled = true;
            continue;
        }
        out.extend_from_slice(line);
    }
    found.then_some(out)
}

fn parse_hex(hex: &[u8]) -> Option<ObjectId> {
    if hex.len() != OBJECT_HASH.len_in_hex() {
        return None;
    }
    ObjectId::from_hex(hex).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_git_pack_refs_writes() {
        let data = b"# pack-refs with: peeled fully-peeled sorted \n\
ce013625030ba8dba906f756967f9e9ca394464a refs/heads/a\n\
4b825dc642cb6eb9a060e54bf8d69288fbee4904 refs/tags/v1\n\
^ce013625030ba8dba906f756967f9e9ca394464a\n";
        let refs = parse(data).unwrap();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].name, "refs/heads/a");
        assert_eq!(
            refs[1].peeled.unwrap().to_string(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn without_removes_one_entry_and_its_peeled_line_and_keeps_the_rest() {
        let data = b"# pack-refs with: peeled fully-peeled sorted \n\
ce013625030ba8dba906f756967f9e9ca394464a refs/heads/a\n\
4b825dc642cb6eb9a060e54bf8d69288fbee4904 refs/tags/v1\n\
^ce013625030ba8dba906f756967f9e9ca394464a\n\
4b825dc642cb6eb9a060e54bf8d69288fbee4904 refs/tags/v10\n";
        let out = without(data, "refs/tags/v1").unwrap();
        assert_eq!(
            out,
            b"# pack-refs with: peeled fully-peeled sorted \n\
ce013625030ba8dba906f756967f9e9ca394464a refs/heads/a\n\
4b825dc642cb6eb9a060e54bf8d69288fbee4904 refs/tags/v10\n"
        );
        assert!(without(data, "refs/tags/v").is_none(), "no prefix matches");
        assert!(without(data, "refs/heads").is_none());
        let out = without(&out, "refs/heads/a").unwrap();
        assert_eq!(parse(&out).unwrap().len(), 1);
    }

    #[test]
    fn malformed_lines_are_errors() {
        for data in [
            &b"^ce013625030ba8dba906f756967f9e9ca394464a\n"[..],
            b"abc refs/x\n",
            b"ce013625030ba8dba906f756967f9e9ca394464arefs/x\n",
            b"ce013625030ba8dba906f756967f9e9ca394464a \n",
            b"zz13625030ba8dba906f756967f9e9ca394464a0 refs/x\n",
        ] {
            assert!(parse(data).is_err(), "{:?}", String::from_utf8_lossy(data));
        }
    }
}
