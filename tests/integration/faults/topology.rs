//! Join and split under faults. Join (two sources, rounds of two copies: three rounds, each
//! its packs, a record commit and two ref moves): the destination holds its own messages and
//! then copies, no source message twice, each source in order, everything once the join was
//! acknowledged, and running it again copies each message exactly once. Split: the new topic
//! is absent or complete with its positions carried; running it again completes it.

use gitmq::{topology, Repository, TopicName};

use super::{
    check::{messages, payloads, position},
    commit_position, names, publish,
    runner::{run_matrix, Aftermath, Failure, Operation},
    template,
};

fn topic(name: &str) -> TopicName {
    TopicName::new(name).unwrap()
}

#[derive(Debug, Clone)]
struct Join {
    a: Vec<String>,
    b: Vec<String>,
    own: Vec<String>,
    done: bool,
}

impl Join {
    /// The destination: its own messages, then copies with no source message twice and
    /// each source's order kept; whether every source message is there.
    fn check_destination(&self, repo: &Repository) -> bool {
        let dst = payloads(repo, "dst");
        assert!(
            dst.starts_with(&self.own),
            "the destination's own messages stay: {dst:?}"
        );
        let copies = &dst[self.own.len()..];
        for source in [&self.a, &self.b] {
            let of_source: Vec<&String> = copies.iter().filter(|p| source.contains(p)).collect();
            assert!(
                of_source.len() <= source.len()
                    && of_source.iter().zip(source).all(|(c, s)| *c == s),
                "a source's messages are copied once each, in order: {dst:?}"
            );
        }
        assert!(
            copies
                .iter()
                .all(|p| self.a.contains(p) || self.b.contains(p)),
            "only source messages are copied: {dst:?}"
        );
        copies.len() == self.a.len() + self.b.len()
    }
}

impl Operation for Join {
    fn run(&mut self, repo: &Repository) -> Result<(), Failure> {
        topology::join::join_in_rounds(repo, &[topic("a"), topic("b")], &topic("dst"), true, 2)?;
        self.done = true;
        Ok(())
    }

    fn check(&self, repo: &Repository, _: Aftermath) {
        let complete = self.check_destination(repo);
        assert!(
            complete || !self.done,
            "an acknowledged join holds every copy"
        );
        assert_eq!(payloads(repo, "a"), self.a, "sources are untouched");
        assert_eq!(payloads(repo, "b"), self.b, "sources are untouched");
    }

    fn redo(&self, repo: &Repository) {
        topology::join::join_in_rounds(repo, &[topic("a"), topic("b")], &topic("dst"), true, 2)
            .expect("join again");
        assert!(
            self.check_destination(repo),
            "joined again: every message exactly once"
        );
    }
}

#[test]
fn join_survives_every_fault_point() {
    let (dir, path) = template();
    let a = names("a", 3);
    let b = names("b", 3);
    let own = names("d", 1);
    publish(&path, "a", &a, 3);
    publish(&path, "b", &b, 3);
    publish(&path, "dst", &own, 1);
    run_matrix(
        "join",
        dir.path(),
        &Join {
            a,
            b,
            own,
            done: false,
        },
    );
}

#[derive(Debug, Clone)]
struct Split {
    selected: Vec<String>,
    done: bool,
}

impl Split {
    fn split(repo: &Repository) -> Result<topology::split::Split, gitmq::Error> {
        let even = |m: &gitmq::MessageRef<'_>| matches!(m.payload, b"m0" | b"m2" | b"m4");
        topology::split(repo, &topic("t"), None, &topic("s"), even, true)
    }

    /// The new topic, if there, is complete, and `reader`'s position is on it at the copy
    /// of the newest selected message it had read (`m2`). Whether it is there.
    fn check_new_topic(&self, repo: &Repository) -> bool {
        let s = messages(repo, "s");
        if s.is_empty() {
            return false;
        }
        let payloads: Vec<&String> = s.iter().map(|(_, p)| p).collect();
        assert_eq!(
            payloads,
            self.selected.iter().collect::<Vec<_>>(),
            "the new topic is complete"
        );
        assert_eq!(
            position(repo, "reader", "s"),
            Some(s[1].0),
            "the position is carried to the copy of m2"
        );
        true
    }
}

impl Operation for Split {
    fn run(&mut self, repo: &Repository) -> Result<(), Failure> {
        Self::split(repo)?;
        self.done = true;
        Ok(())
    }

    fn check(&self, repo: &Repository, _: Aftermath) {
        let there = self.check_new_topic(repo);
        assert!(there || !self.done, "an acknowledged split holds");
        assert_eq!(payloads(repo, "t").len(), 6, "the topic is untouched");
    }

    fn redo(&self, repo: &Repository) {
        if payloads(repo, "s").is_empty() {
            Self::split(repo).expect("split again");
        } else {
            assert!(matches!(
                Self::split(repo),
                Err(gitmq::Error::Topology(topology::Error::Exists { .. }))
            ));
        }
        assert!(self.check_new_topic(repo), "split again: complete");
    }
}

#[test]
fn split_survives_every_fault_point() {
    let (dir, path) = template();
    let all = names("m", 6);
    let ids = publish(&path, "t", &all, 6);
    commit_position(&path, "reader", "t", ids[3]);
    let op = Split {
        selected: vec!["m0".into(), "m2".into(), "m4".into()],
        done: false,
    };
    run_matrix("split", dir.path(), &op);
}
