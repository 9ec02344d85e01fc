//! Refusals: malformed requests get a 4xx with a JSON error and change nothing; tokens gate
//! topics (and never leak); a public address needs --auth; HTTPS with a given certificate.

use std::process::Command;

use super::{json_reply, payloads, Serve};

/// Method, path, body, headers, expected status, expected error code.
type Case<'a> = (
    &'a str,
    &'a str,
    Vec<u8>,
    &'a [(&'a str, &'a str)],
    u16,
    &'a str,
);

#[test]
#[allow(clippy::too_many_lines)] // one scenario, step by step
fn bad_requests_get_4xx_with_a_json_error_and_change_nothing() {
    let serve = Serve::start(&[
        "--max-body",
        "2k",
        "--max-message",
        "100",
        "--max-batch",
        "5",
    ]);
    let client = Serve::client();
    assert_eq!(serve.publish(&client, "orders", b"kept", &[]).0, 200);
    let refs_before = serve.repo.git(&["for-each-ref"]);

    let nd = [("content-type", "application/x-ndjson")];
    let js = [("content-type", "application/json")];
    let big = vec![b'x'; 4096];
    let long_line = format!("\"{}\"", "y".repeat(200));
    let cases: Vec<Case<'_>> = vec![
        (
            "POST",
            "/v1/topics/a..b/messages",
            b"x".to_vec(),
            &[],
            400,
            "bad_name",
        ),
        (
            "POST",
            "/v1/topics/a%5Cb/messages",
            b"x".to_vec(),
            &[],
            400,
            "bad_name",
        ),
        (
            "POST",
            "/v1/topics/x.lock/messages",
            b"x".to_vec(),
            &[],
            400,
            "bad_name",
        ),
        (
            "POST",
            "/v1/topics/orders/messages",
            big,
            &[],
            413,
            "too_large",
        ),
        (
            "POST",
            "/v1/topics/orders/messages",
            long_line.into_bytes(),
            &nd,
            413,
            "message_too_large",
        ),
        (
            "POST",
            "/v1/topics/orders/messages",
            b"1\n2\n3\n4\n5\n6\n".to_vec(),
            &nd,
            413,
            "too_large",
        ),
        (
            "POST",
            "/v1/topics/orders/messages",
            b"a\0b".to_vec(),
            &[],
            400,
            "nul_in_payload",
        ),
        (
            "POST",
            "/v1/topics/orders/messages",
            b"{\"a\":1}\n{oops}\n".to_vec(),
            &nd,
            400,
            "bad_json",
        ),
        (
            "POST",
            "/v1/topics/orders/messages",
            b"[1, 2".to_vec(),
            &js,
            400,
            "bad_json",
        ),
        (
            "POST",
            "/v1/topics/orders/messages",
            b"x".to_vec(),
            &[("gitmq-id", "a b")],
            400,
            "bad_id",
        ),
        (
            "POST",
            "/v1/topics/orders/messages",
            b"x".to_vec(),
            &[("gitmq-header-k", "a\tb")],
            400,
            "bad_header",
        ),
        (
            "POST",
            "/v1/topics/orders/messages",
            b"x".to_vec(),
            &[("content-encoding", "gzip")],
            415,
            "unsupported_encoding",
        ),
        (
            "POST",
            "/v1/consumers/a%2Fb/orders/position",
            b"{}".to_vec(),
            &[],
            400,
            "bad_name",
        ),
        (
            "POST",
            "/v1/consumers/c/orders/position",
            b"{\"position\":".to_vec(),
            &[],
            400,
            "bad_json",
        ),
        (
            "POST",
            "/v1/consumers/c/orders/position",
            format!("{{\"position\":\"{}\"}}", "1".repeat(40)).into_bytes(),
            &[],
            400,
            "not_on_topic",
        ),
        (
            "GET",
            "/v1/topics/orders/messages?max=0",
            Vec::new(),
            &[],
            400,
            "bad_query",
        ),
        (
            "GET",
            "/v1/topics/orders/messages?wait=forever",
            Vec::new(),
            &[],
            400,
            "bad_query",
        ),
        (
            "GET",
            "/v1/topics/orders/messages?after=zz",
            Vec::new(),
            &[],
            400,
            "bad_query",
        ),
        (
            "GET",
            "/v1/topics/orders/messages?consumer=..",
            Vec::new(),
            &[],
            400,
            "bad_name",
        ),
        ("GET", "/v1/nothing", Vec::new(), &[], 404, "not_found"),
        (
            "DELETE",
            "/v1/topics/orders/messages",
            Vec::new(),
            &[],
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, body, headers, status, code) in cases {
        let mut req = client
            .request(method.parse().unwrap(), format!("{}{path}", serve.url))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let (got, reply) = json_reply(req.send().unwrap());
        assert_eq!(
            (got, reply["error"].as_str()),
            (status, Some(code)),
            "{method} {path}: {reply}"
        );
        assert!(
            reply["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{reply}"
        );
    }
    // A header block over --max-header is refused by the HTTP layer (431).
    let huge = "h".repeat(100 << 10);
    let reply = client
        .get(format!("{}/healthz", serve.url))
        .header("x-big", huge)
        .send();
    assert!(
        reply.map_or(true, |r| r.status().is_client_error()),
        "an oversized head is refused"
    );

    assert_eq!(
        serve.repo.git(&["for-each-ref"]),
        refs_before,
        "no ref moved"
    );
    assert_eq!(payloads(&serve.repo.path, "orders"), [b"kept".to_vec()]);
    serve.repo.assert_fsck_clean();
}

#[test]
fn tokens_gate_topics_by_glob_and_never_appear_in_replies() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[[token]]\nname = \"producer\"\nsecret = \"producer-secret-123\"\nwrite = [\"orders\", \"eu/*\"]\n\n\
         [[token]]\nname = \"reader\"\nsecret = \"reader-secret-4567\"\nread = [\"orders\"]\n",
    )
    .unwrap();
    let serve = Serve::start(&["--auth", tokens.to_str().unwrap()]);
    let client = Serve::client();
    let post = |topic: &str, auth: Option<&str>| {
        let mut req = client
            .post(format!("{}/v1/topics/{topic}/messages", serve.url))
            .body("m");
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let reply = req.send().unwrap();
        let challenge = reply.headers().get("www-authenticate").is_some();
        let (status, body) = json_reply(reply);
        (status, body, challenge)
    };
    let (status, body, challenge) = post("orders", None);
    assert_eq!((status, challenge), (401, true), "{body}");
    let (status, body, _) = post("orders", Some("Bearer wrong-secret-000"));
    assert_eq!(status, 401, "{body}");
    assert!(
        !body.to_string().contains("wrong-secret"),
        "the token is not echoed: {body}"
    );
    assert_eq!(
        post("orders", Some("Bearer reader-secret-4567")).0,
        403,
        "read does not grant write"
    );
    assert_eq!(post("payments", Some("Bearer producer-secret-123")).0, 403);
    assert_eq!(post("orders", Some("Bearer producer-secret-123")).0, 200);
    assert_eq!(
        post("eu/orders", Some("Bearer producer-secret-123")).0,
        200,
        "globs match"
    );
    // HTTP basic with the token as password (what git's credential helpers send).
    let reply = client
        .get(format!("{}/v1/topics/orders/messages", serve.url))
        .basic_auth("anyone", Some("reader-secret-4567"))
        .send()
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    assert_eq!(reply.text().unwrap().lines().count(), 1);
    let reply = client
        .get(format!("{}/v1/topics/eu%2Forders/messages", serve.url))
        .bearer_auth("reader-secret-4567")
        .send()
        .unwrap();
    assert_eq!(reply.status().as_u16(), 403, "read only where granted");
    let (_, topics) = json_reply(
        client
            .get(format!("{}/v1/topics", serve.url))
            .bearer_auth("reader-secret-4567")
            .send()
            .unwrap(),
    );
    assert_eq!(
        topics["topics"].as_array().unwrap().len(),
        1,
        "listings show readable topics only: {topics}"
    );
    assert_eq!(
        client
            .get(format!("{}/healthz", serve.url))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        client
            .get(format!("{}/metrics", serve.url))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
}

#[test]
fn a_public_address_needs_auth_unless_insecure_listen_is_given() {
    let repo = crate::util::TempRepo::new();
    let out = Command::new(env!("CARGO_BIN_EXE_gitmq"))
        .arg("--repo")
        .arg(&repo.path)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--insecure-listen") && stderr.contains("--auth"),
        "{stderr}"
    );
}

#[test]
fn https_serves_the_given_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::server::make_certificates(dir.path());
    let cert = dir.path().join("leaf.pem");
    let key = dir.path().join("leaf.key");
    let serve = Serve::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(serve.url.starts_with("https://127.0.0.1:"), "{}", serve.url);
    let client = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap();
    let (status, reply) = serve.publish(&client, "secure", b"over tls", &[]);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(payloads(&serve.repo.path, "secure"), [b"over tls".to_vec()]);
    let plain = Serve::client()
        .get(serve.url.replace("https", "http") + "/healthz")
        .send();
    assert!(
        plain.map_or(true, |r| !r.status().is_success()),
        "no plain HTTP on the TLS port"
    );
}
