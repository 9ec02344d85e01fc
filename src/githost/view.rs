//! Owns what one client sees of the repository's refs: `HEAD` (symbolic, detached or
//! unborn), every ref under `refs/` its [`Access`] lets it see, and the peeled value of
//! annotated tags.
//!
//! Invariants: refs come from [`RefStore::list()`](crate::git::refs::RefStore::list)
//! (loose over packed, invalid names skipped), sorted by name; a ref is in the view only if
//! the access callback allows it; `HEAD` is shown only when the ref it names is (or, when
//! detached, when `HEAD` itself is readable); only refs under `refs/tags/` are peeled (gitmq's
//! topics and positions always name commits), at most [`MAX_PEEL_DEPTH`] tags deep.

use std::fs;

use gix_hash::ObjectId;

use super::{Access, Error, Operation};
use crate::git::{odb::Odb, refs::FullName, repo::Repository};

/// How many tags deep a tag is peeled.
pub(crate) const MAX_PEEL_DEPTH: usize = 8;

/// One ref a client may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VisibleRef {
    /// The full name.
    pub name: String,
    /// What it names.
    pub id: ObjectId,
    /// For an annotated tag: the object it finally points at.
    pub peeled: Option<ObjectId>,
}

/// `HEAD` as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Head {
    /// `ref: <target>`; `id` is `None` when the target does not exist (an unborn branch).
    Symbolic {
        target: String,
        id: Option<ObjectId>,
    },
    /// A detached `HEAD`.
    Detached(ObjectId),
    /// No `HEAD` the client may see.
    Hidden,
}

/// The refs one client may see.
#[derive(Debug, Clone)]
pub(crate) struct RefView {
    pub head: Head,
    /// Sorted by name.
    pub refs: Vec<VisibleRef>,
}

impl RefView {
    /// Read the refs `access` lets the client see for `operation` (for a push: read or write).
    pub(crate) fn read(
        repo: &Repository,
        odb: &mut Odb,
        access: &dyn Access,
        for_push: bool,
    ) -> Result<Self, Error> {
        let visible = |name: &str| {
            access.allows(Operation::Read, name)
                || (for_push && access.allows(Operation::Write, name))
        };
        let mut refs = Vec::new();
        for (name, id) in repo.refs().list("refs/")? {
            let name = name.as_str().to_owned();
            if !visible(&name) {
                continue;
            }
            let peeled = if name.starts_with("refs/tags/") {
                peel(odb, id)?
            } else {
                None
            };
            refs.push(VisibleRef { name, id, peeled });
        }
        let head = match read_head(repo)? {
            Some(HeadFile::Symbolic(target)) if visible(target.as_str()) => {
                let id = repo.refs().find(&target)?;
                Head::Symbolic {
                    target: target.as_str().to_owned(),
                    id,
                }
            }
            Some(HeadFile::Detached(id)) if visible("HEAD") => Head::Detached(id),
            _ => Head::Hidden,
        };
        Ok(Self { head, refs })
    }

    /// The id `HEAD` resolves to, if visible and born.
    pub(crate) fn head_id(&self) -> Option<ObjectId> {
        match &self.head {
            Head::Symbolic { id, .. } => *id,
            Head::Detached(id) => Some(*id),
            Head::Hidden => None,
        }
    }

    /// Every id a client may ask for directly: ref values and peeled values.
    pub(crate) fn tips(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.refs
            .iter()
            .flat_map(|r| std::iter::once(r.id).chain(r.peeled))
            .chain(self.head_id())
    }
}

/// `<git-dir>/HEAD` as written.
enum HeadFile {
    Symbolic(FullName),
    Detached(ObjectId),
}

fn read_head(repo: &Repository) -> Result<Option<HeadFile>, Error> {
    let path = repo.git_dir().join("HEAD");
    let data = match fs::read(&path) {
        Ok(data) => data,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path, source }),
    };
    let line = data.trim_ascii();
    if let Some(target) = line.strip_prefix(b"ref:") {
        let target = std::str::from_utf8(target.trim_ascii()).ok();
        return Ok(target
            .and_then(|t| FullName::new(t).ok())
            .map(HeadFile::Symbolic));
    }
    Ok(ObjectId::from_hex(line).ok().map(HeadFile::Detached))
}

/// The object an annotated tag finally points at; `None` if `id` is not a tag.
pub(crate) fn peel(odb: &mut Odb, id: ObjectId) -> Result<Option<ObjectId>, Error> {
    let mut body = Vec::new();
    let mut current = id;
    for depth in 0..MAX_PEEL_DEPTH {
        let kind = match odb.read(&current, &mut body) {
            Ok(kind) => kind,
            Err(crate::git::odb::Error::Missing { .. }) if depth > 0 => return Ok(Some(current)),
            Err(crate::git::odb::Error::Missing { .. }) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        if kind != gix_object::Kind::Tag {
            return Ok((depth > 0).then_some(current));
        }
        current = tag_target(&body).ok_or(Error::Corrupt {
            reason: "a tag object is malformed",
            id: current,
        })?;
    }
    Ok(Some(current))
}

/// The `object` line of a tag.
pub(crate) fn tag_target(body: &[u8]) -> Option<ObjectId> {
    let line = body.split(|&b| b == b'\n').next()?;
    let hex = line.strip_prefix(b"object ")?;
    if hex.len() != 40 {
        return None;
    }
    ObjectId::from_hex(hex).ok()
}
