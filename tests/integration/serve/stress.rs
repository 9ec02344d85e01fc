//! Many publishers at once, and a SIGTERM in the middle of them: nothing acknowledged is
//! lost, nothing is duplicated, no request is half done.
//!
//! `GITMQ_SERVE_STRESS_SECS` sets how long the 100 publishers run (default 3 s under
//! `cargo test`, to keep CI short; the 30 s run is
//! `GITMQ_SERVE_STRESS_SECS=30 cargo test --test integration serve::stress`).

use std::{
    collections::HashMap,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use super::{payloads, Serve};

const PUBLISHERS: usize = 100;

fn stress_duration() -> Duration {
    let secs = std::env::var("GITMQ_SERVE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    Duration::from_secs(secs)
}

/// What one publisher got acknowledged: (publisher, n) -> commit id.
type Acked = HashMap<(usize, usize), String>;

/// Publish from `t` until `until` (at least once; or until the server goes away): single messages, and
/// every fourth request a batch of three; retries with the same Gitmq-Id. Returns what was
/// acknowledged, and the requests whose outcome is unknown (connection cut).
fn publisher(
    serve: &Serve,
    t: usize,
    until: Instant,
    retry: bool,
    progress: &AtomicUsize,
) -> (Acked, Vec<Vec<usize>>) {
    let client = Serve::client();
    let mut acked = Acked::new();
    let mut unknown = Vec::new();
    let mut n = 0;
    // At least one request each, however late the thread starts on a loaded machine.
    let mut first = true;
    while std::mem::take(&mut first) || Instant::now() < until {
        let batch: Vec<usize> = if n % 4 == 3 {
            vec![n, n + 1, n + 2]
        } else {
            vec![n]
        };
        let body: Vec<String> = batch
            .iter()
            .map(|k| format!("{{\"t\":{t},\"n\":{k}}}\n"))
            .collect();
        let body = body.concat();
        let id = format!("p{t}-{n}");
        let mut attempts = 0;
        loop {
            attempts += 1;
            let sent = client
                .post(format!("{}/v1/topics/load/messages", serve.url))
                .header("content-type", "application/x-ndjson")
                .header("gitmq-id", &id)
                .body(body.clone())
                .send();
            match sent.map(super::json_reply) {
                Ok((200, reply)) => {
                    let ids = reply["ids"].as_array().expect("ids");
                    assert_eq!(ids.len(), batch.len(), "{reply}");
                    for (k, id) in batch.iter().zip(ids) {
                        acked.insert((t, *k), id.as_str().unwrap().to_owned());
                        progress.fetch_add(1, Ordering::SeqCst);
                    }
                    break;
                }
                Ok((status, reply)) if retry && attempts < 20 => {
                    assert!(
                        status >= 500,
                        "a well-formed publish refused: {status} {reply}"
                    );
                }
                _ if !retry => {
                    unknown.push(batch.clone());
                    return (acked, unknown);
                }
                Err(err) => panic!("publisher {t}: {err}"),
                Ok((status, reply)) => panic!("publisher {t}: {status} {reply}"),
            }
        }
        n += batch.len();
    }
    (acked, unknown)
}

/// (publisher, n) of every message on the topic, asserting none repeats.
fn published(serve: &Serve) -> HashMap<(usize, usize), usize> {
    let mut seen = HashMap::new();
    for (index, payload) in payloads(&serve.repo.path, "load").iter().enumerate() {
        let value: serde_json::Value = serde_json::from_slice(payload).expect("a payload we sent");
        let key = (
            usize::try_from(value["t"].as_u64().unwrap()).unwrap(),
            usize::try_from(value["n"].as_u64().unwrap()).unwrap(),
        );
        assert!(
            seen.insert(key, index).is_none(),
            "message {key:?} is on the topic twice"
        );
    }
    seen
}

#[test]
fn a_hundred_concurrent_publishers_lose_and_duplicate_nothing() {
    let serve = Serve::start(&[]);
    let until = Instant::now() + stress_duration();
    let acked: Vec<Acked> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PUBLISHERS)
            .map(|t| {
                let serve = &serve;
                s.spawn(move || publisher(serve, t, until, true, &AtomicUsize::new(0)).0)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let on_topic = published(&serve);
    let total: usize = acked.iter().map(HashMap::len).sum();
    assert!(
        total >= PUBLISHERS,
        "every publisher got at least one message through"
    );
    assert_eq!(
        on_topic.len(),
        total,
        "exactly the acknowledged messages are on the topic"
    );
    for per in &acked {
        for key in per.keys() {
            assert!(
                on_topic.contains_key(key),
                "acknowledged {key:?} is missing"
            );
        }
    }
    // Each publisher's messages are in its own order.
    for t in 0..PUBLISHERS {
        let mut mine: Vec<(usize, usize)> = on_topic
            .iter()
            .filter(|((p, _), _)| *p == t)
            .map(|((_, n), i)| (*i, *n))
            .collect();
        mine.sort_unstable();
        assert!(
            mine.windows(2).all(|w| w[0].1 < w[1].1),
            "publisher {t} out of order"
        );
    }
    serve.repo.assert_fsck_clean();
}

#[test]
fn sigterm_answers_or_refuses_every_publish_in_flight_and_loses_nothing_acknowledged() {
    let mut serve = Serve::start(&[]);
    let until = Instant::now() + Duration::from_secs(60);
    let progress = AtomicUsize::new(0);
    let results: Vec<(Acked, Vec<Vec<usize>>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|t| {
                let serve = &serve;
                let progress = &progress;
                s.spawn(move || publisher(serve, t, until, false, progress))
            })
            .collect();
        // Signal once publishing is under way (however slow the machine is).
        let waited = Instant::now();
        while progress.load(Ordering::SeqCst) < 32 && waited.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = serve.pid();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (clean, took) = serve.terminate();
    assert!(clean, "gitmq serve exits 0 on SIGTERM (after {took:?})");
    let on_topic = published(&serve);
    let mut acked_total = 0;
    for (t, (acked, unknown)) in results.iter().enumerate() {
        acked_total += acked.len();
        for key in acked.keys() {
            assert!(
                on_topic.contains_key(key),
                "acknowledged {key:?} lost by the shutdown"
            );
        }
        for batch in unknown {
            let present = batch
                .iter()
                .filter(|n| on_topic.contains_key(&(t, **n)))
                .count();
            assert!(
                present == 0 || present == batch.len(),
                "publisher {t}: request {batch:?} half done"
            );
        }
    }
    assert!(
        acked_total > 0,
        "some publishes went through before the signal"
    );
    serve.repo.assert_fsck_clean();
}
