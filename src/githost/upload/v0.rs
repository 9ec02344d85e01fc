//! Owns v0 upload-pack requests over stateless HTTP: the client resends its wants and the
//! commits found common so far with each round's haves; a round ends with a flush (answered
//! with acknowledgments) or with `done` (answered with the pack). Behaviour follows git's
//! `upload-pack.c` (`receive_needs`, `get_common_commits`) with `multi_ack_detailed`,
//! `multi_ack` or neither, and `no-done`.
//!
//! ```text
//! request  "want <id> <capabilities>" ("want <id>")* ("shallow <id>")* ["deepen <n>"] flush
//!          ("have <id>")* (flush | "done")
//! answer   with deepen: ("shallow <id>")* flush first (the shallow-update section)
//! answer   multi_ack_detailed: "ACK <id> common" per new common have, "ACK <id> ready"
//!          once the commons suffice, "NAK" at a flush; at done "ACK <last>" (or "NAK")
//!          then the pack (in side-band-64k or side-band packets, or bare), flush
//! ```
//!
//! Invariants: wants are checked as in v2; `deepen <n>` is served as in v2, `deepen-since`,
//! `deepen-not`, `deepen-relative` and `filter` are refused with an `ERR` packet; the pack is
//! sent only after `done`, or after
//! `ready` when the client asked for `no-done`.

use std::collections::HashSet;

use gix_hash::ObjectId;

use super::{
    super::{
        body::{read_pkt, Body, Pkt},
        error::protocol,
        http::{Body as ResponseBody, Response, Service},
        view::RefView,
        Access, Error, GitHost,
    },
    refusal_body, Fetch, Refusal,
};
use crate::git::wire::{
    pktline::{encode_text, PacketLine},
    sideband_writer::{MAX_BAND_PAYLOAD_64K, MAX_BAND_PAYLOAD_SMALL},
};

/// Which acknowledgments the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MultiAck {
    None,
    Plain,
    Detailed,
}

/// The capabilities on the first want line.
#[derive(Debug, Clone, Copy)]
struct Features {
    multi_ack: MultiAck,
    no_done: bool,
    sideband: Option<usize>,
    no_progress: bool,
    include_tag: bool,
}

impl Features {
    fn parse(words: &[u8]) -> Self {
        let has = |name: &[u8]| words.split(|&b| b == b' ').any(|w| w == name);
        Self {
            multi_ack: if has(b"multi_ack_detailed") {
                MultiAck::Detailed
            } else if has(b"multi_ack") {
                MultiAck::Plain
            } else {
                MultiAck::None
            },
            no_done: has(b"no-done"),
            sideband: if has(b"side-band-64k") {
                Some(MAX_BAND_PAYLOAD_64K)
            } else if has(b"side-band") {
                Some(MAX_BAND_PAYLOAD_SMALL)
            } else {
                None
            },
            no_progress: has(b"no-progress"),
            include_tag: has(b"include-tag"),
        }
    }
}

fn parse_id(hex: &[u8], line: &[u8]) -> Result<ObjectId, Error> {
    let hex = hex
        .get(..40)
        .ok_or_else(|| protocol("not a SHA-1 object id", line))?;
    ObjectId::from_hex(hex).map_err(|_| protocol("not a SHA-1 object id", line))
}

fn answer(body: Vec<u8>) -> Response {
    Response::ok(Service::UploadPack.result_type(), ResponseBody::Bytes(body))
}

fn refuse(text: String) -> Response {
    answer(refusal_body(&Refusal(text)))
}

/// Answer one v0 request.
pub(crate) fn serve(
    host: &GitHost,
    body: &mut Body<'_>,
    access: &dyn Access,
) -> Result<Response, Error> {
    let limits = &host.options.limits;
    let mut buf = Vec::new();
    let mut wants = Vec::new();
    let mut shallow = HashSet::new();
    let mut features = None;
    let mut refused = None;
    let mut depth = None;
    loop {
        let line = match read_pkt(body, &mut buf)? {
            Pkt::Line(PacketLine::Data(data)) => data.strip_suffix(b"\n").unwrap_or(data),
            Pkt::Line(PacketLine::Flush) => break,
            // A request that stops after its wants (or is empty) asks for nothing more.
            Pkt::Eof => return Ok(answer(Vec::new())),
            Pkt::Line(_) => return Err(protocol("unexpected special packet", b"")),
        };
        if let Some(rest) = line.strip_prefix(b"want ") {
            if wants.len() >= limits.max_wants {
                return Err(Error::TooLarge {
                    what: "wants",
                    limit: limits.max_wants as u64,
                });
            }
            wants.push(parse_id(rest, line)?);
            if features.is_none() {
                features = Some(Features::parse(rest.get(40..).unwrap_or_default()));
            }
        } else if let Some(hex) = line.strip_prefix(b"shallow ") {
            if shallow.len() >= limits.max_haves {
                return Err(Error::TooLarge {
                    what: "shallow lines",
                    limit: limits.max_haves as u64,
                });
            }
            shallow.insert(parse_id(hex, line)?);
        } else if let Some(digits) = line.strip_prefix(b"deepen ") {
            depth = Some(super::v2::parse_depth(digits, line)?);
        } else if line.starts_with(b"deepen") || line.starts_with(b"filter ") {
            refused.get_or_insert_with(|| String::from_utf8_lossy(line).into_owned());
        } else {
            return Err(protocol("expected a want line", line));
        }
    }
    let Some(features) = features else {
        return Ok(answer(Vec::new()));
    };
    if let Some(text) = super::v2::deepen_refusal(refused.as_deref(), depth, !shallow.is_empty()) {
        return Ok(refuse(text));
    }
    let mut odb = host.repo.odb();
    let view = RefView::read(&host.repo, &mut odb, access, false)?;
    let mut fetch = match Fetch::new(host, odb, view, &wants, shallow)? {
        Ok(fetch) => fetch.with_depth(depth),
        Err(refusal) => return Ok(refuse(refusal.0)),
    };
    let outcome = negotiate(host, body, &mut fetch, features)?;
    // With a depth, every answer opens with the shallow-update section.
    let mut section = Vec::new();
    if depth.is_some() {
        for id in fetch.boundaries()? {
            encode_text(&mut section, &format!("shallow {id}"));
        }
        section.extend_from_slice(crate::git::wire::pktline::FLUSH_PKT);
    }
    match outcome {
        Outcome::Answer(out) => Ok(answer([section, out].concat())),
        Outcome::Pack(prefix) => {
            let prefix = [section, prefix].concat();
            let pack = fetch.into_pack(
                prefix,
                features.sideband,
                features.sideband.is_some() && !features.no_progress,
                features.include_tag,
            )?;
            Ok(Response::ok(
                Service::UploadPack.result_type(),
                ResponseBody::Pack(Box::new(pack)),
            ))
        }
    }
}

/// How a request ends.
enum Outcome {
    /// Acknowledgments only: the client sends another round.
    Answer(Vec<u8>),
    /// These packets, then the pack.
    Pack(Vec<u8>),
}

/// git's `get_common_commits` for one stateless request.
fn negotiate(
    host: &GitHost,
    body: &mut Body<'_>,
    fetch: &mut Fetch<'_>,
    features: Features,
) -> Result<Outcome, Error> {
    let limits = &host.options.limits;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut commons = 0usize;
    let mut haves = 0usize;
    let (mut got_common, mut got_other, mut sent_ready) = (false, false, false);
    let mut last: Option<ObjectId> = None;
    let mut first = true;
    loop {
        let packet = read_pkt(body, &mut buf)?;
        let at_start = std::mem::replace(&mut first, false);
        let line = match packet {
            // Only the wants (git's stateless first round of a shallow fetch): nothing to
            // acknowledge; the caller still sends the shallow-update section.
            Pkt::Eof if at_start => return Ok(Outcome::Answer(Vec::new())),
            Pkt::Eof => {
                return Err(protocol(
                    "the request ended in the middle of its haves",
                    b"",
                ))
            }
            Pkt::Line(PacketLine::Data(data)) => data.strip_suffix(b"\n").unwrap_or(data),
            Pkt::Line(PacketLine::Flush) => {
                if features.multi_ack == MultiAck::Detailed
                    && got_common
                    && !got_other
                    && fetch.ready()?
                {
                    sent_ready = true;
                    if let Some(last) = last {
                        encode_text(&mut out, &format!("ACK {last} ready"));
                    }
                }
                if commons == 0 || features.multi_ack != MultiAck::None {
                    encode_text(&mut out, "NAK");
                }
                if features.no_done && sent_ready {
                    if let Some(last) = last {
                        encode_text(&mut out, &format!("ACK {last}"));
                    }
                    return Ok(Outcome::Pack(out));
                }
                return Ok(Outcome::Answer(out));
            }
            Pkt::Line(_) => return Err(protocol("unexpected special packet", b"")),
        };
        if let Some(hex) = line.strip_prefix(b"have ") {
            haves += 1;
            if haves > limits.max_haves {
                return Err(Error::TooLarge {
                    what: "haves",
                    limit: limits.max_haves as u64,
                });
            }
            let id = parse_id(hex, line)?;
            if fetch.have(id)? {
                got_common = true;
                commons += 1;
                last = Some(id);
                match features.multi_ack {
                    MultiAck::Detailed => encode_text(&mut out, &format!("ACK {id} common")),
                    MultiAck::Plain => encode_text(&mut out, &format!("ACK {id} continue")),
                    MultiAck::None if commons == 1 => encode_text(&mut out, &format!("ACK {id}")),
                    MultiAck::None => {}
                }
            } else {
                got_other = true;
                if features.multi_ack != MultiAck::None && fetch.ready()? {
                    if features.multi_ack == MultiAck::Detailed {
                        sent_ready = true;
                        encode_text(&mut out, &format!("ACK {id} ready"));
                    } else {
                        encode_text(&mut out, &format!("ACK {id} continue"));
                    }
                }
            }
        } else if line == b"done" {
            match last {
                Some(last) if commons > 0 => {
                    if features.multi_ack != MultiAck::None {
                        encode_text(&mut out, &format!("ACK {last}"));
                    }
                }
                _ => encode_text(&mut out, "NAK"),
            }
            return Ok(Outcome::Pack(out));
        } else {
            return Err(protocol("expected a have line or done", line));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        git::wire::pktline::{self, encode_lines},
        githost::{AllowAll, GitHost, Request},
        ObjectId, Repository, TopicName,
    };

    fn repo() -> (tempfile::TempDir, Repository, Vec<ObjectId>) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path().join("q.git")).unwrap();
        let ids = repo
            .producer(&TopicName::new("t").unwrap())
            .publish_batch([&b"a"[..], b"b", b"c"])
            .unwrap();
        (dir, repo, ids)
    }

    fn post(repo: &Repository, body: &[u8]) -> Vec<u8> {
        let host = GitHost::new(repo.clone());
        let mut raw = body;
        host.handle(
            Request {
                method: "POST",
                path: "git-upload-pack",
                query: None,
                git_protocol: None,
                content_type: Some("application/x-git-upload-pack-request"),
                content_encoding: None,
                body: &mut raw,
            },
            &AllowAll,
        )
        .unwrap()
        .into_bytes()
        .unwrap()
    }

    /// The text packets at the start of `answer`, up to the first non-text one.
    fn texts(answer: &[u8]) -> (Vec<String>, &[u8]) {
        let mut out = Vec::new();
        let mut rest = answer;
        while let Ok(pktline::Stream::Complete { line, consumed }) = pktline::decode(rest) {
            match line.as_text() {
                Some(text) if !text.starts_with(b"\x01") && !text.starts_with(b"\x02") => {
                    out.push(String::from_utf8_lossy(text).into_owned());
                }
                _ => break,
            }
            rest = &rest[consumed..];
        }
        (out, rest)
    }

    #[test]
    fn without_side_band_the_pack_follows_the_nak_bare() {
        let (_dir, repo, ids) = repo();
        let body = encode_lines(&[&format!("want {}", ids[2]), "0000", "done"]);
        let answer = post(&repo, &body);
        let (lines, rest) = texts(&answer);
        assert_eq!(lines, ["NAK"]);
        assert!(
            rest.starts_with(b"PACK\0\0\0\x02\0\0\0\x04"),
            "3 commits and the tree"
        );
    }

    #[test]
    fn multi_ack_detailed_acknowledges_and_with_no_done_sends_the_pack_after_ready() {
        let (_dir, repo, ids) = repo();
        let unknown = "1".repeat(40);
        let caps = "multi_ack_detailed side-band-64k no-done ofs-delta";
        // A round without done: the server says what is common and that it is ready.
        let round = |haves: &[&str]| {
            let mut parts = vec![format!("want {} {caps}", ids[2]), "0000".to_owned()];
            parts.extend(haves.iter().map(|h| format!("have {h}")));
            parts.push("0000".to_owned());
            post(
                &repo,
                &encode_lines(&parts.iter().map(String::as_str).collect::<Vec<_>>()),
            )
        };
        let common = ids[0].to_string();
        let answer = round(&[&common]);
        let (lines, rest) = texts(&answer);
        let ack = |suffix: &str| format!("ACK {common}{suffix}");
        assert_eq!(
            lines,
            [ack(" common"), ack(" ready"), "NAK".into(), ack("")]
        );
        assert!(rest.len() > 4, "no-done: the pack follows at once");
        // git's rules: an unknown have after the commons suffice is acknowledged "ready";
        // one before them is not, and then the flush does not say ready either.
        let answer = round(&[&common, &unknown]);
        let (lines, _) = texts(&answer);
        let ready = format!("ACK {unknown} ready");
        assert_eq!(lines, [ack(" common"), ready, "NAK".into(), ack("")]);
        let answer = round(&[&unknown, &common]);
        let (lines, rest) = texts(&answer);
        assert_eq!(lines, [ack(" common"), "NAK".into()]);
        assert!(rest.is_empty(), "not ready: another round follows");

        // Without no-done the round ends at the NAK.
        let body = encode_lines(&[
            &format!("want {} multi_ack_detailed side-band-64k", ids[2]),
            "0000",
            &format!("have {}", ids[1]),
            "0000",
        ]);
        let answer = post(&repo, &body);
        let (lines, rest) = texts(&answer);
        assert_eq!(lines.last().map(String::as_str), Some("NAK"));
        assert!(rest.is_empty());
    }

    #[test]
    fn plain_acks_name_the_first_common_commit_once() {
        let (_dir, repo, ids) = repo();
        let body = encode_lines(&[
            &format!("want {} side-band-64k", ids[2]),
            "0000",
            &format!("have {}", ids[1]),
            &format!("have {}", ids[0]),
            "done",
        ]);
        let (lines, _) = texts(&post(&repo, &body));
        assert_eq!(lines, [format!("ACK {}", ids[1])]);
    }

    #[test]
    fn deepen_opens_the_answer_with_the_shallow_update_section() {
        let (_dir, repo, ids) = repo();
        let body = encode_lines(&[
            &format!("want {} side-band-64k shallow", ids[2]),
            "deepen 1",
            "0000",
            "done",
        ]);
        let answer = post(&repo, &body);
        let expected = encode_lines(&[&format!("shallow {}", ids[2]), "0000", "NAK"]);
        assert!(
            answer.starts_with(&expected),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }

    #[test]
    fn a_want_nobody_advertised_is_refused_inside_the_protocol() {
        let (_dir, repo, _) = repo();
        let body = encode_lines(&[&format!("want {}", "2".repeat(40)), "0000", "done"]);
        let (lines, _) = texts(&post(&repo, &body));
        assert_eq!(
            lines,
            [format!("ERR upload-pack: not our ref {}", "2".repeat(40))]
        );
    }
}
