//! Owns the wire format of a push to `git-receive-pack` (sans-IO): the ref advertisement, the
//! command list that precedes the pack, and the `report-status` (v1 or v2) answer, inside
//! side-band-64k or bare.
//!
//! Message shapes (git's `gitprotocol-pack.txt`, "Pushing Data To a Server", and
//! `gitprotocol-http.txt`; receive-pack speaks only v0/v1 over HTTP):
//!
//! ```text
//! advertisement  "# service=git-receive-pack" flush  then a v0 ref list (see super::v0)
//! request        "<old> <new> <ref>\0<capabilities>"  ("<old> <new> <ref>")*  flush  PACK...
//!                (old = zero id: create; new = zero id: delete)
//! report         "unpack ok" | "unpack <reason>"
//!                ("ok <ref>" ("option <key> [<value>]")* | "ng <ref> <reason>")*  flush
//!                inside band 1 of side-band-64k when negotiated (band 2: progress, 3: fatal)
//! ```
//!
//! Invariants: gitmq always asks for `report-status` (`report-status-v2` when offered) and
//! refuses a server that offers neither, so a push never succeeds without a per-ref verdict;
//! every old id is sent as read (the server's compare-and-swap); the parsers never panic and
//! read at most [`MAX_REPORT_LINES`] lines of report.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::io::Read;

use gix_hash::ObjectId;

pub use super::v2::Error;
use super::{
    pktline::{self, PacketLine},
    sideband,
    v0::{self, Advertisement},
    v2::{self, malformed, text},
};
use crate::git::hash::OBJECT_HASH;

/// The most report lines read (each ref gets one, plus options).
pub const MAX_REPORT_LINES: usize = 1 << 20;

/// Parse the body of `info/refs?service=git-receive-pack`.
pub fn parse_advertisement(body: &[u8]) -> Result<Advertisement, Error> {
    match v2::parse_advertisement(body)? {
        v2::Advertisement::V0(rest) => {
            let advertisement = v0::parse_advertisement(&rest)?;
            if let Some(format) = advertisement
                .capabilities
                .iter()
                .find_map(|c| c.strip_prefix("object-format="))
            {
                if format != v2::OBJECT_FORMAT {
                    return Err(Error::ObjectFormat {
                        format: format.to_owned(),
                    });
                }
            }
            Ok(advertisement)
        }
        v2::Advertisement::V2(_) => Err(malformed(
            "receive-pack answered with protocol v2, which has no push",
            b"",
        )),
    }
}

/// One ref to move on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The value gitmq believes the server holds (`None`: the ref must not exist).
    pub old: Option<ObjectId>,
    /// The new value (`None`: delete the ref).
    pub new: Option<ObjectId>,
    /// The full ref name.
    pub name: String,
}

/// What the request asks of the server beyond the commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestOptions {
    /// All refs move or none (only if the server offers `atomic`; else ignored).
    pub atomic: bool,
    /// Ask for progress text (off: `quiet`).
    pub progress: bool,
}

/// What was negotiated: how to read the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The answer comes in side-band-64k.
    pub side_band: bool,
    /// The server applies all commands or none.
    pub atomic: bool,
    /// A pack follows the commands (not when every command is a delete).
    pub sends_pack: bool,
}

/// The command list (ending with a flush) that opens a push request, and what it negotiated.
pub fn request_header(
    advertisement: &Advertisement,
    agent: &str,
    commands: &[Command],
    options: RequestOptions,
) -> Result<(Vec<u8>, Negotiated), Error> {
    let report = if advertisement.has("report-status-v2") {
        "report-status-v2"
    } else if advertisement.has("report-status") {
        "report-status"
    } else {
        return Err(Error::MissingCapability {
            capability: "report-status",
        });
    };
    let mut capabilities = vec![report];
    let side_band = advertisement.has("side-band-64k");
    if side_band {
        capabilities.push("side-band-64k");
    }
    let atomic = options.atomic && advertisement.has("atomic") && commands.len() > 1;
    if atomic {
        capabilities.push("atomic");
    }
    if !options.progress && advertisement.has("quiet") {
        capabilities.push("quiet");
    }
    let object_format = format!("object-format={}", v2::OBJECT_FORMAT);
    if advertisement.has("object-format") {
        capabilities.push(&object_format);
    }
    let agent = format!("agent={agent}");
    if advertisement.has("agent") {
        capabilities.push(&agent);
    }
    if commands.iter().any(|c| c.new.is_none()) && !advertisement.has("delete-refs") {
        return Err(Error::MissingCapability {
            capability: "delete-refs",
        });
    }
    let null = ObjectId::null(OBJECT_HASH);
    let mut out = Vec::with_capacity(100 * commands.len() + 200);
    for (i, command) in commands.iter().enumerate() {
        let old = command.old.unwrap_or(null);
        let new = command.new.unwrap_or(null);
        let line = if i == 0 {
            format!("{old} {new} {}\0{}", command.name, capabilities.join(" "))
        } else {
            format!("{old} {new} {}", command.name)
        };
        let mut data = line.into_bytes();
        data.push(b'\n');
        pktline::encode_data(&mut out, &data)?;
    }
    out.extend_from_slice(pktline::FLUSH_PKT);
    let negotiated = Negotiated {
        side_band,
        atomic,
        sends_pack: commands.iter().any(|c| c.new.is_some()),
    };
    Ok((out, negotiated))
}

/// The server's verdict on one ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefStatus {
    /// The ref moved.
    Ok,
    /// The ref did not move.
    Rejected(Rejection),
}

/// Why a ref did not move, as `report-status` says it: the reason classified once, here, from
/// the fixed words git's `receive-pack` writes (see git's `builtin/receive-pack.c`), and the
/// server's words kept for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// What kind of refusal it is.
    pub kind: RejectionKind,
    /// The server's words.
    pub reason: String,
}

/// The kinds of refusal a pusher acts on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// `atomic push failure`: this ref was fine, another ref of the atomic push was refused.
    AtomicCollateral,
    /// `missing necessary objects` (and git's other `missing ...` connectivity reasons): the
    /// pushed pack does not complete the history on the server.
    MissingObjects,
    /// Anything else: a race (`stale info`, `fetch first`, `non-fast-forward`, a changed old
    /// value), a hook, a permission.
    Other,
}

impl Rejection {
    /// Classify the reason a `ng` line (or a failed unpack) gives.
    pub fn parse(reason: &[u8]) -> Self {
        let kind = if reason == b"atomic push failure" {
            RejectionKind::AtomicCollateral
        } else if reason.starts_with(b"missing") {
            RejectionKind::MissingObjects
        } else {
            RejectionKind::Other
        };
        Self {
            kind,
            reason: String::from_utf8_lossy(reason).into_owned(),
        }
    }
}

/// What `report-status` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `None` if the pack was unpacked, else why not.
    pub unpack_error: Option<Rejection>,
    /// Each ref's verdict, in the server's order.
    pub refs: Vec<(String, RefStatus)>,
}

impl Report {
    /// The verdict on `name`, if the server gave one.
    pub fn status(&self, name: &str) -> Option<&RefStatus> {
        self.refs.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

/// Read the server's answer to a push: the report, from band 1 when `side_band` (progress
/// text goes to `progress`), up to and including the final flush.
pub fn read_report<R: Read>(
    body: R,
    side_band: bool,
    progress: &mut dyn FnMut(&[u8]),
) -> Result<Report, super::Error> {
    let mut outer = pktline::Reader::new(body);
    if !side_band {
        return Ok(parse_report(&mut outer)?);
    }
    let mut band = sideband::Reader::new(&mut outer, progress);
    let result = parse_report(&mut pktline::Reader::new(&mut band));
    // A band-3 message or a broken stream explains a report cut short better than "truncated".
    if let Some(err) = band.take_error() {
        return Err(err.into());
    }
    Ok(result?)
}

fn parse_report<R: Read>(lines: &mut pktline::Reader<R>) -> Result<Report, Error> {
    let first = lines.expect_line()?;
    let first = text(first)?.ok_or_else(|| malformed("expected \"unpack ...\"", b""))?;
    let status = first
        .strip_prefix(b"unpack ")
        .ok_or_else(|| malformed("expected \"unpack ...\"", first))?;
    let unpack_error = (status != b"ok").then(|| Rejection::parse(status));
    let mut refs = Vec::new();
    for _ in 0..MAX_REPORT_LINES {
        let line = lines.expect_line()?;
        let Some(entry) = text(line)? else {
            return match line {
                PacketLine::Flush => Ok(Report { unpack_error, refs }),
                _ => Err(malformed(
                    "unexpected special packet in the push report",
                    b"",
                )),
            };
        };
        if let Some(name) = entry.strip_prefix(b"ok ") {
            refs.push((utf8(name, entry)?, RefStatus::Ok));
        } else if let Some(rest) = entry.strip_prefix(b"ng ") {
            let (name, reason) = match memchr::memchr(b' ', rest) {
                Some(at) => (
                    rest.get(..at).unwrap_or_default(),
                    rest.get(at + 1..).unwrap_or_default(),
                ),
                None => (rest, &b""[..]),
            };
            refs.push((
                utf8(name, entry)?,
                RefStatus::Rejected(Rejection::parse(reason)),
            ));
        } else if entry.starts_with(b"option ") {
            // report-status-v2 details of the previous `ok` (a hook rewrote the ref): the
            // ref moved; gitmq re-reads refs before trusting values, so they are not needed.
        } else {
            return Err(malformed("expected ok, ng or option", entry));
        }
    }
    Err(malformed("the push report has too many lines", b""))
}

fn utf8(name: &[u8], line: &[u8]) -> Result<String, Error> {
    std::str::from_utf8(name)
        .map(str::to_owned)
        .map_err(|_| malformed("ref name is not UTF-8", line))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "ce013625030ba8dba906f756967f9e9ca394464a";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn id(hex: &str) -> ObjectId {
        ObjectId::from_hex(hex.as_bytes()).unwrap()
    }

    use crate::git::wire::pktline::encode_lines as lines;

    fn advertisement(caps: &str) -> Advertisement {
        let mut body = lines(&["# service=git-receive-pack", "0000"]);
        body.extend(lines(&[&format!("{Z} capabilities^{{}}\0{caps}"), "0000"]));
        parse_advertisement(&body).unwrap()
    }

    #[test]
    fn an_empty_repository_advertises_capabilities_only() {
        let adv = advertisement("report-status delete-refs side-band-64k quiet atomic");
        assert!(adv.refs.is_empty());
        assert!(adv.has("atomic") && adv.has("report-status"));
        let mut sha256 = lines(&[
            &format!("{Z} capabilities^{{}}\0object-format=sha256"),
            "0000",
        ]);
        sha256.splice(0..0, lines(&["# service=git-receive-pack", "0000"]));
        assert!(matches!(
            parse_advertisement(&sha256),
            Err(Error::ObjectFormat { .. })
        ));
    }

    #[test]
    fn capabilities_ride_on_the_first_command_only() {
        let adv = advertisement("report-status report-status-v2 side-band-64k quiet atomic agent=git/2 object-format=sha1");
        let commands = [
            Command {
                old: None,
                new: Some(id(A)),
                name: "refs/heads/t".into(),
            },
            Command {
                old: Some(id(A)),
                new: Some(id(A)),
                name: "refs/gitmq/consumers/c/t".into(),
            },
        ];
        let options = RequestOptions {
            atomic: true,
            progress: false,
        };
        let (out, negotiated) = request_header(&adv, "gitmq/1", &commands, options).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(&format!("{Z} {A} refs/heads/t\0report-status-v2 side-band-64k atomic quiet object-format=sha1 agent=gitmq/1\n")), "{text}");
        assert!(text.ends_with(&format!("{A} {A} refs/gitmq/consumers/c/t\n0000")));
        assert!(negotiated.side_band && negotiated.atomic && negotiated.sends_pack);
        let bare = advertisement("delete-refs");
        assert!(matches!(
            request_header(&bare, "g", &commands, options),
            Err(Error::MissingCapability { .. })
        ));
    }

    #[test]
    fn reports_are_read_bare_and_inside_side_band() {
        let report = lines(&[
            "unpack ok",
            "ok refs/heads/a",
            "option refname refs/heads/a",
            "ng refs/heads/b fetch first",
            "0000",
        ]);
        let parsed = read_report(&report[..], false, &mut |_| {}).unwrap();
        assert_eq!(parsed.unpack_error, None);
        assert_eq!(parsed.status("refs/heads/a"), Some(&RefStatus::Ok));
        assert_eq!(
            parsed.status("refs/heads/b"),
            Some(&RefStatus::Rejected(Rejection::parse(b"fetch first")))
        );

        let mut banded = Vec::new();
        let mut progress_packet = vec![2u8];
        progress_packet.extend_from_slice(b"Resolving deltas\n");
        pktline::encode_data(&mut banded, &progress_packet).unwrap();
        for chunk in report.chunks(7) {
            let mut packet = vec![1u8];
            packet.extend_from_slice(chunk);
            pktline::encode_data(&mut banded, &packet).unwrap();
        }
        banded.extend_from_slice(pktline::FLUSH_PKT);
        let mut seen = Vec::new();
        let parsed = read_report(&banded[..], true, &mut |p| seen.extend_from_slice(p)).unwrap();
        assert_eq!(parsed.refs.len(), 2);
        assert_eq!(seen, b"Resolving deltas\n");

        let failed = lines(&[
            "unpack index-pack abnormal exit",
            "ng refs/heads/a unpacker error",
            "0000",
        ]);
        let parsed = read_report(&failed[..], false, &mut |_| {}).unwrap();
        assert_eq!(
            parsed.unpack_error.map(|r| r.reason).as_deref(),
            Some("index-pack abnormal exit")
        );
    }

    #[test]
    fn refusals_are_classified_from_the_words_git_writes() {
        assert_eq!(
            Rejection::parse(b"atomic push failure").kind,
            RejectionKind::AtomicCollateral
        );
        assert_eq!(
            Rejection::parse(b"missing necessary objects").kind,
            RejectionKind::MissingObjects
        );
        for other in [
            &b"fetch first"[..],
            b"stale info",
            b"pre-receive hook declined",
            b"",
        ] {
            assert_eq!(Rejection::parse(other).kind, RejectionKind::Other);
        }
    }

    #[test]
    fn hostile_reports_are_errors_not_panics() {
        for body in [
            &b""[..],
            b"0000",
            b"000eunpack ok\n",
            b"000eunpack ok\n0009xyz\n0000",
            b"0008ERR\n",
            b"000eunpack ok\n0001",
        ] {
            assert!(read_report(body, false, &mut |_| {}).is_err(), "{body:?}");
        }
        let mut banded = Vec::new();
        pktline::encode_data(&mut banded, b"\x03access denied\n").unwrap();
        assert!(matches!(
            read_report(&banded[..], true, &mut |_| {}),
            Err(super::super::Error::Sideband(
                sideband::Error::Remote { .. }
            ))
        ));
    }
}
