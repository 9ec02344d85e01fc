//! Owns reading per-topic retention from a repository's git config:
//!
//! ```text
//! [gitmq "topic.orders"]          # git config gitmq.topic.orders.retainMessages 100000
//!     retainMessages = 100000     # keep the newest 100,000 messages
//!     retainSeconds = 604800      # and none older than a week
//! ```
//!
//! Strict and small on purpose: it reads `<git-dir>/config` only, with the syntax of
//! `crate::git::config` (shared with the remotes reader); keys are case-insensitive; values are
//! decimal integers, optionally quoted, with `#`/`;` comments. Inside a `gitmq "topic.*"`
//! section, anything else (an unknown key, a bad number, an invalid topic name) is an
//! [`Error::Malformed`] rather than a guess; other sections are skipped unread. `include` is
//! not followed. A later value of the same key wins, as in git.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, SystemTime},
};

use super::Retain;
use crate::{git::config::Line, TopicName};

pub use crate::git::config::Error;

/// The retention of one topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// `retainMessages`: keep at most this many messages.
    pub messages: Option<u64>,
    /// `retainSeconds`: keep no message older than this.
    pub seconds: Option<u64>,
}

impl Policy {
    /// The prunes this policy asks for at `now`: by count, then by age.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use gitmq::prune::{retention::Policy, Retain};
    /// let now = SystemTime::now();
    /// let policy = Policy { messages: Some(100), seconds: Some(60) };
    /// assert_eq!(
    ///     policy.retains(now),
    ///     [Retain::Keep(100), Retain::Before(now - Duration::from_secs(60))]
    /// );
    /// ```
    pub fn retains(&self, now: SystemTime) -> Vec<Retain> {
        let mut out = Vec::new();
        if let Some(n) = self.messages {
            out.push(Retain::Keep(n.max(1)));
        }
        if let Some(seconds) = self.seconds {
            let time = now
                .checked_sub(Duration::from_secs(seconds))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            out.push(Retain::Before(time));
        }
        out
    }
}

/// Every topic with a retention in `<git_dir>/config`, sorted by name.
pub fn read(git_dir: &Path) -> Result<BTreeMap<TopicName, Policy>, Error> {
    Ok(crate::git::config::read(git_dir, parse)?.unwrap_or_default())
}

/// The policies in config text; errors are (line number, reason).
fn parse(text: &str) -> Result<BTreeMap<TopicName, Policy>, (usize, &'static str)> {
    let mut out: BTreeMap<TopicName, Policy> = BTreeMap::new();
    let mut topic: Option<TopicName> = None;
    for line in crate::git::config::lines(text) {
        match line? {
            (
                number,
                Line::Section {
                    section,
                    subsection,
                },
            ) => {
                topic = match subsection.as_deref().and_then(|s| s.strip_prefix("topic.")) {
                    Some(name) if section == "gitmq" => {
                        Some(TopicName::new(name).map_err(|_| {
                            (
                                number,
                                "invalid topic name in a gitmq \"topic.<name>\" section",
                            )
                        })?)
                    }
                    _ => None,
                };
            }
            (number, Line::Entry { key, raw_value }) => {
                let Some(topic) = &topic else { continue };
                let value =
                    parse_number(raw_value).ok_or((number, "the value is not a whole number"))?;
                let policy = out.entry(topic.clone()).or_default();
                match key {
                    key if key.eq_ignore_ascii_case("retainMessages") => {
                        policy.messages = Some(value);
                    }
                    key if key.eq_ignore_ascii_case("retainSeconds") => {
                        policy.seconds = Some(value);
                    }
                    _ => return Err((number, "unknown key (retainMessages or retainSeconds)")),
                }
            }
        }
    }
    Ok(out)
}

/// A decimal integer, optionally quoted, then optionally a comment.
fn parse_number(value: &str) -> Option<u64> {
    let value = value.trim();
    let end = value.find(['#', ';']).unwrap_or(value.len());
    let value = value.get(..end)?.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_with_retention_are_read_and_other_sections_skipped() {
        let text = "[core]\n\tbare = true\n[remote \"origin\"]\n\turl = x\n\
                    [gitmq \"topic.eu/orders\"]\n\tretainMessages = 1000 # comment\n\
                    \tRETAINSECONDS = \"60\"\n[GITMQ \"topic.logs\"]\n\tretainSeconds=5\n\
                    [gitmq \"other\"]\n\twhatever = x\n";
        let policies = parse(text).unwrap();
        let orders = TopicName::new("eu/orders").unwrap();
        assert_eq!(
            policies[&orders],
            Policy {
                messages: Some(1000),
                seconds: Some(60)
            }
        );
        assert_eq!(policies[&TopicName::new("logs").unwrap()].seconds, Some(5));
        assert_eq!(policies.len(), 2);
    }

    #[test]
    fn malformed_retention_lines_are_errors_with_their_line() {
        for (text, line) in [
            ("[gitmq \"topic.a\"]\nretainMessages = -1\n", 2),
            ("[gitmq \"topic.a\"]\nretainMessages = 1e6\n", 2),
            ("[gitmq \"topic.a\"]\nretainBytes = 1\n", 2),
            ("[gitmq \"topic.a\"]\nretainMessages\n", 2),
            ("[gitmq \"topic.../x\"]\n", 1),
            ("[gitmq \"topic.a\n", 1),
        ] {
            assert_eq!(parse(text).map(|_| ()).unwrap_err().0, line, "{text:?}");
        }
    }
}
