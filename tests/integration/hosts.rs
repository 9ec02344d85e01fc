//! Independent and strict git hosts: the transport scenario, written once, against each kind
//! of host a user may meet ([`HostKind`]): lighttpd + git-http-backend (the reference),
//! nginx + fcgiwrap + git-http-backend, a strict host (`receive.fsckObjects`,
//! `transfer.fsckObjects`, `receive.denyNonFastForwards`, as large hosts run), a host that
//! speaks protocol v0 only, and one behind HTTP basic authentication (nginx `auth_basic`).
//!
//! The scenario: a producer pushes messages with stable ids and a position; `git clone
//! --mirror` + `git fsck --strict` + `git log` see exactly them; a second machine fetches and
//! consumes from the pushed position; a third machine resumes a position the second pushed;
//! two producers race on one remote topic and every message lands exactly once, each
//! producer's order kept. Every repository, the server's included, ends sound.

use std::{
    path::{Path, PathBuf},
    sync::Barrier,
};

use gitmq::{
    replicate::{
        self,
        http::{Options, ReqwestClient},
        push::{PushOptions, Pusher},
        FetchOptions, FetchReport,
    },
    Consumer, ConsumerName, Envelope, TopicName,
};

use crate::{
    checks::{assert_sound, stable_ids},
    nginx::{Auth, NginxServer},
    server::{HttpServer, PASSWORD, USER},
    util::{git, TempRepo},
};

/// A kind of git host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// lighttpd + CGI git-http-backend.
    Lighttpd,
    /// nginx + fcgiwrap + git-http-backend.
    Nginx,
    /// nginx + fcgiwrap, every repository checking objects and refusing non-fast-forwards.
    Strict,
    /// lighttpd, git-http-backend never told the client asked for protocol v2.
    V0Only,
    /// nginx asking for HTTP basic authentication for everything.
    BasicAuth,
}

enum Server {
    Lighttpd(HttpServer),
    Nginx(NginxServer),
}

/// A running host of some kind.
pub struct Host {
    kind: HostKind,
    server: Server,
}

impl Host {
    /// Start a host of `kind`.
    pub fn start(kind: HostKind) -> Self {
        let server = match kind {
            HostKind::Lighttpd => Server::Lighttpd(HttpServer::start()),
            HostKind::V0Only => Server::Lighttpd(HttpServer::start_v0_only()),
            HostKind::Nginx | HostKind::Strict => Server::Nginx(NginxServer::start(Auth::None)),
            HostKind::BasicAuth => Server::Nginx(NginxServer::start(Auth::Basic)),
        };
        Self { kind, server }
    }

    /// A new bare repository `<name>.git`, configured as this kind of host does; its path.
    pub fn repo(&self, name: &str) -> PathBuf {
        let path = match &self.server {
            Server::Lighttpd(server) => server.bare_repo(name),
            Server::Nginx(server) => server.bare_repo(name),
        };
        if self.kind == HostKind::Strict {
            for key in [
                "receive.fsckObjects",
                "transfer.fsckObjects",
                "receive.denyNonFastForwards",
            ] {
                git(
                    &["--git-dir", path.to_str().unwrap(), "config", key, "true"],
                    None,
                );
            }
        }
        path
    }

    /// The URL of `<name>.git` without credentials.
    pub fn anonymous_url(&self, name: &str) -> String {
        match &self.server {
            Server::Lighttpd(server) => server.url(name),
            Server::Nginx(server) => server.url(name),
        }
    }

    /// The URL of `<name>.git`, with the credentials this host wants in it.
    pub fn url(&self, name: &str) -> String {
        let url = self.anonymous_url(name);
        if self.kind == HostKind::BasicAuth {
            let user = format!("{USER}:{}", PASSWORD.replace('@', "%40"));
            url.replace("://", &format!("://{user}@"))
        } else {
            url
        }
    }
}

fn client() -> ReqwestClient {
    ReqwestClient::new(Options::default()).unwrap()
}

/// A machine: a fresh repository whose `origin` is `url`.
fn machine(url: &str) -> TempRepo {
    let repo = TempRepo::new();
    repo.git(&["remote", "add", "origin", url]);
    repo
}

fn ids(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

/// Publish one message per id (payload = id) in one batch.
fn publish(repo: &TempRepo, topic: &str, ids: &[String]) {
    let mut producer = repo.open().producer(&TopicName::new(topic).unwrap());
    for id in ids {
        let envelope = Envelope::new().with_id(id).unwrap();
        producer.append_with(id.as_bytes(), &envelope).unwrap();
    }
    producer.flush().unwrap();
}

/// Read up to `max` messages as `consumer` and commit; their payloads.
fn consume(repo: &TempRepo, consumer: &str, max: usize) -> Vec<String> {
    let mut consumer = Consumer::open(
        repo.open(),
        ConsumerName::new(consumer).unwrap(),
        TopicName::new("orders").unwrap(),
    )
    .unwrap();
    let read: Vec<String> = consumer
        .poll(max)
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m.payload).unwrap())
        .collect();
    consumer.commit().unwrap();
    read
}

fn push(repo: &TempRepo) -> Result<replicate::push::PushReport, replicate::Error> {
    let repo = repo.open();
    Pusher::new(&repo, "origin", client())?.push(
        &repo,
        PushOptions {
            max_attempts: 50,
            ..PushOptions::default()
        },
    )
}

fn fetch(repo: &TempRepo) -> FetchReport {
    replicate::fetch_with(&repo.open(), "origin", client(), FetchOptions::default()).unwrap()
}

/// The scenario of the module documentation against a host of `kind`.
fn scenario(kind: HostKind) {
    let host = Host::start(kind);
    let bare = host.repo("queue");
    let url = host.url("queue");
    let orders = ids("order", 0..30);
    let producer = push_and_clone(kind, &url, &orders);
    let (consumers, third) = fetch_consume_resume(kind, &url, &orders);
    let racers = race(kind, &url, &bare);
    if kind == HostKind::BasicAuth {
        let anonymous = TempRepo::new();
        let err = replicate::fetch_with(
            &anonymous.open(),
            &host.anonymous_url("queue"),
            client(),
            FetchOptions::default(),
        )
        .unwrap_err();
        assert!(err.http_status() == Some(401), "{err:?}");
    }
    for repo in [&producer, &consumers, &third, &racers[0], &racers[1]] {
        assert_sound(&repo.path);
    }
    assert_sound(&bare);
}

/// Push messages with stable ids and billing's position; `git clone --mirror`, `git fsck
/// --strict` and `git log` see exactly them. The producer's machine.
fn push_and_clone(kind: HostKind, url: &str, orders: &[String]) -> TempRepo {
    let producer = machine(url);
    publish(&producer, "orders", orders);
    assert_eq!(consume(&producer, "billing", 10), orders[..10]);
    let pushed = push(&producer).unwrap();
    let moved: Vec<&str> = pushed.updates.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        moved,
        ["refs/heads/orders", "refs/gitmq/consumers/billing/orders"],
        "{kind:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("clone.git");
    git(
        &["clone", "-q", "--mirror", url, clone.to_str().unwrap()],
        None,
    );
    assert_sound(&clone);
    assert_eq!(stable_ids(&clone, "orders"), orders, "{kind:?}: git's log");
    let payloads = git(
        &[
            "--git-dir",
            clone.to_str().unwrap(),
            "log",
            "--reverse",
            "--format=%B",
            "orders",
        ],
        None,
    );
    let payloads: Vec<String> = String::from_utf8(payloads)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(payloads, orders, "{kind:?}: payloads byte for byte");
    producer
}

/// A second machine fetches, billing resumes at its pushed position, shipping reads 15 and
/// pushes; a third machine resumes shipping after those 15. The two machines.
fn fetch_consume_resume(kind: HostKind, url: &str, orders: &[String]) -> (TempRepo, TempRepo) {
    let consumers = machine(url);
    let report = fetch(&consumers);
    let expected_version = if kind == HostKind::V0Only { 0 } else { 2 };
    assert_eq!(report.protocol_version, expected_version, "{kind:?}");
    assert_eq!(stable_ids(&consumers.path, "orders"), orders);
    assert_eq!(consume(&consumers, "billing", 100), orders[10..]);
    assert_eq!(consume(&consumers, "shipping", 15), orders[..15]);
    push(&consumers).unwrap();
    let third = machine(url);
    fetch(&third);
    assert_eq!(consume(&third, "shipping", 100), orders[15..], "{kind:?}");
    assert!(consume(&third, "billing", 100).is_empty(), "{kind:?}");
    (consumers, third)
}

/// Two producers publish and push to one remote topic at once: every message lands exactly
/// once (by stable id), each producer's order kept. The two machines.
fn race(kind: HostKind, url: &str, bare: &Path) -> [TempRepo; 2] {
    let racers = [machine(url), machine(url)];
    let start = Barrier::new(racers.len());
    std::thread::scope(|scope| {
        for (r, racer) in racers.iter().enumerate() {
            let start = &start;
            scope.spawn(move || {
                start.wait();
                for round in 0..5 {
                    publish(
                        racer,
                        "race",
                        &ids(&format!("r{r}"), round * 4..round * 4 + 4),
                    );
                    push(racer).unwrap_or_else(|err| panic!("{kind:?}: racer {r}: {err:?}"));
                }
            });
        }
    });
    for racer in &racers {
        push(racer).unwrap();
    }
    let raced = stable_ids(bare, "race");
    assert_eq!(
        raced.len(),
        40,
        "{kind:?}: every message exactly once: {raced:?}"
    );
    for r in 0..racers.len() {
        let mine: Vec<&String> = raced
            .iter()
            .filter(|id| id.starts_with(&format!("r{r}-")))
            .collect();
        assert_eq!(
            mine,
            ids(&format!("r{r}"), 0..20).iter().collect::<Vec<_>>(),
            "{kind:?}: racer {r}'s order"
        );
    }
    racers
}

#[test]
fn the_transport_scenario_passes_against_lighttpd() {
    scenario(HostKind::Lighttpd);
}

#[test]
fn the_transport_scenario_passes_against_nginx_and_fcgiwrap() {
    scenario(HostKind::Nginx);
}

#[test]
fn the_transport_scenario_passes_against_a_strict_host() {
    scenario(HostKind::Strict);
}

#[test]
fn the_transport_scenario_passes_against_a_protocol_v0_only_host() {
    scenario(HostKind::V0Only);
}

#[test]
fn the_transport_scenario_passes_through_http_basic_authentication() {
    scenario(HostKind::BasicAuth);
}
