//! Several writers on one topic: nothing lost, nothing duplicated, history fsck-clean.

use std::{collections::HashSet, process::Stdio};

use gitmq::TopicName;

use crate::util::{lines, TempRepo};

#[test]
fn four_processes_times_500_publishes_leave_exactly_2000_messages() {
    let repo = TempRepo::new();
    let children: Vec<_> = (0..4)
        .map(|p| {
            let input: Vec<u8> = (0..500)
                .flat_map(|i| format!("p{p}-{i:03}\n").into_bytes())
                .collect();
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gitmq"))
                .arg("--repo")
                .arg(&repo.path)
                .args(["publish", "shared", "--batch", "1", "--durability", "none"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input).unwrap());
            child
        })
        .collect();
    let mut printed = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed.extend(lines(&out.stdout));
    }
    assert_eq!(printed.len(), 2000);

    let logged = lines(&repo.git(&["log", "--format=%H", "shared"]));
    assert_eq!(logged.len(), 2000, "every publish is on the topic");
    let logged_set: HashSet<_> = logged.iter().collect();
    assert_eq!(
        logged_set,
        printed.iter().collect(),
        "the printed ids are the topic"
    );

    let bodies = lines(&repo.git(&["log", "--reverse", "--format=%B", "shared"]));
    let bodies: Vec<&String> = bodies.iter().filter(|l| !l.is_empty()).collect();
    for p in 0..4 {
        let mine: Vec<&&String> = bodies
            .iter()
            .filter(|b| b.starts_with(&format!("p{p}-")))
            .collect();
        let expected: Vec<String> = (0..500).map(|i| format!("p{p}-{i:03}")).collect();
        assert_eq!(
            mine.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            expected,
            "process {p}'s messages are all there, in its order"
        );
    }
    repo.assert_fsck_clean();
}

#[test]
fn threads_with_their_own_producers_on_one_topic_lose_nothing() {
    let repo = TempRepo::new();
    let topic = TopicName::new("t").unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let handle = repo.open();
            let topic = topic.clone();
            scope.spawn(move || {
                let mut producer = gitmq::ProducerConfig::default()
                    .with_durability(gitmq::Durability::None)
                    .open(&handle, &topic);
                for i in 0..100 {
                    producer.publish(format!("t{t}-{i}").as_bytes()).unwrap();
                }
            });
        }
    });
    assert_eq!(lines(&repo.git(&["rev-list", "t"])).len(), 400);
    repo.assert_fsck_clean();
}
