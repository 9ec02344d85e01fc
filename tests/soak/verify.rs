//! The soak's verdict: waiting for every node to catch up, then the figures (messages, kills,
//! faults, duplicates delivered, lost) and the guarantees they must show.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    time::{Duration, Instant},
};

use crate::{
    drivers::{rev_parse, ConsumerLog, ProducerLog},
    nodes::Node,
    proxy::FaultProxy,
    util::git_output,
    TOPIC,
};

/// The server's topic, oldest first: (commit id, stable id) per message.
pub fn server_topic(bare: &Path) -> Vec<(String, String)> {
    let out = git_output(
        &[
            "--git-dir",
            bare.to_str().unwrap(),
            "log",
            "--first-parent",
            "--reverse",
            "--format=raw",
            &format!("refs/heads/{TOPIC}"),
        ],
        None,
    );
    let mut topic: Vec<(String, String)> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(id) = line.strip_prefix("commit ") {
            topic.push((id.to_owned(), String::new()));
        } else if let Some(stable) = line.strip_prefix("gitmq-id ") {
            if let Some(last) = topic.last_mut() {
                stable.clone_into(&mut last.1);
            }
        }
    }
    topic
}

/// Wait until every acknowledged id is on the server and each consumer's node holds the
/// server's topic with its position at the head; whether that happened within `limit`.
pub fn wait_until_caught_up(
    bare: &Path,
    consumers: &[Node],
    acked: &[String],
    limit: Duration,
) -> bool {
    let start = Instant::now();
    let deadline = start + limit;
    let head_ref = format!("refs/heads/{TOPIC}");
    let mut next_report = start + Duration::from_secs(5);
    while Instant::now() < deadline {
        let on_server: HashSet<String> = server_topic(bare).into_iter().map(|(_, s)| s).collect();
        let head = rev_parse(bare, &head_ref);
        let all_there = acked.iter().all(|id| on_server.contains(id));
        let consumed = consumers.iter().all(|node| {
            let position = format!("refs/gitmq/consumers/{}/{TOPIC}", node.name);
            head.is_some()
                && rev_parse(&node.repo, &head_ref) == head
                && rev_parse(&node.repo, &position) == head
        });
        if all_there && consumed {
            return true;
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(5);
            let missing = acked.iter().filter(|id| !on_server.contains(*id)).count();
            eprintln!(
                "soak: catching up for {:.0} s: {missing} acknowledged messages not on the server yet",
                start.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

/// One consumer's figures.
#[derive(Debug)]
pub struct ConsumerFigures {
    name: String,
    deliveries: usize,
    duplicates: usize,
    missing: usize,
    out_of_order: usize,
    unknown: usize,
    positions: usize,
    local_regressions: usize,
    server_regressions: usize,
    kills: usize,
}

/// Everything the soak measured.
#[derive(Debug)]
pub struct Figures {
    messages: usize,
    publish_runs: usize,
    publish_kills: usize,
    publish_failures: usize,
    failure_samples: Vec<String>,
    sync_kills: usize,
    faults: usize,
    fault_counts: Vec<(&'static str, usize)>,
    requests: usize,
    on_server: usize,
    lost: Vec<String>,
    server_duplicates: usize,
    unacknowledged_on_server: usize,
    consumers: Vec<ConsumerFigures>,
    /// Per producer: (node, acknowledged, runs, kills).
    producers: Vec<(String, usize, usize, usize)>,
    stuck_locks: usize,
}

/// How many times an index sequence goes down.
fn regressions(indices: impl Iterator<Item = Option<usize>>) -> usize {
    let mut last = None;
    let mut count = 0;
    for index in indices {
        match (index, last) {
            (None, _) => count += 1, // not on the topic at all
            (Some(i), Some(l)) if i < l => count += 1,
            _ => {}
        }
        if index.is_some() {
            last = index;
        }
    }
    count
}

impl Figures {
    /// Compute the figures from the server's topic and what each driver saw.
    pub fn gather(
        bare: &Path,
        produced: &[ProducerLog],
        consumed: &[ConsumerLog],
        server_positions: &[(String, String)],
        sync_kills: usize,
        proxy: &FaultProxy,
    ) -> Self {
        let topic = server_topic(bare);
        let index_of_commit: HashMap<&str, usize> = topic
            .iter()
            .enumerate()
            .map(|(i, (commit, _))| (commit.as_str(), i))
            .collect();
        let mut count_of: HashMap<&str, usize> = HashMap::new();
        for (_, stable) in &topic {
            *count_of.entry(stable.as_str()).or_default() += 1;
        }
        let acked: HashSet<&str> = produced
            .iter()
            .flat_map(|p| p.acked.iter().map(String::as_str))
            .collect();
        let index_of_stable: HashMap<&str, usize> = topic
            .iter()
            .enumerate()
            .map(|(i, (_, stable))| (stable.as_str(), i))
            .collect();
        let consumers = consumed
            .iter()
            .map(|log| {
                let mut seen = HashSet::new();
                let (mut out_of_order, mut unknown) = (0, 0);
                let mut furthest: Option<usize> = None;
                for (stable, _) in &log.deliveries {
                    seen.insert(stable.as_str());
                    let Some(&index) = index_of_stable.get(stable.as_str()) else {
                        unknown += 1;
                        continue;
                    };
                    // In topic order: each delivery is the next message or a repeat of an
                    // earlier one (redelivery), never a skip ahead.
                    if index > furthest.map_or(0, |f| f + 1) {
                        out_of_order += 1;
                    }
                    furthest = Some(furthest.map_or(index, |f| f.max(index)));
                }
                let position_ref = format!("refs/gitmq/consumers/{}/{TOPIC}", log.name);
                ConsumerFigures {
                    name: log.name.clone(),
                    deliveries: log.deliveries.len(),
                    duplicates: log.deliveries.len() - seen.len(),
                    missing: topic
                        .iter()
                        .filter(|(_, s)| !seen.contains(s.as_str()))
                        .count(),
                    out_of_order,
                    unknown,
                    positions: log.positions.len(),
                    local_regressions: regressions(
                        log.positions
                            .iter()
                            .map(|p| index_of_commit.get(p.as_str()).copied()),
                    ),
                    server_regressions: regressions(
                        server_positions
                            .iter()
                            .filter(|(name, _)| *name == position_ref)
                            .map(|(_, p)| index_of_commit.get(p.as_str()).copied()),
                    ),
                    kills: log.kills,
                }
            })
            .collect();
        Self {
            messages: acked.len(),
            publish_runs: produced.iter().map(|p| p.attempts).sum(),
            publish_kills: produced.iter().map(|p| p.kills).sum(),
            publish_failures: produced.iter().map(|p| p.failures).sum(),
            failure_samples: produced
                .iter()
                .flat_map(|p| p.failure_samples.iter().take(2).cloned())
                .collect(),
            sync_kills,
            faults: proxy.faults(),
            fault_counts: proxy.fault_counts(),
            requests: proxy.seen().len(),
            on_server: topic.len(),
            lost: acked
                .iter()
                .filter(|id| !count_of.contains_key(*id))
                .map(|id| (*id).to_owned())
                .collect(),
            server_duplicates: count_of.values().map(|c| c - 1).sum(),
            unacknowledged_on_server: count_of.keys().filter(|id| !acked.contains(*id)).count(),
            consumers,
            producers: produced
                .iter()
                .map(|p| (p.name.clone(), p.acked.len(), p.attempts, p.kills))
                .collect(),
            stuck_locks: produced.iter().map(|p| p.stuck_locks.len()).sum::<usize>()
                + consumed.iter().map(|c| c.stuck_locks.len()).sum::<usize>(),
        }
    }

    /// Print the figures, one `soak:` line each.
    pub fn print(&self, total: Duration, catch_up: Duration) {
        eprintln!(
            "soak: messages acknowledged {} (on the server {}), publish runs {}, \
             publish kills {}, publish failures {}, sync kills {}",
            self.messages,
            self.on_server,
            self.publish_runs,
            self.publish_kills,
            self.publish_failures,
            self.sync_kills
        );
        for (name, acked, runs, kills) in &self.producers {
            eprintln!(
                "soak: producer {name}: acknowledged {acked}, publish runs {runs}, kills {kills}"
            );
        }
        eprintln!(
            "soak: faults {} of {} requests {:?}",
            self.faults, self.requests, self.fault_counts
        );
        for c in &self.consumers {
            eprintln!(
                "soak: consumer {}: deliveries {}, duplicates delivered {}, missing {}, \
                 out of order {}, unknown {}, positions {} (regressions: node {}, server {}), \
                 consume kills {}",
                c.name,
                c.deliveries,
                c.duplicates,
                c.missing,
                c.out_of_order,
                c.unknown,
                c.positions,
                c.local_regressions,
                c.server_regressions,
                c.kills
            );
        }
        eprintln!(
            "soak: lost {}, duplicates on the server {}, unacknowledged on the server {}, \
             stuck locks {}; {:.0} s in all, caught up {:.1} s after healing",
            self.lost.len(),
            self.server_duplicates,
            self.unacknowledged_on_server,
            self.stuck_locks,
            total.as_secs_f64(),
            catch_up.as_secs_f64()
        );
        for sample in &self.failure_samples {
            eprintln!("soak: a failed publish said: {sample}");
        }
    }

    /// The guarantees: nothing lost, nothing twice on the server, every consumer complete and
    /// in order, positions only forward.
    pub fn assert_guarantees(&self) {
        assert!(self.messages > 0, "the producers published");
        assert!(self.lost.is_empty(), "lost: {:?}", self.lost);
        assert_eq!(self.server_duplicates, 0, "exactly once on the server");
        assert_eq!(
            self.unacknowledged_on_server, 0,
            "every message on the server was acknowledged"
        );
        assert_eq!(self.stuck_locks, 0, "no lock outlived gitmq unlock");
        for c in &self.consumers {
            assert_eq!(c.missing, 0, "{}: saw every message", c.name);
            assert_eq!(c.unknown, 0, "{}: saw nothing off the topic", c.name);
            assert_eq!(c.out_of_order, 0, "{}: in topic order", c.name);
            assert_eq!(c.local_regressions, 0, "{}: positions forward", c.name);
            assert_eq!(
                c.server_regressions, 0,
                "{}: server positions forward",
                c.name
            );
        }
    }
}
