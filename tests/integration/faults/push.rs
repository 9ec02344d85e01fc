//! Push under faults, to a real smart-HTTP server, after another producer pushed first: the
//! push fetches the new head, copies the local unpushed messages onto it (packs, the topic
//! ref, a consumer position moved back to the fork: all synced), sends them, then moves the
//! tracking refs (synced). After any fault the local topic is its old history or the rebuilt
//! one, the position is where it was or at the fork, the server holds its messages or all of
//! them; pushing again puts every message on the server exactly once.

use std::path::{Path, PathBuf};

use gitmq::{replicate, Repository};

use super::{
    check::{payloads, position},
    commit_position, names, publish,
    runner::{run_matrix, Aftermath, Failure, Operation},
    template,
};
use crate::{server::HttpServer, util::git};

#[derive(Debug, Clone)]
pub(super) struct Push {
    /// The server's repository, reset from `server_template` before each run.
    server_repo: PathBuf,
    server_template: PathBuf,
    /// The local topic before and after its rebuild; the server's before and after the push.
    local_before: Vec<String>,
    rebuilt: Vec<String>,
    server_before: Vec<String>,
    /// The local consumer's position before, and at the fork after a rebuild.
    read_up_to: gitmq::ObjectId,
    fork: gitmq::ObjectId,
    done: bool,
}

fn server_payloads(server_repo: &Path) -> Vec<String> {
    let repo = Repository::open(server_repo).expect("the server's repository");
    payloads(&repo, "orders")
}

impl Operation for Push {
    fn run(&mut self, repo: &Repository) -> Result<(), Failure> {
        copy_dir(&self.server_template, &self.server_repo);
        replicate::push::push(repo, "origin")?;
        self.done = true;
        Ok(())
    }

    fn check(&self, repo: &Repository, _: Aftermath) {
        let local = payloads(repo, "orders");
        assert!(
            local == self.local_before || local == self.rebuilt,
            "the local topic reads {local:?}"
        );
        let at = position(repo, "reader", "orders");
        assert!(
            at == Some(self.read_up_to) || at == Some(self.fork),
            "the position is at {at:?}"
        );
        if local == self.rebuilt {
            assert_eq!(
                at,
                Some(self.fork),
                "rebuilt, so the position went back to the fork"
            );
        }
        let server = server_payloads(&self.server_repo);
        assert!(
            server == self.server_before || server == self.rebuilt,
            "the server's topic reads {server:?}"
        );
        if self.done {
            assert_eq!(
                server, self.rebuilt,
                "an acknowledged push is on the server"
            );
        }
    }

    fn redo(&self, repo: &Repository) {
        replicate::push::push(repo, "origin").expect("push again");
        assert_eq!(
            server_payloads(&self.server_repo),
            self.rebuilt,
            "every message once"
        );
        assert_eq!(payloads(repo, "orders"), self.rebuilt);
    }
}

/// Replace `to` with a copy of `from`.
fn copy_dir(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).expect("remove the old copy");
    }
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(status.success());
}

/// A local repository (at `q.git` in the returned directory) whose topic diverged from the
/// server's: another producer pushed `o1` after `o0`, while `l0`, `l1` were published here and
/// a consumer read `l0`.
pub(super) fn diverged(server: &HttpServer) -> (tempfile::TempDir, Push) {
    let server_repo = server.bare_repo("q");
    let url = server.url("q");
    let (_other_dir, other) = template();
    let push_other = || {
        git(
            &[
                "--git-dir",
                other.to_str().unwrap(),
                "push",
                "-q",
                &url,
                "refs/heads/*:refs/heads/*",
            ],
            None,
        );
    };
    publish(&other, "orders", &names("o", 1), 1);
    push_other();

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
    replicate::fetch(&repo, "origin", &replicate::fetch::DEFAULT_PREFIXES).expect("fetch o0");
    let fork = super::check::messages(&repo, "orders")[0].0;
    let mine = publish(&local, "orders", &names("l", 2), 2);
    commit_position(&local, "reader", "orders", mine[0]);
    publish(&other, "orders", &["o1".to_owned()], 1);
    push_other();
    let server_template = dir.path().join("server-template.git");
    copy_dir(&server_repo, &server_template);
    let op = Push {
        server_repo,
        server_template,
        local_before: vec!["o0".into(), "l0".into(), "l1".into()],
        rebuilt: vec!["o0".into(), "o1".into(), "l0".into(), "l1".into()],
        server_before: vec!["o0".into(), "o1".into()],
        read_up_to: mine[0],
        fork,
        done: false,
    };
    (dir, op)
}

#[test]
fn push_with_a_rebuild_survives_every_fault_point() {
    let server = HttpServer::start();
    let (dir, op) = diverged(&server);
    run_matrix("push (rebuild, tracking refs)", dir.path(), &op);
}
