//! Owns receive-pack, the server side of push: read the commands, receive the pack into
//! quarantine, check it, move it into the object database, then move the refs, and report.
//!
//! Data flow of one push (one POST):
//!
//! ```text
//! body -> commands::read_head ("<old> <new> <ref>" + capabilities, up to the flush)
//!      -> commands::refusal per command (names, access, deletions), duplicates
//!      -> quarantine::Quarantine::receive (index_pack into objects/incoming-gitmq-*/:
//!         hashes, checks, limits; fsynced)          any error: "unpack <reason>", nothing moves
//!      -> check::check_pack (fsck rules, every named object in the pack or the repository)
//!         and each new tip exists and is a commit
//!      -> Quarantine::migrate (pack, then idx, into objects/pack/; fsync)  objects before refs
//!      -> apply::apply (lock + compare-and-swap per ref; atomic: all locked and checked first)
//!      -> report::build (report-status v1/v2, side-band-64k)
//! ```
//!
//! Invariants: no ref moves unless the whole pack was received, indexed, checked and moved
//! into `objects/pack/`; a truncated, corrupt or refused push leaves no file behind (the
//! quarantine directory is removed); every command gets a verdict.

mod apply;
mod check;
mod commands;
mod quarantine;
mod report;

pub(crate) use quarantine::remove_stale as remove_stale_quarantines;

use super::{
    body::{limit_of, Body},
    http::{Body as ResponseBody, Response, Service},
    Access, Error, GitHost,
};
use crate::git::odb::pack::index_pack;

/// Answer one push.
pub(crate) fn serve(
    host: &GitHost,
    body: &mut Body<'_>,
    access: &dyn Access,
) -> Result<Response, Error> {
    let options = &host.options;
    let head = commands::read_head(body, &options.limits)?;
    let answer = |bytes| {
        Ok(Response::ok(
            Service::ReceivePack.result_type(),
            ResponseBody::Bytes(bytes),
        ))
    };
    if head.commands.is_empty() {
        return answer(Vec::new());
    }
    let commands = &head.commands;
    let mut push = Push {
        statuses: commands
            .iter()
            .map(|c| commands::refusal(c, access, options))
            .collect(),
        messages: Vec::new(),
        unpack_error: None,
    };
    commands::refuse_duplicates(commands, &mut push.statuses);

    let objects_dir = host.repo.git_dir().join("objects");
    // A pack is read only if some command can still go ahead: a client that may push
    // nothing cannot make the server store (up to the pack limit) anything.
    let atomic_failed = head.atomic && push.statuses.iter().any(Option::is_some);
    let needs_pack = !atomic_failed
        && commands
            .iter()
            .zip(&push.statuses)
            .any(|(c, s)| s.is_none() && c.new.is_some());
    let quarantine = if needs_pack {
        receive(host, body, &objects_dir, &mut push)?
    } else {
        None
    };
    if let Some(quarantine) = &quarantine {
        check(host, quarantine, commands, &mut push)?;
    }
    if let Some(reason) = &push.unpack_error {
        push.messages.push(format!("unpack failed: {reason}"));
        for status in &mut push.statuses {
            if status.is_none() {
                *status = Some("unpacker error".into());
            }
        }
    }

    if push.statuses.iter().any(Option::is_none) {
        if let Some(quarantine) = &quarantine {
            let pack_dir = objects_dir.join("pack");
            quarantine
                .migrate(host.repo.fs(), &pack_dir, options.sync)
                .map_err(|source| Error::Io {
                    path: pack_dir,
                    source,
                })?;
        }
        // A pack renamed just now: a new handle lists the packs again.
        let mut odb = host.repo.odb();
        apply::apply(
            host.repo.refs(),
            &mut odb,
            commands,
            &mut push.statuses,
            head.atomic,
            options,
        )?;
    } else if head.atomic {
        for status in push.statuses.iter_mut().filter(|s| s.is_none()) {
            *status = Some(apply::ATOMIC_FAILURE.into());
        }
    }
    drop(quarantine);
    for (command, status) in commands.iter().zip(&push.statuses) {
        if let Some(reason) = status {
            if reason != apply::ATOMIC_FAILURE && reason != "unpacker error" {
                push.messages
                    .push(format!("refusing {}: {reason}", command.name));
            }
        }
    }
    answer(report::build(
        &head,
        push.unpack_error.as_deref(),
        commands,
        &push.statuses,
        &push.messages,
    ))
}

/// The verdicts of a push so far.
struct Push {
    /// Per command: `None` while it may go ahead, else why not.
    statuses: Vec<Option<String>>,
    /// Explanations for the client's progress band.
    messages: Vec<String>,
    /// Why the pack was refused as a whole.
    unpack_error: Option<String>,
}

/// Receive the pack into quarantine; `None` (with the reason recorded) if it is refused.
fn receive(
    host: &GitHost,
    body: &mut Body<'_>,
    objects_dir: &std::path::Path,
    push: &mut Push,
) -> Result<Option<quarantine::Quarantine>, Error> {
    let limits = &host.options.limits.pack;
    // The pack may be as large as its own limit, beyond the bytes allowed for commands.
    body.get_mut().extend(limits.max_pack_size);
    match quarantine::Quarantine::receive(
        host.repo.fs(),
        &mut *body,
        objects_dir,
        limits,
        host.options.sync,
    ) {
        Ok(quarantine) => Ok(Some(quarantine)),
        Err(quarantine::Error::Index(index_pack::Error::Read { source, .. }))
            if limit_of(&source).is_some() =>
        {
            Err(Error::TooLarge {
                what: "bytes",
                limit: limit_of(&source).unwrap_or_default(),
            })
        }
        Err(quarantine::Error::Create { path, source }) => Err(Error::Io { path, source }),
        Err(quarantine::Error::Index(index_pack::Error::PackTooLarge { limit })) => {
            Err(Error::TooLarge {
                what: "bytes of pack",
                limit,
            })
        }
        Err(quarantine::Error::Index(index_pack::Error::TooManyObjects { limit, .. })) => {
            Err(Error::TooLarge {
                what: "objects in one pack",
                limit: u64::from(limit),
            })
        }
        Err(quarantine::Error::Index(index_pack::Error::ObjectTooLarge { limit, .. })) => {
            Err(Error::TooLarge {
                what: "bytes in one object",
                limit,
            })
        }
        Err(quarantine::Error::Index(index_pack::Error::Io { source, .. })) => {
            // The client gets the kind, not the server's paths.
            push.unpack_error = Some(format!(
                "the server could not store the pack ({})",
                source.kind()
            ));
            Ok(None)
        }
        Err(quarantine::Error::Index(err)) => {
            push.unpack_error = Some(error_chain(&err));
            Ok(None)
        }
    }
}

/// Check the quarantined pack and each command's new tip.
fn check(
    host: &GitHost,
    quarantine: &quarantine::Quarantine,
    commands: &[commands::Command],
    push: &mut Push,
) -> Result<(), Error> {
    let mut odb = host.repo.odb();
    let kinds = match quarantine.pack() {
        None => check::Kinds::new(),
        Some(written) => match check::check_pack(
            &written.pack_path,
            &mut odb,
            host.options.limits.pack.max_object_size,
        )? {
            Ok(kinds) => kinds,
            Err(check::Flaw::Malformed(reason)) => {
                push.unpack_error = Some(reason);
                return Ok(());
            }
            Err(flaw @ check::Flaw::Missing { .. }) => {
                push.messages.push(flaw.to_string());
                for (command, status) in commands.iter().zip(push.statuses.iter_mut()) {
                    if command.new.is_some() && status.is_none() {
                        *status = Some("missing necessary objects".into());
                    }
                }
                return Ok(());
            }
        },
    };
    let mut body = Vec::new();
    for (command, status) in commands.iter().zip(push.statuses.iter_mut()) {
        let Some(new) = command.new else { continue };
        if status.is_some() {
            continue;
        }
        let kind = match kinds.get(&new) {
            Some(kind) => Some(*kind),
            None => match odb.read(&new, &mut body) {
                Ok(kind) => Some(kind),
                Err(crate::git::odb::Error::Missing { .. }) => None,
                Err(err) => return Err(err.into()),
            },
        };
        *status = match kind {
            Some(gix_object::Kind::Commit) => None,
            Some(kind) => Some(format!("{new} is a {kind}, not a commit")),
            None => Some("missing necessary objects".into()),
        };
    }
    Ok(())
}

/// An error and its causes on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use crate::{
        git::wire::pktline::encode_lines,
        githost::{GitHost, Operation, Request},
        Repository, TopicName,
    };

    #[test]
    fn a_client_that_may_push_nothing_has_no_pack_read_or_stored() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path().join("q.git")).unwrap();
        let id = repo
            .producer(&TopicName::new("t").unwrap())
            .publish(b"m")
            .unwrap();
        let zero = "0".repeat(40);
        let mut body = encode_lines(&[&format!("{zero} {id} refs/heads/u\0report-status"), "0000"]);
        body.extend_from_slice(b"PACK\0\0\0\x02\0\0\0\x01 not a pack at all");
        let read_only = |op: Operation, _: &str| op == Operation::Read;
        let mut raw = &body[..];
        let answer = GitHost::new(repo.clone())
            .handle(
                Request {
                    method: "POST",
                    path: "git-receive-pack",
                    query: None,
                    git_protocol: None,
                    content_type: Some("application/x-git-receive-pack-request"),
                    content_encoding: None,
                    body: &mut raw,
                },
                &read_only,
            )
            .unwrap()
            .into_bytes()
            .unwrap();
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.contains("unpack ok"),
            "the pack was never read: {text}"
        );
        assert!(text.contains("ng refs/heads/u permission denied"), "{text}");
    }
}
