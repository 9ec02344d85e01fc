//! Broken servers: a tiny canned HTTP server on 127.0.0.1 (bounded in connections and time)
//! serves truncated, garbled and refused packs, or never answers.

use std::{
    io::{Read, Write},
    net::TcpListener,
    time::{Duration, Instant},
};

use gitmq::{
    replicate::{self, http::ReqwestClient, FetchOptions},
    Repository,
};

use super::{pack_files, publish};
use crate::util::TempRepo;

/// How the canned server answers the fetch request.
#[derive(Clone, Copy)]
enum Fault {
    /// Declare the full length, send half, close.
    Truncated,
    /// Flip one byte of the pack's trailer (flips inside entries: the indexer's unit tests).
    Garbled,
    /// A band-3 error in place of the pack.
    RemoteError,
}

/// Serve a v2 advertisement, one ref and a broken pack on 127.0.0.1, for at most a few
/// connections and a few seconds; the URL.
fn canned_server(tip: String, pack: Vec<u8>, fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        for _ in 0..3 {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let request = read_request(&mut stream);
            let mut body = Vec::new();
            let content_type;
            if request.starts_with(b"GET") {
                content_type = "application/x-git-upload-pack-advertisement";
                for line in [
                    "version 2",
                    "ls-refs",
                    "fetch=shallow",
                    "object-format=sha1",
                ] {
                    pkt(&mut body, format!("{line}\n").as_bytes());
                }
                body.extend_from_slice(b"0000");
            } else if contains(&request, b"command=ls-refs") {
                content_type = "application/x-git-upload-pack-result";
                pkt(&mut body, format!("{tip} refs/heads/orders\n").as_bytes());
                body.extend_from_slice(b"0000");
            } else {
                content_type = "application/x-git-upload-pack-result";
                pkt(&mut body, b"packfile\n");
                let mut pack = pack.clone();
                match fault {
                    Fault::Garbled => {
                        let last = pack.len() - 1;
                        pack[last] ^= 0x40;
                    }
                    Fault::RemoteError => pack.clear(),
                    Fault::Truncated => {}
                }
                for chunk in pack.chunks(1000) {
                    let mut data = vec![1u8];
                    data.extend_from_slice(chunk);
                    pkt(&mut body, &data);
                }
                if let Fault::RemoteError = fault {
                    pkt(&mut body, b"\x03upload-pack: out of disk space\n");
                }
                body.extend_from_slice(b"0000");
            }
            let declared = body.len();
            if let (Fault::Truncated, false) = (fault, request.starts_with(b"GET")) {
                if !contains(&request, b"command=ls-refs") {
                    body.truncate(body.len() / 2);
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {declared}\r\n\
                 Connection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://127.0.0.1:{port}/q.git")
}

fn pkt(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{:04x}", data.len() + 4).as_bytes());
    out.extend_from_slice(data);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Read one HTTP request (headers and a Content-Length body), bounded.
fn read_request(stream: &mut std::net::TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while data.len() < 1 << 20 {
        let Ok(n) = stream.read(&mut buf) else { break };
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            if data.len() >= end + 4 + length {
                break;
            }
        }
    }
    data
}

#[test]
fn a_truncated_garbled_or_refused_pack_is_an_error_and_leaves_no_pack_or_ref() {
    let producer = TempRepo::new();
    publish(&producer, "orders", 0..200);
    let tip = String::from_utf8(producer.git(&["rev-parse", "orders"])).unwrap();
    let tip = tip.trim().to_owned();
    let objects = producer.git(&["rev-list", "--objects", "orders"]);
    let out = {
        let mut child = std::process::Command::new("git")
            .args([
                "--git-dir",
                producer.path.to_str().unwrap(),
                "pack-objects",
                "--stdout",
                "-q",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&objects).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    assert!(out.status.success());
    let pack = out.stdout;

    for fault in [Fault::Truncated, Fault::Garbled, Fault::RemoteError] {
        let url = canned_server(tip.clone(), pack.clone(), fault);
        let local = TempRepo::new();
        let repo: Repository = local.open();
        let err = replicate::fetch(&repo, &url, &replicate::fetch::DEFAULT_PREFIXES).unwrap_err();
        let text = err.to_string();
        match fault {
            Fault::Truncated => assert!(err.is_spurious(), "truncation is spurious: {err:?}"),
            Fault::Garbled => assert!(
                matches!(
                    err,
                    replicate::Error::Wire(gitmq::git::wire::Error::Pack(_))
                ) && !err.is_spurious(),
                "{err:?}"
            ),
            Fault::RemoteError => assert!(
                text.contains("upload-pack: out of disk space"),
                "verbatim: {text}"
            ),
        }
        assert!(
            pack_files(&local.path).is_empty(),
            "no pack left: {:?}",
            pack_files(&local.path)
        );
        assert!(repo.topics().unwrap().is_empty(), "no ref moved");
    }
}

#[test]
fn a_server_that_never_answers_times_out_spuriously() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/q.git",
        listener.local_addr().unwrap().port()
    );
    let holder = std::thread::spawn(move || {
        // Accept one connection and keep it silent until the client gives up.
        let (stream, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(3));
        drop(stream);
    });
    let client = ReqwestClient::new(replicate::http::Options {
        io_timeout: Duration::from_millis(500),
        ..replicate::http::Options::default()
    })
    .unwrap();
    let local = TempRepo::new();
    let start = Instant::now();
    let err =
        replicate::fetch_with(&local.open(), &url, &client, FetchOptions::default()).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3), "bounded wait");
    assert!(
        matches!(
            err,
            replicate::Error::Wire(gitmq::git::wire::Error::Http(
                replicate::HttpError::Timeout { .. }
            ))
        ),
        "{err:?}"
    );
    assert!(err.is_spurious());
    holder.join().unwrap();
}

/// Answers the first `ls-refs` with 503, the next with an empty ref list; counts `ls-refs`.
fn flaky_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ls_refs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = ls_refs.clone();
    std::thread::spawn(move || {
        for _ in 0..4 {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let request = read_request(&mut stream);
            let mut body = Vec::new();
            let (status, content_type) = if request.starts_with(b"GET") {
                for line in ["version 2", "ls-refs", "fetch", "object-format=sha1"] {
                    pkt(&mut body, format!("{line}\n").as_bytes());
                }
                body.extend_from_slice(b"0000");
                ("200 OK", "application/x-git-upload-pack-advertisement")
            } else if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                ("503 Service Unavailable", "text/plain")
            } else {
                body.extend_from_slice(b"0000");
                ("200 OK", "application/x-git-upload-pack-result")
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (format!("http://127.0.0.1:{port}/q.git"), ls_refs)
}

#[test]
fn a_503_is_retried_with_back_off_and_the_fetch_then_succeeds() {
    let (url, ls_refs) = flaky_server();
    let local = TempRepo::new();
    let client = ReqwestClient::new(replicate::http::Options::default()).unwrap();
    let report =
        replicate::fetch_with(&local.open(), &url, &client, FetchOptions::default()).unwrap();
    assert!(report.updates.is_empty() && report.pack.is_none());
    assert_eq!(ls_refs.load(std::sync::atomic::Ordering::SeqCst), 2);
}
