//! Owns writing message commits: [`CommitEncoder`] (the append hot path, by hand) and
//! [`encode()`]. Layout in the [parent module](super).
//!
//! Invariants: [`CommitEncoder::encode()`] writes git's own layout with no extra header line;
//! the extra lines [`CommitEncoder::encode_with()`] adds come from a validated [`Envelope`]
//! (or a generated id), so `git fsck --strict` accepts every commit written here.

use gix_date::Time;

use super::{headers, Envelope, Identity, EMPTY_TREE_HEX};
use crate::git::hash::decimal;

/// Append the commit body of a message to `out` (which is not cleared). The payload must have
/// passed [`check_payload()`](super::check_payload).
///
/// `parent` is the topic's previous head, `None` for its first message.
pub fn encode(
    out: &mut Vec<u8>,
    parent: Option<&gix_hash::oid>,
    author: &Identity,
    time: Time,
    payload: &[u8],
) {
    CommitEncoder::new(author, time.offset).encode(out, parent, time.seconds, payload);
}

/// Encodes many messages of one producer: the identity and UTC offset are formatted once.
#[derive(Debug, Clone)]
pub struct CommitEncoder {
    /// `"<name> <<email>> "`.
    signature_prefix: Vec<u8>,
    /// `" +hhmm"`.
    offset: [u8; 6],
}

impl CommitEncoder {
    /// An encoder for messages by `author` in the UTC offset `offset_seconds`.
    pub fn new(author: &Identity, offset_seconds: i32) -> Self {
        let mut signature_prefix = Vec::with_capacity(author.name.len() + author.email.len() + 4);
        signature_prefix.extend_from_slice(author.name.as_bytes());
        signature_prefix.extend_from_slice(b" <");
        signature_prefix.extend_from_slice(author.email.as_bytes());
        signature_prefix.extend_from_slice(b"> ");
        let sign = if offset_seconds < 0 { b'-' } else { b'+' };
        let offset = offset_seconds.unsigned_abs();
        let (hours, minutes) = ((offset / 3600) % 100, (offset / 60) % 60);
        let digit = |d: u32| b'0' + u8::try_from(d).expect("a single decimal digit");
        Self {
            signature_prefix,
            offset: [
                b' ',
                sign,
                digit(hours / 10),
                digit(hours % 10),
                digit(minutes / 10),
                digit(minutes % 10),
            ],
        }
    }

    /// Append the body of the message with `parent`, author date `seconds` and `payload`
    /// (no extra header lines: the hot path).
    pub fn encode(
        &self,
        out: &mut Vec<u8>,
        parent: Option<&gix_hash::oid>,
        seconds: i64,
        payload: &[u8],
    ) {
        self.encode_parts(out, parent, seconds, &[], payload);
    }

    /// Like [`encode()`](Self::encode), with `envelope`'s stable id line and header lines
    /// after the committer line.
    ///
    /// ```
    /// use gitmq::{git::message::CommitEncoder, Envelope, Identity};
    /// let encoder = CommitEncoder::new(&Identity::default(), 0);
    /// let envelope = Envelope::new().with_id("a-1")?.with_header("k", "v")?;
    /// let mut body = Vec::new();
    /// encoder.encode_with(&mut body, None, 1_700_000_000, &envelope, b"payload");
    /// assert!(body.ends_with(b"+0000\ngitmq-id a-1\ngitmq-header k v\n\npayload"));
    /// # Ok::<(), gitmq::git::message::HeaderError>(())
    /// ```
    pub fn encode_with(
        &self,
        out: &mut Vec<u8>,
        parent: Option<&gix_hash::oid>,
        seconds: i64,
        envelope: &Envelope,
        payload: &[u8],
    ) {
        self.trusted_encode_with_id(out, parent, seconds, envelope.id(), envelope, payload);
    }

    /// [`encode_with()`](Self::encode_with) with the stable id `id` instead of `envelope`'s
    /// own, unchecked: `id` must pass [`headers::check_id()`] (generated ids do).
    pub(crate) fn trusted_encode_with_id(
        &self,
        out: &mut Vec<u8>,
        parent: Option<&gix_hash::oid>,
        seconds: i64,
        id: Option<&str>,
        envelope: &Envelope,
        payload: &[u8],
    ) {
        debug_assert!(id.is_none_or(|id| headers::check_id(id).is_ok()));
        let mut id_line = Vec::new();
        if let Some(id) = id {
            headers::write_id_line(&mut id_line, id.as_bytes());
        }
        self.encode_parts(
            out,
            parent,
            seconds,
            &[&id_line, envelope.encoded_headers()],
            payload,
        );
    }

    /// The commit body with the `extra` header lines (each ending in a newline) after the
    /// committer line.
    #[allow(
        clippy::inline_always,
        reason = "inlined into `encode`, the empty `extra` folds away: the hot path stays as it was"
    )]
    #[inline(always)]
    fn encode_parts(
        &self,
        out: &mut Vec<u8>,
        parent: Option<&gix_hash::oid>,
        seconds: i64,
        extra: &[&[u8]],
        payload: &[u8],
    ) {
        let mut digits = [0u8; 20];
        let seconds_digits = decimal(seconds.unsigned_abs(), &mut digits);
        let signature_len = self.signature_prefix.len()
            + usize::from(seconds < 0)
            + seconds_digits.len()
            + self.offset.len();
        let extra_len: usize = extra.iter().map(|lines| lines.len()).sum();
        out.reserve(encoded_len(parent.is_some(), signature_len, payload.len()) + extra_len);
        out.extend_from_slice(b"tree ");
        out.extend_from_slice(EMPTY_TREE_HEX);
        out.push(b'\n');
        if let Some(parent) = parent {
            let mut hex = [0u8; 40];
            out.extend_from_slice(b"parent ");
            out.extend_from_slice(parent.hex_to_buf(&mut hex).as_bytes());
            out.push(b'\n');
        }
        for header in [&b"author "[..], b"committer "] {
            out.extend_from_slice(header);
            out.extend_from_slice(&self.signature_prefix);
            if seconds < 0 {
                out.push(b'-');
            }
            out.extend_from_slice(seconds_digits);
            out.extend_from_slice(&self.offset);
            out.push(b'\n');
        }
        for lines in extra {
            out.extend_from_slice(lines);
        }
        out.push(b'\n');
        out.extend_from_slice(payload);
    }
}

fn encoded_len(has_parent: bool, signature_len: usize, payload_len: usize) -> usize {
    let tree = 5 + 40 + 1;
    let parent = if has_parent { 7 + 40 + 1 } else { 0 };
    tree + parent + (7 + signature_len + 1) + (10 + signature_len + 1) + 1 + payload_len
}
