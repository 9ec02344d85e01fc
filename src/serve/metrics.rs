//! Owns `GET /metrics`: counters kept while serving (messages published and consumed per
//! topic, requests per status, the flush latency histogram) and the Prometheus text
//! exposition (format 0.0.4), with each consumer's lag read from the repository at scrape
//! time.
//!
//! Invariant: counters only grow; a message counts as published once acknowledged, as
//! consumed once written into a response.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

use crate::{position, Repository, TopicName};

/// Upper bounds (seconds) of the flush latency histogram's buckets.
const FLUSH_BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    published: Mutex<BTreeMap<String, u64>>,
    consumed: Mutex<BTreeMap<String, u64>>,
    requests: Mutex<BTreeMap<u16, u64>>,
    flush_buckets: [AtomicU64; FLUSH_BUCKETS.len()],
    flush_count: AtomicU64,
    flush_nanos: AtomicU64,
}

impl Metrics {
    pub fn published(&self, topic: &TopicName, messages: usize) {
        add(&self.published, topic.as_str(), messages);
    }

    pub fn consumed(&self, topic: &TopicName, messages: usize) {
        if messages > 0 {
            add(&self.consumed, topic.as_str(), messages);
        }
    }

    pub fn request(&self, status: u16) {
        let mut map = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(status).or_default() += 1;
    }

    pub fn observe_flush(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        for (bucket, bound) in self.flush_buckets.iter().zip(FLUSH_BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.flush_count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.flush_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The exposition text; reads every consumer's lag (O(total lag), as `gitmq consumers`).
    pub fn render(&self, repo: &Repository) -> Result<String, crate::Error> {
        let mut out = String::new();
        header(
            &mut out,
            "gitmq_published_messages_total",
            "counter",
            "Messages acknowledged to publishers, per topic.",
        );
        for (topic, n) in snapshot(&self.published) {
            let _ = writeln!(
                out,
                "gitmq_published_messages_total{{topic=\"{}\"}} {n}",
                label(&topic)
            );
        }
        header(
            &mut out,
            "gitmq_consumed_messages_total",
            "counter",
            "Messages delivered to consumers (GET and event streams), per topic.",
        );
        for (topic, n) in snapshot(&self.consumed) {
            let _ = writeln!(
                out,
                "gitmq_consumed_messages_total{{topic=\"{}\"}} {n}",
                label(&topic)
            );
        }
        header(
            &mut out,
            "gitmq_http_requests_total",
            "counter",
            "HTTP requests answered, per status code.",
        );
        for (code, n) in snapshot(&self.requests) {
            let _ = writeln!(out, "gitmq_http_requests_total{{code=\"{code}\"}} {n}");
        }
        header(
            &mut out,
            "gitmq_flush_seconds",
            "histogram",
            "Time to flush one batch (pack, index, ref; fsyncs per durability).",
        );
        for (bucket, bound) in self.flush_buckets.iter().zip(FLUSH_BUCKETS) {
            let _ = writeln!(
                out,
                "gitmq_flush_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.flush_count.load(Ordering::Relaxed);
        let sum = Duration::from_nanos(self.flush_nanos.load(Ordering::Relaxed)).as_secs_f64();
        let _ = writeln!(out, "gitmq_flush_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "gitmq_flush_seconds_sum {sum}\ngitmq_flush_seconds_count {count}"
        );
        header(&mut out, "gitmq_consumer_lag_messages", "gauge", "Messages after each consumer's committed position (absent: position not on the topic).");
        for status in position::status(repo)? {
            if let Some(lag) = status.lag {
                let _ = writeln!(
                    out,
                    "gitmq_consumer_lag_messages{{consumer=\"{}\",topic=\"{}\"}} {lag}",
                    label(status.consumer.as_str()),
                    label(status.topic.as_str())
                );
            }
        }
        Ok(out)
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn add(map: &Mutex<BTreeMap<String, u64>>, key: &str, n: usize) {
    let mut map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match map.get_mut(key) {
        Some(count) => *count += n as u64,
        None => {
            map.insert(key.to_owned(), n as u64);
        }
    }
}

fn snapshot<K: Clone + Ord>(map: &Mutex<BTreeMap<K, u64>>) -> Vec<(K, u64)> {
    let map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

/// A label value escaped per the exposition format (names are validated, but `\` and `"`
/// cost nothing to escape).
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_and_buckets_the_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let metrics = Metrics::default();
        let orders = TopicName::new("orders").unwrap();
        metrics.published(&orders, 3);
        metrics.published(&orders, 2);
        metrics.observe_flush(Duration::from_micros(700));
        metrics.observe_flush(Duration::from_secs(3));
        let text = metrics.render(&repo).unwrap();
        assert!(
            text.contains("gitmq_published_messages_total{topic=\"orders\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("gitmq_flush_seconds_bucket{le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("gitmq_flush_seconds_bucket{le=\"1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("gitmq_flush_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("gitmq_flush_seconds_count 2\n"), "{text}");
    }
}
