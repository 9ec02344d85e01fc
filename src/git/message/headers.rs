//! Owns the extra commit headers gitmq writes: a message's stable id and its key/value
//! headers, and reading them back from any commit, however hostile.
//!
//! Byte layout: the lines sit after the `committer` line and before the blank line that starts
//! the payload, so the payload stays byte-exact and `git log` shows them only with
//! `--format=raw` (`git cat-file -p` shows them too):
//!
//! ```text
//! committer <name> <<email>> <seconds> <+hhmm>\n
//! gitmq-id <id>\n                    (optional; at most one is read: the first)
//! gitmq-header <key> <value>\n       (zero or more, in the order given; keys may repeat)
//! \n
//! <payload>
//! ```
//!
//! - `<id>`: 1 to [`MAX_ID_LEN`] bytes of `[A-Za-z0-9._:@/+=-]`.
//! - `<key>`: 1 to [`MAX_KEY_LEN`] bytes of `[A-Za-z0-9._-]`. Keys starting with `gitmq.`
//!   are written by gitmq itself (dead letters: [`crate::queue::consume::dlq`]).
//! - `<value>`: 0 to [`MAX_VALUE_LEN`] bytes of UTF-8 without control characters (so no NUL,
//!   CR or LF, and no continuation lines); it may be empty (the line then ends with the space
//!   after the key).
//! - At most [`MAX_HEADERS`] headers per message.
//!
//! Invariants: what [`Envelope`] encodes decodes to the same id and headers; `git fsck
//! --strict` accepts the lines (git ignores unknown headers, and none holds a NUL). Reading is
//! lenient and never fails: a line that is not a well-formed gitmq line (bad key, bad UTF-8,
//! followed by a continuation line, ...) is not a header, whatever else the commit holds.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

/// The prefix of the stable-id line.
pub const ID_PREFIX: &[u8] = b"gitmq-id ";
/// The prefix of a key/value header line.
pub const HEADER_PREFIX: &[u8] = b"gitmq-header ";
/// The longest stable id, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// The longest header key, in bytes.
pub const MAX_KEY_LEN: usize = 64;
/// The longest header value, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;
/// The most headers on one message.
pub const MAX_HEADERS: usize = 64;

/// Returned by [`Envelope::with_id()`] and [`Envelope::with_header()`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A stable id that cannot be written.
    #[error("invalid message id {id:?}: {reason}")]
    InvalidId {
        /// The refused id.
        id: String,
        /// Why.
        reason: &'static str,
    },
    /// A header key or value that cannot be written.
    #[error("invalid header {key:?}: {reason}")]
    InvalidHeader {
        /// The key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// More than [`MAX_HEADERS`] headers.
    #[error("a message holds at most {MAX_HEADERS} headers")]
    TooMany,
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._:@/+=-".contains(&b)
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._-".contains(&b)
}

/// Why `id` cannot be a stable id, if it cannot.
pub fn check_id(id: &str) -> Result<(), HeaderError> {
    let reason = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_ID_LEN {
        Some("it is longer than 128 bytes")
    } else if !id.bytes().all(is_id_byte) {
        Some("only ASCII letters, digits and . _ : @ / + = - are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(HeaderError::InvalidId {
            id: id.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn check_header(key: &str, value: &str) -> Result<(), HeaderError> {
    let reason = if key.is_empty() {
        Some("the key is empty")
    } else if key.len() > MAX_KEY_LEN {
        Some("the key is longer than 64 bytes")
    } else if !key.bytes().all(is_key_byte) {
        Some("keys hold only ASCII letters, digits and . _ -")
    } else if value.len() > MAX_VALUE_LEN {
        Some("the value is longer than 4096 bytes")
    } else if value.chars().any(char::is_control) {
        Some("the value holds a control character (NUL, line break, tab, ...)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(HeaderError::InvalidHeader {
            key: key.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A message's metadata besides its payload: an optional stable id and headers, validated
/// when added and encoded once.
///
/// ```
/// use gitmq::git::message::Envelope;
/// let envelope = Envelope::new()
///     .with_id("order-42")?
///     .with_header("content-type", "application/json")?;
/// assert_eq!(envelope.id(), Some("order-42"));
/// assert!(Envelope::new().with_header("bad key", "x").is_err());
/// assert!(Envelope::new().with_header("k", "two\nlines").is_err());
/// # Ok::<(), gitmq::git::message::HeaderError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    id: Option<String>,
    headers: Vec<(String, String)>,
    /// The `gitmq-header` lines, encoded.
    encoded: Vec<u8>,
}

/// Lifecycle
impl Envelope {
    /// No id, no headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the stable id (see the module docs for its alphabet).
    pub fn with_id(mut self, id: impl Into<String>) -> Result<Self, HeaderError> {
        let id = id.into();
        check_id(&id)?;
        self.id = Some(id);
        Ok(self)
    }

    /// Add a header (keys may repeat; order is kept).
    pub fn with_header(mut self, key: &str, value: &str) -> Result<Self, HeaderError> {
        self.push_header(key, value)?;
        Ok(self)
    }

    /// Add a header in place.
    pub fn push_header(&mut self, key: &str, value: &str) -> Result<(), HeaderError> {
        check_header(key, value)?;
        if self.headers.len() >= MAX_HEADERS {
            return Err(HeaderError::TooMany);
        }
        self.encoded.extend_from_slice(HEADER_PREFIX);
        self.encoded.extend_from_slice(key.as_bytes());
        self.encoded.push(b' ');
        self.encoded.extend_from_slice(value.as_bytes());
        self.encoded.push(b'\n');
        self.headers.push((key.to_owned(), value.to_owned()));
        Ok(())
    }

    /// Drop the stable id.
    #[must_use]
    pub fn without_id(mut self) -> Self {
        self.id = None;
        self
    }
}

/// Access
impl Envelope {
    /// The stable id, if set.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The headers, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether it holds neither id nor headers.
    pub fn is_empty(&self) -> bool {
        self.id.is_none() && self.headers.is_empty()
    }

    /// The encoded `gitmq-header` lines (without the id line).
    pub(crate) fn encoded_headers(&self) -> &[u8] {
        &self.encoded
    }
}

/// Append the id line for `id` (which passed [`check_id()`]) to `out`.
pub(crate) fn write_id_line(out: &mut Vec<u8>, id: &[u8]) {
    out.extend_from_slice(ID_PREFIX);
    out.extend_from_slice(id);
    out.push(b'\n');
}

/// The lines of `extra` (the extra header lines of a commit), each without its newline,
/// with whether a continuation line follows it.
fn lines(extra: &[u8]) -> impl Iterator<Item = (&[u8], bool)> {
    let mut rest = extra;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, after) = match memchr::memchr(b'\n', rest) {
            Some(end) => (rest.get(..end)?, rest.get(end + 1..)?),
            None => (rest, &[][..]),
        };
        rest = after;
        Some((line, rest.first() == Some(&b' ')))
    })
}

/// The stable id in `extra`: the first well-formed `gitmq-id` line.
pub(crate) fn stable_id(extra: &[u8]) -> Option<&str> {
    if extra.is_empty() {
        return None;
    }
    lines(extra).find_map(|(line, continued)| {
        let id = std::str::from_utf8(line.strip_prefix(ID_PREFIX)?).ok()?;
        (!continued && check_id(id).is_ok()).then_some(id)
    })
}

/// The well-formed `gitmq-header` lines in `extra`, as `(key, value)`, at most
/// [`MAX_HEADERS`].
pub(crate) fn headers(extra: &[u8]) -> Headers<'_> {
    Headers { extra, taken: 0 }
}

/// The headers of a message, in order. Returned by
/// [`MessageRef::headers()`](super::MessageRef::headers) and
/// [`Message::headers()`](super::Message::headers).
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    extra: &'a [u8],
    taken: usize,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        while self.taken < MAX_HEADERS && !self.extra.is_empty() {
            let (line, rest) = match memchr::memchr(b'\n', self.extra) {
                Some(end) => (self.extra.get(..end)?, self.extra.get(end + 1..)?),
                None => (self.extra, &[][..]),
            };
            self.extra = rest;
            let continued = rest.first() == Some(&b' ');
            if let Some(header) = parse_header(line).filter(|_| !continued) {
                self.taken += 1;
                return Some(header);
            }
        }
        None
    }
}

impl std::iter::FusedIterator for Headers<'_> {}

fn parse_header(line: &[u8]) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(HEADER_PREFIX)?;
    let space = memchr::memchr(b' ', rest)?;
    let key = std::str::from_utf8(rest.get(..space)?).ok()?;
    let value = std::str::from_utf8(rest.get(space + 1..)?).ok()?;
    check_header(key, value).ok()?;
    Some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_encodes_lines_that_read_back() {
        let envelope = Envelope::new()
            .with_id("a:b/c")
            .unwrap()
            .with_header("k", "v w")
            .unwrap()
            .with_header("empty", "")
            .unwrap()
            .with_header("k", "ünï")
            .unwrap();
        let mut extra = Vec::new();
        write_id_line(&mut extra, envelope.id().unwrap().as_bytes());
        extra.extend_from_slice(envelope.encoded_headers());
        assert_eq!(
            extra,
            "gitmq-id a:b/c\ngitmq-header k v w\ngitmq-header empty \ngitmq-header k ünï\n"
                .as_bytes()
        );
        assert_eq!(stable_id(&extra), Some("a:b/c"));
        let read: Vec<_> = headers(&extra).collect();
        assert_eq!(read, [("k", "v w"), ("empty", ""), ("k", "ünï")]);
        assert_eq!(envelope.headers().collect::<Vec<_>>(), read);
    }

    #[test]
    fn bad_ids_keys_and_values_are_refused() {
        for id in ["", "a b", "a\nb", &"x".repeat(129), "é"] {
            assert!(Envelope::new().with_id(id).is_err(), "{id:?}");
        }
        for (key, value) in [
            ("", "v"),
            ("a b", "v"),
            ("a=b", "v"),
            (&"k".repeat(65), "v"),
            ("k", "a\nb"),
            ("k", "a\rb"),
            ("k", "a\0b"),
            ("k", &"v".repeat(4097)),
        ] {
            assert!(Envelope::new().with_header(key, value).is_err(), "{key:?}");
        }
        let mut many = Envelope::new();
        for i in 0..MAX_HEADERS {
            many.push_header("k", &i.to_string()).unwrap();
        }
        assert_eq!(many.push_header("k", "x"), Err(HeaderError::TooMany));
    }

    #[test]
    fn malformed_lines_are_not_headers() {
        let extra =
            b"gitmq-id two words\ngitmq-id ok\ngitmq-header bad\xff v\ngitmq-header nospace\n\
gitmq-header multi line\n continued\nencoding latin1\ngitmq-header good \xc3\xa9\ngitmq-header k";
        assert_eq!(stable_id(extra), Some("ok"));
        assert_eq!(
            headers(extra).collect::<Vec<_>>(),
            [("good", "é")],
            "a last line without newline and no space is no header"
        );
        assert_eq!(stable_id(b"gitmq-id x\n more"), None, "continued id");
        assert_eq!(stable_id(b""), None);
    }

    #[test]
    fn hostile_extra_bytes_never_panic() {
        let mut rng = crate::test_support::TestRng::new(0x2545_f491_4f6c_dd1d);
        let alphabet = b"gitmq-headr id\n \xff\xc3\xa9=k";
        for _ in 0..20_000 {
            let state = rng.next_u64();
            let len = usize::try_from(state % 60).unwrap();
            let bytes: Vec<u8> = (0..len)
                .map(|i| alphabet[usize::try_from((state >> (i % 50)) % 19).unwrap()])
                .collect();
            let _ = stable_id(&bytes);
            assert!(headers(&bytes).count() <= MAX_HEADERS);
        }
        let huge = b"gitmq-header k v\n".repeat(1000);
        assert_eq!(headers(&huge).count(), MAX_HEADERS, "bounded");
    }
}
