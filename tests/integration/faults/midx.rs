//! The multi-pack-index chain under faults: the producer's background step
//! (`midx::chain::update`), here writing a layer over two new packs and then merging it with
//! the layer already there (write, merge, commit the chain, remove the dropped layer). A MIDX
//! is an index over packs and never the only copy of anything, so after any fault every topic
//! reads whole, git reads the repository (`fsck --strict`, `git multi-pack-index verify`) and
//! gitmq's reader finds every object; the next update finishes the job.

use std::path::Path;

use gitmq::{
    git::odb::pack::midx::{
        chain::{self, Policy},
        read::MultiPackIndex,
    },
    Repository,
};

use super::{
    check::payloads,
    names, publish,
    runner::{run_matrix, Aftermath, Failure, Operation},
    template,
};
use crate::util::git_output;

/// A layer per two packs, and two layers of similar size merge.
fn policy() -> Policy {
    Policy {
        layer_packs: 2,
        merge_layers: 2,
    }
}

/// `git multi-pack-index verify` succeeds (git reads the single file or the chain).
fn git_verifies(git_dir: &Path, context: &str) {
    let out = git_output(
        &[
            "--git-dir",
            git_dir.to_str().expect("utf-8 temp path"),
            "multi-pack-index",
            "verify",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{context}: git multi-pack-index verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `.pack` files of the repository, by stem.
fn pack_stems(git_dir: &Path) -> Vec<String> {
    std::fs::read_dir(git_dir.join("objects/pack"))
        .expect("objects/pack")
        .filter_map(|entry| {
            let name = entry.expect("an entry").file_name().into_string().ok()?;
            name.strip_suffix(".pack").map(str::to_owned)
        })
        .collect()
}

#[derive(Debug, Clone)]
struct ChainUpdate {
    all: Vec<String>,
}

impl Operation for ChainUpdate {
    fn run(&mut self, repo: &Repository) -> Result<(), Failure> {
        let report = chain::update(repo.fs(), repo.git_dir(), policy(), true)?;
        assert!(!report.skipped, "nothing else holds the locks");
        Ok(())
    }

    fn check(&self, repo: &Repository, aftermath: Aftermath) {
        assert_eq!(payloads(repo, "t"), self.all);
        git_verifies(repo.git_dir(), &format!("after {aftermath:?}"));
    }

    fn redo(&self, repo: &Repository) {
        chain::update(&gitmq::git::fs::real(), repo.git_dir(), policy(), true)
            .expect("update again");
        assert_eq!(payloads(repo, "t"), self.all);
        git_verifies(repo.git_dir(), "after the redo");
        let pack_dir = repo.git_dir().join("objects/pack");
        let midx = MultiPackIndex::open(&pack_dir).expect("the chain opens");
        assert_eq!(midx.layers().len(), 1, "the two layers were merged");
        for stem in pack_stems(repo.git_dir()) {
            assert!(midx.covers(&stem), "the chain covers {stem}");
        }
    }
}

#[test]
fn the_multi_pack_index_chain_survives_every_fault_point() {
    let (dir, path) = template();
    let all = names("m", 4);
    publish(&path, "t", &all[..2], 1);
    // The template's chain: one layer over the first two packs.
    let first = chain::update(&gitmq::git::fs::real(), &path, policy(), true).expect("a layer");
    assert_eq!((first.layers_written, first.layers), (1, 1));
    publish(&path, "t", &all[2..], 1);
    run_matrix(
        "multi-pack-index chain update",
        dir.path(),
        &ChainUpdate { all },
    );
}
