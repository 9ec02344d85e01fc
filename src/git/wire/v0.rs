//! Owns the fallback to git's original protocol (v0) for `git-upload-pack`, used when a
//! server ignores `Git-Protocol: version=2`: the ref advertisement, a one-round fetch
//! request, and the single `ACK`/`NAK` line before the pack. Sans-IO like [`super::v2`],
//! whose [`Error`] it shares.
//!
//! Message shapes (git's
//! [`Documentation/gitprotocol-pack.txt`](https://github.com/git/git/blob/v2.47.0/Documentation/gitprotocol-pack.txt)
//! and `gitprotocol-http.txt`, stateless RPC):
//!
//! ```text
//! advertisement  "<hex-id> <refname>\0<capability> <capability>..."  ("<hex-id> <refname>")*  flush
//!                (an empty repository: "<zero-id> capabilities^{}\0<capabilities>")
//! request        "want <id> <capabilities>"  ("want <id>")*  flush  ("have <id>")*  "done"
//! response       "NAK" | "ACK <id>"   then side-band-64k packets of the pack, then flush
//! ```
//!
//! Invariants: gitmq asks for `side-band-64k` (refusing servers without it, so errors arrive
//! on band 3 rather than as raw bytes in the pack) and `ofs-delta` when offered; `thin-pack`
//! when offered and the caller completes thin packs; never `multi_ack`, so with `done` the
//! server answers exactly one `ACK`/`NAK` line before the pack.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::io::Read;

use gix_hash::ObjectId;

pub use super::v2::Error;
use super::{
    pktline::{self, PacketLine},
    v2::{malformed, packets, parse_id, text, RemoteRef},
};

/// A v0 ref advertisement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertisement {
    /// Every ref advertised (peeled tag lines `^{}` are skipped).
    pub refs: Vec<RemoteRef>,
    /// The capabilities after the first ref.
    pub capabilities: Vec<String>,
}

impl Advertisement {
    /// Whether the server offers `capability` (a bare name or `name=value`).
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c == capability || c.split_once('=').is_some_and(|(k, _)| k == capability))
    }
}

/// Parse the v0 advertisement that follows the service line.
pub fn parse_advertisement(body: &[u8]) -> Result<Advertisement, Error> {
    let mut advertisement = Advertisement::default();
    for line in packets(body) {
        let (_, line) = line?;
        let Some(entry) = text(line)? else {
            return match line {
                PacketLine::Flush => Ok(advertisement),
                _ => Err(malformed(
                    "unexpected special packet in ref advertisement",
                    b"",
                )),
            };
        };
        let (entry, capabilities) = match memchr::memchr(0, entry) {
            Some(at) => (
                entry.get(..at).unwrap_or_default(),
                Some(entry.get(at + 1..).unwrap_or_default()),
            ),
            None => (entry, None),
        };
        if let Some(capabilities) = capabilities {
            advertisement.capabilities = String::from_utf8_lossy(capabilities)
                .split(' ')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if entry.starts_with(b"shallow ") {
            continue;
        }
        let (hex, name) =
            split_at_space(entry).ok_or_else(|| malformed("ref without name", entry))?;
        let name =
            std::str::from_utf8(name).map_err(|_| malformed("ref name is not UTF-8", entry))?;
        if name == "capabilities^{}" || name.ends_with("^{}") {
            continue;
        }
        advertisement.refs.push(RemoteRef {
            name: name.to_owned(),
            id: parse_id(hex, entry)?,
            symref_target: None,
        });
    }
    Err(pktline::Error::Truncated {
        needed: pktline::LEN_PREFIX_LEN,
    }
    .into())
}

fn split_at_space(entry: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = entry.iter().position(|&b| b == b' ')?;
    Some((entry.get(..at)?, entry.get(at + 1..)?))
}

/// A one-round stateless fetch request: wants (the first with capabilities), haves, `done`.
pub fn fetch_request(
    advertisement: &Advertisement,
    agent: &str,
    wants: &[ObjectId],
    haves: &[ObjectId],
    no_progress: bool,
    thin_pack: bool,
) -> Result<Vec<u8>, Error> {
    if !advertisement.has("side-band-64k") {
        return Err(Error::MissingCapability {
            capability: "side-band-64k",
        });
    }
    let mut capabilities = String::from("side-band-64k");
    if thin_pack && advertisement.has("thin-pack") {
        capabilities.push_str(" thin-pack");
    }
    if advertisement.has("ofs-delta") {
        capabilities.push_str(" ofs-delta");
    }
    if no_progress && advertisement.has("no-progress") {
        capabilities.push_str(" no-progress");
    }
    if advertisement.has("agent") {
        capabilities.push_str(" agent=");
        capabilities.push_str(agent);
    }
    let mut out = Vec::with_capacity(64 * (wants.len() + haves.len()) + 256);
    for (i, id) in wants.iter().enumerate() {
        if i == 0 {
            pktline::encode_text(&mut out, &format!("want {id} {capabilities}"));
        } else {
            pktline::encode_text(&mut out, &format!("want {id}"));
        }
    }
    out.extend_from_slice(pktline::FLUSH_PKT);
    for id in haves {
        pktline::encode_text(&mut out, &format!("have {id}"));
    }
    pktline::encode_text(&mut out, "done");
    Ok(out)
}

/// Read the `ACK <id>` or `NAK` line that precedes the pack; the acknowledged id, if any.
pub fn read_fetch_response<R: Read>(
    lines: &mut pktline::Reader<R>,
) -> Result<Option<ObjectId>, Error> {
    let line = lines.expect_line()?;
    let entry = text(line)?.ok_or_else(|| malformed("expected ACK or NAK", b""))?;
    if entry == b"NAK" {
        return Ok(None);
    }
    match entry.strip_prefix(b"ACK ") {
        Some(rest) => {
            let hex = rest.split(|&b| b == b' ').next().unwrap_or_default();
            Ok(Some(parse_id(hex, entry)?))
        }
        None => Err(malformed("expected ACK or NAK", entry)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "ce013625030ba8dba906f756967f9e9ca394464a";
    const B: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

    use crate::git::wire::pktline::encode_lines as lines;

    #[test]
    fn refs_and_capabilities_are_parsed_and_peeled_lines_skipped() {
        let body = lines(&[
            &format!("{A} HEAD\0multi_ack side-band-64k ofs-delta agent=git/2.47"),
            &format!("{A} refs/heads/main"),
            &format!("{B} refs/tags/v1"),
            &format!("{A} refs/tags/v1^{{}}"),
            "0000",
        ]);
        let adv = parse_advertisement(&body).unwrap();
        assert_eq!(adv.refs.len(), 3);
        assert!(adv.has("side-band-64k") && adv.has("agent") && !adv.has("thin"));
        let empty = lines(&[
            "0000000000000000000000000000000000000000 capabilities^{}\0side-band-64k",
            "0000",
        ]);
        assert!(parse_advertisement(&empty).unwrap().refs.is_empty());
    }

    #[test]
    fn the_request_carries_capabilities_on_the_first_want_only_and_thin_pack_when_asked() {
        let adv = Advertisement {
            refs: Vec::new(),
            capabilities: vec![
                "side-band-64k".into(),
                "ofs-delta".into(),
                "thin-pack".into(),
            ],
        };
        let (a, b) = (
            ObjectId::from_hex(A.as_bytes()).unwrap(),
            ObjectId::from_hex(B.as_bytes()).unwrap(),
        );
        let request = fetch_request(&adv, "gitmq", &[a, b], &[b], false, false).unwrap();
        let text = String::from_utf8(request).unwrap();
        assert!(text.starts_with(&format!(
            "004awant {A} side-band-64k ofs-delta\n0032want {B}\n0000"
        )));
        assert!(text.ends_with(&format!("0032have {B}\n0009done\n")));
        assert!(!text.contains("thin-pack"));
        let thin = fetch_request(&adv, "gitmq", &[a], &[], false, true).unwrap();
        assert!(String::from_utf8(thin)
            .unwrap()
            .starts_with(&format!("0054want {A} side-band-64k thin-pack ofs-delta\n")));
        let unoffered = Advertisement {
            capabilities: vec!["side-band-64k".into()],
            ..adv
        };
        let request = fetch_request(&unoffered, "gitmq", &[a], &[], false, true).unwrap();
        assert!(
            !String::from_utf8(request).unwrap().contains("thin-pack"),
            "only a capability the server offers is asked for"
        );
        let no_sideband = Advertisement::default();
        assert!(matches!(
            fetch_request(&no_sideband, "gitmq", &[a], &[], false, false),
            Err(Error::MissingCapability { .. })
        ));
    }

    #[test]
    fn ack_and_nak_are_read() {
        let body = lines(&["NAK"]);
        assert_eq!(
            read_fetch_response(&mut pktline::Reader::new(&body[..])).unwrap(),
            None
        );
        let body = lines(&[&format!("ACK {A}")]);
        assert!(read_fetch_response(&mut pktline::Reader::new(&body[..]))
            .unwrap()
            .is_some());
        let body = lines(&["ERR no such repo"]);
        assert!(matches!(
            read_fetch_response(&mut pktline::Reader::new(&body[..])),
            Err(Error::Remote { .. })
        ));
    }
}
