//! Owns rebuilding a run of messages on a new parent: the push that lost a race to another
//! producer, joins and splits all copy messages onto another chain.
//!
//! A copy is byte-exact but for its first `parent` line: author, dates, payload and every
//! extra header (stable message ids, headers) are kept, so the copy is the same message at a
//! new address. Copies are written as packs (stored zlib, the empty tree first, at most
//! [`MAX_MESSAGES_PER_PACK`] messages each) before anything names them.
//!
//! A signed message's copy is re-signed with the repository handle's copy signer when that
//! key made the signature, else it loses the signature and names its original in
//! `gitmq-unsigned-copy-of` ([`crate::git::sign::copy`]).
//!
//! Invariants: [`restack()`] moves no ref: the caller moves its refs (with a compare-and-swap)
//! after it returns, so a failure leaves at most unreachable objects; copies keep the order
//! given, each one's first parent is the previous copy (the first one's is the new base);
//! other parents of a merge are kept as they were.

use gix_hash::{oid, ObjectId};

use crate::{
    git::hash::{object_id, Hasher, OBJECT_HASH},
    git::message::parent,
    git::odb::pack::write::{self, Compression, PackBuilder, WrittenPack},
    git::sign::{copy::sign_copy, gpgsig},
    Repository,
};

/// The most messages written into one pack of copies (bounds memory to ~this many bodies).
pub const MAX_MESSAGES_PER_PACK: usize = 100_000;

/// Returned by [`with_first_parent()`] and [`restack()`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The commit body does not start with a `tree` line and a valid first parent.
    #[error("commit {id} does not start with a tree line and a valid first parent")]
    Malformed {
        /// The commit.
        id: ObjectId,
    },
    /// A merge commit cannot become a root: its second parent would become its first.
    #[error("merge commit {id} cannot be copied without a parent")]
    MergeWithoutBase {
        /// The merge commit.
        id: ObjectId,
    },
    /// Reading a message failed.
    #[error(transparent)]
    Odb(#[from] crate::git::odb::Error),
    /// Writing a pack of copies failed.
    #[error(transparent)]
    Pack(#[from] write::Error),
}

/// One message and its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// The message's id before.
    pub old: ObjectId,
    /// The copy's id.
    pub new: ObjectId,
}

/// What [`restack()`] wrote.
#[derive(Debug, Clone, Default)]
pub struct Restacked {
    /// Every message and its copy, in the order given.
    pub copies: Vec<Copied>,
    /// The packs holding the copies.
    pub packs: Vec<WrittenPack>,
}

impl Restacked {
    /// The newest copy, if any.
    pub fn tip(&self) -> Option<ObjectId> {
        self.copies.last().map(|c| c.new)
    }
}

/// Split a commit body around its first parent: its `tree` line, its first parent, and
/// everything after the first parent line (the other parents, the headers, the message).
fn split_first_parent(body: &[u8]) -> Option<(&[u8], Option<ObjectId>, &[u8])> {
    let first = parent::first_parent(body).ok()?;
    let (tree, rest) = body.split_at_checked(parent::TREE_LINE_LEN)?;
    let rest = match first {
        Some(_) => rest.get(parent::PARENT_LINE_LEN..)?,
        None => rest,
    };
    Some((tree, first, rest))
}

/// Write into `out` (cleared first) the commit `body` (of commit `id`) with its first parent
/// replaced by `parent` (inserted if it had none; removed if `parent` is `None`).
pub fn with_first_parent(
    id: &oid,
    body: &[u8],
    parent: Option<&oid>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let (tree, _, rest) =
        split_first_parent(body).ok_or_else(|| Error::Malformed { id: id.to_owned() })?;
    if parent.is_none() && rest.starts_with(b"parent ") {
        return Err(Error::MergeWithoutBase { id: id.to_owned() });
    }
    out.clear();
    out.reserve(body.len() + parent::PARENT_LINE_LEN);
    out.extend_from_slice(tree);
    if let Some(parent) = parent {
        let mut hex = [0u8; 40];
        out.extend_from_slice(b"parent ");
        out.extend_from_slice(parent.hex_to_buf(&mut hex).as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(rest);
    Ok(())
}

/// The content id of the commit `id` with `body`: the id of its body without the first parent
/// line (and without its `gpgsig` and `gitmq-unsigned-copy-of` headers, which copying changes),
/// which a copy made by [`with_first_parent()`] shares with its original whatever its new
/// parent; and the commit's first parent.
pub fn content_id(id: &oid, body: &[u8]) -> Result<(ObjectId, Option<ObjectId>), Error> {
    let (tree, first, rest) =
        split_first_parent(body).ok_or_else(|| Error::Malformed { id: id.to_owned() })?;
    // A copy's signature differs from its original's (re-signed, or dropped and marked).
    let unsigned;
    let rest = if gpgsig::is_signed(rest) || gpgsig::unsigned_copy_of(rest).is_some() {
        let mut out = Vec::with_capacity(rest.len());
        gpgsig::without_signature_headers(rest, &mut out);
        unsigned = out;
        &unsigned[..]
    } else {
        rest
    };
    let mut hasher = Hasher::for_object(gix_object::Kind::Commit, tree.len() + rest.len());
    hasher.update(tree);
    hasher.update(rest);
    Ok((hasher.finalize(), first))
}

/// Copy `messages` (oldest first) onto `base`: each copy's first parent is the previous copy,
/// the first one's is `base` (`None`: the first copy becomes a root). Writes the copies into
/// packs (fsynced when `sync`) and moves no ref.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = gitmq::Repository::init(dir.path())?;
/// let (a, b) = (gitmq::TopicName::new("a")?, gitmq::TopicName::new("b")?);
/// let on_a = repo.producer(&a).publish(b"first")?;
/// let on_b = repo.producer(&b).publish(b"second")?;
/// // Copy b's message onto a's head: same payload, author and date, new id.
/// let copies = gitmq::git::message::restack::restack(&repo, Some(on_a), &[on_b], false)?;
/// let copy = copies.tip().expect("one copy");
/// assert_ne!(copy, on_b);
/// # Ok(()) }
/// ```
pub fn restack(
    repo: &Repository,
    base: Option<ObjectId>,
    messages: &[ObjectId],
    sync: bool,
) -> Result<Restacked, Error> {
    let mut odb = repo.odb();
    let pack_dir = repo.git_dir().join("objects/pack");
    let mut result = Restacked::default();
    let (mut body, mut copy) = (Vec::new(), Vec::new());
    let mut builder = PackBuilder::new(Compression::Stored);
    let mut parent = base;
    for chunk in messages.chunks(MAX_MESSAGES_PER_PACK) {
        builder.clear();
        builder.push(
            &ObjectId::empty_tree(OBJECT_HASH),
            gix_object::Kind::Tree,
            b"",
        );
        for id in chunk {
            odb.read_commit(id, &mut body)?;
            with_first_parent(id, &body, parent.as_deref(), &mut copy)?;
            sign_copy(id, &body, &mut copy, repo.copy_signer(), false);
            let new = object_id(gix_object::Kind::Commit, &copy);
            builder.push(&new, gix_object::Kind::Commit, &copy);
            result.copies.push(Copied { old: *id, new });
            parent = Some(new);
        }
        let sealed = builder.seal(Vec::new());
        let files = sealed.finish();
        result.packs.push(write::write_pack_files(
            repo.fs(),
            &pack_dir,
            &sealed,
            &files,
            sync,
        )?);
        builder.reuse(sealed.bytes);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &[u8] = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n";
    const P1: &str = "ce013625030ba8dba906f756967f9e9ca394464a";
    const P2: &str = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";
    const REST: &[u8] = b"author a <a@x> 1 +0000\ncommitter a <a@x> 1 +0000\ngitmq-id 7\n\nhi";

    fn id(hex: &str) -> ObjectId {
        ObjectId::from_hex(hex.as_bytes()).unwrap()
    }

    fn body(parents: &[&str]) -> Vec<u8> {
        let mut out = TREE.to_vec();
        for p in parents {
            out.extend_from_slice(format!("parent {p}\n").as_bytes());
        }
        out.extend_from_slice(REST);
        out
    }

    #[test]
    fn the_first_parent_is_replaced_inserted_or_removed_and_the_rest_kept() {
        let me = id(P1);
        let mut out = Vec::new();
        with_first_parent(&me, &body(&[P1]), Some(&id(P2)), &mut out).unwrap();
        assert_eq!(out, body(&[P2]));
        with_first_parent(&me, &body(&[]), Some(&id(P2)), &mut out).unwrap();
        assert_eq!(out, body(&[P2]));
        with_first_parent(&me, &body(&[P1]), None, &mut out).unwrap();
        assert_eq!(out, body(&[]));
        with_first_parent(&me, &body(&[P1, P2]), Some(&id(P2)), &mut out).unwrap();
        assert_eq!(out, body(&[P2, P2]));
        assert!(matches!(
            with_first_parent(&me, &body(&[P1, P2]), None, &mut out),
            Err(Error::MergeWithoutBase { .. })
        ));
        for bad in [&b""[..], b"tree 4b82\n", b"parent x\n"] {
            assert!(matches!(
                with_first_parent(&me, bad, None, &mut out),
                Err(Error::Malformed { .. })
            ));
        }
    }
}
