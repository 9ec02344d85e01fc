//! Owns deciding what a fetch may ask for and listing what its pack holds: wants checked
//! against the refs the client may read, haves sorted into commits and other objects we
//! share, and the objects of the pack (commits of the walk, then the trees and blobs they
//! reach that the client lacks, wanted tags and, with `include-tag`, tags of sent commits).
//!
//! Invariants: a want is served only if it is a readable ref's value (or its peeled value)
//! or a commit reachable from one (a ref that moved since the client listed it); the trees
//! of the walk's edge commits are walked first, so unchanged trees and blobs are not sent
//! again; every object is listed once; a gitlink (submodule commit) is never followed.

use std::collections::HashSet;

use gix_hash::ObjectId;
use gix_object::Kind;

use super::{
    super::{commit, view::tag_target, view::RefView, Error},
    walk::CommitWalk,
};
use crate::git::odb::{self, Odb};

/// Why a fetch is refused inside the protocol (an `ERR` packet the client prints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal(pub String);

/// The wants of a request, sorted by what they are.
#[derive(Debug, Default)]
pub(crate) struct Wants {
    /// Commits to walk from.
    pub commits: Vec<ObjectId>,
    /// Tags, trees and blobs wanted directly (tags with the objects they point at).
    pub others: Vec<(ObjectId, Kind)>,
}

/// Check `wants` against the refs of `view` and sort them; a refusal names the first want
/// the client may not have.
pub(crate) fn check_wants(
    odb: &mut Odb,
    view: &RefView,
    wants: &[ObjectId],
) -> Result<Result<Wants, Refusal>, Error> {
    let tips: HashSet<ObjectId> = view.tips().collect();
    let mut unadvertised = Vec::new();
    let mut sorted = Wants::default();
    let mut body = Vec::new();
    for &want in wants {
        let kind = match odb.read(&want, &mut body) {
            Ok(kind) => kind,
            Err(odb::Error::Missing { .. }) => {
                return Ok(Err(Refusal(format!("upload-pack: not our ref {want}"))))
            }
            Err(err) => return Err(err.into()),
        };
        if !tips.contains(&want) {
            if kind != Kind::Commit {
                return Ok(Err(Refusal(format!("upload-pack: not our ref {want}"))));
            }
            unadvertised.push(want);
        }
        let mut current = (want, kind);
        for _ in 0..super::super::view::MAX_PEEL_DEPTH {
            match current.1 {
                Kind::Commit => {
                    sorted.commits.push(current.0);
                    break;
                }
                Kind::Tree | Kind::Blob => {
                    sorted.others.push(current);
                    break;
                }
                Kind::Tag => {
                    sorted.others.push(current);
                    let target = tag_target(&body).ok_or(Error::Corrupt {
                        reason: "a tag object is malformed",
                        id: current.0,
                    })?;
                    let kind = odb.read(&target, &mut body)?;
                    current = (target, kind);
                }
            }
        }
    }
    if !unadvertised.is_empty() {
        if let Some(missing) = unreachable_from(odb, &tips, &unadvertised)? {
            return Ok(Err(Refusal(format!("upload-pack: not our ref {missing}"))));
        }
    }
    sorted.commits.sort_unstable();
    sorted.commits.dedup();
    Ok(Ok(sorted))
}

/// The first of `wants` (commits) that no commit of `tips` reaches, walking all parents.
fn unreachable_from(
    odb: &mut Odb,
    tips: &HashSet<ObjectId>,
    wants: &[ObjectId],
) -> Result<Option<ObjectId>, Error> {
    let mut missing: HashSet<ObjectId> = wants.iter().copied().collect();
    let mut seen = HashSet::new();
    let mut stack: Vec<ObjectId> = tips.iter().copied().collect();
    let mut body = Vec::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        missing.remove(&id);
        if missing.is_empty() {
            return Ok(None);
        }
        match odb.read(&id, &mut body) {
            Ok(Kind::Commit) => {}
            Ok(Kind::Tag) => {
                stack.extend(tag_target(&body));
                continue;
            }
            Ok(_) | Err(odb::Error::Missing { .. }) => continue,
            Err(err) => return Err(err.into()),
        }
        if odb.is_shallow(&id)? {
            continue;
        }
        if let Some(info) = commit::parse(&body) {
            stack.extend(info.parents);
        }
    }
    Ok(missing.into_iter().min())
}

/// The haves of a request that exist here.
#[derive(Debug, Default)]
pub(crate) struct Haves {
    /// Commits (tags peeled), in the order first acknowledged.
    pub commits: Vec<ObjectId>,
    /// Trees and blobs the client has.
    pub others: Vec<ObjectId>,
}

/// Sort one `have`: `true` if the object exists here (the client and we share it).
pub(crate) fn add_have(
    odb: &mut Odb,
    haves: &mut Haves,
    id: ObjectId,
    body: &mut Vec<u8>,
) -> Result<bool, Error> {
    let mut current = id;
    for depth in 0..super::super::view::MAX_PEEL_DEPTH {
        match odb.read(&current, body) {
            Ok(Kind::Commit) => {
                haves.commits.push(current);
                return Ok(true);
            }
            Ok(Kind::Tree | Kind::Blob) => {
                haves.others.push(current);
                return Ok(true);
            }
            Ok(Kind::Tag) => match tag_target(body) {
                Some(target) => current = target,
                None => return Ok(true),
            },
            Err(odb::Error::Missing { .. }) => return Ok(depth > 0),
            Err(err) => return Err(err.into()),
        }
    }
    Ok(true)
}

/// Every object of the pack, in the order it is written: wanted tags and objects, commits
/// (newest first), then trees and blobs, then included tags.
pub(crate) fn enumerate(
    odb: &mut Odb,
    walk: &CommitWalk,
    wants: &Wants,
    haves: &Haves,
    tags: Option<&RefView>,
) -> Result<Vec<ObjectId>, Error> {
    let mut seen: HashSet<ObjectId> = haves.others.iter().copied().collect();
    let mut body = Vec::new();
    for tree in &walk.edge_trees {
        mark_tree(odb, *tree, &mut seen, &mut body, None)?;
    }
    let mut out = Vec::with_capacity(walk.sent.len() + 16);
    for &(id, kind) in &wants.others {
        if kind != Kind::Tree && seen.insert(id) {
            out.push(id);
        }
    }
    out.extend(walk.sent.iter().map(|s| s.id));
    for sent in &walk.sent {
        mark_tree(odb, sent.tree, &mut seen, &mut body, Some(&mut out))?;
    }
    for &(id, kind) in &wants.others {
        if kind == Kind::Tree {
            mark_tree(odb, id, &mut seen, &mut body, Some(&mut out))?;
        }
    }
    if let Some(view) = tags.filter(|v| v.refs.iter().any(|r| r.peeled.is_some())) {
        let sent: HashSet<ObjectId> = walk.sent.iter().map(|s| s.id).collect();
        for r in &view.refs {
            if r.peeled.is_some_and(|p| sent.contains(&p)) && seen.insert(r.id) {
                out.push(r.id);
            }
        }
    }
    Ok(out)
}

/// Mark the tree `root` and everything it reaches as seen; with `out`, list each newly seen
/// object there. A missing tree is skipped when only marking (the client's side), an error
/// when listing.
fn mark_tree(
    odb: &mut Odb,
    root: ObjectId,
    seen: &mut HashSet<ObjectId>,
    body: &mut Vec<u8>,
    mut out: Option<&mut Vec<ObjectId>>,
) -> Result<(), Error> {
    if !seen.insert(root) {
        return Ok(());
    }
    if let Some(out) = out.as_deref_mut() {
        out.push(root);
    }
    let mut stack = vec![root];
    while let Some(tree) = stack.pop() {
        match odb.read(&tree, body) {
            Ok(Kind::Tree) => {}
            Ok(_) => {
                return Err(Error::Corrupt {
                    reason: "a tree entry names an object of another kind",
                    id: tree,
                })
            }
            Err(odb::Error::Missing { .. }) if out.is_none() => continue,
            Err(err) => return Err(err.into()),
        }
        for entry in gix_object::TreeRefIter::from_bytes(body, gix_hash::Kind::Sha1) {
            let entry = entry.map_err(|_| Error::Corrupt {
                reason: "a tree is malformed",
                id: tree,
            })?;
            if entry.mode.is_commit() {
                continue;
            }
            let child = entry.oid.to_owned();
            if seen.insert(child) {
                if let Some(out) = out.as_deref_mut() {
                    out.push(child);
                }
                if entry.mode.is_tree() {
                    stack.push(child);
                }
            }
        }
    }
    Ok(())
}
