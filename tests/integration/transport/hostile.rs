//! A hostile network between gitmq and a real git-http-backend: every fault of
//! [`FaultProxy`] against fetch and against push. Each case ends in a bounded-time retry
//! (the call succeeds) or a clear error (and the next call, the network healed, succeeds);
//! afterwards both sides pass `git fsck --strict`, no ref names an absent object, no
//! temporary pack is left, and the server's topic holds every message exactly once.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use gitmq::{
    git::{refs::FullName, wire},
    replicate::{
        self,
        http::{Options, ReqwestClient},
        push::{PushOptions, Pusher},
        FetchOptions,
    },
    TopicName,
};

use super::{pack_files, publish, push_all};
use crate::{
    checks::assert_sound,
    proxy::{Fault, FaultProxy, Kind},
    server::HttpServer,
    util::{git, TempRepo},
};

/// How a case must end.
#[derive(Clone, Copy)]
enum Expect {
    /// The call retries and succeeds.
    Recovers,
    /// The call fails with an error this describes; the next one succeeds.
    Fails(fn(&replicate::Error) -> bool),
}

/// The timeouts of the tests: short, so a stall costs little.
fn client() -> ReqwestClient {
    ReqwestClient::new(Options {
        io_timeout: Duration::from_secs(2),
        request_timeout: Some(Duration::from_secs(4)),
        ..Options::default()
    })
    .unwrap()
}

/// Longest a faulty call may take: three attempts of idle timeouts and back-offs, with room
/// for a loaded machine.
const BOUND: Duration = Duration::from_secs(30);

fn messages(repo: &Path, topic: &str) -> Vec<String> {
    let out = git(
        &[
            "--git-dir",
            repo.to_str().unwrap(),
            "log",
            "--first-parent",
            "--reverse",
            "--format=%B%x00",
            topic,
        ],
        None,
    );
    String::from_utf8(out)
        .unwrap()
        .split('\0')
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

fn no_temporary_packs(repo: &Path) {
    let left: Vec<String> = pack_files(repo)
        .into_iter()
        .filter(|n| n.starts_with("tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

fn is_protocol_error(err: &replicate::Error) -> bool {
    !err.is_spurious()
        && matches!(
            err,
            replicate::Error::Wire(
                wire::Error::PktLine(_) | wire::Error::Protocol(_) | wire::Error::Sideband(_)
            )
        )
}

fn is_not_smart_http(err: &replicate::Error) -> bool {
    matches!(
        err,
        replicate::Error::Wire(wire::Error::NotSmartHttp { content_type: Some(t), .. })
            if t == "text/html"
    )
}

/// The faults a fetch meets, and how each must end.
fn fetch_cases() -> Vec<(&'static str, Kind, Fault, Expect)> {
    use Expect::{Fails, Recovers};
    vec![
        (
            "503 on discovery",
            Kind::UploadDiscovery,
            Fault::Status(503),
            Recovers,
        ),
        ("502 on ls-refs", Kind::LsRefs, Fault::Status(502), Recovers),
        ("500 on fetch", Kind::Fetch, Fault::Status(500), Recovers),
        (
            "reset in ls-refs",
            Kind::LsRefs,
            Fault::ResetMidBody,
            Recovers,
        ),
        (
            "reset in the pack",
            Kind::Fetch,
            Fault::ResetMidBody,
            Recovers,
        ),
        ("pack cut short", Kind::Fetch, Fault::TruncatePack, Recovers),
        (
            "silent server",
            Kind::Fetch,
            Fault::StallHead(Duration::from_secs(20)),
            Recovers,
        ),
        (
            "wrong content type",
            Kind::LsRefs,
            Fault::ContentType("text/html"),
            Fails(is_not_smart_http),
        ),
        (
            "pkt-line ffff",
            Kind::Fetch,
            Fault::PktLength(b"ffff"),
            Fails(is_protocol_error),
        ),
        (
            "pkt-line 0003",
            Kind::Fetch,
            Fault::PktLength(b"0003"),
            Fails(is_protocol_error),
        ),
        (
            "pkt-line not hex",
            Kind::LsRefs,
            Fault::PktLength(b"zz1@"),
            Fails(is_protocol_error),
        ),
        (
            "side-band 7",
            Kind::Fetch,
            Fault::Band(7),
            Fails(is_protocol_error),
        ),
        (
            "side-band 0",
            Kind::Fetch,
            Fault::Band(0),
            Fails(is_protocol_error),
        ),
    ]
}

#[test]
fn every_network_fault_on_a_fetch_ends_in_a_retry_or_a_clear_error_and_leaves_both_sides_sound() {
    let server = HttpServer::start();
    let bare = server.bare_repo("q");
    let producer = TempRepo::new();
    publish(&producer, "orders", 0..300);
    push_all(&producer, &server.url("q"));
    let expected = messages(&producer.path, "orders");
    let proxy = FaultProxy::start(server.addr());
    let url = format!("{}/git/q.git", proxy.base());
    let client = client();
    for (name, kind, fault, expect) in fetch_cases() {
        let local = TempRepo::new();
        let repo = local.open();
        proxy.inject(Some(kind), fault, 1);
        let faults_before = proxy.faults();
        let start = Instant::now();
        let result = replicate::fetch_with(&repo, &url, &client, FetchOptions::default());
        let took = start.elapsed();
        assert!(took < BOUND, "{name}: took {took:?}");
        assert_eq!(proxy.faults(), faults_before + 1, "{name}: the fault fired");
        match (expect, result) {
            (Expect::Recovers, Ok(_)) => {}
            (Expect::Fails(is_expected), Err(err)) => {
                assert!(is_expected(&err), "{name}: unexpected error {err:?}");
                assert!(repo.topics().unwrap().is_empty(), "{name}: no ref moved");
                assert!(
                    pack_files(&local.path).is_empty(),
                    "{name}: no pack kept: {:?}",
                    pack_files(&local.path)
                );
                eprintln!("{name}: {err}");
                replicate::fetch_with(&repo, &url, &client, FetchOptions::default())
                    .unwrap_or_else(|err| panic!("{name}: the fetch after the fault: {err:?}"));
            }
            (_, result) => panic!("{name}: {result:?}"),
        }
        assert_eq!(messages(&local.path, "orders"), expected, "{name}");
        no_temporary_packs(&local.path);
        assert_sound(&local.path);
    }
    assert_sound(&bare);
}

/// The faults a push meets, and how each must end.
fn push_cases() -> Vec<(&'static str, Kind, Fault, Expect)> {
    use Expect::{Fails, Recovers};
    vec![
        (
            "503 on discovery",
            Kind::ReceiveDiscovery,
            Fault::Status(503),
            Recovers,
        ),
        (
            "500 on the push",
            Kind::ReceivePack,
            Fault::Status(500),
            Recovers,
        ),
        (
            "reset before the report",
            Kind::ReceivePack,
            Fault::ResetMidBody,
            Recovers,
        ),
        (
            "reset in discovery",
            Kind::ReceiveDiscovery,
            Fault::ResetMidBody,
            Recovers,
        ),
        (
            "silent server",
            Kind::ReceivePack,
            Fault::StallHead(Duration::from_secs(20)),
            Recovers,
        ),
        (
            "report dripping",
            Kind::ReceivePack,
            Fault::Drip {
                every: Duration::from_millis(500),
                limit: Duration::from_secs(20),
            },
            Recovers,
        ),
        (
            "report cut short",
            Kind::ReceivePack,
            Fault::TruncatePack,
            Recovers,
        ),
        (
            "wrong content type",
            Kind::ReceiveDiscovery,
            Fault::ContentType("text/html"),
            Fails(is_not_smart_http),
        ),
        (
            "report pkt-line ffff",
            Kind::ReceivePack,
            Fault::PktLength(b"ffff"),
            Fails(is_protocol_error),
        ),
        (
            "report side-band 9",
            Kind::ReceivePack,
            Fault::Band(9),
            Fails(is_protocol_error),
        ),
    ]
}

#[test]
fn every_network_fault_on_a_push_ends_in_a_retry_or_a_clear_error_and_delivers_exactly_once() {
    let server = HttpServer::start();
    let proxy = FaultProxy::start(server.addr());
    let client = client();
    for (case, (name, kind, fault, expect)) in push_cases().into_iter().enumerate() {
        let bare = server.bare_repo(&format!("q{case}"));
        let url = format!("{}/git/q{case}.git", proxy.base());
        let producer = TempRepo::new();
        producer.git(&["remote", "add", "origin", &url]);
        let repo = producer.open();
        publish(&producer, "orders", 0..100);
        // A first push, so the faulty one sends only what is new.
        Pusher::new(&repo, "origin", &client)
            .unwrap()
            .push(&repo, PushOptions::default())
            .unwrap();
        publish(&producer, "orders", 100..150);
        proxy.inject(Some(kind), fault, 1);
        let faults_before = proxy.faults();
        let start = Instant::now();
        let mut pusher = Pusher::new(&repo, "origin", &client).unwrap();
        let result = pusher.push(&repo, PushOptions::default());
        let took = start.elapsed();
        assert!(took < BOUND, "{name}: took {took:?}");
        assert_eq!(proxy.faults(), faults_before + 1, "{name}: the fault fired");
        match (expect, result) {
            (Expect::Recovers, Ok(_)) => {}
            (Expect::Fails(is_expected), Err(err)) => {
                assert!(is_expected(&err), "{name}: unexpected error {err:?}");
                eprintln!("{name}: {err}");
                pusher
                    .push(&repo, PushOptions::default())
                    .unwrap_or_else(|err| panic!("{name}: the push after the fault: {err:?}"));
            }
            (_, result) => panic!("{name}: {result:?}"),
        }
        let head = repo.head(&TopicName::new("orders").unwrap()).unwrap();
        assert_eq!(
            messages(&bare, "orders"),
            messages(&producer.path, "orders"),
            "{name}: the server has every message exactly once"
        );
        assert_eq!(messages(&bare, "orders").len(), 150, "{name}");
        assert_eq!(
            repo.refs()
                .find(&FullName::new("refs/remotes/origin/orders").unwrap())
                .unwrap(),
            head,
            "{name}: the tracking ref repeats the server"
        );
        no_temporary_packs(&producer.path);
        assert_sound(&producer.path);
        assert_sound(&bare);
    }
}

/// A consumer shared by two machines: A's push of its position is applied by the server but
/// A never hears it (the connection resets and A stops, as a killed `gitmq push` would); B
/// moves the position further. A's next fetch and push must not move the server's position
/// back to A's.
#[test]
fn a_position_whose_push_went_unacknowledged_never_moves_the_servers_position_backwards() {
    use gitmq::{Consumer, ConsumerName};
    let server = HttpServer::start();
    let bare = server.bare_repo("q");
    let proxy = FaultProxy::start(server.addr());
    let url = format!("{}/git/q.git", proxy.base());
    let client = client();
    let machine = || {
        let repo = TempRepo::new();
        repo.git(&["remote", "add", "origin", &url]);
        repo
    };
    let (producer, a, b) = (machine(), machine(), machine());
    publish(&producer, "jobs", 0..10);
    let push = |repo: &TempRepo, attempts: u32| {
        let repo = repo.open();
        Pusher::new(&repo, "origin", &client).unwrap().push(
            &repo,
            PushOptions {
                max_attempts: attempts,
                ..PushOptions::default()
            },
        )
    };
    let fetch = |repo: &TempRepo| {
        replicate::fetch_with(&repo.open(), "origin", &client, FetchOptions::default()).unwrap()
    };
    let consume = |repo: &TempRepo, count: usize| {
        let topic = TopicName::new("jobs").unwrap();
        let mut consumer =
            Consumer::open(repo.open(), ConsumerName::new("c").unwrap(), topic).unwrap();
        assert_eq!(consumer.poll(count).unwrap().len(), count);
        consumer.commit().unwrap();
        consumer.position().unwrap()
    };
    let server_position = || {
        let out = git(
            &[
                "--git-dir",
                bare.to_str().unwrap(),
                "rev-parse",
                "refs/gitmq/consumers/c/jobs",
            ],
            None,
        );
        String::from_utf8(out).unwrap().trim().to_owned()
    };
    push(&producer, 10).unwrap();
    fetch(&a);
    fetch(&b);
    let at_3 = consume(&a, 3);
    proxy.inject(Some(Kind::ReceivePack), Fault::ResetMidBody, 1);
    push(&a, 1).unwrap_err();
    assert_eq!(
        server_position(),
        at_3.to_string(),
        "the server applied A's push"
    );
    fetch(&b);
    let at_7 = consume(&b, 4);
    push(&b, 10).unwrap();
    assert_eq!(server_position(), at_7.to_string());

    fetch(&a);
    push(&a, 10).unwrap();
    assert_eq!(
        server_position(),
        at_7.to_string(),
        "the server's position never moves backwards"
    );
    assert_eq!(
        a.open()
            .refs()
            .find(&FullName::new("refs/gitmq/consumers/c/jobs").unwrap())
            .unwrap(),
        Some(at_7),
        "A adopted B's further position"
    );
    assert_sound(&a.path);
    assert_sound(&bare);
}

/// Whether any request `proxy` saw carried an `Authorization` header.
fn saw_credentials(proxy: &FaultProxy) -> bool {
    proxy
        .seen()
        .iter()
        .any(|s| s.headers.iter().any(|(name, _)| name == "authorization"))
}

#[test]
fn a_redirect_to_another_host_and_port_never_carries_the_credentials() {
    use crate::server::{PASSWORD, USER};
    let server = HttpServer::start();
    let private = server.bare_repo("private");
    let public = server.bare_repo("q");
    let guarded = server.bare_repo("guarded");
    let producer = TempRepo::new();
    publish(&producer, "orders", 0..20);
    push_all(&producer, &server.url("q"));
    let user = format!("{USER}:{}", PASSWORD.replace('@', "%40"));
    producer.git(&[
        "push",
        "-q",
        &server.url("private").replace("://", &format!("://{user}@")),
        "refs/heads/*:refs/heads/*",
    ]);
    // The host gitmq is configured with redirects everything to another port of this
    // machine, which passes requests on to the same server (and records them).
    let elsewhere = FaultProxy::start(server.addr());
    let configured = FaultProxy::start(server.addr());
    configured.inject(None, Fault::Redirect(elsewhere.base()), usize::MAX);
    let through = |name: &str| {
        format!("{}/git/{name}.git", configured.base()).replace("://", &format!("://{user}@"))
    };
    let client = client();

    // A private repository: the credentials stay behind, so the other host refuses.
    let local = TempRepo::new();
    let err = replicate::fetch_with(
        &local.open(),
        &through("private"),
        &client,
        FetchOptions::default(),
    )
    .unwrap_err();
    assert!(err.http_status() == Some(401), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert!(saw_credentials(&configured), "the configured host got them");
    assert!(!elsewhere.seen().is_empty(), "the redirect was followed");
    assert!(
        !saw_credentials(&elsewhere),
        "the other host never sees them"
    );

    // A public one is fetched through the redirect, still without credentials there.
    let report = replicate::fetch_with(
        &local.open(),
        &through("q"),
        &client,
        FetchOptions::default(),
    )
    .unwrap();
    assert!(report.pack.is_some());
    assert_eq!(messages(&local.path, "orders").len(), 20);
    assert!(!saw_credentials(&elsewhere));

    // A push: its discovery is redirected without credentials and refused there.
    let pusher_repo = producer.open();
    let err = Pusher::new(&pusher_repo, &through("guarded"), &client)
        .unwrap()
        .push(&pusher_repo, PushOptions::default())
        .unwrap_err();
    assert!(err.http_status() == Some(401), "{err:?}");
    assert!(!saw_credentials(&elsewhere), "nor for a push");
    assert!(
        git(
            &["--git-dir", guarded.to_str().unwrap(), "for-each-ref"],
            None
        )
        .is_empty(),
        "nothing was pushed"
    );
    for bare in [&private, &public, &guarded] {
        assert_sound(bare);
    }
    assert_sound(&local.path);
}
