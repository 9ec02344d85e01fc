//! The stdlib-only Python example (examples/python/gitmq_client.py) against a real server:
//! it publishes (idempotently, with retries) and consumes with compare-and-swap commits.

use std::process::Command;

use super::{payloads, Serve};

#[test]
fn the_python_example_publishes_and_consumes_and_its_retries_are_idempotent() {
    let serve = Serve::start(&[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/python/gitmq_client.py"
    );
    let run = |consumer: &str| {
        let out = Command::new("python3")
            .args([
                script,
                "--url",
                &serve.url,
                "--topic",
                "py",
                "--count",
                "5",
                "--consumer",
                consumer,
            ])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "the example failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
        report
    };
    let first = run("first");
    assert_eq!(
        first["published"].as_array().unwrap().len(),
        7,
        "5 singles and a batch of 2"
    );
    assert_eq!(
        first["consumed"], first["published"],
        "consumed what it published, in order"
    );
    // The same stable ids again (a client retrying after a crash): nothing new is appended.
    let second = run("second");
    assert_eq!(
        second["published"], first["published"],
        "retries return the original ids"
    );
    assert_eq!(payloads(&serve.repo.path, "py").len(), 7);
    let position = serve
        .repo
        .git(&["rev-parse", "refs/gitmq/consumers/first/py"]);
    let last = first["published"][6].as_str().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&position).trim(),
        last,
        "the example committed its position"
    );
}
