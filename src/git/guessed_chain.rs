//! Owns the two-core walk of a long first-parent chain: guess the chain from pack order, then
//! check every link of the guess on two threads at once.
//!
//! Why: a consumer's backlog walks the whole chain from the head down to its position before
//! it can hand out the oldest message, one commit at a time on one core (35-40% of `gitmq
//! consume`'s time on gitmq's packs). gitmq writes a topic's messages oldest first, one after
//! the other, so a chain is mostly runs of neighbouring entries in pack order.
//!
//! Data flow: [`guess_and_check()`]:
//! 1. *guess* from the indexes alone: from the head's entry, every entry below it in pack
//!    order (the empty tree, which every gitmq pack holds, skipped), down to the pack's first
//!    entry; read only the lowest commit's first parent, find it, and go on in its pack from
//!    there (each pack entered once); end where the stop's id comes up (or a root, with no
//!    stop);
//!    every [`SPOT_CHECK_EVERY`] entries one link is checked at once, so a wrong guess ends
//!    early;
//! 2. *check* every link: each guessed commit is a commit whose first parent, as the commit
//!    says, is the next one guessed (the oldest's: the stop, or none). The links are
//!    independent: the newer half is checked here, the older half on a scoped thread with
//!    its own [`Odb`] handle.
//!
//! Invariants: the result is either `None` (the guess failed or does not apply: the caller
//! walks exactly, which also names any error) or the exact first-parent chain from the head
//! down to the stop, newest first: every link was checked, and a chain whose links all hold
//! from the head down is *the* chain, by induction from the head. Nothing is handed out
//! before the check ends. Not used with a shallow boundary (pruned history), loose objects,
//! or chains shorter than [`MIN_GUESSED`] (one core walks those as fast).

use gix_hash::ObjectId;

use crate::git::{
    hash::OBJECT_HASH,
    message::parent::{first_parent, FIRST_PARENT_PREFIX_LEN},
    odb::{pack::set::PackKey, Location, Odb},
};

/// Chains shorter than this are walked exactly on one core: a second handle opens every
/// pack's index again, which costs more than it saves on a short chain.
pub const MIN_GUESSED: usize = 1 << 16;

/// While guessing, one link in this many is checked at once: a pack holding several topics
/// interleaved ends the guess after at most this many entries, not at the limit.
const SPOT_CHECK_EVERY: usize = 4096;

/// Where a guessed chain goes, newest first (a consumer's backlog segment: ids and
/// locations, no more).
pub trait ChainSink: Default + Sync {
    /// Add the next older commit.
    fn push(&mut self, id: ObjectId, location: Location);
    /// Commits so far.
    fn len(&self) -> usize;
    /// The commit `at` (0: the newest).
    fn get(&self, at: usize) -> Option<(ObjectId, Location)>;
}

/// The first-parent chain from `head` down to `stop` (exclusive; `None`: to the root),
/// newest first, with where each commit is stored; `None` when the guess does not hold, does
/// not apply, is longer than `limit`, or anything fails (then walk exactly).
pub fn guess_and_check<S: ChainSink>(
    odb: &mut Odb,
    head: ObjectId,
    stop: Option<ObjectId>,
    limit: usize,
    scratch: &mut Vec<u8>,
) -> Option<S> {
    if odb.has_shallow().ok()? {
        return None;
    }
    let chain: S = guess(odb, head, stop, limit, scratch)?;
    let len = chain.len();
    if len < MIN_GUESSED {
        return None;
    }
    let half = len / 2;
    // The newer half's last link goes to the older half's first commit.
    let below_newer = chain.get(half).map(|(id, _)| id);
    let mut second = odb.sibling();
    let (newer_holds, older_holds) = std::thread::scope(|scope| {
        let chain = &chain;
        let older_check = std::thread::Builder::new()
            .name("gitmq-walk".into())
            .spawn_scoped(scope, move || {
                links_hold(&mut second, chain, half..len, stop, &mut Vec::new())
            });
        let newer_holds = links_hold(odb, chain, 0..half, below_newer, scratch);
        let older_holds = match older_check {
            Ok(thread) => thread.join().unwrap_or(false),
            // No thread: check here.
            Err(_) => links_hold(odb, chain, half..len, stop, scratch),
        };
        (newer_holds, older_holds)
    });
    (newer_holds && older_holds).then_some(chain)
}

/// Step 1: the chain as pack order suggests it (see the module header); `None` if it leaves
/// packed objects, is longer than `limit`, or a read fails.
fn guess<S: ChainSink>(
    odb: &mut Odb,
    head: ObjectId,
    stop: Option<ObjectId>,
    limit: usize,
    scratch: &mut Vec<u8>,
) -> Option<S> {
    let empty_tree = ObjectId::empty_tree(OBJECT_HASH);
    let mut chain = S::default();
    let mut entry = head;
    if Some(entry) == stop {
        return Some(chain);
    }
    // Each pack is entered once: gitmq writes a topic's run into a pack once, and a second
    // entry (a pack written newest first by git, or a chain winding through a pack) would
    // guess its lower entries again. Each round takes at least one commit, so `limit`
    // bounds the rounds too.
    let mut entered: Vec<PackKey> = Vec::new();
    loop {
        let (_, near) = odb.locate_near(&entry, None).ok()?;
        let near = near?;
        let pack_key = near.pack();
        if entered.contains(&pack_key) {
            return None;
        }
        entered.push(pack_key);
        let mut lowest = None;
        // Ranks still to take in this pack, from the top: `next_rank` and below.
        let mut next_rank = Some(near.rank());
        while let Some(top) = next_rank {
            let pack = odb.packs().ok()?.pack(pack_key).ok()??;
            let mut taken = 0;
            let mut rank = Some(top);
            while let Some(at) = rank.filter(|_| taken < SPOT_CHECK_EVERY) {
                rank = at.checked_sub(1);
                let (id, offset) = pack.at_rank(at)?;
                if id == empty_tree {
                    continue;
                }
                let id = id.to_owned();
                if Some(id) == stop {
                    return Some(chain);
                }
                if chain.len() == limit {
                    return None;
                }
                chain.push(
                    id,
                    Location::Packed {
                        pack: pack_key,
                        offset,
                    },
                );
                lowest = Some(chain.len() - 1);
                taken += 1;
            }
            next_rank = rank;
            // A spot check: the newest two taken are parent and child, or the guess is
            // wrong here already (topics interleaved in a pack) and ends before it grows.
            if next_rank.is_some() && !newest_link_holds(odb, &chain, scratch) {
                return None;
            }
        }
        let (_, location) = chain.get(lowest?)?;
        let (kind, prefix) = odb
            .object_prefix_at(&location, FIRST_PARENT_PREFIX_LEN, scratch)
            .ok()?;
        if kind != gix_object::Kind::Commit {
            return None;
        }
        match first_parent(prefix).ok()? {
            None if stop.is_none() => return Some(chain),
            None => return None,
            Some(parent) if Some(parent) == stop => return Some(chain),
            Some(parent) => entry = parent,
        }
    }
}

/// Whether the second newest commit of `chain` is the newest one's first parent (`false` if
/// it has fewer than two).
fn newest_link_holds<S: ChainSink>(odb: &mut Odb, chain: &S, scratch: &mut Vec<u8>) -> bool {
    let len = chain.len();
    let Some((parent, _)) = len.checked_sub(1).and_then(|at| chain.get(at)) else {
        return false;
    };
    len >= 2 && links_hold(odb, chain, len - 2..len - 1, Some(parent), scratch)
}

/// Step 2: whether each commit of `chain` at `range` (newest first) is a commit whose first
/// parent is the next one, the last one's `below`.
fn links_hold<S: ChainSink>(
    odb: &mut Odb,
    chain: &S,
    range: std::ops::Range<usize>,
    below: Option<ObjectId>,
    scratch: &mut Vec<u8>,
) -> bool {
    let end = range.end;
    for at in range {
        let Some((_, location)) = chain.get(at) else {
            return false;
        };
        let expected = if at + 1 == end {
            below
        } else {
            match chain.get(at + 1) {
                Some((id, _)) => Some(id),
                None => return false,
            }
        };
        let Ok((kind, prefix)) = odb.object_prefix_at(&location, FIRST_PARENT_PREFIX_LEN, scratch)
        else {
            return false;
        };
        if kind != gix_object::Kind::Commit || first_parent(prefix).ok() != Some(expected) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        produce::{Producer, ProducerConfig},
        Durability, Repository, TopicName,
    };

    /// A chain as a plain list.
    #[derive(Default)]
    struct Listed(Vec<(ObjectId, Location)>);

    impl ChainSink for Listed {
        fn push(&mut self, id: ObjectId, location: Location) {
            self.0.push((id, location));
        }
        fn len(&self) -> usize {
            self.0.len()
        }
        fn get(&self, at: usize) -> Option<(ObjectId, Location)> {
            self.0.get(at).copied()
        }
    }

    /// `n` messages on `topic` in batches (packs) of `batch`; their ids, oldest first.
    fn publish(repo: &Repository, topic: &str, n: usize, batch: usize) -> Vec<ObjectId> {
        let config = ProducerConfig {
            durability: Durability::None,
            max_batch_messages: batch,
            multi_pack_index: None,
            ..ProducerConfig::default()
        };
        let mut producer =
            Producer::with_config(repo.clone(), TopicName::new(topic).unwrap(), config);
        // No other writer: the ids `append` hands out are final.
        let ids = (0..n)
            .map(|i| {
                producer
                    .append(format!("{topic} {i}").as_bytes())
                    .unwrap()
                    .id
            })
            .collect();
        producer.flush().unwrap();
        ids
    }

    /// The chain as the exact walk finds it, newest first.
    fn walked(odb: &mut Odb, head: ObjectId, stop: Option<ObjectId>) -> Vec<ObjectId> {
        let mut chain = crate::git::walk::Chain::new(head, stop);
        let mut ids = Vec::new();
        while let Some((id, _)) = chain.next(odb, &mut Vec::new()).unwrap() {
            ids.push(id);
        }
        ids
    }

    #[test]
    fn a_long_chain_over_many_packs_is_guessed_exactly_down_to_a_stop_inside_a_pack() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let ids = publish(&repo, "t", MIN_GUESSED + 9_000, 7_000);
        let head = *ids.last().unwrap();
        let mut odb = repo.odb();
        let mut scratch = Vec::new();
        let all: Listed = guess_and_check(&mut odb, head, None, usize::MAX, &mut scratch)
            .expect("gitmq's packs: the guess holds");
        let guessed: Vec<ObjectId> = all.0.iter().map(|(id, _)| *id).collect();
        assert_eq!(guessed, walked(&mut odb, head, None), "to the root");
        assert_eq!(guessed.len(), ids.len());

        // A stop in the middle of a pack (packs of 7,000): the guess ends right above it.
        let stop = ids[3_500];
        let above: Listed = guess_and_check(&mut odb, head, Some(stop), usize::MAX, &mut scratch)
            .expect("the guess holds down to the stop");
        let guessed: Vec<ObjectId> = above.0.iter().map(|(id, _)| *id).collect();
        assert_eq!(guessed, walked(&mut odb, head, Some(stop)));
        assert_eq!(guessed.len(), ids.len() - 3_501);

        // Longer than the limit, or shorter than worth two cores: no guess.
        assert!(guess_and_check::<Listed>(&mut odb, head, None, 1_000, &mut scratch).is_none());
        let short_stop = ids[ids.len() - 100];
        assert!(guess_and_check::<Listed>(
            &mut odb,
            head,
            Some(short_stop),
            usize::MAX,
            &mut scratch
        )
        .is_none());
    }

    #[test]
    fn a_wrong_link_anywhere_refuses_the_guess() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let ids = publish(&repo, "t", 3_000, 1_000);
        let head = *ids.last().unwrap();
        let mut odb = repo.odb();
        let mut scratch = Vec::new();
        let good: Listed = guess(&mut odb, head, None, usize::MAX, &mut scratch).unwrap();
        assert!(links_hold(
            &mut odb,
            &good,
            0..good.len(),
            None,
            &mut scratch
        ));
        // Two neighbours swapped, in each half and across the halves' border; the oldest
        // given a parent; a commit left out.
        for swap in [10, 1_499, 2_990] {
            let mut bad = Listed(good.0.clone());
            bad.0.swap(swap, swap + 1);
            assert!(
                !links_hold(&mut odb, &bad, 0..bad.len(), None, &mut scratch),
                "swapped at {swap}"
            );
        }
        let oldest_has_a_parent = Some(ids[0]);
        let without_root = Listed(good.0[..good.len() - 1].to_vec());
        assert!(links_hold(
            &mut odb,
            &without_root,
            0..without_root.len(),
            oldest_has_a_parent,
            &mut scratch
        ));
        assert!(!links_hold(
            &mut odb,
            &without_root,
            0..without_root.len(),
            None,
            &mut scratch
        ));
        let mut gap = Listed(good.0.clone());
        gap.0.remove(1_200);
        assert!(!links_hold(
            &mut odb,
            &gap,
            0..gap.len(),
            None,
            &mut scratch
        ));
    }
}
