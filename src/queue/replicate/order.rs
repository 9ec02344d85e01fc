//! Owns telling which of two commits of one first-parent chain is the newer: what fetch asks
//! before it keeps a local consumer position rather than the remote's.
//!
//! Invariant: the answer is exact (`true` only when `older` is on `newer`'s first-parent
//! chain); both chains are walked down together, one step each in turn, so the cost is about
//! twice the distance between the two whichever is ahead, and a walk to the root only when
//! they are on different chains.

use gix_hash::ObjectId;

use crate::git::{odb::Odb, walk};

/// Whether `older` lies on the first-parent chain below `newer` (or is it).
pub(crate) fn is_at_or_below(
    odb: &mut Odb,
    buf: &mut Vec<u8>,
    older: ObjectId,
    newer: ObjectId,
) -> Result<bool, walk::Error> {
    let (mut down_from_newer, mut down_from_older) = (Some(newer), Some(older));
    let (mut near_newer, mut near_older) = (None, None);
    while down_from_newer.is_some() || down_from_older.is_some() {
        if let Some(id) = down_from_newer {
            if id == older {
                return Ok(true);
            }
            down_from_newer = walk::step(odb, &id, &mut near_newer, buf)?.1;
        }
        if let Some(id) = down_from_older {
            if id == newer {
                return Ok(false);
            }
            down_from_older = walk::step(odb, &id, &mut near_older, buf)?.1;
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Repository, TopicName};

    #[test]
    fn the_newer_of_two_commits_of_a_chain_is_told_either_way_round() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let topic = TopicName::new("t").unwrap();
        let ids = repo
            .producer(&topic)
            .publish_batch((0..20).map(|i| format!("m{i}").into_bytes()))
            .unwrap();
        let other = repo
            .producer(&TopicName::new("other").unwrap())
            .publish(b"elsewhere")
            .unwrap();
        let (mut odb, mut buf) = (repo.odb(), Vec::new());
        let mut at_or_below =
            |older, newer| is_at_or_below(&mut odb, &mut buf, older, newer).unwrap();
        assert!(at_or_below(ids[3], ids[17]));
        assert!(!at_or_below(ids[17], ids[3]));
        assert!(at_or_below(ids[5], ids[5]));
        assert!(!at_or_below(other, ids[19]) && !at_or_below(ids[0], other));
    }
}
