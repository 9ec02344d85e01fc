//! `gitmq serve` as a real process on a free port, driven with a real HTTP client (reqwest),
//! curl, and the Python example: the queue API, bad requests, access control, TLS,
//! concurrent publishers, and the graceful shutdown.

mod access;
mod api;
mod git;
mod python;
mod stress;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::util::TempRepo;

/// A running `gitmq serve` on its own repository; SIGTERM and wait on drop.
pub struct Serve {
    pub repo: TempRepo,
    pub url: String,
    child: Option<Child>,
}

impl Serve {
    /// `gitmq serve --listen 127.0.0.1:0 ARGS` on a new repository.
    pub fn start(args: &[&str]) -> Self {
        Self::start_on(TempRepo::new(), args)
    }

    pub fn start_on(repo: TempRepo, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gitmq"))
            .arg("--repo")
            .arg(&repo.path)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start gitmq serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self {
            repo,
            url,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Send SIGTERM and wait for the exit; whether it exited 0, and how long it took.
    pub fn terminate(&mut self) -> (bool, Duration) {
        let started = std::time::Instant::now();
        let Some(mut child) = self.child.take() else {
            return (true, Duration::ZERO);
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().expect("wait for gitmq serve");
        (status.success(), started.elapsed())
    }

    pub fn client() -> reqwest::blocking::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client")
    }

    /// POST `body` to `/v1/topics/{topic}/messages` with extra headers; status and JSON.
    pub fn publish(
        &self,
        client: &reqwest::blocking::Client,
        topic: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let mut req = client
            .post(format!("{}/v1/topics/{topic}/messages", self.url))
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        json_reply(req.send().expect("publish request"))
    }

    /// GET `path_and_query`; status and body.
    pub fn get(&self, client: &reqwest::blocking::Client, path_and_query: &str) -> (u16, Vec<u8>) {
        let reply = client
            .get(format!("{}{path_and_query}", self.url))
            .send()
            .expect("GET");
        let status = reply.status().as_u16();
        (status, reply.bytes().expect("body").to_vec())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Status and JSON body of a reply.
pub fn json_reply(reply: reqwest::blocking::Response) -> (u16, serde_json::Value) {
    let status = reply.status().as_u16();
    let bytes = reply.bytes().expect("body");
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|err| {
        panic!(
            "reply is not JSON ({err}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, value)
}

/// The lines of an NDJSON body as JSON values.
pub fn ndjson(body: &[u8]) -> Vec<serde_json::Value> {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("an NDJSON line"))
        .collect()
}

/// Every payload of `topic` in `repo`, oldest first (read by the library).
pub fn payloads(repo: &Path, topic: &str) -> Vec<Vec<u8>> {
    let repo = gitmq::Repository::open(repo).expect("open");
    let topic = gitmq::TopicName::new(topic).expect("topic");
    let name = gitmq::ConsumerName::new("test-reader").expect("name");
    let mut consumer =
        gitmq::Consumer::open_at(repo, name, topic, &gitmq::position::StartAt::Beginning)
            .expect("consumer");
    let mut out = Vec::new();
    loop {
        let batch = consumer.poll(10_000).expect("poll");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch.into_iter().map(|m| m.payload));
    }
}
