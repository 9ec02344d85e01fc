//! Owns protocol v2 upload-pack requests: `command=ls-refs` and `command=fetch`, one per
//! POST (stateless), as git's `serve.c` and `upload-pack.c` answer them.
//!
//! Request and answers (git's `gitprotocol-v2.txt`):
//!
//! ```text
//! request   "command=<c>" ("agent=..." | "object-format=sha1" | ...)* delim <args>* flush
//! ls-refs   args: peel, symrefs, unborn, ref-prefix <p>
//!           answer: ("<id>|unborn <name>[ symref-target:<t>][ peeled:<id>]")* flush
//! fetch     args: want, have, done, ofs-delta, thin-pack, no-progress, include-tag,
//!                 wait-for-done, shallow <id>, deepen <n> (other deepen* refused)
//!           answer without done, not ready: "acknowledgments" (NAK | ACK <id>*) flush
//!           otherwise: [acknowledgments ... "ready" delim] [shallow-info ... delim]
//!                      "packfile" side-band-64k pack flush
//! ```
//!
//! Invariants: unknown commands, capabilities and arguments are protocol errors (400), as in
//! git; the numbers of wants, haves and prefixes are bounded by [`Limits`](super::super::Limits);
//! refusals a client can meet (a want it may not have, `deepen-since`, deepening a shallow
//! clone) are `ERR` packets.

use std::collections::HashSet;

use gix_hash::ObjectId;

use super::{
    super::{
        body::{read_pkt, Body, Pkt},
        error::protocol,
        http::{Body as ResponseBody, Response, Service},
        view::{Head, RefView},
        Access, Error, GitHost,
    },
    refusal_body, Fetch,
};
use crate::git::{
    shallow::Shallow,
    wire::{
        pktline::{encode_text, PacketLine, DELIM_PKT, FLUSH_PKT},
        sideband_writer::MAX_BAND_PAYLOAD_64K,
    },
};

/// Answer one v2 request.
pub(crate) fn serve(
    host: &GitHost,
    body: &mut Body<'_>,
    access: &dyn Access,
) -> Result<Response, Error> {
    let mut buf = Vec::new();
    let mut command = None;
    loop {
        match read_pkt(body, &mut buf)? {
            Pkt::Line(PacketLine::Data(data)) => {
                let line = data.strip_suffix(b"\n").unwrap_or(data);
                if let Some(name) = line.strip_prefix(b"command=") {
                    if command.is_some() {
                        return Err(protocol("two commands in one request", line));
                    }
                    command = Some(name.to_vec());
                } else if let Some(format) = line.strip_prefix(b"object-format=") {
                    if format != b"sha1" {
                        return Err(protocol("only object-format=sha1 is served", line));
                    }
                } else if !(line.starts_with(b"agent=")
                    || line.starts_with(b"session-id=")
                    || line.starts_with(b"server-option="))
                {
                    return Err(protocol("unknown capability in request", line));
                }
            }
            Pkt::Line(PacketLine::ResponseEnd) => {
                return Err(protocol("unexpected response-end packet", b""))
            }
            Pkt::Eof if command.is_none() => return Err(protocol("empty request", b"")),
            Pkt::Line(PacketLine::Delim | PacketLine::Flush) | Pkt::Eof => break,
        }
    }
    match command.as_deref() {
        Some(b"ls-refs") => ls_refs(host, body, access),
        Some(b"fetch") => fetch(host, body, access),
        Some(other) => Err(protocol("unknown command", other)),
        None => Err(protocol("no command in request", b"")),
    }
}

/// Read the arguments after the delimiter, up to the flush, calling `each` per line.
fn read_args(
    body: &mut Body<'_>,
    mut each: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut buf = Vec::new();
    loop {
        match read_pkt(body, &mut buf)? {
            Pkt::Line(PacketLine::Data(data)) => each(data.strip_suffix(b"\n").unwrap_or(data))?,
            Pkt::Line(PacketLine::Flush) | Pkt::Eof => return Ok(()),
            Pkt::Line(_) => return Err(protocol("unexpected special packet in arguments", b"")),
        }
    }
}

fn ls_refs(host: &GitHost, body: &mut Body<'_>, access: &dyn Access) -> Result<Response, Error> {
    let (mut peel, mut symrefs, mut unborn) = (false, false, false);
    let mut prefixes: Vec<String> = Vec::new();
    let max = host.options.limits.max_wants;
    read_args(body, |arg| {
        match arg {
            b"peel" => peel = true,
            b"symrefs" => symrefs = true,
            b"unborn" => unborn = true,
            _ => {
                let prefix = arg
                    .strip_prefix(b"ref-prefix ")
                    .ok_or_else(|| protocol("unknown ls-refs argument", arg))?;
                if prefixes.len() >= max {
                    return Err(Error::TooLarge {
                        what: "ref prefixes",
                        limit: max as u64,
                    });
                }
                prefixes.push(String::from_utf8_lossy(prefix).into_owned());
            }
        }
        Ok(())
    })?;
    let matches = |name: &str| prefixes.is_empty() || prefixes.iter().any(|p| name.starts_with(p));
    let view = RefView::read(&host.repo, &mut host.repo.odb(), access, false)?;
    let mut out = Vec::with_capacity(64 * view.refs.len() + 64);
    if matches("HEAD") {
        match &view.head {
            Head::Symbolic { target, id } => {
                let symref = if symrefs {
                    format!(" symref-target:{target}")
                } else {
                    String::new()
                };
                match id {
                    Some(id) => encode_text(&mut out, &format!("{id} HEAD{symref}")),
                    None if unborn => encode_text(&mut out, &format!("unborn HEAD{symref}")),
                    None => {}
                }
            }
            Head::Detached(id) => encode_text(&mut out, &format!("{id} HEAD")),
            Head::Hidden => {}
        }
    }
    for r in view.refs.iter().filter(|r| matches(&r.name)) {
        match r.peeled {
            Some(peeled) if peel => {
                encode_text(&mut out, &format!("{} {} peeled:{peeled}", r.id, r.name));
            }
            _ => encode_text(&mut out, &format!("{} {}", r.id, r.name)),
        }
    }
    out.extend_from_slice(FLUSH_PKT);
    Ok(Response::ok(
        Service::UploadPack.result_type(),
        ResponseBody::Bytes(out),
    ))
}

/// The arguments of a `fetch` command.
#[derive(Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // one flag per argument of the protocol
struct FetchArgs {
    wants: Vec<ObjectId>,
    haves: Vec<ObjectId>,
    done: bool,
    no_progress: bool,
    include_tag: bool,
    wait_for_done: bool,
    shallow: HashSet<ObjectId>,
    /// `deepen <n>`.
    depth: Option<u32>,
    /// The first of `deepen-since`, `deepen-not`, `deepen-relative`: refused.
    refused: Option<String>,
}

/// The `<n>` of `deepen <n>`: a positive number.
pub(crate) fn parse_depth(digits: &[u8], line: &[u8]) -> Result<u32, Error> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|&d| d > 0 && d < (1 << 30))
        .ok_or_else(|| protocol("deepen needs a positive depth", line))
}

/// The refusal of a deepening that is not served; `None` when the request may go on.
pub(crate) fn deepen_refusal(
    refused: Option<&str>,
    depth: Option<u32>,
    client_shallow: bool,
) -> Option<String> {
    if client_shallow && (depth.is_some() || refused.is_some_and(|r| r.starts_with("deepen"))) {
        return Some(
            "this gitmq server does not deepen a shallow clone (fetch --depth, --deepen, \
             --unshallow): fetch without them, or clone again with the depth wanted"
                .to_owned(),
        );
    }
    refused.map(|what| {
        format!(
            "this gitmq server serves shallow fetches by depth only, and no filters ({what} \
             is not served): use --depth, or prune the history on the server with `gitmq prune`"
        )
    })
}

fn parse_id(hex: &[u8], line: &[u8]) -> Result<ObjectId, Error> {
    if hex.len() != 40 {
        return Err(protocol("not a SHA-1 object id", line));
    }
    ObjectId::from_hex(hex).map_err(|_| protocol("not a SHA-1 object id", line))
}

fn fetch_args(host: &GitHost, body: &mut Body<'_>) -> Result<FetchArgs, Error> {
    let limits = &host.options.limits;
    let mut args = FetchArgs::default();
    read_args(body, |arg| {
        if let Some(hex) = arg.strip_prefix(b"want ") {
            if args.wants.len() >= limits.max_wants {
                return Err(Error::TooLarge {
                    what: "wants",
                    limit: limits.max_wants as u64,
                });
            }
            args.wants.push(parse_id(hex, arg)?);
        } else if let Some(hex) = arg.strip_prefix(b"have ") {
            if args.haves.len() >= limits.max_haves {
                return Err(Error::TooLarge {
                    what: "haves",
                    limit: limits.max_haves as u64,
                });
            }
            args.haves.push(parse_id(hex, arg)?);
        } else if let Some(hex) = arg.strip_prefix(b"shallow ") {
            if args.shallow.len() >= limits.max_haves {
                return Err(Error::TooLarge {
                    what: "shallow lines",
                    limit: limits.max_haves as u64,
                });
            }
            args.shallow.insert(parse_id(hex, arg)?);
        } else if let Some(digits) = arg.strip_prefix(b"deepen ") {
            args.depth = Some(parse_depth(digits, arg)?);
        } else if arg.starts_with(b"deepen") {
            args.refused
                .get_or_insert_with(|| String::from_utf8_lossy(arg).into_owned());
        } else {
            match arg {
                b"done" => args.done = true,
                b"no-progress" => args.no_progress = true,
                b"include-tag" => args.include_tag = true,
                b"wait-for-done" => args.wait_for_done = true,
                // Accepted; the pack is self-contained and never uses deltas anyway.
                b"ofs-delta" | b"thin-pack" => {}
                _ => return Err(protocol("unknown fetch argument", arg)),
            }
        }
        Ok(())
    })?;
    Ok(args)
}

fn fetch(host: &GitHost, body: &mut Body<'_>, access: &dyn Access) -> Result<Response, Error> {
    let args = fetch_args(host, body)?;
    let refuse = |text: String| {
        Ok(Response::ok(
            Service::UploadPack.result_type(),
            ResponseBody::Bytes(refusal_body(&super::Refusal(text))),
        ))
    };
    if let Some(text) = deepen_refusal(
        args.refused.as_deref(),
        args.depth,
        !args.shallow.is_empty(),
    ) {
        return refuse(text);
    }
    if args.wants.is_empty() {
        return Ok(Response::ok(
            Service::UploadPack.result_type(),
            ResponseBody::Bytes(FLUSH_PKT.to_vec()),
        ));
    }
    let mut odb = host.repo.odb();
    let view = RefView::read(&host.repo, &mut odb, access, false)?;
    let mut fetch = match Fetch::new(host, odb, view, &args.wants, args.shallow.clone())? {
        Ok(fetch) => fetch.with_depth(args.depth),
        Err(refusal) => return refuse(refusal.0),
    };
    let mut acks = Vec::new();
    for &have in &args.haves {
        if fetch.have(have)? {
            acks.push(have);
        }
    }
    let mut prefix = Vec::new();
    if !args.done {
        let ready = !args.wait_for_done && fetch.ready()?;
        encode_text(&mut prefix, "acknowledgments");
        if acks.is_empty() {
            encode_text(&mut prefix, "NAK");
        }
        for id in &acks {
            encode_text(&mut prefix, &format!("ACK {id}"));
        }
        if !ready {
            prefix.extend_from_slice(FLUSH_PKT);
            return Ok(Response::ok(
                Service::UploadPack.result_type(),
                ResponseBody::Bytes(prefix),
            ));
        }
        encode_text(&mut prefix, "ready");
        prefix.extend_from_slice(DELIM_PKT);
    }
    let server_shallow = !Shallow::read(host.repo.git_dir())
        .map_err(crate::git::odb::Error::from)?
        .is_empty();
    if server_shallow || !args.shallow.is_empty() || args.depth.is_some() {
        encode_text(&mut prefix, "shallow-info");
        for id in fetch.boundaries()? {
            if !args.shallow.contains(&id) {
                encode_text(&mut prefix, &format!("shallow {id}"));
            }
        }
        prefix.extend_from_slice(DELIM_PKT);
    }
    encode_text(&mut prefix, "packfile");
    let pack = fetch.into_pack(
        prefix,
        Some(MAX_BAND_PAYLOAD_64K),
        !args.no_progress,
        args.include_tag,
    )?;
    Ok(Response::ok(
        Service::UploadPack.result_type(),
        ResponseBody::Pack(Box::new(pack)),
    ))
}

#[cfg(test)]
mod tests;
