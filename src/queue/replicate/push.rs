//! Owns what a push means for a queue: which refs move on the remote, which objects the
//! remote lacks, and what happens when another producer pushed first.
//!
//! One attempt (all dates ignored: gitmq knows its chains):
//!
//! ```text
//!  refs of the remote (GET info/refs?service=git-receive-pack, or the answer cached from the
//!  last successful push: the server's compare-and-swap catches a stale cache)
//!    |
//!    | per local topic L vs remote R (tracking ref H = R as last seen):
//!    |   R == L: nothing   R absent or on L's first-parent chain: push   L on R's chain: nothing
//!    |   otherwise (another producer pushed first): fetch R, copy the messages after the fork
//!    |   onto R (restack: byte-exact but the parent line, so stable ids and headers survive),
//!    |   move the local topic with CAS, move local positions that were inside the copied run
//!    |   back to the fork (they are redelivered: at-least-once), and start the attempt again
//!    | per local position P (of a pushed topic) vs remote RP: push if RP is absent or is
//!    |   still what this repository last saw (H); else another machine moved it: left
//!    v
//!  pack: every commit reachable from the pushed tips down to what the remote advertises,
//!  plus the empty tree, spooled to a temporary file (bounded memory)
//!    v
//!  POST git-receive-pack: "<old> <new> <ref>" per ref (old = the server-side CAS), atomic
//!  when offered, the pack with its Content-Length; report-status per ref
//!    v
//!  all ok: tracking refs (refs/remotes/<r>/..., refs/gitmq/remotes/<r>/...) move
//!  rejected: back-off, rediscover, plan again (a rebuild if a producer won); the same
//!  command rejected twice is an error (a hook or permission, not a race)
//! ```
//!
//! Invariants: nothing local is ever dropped: a copied message replaces its original on the
//! topic only by a compare-and-swap from the head that was copied; refs on the remote move
//! only from the values read (atomic push when offered, so a topic and its positions move
//! together); a pack is sent only whole, with its length, so a push cut off mid-way moves no
//! remote ref; the spool file is removed whatever happens. No poisoning: a failed local write
//! or sync ends the push with its error; a rebuild moves positions back to the fork before the
//! topic, so every step leaves local refs the next push (which re-reads the disk) completes.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use gix_hash::ObjectId;

use super::{
    fetch::{self, FetchOptions},
    Error,
};
use crate::git::wire::{
    receive_pack::{self, Command, RefStatus, Rejection, RejectionKind, RequestOptions},
    remote::{check_type, read_limited, MAX_REFS_RESPONSE},
    retry::Backoff,
    v0::Advertisement,
    Body, HttpClient, Method, Progress, RemoteUrl, Request, AGENT,
};
use crate::{
    git::message::restack::{self, Copied},
    git::odb::{
        pack::write::{PackStream, SpooledPack},
        Odb,
    },
    git::refs::Expected,
    git::refs::FullName,
    git::walk,
    queue::names::{ConsumerName, TopicName, POSITION_PREFIX, TOPIC_PREFIX},
    Repository,
};

const DISCOVERY_PATH: &str = "info/refs?service=git-receive-pack";
const SERVICE_PATH: &str = "git-receive-pack";
const ADVERTISEMENT_TYPE: &str = "application/x-git-receive-pack-advertisement";
const REQUEST_TYPE: &str = "application/x-git-receive-pack-request";
const RESULT_TYPE: &str = "application/x-git-receive-pack-result";
/// How long a local ref lock is waited for.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts by default (each conflict with another producer costs one).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// How to push.
pub struct PushOptions<'a> {
    /// The topics to push (`None`: every local topic).
    pub topics: Option<&'a [TopicName]>,
    /// Push the consumer positions of the pushed topics too.
    pub positions: bool,
    /// Ask the server to move all refs or none.
    pub atomic: bool,
    /// Fsync what a rebuild writes locally, and the tracking refs moved after the server's
    /// answer. Off, a power loss may leave a moved ref empty on file systems that journal
    /// names but not data (ext4 `data=writeback`, XFS), naming nothing.
    pub sync: bool,
    /// Attempts before giving up on conflicts and spurious network errors.
    pub max_attempts: u32,
    /// Where the server's progress text goes; `None` asks the server for none.
    pub progress: Option<Progress<'a>>,
}

impl Default for PushOptions<'_> {
    fn default() -> Self {
        Self {
            topics: None,
            positions: true,
            atomic: true,
            sync: true,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            progress: None,
        }
    }
}

impl std::fmt::Debug for PushOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("topics", &self.topics)
            .field("positions", &self.positions)
            .field("atomic", &self.atomic)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// A remote ref the push moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRef {
    /// The full ref name.
    pub name: String,
    /// Its value on the remote before.
    pub old: Option<ObjectId>,
    /// Its value now.
    pub new: ObjectId,
}

/// A topic whose unpushed messages were copied onto the remote's newer head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// The topic.
    pub topic: TopicName,
    /// The remote head they now follow.
    pub onto: ObjectId,
    /// Each message's id before and after.
    pub copies: Vec<Copied>,
    /// Local positions moved back to the fork (their consumers get the remote's new messages,
    /// then the copies again).
    pub positions_moved: Vec<String>,
}

/// A local ref the push left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The full ref name.
    pub name: String,
    /// Why.
    pub reason: &'static str,
}

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct PushReport {
    /// The remote's URL, without credentials.
    pub url: String,
    /// Remote refs moved.
    pub updates: Vec<PushedRef>,
    /// Topics rebuilt on a head another producer pushed.
    pub rebuilt: Vec<Rebuilt>,
    /// Local refs not pushed.
    pub skipped: Vec<Skipped>,
    /// Objects sent.
    pub objects: u32,
    /// Bytes of pack sent.
    pub pack_bytes: u64,
    /// Attempts made (1 without conflicts).
    pub attempts: u32,
    /// HTTP requests made.
    pub requests: u32,
}

/// Push to `remote` (a configured remote's name, or a URL) with reqwest.
#[cfg(feature = "http")]
pub fn push(repo: &Repository, remote: &str) -> Result<PushReport, Error> {
    let client =
        crate::git::wire::http::ReqwestClient::new(crate::git::wire::http::Options::default())?;
    push_with(repo, remote, &client, PushOptions::default())
}

/// Push to `remote` (a configured remote's name, or a URL) through `client`.
pub fn push_with<C: HttpClient>(
    repo: &Repository,
    remote: &str,
    client: C,
    options: PushOptions<'_>,
) -> Result<PushReport, Error> {
    Pusher::new(repo, remote, client)?.push(repo, options)
}

/// A remote to push to, remembering its refs between pushes: after a successful push the
/// next one plans against the values it set and sends one request, not two (a stale memory
/// costs one rejected request, then the remote is asked again).
#[derive(Debug)]
pub struct Pusher<C> {
    client: C,
    spec: String,
    name: Option<String>,
    url: RemoteUrl,
    cached: Option<Advertisement>,
}

/// How a local topic relates to the remote's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Same,
    /// The remote lacks the topic or its head is on the local first-parent chain.
    Ahead,
    /// The local head is on the remote's chain: nothing to send.
    Behind,
    /// Both moved (or the remote head is unknown here): fetch, then rebuild.
    Diverged,
}

struct Plan {
    commands: Vec<Command>,
    tips: Vec<ObjectId>,
    diverged: Vec<(TopicName, ObjectId, Option<ObjectId>)>,
    skipped: Vec<Skipped>,
}

/// Lifecycle
impl<C: HttpClient> Pusher<C> {
    /// A pusher for `remote` (a configured remote's name, or a URL).
    pub fn new(repo: &Repository, remote: &str, client: C) -> Result<Self, Error> {
        let (name, url) = fetch::resolve_remote(repo, remote)?;
        Ok(Self {
            client,
            spec: remote.to_owned(),
            name,
            url,
            cached: None,
        })
    }
}

/// Pushing
impl<C: HttpClient> Pusher<C> {
    /// Push the local topics (and their consumer positions) the remote lacks; see the module
    /// documentation for what happens when another producer pushed first.
    pub fn push(
        &mut self,
        repo: &Repository,
        mut options: PushOptions<'_>,
    ) -> Result<PushReport, Error> {
        let mut report = PushReport {
            url: self.url.redacted().to_owned(),
            ..PushReport::default()
        };
        let mut backoff = Backoff::default();
        let mut rejected_before: HashSet<(String, Option<ObjectId>)> = HashSet::new();
        let max_attempts = options.max_attempts.max(1);
        loop {
            report.attempts += 1;
            let last = report.attempts >= max_attempts;
            match self.attempt(repo, &mut options, &mut report, &mut rejected_before) {
                Ok(true) => return Ok(report),
                Ok(false) if last => {
                    return Err(Error::Conflicts {
                        attempts: report.attempts,
                    })
                }
                Ok(false) => backoff.wait(),
                Err(err) if err.is_spurious() && !last => {
                    self.cached = None;
                    backoff.wait();
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// One attempt: `true` when done, `false` to try again.
    fn attempt(
        &mut self,
        repo: &Repository,
        options: &mut PushOptions<'_>,
        report: &mut PushReport,
        rejected_before: &mut HashSet<(String, Option<ObjectId>)>,
    ) -> Result<bool, Error> {
        let advertisement = if let Some(cached) = self.cached.take() {
            cached
        } else {
            report.requests += 1;
            self.discover()?
        };
        let remote_refs: HashMap<String, ObjectId> = advertisement
            .refs
            .iter()
            .map(|r| (r.name.clone(), r.id))
            .collect();
        let plan = self.plan(repo, &remote_refs, options)?;
        if !plan.diverged.is_empty() {
            self.rebuild_diverged(repo, &plan.diverged, options.sync, report)?;
            return Ok(false);
        }
        report.skipped = plan.skipped;
        if plan.commands.is_empty() {
            self.cached = Some(advertisement);
            return Ok(true);
        }
        let stop: HashSet<ObjectId> = remote_refs.values().copied().collect();
        let (spooled, boundary) = spool_pack(repo, &plan.tips, &stop)?;
        report.requests += 1;
        let (verdict, atomic) = self.send(&advertisement, &plan.commands, &spooled, options)?;
        if let Some(boundary) = boundary {
            let missing = |r: &Rejection| r.kind == RejectionKind::MissingObjects;
            let lacks = verdict.unpack_error.as_ref().is_some_and(missing)
                || verdict
                    .refs
                    .iter()
                    .any(|(_, status)| matches!(status, RefStatus::Rejected(r) if missing(r)));
            if lacks {
                return Err(Error::PrunedHere { boundary });
            }
        }
        if let Some(rejection) = verdict.unpack_error {
            return Err(Error::Unpack {
                reason: rejection.reason,
            });
        }
        let mut advertisement = advertisement;
        let mut all_ok = true;
        let mut moved = 0;
        for command in &plan.commands {
            match verdict.status(&command.name) {
                Some(RefStatus::Ok) => {
                    let Some(new) = command.new else { continue };
                    // Synced: a tracking ref that survives a power loss empty names nothing.
                    self.track(repo, &command.name, new, options.sync)?;
                    report.updates.push(PushedRef {
                        name: command.name.clone(),
                        old: command.old,
                        new,
                    });
                    remember(&mut advertisement, &command.name, new);
                    moved += 1;
                }
                Some(RefStatus::Rejected(rejection)) => {
                    all_ok = false;
                    // In an atomic push the other refs fail as collateral: only the cause
                    // counts. The same command refused twice is not a race.
                    let collateral = atomic && rejection.kind == RejectionKind::AtomicCollateral;
                    if !collateral && !rejected_before.insert((command.name.clone(), command.old)) {
                        return Err(Error::Rejected {
                            name: command.name.clone(),
                            reason: rejection.reason.clone(),
                        });
                    }
                }
                None => {
                    return Err(Error::MissingVerdict {
                        name: command.name.clone(),
                    })
                }
            }
        }
        if moved == 0 {
            return Ok(false);
        }
        report.objects += spooled.count;
        report.pack_bytes += spooled.len;
        if !all_ok {
            // Some refs moved (a non-atomic push): plan again against fresh refs.
            return Ok(false);
        }
        self.cached = Some(advertisement);
        Ok(true)
    }

    /// Send the commands and the pack; the server's report, and whether it was atomic.
    fn send(
        &self,
        advertisement: &Advertisement,
        commands: &[Command],
        spooled: &SpooledPack,
        options: &mut PushOptions<'_>,
    ) -> Result<(receive_pack::Report, bool), Error> {
        let (head, negotiated) = receive_pack::request_header(
            advertisement,
            AGENT,
            commands,
            RequestOptions {
                atomic: options.atomic,
                progress: options.progress.is_some(),
            },
        )?;
        let body = if negotiated.sends_pack {
            Body::File {
                head,
                file: spooled.reader().map_err(|source| Error::Spool {
                    source: crate::git::odb::pack::write::Error::Io {
                        path: std::path::PathBuf::from("objects/pack"),
                        source,
                    },
                })?,
                file_len: spooled.len,
            }
        } else {
            Body::Bytes(head)
        };
        let response = self.client.send(Request {
            method: Method::Post,
            url: &self.url,
            path: SERVICE_PATH,
            headers: &[("Content-Type", REQUEST_TYPE), ("Accept", RESULT_TYPE)],
            body,
        })?;
        check_type(&self.url, &response, RESULT_TYPE)?;
        let mut ignore = |_: &[u8]| {};
        let progress = options.progress.as_deref_mut().unwrap_or(&mut ignore);
        let report = receive_pack::read_report(response.body, negotiated.side_band, progress)?;
        Ok((report, negotiated.atomic))
    }

    fn discover(&self) -> Result<Advertisement, Error> {
        let response = self.client.send(Request {
            method: Method::Get,
            url: &self.url,
            path: DISCOVERY_PATH,
            headers: &[],
            body: Body::Empty,
        })?;
        check_type(&self.url, &response, ADVERTISEMENT_TYPE)?;
        let body = read_limited(&self.url, response.body, MAX_REFS_RESPONSE)?;
        Ok(receive_pack::parse_advertisement(&body)?)
    }

    /// The tracking ref of remote ref `name`, for a named remote.
    fn tracking_ref(&self, name: &str) -> Option<FullName> {
        fetch::tracking_ref(self.name.as_deref()?, name)
    }

    fn track(&self, repo: &Repository, name: &str, new: ObjectId, sync: bool) -> Result<(), Error> {
        if let Some(tracking) = self.tracking_ref(name) {
            fetch::move_tracking_ref(repo, &tracking, new, sync)?;
        }
        Ok(())
    }

    fn plan(
        &self,
        repo: &Repository,
        remote: &HashMap<String, ObjectId>,
        options: &PushOptions<'_>,
    ) -> Result<Plan, Error> {
        let mut odb = repo.odb();
        let mut buf = Vec::new();
        let mut plan = Plan {
            commands: Vec::new(),
            tips: Vec::new(),
            diverged: Vec::new(),
            skipped: Vec::new(),
        };
        let mut pushable_topics = HashSet::new();
        for (name, local) in repo.refs().list(TOPIC_PREFIX)? {
            let Some(topic) = TopicName::from_ref(&name) else {
                continue;
            };
            if options.topics.is_some_and(|only| !only.contains(&topic)) {
                continue;
            }
            let theirs = remote.get(name.as_str()).copied();
            let hint = match self.tracking_ref(&name) {
                Some(tracking) => repo.refs().find(&tracking)?,
                None => None,
            };
            match relation(&mut odb, &mut buf, local, theirs, hint)? {
                Relation::Same | Relation::Behind => {
                    pushable_topics.insert(topic);
                }
                Relation::Ahead => {
                    plan.commands.push(Command {
                        old: theirs,
                        new: Some(local),
                        name: name.to_string(),
                    });
                    plan.tips.push(local);
                    pushable_topics.insert(topic);
                }
                Relation::Diverged => plan.diverged.push((topic, local, hint)),
            }
        }
        if !options.positions {
            return Ok(plan);
        }
        for (name, local) in repo.refs().list(POSITION_PREFIX)? {
            let Some((_, topic)) = ConsumerName::parse_position_ref(&name) else {
                continue;
            };
            if !pushable_topics.contains(&topic) {
                if options.topics.is_none_or(|only| only.contains(&topic)) {
                    plan.skipped.push(Skipped {
                        name: name.to_string(),
                        reason: "its topic is not in sync with the remote yet",
                    });
                }
                continue;
            }
            let theirs = remote.get(name.as_str()).copied();
            if theirs == Some(local) {
                continue;
            }
            let hint = match self.tracking_ref(&name) {
                Some(tracking) => repo.refs().find(&tracking)?,
                None => None,
            };
            if theirs.is_none() || theirs == hint {
                plan.commands.push(Command {
                    old: theirs,
                    new: Some(local),
                    name: name.to_string(),
                });
            } else {
                plan.skipped.push(Skipped {
                    name: name.to_string(),
                    reason: "another machine moved it on the remote (fetch to adopt it)",
                });
            }
        }
        Ok(plan)
    }

    /// Fetch the diverged topics, then copy each one's unpushed messages onto the remote head.
    fn rebuild_diverged(
        &self,
        repo: &Repository,
        diverged: &[(TopicName, ObjectId, Option<ObjectId>)],
        sync: bool,
        report: &mut PushReport,
    ) -> Result<(), Error> {
        let prefixes: Vec<String> = diverged
            .iter()
            .map(|(t, ..)| t.ref_name().to_string())
            .collect();
        let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
        let fetched = fetch::fetch_with(
            repo,
            &self.spec,
            &self.client,
            FetchOptions {
                prefixes: &prefixes,
                sync,
                ..FetchOptions::default()
            },
        )?;
        report.requests += 3;
        let mut odb = repo.odb();
        let mut buf = Vec::new();
        for (topic, local, hint) in diverged {
            let name = topic.ref_name();
            // The remote's head as just fetched (the tracking ref, or the fetch's report for
            // a remote given as a URL).
            let theirs = fetched
                .updates
                .iter()
                .find(|u| *u.name == *name)
                .map(|u| u.new)
                .or(match self.tracking_ref(&name) {
                    Some(tracking) => repo.refs().find(&tracking)?,
                    None => None,
                });
            let Some(theirs) = theirs else { continue };
            if repo.refs().find(&name)? != Some(*local) {
                continue; // the fetch fast-forwarded it, or a local producer appended: re-plan
            }
            if relation(&mut odb, &mut buf, *local, Some(theirs), *hint)? != Relation::Diverged {
                continue;
            }
            let rebuilt = rebuild(repo, &mut odb, &mut buf, topic, *local, theirs, *hint, sync)?;
            if let Some(rebuilt) = rebuilt {
                report.rebuilt.push(rebuilt);
            }
        }
        Ok(())
    }
}

/// Record in a remembered advertisement that `name` now holds `new`.
fn remember(advertisement: &mut Advertisement, name: &str, new: ObjectId) {
    match advertisement.refs.iter_mut().find(|r| r.name == name) {
        Some(known) => known.id = new,
        None => advertisement.refs.push(crate::git::wire::v2::RemoteRef {
            name: name.to_owned(),
            id: new,
            symref_target: None,
        }),
    }
}

/// How `local` relates to `theirs`, walking first parents only, and no further back than
/// `hint` (what the remote held when last seen) where that is on the way.
fn relation(
    odb: &mut Odb,
    buf: &mut Vec<u8>,
    local: ObjectId,
    theirs: Option<ObjectId>,
    hint: Option<ObjectId>,
) -> Result<Relation, Error> {
    let Some(theirs) = theirs else {
        return Ok(Relation::Ahead);
    };
    if theirs == local {
        return Ok(Relation::Same);
    }
    if !odb.contains(&theirs) {
        return Ok(Relation::Diverged);
    }
    if walk::is_on_chain(odb, local, theirs, hint, buf)? {
        return Ok(Relation::Ahead);
    }
    if walk::is_on_chain(odb, theirs, local, hint, buf)? {
        return Ok(Relation::Behind);
    }
    Ok(Relation::Diverged)
}

/// Copy the messages of `topic` after its fork from `theirs` onto `theirs`; move the topic
/// (CAS from `local`) and the local positions inside the copied run. `None` if the topic
/// moved meanwhile (the caller plans again).
#[allow(clippy::too_many_arguments)]
fn rebuild(
    repo: &Repository,
    odb: &mut Odb,
    buf: &mut Vec<u8>,
    topic: &TopicName,
    local: ObjectId,
    theirs: ObjectId,
    hint: Option<ObjectId>,
    sync: bool,
) -> Result<Option<Rebuilt>, Error> {
    // The local chain back to what the remote held when last seen (or to the root).
    let mut chain = Vec::new();
    for step in walk::FirstParents::new(odb, Some(local), buf) {
        let (id, _) = step?;
        chain.push(id);
        if Some(id) == hint {
            break;
        }
    }
    let on_chain: HashSet<ObjectId> = chain.iter().copied().collect();
    // The newest commit of the remote's chain that is also on ours: the fork.
    let mut fork = None;
    for step in walk::FirstParents::new(odb, Some(theirs), buf) {
        let (id, _) = step?;
        if on_chain.contains(&id) {
            fork = Some(id);
            break;
        }
    }
    let mut unpushed: Vec<ObjectId> = chain
        .iter()
        .take_while(|id| Some(**id) != fork)
        .copied()
        .collect();
    unpushed.reverse();
    let copied = restack::restack(repo, Some(theirs), &unpushed, sync)?;
    let Some(tip) = copied.tip() else {
        return Ok(None);
    };
    let lock = repo.refs().lock(&topic.ref_name(), LOCK_TIMEOUT)?;
    if lock.current()? != Some(local) {
        return Ok(None); // a local producer appended: the copies stay unreachable
    }
    // Positions go back to the fork before the topic moves (the fork is on both histories):
    // a crash in between leaves a position that reads some messages again, never one on
    // neither the topic nor its history.
    let copied_set: HashSet<ObjectId> = unpushed.iter().copied().collect();
    let mut positions_moved = Vec::new();
    for (name, position) in repo.refs().list(POSITION_PREFIX)? {
        let on_topic = ConsumerName::parse_position_ref(&name).is_some_and(|(_, t)| t == *topic);
        if !on_topic || !copied_set.contains(&position) {
            continue;
        }
        let Some(fork) = fork else { continue };
        let position_lock = repo.refs().lock(&name, LOCK_TIMEOUT)?;
        if position_lock.current()? == Some(position) {
            position_lock.commit(Expected::MustMatch(position), &fork, sync)?;
            positions_moved.push(name.to_string());
        }
    }
    lock.commit(Expected::MustMatch(local), &tip, sync)?;
    Ok(Some(Rebuilt {
        topic: topic.clone(),
        onto: theirs,
        copies: copied.copies,
        positions_moved,
    }))
}

/// Write every commit reachable from `tips` and not from `stop` (all parents), plus the
/// empty tree, into a spooled pack; the walk ends at shallow commits (a prune's boundary),
/// the last of which is returned: the remote must already hold what lies below it.
fn spool_pack(
    repo: &Repository,
    tips: &[ObjectId],
    stop: &HashSet<ObjectId>,
) -> Result<(SpooledPack, Option<ObjectId>), Error> {
    let spool_err = |source| Error::Spool { source };
    let mut boundary = None;
    let mut odb = repo.odb();
    let pack_dir = repo.git_dir().join("objects/pack");
    let mut spool = PackStream::spool(repo.fs(), &pack_dir).map_err(spool_err)?;
    let io = |source| {
        spool_err(crate::git::odb::pack::write::Error::Io {
            path: pack_dir.clone(),
            source,
        })
    };
    spool
        .add(
            &ObjectId::empty_tree(crate::git::hash::OBJECT_HASH),
            gix_object::Kind::Tree,
            b"",
        )
        .map_err(io)?;
    let mut seen = HashSet::new();
    let mut stack: Vec<ObjectId> = tips.to_vec();
    let mut body = Vec::new();
    while let Some(id) = stack.pop() {
        if stop.contains(&id) || !seen.insert(id) {
            continue;
        }
        odb.read_commit(&id, &mut body)
            .map_err(crate::git::walk::Error::from)?;
        spool
            .add(&id, gix_object::Kind::Commit, &body)
            .map_err(io)?;
        // A shallow commit's parents were pruned here: the remote must have them already.
        if odb.is_shallow(&id).map_err(crate::git::walk::Error::from)? {
            boundary = Some(id);
            continue;
        }
        // First parent last on the stack: the depth-first walk follows first parents first.
        let (_, parents) = crate::git::message::parent::links(&body)
            .map_err(|source| crate::git::walk::Error::Parent { id, source })?;
        stack.extend(parents.into_iter().rev());
    }
    Ok((spool.spool_finish().map_err(spool_err)?, boundary))
}
