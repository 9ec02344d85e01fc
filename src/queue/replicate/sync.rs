//! Owns keeping a repository in sync with a remote for as long as a process runs: the loop
//! behind `gitmq sync`. Each round pushes (when something is new) and polls with one
//! `ls-refs` (fetching when a tip moved); rounds run every [`SyncOptions::interval`], or as
//! soon as new local messages waited [`SyncOptions::linger`]; retention configured per topic
//! is applied every [`SyncOptions::retention_interval`].
//!
//! Invariants: one [`Pusher`] and one [`Fetcher`] live as long as the loop (a round costs one
//! POST to push when something is new and one `ls-refs` POST to poll); a failed round is
//! reported ([`SyncEvent::Failed`]) and the next round tries again, except refused credentials
//! or access (HTTP 401/403), which end the loop with the error; the loop stops between rounds
//! when `stop` is set, never in the middle of a push or fetch.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use super::{
    fetch::Fetcher,
    push::{PushOptions, PushReport, Pusher},
    Error, FetchOptions, FetchReport, HttpClient, Progress,
};
use crate::{prune, Repository, TopicName};

/// How often the loop looks at the local topics for new messages between rounds, when it
/// lingers (cheap: ref reads).
const LOCAL_POLL: Duration = Duration::from_millis(20);

/// How [`sync()`] runs.
#[derive(Debug, Clone)]
pub struct SyncOptions<'a> {
    /// Push and fetch at least this often.
    pub interval: Duration,
    /// Push local messages once the oldest unpushed one waited this long (`None`: only every
    /// `interval`).
    pub linger: Option<Duration>,
    /// Only these topics (`None`: all).
    pub topics: Option<&'a [TopicName]>,
    /// Stop after this many rounds (`None`: until `stop`).
    pub rounds: Option<u64>,
    /// Apply the retention configured per topic this often (`None`: never).
    pub retention_interval: Option<Duration>,
}

impl Default for SyncOptions<'_> {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            linger: None,
            topics: None,
            rounds: None,
            retention_interval: Some(Duration::from_secs(600)),
        }
    }
}

/// What a round did, as it happens.
#[derive(Debug)]
#[non_exhaustive]
pub enum SyncEvent<'a> {
    /// A push ran (its report may be empty: nothing was new).
    Pushed(&'a PushReport),
    /// A poll ran (its report may be empty: nothing moved).
    Fetched(&'a FetchReport),
    /// Retention ran: per topic, what was pruned or why not.
    Retention(&'a [prune::Applied]),
    /// Retention could not run at all.
    RetentionFailed(&'a prune::Error),
    /// A push or a fetch failed; the next round tries again.
    Failed {
        /// `"push"` or `"fetch"`.
        what: &'static str,
        /// Why.
        error: &'a Error,
    },
}

/// Push to and fetch from `remote` (a configured remote's name, or a URL) through `client`
/// until `stop` is set (checked between rounds) or `options.rounds` ran, telling `on_event`
/// what each round did. Ends with an error only when the remote refused the credentials or
/// the access (HTTP 401/403), or on a local failure that a retry cannot mend. `progress`
/// receives the server's progress text.
///
/// ```no_run
/// # fn main() -> Result<(), gitmq::Error> {
/// use std::sync::atomic::AtomicBool;
/// use gitmq::replicate::{http::{Options, ReqwestClient}, sync::{sync, SyncEvent, SyncOptions}};
/// let repo = gitmq::Repository::open("/srv/producer.git")?;
/// let client = ReqwestClient::new(Options::default())?;
/// let stop = AtomicBool::new(false); // set it from a signal handler
/// sync(&repo, "origin", &client, &SyncOptions::default(), &stop, None, |event| {
///     if let SyncEvent::Failed { what, error } = event {
///         eprintln!("{what} failed, trying again: {error}");
///     }
/// })?;
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn sync<C: HttpClient>(
    repo: &Repository,
    remote: &str,
    client: C,
    options: &SyncOptions<'_>,
    stop: &AtomicBool,
    mut progress: Option<Progress<'_>>,
    mut on_event: impl FnMut(SyncEvent<'_>),
) -> Result<(), crate::Error> {
    let mut pusher = Pusher::new(repo, remote, &client)?;
    let mut fetcher: Option<Fetcher<&C>> = None;
    let mut pushed_heads = None;
    let mut dirty_since: Option<Instant> = None;
    let mut next_round = Instant::now();
    let mut next_retention = Instant::now();
    let mut rounds = 0u64;
    while !stop.load(Ordering::Relaxed) && options.rounds.is_none_or(|max| rounds < max) {
        let now = Instant::now();
        let mut heads = None;
        if now < next_round {
            // Between rounds only a linger needs the local topics' heads.
            let Some(linger) = options.linger else {
                std::thread::sleep(LOCAL_POLL);
                continue;
            };
            let current = repo.topics()?;
            if pushed_heads.as_ref() != Some(&current) {
                dirty_since.get_or_insert(now);
            }
            heads = Some(current);
            if dirty_since.is_none_or(|since| now.duration_since(since) < linger) {
                std::thread::sleep(LOCAL_POLL);
                continue;
            }
        }
        let heads = match heads {
            Some(heads) => heads,
            None => repo.topics()?,
        };
        rounds += 1;
        next_round = now + options.interval;
        let push_options = PushOptions {
            topics: options.topics,
            progress: progress.as_mut().map(|p| &mut **p as &mut dyn FnMut(&[u8])),
            ..PushOptions::default()
        };
        match pusher.push(repo, push_options) {
            Ok(report) => {
                on_event(SyncEvent::Pushed(&report));
                pushed_heads = Some(heads);
                dirty_since = None;
            }
            Err(error) => failed("push", error, &mut on_event)?,
        }
        if fetcher.is_none() {
            match Fetcher::connect(repo, remote, &client) {
                Ok(connected) => fetcher = Some(connected),
                Err(error) => failed("fetch", error, &mut on_event)?,
            }
        }
        if let Some(connected) = &fetcher {
            let fetch_options = FetchOptions {
                progress: progress.as_mut().map(|p| &mut **p as &mut dyn FnMut(&[u8])),
                ..FetchOptions::default()
            };
            match connected.fetch(repo, fetch_options) {
                Ok(report) => on_event(SyncEvent::Fetched(&report)),
                Err(error) => {
                    fetcher = None;
                    failed("fetch", error, &mut on_event)?;
                }
            }
        }
        if let Some(interval) = options.retention_interval.filter(|_| now >= next_retention) {
            next_retention = now + interval;
            match prune::apply_retention(repo, &prune::Options::default()) {
                Ok(applied) => on_event(SyncEvent::Retention(&applied)),
                Err(error) => on_event(SyncEvent::RetentionFailed(&error)),
            }
        }
    }
    Ok(())
}

/// Report a failed push or fetch; refused credentials or access end the loop.
fn failed(
    what: &'static str,
    error: Error,
    on_event: &mut impl FnMut(SyncEvent<'_>),
) -> Result<(), crate::Error> {
    if matches!(error.http_status(), Some(401 | 403)) {
        return Err(error.into());
    }
    on_event(SyncEvent::Failed {
        what,
        error: &error,
    });
    Ok(())
}
