//! One test per bug the fault matrix found, each the smallest reproduction of its fault point.

use std::sync::Arc;

use gitmq::{
    git::{
        fs::{real, Fs},
        odb::pack::consolidate::{self, Policy},
    },
    replicate, topology, Consumer, ConsumerName, Repository, TopicName,
};

use super::{
    check::{self, payloads, position},
    commit_position,
    faulty_fs::{Cut, Fault, FaultyFs},
    names, publish,
    runner::{copy_of, Aftermath},
    template,
};
use crate::{server::HttpServer, util::git};

fn topic(name: &str) -> TopicName {
    TopicName::new(name).unwrap()
}

fn pack_files(repo: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut packs: Vec<_> = check::files_under(&repo.join("objects/pack"));
    packs.sort();
    packs
}

/// A consolidation cut short before it removed the packs it merged leaves them next to the
/// merged pack; merging them again writes the same objects in the same order, so the new
/// pack has the name of one of the packs it merged, and was removed with them: every
/// object of the topic was lost.
#[test]
fn consolidating_again_after_an_interrupted_consolidation_keeps_every_object() {
    let policy = Policy {
        min_packs: 2,
        ..Policy::default()
    };
    let (_dir, path) = template();
    publish(&path, "t", &names("m", 2), 1);
    let read = |files: &[std::path::PathBuf]| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        files
            .iter()
            .map(|p| (p.clone(), std::fs::read(p).unwrap()))
            .collect()
    };
    let old = read(&pack_files(&path));
    consolidate::consolidate(&real(), &path, policy, true).unwrap();
    let merged = read(&pack_files(&path));
    // Put back one old pack (and its index) next to the merged one, as a crash before its
    // removal leaves it: for the pack merged first, merging again gives the merged pack's
    // very bytes, under its name.
    let mut collided = false;
    for first in [0, 2] {
        for (file, _) in read(&pack_files(&path)) {
            std::fs::remove_file(file).unwrap();
        }
        for (file, data) in merged.iter().chain(&old[first..first + 2]) {
            std::fs::write(file, data).unwrap();
        }
        consolidate::consolidate(&real(), &path, policy, true).unwrap();
        let repo = Repository::open(&path).unwrap();
        assert_eq!(
            payloads(&repo, "t"),
            names("m", 2),
            "every message is still there"
        );
        let now = pack_files(&path);
        assert_eq!(now.len(), 2, "one pack and its index: {now:?}");
        collided |= now[0] == merged[0].0;
        check::common(&path, Aftermath::Clean, "consolidated again");
    }
    assert!(
        collided,
        "one of the merges rewrote the merged pack under its own name"
    );
}

/// A ref in a directory the commit had to create (a new consumer's position, the first join
/// record, a topic `eu/orders`) was synced, and its directory, but not the new directory's
/// name in its parent: a power cut lost the acknowledged position (and a join record, so the
/// next join copied the same messages again).
#[test]
fn a_new_consumers_first_commit_survives_a_power_cut() {
    let (_dir, path) = template();
    publish(&path, "eu/orders", &names("m", 2), 2);
    let fs = FaultyFs::new(&path, Fault::None);
    let repo = Repository::open_with_fs(&path, Arc::clone(&fs) as Arc<dyn Fs>).unwrap();
    let mut consumer = Consumer::open(
        repo.clone(),
        ConsumerName::new("first").unwrap(),
        topic("eu/orders"),
    )
    .unwrap();
    let read = consumer.poll(1).unwrap();
    consumer.commit().unwrap();
    repo.producer(&topic("us/orders"))
        .publish(b"new topic")
        .unwrap();
    drop((consumer, repo));
    fs.power_cut(Cut::Entries);
    let repo = Repository::open(&path).unwrap();
    assert_eq!(position(&repo, "first", "eu/orders"), Some(read[0].id));
    assert_eq!(payloads(&repo, "us/orders"), ["new topic"]);
}

#[test]
fn a_join_cut_by_a_power_loss_copies_nothing_twice() {
    let (_dir, path) = template();
    publish(&path, "a", &names("a", 2), 2);
    let fs = FaultyFs::new(&path, Fault::None);
    let repo = Repository::open_with_fs(&path, Arc::clone(&fs) as Arc<dyn Fs>).unwrap();
    topology::join(&repo, &[topic("a")], &topic("all"), true).unwrap();
    drop(repo);
    fs.power_cut(Cut::Entries);
    let repo = Repository::open(&path).unwrap();
    topology::join(&repo, &[topic("a")], &topic("all"), true).unwrap();
    assert_eq!(payloads(&repo, "all"), names("a", 2), "each message once");
}

/// A consumer whose commit failed to sync went on committing: the next commit found the
/// position renamed by the failed one and reported it moved by someone else (or, after a
/// failed file sync, reported success past a failed fsync).
#[test]
fn a_consumer_whose_commit_failed_is_poisoned() {
    let (_dir, path) = template();
    publish(&path, "t", &names("m", 3), 3);
    // Syncs of a new position: the lock file, its directory, the new directory's parent.
    for sync in 1..=3 {
        let fs = FaultyFs::new(&path, Fault::Eio { sync });
        let repo = Repository::open_with_fs(&path, fs as Arc<dyn Fs>).unwrap();
        let name = format!("c{sync}");
        let mut consumer =
            Consumer::open(repo, ConsumerName::new(&name).unwrap(), topic("t")).unwrap();
        consumer.poll(1).unwrap();
        assert!(consumer.commit().is_err(), "EIO at sync {sync}");
        consumer.poll(1).unwrap();
        let again = consumer.commit();
        assert!(
            matches!(again, Err(gitmq::consume::Error::Poisoned { .. })),
            "sync {sync}: {again:?}"
        );
    }
}

/// A split whose last steps (carrying a position over, creating the new topic) failed left
/// the positions it had carried over, naming copies on no topic.
#[test]
fn a_split_that_fails_on_its_refs_takes_its_positions_back() {
    let (dir, path) = template();
    let ids = publish(&path, "t", &names("m", 3), 3);
    commit_position(&path, "reader", "t", ids[1]);
    let (_copy, dry) = copy_of(dir.path());
    let fs = FaultyFs::new(&dry, Fault::None);
    let repo = Repository::open_with_fs(&dry, Arc::clone(&fs) as Arc<dyn Fs>).unwrap();
    topology::split(&repo, &topic("t"), None, &topic("s"), |_| true, true).unwrap();
    let counts = fs.counts();
    // The last writes are the position's and the new topic's ref; the last syncs are the
    // position (file, directory) and the topic (file, directory).
    for fault in [
        Fault::Enospc {
            write: counts.writes - 1,
        },
        Fault::Enospc {
            write: counts.writes,
        },
        Fault::Eio {
            sync: counts.syncs - 2,
        },
        Fault::Eio {
            sync: counts.syncs - 3,
        },
    ] {
        let (_copy, path) = copy_of(dir.path());
        let fs = FaultyFs::new(&path, fault);
        let repo = Repository::open_with_fs(&path, fs as Arc<dyn Fs>).unwrap();
        let split = topology::split(&repo, &topic("t"), None, &topic("s"), |_| true, true);
        assert!(split.is_err(), "{fault:?}");
        let repo = Repository::open(&path).unwrap();
        assert_eq!(
            position(&repo, "reader", "s"),
            None,
            "{fault:?}: nothing left behind"
        );
        topology::split(&repo, &topic("t"), None, &topic("s"), |_| true, true).unwrap();
        assert_eq!(
            position(&repo, "reader", "s"),
            Some(check::messages(&repo, "s")[1].0)
        );
    }
}

/// Refs a fetch moved were not synced: on a file system that journals names but not data, a
/// power cut left them empty (`git fsck`: invalid sha1 pointer; gitmq could not read the
/// topic). And a fetch cut short between moving a position's tracking ref and adopting the
/// position never adopted it afterwards (the tracking ref said the remote's value was seen).
#[test]
fn refs_a_fetch_moved_are_whole_after_a_power_cut_and_positions_still_adopted() {
    let server = HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    let (_producer_dir, producer) = template();
    let ids = publish(&producer, "orders", &names("o", 2), 2);
    commit_position(&producer, "billing", "orders", ids[0]);
    git(
        &[
            "--git-dir",
            producer.to_str().unwrap(),
            "push",
            "-q",
            &url,
            "refs/heads/*:refs/heads/*",
            "refs/gitmq/*:refs/gitmq/*",
        ],
        None,
    );
    let (_dir, local) = template();
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

    let fs = FaultyFs::new(&local, Fault::None);
    let repo = Repository::open_with_fs(&local, Arc::clone(&fs) as Arc<dyn Fs>).unwrap();
    replicate::fetch(&repo, "origin", &replicate::fetch::DEFAULT_PREFIXES).unwrap();
    drop(repo);
    fs.power_cut(Cut::Data);
    check::common(
        &local,
        Aftermath::PowerCut(Cut::Data),
        "fetched, then a power cut",
    );
    let repo = Repository::open(&local).unwrap();
    assert_eq!(payloads(&repo, "orders"), names("o", 2));

    // The last writes of a fetch into a fresh repository: the adopted position and its
    // tracking ref.
    let (_dir, fresh) = template();
    git(
        &[
            "--git-dir",
            fresh.to_str().unwrap(),
            "remote",
            "add",
            "origin",
            &url,
        ],
        None,
    );
    let fs = FaultyFs::new(&fresh, Fault::None);
    let repo = Repository::open_with_fs(&fresh, Arc::clone(&fs) as Arc<dyn Fs>).unwrap();
    replicate::fetch(&repo, "origin", &replicate::fetch::DEFAULT_PREFIXES).unwrap();
    let writes = fs.counts().writes;
    for write in [writes - 1, writes] {
        let (_dir, cut_short) = template();
        git(
            &[
                "--git-dir",
                cut_short.to_str().unwrap(),
                "remote",
                "add",
                "origin",
                &url,
            ],
            None,
        );
        let fs = FaultyFs::new(&cut_short, Fault::Enospc { write });
        let repo = Repository::open_with_fs(&cut_short, fs as Arc<dyn Fs>).unwrap();
        assert!(replicate::fetch(&repo, "origin", &replicate::fetch::DEFAULT_PREFIXES).is_err());
        let repo = Repository::open(&cut_short).unwrap();
        replicate::fetch(&repo, "origin", &replicate::fetch::DEFAULT_PREFIXES).unwrap();
        assert_eq!(
            position(&repo, "billing", "orders"),
            Some(ids[0]),
            "adopted after all"
        );
    }
}

/// A push that lost a race rebuilds its topic on the remote's head, then moved the positions
/// that had read the copied messages back to the fork. Cut short between the two (a crash, or
/// a failed write of a position), a position named a message on neither the topic nor its
/// history: the consumer could not read, and no later push fixed it. Positions now move first.
#[test]
fn a_push_rebuild_cut_short_leaves_no_position_off_its_topic() {
    let server = HttpServer::start();
    let (dir, op) = super::push::diverged(&server);
    let (_copy, dry) = copy_of(dir.path());
    let fs = FaultyFs::new(&dry, Fault::None);
    let repo = Repository::open_with_fs(&dry, Arc::clone(&fs) as Arc<dyn Fs>).unwrap();
    super::runner::Operation::run(&mut op.clone(), &repo).unwrap();
    // Every write of the push, the rebuild's ref moves among them.
    for write in 1..=fs.counts().writes {
        let (_copy, path) = copy_of(dir.path());
        let fs = FaultyFs::new(&path, Fault::Enospc { write });
        let repo = Repository::open_with_fs(&path, fs as Arc<dyn Fs>).unwrap();
        let mut op = op.clone();
        assert!(super::runner::Operation::run(&mut op, &repo).is_err());
        check::common(
            &path,
            Aftermath::Failed,
            &format!("ENOSPC at write {write}"),
        );
        let repo = Repository::open(&path).unwrap();
        super::runner::Operation::check(&op, &repo, Aftermath::Failed);
        super::runner::Operation::redo(&op, &repo);
    }
}
