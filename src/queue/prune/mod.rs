//! Owns retention: dropping the old history of a topic from the local repository so its
//! objects leave the disk, while `git log`, `git fsck --strict`, consumers and producers keep
//! working on what is kept.
//!
//! Data flow of [`prune()`]: take the pack lock (`gitmq-consolidate.lock`: no consolidation
//! runs meanwhile) -> walk the topic's first parents from its head to the cut [`Retain`] asks
//! for (`cut::find`) -> walk below it (`cut::census`): messages dropped, consumer
//! positions and other refs naming them -> refuse if a position would lose unconsumed
//! messages (unless [`Options::force`], which moves those positions to the cut) -> add the
//! oldest kept message (and the newest dropped one if a position names it) to
//! `<git dir>/shallow` -> write one pack of everything reachable from every ref, stopping at
//! shallow commits, and remove the old packs and loose objects under a grace rule
//! (`repack`) -> drop shallow entries whose commit is gone.
//!
//! How the result reads: git's shallow mechanism, as in a shallow clone. The oldest kept
//! message is listed in `shallow`, so `git log` shows exactly the kept messages and `git fsck
//! --strict` accepts its absent parent; gitmq's walks stop there (`git::walk`). A position
//! at the newest dropped message ("consumed everything that was pruned") stays valid: that
//! commit is kept on its own, listed as shallow too, and a consumer reads from the oldest kept
//! message on.
//!
//! The oldest kept message still names its absent first parent in [`crate::Message::parent`]
//! (the commit is unchanged: ids never change).
//!
//! Positions: refusing is the default because a queue's consumers expect at-least-once
//! delivery and no silent skipping; `force` moves each position that is behind to the newest
//! dropped message and reports how many unconsumed messages it skipped.
//!
//! Invariants: nothing is removed before the new pack holding every reachable object is
//! complete and renamed; files younger than [`Options::grace`] are removed only when the new
//! pack holds all their objects (see `repack`); the prune is local (no remote is touched),
//! and producers' hot path is untouched: they append on the head, far above the cut.
//!
//! Roots: every ref under `refs/` (loose or in `packed-refs`) and `HEAD`. Reflogs are not
//! roots (gitmq writes none; bare repositories keep none by default): an entry naming a
//! pruned message would make `git fsck` complain, so expire them first (`git reflog expire`).
//! A repository with a work tree (an `index` or `worktrees/`) is refused: its staged objects
//! are reachable from no ref.
//!
//! Not guaranteed: a ref moved, while a prune runs, to a message the prune drops (a `reset`
//! into the pruned range) may name a missing object; a producer stalled for longer than the
//! grace period between writing its pack and moving its ref may find its pack gone. Shallow
//! boundaries are global, as in git: another topic whose history runs through the cut is cut
//! there too.
//!
//! Faults (no poisoning): a prune keeps no state between calls; one that fails (or is cut by a
//! crash) at any write or sync leaves the topic whole or pruned, never in between, and the next
//! prune finishes the job.

pub(crate) mod cut;
pub(crate) mod repack;
pub mod retention;

use std::{
    io,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use gix_hash::ObjectId;

pub use cut::Behind;
pub use repack::DEFAULT_GRACE;

use crate::{
    git::fs::LockFile,
    git::odb::pack::{consolidate, write::Compression},
    git::refs::{Expected, FullName},
    git::shallow::Shallow,
    Repository, TopicName,
};

/// Returned by [`prune()`] and [`prune_all()`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file system refused.
    #[error("pruning failed at {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The topic has no messages.
    #[error("topic {topic} does not exist")]
    NoTopic {
        /// The topic.
        topic: TopicName,
    },
    /// `Retain::Keep(0)`: a topic's ref must name a message.
    #[error("a prune keeps at least one message (the head)")]
    KeepNothing,
    /// `Retain::Upto` the head: nothing would be left.
    #[error("--upto the head of {topic} would leave no message; keep at least the head")]
    UptoHead {
        /// The topic.
        topic: TopicName,
    },
    /// `Retain::Upto` an id that is not on the topic's kept history.
    #[error("{id} is not a message of {topic} (or was pruned already)")]
    NotOnTopic {
        /// The id.
        id: ObjectId,
        /// The topic.
        topic: TopicName,
    },
    /// Consumers have not read messages the prune would drop.
    #[error("{}", unconsumed_message(.behind))]
    Unconsumed {
        /// The positions behind the cut.
        behind: Vec<Behind>,
    },
    /// A position moved while a forced prune moved it.
    #[error("the position {name} moved during the prune; run it again")]
    PositionMoved {
        /// The position ref.
        name: String,
    },
    /// The repository has a work tree: its index may name staged objects no ref reaches,
    /// which a prune would remove.
    #[error("{path} exists: prune works on bare repositories (`gitmq init` makes one), whose objects are all reachable from refs")]
    WorkTree {
        /// The index file or worktrees directory.
        path: PathBuf,
    },
    /// A consolidation held the pack lock for too long.
    #[error("another process holds {path} (a consolidation or a prune); try again later")]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
    /// More objects than one pack holds.
    #[error("more than 2^32 objects are reachable: too many for one pack")]
    TooManyObjects,
    /// A reachable object does not parse: nothing was removed.
    #[error("object {id} is corrupt ({reason}): nothing was removed")]
    Corrupt {
        /// The object.
        id: ObjectId,
        /// What is wrong.
        reason: &'static str,
    },
    /// An old pack's index could not be read: nothing more was removed.
    #[error("reading the index {path} failed")]
    Index {
        /// The index file.
        path: PathBuf,
        /// The cause.
        source: crate::git::odb::pack::index::Error,
    },
    /// Walking the topic failed.
    #[error(transparent)]
    Walk(#[from] crate::git::walk::Error),
    /// Reading an object failed.
    #[error(transparent)]
    Odb(#[from] crate::git::odb::Error),
    /// Reading or moving a ref failed.
    #[error(transparent)]
    Refs(#[from] crate::git::refs::Error),
    /// Reading or writing the shallow file failed.
    #[error(transparent)]
    Shallow(#[from] crate::git::shallow::Error),
    /// Writing the new pack failed: nothing was removed.
    #[error(transparent)]
    Pack(#[from] crate::git::odb::pack::write::Error),
    /// Taking the pack lock failed.
    #[error(transparent)]
    Lock(#[from] consolidate::Error),
    /// The retention config could not be read.
    #[error(transparent)]
    Config(#[from] retention::Error),
}

fn unconsumed_message(behind: &[Behind]) -> String {
    let list: Vec<String> = behind
        .iter()
        .map(|b| {
            format!(
                "{} on {} ({} unconsumed)",
                b.consumer.as_str(),
                b.topic.as_str(),
                b.unconsumed
            )
        })
        .collect();
    format!(
        "refusing to drop messages consumers have not read: {}; let them catch up, or prune \
         with --force (moves them to the cut, skipping those messages)",
        list.join(", ")
    )
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Which messages of a topic a prune keeps. The head is always kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retain {
    /// The newest `n` messages (at least 1).
    Keep(u64),
    /// Walking back from the head, everything up to the first message whose author date is
    /// before this time; that message and everything older goes. (Dates only decide where
    /// the cut is; the order is still first parents.)
    Before(SystemTime),
    /// Everything newer than this message; it and everything older goes.
    Upto(ObjectId),
}

/// How a prune runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Move consumer positions that are behind the cut to it (skipping their unconsumed
    /// messages) instead of refusing.
    pub force: bool,
    /// Old files modified less than this long before the prune started are removed only if
    /// the new pack holds all their objects (see `repack`). Default [`DEFAULT_GRACE`].
    pub grace: Duration,
    /// Sync the new pack, its directory and the shallow file before removing anything.
    pub sync: bool,
    /// How the new pack stores objects.
    pub compression: Compression,
    /// How long to wait for a running consolidation.
    pub lock_timeout: Duration,
    /// Only report what would be dropped (and which positions are behind): change nothing.
    pub dry_run: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            force: false,
            grace: DEFAULT_GRACE,
            sync: true,
            compression: Compression::Stored,
            lock_timeout: Duration::from_secs(60),
            dry_run: false,
        }
    }
}

/// A position a forced prune moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The position before.
    pub behind: Behind,
    /// Where it is now: the newest dropped message.
    pub to: ObjectId,
}

/// What [`prune()`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The topic.
    pub topic: TopicName,
    /// The oldest message kept, if anything was pruned.
    pub start: Option<ObjectId>,
    /// Messages on the topic after the prune (walked: stops at the boundary).
    pub kept: u64,
    /// Messages dropped from the topic's log.
    pub pruned: u64,
    /// Positions that named dropped messages (with a dry run: that would).
    pub behind: Vec<Behind>,
    /// Positions moved to the cut (only with [`Options::force`]).
    pub moved: Vec<Moved>,
    /// Refs other than positions that name dropped messages: their history stays on disk.
    pub pinned: Vec<String>,
    /// Objects written into the new pack.
    pub objects: u64,
    /// The new pack.
    pub new_pack: Option<PathBuf>,
    /// Old packs removed.
    pub packs_removed: usize,
    /// Loose objects removed.
    pub loose_removed: usize,
    /// Old files kept: younger than the grace period, or holding what a moved ref reaches.
    pub files_kept: usize,
    /// Bytes under `objects/` before.
    pub bytes_before: u64,
    /// Bytes under `objects/` after.
    pub bytes_after: u64,
}

/// Drop the history of `topic` older than `retain` asks from the local repository: see the
/// module docs for what is kept, refused and guaranteed.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::{prune::{prune, Options, Retain}, ConsumerName, Repository, TopicName};
/// let dir = tempfile::tempdir().expect("temp dir");
/// let repo = Repository::init(dir.path())?;
/// let orders = TopicName::new("orders")?;
/// for i in 0..10 {
///     repo.producer(&orders).publish(format!("order {i}").as_bytes())?;
/// }
/// let mut billing = repo.consumer(&ConsumerName::new("billing")?, &orders)?;
/// billing.poll(8)?;
/// billing.commit()?; // billing read orders 0..=7
///
/// // Keeping 5 drops orders 0..=4, all read by billing:
/// let options = Options { grace: std::time::Duration::ZERO, ..Options::default() };
/// let report = prune(&repo, &orders, Retain::Keep(5), &options)?;
/// assert_eq!((report.kept, report.pruned), (5, 5));
/// assert!(report.bytes_after < report.bytes_before);
///
/// // Keeping 1 would drop orders 8 and 9, which billing has not read: refused.
/// assert!(prune(&repo, &orders, Retain::Keep(1), &options).is_err());
///
/// let mut billing = repo.consumer(&ConsumerName::new("billing")?, &orders)?;
/// assert_eq!(billing.poll(10)?.len(), 2, "orders 8 and 9, nothing skipped");
/// # Ok(()) }
/// ```
pub fn prune(
    repo: &Repository,
    topic: &TopicName,
    retain: Retain,
    options: &Options,
) -> Result<Report, Error> {
    let started = SystemTime::now();
    for path in ["index", "worktrees"] {
        let path = repo.git_dir().join(path);
        if path.exists() {
            return Err(Error::WorkTree { path });
        }
    }
    let _lock = take_lock(repo, options.lock_timeout)?;
    let bytes_before = repack::disk_usage(&repo.git_dir().join("objects"))?;
    let head = repo
        .refs()
        .find(&topic.ref_name())?
        .ok_or_else(|| Error::NoTopic {
            topic: topic.clone(),
        })?;
    let mut odb = repo.odb();
    odb.reload_shallow()?;
    let mut scratch = Vec::new();
    let mut report = Report {
        topic: topic.clone(),
        start: None,
        kept: 0,
        pruned: 0,
        behind: Vec::new(),
        moved: Vec::new(),
        pinned: Vec::new(),
        objects: 0,
        new_pack: None,
        packs_removed: 0,
        loose_removed: 0,
        files_kept: 0,
        bytes_before,
        bytes_after: bytes_before,
    };
    let Some(cut) = cut::find(&mut odb, topic, head, retain, &mut scratch)? else {
        report.kept = crate::git::walk::count_after(&mut odb, head, None, &mut scratch)?;
        // Nothing new to cut, but files an earlier prune kept for their grace period may
        // be old enough now: finish the job.
        let shallow = Shallow::read(repo.git_dir())?;
        if !shallow.is_empty() && !options.dry_run {
            finish(repo, shallow, started, options, &mut report)?;
        }
        return Ok(report);
    };
    let refs = repo.refs().list("refs/")?;
    let census = cut::census(&mut odb, &cut, &refs, &mut scratch)?;
    report.start = Some(cut.start);
    report.kept = cut.kept;
    report.pruned = census.pruned;
    report.pinned.clone_from(&census.pinned);
    report.behind.clone_from(&census.behind);
    if options.dry_run {
        return Ok(report);
    }
    let unconsumed: Vec<Behind> = census
        .behind
        .iter()
        .filter(|b| b.unconsumed > 0)
        .cloned()
        .collect();
    if !unconsumed.is_empty() && !options.force {
        return Err(Error::Unconsumed { behind: unconsumed });
    }
    for behind in unconsumed {
        let name = behind.consumer.position_ref(&behind.topic);
        let lock = repo.refs().lock(&name, Duration::from_secs(10))?;
        match lock.commit(
            Expected::MustMatch(behind.position),
            &cut.last_pruned,
            options.sync,
        ) {
            Ok(()) => {}
            Err(crate::git::refs::Error::Changed { .. }) => {
                return Err(Error::PositionMoved {
                    name: name.to_string(),
                })
            }
            Err(err) => return Err(err.into()),
        }
        report.moved.push(Moved {
            behind,
            to: cut.last_pruned,
        });
    }

    let mut shallow = Shallow::read(repo.git_dir())?;
    shallow.insert(cut.start);
    if !census.behind.is_empty() {
        // A position at the newest dropped message stays valid: that commit is kept alone.
        shallow.insert(cut.last_pruned);
    }
    shallow.write(repo.fs(), repo.git_dir(), options.sync)?;

    finish(repo, shallow, started, options, &mut report)?;
    Ok(report)
}

/// Repack, drop shallow entries whose commits are gone, and fill in the rest of `report`.
fn finish(
    repo: &Repository,
    mut shallow: Shallow,
    started: SystemTime,
    options: &Options,
    report: &mut Report,
) -> Result<(), Error> {
    let repacked = repack::repack(repo, &shallow, started, options)?;
    // Boundaries left by earlier prunes whose commits are gone now.
    let mut odb = repo.odb();
    let before = shallow.len();
    shallow.retain(|id| odb.contains(id));
    if shallow.len() != before {
        shallow.write(repo.fs(), repo.git_dir(), options.sync)?;
    }
    report.objects = repacked.objects;
    report.new_pack = repacked.new_pack;
    report.packs_removed = repacked.packs_removed;
    report.loose_removed = repacked.loose_removed;
    report.files_kept = repacked.files_kept;
    report.bytes_after = repack::disk_usage(&repo.git_dir().join("objects"))?;
    Ok(())
}

/// Prune every topic that has a retention set in the repository's config
/// (`gitmq.topic.<topic>.retainMessages` / `retainSeconds`, see [`retention`]), one after
/// the other; topics without one are left alone.
pub fn prune_all(repo: &Repository, options: &Options) -> Result<Vec<Report>, Error> {
    let policies = retention::read(repo.git_dir())?;
    let mut reports = Vec::new();
    let now = SystemTime::now();
    for (topic, policy) in policies {
        if repo.refs().find(&topic.ref_name())?.is_none() {
            continue;
        }
        for retain in policy.retains(now) {
            reports.push(prune(repo, &topic, retain, options)?);
        }
    }
    Ok(reports)
}

/// What [`apply_retention()`] did for one topic and retention.
#[derive(Debug)]
pub struct Applied {
    /// The topic.
    pub topic: TopicName,
    /// The retention applied.
    pub retain: Retain,
    /// The prune's report (`pruned == 0`: nothing was due, nothing was rewritten), or why it
    /// did not run (positions behind the cut are never moved here: that needs `--force`).
    pub outcome: Result<Report, Error>,
}

/// Apply every retention configured in the repository (as [`prune_all()`]), the way a
/// long-running process does it: each topic and retention on its own (one failure does not
/// stop the others), a dry run first, and a real prune (which rewrites the packs) only when
/// it drops messages. `options.force` and `options.dry_run` are ignored: positions behind
/// the cut make that topic's outcome [`Error::Unconsumed`], never a skip.
///
/// ```
/// # fn main() -> Result<(), gitmq::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let repo = gitmq::Repository::init(dir.path())?;
/// // Nothing configured: nothing to do.
/// let applied = gitmq::prune::apply_retention(&repo, &gitmq::prune::Options::default())?;
/// assert!(applied.is_empty());
/// # Ok(()) }
/// ```
pub fn apply_retention(repo: &Repository, options: &Options) -> Result<Vec<Applied>, Error> {
    let policies = retention::read(repo.git_dir())?;
    let now = SystemTime::now();
    let dry = Options {
        dry_run: true,
        force: false,
        ..*options
    };
    let real = Options {
        dry_run: false,
        force: false,
        ..*options
    };
    let mut applied = Vec::new();
    for (topic, policy) in policies {
        if repo.refs().find(&topic.ref_name())?.is_none() {
            continue;
        }
        for retain in policy.retains(now) {
            let outcome = match prune(repo, &topic, retain, &dry) {
                Ok(preview) if preview.pruned == 0 => Ok(preview),
                Ok(_) => prune(repo, &topic, retain, &real),
                Err(err) => Err(err),
            };
            applied.push(Applied {
                topic: topic.clone(),
                retain,
                outcome,
            });
        }
    }
    Ok(applied)
}

/// Take the pack lock, waiting up to `timeout` for a consolidation to finish.
fn take_lock(repo: &Repository, timeout: Duration) -> Result<LockFile, Error> {
    consolidate::try_lock(repo.fs(), repo.git_dir(), timeout)?.ok_or_else(|| Error::Busy {
        path: repo.git_dir().join(consolidate::LOCK_FILE),
    })
}

/// Access
impl Behind {
    /// The position ref's full name.
    pub fn ref_name(&self) -> FullName {
        self.consumer.position_ref(&self.topic)
    }
}
