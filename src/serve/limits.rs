//! Owns the size bounds of `gitmq serve`: what a request may hold before it is refused with
//! 413 (body), 431 (headers) or 400 (a message or line too long), and the bounds on what a
//! reply may hold.
//!
//! Invariant: nothing read from a client is buffered beyond these numbers; a body is read
//! through [`super::body::collect()`], which stops at `max_body_bytes`.

use std::time::Duration;

/// Request and reply bounds (each configurable on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body (a publish, a position) in bytes.
    pub max_body_bytes: usize,
    /// Largest single message payload, and longest NDJSON line, in bytes.
    pub max_message_bytes: usize,
    /// Most messages in one publish request.
    pub max_batch_messages: usize,
    /// Largest request head (request line and headers) in bytes (at least 8 KiB).
    pub max_header_bytes: usize,
    /// Largest pack a `git push` to `/git/` may send, in bytes.
    pub max_pack_bytes: u64,
    /// Most messages one GET may return (`max` is capped to it).
    pub max_poll_messages: usize,
    /// Longest long-poll (`wait` is capped to it).
    pub max_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 << 20,
            max_message_bytes: 1 << 20,
            max_batch_messages: 100_000,
            max_header_bytes: 64 << 10,
            max_pack_bytes: 1 << 30,
            max_poll_messages: 100_000,
            max_wait: Duration::from_secs(60),
        }
    }
}

/// Parse a byte size: a number with an optional `k`, `m` or `g` suffix (powers of 1024).
///
/// ```
/// assert_eq!(gitmq::serve::Limits::parse_bytes("64m"), Some(64 << 20));
/// assert_eq!(gitmq::serve::Limits::parse_bytes("512"), Some(512));
/// assert_eq!(gitmq::serve::Limits::parse_bytes("lots"), None);
/// ```
impl Limits {
    /// See the example above.
    pub fn parse_bytes(text: &str) -> Option<u64> {
        let text = text.trim().to_ascii_lowercase();
        let (number, shift) = match text.strip_suffix(['k', 'm', 'g']) {
            Some(number) => (
                number,
                match text.as_bytes().last() {
                    Some(b'k') => 10,
                    Some(b'm') => 20,
                    _ => 30,
                },
            ),
            None => (text.as_str(), 0),
        };
        number.parse::<u64>().ok()?.checked_mul(1 << shift)
    }
}
