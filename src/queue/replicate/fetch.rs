//! Owns what a fetch means for a queue: which remote refs are wanted, what we tell the server
//! we have, and how local refs move once the pack is in place.
//!
//! Ref mapping for a named remote `<r>` (a URL given directly has no tracking refs):
//!
//! | remote ref | local tracking ref (forced, like git's `+` refspec) | local ref |
//! |---|---|---|
//! | `refs/heads/<topic>` | `refs/remotes/<r>/<topic>` | `refs/heads/<topic>`, fast-forward only |
//! | `refs/gitmq/consumers/<c>/<topic>` | `refs/gitmq/remotes/<r>/consumers/<c>/<topic>` | `refs/gitmq/consumers/<c>/<topic>`, adopted if absent or unmoved since last seen |
//!
//! Positions are tracked under `refs/gitmq/remotes/` rather than `refs/remotes/<r>/gitmq/...`,
//! where they could collide with a topic named `gitmq/consumers/...`.
//!
//! Invariants: wants are remote tips missing from the local object database; haves are the
//! local tips of topics, positions and tracking refs (gitmq knows its chains: no date-ordered
//! walk, no multi-round negotiation; `done` goes in the first request); refs move only after
//! the pack is indexed and in place and every want is readable; each ref moves under its lock
//! with a compare-and-swap against the value read; a local topic moves only if its current
//! head is on the first-parent chain of the remote head (or it does not exist): otherwise it
//! is left alone and reported as [`UpdateKind::Diverged`]; a local position is set to the
//! remote's only when it does not exist (a consumer on a new machine) or still holds what the
//! tracking ref held before this fetch (the local consumer has not moved since), and only
//! once its topic is in sync; a local ref moves before its tracking ref, so a fetch cut short
//! between the two still adopts the position next time. Remote refs that were deleted are not
//! pruned locally. No poisoning: a fetch that fails at a write or sync leaves every ref at its
//! old or new value, and the next fetch (which re-reads the disk) completes it. Packs are
//! asked for thin ([`FetchOptions::thin_pack`], as git's client does) and completed from the
//! local objects on arrival, except in a pruned (shallow) repository, which lacks history the
//! server could delta against.

use std::time::Duration;

use gix_hash::ObjectId;

use super::Error;
use crate::git::{
    config::remote as config,
    wire::{v2::RemoteRef, HttpClient, Remote, RemoteUrl},
};
use crate::{
    git::odb::pack::index_pack::{IndexedPack, Limits},
    git::refs::Expected,
    git::refs::FullName,
    queue::names::{ConsumerName, TopicName, POSITION_PREFIX, TOPIC_PREFIX},
    Repository,
};

/// The refs a fetch lists by default: topics and consumer positions.
pub const DEFAULT_PREFIXES: [&str; 2] = ["refs/heads/", "refs/gitmq/"];
/// The remote fetched when none is named.
pub const DEFAULT_REMOTE: &str = "origin";
/// Where the consumer positions of remote `<r>` are tracked: `refs/gitmq/remotes/<r>/consumers/...`.
pub const REMOTE_POSITIONS_PREFIX: &str = "refs/gitmq/remotes/";
/// Attempts of one [`Fetcher::fetch()`] when the failures are spurious.
pub const FETCH_ATTEMPTS: u32 = 3;
/// How long a ref lock is waited for.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// The most `have` lines sent.
const MAX_HAVES: usize = 10_000;

/// How to fetch.
pub struct FetchOptions<'a> {
    /// Ref prefixes to list (each ending in `/`).
    pub prefixes: &'a [&'a str],
    /// Bounds on the received pack.
    pub limits: Limits,
    /// Fsync the pack and index (and `objects/pack/`) before any ref moves, and each ref as it
    /// moves. Off, a power loss may leave a moved ref empty on file systems that journal names
    /// but not data (ext4 `data=writeback`, XFS), naming nothing.
    pub sync: bool,
    /// Where the server's progress text goes; `None` asks the server for none.
    pub progress: Option<crate::git::wire::Progress<'a>>,
    /// Ask for a thin pack (deltas against objects this repository has, smaller on an
    /// incremental fetch; some servers require it) and complete it from the local objects
    /// before it lands. Default `true`; ignored in a pruned (shallow) repository.
    pub thin_pack: bool,
}

impl Default for FetchOptions<'_> {
    fn default() -> Self {
        Self {
            prefixes: &DEFAULT_PREFIXES,
            limits: Limits::default(),
            sync: true,
            progress: None,
            thin_pack: true,
        }
    }
}

impl std::fmt::Debug for FetchOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("prefixes", &self.prefixes)
            .field("limits", &self.limits)
            .field("sync", &self.sync)
            .field("thin_pack", &self.thin_pack)
            .finish_non_exhaustive()
    }
}

/// How one local ref moved (or why it did not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// The ref did not exist.
    Created,
    /// A tracking ref moved to the remote's value.
    Updated,
    /// A local topic moved forward along its first-parent chain.
    FastForward,
    /// A local topic is not an ancestor of the remote one; it was left alone.
    Diverged,
}

/// One local ref the fetch created or moved, or a topic it left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    /// The full local ref name.
    pub name: String,
    /// Its value before (for [`UpdateKind::Diverged`]: its value, unchanged).
    pub old: Option<ObjectId>,
    /// Its value after (for [`UpdateKind::Diverged`]: the remote's value, not applied).
    pub new: ObjectId,
    /// What happened.
    pub kind: UpdateKind,
}

/// What a fetch did.
#[derive(Debug, Clone)]
pub struct FetchReport {
    /// The remote's URL, without credentials.
    pub url: String,
    /// The remote's name, when fetched by name.
    pub remote: Option<String>,
    /// 2, or 0 when the server did not speak protocol v2.
    pub protocol_version: u8,
    /// The pack received, if anything was missing.
    pub pack: Option<IndexedPack>,
    /// Local refs created or moved, and topics left alone.
    pub updates: Vec<RefUpdate>,
    /// Remote refs that are neither topics nor positions gitmq accepts.
    pub skipped: Vec<String>,
}

/// What a remote ref becomes locally.
enum Target {
    Topic(TopicName),
    Position(ConsumerName, TopicName),
}

/// Fetch from `remote` (a remote name from the repository's config, or a URL) with reqwest,
/// listing `prefixes` (use [`DEFAULT_PREFIXES`]).
#[cfg(feature = "http")]
pub fn fetch(repo: &Repository, remote: &str, prefixes: &[&str]) -> Result<FetchReport, Error> {
    let client =
        crate::git::wire::http::ReqwestClient::new(crate::git::wire::http::Options::default())?;
    let options = FetchOptions {
        prefixes,
        ..FetchOptions::default()
    };
    fetch_with(repo, remote, &client, options)
}

/// The remote's name (`None` for a URL) and URL.
pub fn resolve_remote(
    repo: &Repository,
    remote: &str,
) -> Result<(Option<String>, RemoteUrl), Error> {
    if remote.contains("://") {
        let sources = crate::git::wire::credentials::Sources::from_env();
        return Ok((
            None,
            crate::git::wire::credentials::with_credentials(RemoteUrl::parse(remote)?, &sources),
        ));
    }
    let valid = !remote.contains('/') && TopicName::new(remote).is_ok();
    let url = if valid {
        config::remote_url(repo.git_dir(), remote)?
    } else {
        None
    };
    let sources = crate::git::wire::credentials::Sources::from_env();
    match url {
        Some(url) => Ok((
            Some(remote.to_owned()),
            crate::git::wire::credentials::with_credentials(RemoteUrl::parse(&url)?, &sources),
        )),
        None => Err(Error::NoSuchRemote {
            name: remote.to_owned(),
        }),
    }
}

/// Fetch from `remote` (a configured remote's name, or a URL) through `client`.
pub fn fetch_with<C: HttpClient>(
    repo: &Repository,
    remote: &str,
    client: C,
    options: FetchOptions<'_>,
) -> Result<FetchReport, Error> {
    Fetcher::connect(repo, remote, client)?.fetch(repo, options)
}

/// A remote to fetch from, connected once (its capabilities discovered): each
/// [`Fetcher::fetch()`] then costs one `ls-refs` request when nothing changed, and one more
/// for the pack when a tip moved. What a consumer polling a remote keeps around.
///
/// ```no_run
/// # fn main() -> Result<(), gitmq::Error> {
/// use gitmq::replicate::{http::{Options, ReqwestClient}, fetch::Fetcher, FetchOptions};
/// let repo = gitmq::Repository::open("/srv/replica.git")?;
/// let client = ReqwestClient::new(Options::default())?;
/// let fetcher = Fetcher::connect(&repo, "origin", client)?;
/// loop {
///     let report = fetcher.fetch(&repo, FetchOptions::default())?;
///     if report.pack.is_some() {
///         break; // new messages are on the local topics now
///     }
///     std::thread::sleep(std::time::Duration::from_secs(1));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Fetcher<C> {
    server: Remote<C>,
    name: Option<String>,
}

impl<C: HttpClient> Fetcher<C> {
    /// Discover `remote`'s protocol and capabilities (one request).
    pub fn connect(repo: &Repository, remote: &str, client: C) -> Result<Self, Error> {
        let (name, url) = resolve_remote(repo, remote)?;
        Ok(Self {
            server: Remote::connect(client, url)?,
            name,
        })
    }

    /// List the remote's refs, fetch what is missing, move local refs. Spurious failures (the
    /// network, a 5xx, a cut body) are retried [`FETCH_ATTEMPTS`] times in all with back-off:
    /// a fetch changes nothing until its pack is complete, so a retry is always safe.
    pub fn fetch(
        &self,
        repo: &Repository,
        mut options: FetchOptions<'_>,
    ) -> Result<FetchReport, Error> {
        let mut backoff = crate::git::wire::retry::Backoff::default();
        let mut attempt = 1;
        loop {
            let once = FetchOptions {
                prefixes: options.prefixes,
                limits: options.limits,
                sync: options.sync,
                thin_pack: options.thin_pack,
                progress: options
                    .progress
                    .as_mut()
                    .map(|p| &mut **p as &mut dyn FnMut(&[u8])),
            };
            match fetch_from(repo, &self.server, self.name.clone(), once) {
                Err(err) if err.is_spurious() && attempt < FETCH_ATTEMPTS => {
                    attempt += 1;
                    backoff.wait();
                }
                result => return result,
            }
        }
    }
}

fn fetch_from<C: HttpClient>(
    repo: &Repository,
    server: &Remote<C>,
    name: Option<String>,
    options: FetchOptions<'_>,
) -> Result<FetchReport, Error> {
    let remote_refs = server.list_refs(options.prefixes)?;

    let mut planned: Vec<(RemoteRef, Target)> = Vec::new();
    let mut skipped = Vec::new();
    for remote_ref in remote_refs {
        match target_of(&remote_ref.name) {
            Some(Target::Position(..)) if name.is_none() => skipped.push(remote_ref.name),
            Some(target) => planned.push((remote_ref, target)),
            None => skipped.push(remote_ref.name),
        }
    }

    let mut odb = repo.odb();
    let mut wants: Vec<ObjectId> = planned
        .iter()
        .map(|(r, _)| r.id)
        .filter(|id| !odb.contains(id))
        .collect();
    wants.sort_unstable();
    wants.dedup();

    let mut pack = None;
    if !wants.is_empty() {
        let haves = local_tips(repo, name.as_deref())?;
        let mut local = repo.odb();
        let thin = options.thin_pack && !is_pruned(repo)?;
        pack = server.fetch_pack(
            &wants,
            &haves,
            &mut local,
            &options.limits,
            options.sync,
            thin,
            options.progress,
        )?;
        let mut odb = repo.odb();
        if let Some(&id) = wants.iter().find(|id| !odb.contains(id)) {
            return Err(Error::Incomplete { id });
        }
    }

    // Topics first: a position is adopted only once its topic is in sync.
    planned.sort_by_key(|(_, target)| matches!(target, Target::Position(..)));
    let mut updates = Vec::new();
    let mut diverged_topics = Vec::new();
    let mut odb = repo.odb();
    let mut buf = Vec::new();
    for (remote_ref, target) in &planned {
        let tracking = name.as_deref().map(|name| {
            match target {
                Target::Topic(topic) => tracking_ref(name, &topic.ref_name()),
                Target::Position(consumer, topic) => {
                    tracking_ref(name, &consumer.position_ref(topic))
                }
            }
            .expect("BUG: topics and positions have tracking refs")
        });
        let last_seen = match &tracking {
            Some(tracking) => repo.refs().find(tracking)?,
            None => None,
        };
        // The local ref moves before its tracking ref: a fetch cut short in between sees the
        // old tracking value next time, so a position it did not adopt yet is still adopted.
        let update = match target {
            Target::Topic(topic) => {
                let update =
                    fast_forward(repo, &mut odb, &mut buf, topic, remote_ref, options.sync)?;
                if update
                    .as_ref()
                    .is_some_and(|u| u.kind == UpdateKind::Diverged)
                {
                    diverged_topics.push(topic.clone());
                }
                update
            }
            Target::Position(consumer, topic)
                if name.is_some() && !diverged_topics.contains(topic) =>
            {
                adopt_position(
                    repo,
                    consumer,
                    topic,
                    remote_ref.id,
                    last_seen,
                    options.sync,
                )?
            }
            Target::Position(..) => None,
        };
        if let Some(tracking) = &tracking {
            updates.extend(move_tracking_ref(
                repo,
                tracking,
                remote_ref.id,
                options.sync,
            )?);
        }
        updates.extend(update);
    }

    Ok(FetchReport {
        url: server.url().redacted().to_owned(),
        remote: name,
        protocol_version: server.protocol_version(),
        pack,
        updates,
        skipped,
    })
}

/// Whether history was pruned here (`<git-dir>/shallow` lists a boundary): the server may
/// take any object our tips reach as a thin pack's base, and some lie below the boundary.
fn is_pruned(repo: &Repository) -> Result<bool, Error> {
    let shallow = crate::git::shallow::Shallow::read(repo.git_dir())
        .map_err(|err| crate::git::walk::Error::from(crate::git::odb::Error::from(err)))?;
    Ok(!shallow.is_empty())
}

/// The local tracking ref of `remote_ref` (a topic or a position) of the remote named
/// `remote`, per the table in the module documentation; `None` for other refs.
/// A remote whose name does not make valid ref names has no tracking refs (git refuses to
/// add such a remote).
pub(crate) fn tracking_ref(remote: &str, remote_ref: &str) -> Option<FullName> {
    let name = if let Some(topic) = remote_ref.strip_prefix(TOPIC_PREFIX) {
        format!("refs/remotes/{remote}/{topic}")
    } else {
        let rest = remote_ref.strip_prefix(POSITION_PREFIX)?;
        format!("{REMOTE_POSITIONS_PREFIX}{remote}/consumers/{rest}")
    };
    FullName::new(name).ok()
}

fn target_of(full_ref: &str) -> Option<Target> {
    if let Some((consumer, topic)) = ConsumerName::parse_position_ref(full_ref) {
        return Some(Target::Position(consumer, topic));
    }
    TopicName::from_ref(full_ref).map(Target::Topic)
}

/// The ids of local topics, positions and tracking refs of `remote`: what we tell the
/// server we have.
fn local_tips(repo: &Repository, remote: Option<&str>) -> Result<Vec<ObjectId>, Error> {
    let mut prefixes = vec!["refs/heads/".to_owned(), "refs/gitmq/".to_owned()];
    if let Some(remote) = remote {
        prefixes.push(format!("refs/remotes/{remote}/"));
    }
    let mut ids = Vec::new();
    for prefix in &prefixes {
        ids.extend(repo.refs().list(prefix)?.into_iter().map(|(_, id)| id));
    }
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(MAX_HAVES);
    Ok(ids)
}

/// Take the remote's position of `consumer` on `topic` when the local one is absent (a
/// consumer starting on a new machine) or has not moved since the remote's was last seen
/// (`last_seen`): so a consumer resumes where it was, on whichever machine. A local position
/// that moved is kept (it is pushed next, unless the remote's moved too).
fn adopt_position(
    repo: &Repository,
    consumer: &ConsumerName,
    topic: &TopicName,
    remote: ObjectId,
    last_seen: Option<ObjectId>,
    sync: bool,
) -> Result<Option<RefUpdate>, Error> {
    let name = consumer.position_ref(topic);
    let local = repo.refs().find(&name)?;
    if local == Some(remote) || (local.is_some() && local != last_seen) {
        return Ok(None);
    }
    let lock = repo.refs().lock(&name, LOCK_TIMEOUT)?;
    match lock.commit(Expected::from_current(local), &remote, sync) {
        Ok(()) => Ok(Some(RefUpdate {
            name: name.to_string(),
            old: local,
            new: remote,
            kind: if local.is_some() {
                UpdateKind::Updated
            } else {
                UpdateKind::Created
            },
        })),
        // The local consumer committed meanwhile: its position wins.
        Err(crate::git::refs::Error::Changed { .. }) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Point the tracking ref `name` at `new`, whatever it held.
pub(crate) fn move_tracking_ref(
    repo: &Repository,
    name: &FullName,
    new: ObjectId,
    sync: bool,
) -> Result<Option<RefUpdate>, Error> {
    let lock = repo.refs().lock(name, LOCK_TIMEOUT)?;
    let old = lock.current()?;
    if old == Some(new) {
        return Ok(None);
    }
    lock.commit(Expected::from_current(old), &new, sync)?;
    Ok(Some(RefUpdate {
        name: name.to_string(),
        old,
        new,
        kind: if old.is_some() {
            UpdateKind::Updated
        } else {
            UpdateKind::Created
        },
    }))
}

/// Move the local topic to the remote's head if that is a fast-forward along first parents.
fn fast_forward(
    repo: &Repository,
    odb: &mut crate::git::odb::Odb,
    buf: &mut Vec<u8>,
    topic: &TopicName,
    remote_ref: &RemoteRef,
    sync: bool,
) -> Result<Option<RefUpdate>, Error> {
    let name = topic.ref_name();
    let new = remote_ref.id;
    let old = repo.refs().find(&name)?;
    let diverged = |old| RefUpdate {
        name: name.to_string(),
        old,
        new,
        kind: UpdateKind::Diverged,
    };
    if let Some(old) = old {
        if old == new {
            return Ok(None);
        }
        if !crate::git::walk::is_on_chain(odb, new, old, None, buf)? {
            return Ok(Some(diverged(Some(old))));
        }
    }
    let lock = repo.refs().lock(&name, LOCK_TIMEOUT)?;
    match lock.commit(Expected::from_current(old), &new, sync) {
        Ok(()) => Ok(Some(RefUpdate {
            name: name.to_string(),
            old,
            new,
            kind: if old.is_some() {
                UpdateKind::FastForward
            } else {
                UpdateKind::Created
            },
        })),
        // A local producer appended meanwhile: the topic now has messages the remote lacks.
        Err(crate::git::refs::Error::Changed { actual, .. }) => Ok(Some(diverged(actual))),
        Err(err) => Err(err.into()),
    }
}
