//! Fetch from a server that insists on thin packs (issue 15): a CGI script in front of
//! git-http-backend answers HTTP 500 "Client does not support required capability thin-pack"
//! to an upload-pack fetch request that does not offer `thin-pack`, as some independent
//! servers do. gitmq fetches (initial and incremental, v2 and v0), completes the thin packs
//! the server sends from its own objects, a consumer resumes its position, and
//! `git fsck --strict` is clean.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use gitmq::{
    replicate::{self as transport, http::ReqwestClient, FetchOptions},
    ConsumerName, TopicName,
};

use super::{push_all, WithoutV2};
use crate::{server::HttpServer, util::TempRepo};

/// The log of the script's verdicts, one line per upload-pack fetch request.
const VERDICTS: &str = "upload-pack-verdicts.log";

/// Write the CGI script that refuses fetch requests without `thin-pack` (ls-refs requests
/// and everything else pass) in front of `backend`; its path.
fn thin_pack_required(state: &Path, backend: &str) -> PathBuf {
    let script = state.join("require-thin-pack");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
# Refuse an upload-pack fetch whose request does not offer thin-pack, as some servers do.
log="$GIT_PROJECT_ROOT/{VERDICTS}"
case "$REQUEST_METHOD $PATH_INFO" in
POST*/git-upload-pack)
  body=$(mktemp) || exit 1
  cat > "$body"
  if [ "$HTTP_CONTENT_ENCODING" = gzip ]; then
    text=$(gzip -dc < "$body" | tr -d '\000')
  else
    text=$(tr -d '\000' < "$body")
  fi
  case "$text" in
  *command=ls-refs*) ;;
  *thin-pack*) echo passed >> "$log" ;;
  *)
    echo refused >> "$log"
    rm -f "$body"
    printf 'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n'
    echo "Client does not support required capability thin-pack"
    exit 0 ;;
  esac
  exec 3< "$body"
  rm -f "$body"
  exec "{backend}" <&3 ;;
esac
exec "{backend}"
"#
        ),
    )
    .expect("write the CGI script");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&script, mode).expect("make the script executable");
    script
}

fn verdicts(bare: &Path) -> Vec<String> {
    std::fs::read_to_string(bare.parent().unwrap().join(VERDICTS))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A JSON payload with `fields` fields: older messages have more, so when git repacks the
/// server it stores newer messages as deltas against older ones (it deltas from larger
/// objects to smaller), and a thin pack can reuse those deltas against what the client has.
fn payload(seq: usize, fields: usize) -> Vec<u8> {
    let mut text = format!("{{\"seq\":{seq}");
    for k in 0..fields {
        write!(text, ",\"field{k}\":\"value {k} of the order, unchanged\"").unwrap();
    }
    text.push('}');
    text.into_bytes()
}

fn publish(repo: &TempRepo, messages: std::ops::Range<usize>) {
    let payloads: Vec<Vec<u8>> = messages.map(|i| payload(i, 150 - i)).collect();
    repo.open()
        .producer(&TopicName::new("orders").unwrap())
        .publish_batch(payloads.iter().map(Vec::as_slice))
        .unwrap();
}

/// Repack the server's repository as `git gc` would, with deltas and reachability bitmaps
/// (which let `pack-objects --thin` reuse a delta whose base the client has).
fn repack(bare: &Path) {
    crate::util::git(
        &[
            "--git-dir",
            bare.to_str().unwrap(),
            "repack",
            "-adf",
            "-b",
            "-q",
            "--window=50",
            "--depth=50",
        ],
        None,
    );
}

fn seqs(messages: &[gitmq::Message]) -> Vec<usize> {
    messages
        .iter()
        .map(|m| {
            let value: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            usize::try_from(value["seq"].as_u64().unwrap()).unwrap()
        })
        .collect()
}

/// A fetch that does not offer thin-pack is refused by this server: nothing lands, no ref
/// moves.
fn refused_without_thin_pack(local: &TempRepo, bare: &Path, client: &ReqwestClient) {
    let packs = std::fs::read_dir(local.path.join("objects/pack"))
        .unwrap()
        .count();
    let refused = transport::fetch_with(
        &local.open(),
        "origin",
        client,
        FetchOptions {
            thin_pack: false,
            ..FetchOptions::default()
        },
    )
    .unwrap_err();
    assert!(refused.http_status() == Some(500), "{refused:?}");
    assert!(
        verdicts(bare).iter().all(|v| v == "refused") && !verdicts(bare).is_empty(),
        "the server refused a fetch without thin-pack: {:?}",
        verdicts(bare)
    );
    assert!(local.open().topics().unwrap().is_empty(), "no ref moved");
    assert_eq!(
        std::fs::read_dir(local.path.join("objects/pack"))
            .unwrap()
            .count(),
        packs,
        "no pack landed"
    );
}

#[test]
fn a_server_that_insists_on_thin_packs_is_fetched_consumed_and_resumed() {
    let server = HttpServer::start_wrapped(thin_pack_required);
    let bare = server.bare_repo("q");
    let url = server.url("q");
    let orders = TopicName::new("orders").unwrap();
    let billing = ConsumerName::new("billing").unwrap();
    let producer = TempRepo::new();
    publish(&producer, 0..60);
    {
        let mut consumer = producer.open().consumer(&billing, &orders).unwrap();
        assert_eq!(consumer.poll(20).unwrap().len(), 20);
        consumer.commit().unwrap();
    }
    push_all(&producer, &url);

    let local = TempRepo::new();
    local.git(&["remote", "add", "origin", &url]);
    let client = ReqwestClient::new(transport::http::Options::default()).unwrap();
    refused_without_thin_pack(&local, &bare, &client);

    // The initial fetch, with the CLI: it offers thin-pack.
    let out = local.gitmq(&["fetch"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(verdicts(&bare).last().map(String::as_str), Some("passed"));
    let repo = local.open();
    let mut consumer = repo.consumer(&billing, &orders).unwrap();
    assert_eq!(
        seqs(&consumer.poll(10).unwrap()),
        (20..30).collect::<Vec<_>>(),
        "billing resumes after the 20 it read on the producer's machine"
    );
    consumer.commit().unwrap();
    drop(consumer);

    // Incremental: the server repacked (deltas, bitmaps), so its thin pack has deltas against
    // messages the client has; gitmq completes it from its own objects.
    publish(&producer, 60..90);
    push_all(&producer, &url);
    repack(&bare);
    let report = transport::fetch_with(&repo, "origin", &client, FetchOptions::default()).unwrap();
    let pack = report.pack.unwrap();
    assert!(
        pack.local_bases >= 1,
        "the server sent a thin pack, completed here: {pack:?}"
    );
    assert_eq!(pack.objects, 30 + pack.local_bases);
    let mut consumer = repo.consumer(&billing, &orders).unwrap();
    assert_eq!(
        seqs(&consumer.poll(1000).unwrap()),
        (30..90).collect::<Vec<_>>(),
        "billing resumes at its local position and reads the new messages"
    );
    consumer.commit().unwrap();
    local.assert_fsck_clean();

    // Protocol v0 asks with the thin-pack capability; same completion.
    publish(&producer, 90..100);
    push_all(&producer, &url);
    repack(&bare);
    let v0 = WithoutV2(ReqwestClient::new(transport::http::Options::default()).unwrap());
    let report = transport::fetch_with(&repo, "origin", &v0, FetchOptions::default()).unwrap();
    assert_eq!(report.protocol_version, 0);
    assert!(report.pack.unwrap().local_bases >= 1, "v0 got a thin pack");
    assert_eq!(
        seqs(
            &repo
                .consumer(&billing, &orders)
                .unwrap()
                .poll(1000)
                .unwrap()
        ),
        (90..100).collect::<Vec<_>>()
    );
    local.assert_fsck_clean();
    assert!(
        verdicts(&bare)
            .iter()
            .skip_while(|v| *v == "refused")
            .all(|v| v == "passed"),
        "{:?}",
        verdicts(&bare)
    );

    // git's own client passes too (the script refuses only what lacks thin-pack).
    let clone = TempRepo::new();
    clone.git(&["fetch", "-q", &url, "refs/heads/orders:refs/heads/orders"]);
    assert_eq!(
        clone.git(&["rev-list", "--count", "orders"]),
        b"100\n".to_vec()
    );
}

/// `gitmq bench` is in the binary only with the `bench` feature (`.ci/test` turns it on).
#[cfg(feature = "bench")]
#[test]
fn gitmq_bench_fetch_thin_compares_git_thin_and_whole_and_cleans_up() {
    let server = HttpServer::start();
    let bare = server.bare_repo("bench");
    let url = server.url("bench");
    let args = [
        "bench",
        "fetch",
        "--messages",
        "60",
        "--rounds",
        "1",
        "--thin",
        "20",
        "--url",
        &url,
        "--server-git-dir",
        bare.to_str().unwrap(),
        "--similar-payloads",
    ];
    let out = crate::util::gitmq_in(None, &args, b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "incremental fetch of 20 new messages onto 60",
        "as pushed",
        "server repacked",
    ] {
        assert!(stdout.contains(row), "{row} in {stdout}");
    }
    let refs = crate::util::git(&["--git-dir", bare.to_str().unwrap(), "for-each-ref"], None);
    assert!(refs.is_empty(), "the bench branch was deleted");
}
