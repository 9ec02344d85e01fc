//! Owns the head of a push request: the command list and the capabilities on its first line
//! (sans-IO over the body, read packet by packet so the pack behind stays unread), and the
//! rules a command must pass before any object is looked at.
//!
//! ```text
//! ("shallow <id>")*  "<old> <new> <ref>\0<capabilities>"  ("<old> <new> <ref>")*  flush  PACK...
//! ```
//!
//! Rules (checked per command, git's reasons where git has one): the name is a valid full ref
//! name under `refs/heads/` (a valid topic name) or `refs/gitmq/` (each part a valid name),
//! else `funny refname`; the client may write it; a deletion is allowed by
//! [`Options::allow_deletes`](super::super::Options); a ref appears once per push.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::collections::HashMap;

use gix_hash::ObjectId;

use super::super::{
    body::{read_pkt, Body, Pkt},
    error::protocol,
    Access, Error, Limits, Operation, Options,
};
use crate::{
    git::{
        refs::FullName,
        wire::{pktline::PacketLine, sideband_writer},
    },
    queue::names::TopicName,
};

/// The longest ref name accepted in a command (git's paths stay far below it).
pub(crate) const MAX_REF_NAME_LEN: usize = 4096;

/// One ref update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    /// `None`: the ref must not exist.
    pub old: Option<ObjectId>,
    /// `None`: delete the ref.
    pub new: Option<ObjectId>,
    /// The full name, as sent.
    pub name: String,
}

/// Which report the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportKind {
    None,
    V1,
    V2,
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub commands: Vec<Command>,
    pub report: ReportKind,
    /// Side-band packet payload size, if negotiated.
    pub sideband: Option<usize>,
    pub atomic: bool,
    pub quiet: bool,
}

fn parse_id(hex: &[u8], line: &[u8]) -> Result<Option<ObjectId>, Error> {
    if hex.len() != 40 {
        return Err(protocol("not a SHA-1 object id", line));
    }
    let id = ObjectId::from_hex(hex).map_err(|_| protocol("not a SHA-1 object id", line))?;
    Ok((!id.is_null()).then_some(id))
}

/// Read the commands up to the flush that precedes the pack.
pub(crate) fn read_head(body: &mut Body<'_>, limits: &Limits) -> Result<RequestHead, Error> {
    let mut head = RequestHead {
        commands: Vec::new(),
        report: ReportKind::None,
        sideband: None,
        atomic: false,
        quiet: false,
    };
    let mut buf = Vec::new();
    loop {
        let line = match read_pkt(body, &mut buf)? {
            Pkt::Line(PacketLine::Data(data)) => data.strip_suffix(b"\n").unwrap_or(data),
            Pkt::Line(PacketLine::Flush) | Pkt::Eof => return Ok(head),
            Pkt::Line(_) => return Err(protocol("unexpected special packet in commands", b"")),
        };
        if line.starts_with(b"shallow ") {
            // A shallow client: its pack must still connect to objects we have, which the
            // connectivity check makes sure of.
            continue;
        }
        if line.starts_with(b"push-cert") {
            return Err(protocol("signed pushes are not offered", line));
        }
        let (command, capabilities) = match line.iter().position(|&b| b == 0) {
            Some(nul) => (
                line.get(..nul).unwrap_or_default(),
                Some(line.get(nul + 1..).unwrap_or_default()),
            ),
            None => (line, None),
        };
        if let Some(capabilities) = capabilities {
            if !head.commands.is_empty() {
                return Err(protocol("capabilities after the first command", line));
            }
            parse_capabilities(capabilities, &mut head)?;
        }
        if head.commands.len() >= limits.max_commands {
            return Err(Error::TooLarge {
                what: "commands",
                limit: limits.max_commands as u64,
            });
        }
        let (old, rest) = command
            .split_at_checked(40)
            .ok_or_else(|| protocol("expected '<old> <new> <ref>'", line))?;
        let rest = rest
            .strip_prefix(b" ")
            .ok_or_else(|| protocol("expected '<old> <new> <ref>'", line))?;
        let (new, rest) = rest
            .split_at_checked(40)
            .ok_or_else(|| protocol("expected '<old> <new> <ref>'", line))?;
        let name = rest
            .strip_prefix(b" ")
            .ok_or_else(|| protocol("expected '<old> <new> <ref>'", line))?;
        if name.is_empty() || name.len() > MAX_REF_NAME_LEN {
            return Err(protocol("a ref name is empty or too long", line));
        }
        head.commands.push(Command {
            old: parse_id(old, line)?,
            new: parse_id(new, line)?,
            name: String::from_utf8_lossy(name).into_owned(),
        });
    }
}

fn parse_capabilities(capabilities: &[u8], head: &mut RequestHead) -> Result<(), Error> {
    for word in capabilities.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        match word {
            b"report-status" => {
                if head.report == ReportKind::None {
                    head.report = ReportKind::V1;
                }
            }
            b"report-status-v2" => head.report = ReportKind::V2,
            b"side-band-64k" => head.sideband = Some(sideband_writer::MAX_BAND_PAYLOAD_64K),
            b"side-band" => {
                head.sideband
                    .get_or_insert(sideband_writer::MAX_BAND_PAYLOAD_SMALL);
            }
            b"atomic" => head.atomic = true,
            b"quiet" => head.quiet = true,
            b"push-options" => return Err(protocol("push options are not offered", word)),
            _ => {
                if let Some(format) = word.strip_prefix(b"object-format=") {
                    if format != b"sha1" {
                        return Err(protocol("only object-format=sha1 is served", word));
                    }
                }
                // delete-refs, ofs-delta, agent=..., session-id=...: nothing to do.
            }
        }
    }
    Ok(())
}

/// Why `command` may not go ahead, checked before the pack is read; `None` if it may.
pub(crate) fn refusal(command: &Command, access: &dyn Access, options: &Options) -> Option<String> {
    let name = command.name.as_str();
    if FullName::new(name).is_err() || !name_is_served(name) {
        if !name.starts_with("refs/heads/") && !name.starts_with("refs/gitmq/") {
            return Some("refs outside refs/heads/ and refs/gitmq/ are read-only here".into());
        }
        return Some("funny refname".into());
    }
    if !access.allows(Operation::Write, name) {
        return Some("permission denied".into());
    }
    if command.new.is_none() && !options.allow_deletes {
        return Some("deletion prohibited".into());
    }
    None
}

/// `refs/heads/<topic>` with a valid topic name, or `refs/gitmq/<parts>` with each part one.
fn name_is_served(name: &str) -> bool {
    if let Some(topic) = name.strip_prefix("refs/heads/") {
        return TopicName::new(topic).is_ok();
    }
    name.strip_prefix("refs/gitmq/")
        .is_some_and(|rest| TopicName::new(rest).is_ok())
}

/// Mark every command whose ref appears more than once in the push.
pub(crate) fn refuse_duplicates(commands: &[Command], statuses: &mut [Option<String>]) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for command in commands {
        *count.entry(command.name.as_str()).or_default() += 1;
    }
    for (command, status) in commands.iter().zip(statuses.iter_mut()) {
        if count.get(command.name.as_str()).copied().unwrap_or(0) > 1 && status.is_none() {
            *status = Some("multiple updates for one ref".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::wire::pktline::encode_lines;
    use crate::githost::{body, AllowAll};

    const A: &str = "ce013625030ba8dba906f756967f9e9ca394464a";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn head(parts: &[&str]) -> Result<RequestHead, Error> {
        let bytes = encode_lines(parts);
        let mut raw: &[u8] = &bytes;
        let mut body = body::open(&mut raw, None, 1 << 20).unwrap();
        read_head(&mut body, &Limits::default())
    }

    #[test]
    fn commands_and_capabilities_are_parsed() {
        let first = format!("{Z} {A} refs/heads/a\0report-status-v2 side-band-64k atomic quiet");
        let parsed = head(&[&first, &format!("{A} {Z} refs/heads/b"), "0000"]).unwrap();
        assert_eq!(parsed.commands.len(), 2);
        assert_eq!(parsed.commands[0].old, None);
        assert_eq!(parsed.commands[1].new, None, "the zero id deletes");
        assert_eq!(parsed.report, ReportKind::V2);
        assert!(parsed.atomic && parsed.quiet && parsed.sideband.is_some());
    }

    #[test]
    fn malformed_commands_are_protocol_errors() {
        for bad in [
            format!("{A} refs/heads/a"),
            format!("{A}x{A} refs/heads/a"),
            format!("{A} {A}"),
            format!("{A} {A} "),
            format!("{} {A} refs/heads/a", &A[..39]),
            format!("{Z} {A} refs/heads/a\0push-options"),
        ] {
            assert!(
                matches!(head(&[&bad, "0000"]), Err(Error::Protocol { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_outside_the_queue_and_funny_names_are_refused() {
        let options = Options::default();
        let command = |name: &str| Command {
            old: None,
            new: ObjectId::from_hex(A.as_bytes()).ok(),
            name: name.into(),
        };
        assert_eq!(
            refusal(&command("refs/heads/orders"), &AllowAll, &options),
            None
        );
        assert_eq!(
            refusal(
                &command("refs/gitmq/consumers/c/orders"),
                &AllowAll,
                &options
            ),
            None
        );
        assert!(refusal(&command("refs/tags/v1"), &AllowAll, &options)
            .unwrap()
            .contains("read-only"));
        assert_eq!(
            refusal(&command("refs/heads/a..b"), &AllowAll, &options).as_deref(),
            Some("funny refname")
        );
        let read_only = |op: Operation, _: &str| op == Operation::Read;
        assert_eq!(
            refusal(&command("refs/heads/orders"), &read_only, &options).as_deref(),
            Some("permission denied")
        );
        let mut statuses = vec![None, None, None];
        refuse_duplicates(
            &[
                command("refs/heads/a"),
                command("refs/heads/b"),
                command("refs/heads/a"),
            ],
            &mut statuses,
        );
        assert!(statuses[0].is_some() && statuses[1].is_none() && statuses[2].is_some());
    }
}
