//! Fetch under faults, from a real smart-HTTP server (lighttpd + git-http-backend): the
//! received pack is indexed and installed (synced), then tracking refs, a fast-forwarded
//! topic, a new topic and an adopted position move (not synced, as git does). After any fault
//! every local ref holds its old value or the server's, never a missing object; an
//! acknowledged fetch's objects are all there; fetching again brings everything.

use std::collections::BTreeMap;

use gitmq::{replicate, ObjectId, Repository};

use super::{
    commit_position, names, publish,
    runner::{run_matrix, Aftermath, Failure, Operation},
    template,
};
use crate::{server::HttpServer, util::git};

type Refs = BTreeMap<String, ObjectId>;

fn refs(repo: &Repository) -> Refs {
    repo.refs()
        .list("refs/")
        .expect("list refs")
        .into_iter()
        .map(|(name, id)| (name.to_string(), id))
        .collect()
}

#[derive(Debug, Clone)]
struct Fetch {
    before: Refs,
    after: Refs,
    done: bool,
}

impl Operation for Fetch {
    fn run(&mut self, repo: &Repository) -> Result<(), Failure> {
        replicate::fetch(repo, "origin", &replicate::fetch::DEFAULT_PREFIXES)?;
        self.done = true;
        Ok(())
    }

    fn check(&self, repo: &Repository, _: Aftermath) {
        let now = refs(repo);
        for name in self.before.keys().chain(self.after.keys()) {
            let value = now.get(name);
            assert!(
                value == self.before.get(name) || value == self.after.get(name),
                "{name} holds {value:?}: neither its old value nor the server's"
            );
        }
        assert!(
            now.keys()
                .all(|n| self.before.contains_key(n) || self.after.contains_key(n)),
            "no other ref appears: {now:?}"
        );
        if self.done {
            let mut odb = repo.odb();
            for (name, id) in &self.after {
                assert!(odb.contains(id), "an acknowledged fetch lost {name}'s {id}");
            }
        }
    }

    fn redo(&self, repo: &Repository) {
        replicate::fetch(repo, "origin", &replicate::fetch::DEFAULT_PREFIXES).expect("fetch again");
        assert_eq!(refs(repo), self.after, "fetched again: the server's state");
    }
}

fn push(path: &std::path::Path, url: &str) {
    git(
        &[
            "--git-dir",
            path.to_str().unwrap(),
            "push",
            "-q",
            url,
            "refs/heads/*:refs/heads/*",
            "refs/gitmq/*:refs/gitmq/*",
        ],
        None,
    );
}

#[test]
fn fetch_survives_every_fault_point() {
    let server = HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    let (_producer_dir, producer) = template();
    let ids = publish(&producer, "orders", &names("o", 3), 3);
    commit_position(&producer, "billing", "orders", ids[1]);
    push(&producer, &url);

    let (dir, local) = template();
    git(
        &[
            "--git-dir",
            local.to_str().unwrap(),
            "remote",
            "add",
            "origin",
            &url,
        ],
        None,
    );
    let repo = Repository::open(&local).unwrap();
    replicate::fetch(&repo, "origin", &replicate::fetch::DEFAULT_PREFIXES).expect("first fetch");
    let before = refs(&repo);

    let more = publish(&producer, "orders", &names("p", 2), 2);
    publish(&producer, "eu/x", &names("x", 2), 2);
    commit_position(&producer, "billing", "orders", more[0]);
    push(&producer, &url);
    let op = Fetch {
        before,
        after: BTreeMap::new(),
        done: false,
    };
    // The end state: what a fetch without faults gives.
    let after = {
        let copy_dir = tempfile::tempdir().unwrap();
        let copy = copy_dir.path().join("q.git");
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&local)
            .arg(&copy)
            .status()
            .unwrap();
        assert!(status.success());
        let repo = Repository::open(&copy).unwrap();
        replicate::fetch(&repo, "origin", &replicate::fetch::DEFAULT_PREFIXES).unwrap();
        refs(&repo)
    };
    assert_eq!(
        after.len(),
        6,
        "two topics, their tracking refs, a position and its tracking ref: {after:?}"
    );
    run_matrix(
        "fetch (index-pack, ref moves)",
        dir.path(),
        &Fetch { after, ..op },
    );
}
