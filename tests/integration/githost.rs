//! The git host (`gitmq::githost`) driven by the real `git` and by gitmq's own transport,
//! through a tiny HTTP/1.1 server in the test tree: clone and fetch over protocol v2 and v0,
//! pushes (new branch, fast-forward, non-fast-forward, atomic, delete), `git fsck --strict`
//! on both sides, truncated and hostile requests.

mod fetch;
mod hostile;
mod push;
mod timing;
mod tiny;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use gitmq::{
    githost::{AllowAll, GitHost, Options},
    replicate, ConsumerName, TopicName,
};

use crate::util::{git, git_output, TempRepo};
use tiny::TinyServer;

/// A validated full ref name.
fn full(name: &str) -> gitmq::git::refs::FullName {
    gitmq::git::refs::FullName::new(name).unwrap()
}

/// A queue repository served over HTTP.
struct Served {
    repo: TempRepo,
    server: TinyServer,
}

fn serve(repo: TempRepo) -> Served {
    serve_with(repo, Options::default(), Arc::new(AllowAll))
}

fn serve_with(
    repo: TempRepo,
    options: Options,
    access: Arc<dyn gitmq::githost::Access + Send + Sync>,
) -> Served {
    let host = GitHost::with_options(repo.open(), options);
    Served {
        server: TinyServer::start(host, access),
        repo,
    }
}

fn publish(repo: &TempRepo, topic: &str, payloads: impl IntoIterator<Item = String>) {
    let payloads: Vec<String> = payloads.into_iter().collect();
    repo.open()
        .producer(&TopicName::new(topic).unwrap())
        .publish_batch(payloads.iter().map(String::as_bytes))
        .unwrap();
}

/// `git <args>` with a protocol version.
fn git_v(version: u8, args: &[&str], cwd: Option<&Path>) -> Vec<u8> {
    let v = format!("protocol.version={version}");
    let mut full = vec!["-c", v.as_str()];
    full.extend_from_slice(args);
    git(&full, cwd)
}

fn rev_parse(git_dir: &Path, rev: &str) -> String {
    String::from_utf8(git(
        &["--git-dir", git_dir.to_str().unwrap(), "rev-parse", rev],
        None,
    ))
    .unwrap()
    .trim()
    .to_owned()
}

fn fsck_clean(git_dir: &Path) {
    let out = git_output(
        &[
            "--git-dir",
            git_dir.to_str().unwrap(),
            "fsck",
            "--strict",
            "--no-dangling",
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "git fsck --strict failed: {stderr}");
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("notice:") && !l.starts_with("Checking") && !l.trim().is_empty())
        .collect();
    assert!(complaints.is_empty(), "git fsck --strict: {complaints:?}");
}

fn payloads(git_dir: &Path, rev: &str) -> Vec<String> {
    let out = git(
        &[
            "--git-dir",
            git_dir.to_str().unwrap(),
            "log",
            "--first-parent",
            "--reverse",
            "--format=%B%x00",
            rev,
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

fn no_leftovers(repo: &TempRepo) {
    let objects = repo.path.join("objects");
    let strays: Vec<PathBuf> = std::fs::read_dir(&objects)
        .unwrap()
        .chain(std::fs::read_dir(objects.join("pack")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("incoming-") || name.starts_with("tmp_")
        })
        .collect();
    assert!(strays.is_empty(), "temporary files left: {strays:?}");
}

/// One request over a raw connection: `declared` as Content-Length (default: the body's
/// length), the body, then the write side closed. Status and (de-chunked) body.
fn raw_request(
    served: &Served,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    declared: Option<usize>,
) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", served.server.port)).unwrap();
    let mut head = format!(
        "{method} /git/{target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        declared.unwrap_or(body.len())
    );
    for (name, value) in headers {
        head.extend([name, ": ", value, "\r\n"]);
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = response[split..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut plain = Vec::new();
        let mut rest = &body[..];
        while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap(), 16).unwrap();
            if size == 0 {
                break;
            }
            plain.extend_from_slice(&rest[end + 2..end + 2 + size]);
            rest = &rest[end + 4 + size..];
        }
        body = plain;
    }
    (status, body)
}

/// Text pkt-lines; "0000" is a flush, "0001" a delimiter.
fn pkts(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        if matches!(*part, "0000" | "0001") {
            out.extend_from_slice(part.as_bytes());
        } else {
            out.extend_from_slice(format!("{:04x}{part}\n", part.len() + 5).as_bytes());
        }
    }
    out
}

/// Request headers.
type Headers<'a> = &'a [(&'a str, &'a str)];

const PUSH: [(&str, &str); 1] = [("Content-Type", "application/x-git-receive-pack-request")];

fn wait_for_requests(served: &Served, count: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while served.server.requests().len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
