//! Owns checking a quarantined pack before any ref may name its objects: each object is
//! well formed (an `fsck`-like check, strict where `git fsck --strict` is), and every object
//! it names is in the pack or already in the repository (connectivity).
//!
//! Rules: a commit parses (tree, parents, author, committer), its author and committer are
//! valid signatures, and its message holds no NUL (gitmq's rule for payloads, and git's
//! `nulInCommit`); a tree's entries have canonical modes (`100644`, `100755`, `120000`,
//! `40000`, `160000`), names that are not empty, `.`, `..` or `.git` (any case) and hold no
//! `/`, and are sorted without duplicates (git's tree order); a tag parses and names an object
//! of the kind it says. A named object in the pack must be of the kind it is named as.
//!
//! Why objects already in the repository are trusted: everything under `objects/` got there
//! complete (producers write a message with its parent present; pushes pass this check in
//! quarantine before migrating), so a pushed object that names one needs nothing more; an
//! object below a prune's shallow boundary is absent and fails the check, as it should.
//!
//! Invariants: reading is bounded by the pack's own limits (its objects passed
//! `index_pack`); memory is one object plus ~24 bytes per object named; nothing panics on a
//! hostile pack.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::collections::HashMap;

use gix_hash::ObjectId;
use gix_object::Kind;

use super::super::Error;
use crate::git::odb::{
    pack::read::{DeltaBaseCache, Options, PackFile},
    Odb,
};

/// What is wrong with a pushed pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Flaw {
    /// An object is malformed (git reports this as an unpack error).
    Malformed(String),
    /// An object names one that is neither in the pack nor in the repository.
    Missing {
        /// The object that names it.
        from: ObjectId,
        /// The missing one.
        missing: ObjectId,
    },
}

impl std::fmt::Display for Flaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Flaw::Malformed(reason) => f.write_str(reason),
            Flaw::Missing { from, missing } => {
                write!(f, "object {from} names {missing}, which is missing")
            }
        }
    }
}

/// The objects of a checked pack and their kinds.
pub(crate) type Kinds = HashMap<ObjectId, Kind>;

/// Check every object of the pack at `pack_path` against `odb`; the kinds of its objects.
pub(crate) fn check_pack(
    pack_path: &std::path::Path,
    odb: &mut Odb,
    max_object_size: u64,
) -> Result<Result<Kinds, Flaw>, Error> {
    let options = Options {
        max_object_size,
        ..Options::default()
    };
    let mut pack = PackFile::open_with(pack_path, options).map_err(|source| Error::Io {
        path: pack_path.to_owned(),
        source: std::io::Error::other(source),
    })?;
    let order = pack.index().pack_order();
    let mut kinds = Kinds::with_capacity(order.len());
    let mut named: Vec<(ObjectId, ObjectId, Kind)> = Vec::new();
    let mut cache = DeltaBaseCache::default();
    let mut body = Vec::new();
    for position in order {
        let id = pack.index().id_at(position).to_owned();
        let kind = pack
            .read_nth(position, &mut body, &mut cache)
            .map_err(|source| Error::Io {
                path: pack_path.to_owned(),
                source: std::io::Error::other(source),
            })?;
        let check = match kind {
            Kind::Commit => commit(&body, &mut |target, kind| named.push((id, target, kind))),
            Kind::Tree => tree(&body, &mut |target, kind| named.push((id, target, kind))),
            Kind::Tag => tag(&body, &mut |target, kind| named.push((id, target, kind))),
            Kind::Blob => Ok(()),
        };
        if let Err(reason) = check {
            return Ok(Err(Flaw::Malformed(format!("{kind} {id}: {reason}"))));
        }
        kinds.insert(id, kind);
    }
    for (from, target, expected) in named {
        match kinds.get(&target) {
            Some(&kind) if kind != expected => {
                return Ok(Err(Flaw::Malformed(format!(
                    "object {from} names {target} as a {expected}, but it is a {kind}"
                ))))
            }
            Some(_) => {}
            None if odb.contains(&target) => {}
            None => {
                return Ok(Err(Flaw::Missing {
                    from,
                    missing: target,
                }))
            }
        }
    }
    Ok(Ok(kinds))
}

fn commit(body: &[u8], named: &mut dyn FnMut(ObjectId, Kind)) -> Result<(), &'static str> {
    let commit = gix_object::CommitRef::from_bytes(body, gix_hash::Kind::Sha1)
        .map_err(|_| "malformed commit")?;
    commit.author().map_err(|_| "malformed author")?;
    commit.committer().map_err(|_| "malformed committer")?;
    if commit.message.contains(&0) {
        return Err("NUL in the commit message");
    }
    named(commit.tree(), Kind::Tree);
    for parent in commit.parents() {
        named(parent, Kind::Commit);
    }
    Ok(())
}

/// The file modes `git fsck --strict` accepts.
const MODES: [(&[u8], Option<Kind>); 5] = [
    (b"100644", Some(Kind::Blob)),
    (b"100755", Some(Kind::Blob)),
    (b"120000", Some(Kind::Blob)),
    (b"40000", Some(Kind::Tree)),
    (b"160000", None), // a gitlink: a commit of another repository, never present
];

fn tree(mut body: &[u8], named: &mut dyn FnMut(ObjectId, Kind)) -> Result<(), &'static str> {
    let mut previous: Option<(&[u8], bool)> = None;
    while !body.is_empty() {
        let space = body
            .iter()
            .position(|&b| b == b' ')
            .ok_or("malformed tree")?;
        let mode = body.get(..space).ok_or("malformed tree")?;
        let rest = body.get(space + 1..).ok_or("malformed tree")?;
        let nul = rest.iter().position(|&b| b == 0).ok_or("malformed tree")?;
        let name = rest.get(..nul).ok_or("malformed tree")?;
        let id = rest.get(nul + 1..nul + 21).ok_or("truncated tree")?;
        body = rest.get(nul + 21..).ok_or("truncated tree")?;
        let kind = MODES
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, kind)| *kind)
            .ok_or("bad file mode")?;
        if name.is_empty() || name == b"." || name == b".." || name.eq_ignore_ascii_case(b".git") {
            return Err("bad entry name");
        }
        if name.contains(&b'/') {
            return Err("an entry name holds a slash");
        }
        let is_tree = kind == Some(Kind::Tree);
        if let Some((before, before_is_tree)) = previous {
            match gix_object::tree::name_order(before, before_is_tree, name, is_tree) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err("duplicate entries"),
                std::cmp::Ordering::Greater => return Err("entries not sorted"),
            }
            if before == name {
                return Err("duplicate entries");
            }
        }
        previous = Some((name, is_tree));
        if let Some(kind) = kind {
            named(ObjectId::from_bytes_or_panic(id), kind);
        }
    }
    Ok(())
}

fn tag(body: &[u8], named: &mut dyn FnMut(ObjectId, Kind)) -> Result<(), &'static str> {
    let tag =
        gix_object::TagRef::from_bytes(body, gix_hash::Kind::Sha1).map_err(|_| "malformed tag")?;
    tag.tagger().map_err(|_| "malformed tagger")?;
    named(tag.target(), tag.target_kind);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mode: &str, name: &str) -> Vec<u8> {
        let mut out = format!("{mode} {name}\0").into_bytes();
        out.extend_from_slice(&[7u8; 20]);
        out
    }

    #[test]
    fn trees_are_checked_as_git_fsck_strict_does() {
        // git's order: a tree sorts as if its name ended in '/', so "b.txt" < "b/".
        let ok = [
            entry("100644", "a"),
            entry("100644", "b.txt"),
            entry("40000", "b"),
        ]
        .concat();
        assert_eq!(tree(&ok, &mut |_, _| {}), Ok(()));
        let mut seen = 0;
        tree(&ok, &mut |_, _| seen += 1).unwrap();
        assert_eq!(seen, 3);
        for (bad, why) in [
            ([entry("100664", "a")].concat(), "bad file mode"),
            ([entry("040000", "a")].concat(), "bad file mode"),
            ([entry("100644", ".git")].concat(), "bad entry name"),
            ([entry("100644", ".GIT")].concat(), "bad entry name"),
            ([entry("100644", "..")].concat(), "bad entry name"),
            (
                [entry("100644", "b"), entry("100644", "a")].concat(),
                "entries not sorted",
            ),
            (
                [entry("40000", "b"), entry("100644", "b.txt")].concat(),
                "entries not sorted",
            ),
            (
                [entry("100644", "a"), entry("100644", "a")].concat(),
                "duplicate entries",
            ),
            (
                [entry("100644", "a"), entry("40000", "a")].concat(),
                "duplicate entries",
            ),
        ] {
            assert_eq!(
                tree(&bad, &mut |_, _| {}),
                Err(why),
                "{:?}",
                String::from_utf8_lossy(&bad)
            );
        }
        let ok = entry("100644", "a");
        assert!(
            tree(&ok[..ok.len() - 1], &mut |_, _| {}).is_err(),
            "truncated"
        );
    }

    #[test]
    fn commits_with_nul_or_bad_signatures_are_refused() {
        let good = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
            author A <a@b> 1700000000 +0000\ncommitter A <a@b> 1700000000 +0000\n\nhi\n";
        let mut named = Vec::new();
        assert_eq!(commit(good, &mut |id, kind| named.push((id, kind))), Ok(()));
        assert_eq!(named.len(), 1);
        let mut nul = good.to_vec();
        nul.extend_from_slice(b"a\0b");
        assert_eq!(
            commit(&nul, &mut |_, _| {}),
            Err("NUL in the commit message")
        );
        assert!(commit(b"tree zz\n", &mut |_, _| {}).is_err());
    }
}
