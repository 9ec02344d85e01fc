//! Owns the read-only listings: `GET /v1/topics` (each topic and its head) and
//! `GET /v1/consumers` (each position, its topic's head and the lag), filtered to the topics
//! the caller may read.

use super::render::json_string;
use crate::{position, Repository};

/// `{"topics":[{"topic":"orders","head":"<id>"},..]}`
pub(crate) fn topics(
    repo: &Repository,
    visible: impl Fn(&str) -> bool,
) -> Result<Vec<u8>, crate::Error> {
    let mut out = b"{\"topics\":[".to_vec();
    let mut first = true;
    for (topic, head) in repo.topics()? {
        if !visible(topic.as_str()) {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"topic\":");
        json_string(&mut out, topic.as_str().as_bytes());
        out.extend_from_slice(b",\"head\":");
        json_string(&mut out, head.to_string().as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"]}\n");
    Ok(out)
}

/// `{"consumers":[{"consumer":"billing","topic":"orders","position":"<id>","head":"<id>"|null,"lag":3|null},..]}`
/// (`lag` is null when the position is not on the topic's history).
pub(crate) fn consumers(
    repo: &Repository,
    visible: impl Fn(&str) -> bool,
) -> Result<Vec<u8>, crate::Error> {
    let mut out = b"{\"consumers\":[".to_vec();
    let mut first = true;
    for status in position::status(repo)? {
        if !visible(status.topic.as_str()) {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"consumer\":");
        json_string(&mut out, status.consumer.as_str().as_bytes());
        out.extend_from_slice(b",\"topic\":");
        json_string(&mut out, status.topic.as_str().as_bytes());
        out.extend_from_slice(b",\"position\":");
        json_string(&mut out, status.position.to_string().as_bytes());
        out.extend_from_slice(b",\"head\":");
        match status.head {
            Some(head) => json_string(&mut out, head.to_string().as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"lag\":");
        match status.lag {
            Some(lag) => out.extend_from_slice(lag.to_string().as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}\n");
    Ok(out)
}
