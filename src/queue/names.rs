//! Owns the names that reach the file system: topics and consumers.
//!
//! Invariant: a [`TopicName`] or [`ConsumerName`] only exists if it passed git's ref-name
//! rules (via `gix-validate`) plus gitmq's own, stricter ones, so the ref paths built from it
//! (`refs/heads/<topic>`, `refs/gitmq/consumers/<consumer>/<topic>`) can never leave the
//! repository directory: no component is empty, `.` or `..`, none starts with `.` or ends with
//! `.lock`, and no byte is a control character, a backslash or one of git's forbidden ones.
//! After construction, no bare `&str` name travels inside the crate.

use std::fmt;

use crate::git::refs::FullName;

/// The longest topic or consumer name accepted, in bytes (file systems cap a component at 255).
pub const MAX_NAME_LEN: usize = 200;

/// Where topics live: topic `T` is the branch `refs/heads/T`.
pub const TOPIC_PREFIX: &str = "refs/heads/";

/// Where consumer positions live: `refs/gitmq/consumers/<consumer>/<topic>`.
///
/// Outside `refs/heads/` and `refs/tags/`, so a plain `git clone` or `git fetch` neither copies
/// nor auto-follows them; fetch them explicitly with the refspec
/// `+refs/gitmq/*:refs/gitmq/*`, and see them with `git log --decorate-refs=refs/gitmq/`.
pub const POSITION_PREFIX: &str = "refs/gitmq/consumers/";

/// Returned by [`TopicName::new()`] and [`ConsumerName::new()`].
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} name {name:?}: {reason}")]
pub struct Error {
    /// "topic" or "consumer".
    pub what: &'static str,
    /// The refused name, as given.
    pub name: String,
    /// Why it was refused.
    pub reason: String,
}

/// A validated topic name: a queue, stored as the branch `refs/heads/<name>`.
///
/// May contain `/` to group topics (`eu/orders`), like branch names.
///
/// ```
/// use gitmq::TopicName;
/// assert!(TopicName::new("orders").is_ok());
/// assert!(TopicName::new("eu/orders").is_ok());
/// assert!(TopicName::new("../escape").is_err());
/// assert!(TopicName::new("a..b").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(String);

/// A validated consumer name: one path component (no `/`), so that the position ref
/// `refs/gitmq/consumers/<consumer>/<topic>` is unambiguous.
///
/// ```
/// use gitmq::ConsumerName;
/// assert!(ConsumerName::new("billing").is_ok());
/// assert!(ConsumerName::new("a/b").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerName(String);

/// Lifecycle
impl TopicName {
    /// Validate `name` as a topic name.
    pub fn new(name: &str) -> Result<Self, Error> {
        check(name, true).map_err(|reason| Error {
            what: "topic",
            name: name.to_owned(),
            reason,
        })?;
        Ok(Self(name.to_owned()))
    }

    /// The topic named by the full ref `refs/heads/<name>`, if it is one gitmq accepts.
    pub fn from_ref(full_ref: &str) -> Option<Self> {
        full_ref
            .strip_prefix(TOPIC_PREFIX)
            .and_then(|name| Self::new(name).ok())
    }
}

/// Access
impl TopicName {
    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full ref of the topic's branch: `refs/heads/<name>`.
    pub fn ref_name(&self) -> FullName {
        FullName::new(format!("{TOPIC_PREFIX}{}", self.0))
            .expect("BUG: a valid topic name makes a valid ref name")
    }
}

/// Lifecycle
impl ConsumerName {
    /// Validate `name` as a consumer name.
    pub fn new(name: &str) -> Result<Self, Error> {
        check(name, false).map_err(|reason| Error {
            what: "consumer",
            name: name.to_owned(),
            reason,
        })?;
        Ok(Self(name.to_owned()))
    }
}

/// Access
impl ConsumerName {
    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full ref holding this consumer's position on `topic`.
    pub fn position_ref(&self, topic: &TopicName) -> FullName {
        FullName::new(format!("{POSITION_PREFIX}{}/{}", self.0, topic.0))
            .expect("BUG: valid consumer and topic names make a valid ref name")
    }

    /// Split a full position ref back into its consumer and topic.
    pub fn parse_position_ref(full_ref: &str) -> Option<(ConsumerName, TopicName)> {
        let rest = full_ref.strip_prefix(POSITION_PREFIX)?;
        let (consumer, topic) = rest.split_once('/')?;
        Some((
            ConsumerName::new(consumer).ok()?,
            TopicName::new(topic).ok()?,
        ))
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ConsumerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Check `name` against git's ref-name rules and gitmq's extra ones; the reason on failure.
fn check(name: &str, slashes_allowed: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("it is longer than {MAX_NAME_LEN} bytes"));
    }
    if name.starts_with('-') {
        return Err("it starts with '-'".into());
    }
    if !slashes_allowed && name.contains('/') {
        return Err("it contains '/'".into());
    }
    if let Some(byte) = name.bytes().find(|b| b.is_ascii_control() || *b == b'\\') {
        return Err(format!("it contains the byte {byte:#04x}"));
    }
    if name == "HEAD" || name == "@" {
        return Err(format!("'{name}' means HEAD to git"));
    }
    let full = format!("{TOPIC_PREFIX}{name}");
    gix_validate::reference::name(full.as_bytes().into()).map_err(|err| err.to_string())?;
    // gix-validate allows components git refuses to check out as files on some systems;
    // gitmq also refuses '.' and '..' outright (they never reach a path).
    if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err("a path component is empty, '.' or '..'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_accepted() {
        for name in ["orders", "eu/orders", "a-b_c.d", "v1.2", "UPPER", "ümlaut"] {
            assert!(TopicName::new(name).is_ok(), "{name} is a fine topic name");
        }
    }

    #[test]
    fn names_git_refuses_or_that_escape_are_refused() {
        let bad = [
            "",
            "../x",
            "x/../y",
            "a..b",
            "x.lock",
            "a/x.lock",
            ".hidden",
            "a/.b",
            "a/",
            "/a",
            "a//b",
            "a b\n",
            "tab\there",
            "nul\0",
            "a\\b",
            "a:b",
            "a?b",
            "a*b",
            "a[b",
            "a~b",
            "a^b",
            "a@{b",
            "@",
            "-flag",
            "HEAD",
            "end.",
            "del\x7f",
        ];
        for name in bad {
            assert!(TopicName::new(name).is_err(), "{name:?} must be refused");
        }
        assert!(
            TopicName::new(&"x".repeat(MAX_NAME_LEN + 1)).is_err(),
            "too long"
        );
    }

    #[test]
    fn consumer_names_are_one_component() {
        assert!(ConsumerName::new("a/b").is_err());
        assert!(ConsumerName::new("..").is_err());
        assert!(ConsumerName::new("worker-1").is_ok());
    }

    #[test]
    fn position_refs_round_trip() {
        let consumer = ConsumerName::new("billing").unwrap();
        let topic = TopicName::new("eu/orders").unwrap();
        let full = consumer.position_ref(&topic);
        assert_eq!(full, "refs/gitmq/consumers/billing/eu/orders");
        assert_eq!(
            ConsumerName::parse_position_ref(&full),
            Some((consumer, topic))
        );
    }
}
