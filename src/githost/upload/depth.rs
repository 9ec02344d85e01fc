//! Owns shallow fetches (`deepen <n>`, what `git clone --depth n` sends): the commits within
//! `n` of the wants, and the boundary commits whose parents stay home (git's
//! `get_shallow_commits` in `shallow.c`): a want is at depth 1, its parents at depth 2, and a
//! commit at depth `n` with parents is a boundary (sent, its parents not; the client records
//! it in its `shallow` file). For a queue that is "the newest `n` messages of the topic".
//!
//! Invariants: the walk is breadth first, so a commit reached on several paths counts at its
//! smallest depth, and it reads at most the commits within the depth (plus those of the
//! commons it meets inside the window); commits the client has (a common commit and what it
//! reaches inside the window) are not sent, and their trees bound the trees sent; a commit
//! shallow in this repository is a boundary whatever its depth. Deepening a client that is
//! already shallow (`unshallow`, `deepen-relative`) is not done here: the caller refuses it.

use std::collections::{HashMap, HashSet, VecDeque};

use gix_hash::ObjectId;

use super::{
    super::{commit, Error},
    walk::{CommitWalk, Sent},
};
use crate::git::odb::{self, Odb};

/// Walk from `wants` (commits) down to `depth` commits, against `commons`.
pub(crate) fn walk(
    odb: &mut Odb,
    wants: &[ObjectId],
    depth: u32,
    commons: &[ObjectId],
) -> Result<CommitWalk, Error> {
    let mut infos: HashMap<ObjectId, commit::CommitInfo> = HashMap::new();
    let mut order: Vec<ObjectId> = Vec::new();
    let mut boundaries: Vec<ObjectId> = Vec::new();
    let mut queue: VecDeque<(ObjectId, u32)> = wants.iter().map(|&id| (id, 1)).collect();
    let mut body = Vec::new();
    while let Some((id, at)) = queue.pop_front() {
        if infos.contains_key(&id) {
            continue;
        }
        let parsed = match commit::read_object(odb, &id, &mut body) {
            Ok((gix_object::Kind::Commit, body)) => commit::parse(body),
            Ok(_) => {
                return Err(Error::Corrupt {
                    reason: "a commit's parent is not a commit",
                    id,
                })
            }
            Err(odb::Error::Missing { .. }) => {
                return Err(Error::Corrupt {
                    reason: "a commit's parent is missing (and not shallow)",
                    id,
                })
            }
            Err(err) => return Err(err.into()),
        };
        let mut info = parsed.ok_or(Error::Corrupt {
            reason: "a commit is malformed",
            id,
        })?;
        let shallow_here = odb.is_shallow(&id)?;
        if shallow_here || (at >= depth && !info.parents.is_empty()) {
            boundaries.push(id);
            info.parents.clear();
        }
        queue.extend(info.parents.iter().map(|&parent| (parent, at + 1)));
        order.push(id);
        infos.insert(id, info);
    }

    // What the client has inside the window: the commons there and what they reach.
    let mut had: HashSet<ObjectId> = HashSet::new();
    let mut stack: Vec<ObjectId> = commons
        .iter()
        .copied()
        .filter(|c| infos.contains_key(c))
        .collect();
    while let Some(id) = stack.pop() {
        if had.insert(id) {
            stack.extend(
                infos
                    .get(&id)
                    .into_iter()
                    .flat_map(|i| i.parents.iter().copied()),
            );
        }
    }
    let mut out = CommitWalk {
        boundaries,
        ..CommitWalk::default()
    };
    let mut edge_trees = HashSet::new();
    for id in order {
        let Some(info) = infos.get(&id) else { continue };
        if had.contains(&id) {
            continue;
        }
        out.sent.push(Sent {
            id,
            tree: info.tree,
        });
        for parent in &info.parents {
            if had.contains(parent) {
                edge_trees.extend(infos.get(parent).map(|p| p.tree));
            }
        }
    }
    out.edge_trees = edge_trees.into_iter().collect();
    out.edge_trees.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Repository, TopicName};

    #[test]
    fn depth_n_sends_the_newest_n_messages_and_names_the_last_as_a_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path().join("q.git")).unwrap();
        let ids = repo
            .producer(&TopicName::new("t").unwrap())
            .publish_batch((0..10).map(|i| format!("m{i}").into_bytes()))
            .unwrap();
        let mut odb = repo.odb();
        let walk3 = walk(&mut odb, &[ids[9]], 3, &[]).unwrap();
        let sent: Vec<ObjectId> = walk3.sent.iter().map(|s| s.id).collect();
        assert_eq!(sent, [ids[9], ids[8], ids[7]]);
        assert_eq!(walk3.boundaries, [ids[7]]);
        let all = walk(&mut odb, &[ids[9]], 50, &[]).unwrap();
        assert_eq!(all.sent.len(), 10);
        assert!(all.boundaries.is_empty(), "a root is not a boundary");
        let had = walk(&mut odb, &[ids[9]], 5, &[ids[7]]).unwrap();
        let sent: Vec<ObjectId> = had.sent.iter().map(|s| s.id).collect();
        assert_eq!(sent, [ids[9], ids[8]], "the client has 7 and below");
        assert_eq!(
            had.boundaries,
            [ids[5]],
            "the boundary does not depend on the haves"
        );
        assert_eq!(had.edge_trees, [ObjectId::empty_tree(gix_hash::Kind::Sha1)]);
    }
}
