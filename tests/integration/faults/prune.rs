//! Retention and pack maintenance under faults: `prune` (a position moved by `force`, the
//! shallow file, one new pack, old packs removed) and `consolidate` (small packs merged).
//! After any fault a topic reads either whole or pruned to exactly what is kept (pruned, once
//! the prune was acknowledged), nothing else changes, and the next run finishes the job.

use std::time::Duration;

use gitmq::{
    git::odb::pack::consolidate::{self, Policy},
    prune::{prune, Options, Retain},
    ObjectId, Repository, TopicName,
};

use super::{
    check::{payloads, position},
    commit_position, names, publish,
    runner::{run_matrix, Aftermath, Failure, Operation},
    template,
};

fn options() -> Options {
    Options {
        grace: Duration::ZERO,
        force: true,
        lock_timeout: Duration::from_secs(1),
        ..Options::default()
    }
}

#[derive(Debug, Clone)]
struct Prune {
    all: Vec<String>,
    kept: Vec<String>,
    other: Vec<String>,
    /// `ahead` stands at the 9th message (kept), `behind` at the 2nd (moved by `force`).
    ahead: ObjectId,
    behind: ObjectId,
    cut: ObjectId,
    done: bool,
}

impl Operation for Prune {
    fn run(&mut self, repo: &Repository) -> Result<(), Failure> {
        prune(
            repo,
            &TopicName::new("t").unwrap(),
            Retain::Keep(3),
            &options(),
        )?;
        self.done = true;
        Ok(())
    }

    fn check(&self, repo: &Repository, _: Aftermath) {
        let now = payloads(repo, "t");
        assert!(
            now == self.all || now == self.kept,
            "the topic reads {now:?}"
        );
        if self.done {
            assert_eq!(now, self.kept, "an acknowledged prune holds");
        }
        assert_eq!(
            payloads(repo, "u"),
            self.other,
            "another topic is untouched"
        );
        assert_eq!(position(repo, "ahead", "t"), Some(self.ahead));
        let behind = position(repo, "behind", "t");
        assert!(
            behind == Some(self.behind) || behind == Some(self.cut),
            "behind is at {behind:?}"
        );
        if now == self.kept {
            assert_eq!(
                behind,
                Some(self.cut),
                "pruned, so the position behind was moved first"
            );
        }
    }

    fn redo(&self, repo: &Repository) {
        prune(
            repo,
            &TopicName::new("t").unwrap(),
            Retain::Keep(3),
            &options(),
        )
        .expect("prune again");
        assert_eq!(payloads(repo, "t"), self.kept);
        assert_eq!(position(repo, "behind", "t"), Some(self.cut));
    }
}

#[test]
fn prune_survives_every_fault_point() {
    let (dir, path) = template();
    let all = names("m", 10);
    let ids = publish(&path, "t", &all, 2);
    let other = names("u", 2);
    publish(&path, "u", &other, 2);
    // A MIDX chain over the packs the prune removes: git's fsck reads it, so it must never
    // name a removed pack (it did when a prune was cut between its removals and rewriting it).
    let chain = gitmq::git::odb::pack::midx::chain::update(
        &gitmq::git::fs::real(),
        &path,
        gitmq::git::odb::pack::midx::chain::Policy {
            layer_packs: 1,
            merge_layers: 8,
        },
        true,
    )
    .expect("a chain");
    assert!(chain.layers > 0);
    commit_position(&path, "ahead", "t", ids[8]);
    commit_position(&path, "behind", "t", ids[1]);
    let op = Prune {
        kept: all[7..].to_vec(),
        all,
        other,
        ahead: ids[8],
        behind: ids[1],
        cut: ids[6],
        done: false,
    };
    run_matrix("prune (position, shallow, repack)", dir.path(), &op);
}

#[derive(Debug, Clone)]
struct Consolidate {
    all: Vec<String>,
}

fn policy() -> Policy {
    Policy {
        min_packs: 2,
        ..Policy::default()
    }
}

impl Operation for Consolidate {
    fn run(&mut self, repo: &Repository) -> Result<(), Failure> {
        consolidate::consolidate(repo.fs(), repo.git_dir(), policy(), true)?;
        Ok(())
    }

    fn check(&self, repo: &Repository, _: Aftermath) {
        assert_eq!(payloads(repo, "t"), self.all);
    }

    fn redo(&self, repo: &Repository) {
        consolidate::consolidate(&gitmq::git::fs::real(), repo.git_dir(), policy(), true)
            .expect("consolidate again");
        assert_eq!(payloads(repo, "t"), self.all);
        let packs = std::fs::read_dir(repo.git_dir().join("objects/pack"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "pack")
            })
            .count();
        assert_eq!(packs, 1, "merged into one pack");
    }
}

#[test]
fn consolidation_survives_every_fault_point() {
    let (dir, path) = template();
    let all = names("m", 4);
    publish(&path, "t", &all, 1);
    run_matrix("consolidate", dir.path(), &Consolidate { all });
}
