//! Not tests: the timing run of the git host against lighttpd + git-http-backend.

use super::*;

/// Not a test: `cargo test --release --test integration -- --ignored githost_clone_timing
/// --nocapture` times `git clone --bare` of a 100,000-message topic from the git host and
/// from lighttpd + git-http-backend serving the same packs, alternating, in one run.
#[test]
#[ignore = "a timing run, see its doc comment"]
fn githost_clone_timing() {
    let messages: usize = std::env::var("GITHOST_TIMING_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let repo = TempRepo::new();
    let payloads: Vec<String> = (0..messages)
        .map(|i| {
            format!(
                "{{\"order\":{i},\"customer\":\"c{}\",\"amount\":{}}}",
                i % 977,
                i * 7 % 1000
            )
        })
        .collect();
    let topic = TopicName::new("orders").unwrap();
    let mut producer = repo.open().producer(&topic);
    for chunk in payloads.chunks(10_000) {
        producer
            .publish_batch(chunk.iter().map(String::as_bytes))
            .unwrap();
    }
    let head = rev_parse(&repo.path, "refs/heads/orders");
    let lighttpd = crate::server::HttpServer::start();
    let bare = lighttpd.bare_repo("q");
    for entry in std::fs::read_dir(repo.path.join("objects/pack")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            bare.join("objects/pack").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    git(
        &[
            "--git-dir",
            bare.to_str().unwrap(),
            "update-ref",
            "refs/heads/orders",
            &head,
        ],
        None,
    );
    let served = serve(repo);
    let sources = [
        ("gitmq githost", served.server.url("")),
        ("git-http-backend", lighttpd.url("q")),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); sources.len()];
    for round in 0..3 {
        for (i, (_, url)) in sources.iter().enumerate() {
            let clone = dir.path().join(format!("c{round}-{i}.git"));
            let start = std::time::Instant::now();
            git(
                &["clone", "-q", "--bare", url, clone.to_str().unwrap()],
                None,
            );
            times[i].push(start.elapsed().as_secs_f64());
            assert_eq!(rev_parse(&clone, "refs/heads/orders"), head);
            std::fs::remove_dir_all(&clone).unwrap();
        }
    }
    let mut fetch_times: Vec<Vec<f64>> = vec![Vec::new(); sources.len()];
    for _round in 0..3 {
        for (i, (_, url)) in sources.iter().enumerate() {
            let replica = TempRepo::new();
            let start = std::time::Instant::now();
            replicate::fetch(&replica.open(), url, &replicate::fetch::DEFAULT_PREFIXES).unwrap();
            fetch_times[i].push(start.elapsed().as_secs_f64());
            assert_eq!(rev_parse(&replica.path, "refs/heads/orders"), head);
        }
    }
    let server_alone = host_alone(&served, &head);
    let one_new = one_new_message(&served, &bare, &sources, dir.path());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("{messages} messages, 3 rounds alternating, load {load}");
    let median = |mut t: Vec<f64>| {
        t.sort_by(f64::total_cmp);
        format!("median {:.3} s (min {:.3}, max {:.3})", t[1], t[0], t[2])
    };
    for (((name, _), clone), fetch) in sources.iter().zip(times).zip(fetch_times) {
        eprintln!("  from {name:>16}: git clone --bare {}", median(clone));
        eprintln!("  from {name:>16}: gitmq fetch      {}", median(fetch));
    }
    for ((name, _), t) in sources.iter().zip(one_new) {
        eprintln!(
            "  from {name:>16}: git fetch of 1 new message {}",
            median(t)
        );
    }
    let bytes = server_alone[0].1;
    eprintln!(
        "  githost alone (the fetch answer to a sink, {bytes} bytes): {}",
        median(server_alone.into_iter().map(|(t, _)| t).collect())
    );
}

/// The host alone, three times: the whole clone answer written to a sink, no client; seconds
/// and bytes.
fn host_alone(served: &Served, head: &str) -> Vec<(f64, u64)> {
    let host = GitHost::new(served.repo.open());
    let mut server_alone = Vec::new();
    let request = pkts(&[
        "command=fetch",
        "0001",
        "ofs-delta",
        &format!("want {head}"),
        "done",
        "0000",
    ]);
    for _round in 0..3 {
        let start = std::time::Instant::now();
        let response = host
            .handle(
                gitmq::githost::Request {
                    method: "POST",
                    path: "git-upload-pack",
                    query: None,
                    git_protocol: Some("version=2"),
                    content_type: Some("application/x-git-upload-pack-request"),
                    content_encoding: None,
                    body: &mut &request[..],
                },
                &AllowAll,
            )
            .unwrap();
        let bytes = response.write_body(&mut std::io::sink()).unwrap();
        server_alone.push((start.elapsed().as_secs_f64(), bytes));
    }
    server_alone
}

/// `git fetch` of one new message into a clone from each source, three times: the message is
/// published on the host and its pack copied to the other server's repository.
fn one_new_message(
    served: &Served,
    bare: &Path,
    sources: &[(&str, String)],
    dir: &Path,
) -> Vec<Vec<f64>> {
    let clones: Vec<PathBuf> = sources
        .iter()
        .enumerate()
        .map(|(i, (_, url))| {
            let clone = dir.join(format!("inc{i}.git"));
            git(
                &["clone", "-q", "--bare", url, clone.to_str().unwrap()],
                None,
            );
            clone
        })
        .collect();
    let mut times = vec![Vec::new(); sources.len()];
    for round in 0..3 {
        publish(&served.repo, "orders", [format!("{{\"late\":{round}}}")]);
        for entry in std::fs::read_dir(served.repo.path.join("objects/pack")).unwrap() {
            let path = entry.unwrap().path();
            let target = bare.join("objects/pack").join(path.file_name().unwrap());
            if !target.exists() {
                std::fs::copy(&path, target).unwrap();
            }
        }
        let head = rev_parse(&served.repo.path, "refs/heads/orders");
        git(
            &[
                "--git-dir",
                bare.to_str().unwrap(),
                "update-ref",
                "refs/heads/orders",
                &head,
            ],
            None,
        );
        for (i, clone) in clones.iter().enumerate() {
            let start = std::time::Instant::now();
            git(
                &[
                    "--git-dir",
                    clone.to_str().unwrap(),
                    "fetch",
                    "-q",
                    &sources[i].1,
                    "+refs/heads/*:refs/heads/*",
                ],
                None,
            );
            times[i].push(start.elapsed().as_secs_f64());
            assert_eq!(rev_parse(clone, "refs/heads/orders"), head);
        }
    }
    times
}
