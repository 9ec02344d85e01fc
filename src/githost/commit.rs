//! Owns the git host's view of a commit during a walk: its tree, its parents and its
//! committer time, read from the header lines only (the message is never decoded).
//!
//! Byte layout (git's `commit.c`, `parse_commit_buffer`):
//!
//! ```text
//! "tree " <40 hex> "\n"
//! ("parent " <40 hex> "\n")*
//! "author " <name> " <" <email> "> " <seconds> " " <tz> "\n"
//! "committer " <name> " <" <email> "> " <seconds> " " <tz> "\n"
//! (other headers) "\n" <message>
//! ```
//!
//! Invariants: panic-free on any input; a missing or malformed `tree`/`parent` line is
//! `None`; an unreadable committer time is 0 (the time only orders the walk, never decides
//! what is sent).

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use gix_hash::{oid, ObjectId};

use crate::git::odb::{self, Odb};

/// Read the object `id`: its kind and body, borrowed from a pack's read window when it is
/// stored there uncompressed (gitmq's own packs), else inflated into `scratch`. (Unlike
/// [`Odb::read()`] this neither copies a stored body nor fills the delta-base cache.)
pub(crate) fn read_object<'a>(
    odb: &'a mut Odb,
    id: &oid,
    scratch: &'a mut Vec<u8>,
) -> Result<(gix_object::Kind, &'a [u8]), odb::Error> {
    let location = odb.locate(id)?;
    odb.object_at(&location, scratch)
}

/// What a walk needs of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitInfo {
    /// The root tree.
    pub tree: ObjectId,
    /// The parents, in order.
    pub parents: Vec<ObjectId>,
    /// The committer time, in seconds since the epoch (0 if unreadable).
    pub time: i64,
}

/// Parse the header of the commit `body`.
pub(crate) fn parse(body: &[u8]) -> Option<CommitInfo> {
    let mut lines = body.split(|&b| b == b'\n');
    let tree = id_after(lines.next()?, b"tree ")?;
    let mut parents = Vec::new();
    let mut time = 0;
    for line in lines {
        if line.is_empty() {
            break;
        }
        if let Some(hex) = line.strip_prefix(b"parent ") {
            parents.push(hex_id(hex)?);
        } else if let Some(rest) = line.strip_prefix(b"committer ") {
            time = seconds_of(rest).unwrap_or(0);
            break;
        }
    }
    Some(CommitInfo {
        tree,
        parents,
        time,
    })
}

fn id_after(line: &[u8], prefix: &[u8]) -> Option<ObjectId> {
    hex_id(line.strip_prefix(prefix)?)
}

fn hex_id(hex: &[u8]) -> Option<ObjectId> {
    if hex.len() != 40 {
        return None;
    }
    ObjectId::from_hex(hex).ok()
}

/// `<name> <<email>> <seconds> <tz>`: the seconds.
fn seconds_of(signature: &[u8]) -> Option<i64> {
    let mut fields = signature.rsplit(|&b| b == b' ');
    let _tz = fields.next()?;
    std::str::from_utf8(fields.next()?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
    const P: &str = "ce013625030ba8dba906f756967f9e9ca394464a";

    #[test]
    fn tree_parents_and_committer_time_are_read() {
        let body = format!(
            "tree {TREE}\nparent {P}\nparent {TREE}\nauthor A <a@b> 1 +0000\n\
             committer C <c@d> 1700000000 +0100\n\nmessage\nparent {P}\n"
        );
        let info = parse(body.as_bytes()).unwrap();
        assert_eq!(info.tree.to_string(), TREE);
        assert_eq!(info.parents.len(), 2);
        assert_eq!(info.time, 1_700_000_000);
    }

    #[test]
    fn malformed_headers_are_none_and_never_panic() {
        assert!(parse(b"").is_none());
        assert!(parse(b"tree 123\n").is_none());
        assert!(parse(format!("tree {TREE}\nparent zz\n").as_bytes()).is_none());
        let no_time = format!("tree {TREE}\ncommitter x\n\n");
        assert_eq!(parse(no_time.as_bytes()).unwrap().time, 0);
        for len in 0..60 {
            let body = format!("tree {TREE}\nparent {P}\ncommitter a <b> 5 +0000\n");
            let _ = parse(&body.as_bytes()[..len.min(body.len())]);
        }
    }
}
