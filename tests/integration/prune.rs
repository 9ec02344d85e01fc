//! `gitmq::prune` and `gitmq prune`: what is kept reads exactly (gitmq, `git log`, `git fsck
//! --strict`), what is dropped leaves the disk, positions are refused or moved, and nothing
//! acknowledged is lost while producers keep writing.

use std::{
    collections::HashSet,
    fs,
    path::Path,
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use gitmq::{
    prune::{prune, Error, Options, Retain},
    ConsumerName, ObjectId, Repository, TopicName,
};

use crate::util::{lines, TempRepo};

fn topic() -> TopicName {
    TopicName::new("orders").unwrap()
}

/// No grace: every old file may go (no concurrent writer in these tests).
fn no_grace() -> Options {
    Options {
        grace: Duration::ZERO,
        ..Options::default()
    }
}

/// Publish `n` messages `m0..` in batches of `batch`; their ids.
fn publish(repo: &Repository, from: usize, n: usize, batch: usize) -> Vec<ObjectId> {
    let payloads: Vec<Vec<u8>> = (from..from + n)
        .map(|i| format!("m{i}").into_bytes())
        .collect();
    let mut ids = Vec::new();
    for chunk in payloads.chunks(batch) {
        ids.extend(repo.producer(&topic()).publish_batch(chunk).unwrap());
    }
    ids
}

/// The payloads `git log` shows, oldest first.
fn git_log(repo: &TempRepo, topic: &str) -> Vec<String> {
    lines(&repo.git(&["log", "--reverse", "--format=%B", topic]))
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect()
}

/// The payloads gitmq's own walk reads, oldest first.
fn gitmq_log(repo: &Repository) -> Vec<String> {
    let head = repo.head(&topic()).unwrap().unwrap();
    let mut odb = repo.odb();
    let mut buf = Vec::new();
    gitmq::git::walk::ids_after(&mut odb, head, None, &mut buf)
        .unwrap()
        .into_iter()
        .map(|id| {
            let message = gitmq::git::walk::read_message(&mut odb, id, &mut buf).unwrap();
            String::from_utf8(message.payload).unwrap()
        })
        .collect()
}

fn names(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("m{i}")).collect()
}

/// The files in `dir` (the multi-pack-index chain's directory left out).
fn files_in(dir: &Path) -> HashSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "multi-pack-index.d")
        .collect()
}

fn object_exists(repo: &TempRepo, id: &ObjectId) -> bool {
    crate::util::git_output(
        &[
            "--git-dir",
            repo.path.to_str().unwrap(),
            "cat-file",
            "-e",
            &id.to_string(),
        ],
        None,
    )
    .status
    .success()
}

/// Set every file under `objects/` back by `age`, as if written that long ago.
fn age_objects(repo: &TempRepo, age: Duration) {
    let then = SystemTime::now() - age;
    let mut dirs = vec![repo.path.join("objects")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                let file = fs::File::options().write(true).open(entry.path()).unwrap();
                file.set_modified(then).unwrap();
            }
        }
    }
}

#[test]
fn keep_leaves_exactly_the_newest_messages_for_gitmq_git_log_and_fsck() {
    let repo = TempRepo::new();
    let queue = repo.open();
    let ids = publish(&queue, 0, 300, 50);
    let old_packs = files_in(&repo.path.join("objects/pack"));

    let report = prune(&queue, &topic(), Retain::Keep(100), &no_grace()).unwrap();

    assert_eq!((report.kept, report.pruned), (100, 200), "{report:?}");
    assert_eq!(report.start, Some(ids[200]));
    assert_eq!(
        git_log(&repo, "orders"),
        names(200, 300),
        "git log: the kept messages"
    );
    assert_eq!(
        gitmq_log(&queue),
        names(200, 300),
        "gitmq: the kept messages"
    );
    repo.assert_fsck_clean();
    assert_eq!(
        fs::read_to_string(repo.path.join("shallow")).unwrap(),
        format!("{}\n", ids[200]),
        "git's shallow file names the oldest kept message"
    );
    assert!(
        report.bytes_after < report.bytes_before / 2,
        "{} -> {} bytes",
        report.bytes_before,
        report.bytes_after
    );
    let now_packs = files_in(&repo.path.join("objects/pack"));
    assert!(old_packs.is_disjoint(&now_packs), "every old pack is gone");
    assert_eq!(now_packs.len(), 2, "one pack and its index: {now_packs:?}");
    assert!(
        !object_exists(&repo, &ids[199]),
        "a dropped message left the disk"
    );
    assert!(!object_exists(&repo, &ids[0]));
    assert!(object_exists(&repo, &ids[200]));
    let counted = String::from_utf8(repo.git(&["count-objects", "-v"])).unwrap();
    assert!(
        counted.contains("in-pack: 101\n"),
        "100 messages + the empty tree: {counted}"
    );
}

#[test]
fn upto_drops_that_message_and_everything_older() {
    let repo = TempRepo::new();
    let queue = repo.open();
    let ids = publish(&queue, 0, 40, 10);
    let report = prune(&queue, &topic(), Retain::Upto(ids[14]), &no_grace()).unwrap();
    assert_eq!((report.kept, report.pruned), (25, 15));
    assert_eq!(git_log(&repo, "orders"), names(15, 40));
    repo.assert_fsck_clean();
    assert!(matches!(
        prune(&queue, &topic(), Retain::Upto(ids[39]), &no_grace()),
        Err(Error::UptoHead { .. })
    ));
    assert!(matches!(
        prune(&queue, &topic(), Retain::Upto(ids[3]), &no_grace()),
        Err(Error::NotOnTopic { .. })
    ));
    let again = prune(&queue, &topic(), Retain::Upto(ids[14]), &no_grace()).unwrap();
    assert_eq!(
        (again.start, again.kept),
        (None, 25),
        "already pruned there"
    );
}

#[test]
fn a_pack_left_without_its_index_by_a_killed_writer_is_removed_after_the_grace_period() {
    let repo = TempRepo::new();
    let queue = repo.open();
    publish(&queue, 0, 30, 10);
    // A writer killed between renaming its pack and its index leaves a pack git never reads
    // (and `git fsck` does not report).
    let pack_dir = repo.path.join("objects/pack");
    let some_pack = files_in(&pack_dir)
        .into_iter()
        .find(|f| Path::new(f).extension().is_some_and(|e| e == "pack"))
        .unwrap();
    let orphan = pack_dir.join("pack-1111111111111111111111111111111111111111.pack");
    fs::copy(pack_dir.join(&some_pack), &orphan).unwrap();
    let young = prune(&queue, &topic(), Retain::Keep(20), &Options::default()).unwrap();
    assert_eq!(young.kept, 20);
    assert!(
        orphan.exists(),
        "younger than the grace period: it may be a writer's"
    );
    prune(&queue, &topic(), Retain::Keep(10), &no_grace()).unwrap();
    assert!(!orphan.exists(), "older than the grace period: removed");
    repo.assert_fsck_clean();
}

/// Commits written by git with the given author dates (seconds), oldest first, on `topic`.
fn dated_messages(repo: &TempRepo, topic: &str, dates: &[i64]) -> Vec<ObjectId> {
    let empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
    let mut parent: Option<String> = None;
    let mut ids = Vec::new();
    for (i, date) in dates.iter().enumerate() {
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir")
            .arg(&repo.path)
            .args(["commit-tree", empty_tree, "-m", &format!("m{i}")])
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "a")
            .env("GIT_AUTHOR_EMAIL", "a@example.com")
            .env("GIT_AUTHOR_DATE", format!("@{date} +0000"))
            .env("GIT_COMMITTER_NAME", "a")
            .env("GIT_COMMITTER_EMAIL", "a@example.com")
            .env("GIT_COMMITTER_DATE", format!("@{date} +0000"));
        if let Some(parent) = &parent {
            cmd.args(["-p", parent]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        ids.push(ObjectId::from_hex(id.as_bytes()).unwrap());
        parent = Some(id);
    }
    repo.git(&[
        "update-ref",
        &format!("refs/heads/{topic}"),
        parent.as_deref().unwrap(),
    ]);
    ids
}

#[test]
fn before_cuts_at_the_first_message_older_than_the_time_walking_back() {
    let repo = TempRepo::new();
    let queue = repo.open();
    let base = 1_700_000_000;
    dated_messages(
        &repo,
        "orders",
        &[base, base + 10, base + 20, base + 30, base + 40],
    );
    let at = |s: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(s).unwrap());
    let report = prune(&queue, &topic(), Retain::Before(at(base + 25)), &no_grace()).unwrap();
    assert_eq!((report.kept, report.pruned), (2, 3));
    assert_eq!(git_log(&repo, "orders"), names(3, 5));
    repo.assert_fsck_clean();
    let report = prune(
        &queue,
        &topic(),
        Retain::Before(at(base + 100)),
        &no_grace(),
    )
    .unwrap();
    assert_eq!(
        (report.kept, report.pruned),
        (1, 1),
        "the head always stays"
    );
    assert_eq!(git_log(&repo, "orders"), names(4, 5));
    repo.assert_fsck_clean();
}

#[test]
fn a_dry_run_lists_what_would_go_and_the_positions_behind_and_changes_nothing() {
    let repo = TempRepo::new();
    let queue = repo.open();
    let ids = publish(&queue, 0, 300, 50);
    for (name, at) in [("late", 49), ("exact", 199)] {
        let consumer = ConsumerName::new(name).unwrap();
        repo.git(&[
            "update-ref",
            &consumer.position_ref(&topic()),
            &ids[at].to_string(),
        ]);
    }
    let bytes = crate::prune::du(&repo.path.join("objects"));
    let dry = Options {
        dry_run: true,
        ..no_grace()
    };
    let report = prune(&queue, &topic(), Retain::Keep(100), &dry).unwrap();
    assert_eq!(
        (report.kept, report.pruned, report.new_pack),
        (100, 200, None)
    );
    let mut behind: Vec<(&str, u64)> = report
        .behind
        .iter()
        .map(|b| (b.consumer.as_str(), b.unconsumed))
        .collect();
    behind.sort_unstable();
    assert_eq!(
        behind,
        [("exact", 0), ("late", 150)],
        "a dry run lists them"
    );
    assert_eq!(
        crate::prune::du(&repo.path.join("objects")),
        bytes,
        "and changes nothing"
    );

    assert!(!repo.path.join("shallow").exists());
}

#[test]
fn positions_behind_the_cut_refuse_the_prune_unless_forced_which_moves_them() {
    let repo = TempRepo::new();
    let queue = repo.open();
    let ids = publish(&queue, 0, 300, 50);
    let position = |name: &str, at: usize| {
        let consumer = ConsumerName::new(name).unwrap();
        repo.git(&[
            "update-ref",
            &consumer.position_ref(&topic()),
            &ids[at].to_string(),
        ]);
    };
    position("late", 49); // read m0..=m49: m50..=m199 unread would be dropped
    position("exact", 199); // read everything that Keep(100) drops
    position("current", 299);
    repo.git(&["pack-refs", "--all"]);
    assert!(repo.path.join("packed-refs").is_file());
    let bytes = crate::prune::du(&repo.path.join("objects"));

    let err = prune(&queue, &topic(), Retain::Keep(100), &no_grace()).unwrap_err();
    let Error::Unconsumed { behind } = &err else {
        panic!("{err}")
    };
    assert_eq!(behind.len(), 1);
    assert_eq!(
        (behind[0].consumer.as_str(), behind[0].unconsumed),
        ("late", 150)
    );
    assert!(
        err.to_string().contains("late on orders (150 unconsumed)"),
        "{err}"
    );
    assert!(
        !repo.path.join("shallow").exists(),
        "a refused prune changes nothing"
    );
    assert_eq!(crate::prune::du(&repo.path.join("objects")), bytes);

    let forced = Options {
        force: true,
        ..no_grace()
    };
    let report = prune(&queue, &topic(), Retain::Keep(100), &forced).unwrap();
    assert_eq!(report.moved.len(), 1);
    assert_eq!(report.moved[0].to, ids[199]);
    for (name, expected) in [("late", 100), ("exact", 100), ("current", 0)] {
        let mut consumer = queue
            .consumer(&ConsumerName::new(name).unwrap(), &topic())
            .unwrap();
        assert_eq!(consumer.lag().unwrap(), expected, "{name}");
        let got: Vec<String> = consumer
            .poll(1000)
            .unwrap()
            .into_iter()
            .map(|m| String::from_utf8(m.payload).unwrap())
            .collect();
        assert_eq!(
            got,
            names(300 - expected, 300),
            "{name} reads every kept message"
        );
        consumer.commit().unwrap();
    }
    assert_eq!(git_log(&repo, "orders"), names(200, 300));
    repo.assert_fsck_clean();
    let shallow = fs::read_to_string(repo.path.join("shallow")).unwrap();
    assert_eq!(
        shallow.lines().count(),
        2,
        "the boundary and the positions' commit"
    );
    assert!(!object_exists(&repo, &ids[198]));
    // All positions moved on: the next prune drops the commit they named.
    prune(&queue, &topic(), Retain::Keep(100), &no_grace()).unwrap();
    assert_eq!(
        fs::read_to_string(repo.path.join("shallow")).unwrap(),
        format!("{}\n", ids[200])
    );
    assert!(!object_exists(&repo, &ids[199]));
    repo.assert_fsck_clean();
}

#[test]
fn a_position_older_than_the_kept_history_is_a_clear_walk_error() {
    let repo = TempRepo::new();
    let queue = repo.open();
    let ids = publish(&queue, 0, 20, 5);
    prune(&queue, &topic(), Retain::Keep(5), &no_grace()).unwrap();
    // Written behind gitmq's back (git update-ref refuses a missing object).
    let consumer = ConsumerName::new("stale").unwrap();
    let path = repo.path.join(consumer.position_ref(&topic()).as_str());
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, format!("{}\n", ids[3])).unwrap();
    let err = queue
        .consumer(&consumer, &topic())
        .unwrap()
        .poll(10)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("history pruned at {}", ids[15])),
        "{text}"
    );
}

#[test]
fn a_walk_that_read_the_shallow_list_before_a_prune_stops_at_the_new_boundary() {
    let repo = TempRepo::new();
    let queue = repo.open();
    let ids = publish(&queue, 0, 30, 10);
    let mut odb = queue.odb();
    assert!(!odb.is_shallow(&ids[0]).unwrap(), "the list is read: empty");
    prune(&queue, &topic(), Retain::Keep(10), &no_grace()).unwrap();
    let head = queue.head(&topic()).unwrap().unwrap();
    let mut buf = Vec::new();
    let walked = gitmq::git::walk::ids_after(&mut odb, head, None, &mut buf).unwrap();
    assert_eq!(
        walked,
        ids[20..],
        "the missing parent made it read the list again"
    );
    let counted = gitmq::git::walk::count_after(&mut queue.odb(), head, Some(ids[19]), &mut buf);
    assert_eq!(
        counted.unwrap(),
        10,
        "a stop at the last pruned message is met"
    );
}

#[test]
fn a_pruned_repository_publishes_consumes_and_prunes_again() {
    let repo = TempRepo::new();
    let queue = repo.open();
    publish(&queue, 0, 100, 10);
    prune(&queue, &topic(), Retain::Keep(30), &no_grace()).unwrap();
    let new = publish(&queue, 100, 20, 7);
    assert_eq!(git_log(&repo, "orders"), names(70, 120));
    let mut reader = queue
        .consumer(&ConsumerName::new("reader").unwrap(), &topic())
        .unwrap();
    let read = reader.poll(1000).unwrap();
    assert_eq!(read.len(), 50, "from the boundary on");
    assert_eq!(read.last().unwrap().id, *new.last().unwrap());
    reader.commit().unwrap();
    repo.assert_fsck_clean();

    let report = prune(&queue, &topic(), Retain::Keep(10), &no_grace()).unwrap();
    assert_eq!(
        (report.kept, report.pruned),
        (10, 40),
        "stops at the old boundary"
    );
    assert_eq!(git_log(&repo, "orders"), names(110, 120));
    assert_eq!(
        fs::read_to_string(repo.path.join("shallow"))
            .unwrap()
            .lines()
            .count(),
        1,
        "the old boundary is gone with its commit"
    );
    repo.assert_fsck_clean();
    let out = repo.git(&["log", "--format=%H %s", "-1", "orders~9"]);
    assert!(String::from_utf8(out).unwrap().ends_with(" m110\n"));
}

/// A producer publishing batches of 7 until `stop` (and at least 200); its acknowledgements.
fn spawn_producer(
    queue: &Repository,
    stop: &Arc<AtomicBool>,
    count: &Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Vec<(ObjectId, String)>> {
    let (queue, stop, count) = (queue.clone(), Arc::clone(stop), Arc::clone(count));
    std::thread::spawn(move || {
        let mut acked: Vec<(ObjectId, String)> = Vec::new();
        let mut producer = gitmq::ProducerConfig::default()
            .with_durability(gitmq::Durability::None)
            .open(&queue, &topic());
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) || acked.len() < 200 {
            let batch: Vec<String> = (i..i + 7).map(|j| format!("p{j}")).collect();
            i += 7;
            let ids = producer
                .publish_batch(batch.iter().map(String::as_bytes))
                .unwrap();
            acked.extend(ids.into_iter().zip(batch));
            count.store(acked.len(), Ordering::Relaxed);
        }
        acked
    })
}

/// A reader that starts from the oldest kept message, again and again, until `stop`: what
/// it reads is always a run of consecutive messages. How many reads it made.
fn spawn_reader(queue: &Repository, stop: &Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    let (queue, stop) = (queue.clone(), Arc::clone(stop));
    std::thread::spawn(move || {
        let mut reads = 0;
        let reader = ConsumerName::new("reader").unwrap();
        let number = |p: &str| {
            p[1..].parse::<usize>().unwrap() + usize::from(p.starts_with('p')) * 1_000_000
        };
        while !stop.load(Ordering::Relaxed) {
            let mut consumer = queue.consumer(&reader, &topic()).unwrap();
            let got: Vec<String> = consumer
                .poll(5000)
                .unwrap_or_else(|err| panic!("a read next to a prune failed: {err}"))
                .into_iter()
                .map(|m| String::from_utf8(m.payload).unwrap())
                .collect();
            for pair in got.windows(2) {
                let (a, b) = (number(&pair[0]), number(&pair[1]));
                let next = b == a + 1 || (b == 1_000_000 && a == 2999);
                assert!(next, "{} then {}", pair[0], pair[1]);
            }
            reads += 1;
        }
        reads
    })
}

#[test]
fn a_concurrent_producer_loses_no_acknowledged_message() {
    let repo = TempRepo::new();
    let queue = repo.open();
    publish(&queue, 0, 3000, 100);
    // The history is an hour old: the grace period lets its packs go.
    age_objects(&repo, Duration::from_secs(3600));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let producer = spawn_producer(&queue, &stop, &count);
    let reader = spawn_reader(&queue, &stop);
    let mut reports = Vec::new();
    for keep in [2000, 1500, 1000] {
        let before = count.load(Ordering::Relaxed);
        let report = prune(&queue, &topic(), Retain::Keep(keep), &Options::default());
        // Messages the producer acknowledged while this prune ran.
        let added = count.load(Ordering::Relaxed) - before;
        reports.push((added, report));
    }
    stop.store(true, Ordering::Relaxed);
    let acked = producer.join().unwrap();
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    let reports: Vec<_> = reports
        .into_iter()
        .map(|(n, r)| (n, r.expect("prune next to a producer")))
        .collect();

    repo.assert_fsck_clean();
    // The topic is exactly the newest part of everything acknowledged, in order: nothing
    // lost above the cuts, nothing duplicated.
    let log = git_log(&repo, "orders");
    let published: Vec<String> = names(0, 3000)
        .into_iter()
        .chain(acked.iter().map(|(_, p)| p.clone()))
        .collect();
    assert_eq!(
        log,
        published[published.len() - log.len()..],
        "a suffix of what was published"
    );
    let (_, last) = reports.last().unwrap();
    assert!(
        log.len() >= 1000,
        "the last prune kept 1000 and more came: {last:?}"
    );
    let mut odb = queue.odb();
    let mut buf = Vec::new();
    for (id, payload) in acked.iter().rev().take(log.len()) {
        let message = gitmq::git::walk::read_message(&mut odb, *id, &mut buf).unwrap();
        assert_eq!(
            message.payload,
            payload.as_bytes(),
            "acknowledged ids read back"
        );
    }
    let removed: usize = reports.iter().map(|(_, r)| r.packs_removed).sum();
    assert!(removed > 0, "old packs were removed: {reports:?}");
    let during: usize = reports.iter().map(|(n, _)| *n).sum();
    assert!(
        during > 0,
        "the producer acknowledged messages while prunes ran"
    );
}

#[test]
fn the_cli_prunes_by_count_and_by_config_and_refuses_bad_input() {
    let repo = TempRepo::new();
    publish(&repo.open(), 0, 30, 10);
    let out = repo.gitmq(&["prune", "orders", "--keep", "10", "--dry-run"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("would keep 10 messages from "), "{text}");
    assert!(
        !repo.path.join("shallow").exists(),
        "a dry run changes nothing"
    );
    let out = repo.gitmq(&["prune", "orders", "--keep", "10", "--grace", "0"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("orders: kept 10 messages from "), "{text}");
    assert!(text.contains(", pruned 20\n"), "{text}");
    assert!(text.contains("objects/ "), "{text}");

    repo.git(&["config", "gitmq.topic.orders.retainMessages", "4"]);
    let out = repo.gitmq(&["prune", "--all", "--grace", "0"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("kept 4 messages"));
    assert_eq!(git_log(&repo, "orders"), names(26, 30));
    repo.assert_fsck_clean();

    for bad in [
        &["prune", "orders"][..],
        &["prune", "orders", "--keep", "1", "--upto", "x"],
        &["prune", "--all", "orders"],
    ] {
        assert_eq!(repo.gitmq(bad, b"").status.code(), Some(2), "{bad:?}");
    }
    for bad in [
        &["prune", "orders", "--keep", "0"][..],
        &["prune", "orders", "--upto", "abc"],
        &["prune", "orders", "--before", "not a date"],
        &["prune", "nope", "--keep", "1"],
    ] {
        let out = repo.gitmq(bad, b"");
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("gitmq: "));
    }
}

#[test]
fn a_pruned_repository_fetches_new_messages_from_a_served_one() {
    let server = crate::server::HttpServer::start();
    server.bare_repo("q");
    let url = server.url("q");
    let upstream = TempRepo::new();
    publish(&upstream.open(), 0, 100, 25);
    let push = |repo: &TempRepo| repo.git(&["push", "-q", &url, "refs/heads/*:refs/heads/*"]);
    push(&upstream);

    let local = TempRepo::new();
    let queue = local.open();
    let fetch =
        || gitmq::replicate::fetch(&queue, &url, &gitmq::replicate::fetch::DEFAULT_PREFIXES);
    fetch().unwrap();
    prune(&queue, &topic(), Retain::Keep(20), &no_grace()).unwrap();
    local.assert_fsck_clean();

    publish(&upstream.open(), 100, 10, 10);
    push(&upstream);
    let fetched = fetch().unwrap();
    assert_eq!(
        fetched.pack.as_ref().unwrap().objects,
        10,
        "only the new messages"
    );
    assert_eq!(
        fetched.updates[0].kind,
        gitmq::replicate::UpdateKind::FastForward
    );
    assert_eq!(git_log(&local, "orders"), names(80, 110));
    assert_eq!(gitmq_log(&queue), names(80, 110));
    local.assert_fsck_clean();
}

/// A model of one topic and two consumers against random publishes, consumes and prunes:
/// the topic is always the model's kept suffix, and a consumer reads exactly the kept
/// messages after its position (or, moved by a forced prune, from the cut on).
#[test]
fn random_publishes_consumes_and_prunes_agree_with_a_model() {
    let mut rng = crate::util::Rng::new(0x0005_eed0_f9e7);
    let repo = TempRepo::new();
    let queue = repo.open();
    let mut published: Vec<String> = Vec::new(); // every payload, oldest first
    let mut start = 0; // index of the oldest kept message
    let names_of = |c: usize| ConsumerName::new(["a", "b"][c]).unwrap();
    let mut read_upto = [0usize; 2]; // per consumer: payloads read and committed
    for step in 0..40 {
        match rng.below(4) {
            0 | 1 => {
                let n = 1 + rng.below(30);
                let from = published.len();
                publish(&queue, from, n, 1 + rng.below(10));
                published.extend(names(from, from + n));
            }
            2 => {
                let c = rng.below(2);
                let mut consumer = queue.consumer(&names_of(c), &topic()).unwrap();
                let max = rng.below(40);
                let got: Vec<String> = consumer
                    .poll(max)
                    .unwrap()
                    .into_iter()
                    .map(|m| String::from_utf8(m.payload).unwrap())
                    .collect();
                let from = read_upto[c].max(start);
                let expected = &published[from..(from + max).min(published.len())];
                assert_eq!(
                    got, expected,
                    "step {step}: consumer {c} reads what follows"
                );
                consumer.commit().unwrap();
                read_upto[c] = from + got.len();
            }
            _ if !published.is_empty() => {
                let keep = 1 + rng.below(published.len() - start);
                let force = rng.below(2) == 0;
                let options = Options {
                    force,
                    ..no_grace()
                };
                let cut = published.len() - keep;
                // A consumer that never committed has no position: nothing to refuse.
                let behind = (0..2).any(|c| read_upto[c] > 0 && read_upto[c] < cut);
                match prune(&queue, &topic(), Retain::Keep(keep as u64), &options) {
                    Ok(report) => {
                        assert!(force || !behind, "step {step}: should have refused");
                        if cut > start {
                            assert_eq!(report.pruned, (cut - start) as u64, "step {step}");
                            start = cut;
                        }
                        for upto in &mut read_upto {
                            if *upto > 0 && *upto < start {
                                *upto = start; // moved to the cut
                            }
                        }
                    }
                    Err(Error::Unconsumed { .. }) => assert!(behind && !force, "step {step}"),
                    Err(err) => panic!("step {step}: {err}"),
                }
            }
            _ => {}
        }
        if !published.is_empty() {
            assert_eq!(git_log(&repo, "orders"), published[start..], "step {step}");
        }
    }
    repo.assert_fsck_clean();
    assert!(start > 0, "the sequence pruned something");
}

#[test]
fn a_ref_naming_a_dropped_message_keeps_its_history_and_is_reported() {
    let repo = TempRepo::new();
    let queue = repo.open();
    let ids = publish(&queue, 0, 50, 10);
    repo.git(&["tag", "audit", &ids[9].to_string()]);
    let report = prune(&queue, &topic(), Retain::Keep(10), &no_grace()).unwrap();
    assert_eq!(report.pinned, ["refs/tags/audit"]);
    assert_eq!(git_log(&repo, "orders"), names(40, 50), "the topic is cut");
    assert_eq!(
        git_log(&repo, "audit"),
        names(0, 10),
        "the tag keeps its history"
    );
    assert!(
        !object_exists(&repo, &ids[10]),
        "what no ref reaches is gone"
    );
    repo.assert_fsck_clean();
}

#[test]
fn sigkill_at_random_moments_of_a_prune_leaves_a_readable_fsck_clean_queue() {
    let repo = TempRepo::new();
    let queue = repo.open();
    let total = 8_000;
    publish(&queue, 0, total, 500);
    let mut rng = crate::util::Rng::new(0x00c0_ffee);
    let mut kept = total;
    for round in 0..8 {
        let keep = kept - 1 - rng.below(kept / 4);
        let mut child = Command::new(env!("CARGO_BIN_EXE_gitmq"))
            .arg("--repo")
            .arg(&repo.path)
            .args([
                "prune",
                "orders",
                "--keep",
                &keep.to_string(),
                "--grace",
                "0",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(500) as u64));
        let _ = child.kill();
        let finished = child.wait().unwrap().success();
        // The pack lock names a dead pid, so the next prune takes it; a shallow.lock left
        // behind is reported, as git does, and removed by hand.
        let _ = fs::remove_file(repo.path.join("shallow.lock"));
        for line in repo.fsck_complaints() {
            let tolerated = line.starts_with("warning: garbage found:") && line.contains("/tmp_");
            assert!(tolerated, "round {round}: fsck complained: {line}");
        }
        let log = git_log(&repo, "orders");
        assert!(
            log.len() == kept || log.len() == keep,
            "round {round}: the old or the new history, {} messages",
            log.len()
        );
        assert!(!finished || log.len() == keep, "round {round}");
        assert_eq!(log, names(total - log.len(), total), "round {round}");
        assert_eq!(
            gitmq_log(&queue),
            log,
            "round {round}: gitmq reads the same"
        );
        kept = log.len();
    }
    // A later prune finishes whatever a killed one left.
    let report = prune(&queue, &topic(), Retain::Keep(100), &no_grace()).unwrap();
    assert_eq!(report.kept, 100);
    assert_eq!(
        files_in(&repo.path.join("objects/pack"))
            .iter()
            .filter(|f| Path::new(f).extension().is_some_and(|e| e == "pack"))
            .count(),
        1
    );
    repo.assert_fsck_clean();
}

#[test]
fn a_repository_with_a_work_tree_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    crate::util::git(&["init", "-q", dir.path().to_str().unwrap()], None);
    fs::write(dir.path().join("staged.txt"), "staged only").unwrap();
    crate::util::git(&["add", "staged.txt"], Some(dir.path()));
    let queue = Repository::open(dir.path()).unwrap();
    publish(&queue, 0, 3, 1);
    let err = prune(&queue, &topic(), Retain::Keep(1), &no_grace()).unwrap_err();
    assert!(matches!(err, Error::WorkTree { .. }), "{err}");
}

/// Bytes of the files under `dir`.
pub fn du(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            du(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}
