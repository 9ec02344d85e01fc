//! Consumer positions under faults: commits (an existing consumer twice, a new one once: its
//! position's directory is created), and deleting positions that `git pack-refs` moved into
//! `packed-refs` (the rewrite of `packed-refs`, then the loose file). A committed position is
//! there after any fault; a position only ever holds a value that was committed, never an
//! older one coming back; a consumer whose commit failed is poisoned.

use gitmq::{consume, position, Consumer, ConsumerName, ObjectId, Repository, TopicName};

use super::{
    check::position as position_of,
    commit_position, names, publish,
    runner::{run_matrix, Aftermath, Failure, Operation},
    template,
};

/// One consumer's commits: what it tried, in order, and how many were acknowledged.
#[derive(Debug, Clone, Default)]
struct Commits {
    initial: Option<ObjectId>,
    attempted: Vec<ObjectId>,
    acknowledged: usize,
}

impl Commits {
    /// The position must be the last acknowledged one or a later attempt.
    fn check(&self, now: Option<ObjectId>, who: &str) {
        let last = self
            .acknowledged
            .checked_sub(1)
            .map_or(self.initial, |i| Some(self.attempted[i]));
        let later: Vec<Option<ObjectId>> = self.attempted[self.acknowledged..]
            .iter()
            .map(|id| Some(*id))
            .collect();
        assert!(
            now == last || later.contains(&now),
            "{who}'s position is {now:?}: neither its last commit {last:?} nor a later attempt"
        );
    }
}

#[derive(Debug, Clone)]
struct Commit {
    head: ObjectId,
    old: Commits,
    new: Commits,
}

/// Read `count` messages and commit, `times` times; record in `commits`.
fn consume(
    repo: &Repository,
    name: &str,
    batches: &[usize],
    commits: &mut Commits,
) -> Result<(), consume::Error> {
    let mut consumer = Consumer::open(
        repo.clone(),
        ConsumerName::new(name).unwrap(),
        TopicName::new("t").unwrap(),
    )?;
    for &count in batches {
        let read = consumer.poll(count)?;
        commits
            .attempted
            .push(read.last().expect("messages to read").id);
        if let Err(err) = consumer.commit() {
            let again = consumer.commit();
            for outcome in [&err, again.as_ref().unwrap_err()] {
                assert!(
                    matches!(outcome, consume::Error::Poisoned { .. }),
                    "a consumer whose commit failed is not poisoned: {outcome:?}"
                );
            }
            return Err(err);
        }
        commits.acknowledged += 1;
    }
    Ok(())
}

impl Operation for Commit {
    fn run(&mut self, repo: &Repository) -> Result<(), Failure> {
        consume(repo, "old", &[2, 2], &mut self.old)?;
        Ok(consume(repo, "new", &[3], &mut self.new)?)
    }

    fn check(&self, repo: &Repository, aftermath: Aftermath) {
        self.old.check(position_of(repo, "old", "t"), "old");
        self.new.check(position_of(repo, "new", "t"), "new");
        if aftermath == Aftermath::Clean {
            assert_eq!((self.old.acknowledged, self.new.acknowledged), (2, 1));
        }
    }

    fn redo(&self, repo: &Repository) {
        for name in ["old", "new"] {
            let mut consumer = Consumer::open(
                repo.clone(),
                ConsumerName::new(name).unwrap(),
                TopicName::new("t").unwrap(),
            )
            .unwrap();
            consumer.poll(100).unwrap();
            consumer.commit().unwrap();
            assert_eq!(position_of(repo, name, "t"), Some(self.head));
        }
    }
}

#[test]
fn consumer_commits_survive_every_fault_point() {
    let (dir, path) = template();
    let ids = publish(&path, "t", &names("m", 6), 6);
    commit_position(&path, "old", "t", ids[1]);
    let op = Commit {
        head: ids[5],
        old: Commits {
            initial: Some(ids[1]),
            ..Commits::default()
        },
        new: Commits::default(),
    };
    run_matrix("consumer commit", dir.path(), &op);
}

/// Deleting positions held in `packed-refs`: `moved` is packed at `packed` and loose at
/// `loose`; `packed_only` is only in `packed-refs`.
#[derive(Debug, Clone)]
struct Delete {
    packed: ObjectId,
    loose: ObjectId,
    packed_only: ObjectId,
    deleted: Vec<&'static str>,
}

impl Operation for Delete {
    fn run(&mut self, repo: &Repository) -> Result<(), Failure> {
        for name in ["moved", "packed-only"] {
            position::delete(repo, &ConsumerName::new(name).unwrap(), None)?;
            self.deleted.push(name);
        }
        Ok(())
    }

    fn check(&self, repo: &Repository, _: Aftermath) {
        let moved = position_of(repo, "moved", "t");
        assert_ne!(
            moved,
            Some(self.packed),
            "an older, packed position came back"
        );
        let allowed = if self.deleted.contains(&"moved") {
            None
        } else {
            Some(self.loose)
        };
        assert!(
            moved.is_none() || moved == allowed,
            "moved's position is {moved:?}"
        );
        let packed_only = position_of(repo, "packed-only", "t");
        let allowed = if self.deleted.contains(&"packed-only") {
            None
        } else {
            Some(self.packed_only)
        };
        assert!(
            packed_only.is_none() || packed_only == allowed,
            "packed-only's position is {packed_only:?}"
        );
    }

    fn redo(&self, repo: &Repository) {
        for name in ["moved", "packed-only"] {
            position::delete(repo, &ConsumerName::new(name).unwrap(), None).unwrap();
            assert_eq!(position_of(repo, name, "t"), None);
        }
    }
}

#[test]
fn deleting_packed_positions_survives_every_fault_point() {
    let (dir, path) = template();
    let ids = publish(&path, "t", &names("m", 4), 4);
    commit_position(&path, "moved", "t", ids[1]);
    commit_position(&path, "packed-only", "t", ids[3]);
    crate::util::git(
        &["--git-dir", path.to_str().unwrap(), "pack-refs", "--all"],
        None,
    );
    commit_position(&path, "moved", "t", ids[2]);
    let op = Delete {
        packed: ids[1],
        loose: ids[2],
        packed_only: ids[3],
        deleted: Vec::new(),
    };
    run_matrix("packed-refs rewrite (delete)", dir.path(), &op);
}
