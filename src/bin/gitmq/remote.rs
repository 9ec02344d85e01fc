//! `gitmq push`, `fetch`, `sync` and `remote add`: the CLI over `gitmq::replicate`, printing
//! every ref that moved, one per line (`<what>\t<ref>\t<ids>`), progress on stderr only when
//! it is a terminal.

use std::{
    io::{self, BufWriter, IsTerminal, Write},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use gitmq::{
    replicate::{
        self,
        fetch::{Fetcher, DEFAULT_PREFIXES},
        http::ReqwestClient,
        push::{PushOptions, PushReport, Pusher},
        FetchOptions, FetchReport, RemoteUrl, UpdateKind,
    },
    Repository, TopicName,
};

use crate::{
    commands::Result,
    timeouts::{http_options, TimeoutArgs},
};

/// How often `sync` looks at the local topics for new messages (cheap: ref reads).
const LOCAL_POLL: Duration = Duration::from_millis(20);

/// Progress text from the server, to stderr when it is a terminal.
fn progress_sink() -> Option<impl FnMut(&[u8])> {
    io::stderr().is_terminal().then_some(|text: &[u8]| {
        let _ = io::stderr().write_all(text);
    })
}

fn topics(names: &[String]) -> Result<Option<Vec<TopicName>>> {
    if names.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        names
            .iter()
            .map(|n| TopicName::new(n))
            .collect::<std::result::Result<_, _>>()?,
    ))
}

/// `gitmq push [REMOTE] [--topic T]...`
pub fn push(
    repo: &Repository,
    remote: &str,
    topic_names: &[String],
    timeouts: &TimeoutArgs,
) -> Result<()> {
    let client = ReqwestClient::new(http_options(repo, timeouts)?)?;
    let mut pusher = Pusher::new(repo, remote, &client)?;
    let only = topics(topic_names)?;
    let report = push_once(repo, &mut pusher, only.as_deref())?;
    let mut out = BufWriter::new(io::stdout().lock());
    print_push(&mut out, &report)?;
    out.flush()?;
    Ok(())
}

fn push_once(
    repo: &Repository,
    pusher: &mut Pusher<&ReqwestClient>,
    only: Option<&[TopicName]>,
) -> std::result::Result<PushReport, replicate::Error> {
    let mut sink = progress_sink();
    let options = PushOptions {
        topics: only,
        progress: sink.as_mut().map(|s| s as &mut dyn FnMut(&[u8])),
        ..PushOptions::default()
    };
    pusher.push(repo, options)
}

fn print_push(out: &mut impl Write, report: &PushReport) -> io::Result<()> {
    for rebuilt in &report.rebuilt {
        writeln!(
            out,
            "rebuilt\t{}\t{} messages onto {} (another producer pushed first)",
            rebuilt.topic.ref_name(),
            rebuilt.copies.len(),
            rebuilt.onto
        )?;
        for copy in &rebuilt.copies {
            writeln!(out, "renamed\t{}\t{}", copy.old, copy.new)?;
        }
        for position in &rebuilt.positions_moved {
            writeln!(
                out,
                "rewound\t{position}\tto the fork (messages redelivered)"
            )?;
        }
    }
    for update in &report.updates {
        match update.old {
            Some(old) => writeln!(out, "pushed\t{}\t{old}..{}", update.name, update.new)?,
            None => writeln!(out, "created\t{}\t{}", update.name, update.new)?,
        }
    }
    for skipped in &report.skipped {
        writeln!(out, "skipped\t{}\t{}", skipped.name, skipped.reason)?;
    }
    Ok(())
}

/// `gitmq fetch [REMOTE]`
pub fn fetch(repo: &Repository, remote: &str, timeouts: &TimeoutArgs) -> Result<()> {
    let client = ReqwestClient::new(http_options(repo, timeouts)?)?;
    let fetcher = Fetcher::connect(repo, remote, &client)?;
    let report = fetch_once(repo, &fetcher)?;
    let mut out = BufWriter::new(io::stdout().lock());
    print_fetch(&mut out, &report)?;
    out.flush()?;
    Ok(())
}

fn fetch_once<C: replicate::HttpClient>(
    repo: &Repository,
    fetcher: &Fetcher<C>,
) -> std::result::Result<FetchReport, replicate::Error> {
    let mut sink = progress_sink();
    let options = FetchOptions {
        prefixes: &DEFAULT_PREFIXES,
        progress: sink.as_mut().map(|s| s as &mut dyn FnMut(&[u8])),
        ..FetchOptions::default()
    };
    fetcher.fetch(repo, options)
}

fn print_fetch(out: &mut impl Write, report: &FetchReport) -> io::Result<()> {
    if let Some(pack) = &report.pack {
        writeln!(
            out,
            "received\t{} objects\t{} bytes",
            pack.objects, pack.bytes
        )?;
    }
    for update in &report.updates {
        let old = update.old.map(|id| id.to_string()).unwrap_or_default();
        match update.kind {
            UpdateKind::Created => writeln!(out, "created\t{}\t{}", update.name, update.new)?,
            UpdateKind::Updated => {
                writeln!(out, "updated\t{}\t{old}..{}", update.name, update.new)?;
            }
            UpdateKind::FastForward => {
                writeln!(out, "fast-forward\t{}\t{old}..{}", update.name, update.new)?;
            }
            UpdateKind::Diverged => writeln!(
                out,
                "diverged\t{}\tlocal {old}, remote {} (left alone; `gitmq push` rebuilds it)",
                update.name, update.new
            )?,
        }
    }
    Ok(())
}

/// `consume --follow --remote`: fetches at most every interval, reconnecting after errors
/// (which are printed, not fatal: the consumer keeps reading what is local).
pub struct Follower {
    client: ReqwestClient,
    remote: String,
    fetcher: Option<Fetcher<ReqwestClient>>,
    interval: Duration,
    next: Instant,
}

impl Follower {
    /// Follow `remote`, fetching at most every `interval`.
    pub fn new(repo: &Repository, remote: &str, interval: Duration) -> Result<Self> {
        // Clones share one connection pool.
        let client = ReqwestClient::new(http_options(repo, &TimeoutArgs::default())?)?;
        let fetcher = Some(Fetcher::connect(repo, remote, client.clone())?);
        Ok(Self {
            client,
            remote: remote.to_owned(),
            fetcher,
            interval,
            next: Instant::now(),
        })
    }

    /// Fetch if the interval passed.
    pub fn fetch_if_due(&mut self, repo: &Repository) -> Result<()> {
        if Instant::now() < self.next {
            return Ok(());
        }
        self.next = Instant::now() + self.interval;
        if self.fetcher.is_none() {
            self.fetcher = Fetcher::connect(repo, &self.remote, self.client.clone())
                .map_err(|err| eprintln!("gitmq: connecting to {} failed: {err}", self.remote))
                .ok();
        }
        if let Some(fetcher) = &self.fetcher {
            if let Err(err) = fetch_once(repo, fetcher) {
                if matches!(
                    err,
                    replicate::Error::Status {
                        status: 401 | 403,
                        ..
                    }
                ) {
                    return Err(err.into());
                }
                eprintln!(
                    "gitmq: fetch from {} failed (trying again): {err}",
                    self.remote
                );
                self.fetcher = None;
            }
        }
        Ok(())
    }
}

/// What `gitmq sync` does.
pub struct SyncArgs<'a> {
    /// Remote name or URL.
    pub remote: &'a str,
    /// Push and fetch at least this often.
    pub interval: Duration,
    /// Push local messages once the oldest unpushed one waited this long.
    pub linger: Option<Duration>,
    /// Only these topics (all if empty).
    pub topics: &'a [String],
    /// Stop after this many rounds (tests, scripts).
    pub rounds: Option<u64>,
    /// Apply the retention configured per topic this often (`None`: never).
    pub retention_interval: Option<Duration>,
    /// HTTP timeouts given on the command line.
    pub timeouts: TimeoutArgs,
}

/// `gitmq sync [REMOTE] --interval 10s [--linger 200ms]`: push and fetch until Ctrl-C or
/// SIGTERM, finishing the round in progress. Errors of one round are printed and the next
/// round tries again (the remote may be back by then); refused credentials stop it.
pub fn sync(repo: &Repository, args: &SyncArgs<'_>) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let client = ReqwestClient::new(http_options(repo, &args.timeouts)?)?;
    let mut pusher = Pusher::new(repo, args.remote, &client)?;
    let mut fetcher: Option<Fetcher<&ReqwestClient>> = None;
    let only = topics(args.topics)?;
    let mut pushed_heads = None;
    let mut dirty_since: Option<Instant> = None;
    let mut next_round = Instant::now();
    let mut next_retention = Instant::now();
    let mut rounds = 0u64;
    let mut out = io::stdout();
    while !stop.load(Ordering::Relaxed) && args.rounds.is_none_or(|max| rounds < max) {
        let now = Instant::now();
        let mut heads = None;
        if now < next_round {
            // Between rounds only --linger needs the local topics' heads.
            let Some(linger) = args.linger else {
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
        next_round = now + args.interval;
        match push_once(repo, &mut pusher, only.as_deref()) {
            Ok(report) => {
                print_push(&mut out, &report)?;
                pushed_heads = Some(heads);
                dirty_since = None;
            }
            Err(err) => report_error("push", &err)?,
        }
        if fetcher.is_none() {
            match Fetcher::connect(repo, args.remote, &client) {
                Ok(connected) => fetcher = Some(connected),
                Err(err) => report_error("fetch", &err)?,
            }
        }
        if let Some(connected) = &fetcher {
            match fetch_once(repo, connected) {
                Ok(report) => print_fetch(&mut out, &report)?,
                Err(err) => {
                    fetcher = None;
                    report_error("fetch", &err)?;
                }
            }
        }
        if let Some(interval) = args.retention_interval.filter(|_| now >= next_retention) {
            next_retention = now + interval;
            apply_retention(repo, &mut out)?;
        }
        out.flush()?;
    }
    Ok(())
}

/// Apply the configured retention (`gitmq.topic.<t>.retainMessages/retainSeconds`): print
/// what was pruned, and why a topic was not (positions behind the cut are never moved here).
fn apply_retention(repo: &Repository, out: &mut impl Write) -> Result<()> {
    let applied = match gitmq::prune::apply_retention(repo, &gitmq::prune::Options::default()) {
        Ok(applied) => applied,
        Err(err) => {
            eprintln!("gitmq sync: retention not applied: {err}");
            return Ok(());
        }
    };
    for entry in applied {
        match entry.outcome {
            Ok(report) if report.pruned > 0 => writeln!(
                out,
                "pruned\t{}\t{} messages\t{} -> {} bytes",
                entry.topic, report.pruned, report.bytes_before, report.bytes_after
            )?,
            Ok(_) => {}
            Err(err) => eprintln!("gitmq sync: retention of {} skipped: {err}", entry.topic),
        }
    }
    Ok(())
}

/// Print a round's error; refused credentials or access end the sync.
fn report_error(what: &str, err: &replicate::Error) -> Result<()> {
    if let replicate::Error::Status {
        status: 401 | 403, ..
    } = err
    {
        return Err(format!("{what}: {err}").into());
    }
    eprintln!("gitmq sync: {what} failed (trying again next round): {err}");
    Ok(())
}

/// `gitmq remote add NAME URL`: what `git remote add` writes, so git and gitmq agree.
pub fn remote_add(repo: &Repository, name: &str, url: &str) -> Result<()> {
    let parsed = RemoteUrl::parse(url)?;
    let valid = !name.contains('/') && TopicName::new(name).is_ok();
    if !valid {
        return Err(format!("invalid remote name {name:?}").into());
    }
    if gitmq::git::config::remote::remote_url(repo.git_dir(), name)?.is_some() {
        return Err(format!("remote {name:?} already exists").into());
    }
    let path = repo.git_dir().join("config");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let quoted = url.replace('\\', "\\\\").replace('"', "\\\"");
    let section = format!(
        "[remote \"{name}\"]\n\turl = \"{quoted}\"\n\tfetch = +refs/heads/*:refs/remotes/{name}/*\n"
    );
    text.push_str(&section);
    let tmp = repo.git_dir().join("config.lock");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|err| format!("cannot lock {}: {err}", path.display()))?;
    std::fs::rename(&tmp, &path)?;
    println!("added\t{name}\t{}", parsed.redacted());
    Ok(())
}

/// Parse `10s`, `250ms`, `2m`, `1h` or plain seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    gitmq::git::config::timeouts::parse_duration(text)
        .map_err(|reason| format!("{text:?}: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err() && parse_duration("5d").is_err());
    }
}
