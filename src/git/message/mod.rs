//! Owns the message format: a message is a git commit whose tree is the empty tree.
//!
//! Byte layout of the commit body gitmq writes (git's own commit format):
//!
//! ```text
//! tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n
//! parent <40 hex>\n                       (absent on a topic's first message)
//! author <name> <<email>> <seconds> <+hhmm>\n
//! committer <name> <<email>> <seconds> <+hhmm>\n
//! gitmq-id <id>\n                        (optional: the stable id, see [`headers`])
//! gitmq-header <key> <value>\n           (optional, repeatable)
//! \n
//! <payload, byte for byte: no newline added or stripped>
//! ```
//!
//! A message without id or headers has no extra lines: [`CommitEncoder::encode()`] is the
//! hot path and writes exactly git's own layout; [`CommitEncoder::encode_with()`] adds them.
//!
//! Invariants: the payload after the blank line is exactly the producer's bytes (any bytes but
//! NUL, which git's fsck refuses in a commit; see [`check_payload()`]), so
//! `decode(encode(m)) == m`; identities never contain `<`, `>`, NUL or a newline (checked in
//! [`Identity::new()`]), so the headers always parse. Decoding goes through `gix-object`, and
//! accepts any commit (a message written by `git commit` with a non-empty tree reads fine).

pub mod decode;
mod encode;
pub mod headers;
pub mod parent;
pub mod restack;

use gix_date::Time;
use gix_hash::ObjectId;

pub use encode::{encode, CommitEncoder};
pub use headers::{Envelope, HeaderError, Headers};

use crate::git::hash::OBJECT_HASH;

/// The hex id of the empty tree every message points to.
pub const EMPTY_TREE_HEX: &[u8; 40] = b"4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// Returned by [`Identity::new()`] and [`MessageRef::from_bytes()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name or email that cannot be written into a commit header.
    #[error("invalid producer identity {value:?}: {reason}")]
    InvalidIdentity {
        /// The refused name or email.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A payload holding a NUL byte: git's fsck refuses such commits (`nulInCommit`), and so
    /// do hosts that check pushes. Encode binary payloads (e.g. base64) first.
    #[error("payload holds a NUL byte at offset {offset}; git refuses NUL in commit messages, so encode binary payloads (e.g. base64)")]
    NulInPayload {
        /// Where the first NUL is.
        offset: usize,
    },
    /// A stable id or header that cannot be written.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// An object that should be a commit does not parse as one.
    #[error("object {id} is not a valid commit: {reason}")]
    Corrupt {
        /// The object's id.
        id: ObjectId,
        /// What the parser said.
        reason: String,
    },
}

/// Who produced a message: the commit's author and committer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    name: String,
    email: String,
}

/// Lifecycle
impl Identity {
    /// An identity with `name` and `email`; both must be free of `<`, `>`, NUL and newlines,
    /// without surrounding spaces, and the name must not be empty.
    ///
    /// ```
    /// use gitmq::Identity;
    /// assert!(Identity::new("orders-service", "orders@example.com").is_ok());
    /// assert!(Identity::new("evil\nauthor x", "e").is_err());
    /// ```
    pub fn new(name: &str, email: &str) -> Result<Self, Error> {
        check_identity_part(name, false)?;
        check_identity_part(email, true)?;
        Ok(Self {
            name: name.to_owned(),
            email: email.to_owned(),
        })
    }

    /// `gitmq@<hostname>`-style default: `$GITMQ_AUTHOR_NAME`/`$GITMQ_AUTHOR_EMAIL` when set
    /// and valid, else name `gitmq` and email `gitmq@localhost`.
    pub fn from_env() -> Self {
        let name = std::env::var("GITMQ_AUTHOR_NAME").unwrap_or_else(|_| "gitmq".into());
        let email =
            std::env::var("GITMQ_AUTHOR_EMAIL").unwrap_or_else(|_| "gitmq@localhost".into());
        Self::new(&name, &email).unwrap_or_else(|_| Self::default())
    }
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            name: "gitmq".into(),
            email: "gitmq@localhost".into(),
        }
    }
}

/// Access
impl Identity {
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The email.
    pub fn email(&self) -> &str {
        &self.email
    }
}

fn check_identity_part(value: &str, empty_ok: bool) -> Result<(), Error> {
    let reason = if value.is_empty() && !empty_ok {
        Some("it is empty")
    } else if value
        .bytes()
        .any(|b| matches!(b, b'<' | b'>' | b'\n' | b'\r' | b'\0'))
    {
        Some("it contains '<', '>', NUL or a line break")
    } else if value.trim() != value {
        Some("it starts or ends with whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidIdentity {
            value: value.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Check that `payload` can be a commit message: any bytes but NUL.
pub fn check_payload(payload: &[u8]) -> Result<(), Error> {
    match memchr::memchr(0, payload) {
        Some(offset) => Err(Error::NulInPayload { offset }),
        None => Ok(()),
    }
}

/// A message borrowed from a decoded commit object, checked once in [`MessageRef::from_bytes()`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef<'a> {
    /// The message's address: the commit id.
    pub id: ObjectId,
    /// The previous message on the first-parent chain, if any.
    pub parent: Option<ObjectId>,
    /// Further parents (a merge commit from a joined topic).
    pub other_parents: Vec<ObjectId>,
    /// The author's name.
    pub author: &'a [u8],
    /// The author's email.
    pub email: &'a [u8],
    /// The author date.
    pub time: Time,
    /// The extra header lines after the committer line (each with its newline), raw:
    /// gitmq's `gitmq-id`/`gitmq-header` lines and any other (`encoding`, `gpgsig`, ...).
    /// Read them with [`stable_id()`](Self::stable_id) and [`headers()`](Self::headers).
    pub extra_headers: &'a [u8],
    /// The payload, byte for byte.
    pub payload: &'a [u8],
}

/// Lifecycle
impl<'a> MessageRef<'a> {
    /// Decode the commit body `data` whose id is `id`.
    pub fn from_bytes(id: ObjectId, data: &'a [u8]) -> Result<Self, Error> {
        let corrupt = |reason: String| Error::Corrupt { id, reason };
        let commit = gix_object::CommitRef::from_bytes(data, OBJECT_HASH)
            .map_err(|err| corrupt(err.to_string()))?;
        let author = commit.author().map_err(|err| corrupt(err.to_string()))?;
        let time = author
            .time()
            .map_err(|err| corrupt(format!("bad author date: {err}")))?;
        let mut parents = commit.parents();
        let parent = parents.next();
        let other_parents = parents.collect();
        let header_len = data.len().saturating_sub(commit.message.len());
        Ok(Self {
            id,
            parent,
            other_parents,
            author: author.name,
            email: author.email,
            time,
            extra_headers: extra_after_committer(data.get(..header_len).unwrap_or_default()),
            payload: commit.message,
        })
    }

    /// The stable id (the `gitmq-id` header), if the message has one.
    pub fn stable_id(&self) -> Option<&'a str> {
        headers::stable_id(self.extra_headers)
    }

    /// The `gitmq-header` key/value pairs, in order.
    pub fn headers(&self) -> Headers<'a> {
        headers::headers(self.extra_headers)
    }

    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&'a str> {
        self.headers().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The time in RFC 3339, e.g. `2026-11-27T15:23:39+01:00`.
    pub fn time_rfc3339(&self) -> String {
        self.time
            .format_or_unix(gix_date::time::format::ISO8601_STRICT)
    }

    /// Copy into an owned [`Message`].
    pub fn into_owned(self) -> Message {
        Message {
            id: self.id,
            parent: self.parent,
            author: String::from_utf8_lossy(self.author).into_owned(),
            email: String::from_utf8_lossy(self.email).into_owned(),
            time: self.time,
            extra_headers: self.extra_headers.to_vec(),
            payload: self.payload.to_vec(),
        }
    }
}

/// The header lines after the first `committer` line of `header` (a commit's header block,
/// with the blank line that ends it), without that blank line; empty if there is none.
fn extra_after_committer(header: &[u8]) -> &[u8] {
    let header = header.strip_suffix(b"\n").unwrap_or(header);
    let mut at = 0;
    while let Some(rest) = header.get(at..) {
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |e| e + 1);
        if rest.starts_with(b"committer ") {
            return rest.get(end..).unwrap_or_default();
        }
        if end == 0 {
            break;
        }
        at += end;
    }
    &[]
}

/// An owned message, as a consumer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message's address: the commit id.
    pub id: ObjectId,
    /// The previous message on the topic, if any.
    pub parent: Option<ObjectId>,
    /// The producer's name (the commit author).
    pub author: String,
    /// The producer's email.
    pub email: String,
    /// When it was produced (the author date, with the producer's UTC offset).
    pub time: Time,
    /// The extra header lines, raw (see [`MessageRef::extra_headers`]); empty for a message
    /// without id or headers.
    pub extra_headers: Vec<u8>,
    /// The payload, byte for byte.
    pub payload: Vec<u8>,
}

/// Access
impl Message {
    /// Borrow it as a [`MessageRef`] (merge parents beyond the first are not kept in a
    /// `Message`, so `other_parents` is empty).
    pub fn as_message_ref(&self) -> MessageRef<'_> {
        MessageRef {
            id: self.id,
            parent: self.parent,
            other_parents: Vec::new(),
            author: self.author.as_bytes(),
            email: self.email.as_bytes(),
            time: self.time,
            extra_headers: &self.extra_headers,
            payload: &self.payload,
        }
    }

    /// The stable id (the `gitmq-id` header), if the message has one.
    pub fn stable_id(&self) -> Option<&str> {
        headers::stable_id(&self.extra_headers)
    }

    /// The `gitmq-header` key/value pairs, in order.
    pub fn headers(&self) -> Headers<'_> {
        headers::headers(&self.extra_headers)
    }

    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The time in RFC 3339, e.g. `2026-11-27T15:23:39+01:00`.
    pub fn time_rfc3339(&self) -> String {
        self.time
            .format_or_unix(gix_date::time::format::ISO8601_STRICT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::hash::object_id;

    fn roundtrip(parent: Option<ObjectId>, payload: &[u8], time: Time) {
        let author = Identity::new("producer one", "p1@example.com").unwrap();
        let mut body = Vec::new();
        encode(&mut body, parent.as_deref(), &author, time, payload);
        let id = object_id(gix_object::Kind::Commit, &body);
        let decoded = MessageRef::from_bytes(id, &body).expect("what we encode decodes");
        assert_eq!(decoded.payload, payload, "payload is byte-exact");
        assert_eq!(decoded.parent, parent);
        assert_eq!(decoded.author, b"producer one");
        assert_eq!(decoded.email, b"p1@example.com");
        assert_eq!(decoded.time, time, "time and offset survive");
    }

    #[test]
    fn payloads_round_trip_byte_for_byte() {
        let parent = Some(ObjectId::empty_blob(OBJECT_HASH));
        let payloads: [&[u8]; 8] = [
            b"",
            b"{\"a\":1}",
            b"no newline",
            b"trailing newline\n",
            b"\n\nleading blank lines\n\n",
            b"a: 1\nb:\n  - x\n",
            b"\xff\xfe not utf-8 \x80",
            b"tree 0000\nparent looks like a header\n",
        ];
        for payload in payloads {
            roundtrip(None, payload, Time::new(1_700_000_000, 3600));
            roundtrip(
                parent,
                payload,
                Time::new(1_700_000_000, -(5 * 3600 + 30 * 60)),
            );
        }
    }

    #[test]
    fn random_payloads_and_times_round_trip() {
        let mut rng = crate::test_support::TestRng::new(0x9e37_79b9_7f4a_7c15_u64);
        let mut next = move || rng.next_u64();
        for _ in 0..500 {
            let len = usize::try_from(next() % 300).unwrap();
            let payload: Vec<u8> = (0..len)
                .map(|_| u8::try_from(next() % 256).unwrap())
                .collect();
            let seconds = i64::try_from(next() % 4_000_000_000).unwrap();
            let offset = i32::try_from(next() % (14 * 60)).unwrap() * 60 - 7 * 3600;
            roundtrip(None, &payload, Time::new(seconds, offset));
        }
    }

    #[test]
    fn encoded_commits_hash_like_git() {
        // printf '' | GIT_AUTHOR_DATE='1700000000 +0000' GIT_COMMITTER_DATE='1700000000 +0000' \
        //   GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@b GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@b \
        //   git commit-tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904 -m hi   (message "hi\n")
        let mut body = Vec::new();
        encode(
            &mut body,
            None,
            &Identity::new("a", "a@b").unwrap(),
            Time::new(1_700_000_000, 0),
            b"hi\n",
        );
        assert_eq!(
            body,
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor a <a@b> 1700000000 +0000\ncommitter a <a@b> 1700000000 +0000\n\nhi\n"
        );
    }

    #[test]
    fn ids_and_headers_round_trip_through_gix_and_keep_the_payload_exact() {
        let encoder = CommitEncoder::new(&Identity::new("a", "a@b").unwrap(), 0);
        let envelope = Envelope::new()
            .with_id("id-1")
            .unwrap()
            .with_header("trace", "abc 123")
            .unwrap()
            .with_header("trace", "")
            .unwrap();
        let mut body = Vec::new();
        let payload = b"\ngitmq-id fake\n\nlooks like headers\n";
        encoder.encode_with(&mut body, None, 1_700_000_000, &envelope, payload);
        assert_eq!(
            body,
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor a <a@b> 1700000000 +0000\ncommitter a <a@b> 1700000000 +0000\ngitmq-id id-1\ngitmq-header trace abc 123\ngitmq-header trace \n\n\ngitmq-id fake\n\nlooks like headers\n"
        );
        let id = object_id(gix_object::Kind::Commit, &body);
        let decoded = MessageRef::from_bytes(id, &body).unwrap();
        assert_eq!(decoded.payload, payload, "payload byte-exact");
        assert_eq!(decoded.stable_id(), Some("id-1"));
        assert_eq!(decoded.header("trace"), Some("abc 123"));
        assert_eq!(decoded.headers().count(), 2);
        let owned = decoded.clone().into_owned();
        assert_eq!(owned.stable_id(), Some("id-1"));
        assert_eq!(
            owned.as_message_ref(),
            MessageRef {
                other_parents: Vec::new(),
                ..decoded
            }
        );
        // Without extra lines, encode_with writes exactly what encode writes.
        let (mut plain, mut with) = (Vec::new(), Vec::new());
        encoder.encode(&mut plain, None, 5, b"x");
        encoder.encode_with(&mut with, None, 5, &Envelope::new(), b"x");
        assert_eq!(plain, with);
    }

    #[test]
    fn extra_headers_are_found_after_the_committer_line_only() {
        assert_eq!(
            extra_after_committer(b"tree x\ncommitter c\ngitmq-id a\n\n"),
            b"gitmq-id a\n"
        );
        assert_eq!(extra_after_committer(b"tree x\ncommitter c\n\n"), b"");
        assert_eq!(extra_after_committer(b"tree x\n\n"), b"");
        assert_eq!(extra_after_committer(b""), b"");
        assert_eq!(extra_after_committer(b"committer"), b"");
    }

    #[test]
    fn payloads_with_nul_are_refused_and_others_accepted() {
        assert!(matches!(
            check_payload(b"ab\0c"),
            Err(Error::NulInPayload { offset: 2 })
        ));
        assert!(check_payload(b"\x01\xff any other byte").is_ok());
    }

    #[test]
    fn garbage_is_a_clear_error_not_a_panic() {
        let id = ObjectId::null(OBJECT_HASH);
        for data in [
            &b""[..],
            b"tree x\n",
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n",
        ] {
            assert!(MessageRef::from_bytes(id, data).is_err());
        }
    }

    #[test]
    fn identities_with_header_breaking_bytes_are_refused() {
        for (name, email) in [
            ("", "e"),
            ("a<b", "e"),
            ("a", "e>"),
            ("a\nb", "e"),
            (" a", "e"),
        ] {
            assert!(Identity::new(name, email).is_err(), "{name:?} {email:?}");
        }
    }
}
