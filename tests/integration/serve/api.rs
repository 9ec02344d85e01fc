//! The queue API end to end: publish (single, NDJSON, JSON array, stable ids, headers),
//! consume (positions, from/after, long-poll, SSE), commit by compare-and-swap, listings,
//! metrics; git reads what the server wrote.

use std::{
    io::{BufRead, BufReader},
    time::{Duration, Instant},
};

use super::{json_reply, ndjson, Serve};

#[test]
#[allow(clippy::too_many_lines)] // one scenario, step by step
fn the_queue_api_publishes_consumes_and_commits_over_http() {
    let serve = Serve::start(&[]);
    let client = Serve::client();
    let (status, health) =
        super::json_reply(client.get(format!("{}/healthz", serve.url)).send().unwrap());
    assert_eq!((status, &health["status"]), (200, &"ok".into()));

    let mut acknowledged: Vec<String> = Vec::new();
    let mut publish = |body: &[u8], headers: &[(&str, &str)], count: usize| {
        let (status, reply) = serve.publish(&client, "orders", body, headers);
        assert_eq!(status, 200, "{reply}");
        let ids: Vec<String> = reply["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), count, "one id per message: {reply}");
        acknowledged.extend(ids.clone());
        ids
    };
    publish(b"hello", &[], 1);
    publish(
        b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n",
        &[("content-type", "application/x-ndjson")],
        3,
    );
    publish(
        b"[{\"n\":4}, \"five\"]",
        &[("content-type", "application/json")],
        2,
    );
    let headers = [("gitmq-id", "order-1"), ("gitmq-header-source", "web")];
    let first = publish(b"order one", &headers, 1);
    let (status, retry) = serve.publish(&client, "orders", b"order one", &headers);
    assert_eq!(status, 200);
    assert_eq!(
        retry["ids"][0],
        first[0].as_str(),
        "a retry with the same Gitmq-Id returns the original id"
    );
    publish(&[0xff, 0xfe], &[], 1);

    let (status, body) = serve.get(
        &client,
        "/v1/topics/orders/messages?consumer=billing&max=100",
    );
    assert_eq!(status, 200);
    let lines = ndjson(&body);
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids, acknowledged,
        "every acknowledged message, once, in order"
    );
    let payloads: Vec<&str> = lines.iter().filter_map(|l| l["payload"].as_str()).collect();
    assert_eq!(
        payloads,
        [
            "hello",
            "{\"n\":1}",
            "{\"n\":2}",
            "{\"n\":3}",
            "{\"n\":4}",
            "\"five\"",
            "order one"
        ]
    );
    assert_eq!(lines[6]["stable_id"], "order-1");
    assert_eq!(lines[6]["headers"], serde_json::json!([["source", "web"]]));
    assert_eq!(
        lines[7]["payload_base64"], "//4=",
        "non-UTF-8 payloads come as base64"
    );
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));

    let commit = |position: &str, expected: serde_json::Value| {
        let body = serde_json::json!({ "position": position, "expected": expected });
        json_reply(
            client
                .post(format!(
                    "{}/v1/consumers/billing/orders/position",
                    serve.url
                ))
                .body(body.to_string())
                .send()
                .unwrap(),
        )
    };
    let last = acknowledged.last().unwrap().clone();
    assert_eq!(commit(&acknowledged[2], serde_json::Value::Null).0, 200);
    let (status, conflict) = commit(&last, serde_json::Value::Null);
    assert_eq!(
        (status, &conflict["error"]),
        (409, &"conflict".into()),
        "{conflict}"
    );
    let (status, rest) = serve.get(&client, "/v1/topics/orders/messages?consumer=billing");
    assert_eq!(
        (status, ndjson(&rest).len()),
        (200, 5),
        "reads start at the committed position"
    );
    assert_eq!(commit(&last, acknowledged[2].clone().into()).0, 200);
    let (_, nothing) = serve.get(
        &client,
        "/v1/topics/orders/messages?consumer=billing&wait=0s",
    );
    assert!(nothing.is_empty(), "caught up");

    let (_, from) = serve.get(
        &client,
        &format!("/v1/topics/orders/messages?from={}&max=2", acknowledged[4]),
    );
    let from_ids: Vec<String> = ndjson(&from)
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        from_ids,
        acknowledged[4..6],
        "from=ID starts at ID, max caps"
    );
    let (_, after) = serve.get(
        &client,
        &format!("/v1/topics/orders/messages?after={}", acknowledged[6]),
    );
    assert_eq!(ndjson(&after).len(), 1, "after=ID starts after it");

    let (_, topics) = serve.get(&client, "/v1/topics");
    let topics: serde_json::Value = serde_json::from_slice(&topics).unwrap();
    assert_eq!(
        topics["topics"],
        serde_json::json!([{ "topic": "orders", "head": last }])
    );
    let (_, consumers) = serve.get(&client, "/v1/consumers");
    let consumers: serde_json::Value = serde_json::from_slice(&consumers).unwrap();
    assert_eq!(consumers["consumers"][0]["lag"], 0);
    assert_eq!(consumers["consumers"][0]["position"], last.as_str());
    let (_, metrics) = serve.get(&client, "/metrics");
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("gitmq_published_messages_total{topic=\"orders\"} 8\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gitmq_consumer_lag_messages{consumer=\"billing\",topic=\"orders\"} 0\n"),
        "{metrics}"
    );
    assert!(metrics.contains("gitmq_flush_seconds_count "), "{metrics}");

    serve.repo.assert_fsck_clean();
    let log = serve.repo.git(&["rev-list", "--count", "orders"]);
    assert_eq!(
        String::from_utf8_lossy(&log).trim(),
        "8",
        "git sees the 8 messages"
    );
}

#[test]
fn a_long_poll_returns_when_a_message_arrives_and_a_stream_tails_the_topic() {
    let serve = Serve::start(&["--durability", "none"]);
    let client = Serve::client();
    std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            let started = Instant::now();
            let (status, body) =
                serve.get(&client, "/v1/topics/events/messages?consumer=c&wait=20s");
            (status, ndjson(&body), started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(serve.publish(&client, "events", b"wake up", &[]).0, 200);
        let (status, lines, took) = waiting.join().unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            lines.len(),
            1,
            "the poll returned the new message, not an empty page after {took:?}"
        );
        assert_eq!(lines[0]["payload"], "wake up");
    });

    let reply = client
        .get(format!(
            "{}/v1/topics/events/stream?from=beginning",
            serve.url
        ))
        .send()
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    assert_eq!(reply.headers()["content-type"], "text/event-stream");
    let mut events = BufReader::new(reply);
    let mut data = Vec::new();
    let mut line = String::new();
    let mut published_second = false;
    while data.len() < 2 {
        line.clear();
        assert!(
            events.read_line(&mut line).unwrap() > 0,
            "the stream ended early"
        );
        if let Some(json) = line.strip_prefix("data: ") {
            data.push(serde_json::from_str::<serde_json::Value>(json).unwrap());
        }
        if data.len() == 1 && !published_second {
            published_second = true;
            assert_eq!(serve.publish(&client, "events", b"second", &[]).0, 200);
        }
    }
    assert_eq!(data[0]["payload"], "wake up");
    assert_eq!(
        data[1]["payload"], "second",
        "the stream delivered a message published while it waited"
    );
}
