//! The commit walk against a naive oracle on random histories: reachable from the wants minus
//! reachable from the commons. With dates that grow along history the walk must send exactly
//! that; with equal or skewed dates it must still send all of it, and nothing the wants do
//! not reach.

use std::collections::{HashMap, HashSet};

use gix_hash::ObjectId;

use super::*;
use crate::git::odb::LooseStore;

/// A tiny deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

/// How commit times relate to history.
#[derive(Debug, Clone, Copy)]
enum Dates {
    /// Strictly newer than every parent.
    Growing,
    /// All the same second (a fast producer).
    Equal,
    /// Random.
    Skewed,
}

struct History {
    _dir: tempfile::TempDir,
    odb: Odb,
    ids: Vec<ObjectId>,
    parents: Vec<Vec<usize>>,
}

fn history(rng: &mut Rng, n: usize, dates: Dates) -> History {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(objects.join("pack")).unwrap();
    let store = LooseStore::at(&objects);
    let mut ids: Vec<ObjectId> = Vec::new();
    let mut parents = Vec::new();
    for i in 0..n {
        // Mostly a chain (topics), some roots and merges (joins).
        let mine: Vec<usize> = match (i, rng.below(10)) {
            (0, _) | (_, 0) => Vec::new(),
            (_, 1) if i > 2 => vec![i - 1, rng.below(i - 1)],
            _ => vec![rng.below(i.min(3)) + i - i.min(3)],
        };
        let time = match dates {
            Dates::Growing => 1_000 + i as u64,
            Dates::Equal => 1_000,
            Dates::Skewed => 1_000 + rng.below(50) as u64,
        };
        let mut body = String::from("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n");
        for &p in &mine {
            body.extend(["parent ", &ids[p].to_string(), "\n"]);
        }
        let time = time.to_string();
        body.extend([
            "author a <a@b> ",
            &time,
            " +0000\ncommitter a <a@b> ",
            &time,
        ]);
        body.extend([" +0000\n\nm", &i.to_string(), "\n"]);
        ids.push(
            store
                .write(
                    gix_object::Kind::Commit,
                    body.as_bytes(),
                    false,
                    &mut Vec::new(),
                )
                .unwrap(),
        );
        parents.push(mine);
    }
    History {
        odb: Odb::at(&objects),
        _dir: dir,
        ids,
        parents,
    }
}

fn reachable(parents: &[Vec<usize>], from: &[usize]) -> HashSet<usize> {
    let mut seen = HashSet::new();
    let mut stack = from.to_vec();
    while let Some(i) = stack.pop() {
        if seen.insert(i) {
            stack.extend(&parents[i]);
        }
    }
    seen
}

#[test]
fn the_walk_sends_exactly_what_the_client_lacks_when_dates_grow_and_never_less_otherwise() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..60 {
        let dates = [Dates::Growing, Dates::Equal, Dates::Skewed][case % 3];
        let n = 5 + rng.below(60);
        let mut h = history(&mut rng, n, dates);
        let index: HashMap<ObjectId, usize> =
            h.ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let wants: Vec<usize> = (0..=rng.below(3)).map(|_| rng.below(n)).collect();
        let commons: Vec<usize> = (0..rng.below(4)).map(|_| rng.below(n)).collect();
        let want_ids: Vec<ObjectId> = wants.iter().map(|&i| h.ids[i]).collect();
        let common_ids: Vec<ObjectId> = commons.iter().map(|&i| h.ids[i]).collect();
        let walk = walk(&mut h.odb, &want_ids, &common_ids, &HashSet::new()).unwrap();

        let sent: HashSet<usize> = walk.sent.iter().map(|s| index[&s.id]).collect();
        assert_eq!(sent.len(), walk.sent.len(), "case {case}: each commit once");
        let wanted = reachable(&h.parents, &wants);
        let had = reachable(&h.parents, &commons);
        let lacking: HashSet<usize> = wanted.difference(&had).copied().collect();
        assert!(
            lacking.is_subset(&sent),
            "case {case} ({dates:?}): missing {:?}",
            lacking.difference(&sent).collect::<Vec<_>>()
        );
        assert!(
            sent.is_subset(&wanted),
            "case {case}: only what the wants reach"
        );
        if matches!(dates, Dates::Growing) {
            assert_eq!(sent, lacking, "case {case}: exact when dates grow");
        }
        let sent_root = sent.iter().any(|&i| h.parents[i].is_empty());
        assert_eq!(walk.reached_root, sent_root, "case {case}");
    }
}

#[test]
fn equal_dates_stop_a_linear_topic_at_its_first_common_commit() {
    let mut rng = Rng(7);
    let mut h = history(&mut rng, 1, Dates::Equal);
    // A long chain, all in one second.
    let store = LooseStore::at(h.odb.objects_dir());
    for i in 1..2_000 {
        let body = format!(
            "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nparent {}\n\
             author a <a@b> 1000 +0000\ncommitter a <a@b> 1000 +0000\n\nm{i}\n",
            h.ids[i - 1]
        );
        h.ids.push(
            store
                .write(
                    gix_object::Kind::Commit,
                    body.as_bytes(),
                    false,
                    &mut Vec::new(),
                )
                .unwrap(),
        );
    }
    let tip = h.ids[1_999];
    let common = h.ids[1_996];
    let walk = walk(&mut h.odb, &[tip], &[common], &HashSet::new()).unwrap();
    assert_eq!(walk.sent.len(), 3);
    assert!(!walk.reached_root);
    assert_eq!(
        walk.edge_trees,
        vec![ObjectId::empty_tree(gix_hash::Kind::Sha1)]
    );
}
