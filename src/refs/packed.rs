//! Owns reading `packed-refs`: the single file where `git pack-refs` and `git gc` move refs.
//!
//! Byte layout (git's `refs/packed-backend.c`):
//!
//! ```text
//! # pack-refs with: peeled fully-peeled sorted \n     (optional header, traits)
//! <40 hex> SP <full ref name> LF                       (one per ref)
//! ^<40 hex> LF                                         (optional: the peeled id of the tag above)
//! ```
//!
//! Invariant: parsing never panics; a malformed line is an error naming its line number.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use gix_hash::ObjectId;

use crate::hash::OBJECT_HASH;

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
