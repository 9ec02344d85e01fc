//! Stalls end in bounded time: a silent server within the idle timeout, a server dripping
//! bytes (slow-loris, which never trips an idle timeout) within the whole-request timeout;
//! the timeouts come from the HTTP options, the repository's `gitmq.http.*` config and the
//! `--*-timeout` flags. Bounds are generous (a loaded 2-core machine); the lower bounds show
//! the timeout, not something else, ended the wait.

use std::{
    io::Read,
    time::{Duration, Instant},
};

use gitmq::replicate::{
    http::{Options, ReqwestClient},
    Body, HttpClient, Method, RemoteUrl, Request,
};

use super::{publish, push_all};
use crate::{
    proxy::{Fault, FaultProxy},
    server::HttpServer,
    util::TempRepo,
};

/// Room for a loaded machine on top of a timeout.
const SLACK: Duration = Duration::from_secs(4);

fn discovery(client: &ReqwestClient, url: &RemoteUrl) -> Result<Vec<u8>, String> {
    let response = client
        .send(Request {
            method: Method::Get,
            url,
            path: "info/refs?service=git-upload-pack",
            headers: &[],
            body: Body::Empty,
        })
        .map_err(|err| format!("{err}"))?;
    let mut body = Vec::new();
    let mut reader = response.body;
    reader
        .read_to_end(&mut body)
        .map_err(|err| format!("{err}"))?;
    Ok(body)
}

#[test]
fn a_silent_server_ends_at_the_idle_timeout_and_a_dripping_one_at_the_request_timeout() {
    let server = HttpServer::start();
    server.bare_repo("q");
    let proxy = FaultProxy::start(server.addr());
    let url = RemoteUrl::parse(&format!("{}/git/q.git", proxy.base())).unwrap();
    let idle = Duration::from_secs(1);
    let whole = Duration::from_secs(3);
    let client = ReqwestClient::new(Options {
        io_timeout: idle,
        request_timeout: Some(whole),
        ..Options::default()
    })
    .unwrap();
    assert!(discovery(&client, &url).is_ok(), "a healthy request passes");

    proxy.inject(None, Fault::StallHead(Duration::from_secs(30)), 1);
    let start = Instant::now();
    let err = discovery(&client, &url).unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= idle && took < idle + SLACK,
        "silent: ended after {took:?}"
    );
    assert!(err.contains("did not answer within 1s"), "{err}");

    // 50 ms a byte: each read makes progress, so only the whole-request timeout ends it.
    proxy.inject(
        None,
        Fault::Drip {
            every: Duration::from_millis(50),
            limit: Duration::from_secs(30),
        },
        1,
    );
    let start = Instant::now();
    let err = discovery(&client, &url).unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= whole && took < whole + SLACK,
        "dripping: ended after {took:?}"
    );
    assert!(err.contains("whole-request timeout"), "{err}");

    // Without a whole-request timeout the drip would go on: it ends only at the proxy's limit.
    let unlimited = ReqwestClient::new(Options {
        io_timeout: idle,
        request_timeout: None,
        ..Options::default()
    })
    .unwrap();
    proxy.inject(
        None,
        Fault::Drip {
            every: Duration::from_millis(50),
            limit: Duration::from_millis(1500),
        },
        1,
    );
    let start = Instant::now();
    let _ = discovery(&unlimited, &url);
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "no limit: the drip ran on"
    );
}

#[test]
fn the_timeout_flags_and_the_repositorys_config_bound_a_stalled_cli_fetch() {
    let server = HttpServer::start();
    server.bare_repo("q");
    let producer = TempRepo::new();
    publish(&producer, "orders", 0..5);
    push_all(&producer, &server.url("q"));
    let proxy = FaultProxy::start(server.addr());
    let url = format!("{}/git/q.git", proxy.base());
    proxy.inject(None, Fault::StallHead(Duration::from_secs(60)), usize::MAX);

    // Three attempts of discovery, each cut at the idle timeout, and two back-offs.
    let bound = Duration::from_secs(3) + SLACK * 2;
    let by_flag = TempRepo::new();
    let start = Instant::now();
    let out = by_flag.gitmq(&["fetch", &url, "--idle-timeout", "1s"], b"");
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not answer within 1s"), "{stderr}");
    assert!(took < bound, "flag: {took:?}");

    let by_config = TempRepo::new();
    by_config.git(&["config", "gitmq.http.idleTimeout", "1s"]);
    let start = Instant::now();
    let out = by_config.gitmq(&["fetch", &url], b"");
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not answer within 1s"), "{stderr}");
    assert!(took < bound, "config: {took:?}");

    by_config.git(&["config", "gitmq.http.idleTimeout", "soon"]);
    let out = by_config.gitmq(&["fetch", &url], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config:") && stderr.contains("not a duration"),
        "a bad value is named: {stderr}"
    );

    proxy.heal();
    let out = by_flag.gitmq(&["fetch", &url, "--idle-timeout", "1s"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        by_flag
            .gitmq(&["log", "orders"], b"")
            .stdout
            .split(|b| *b == b'\n')
            .count()
            - 1,
        5
    );
}
