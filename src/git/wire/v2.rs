//! Owns git's wire protocol version 2 as gitmq speaks it to `git-upload-pack`: the capability
//! advertisement, the `ls-refs` command and the `fetch` command (request and the response's
//! sections up to the packfile). Sans-IO: requests are built as bytes, responses parsed from
//! bytes or from a [`pktline::Reader`] over any [`Read`].
//!
//! Message shapes (git's
//! [`Documentation/gitprotocol-v2.txt`](https://github.com/git/git/blob/v2.47.0/Documentation/gitprotocol-v2.txt)):
//!
//! ```text
//! advertisement  ["# service=git-upload-pack" flush]  "version 2"  capability*  flush
//! request        "command=<name>"  capability*  delim  argument*  flush
//! ls-refs reply  ("<hex-id> <refname>" (" symref-target:<t>" | " peeled:<hex-id>")*)*  flush
//! fetch reply    [section delim]*  section  flush     where a section is a header line
//!                ("acknowledgments", "shallow-info", "wanted-refs", "packfile-uris",
//!                "packfile") and its lines; "packfile" is followed by side-band-64k packets
//! ```
//!
//! Invariants: a `thin-pack` argument is sent only when the caller completes thin packs
//! (`index_pack::index_thin_pack`), so every pack that lands is self-contained; it always
//! sends `ofs-delta`; ids are SHA-1 (a server announcing
//! another `object-format` is refused); an `ERR <message>` line anywhere is surfaced verbatim
//! as [`Error::Remote`].

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::io::Read;

use gix_hash::ObjectId;

use super::pktline::{self, PacketLine, Stream};
use crate::git::hash::OBJECT_HASH;

/// The version line that opens a v2 advertisement.
pub const VERSION_LINE: &[u8] = b"version 2";
/// The `Git-Protocol` header value asking for version 2.
pub const PROTOCOL_HEADER_VALUE: &str = "version=2";
/// The `object-format` gitmq speaks.
pub const OBJECT_FORMAT: &str = "sha1";

/// Returned by the parsers of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Framing failed.
    #[error(transparent)]
    PktLine(#[from] pktline::Error),
    /// The server sent `ERR <message>`.
    #[error("the remote reported an error: {message}")]
    Remote {
        /// The message, verbatim (lossily decoded).
        message: String,
    },
    /// A line does not follow the protocol.
    #[error("protocol error: {reason}: {line:?}")]
    Malformed {
        /// What was expected.
        reason: &'static str,
        /// The offending line (lossily decoded, cut to 200 bytes).
        line: String,
    },
    /// The server does not offer a command gitmq needs.
    #[error("the remote does not offer the protocol v2 command {command:?}")]
    MissingCommand {
        /// The command.
        command: &'static str,
    },
    /// A v0 server lacks a capability gitmq needs.
    #[error("the remote lacks the capability {capability:?}")]
    MissingCapability {
        /// The capability.
        capability: &'static str,
    },
    /// The server uses another hash.
    #[error("the remote uses object format {format:?}; gitmq supports only sha1")]
    ObjectFormat {
        /// What the server announced.
        format: String,
    },
}

impl Error {
    /// Whether retrying the request may succeed.
    pub fn is_spurious(&self) -> bool {
        match self {
            Error::PktLine(err) => err.is_spurious(),
            _ => false,
        }
    }
}

pub(super) fn malformed(reason: &'static str, line: &[u8]) -> Error {
    let line = line.get(..200).unwrap_or(line);
    Error::Malformed {
        reason,
        line: String::from_utf8_lossy(line).into_owned(),
    }
}

/// A data line's text (trailing newline removed), checking for `ERR`.
pub(super) fn text(line: PacketLine<'_>) -> Result<Option<&[u8]>, Error> {
    let Some(text) = line.as_text() else {
        return Ok(None);
    };
    if let Some(message) = text.strip_prefix(b"ERR ") {
        return Err(Error::Remote {
            message: String::from_utf8_lossy(message).into_owned(),
        });
    }
    Ok(Some(text))
}

/// Split `data` into packets, each with its offset; an error if it ends inside one.
pub(super) fn packets(data: &[u8]) -> impl Iterator<Item = Result<(usize, PacketLine<'_>), Error>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = data.get(at..).unwrap_or_default();
        if rest.is_empty() {
            return None;
        }
        Some(match pktline::decode(rest) {
            Ok(Stream::Complete { line, consumed }) => {
                let start = at;
                at += consumed;
                Ok((start, line))
            }
            Ok(Stream::Incomplete { needed }) => {
                at = data.len();
                Err(pktline::Error::Truncated { needed }.into())
            }
            Err(err) => {
                at = data.len();
                Err(err.into())
            }
        })
    })
}

/// The capabilities a v2 server advertised: `key` or `key=value` each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    entries: Vec<(String, Option<String>)>,
}

/// Access
impl Capabilities {
    /// Whether `key` was advertised.
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// The value of `key=value`, if advertised with one.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether command `command` advertises `feature` (`fetch=shallow wait-for-done`).
    pub fn command_has(&self, command: &str, feature: &str) -> bool {
        self.value(command)
            .is_some_and(|v| v.split(' ').any(|f| f == feature))
    }

    /// The server's agent string, if any.
    pub fn agent(&self) -> Option<&str> {
        self.value("agent")
    }

    /// Refuse a server whose object format is not SHA-1.
    fn check_object_format(&self) -> Result<(), Error> {
        match self.value("object-format") {
            Some(format) if format != OBJECT_FORMAT => Err(Error::ObjectFormat {
                format: format.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// What `info/refs?service=git-upload-pack` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advertisement {
    /// A protocol v2 capability advertisement.
    V2(Capabilities),
    /// A v0/v1 ref advertisement (the server ignored `Git-Protocol: version=2`): its data
    /// packets, unparsed, for [`super::v0`].
    V0(Vec<u8>),
}

/// Parse the body of `info/refs?service=git-upload-pack`.
pub fn parse_advertisement(body: &[u8]) -> Result<Advertisement, Error> {
    let mut lines = packets(body);
    let mut first = lines.next().transpose()?;
    // Smart HTTP servers may open with "# service=git-upload-pack" and a flush (always for
    // v0, some servers for v2 too).
    if let Some((_, line)) = first {
        if text(line)?.is_some_and(|t| t.starts_with(b"# service=")) {
            match lines.next().transpose()? {
                Some((_, PacketLine::Flush)) => {}
                _ => return Err(malformed("expected a flush after the service line", b"")),
            }
            first = lines.next().transpose()?;
        }
    }
    let Some((start, first)) = first else {
        return Err(malformed("empty advertisement", b""));
    };
    if text(first)? != Some(VERSION_LINE) {
        return Ok(Advertisement::V0(
            body.get(start..).unwrap_or_default().to_vec(),
        ));
    }
    let mut caps = Capabilities::default();
    for line in lines {
        let (_, line) = line?;
        let Some(entry) = text(line)? else {
            return match line {
                PacketLine::Flush => {
                    caps.check_object_format()?;
                    Ok(Advertisement::V2(caps))
                }
                _ => Err(malformed("unexpected special packet in capabilities", b"")),
            };
        };
        let entry =
            std::str::from_utf8(entry).map_err(|_| malformed("capability is not UTF-8", entry))?;
        let (key, value) = match entry.split_once('=') {
            Some((key, value)) => (key, Some(value.to_owned())),
            None => (entry, None),
        };
        caps.entries.push((key.to_owned(), value));
    }
    Err(pktline::Error::Truncated {
        needed: pktline::LEN_PREFIX_LEN,
    }
    .into())
}

/// The command header shared by every request: command, agent, object format, delimiter.
fn request_header(out: &mut Vec<u8>, command: &str, caps: &Capabilities, agent: &str) {
    pktline::encode_text(out, &format!("command={command}"));
    if caps.has("agent") {
        pktline::encode_text(out, &format!("agent={agent}"));
    }
    if caps.has("object-format") {
        pktline::encode_text(out, &format!("object-format={OBJECT_FORMAT}"));
    }
    out.extend_from_slice(pktline::DELIM_PKT);
}

/// An `ls-refs` request listing the refs under `prefixes` (each should end in `/`).
pub fn ls_refs_request(
    caps: &Capabilities,
    agent: &str,
    prefixes: &[&str],
) -> Result<Vec<u8>, Error> {
    if !caps.has("ls-refs") {
        return Err(Error::MissingCommand { command: "ls-refs" });
    }
    let mut out = Vec::new();
    request_header(&mut out, "ls-refs", caps, agent);
    pktline::encode_text(&mut out, "symrefs");
    for prefix in prefixes {
        pktline::encode_text(&mut out, &format!("ref-prefix {prefix}"));
    }
    out.extend_from_slice(pktline::FLUSH_PKT);
    Ok(out)
}

/// A ref a remote advertised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// The full ref name (not yet validated: check it before using it as a path).
    pub name: String,
    /// The id it points to.
    pub id: ObjectId,
    /// For a symbolic ref, its target.
    pub symref_target: Option<String>,
}

/// Parse an `ls-refs` response. `unborn` refs are skipped.
pub fn parse_ls_refs(body: &[u8]) -> Result<Vec<RemoteRef>, Error> {
    let mut refs = Vec::new();
    for line in packets(body) {
        let (_, line) = line?;
        let Some(entry) = text(line)? else {
            return match line {
                PacketLine::Flush | PacketLine::ResponseEnd => Ok(refs),
                _ => Err(malformed("unexpected special packet in ls-refs", b"")),
            };
        };
        if entry.starts_with(b"unborn ") {
            continue;
        }
        let mut fields = entry.split(|&b| b == b' ');
        let id = parse_id(fields.next().unwrap_or_default(), entry)?;
        let name = fields
            .next()
            .ok_or_else(|| malformed("ref without name", entry))?;
        let name = std::str::from_utf8(name)
            .map_err(|_| malformed("ref name is not UTF-8", entry))?
            .to_owned();
        let mut symref_target = None;
        for attribute in fields {
            if let Some(target) = attribute.strip_prefix(b"symref-target:") {
                symref_target = Some(String::from_utf8_lossy(target).into_owned());
            }
        }
        refs.push(RemoteRef {
            name,
            id,
            symref_target,
        });
    }
    Err(pktline::Error::Truncated {
        needed: pktline::LEN_PREFIX_LEN,
    }
    .into())
}

/// Parse a hex object id; `line` is for the error.
pub fn parse_id(hex: &[u8], line: &[u8]) -> Result<ObjectId, Error> {
    if hex.len() != OBJECT_HASH.len_in_hex() {
        return Err(malformed("not a SHA-1 object id", line));
    }
    ObjectId::from_hex(hex).map_err(|_| malformed("not a SHA-1 object id", line))
}

/// What a `fetch` request asks for.
#[derive(Debug, Clone, Default)]
pub struct FetchRequest<'a> {
    /// Objects the client wants (with everything they reach).
    pub wants: &'a [ObjectId],
    /// Objects the client has (with everything they reach).
    pub haves: &'a [ObjectId],
    /// Ask the server not to send progress text.
    pub no_progress: bool,
    /// Accept a thin pack (deltas against objects the client has): only for a caller that
    /// completes it on arrival.
    pub thin_pack: bool,
}

/// A `fetch` request with `done`: one round, the server answers with the packfile at once.
pub fn fetch_request(
    caps: &Capabilities,
    agent: &str,
    request: &FetchRequest<'_>,
) -> Result<Vec<u8>, Error> {
    if !caps.has("fetch") {
        return Err(Error::MissingCommand { command: "fetch" });
    }
    let mut out = Vec::with_capacity(64 * (request.wants.len() + request.haves.len()) + 256);
    request_header(&mut out, "fetch", caps, agent);
    if request.thin_pack {
        pktline::encode_text(&mut out, "thin-pack");
    }
    pktline::encode_text(&mut out, "ofs-delta");
    if request.no_progress {
        pktline::encode_text(&mut out, "no-progress");
    }
    for id in request.wants {
        pktline::encode_text(&mut out, &format!("want {id}"));
    }
    for id in request.haves {
        pktline::encode_text(&mut out, &format!("have {id}"));
    }
    pktline::encode_text(&mut out, "done");
    out.extend_from_slice(pktline::FLUSH_PKT);
    Ok(out)
}

/// What came before the packfile in a `fetch` response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchResponse {
    /// Ids the server acknowledged as common (only without `done`).
    pub acks: Vec<ObjectId>,
    /// Whether a packfile section follows (the reader is positioned at its first packet).
    pub has_pack: bool,
}

/// Read a `fetch` response up to its packfile section, which the caller then reads as a
/// side-band stream from `lines`.
pub fn read_fetch_response<R: Read>(
    lines: &mut pktline::Reader<R>,
) -> Result<FetchResponse, Error> {
    let mut response = FetchResponse::default();
    loop {
        let header = lines.expect_line()?;
        let Some(section) = text(header)? else {
            return match header {
                PacketLine::Flush | PacketLine::ResponseEnd => Ok(response),
                _ => Err(malformed("expected a section header", b"")),
            };
        };
        match section {
            b"packfile" => {
                response.has_pack = true;
                return Ok(response);
            }
            b"acknowledgments" | b"shallow-info" | b"wanted-refs" | b"packfile-uris" => {
                let is_acks = section == b"acknowledgments";
                loop {
                    let line = lines.expect_line()?;
                    match text(line)? {
                        Some(entry) if is_acks => {
                            if let Some(hex) = entry.strip_prefix(b"ACK ") {
                                response.acks.push(parse_id(hex, entry)?);
                            }
                        }
                        Some(_) => {}
                        None if line == PacketLine::Delim => break,
                        None => return Ok(response),
                    }
                }
            }
            other => return Err(malformed("unknown fetch response section", other)),
        }
    }
}

#[cfg(test)]
mod tests;
