//! Owns moving refs for a push, once its objects are in place: each command under its ref's
//! lock, with a compare-and-swap from the old value the client sent (git's `update()` in
//! `receive-pack.c`), and for an `atomic` push all commands or none.
//!
//! Order, atomic: lock every ref (in name order, so two atomic pushes cannot deadlock) ->
//! check every value and rule -> commit each (rename over the ref, fsynced when asked). Any
//! refusal before the commits releases every lock: nothing moved. Non-atomic: lock, check,
//! commit, one command at a time; each gets its own verdict.
//!
//! Invariants: a ref moves only from the value the client named (a concurrent producer or
//! push that moved it makes this command fail, never lose its messages); with
//! [`Options::deny_non_fast_forwards`](super::super::Options), a topic (`refs/heads/*`) only
//! moves to a commit that reaches its old value; a deletion removes the packed entry before
//! the loose file ([`RefLock::delete()`]). Atomicity is against other writers: a crash (or an
//! I/O error) between two renames leaves the refs renamed so far, as git's files backend does.

use std::collections::HashSet;

use gix_hash::ObjectId;

use super::{
    super::{commit, Error, Options},
    commands::Command,
};
use crate::git::{
    odb::{self, Odb},
    refs::{self, Expected, FullName, RefLock, RefStore},
};

/// The reason git gives the commands of an atomic push that failed because of another one.
pub(crate) const ATOMIC_FAILURE: &str = "atomic push failure";

/// Whether `old` is reachable from `new` (walking all parents; shallow commits end the walk).
pub(crate) fn is_ancestor(odb: &mut Odb, old: ObjectId, new: ObjectId) -> Result<bool, Error> {
    let mut stack = vec![new];
    let mut seen = HashSet::new();
    let mut body = Vec::new();
    while let Some(id) = stack.pop() {
        if id == old {
            return Ok(true);
        }
        if !seen.insert(id) {
            continue;
        }
        match odb.read(&id, &mut body) {
            Ok(gix_object::Kind::Commit) => {}
            Ok(_) | Err(odb::Error::Missing { .. }) => continue,
            Err(err) => return Err(err.into()),
        }
        if odb.is_shallow(&id)? {
            continue;
        }
        if let Some(info) = commit::parse(&body) {
            stack.extend(info.parents.into_iter().rev());
        }
    }
    Ok(false)
}

/// The rule a command breaks on its own (before locking), if any.
fn rule(odb: &mut Odb, command: &Command, options: &Options) -> Result<Option<String>, Error> {
    if let (Some(old), Some(new)) = (command.old, command.new) {
        if options.deny_non_fast_forwards
            && command.name.starts_with("refs/heads/")
            && !is_ancestor(odb, old, new)?
        {
            return Ok(Some("non-fast-forward".into()));
        }
    }
    Ok(None)
}

/// What the ref holds under its lock, compared with what the client expects.
fn stale(lock: &RefLock, command: &Command) -> Result<Option<String>, Error> {
    let current = lock.current()?;
    if current == command.old {
        return Ok(None);
    }
    let name = &command.name;
    Ok(Some(match (command.old, current) {
        (None, Some(_)) => format!("cannot lock ref '{name}': reference already exists"),
        (Some(_), None) => format!("cannot lock ref '{name}': unable to resolve reference"),
        (_, current) => format!(
            "cannot lock ref '{name}': is at {} but expected {}",
            current.map(|id| id.to_string()).unwrap_or_default(),
            command.old.map(|id| id.to_string()).unwrap_or_default()
        ),
    }))
}

/// Take the lock of `command`'s ref (its name was validated by `commands::refusal`).
fn lock(store: &RefStore, command: &Command, options: &Options) -> Result<RefLock, String> {
    let name = FullName::new(command.name.as_str()).map_err(|_| "funny refname".to_owned())?;
    store
        .lock(&name, options.lock_timeout)
        .map_err(|err| lock_failure(&err))
}

fn lock_failure(err: &refs::Error) -> String {
    match err {
        refs::Error::Locked { name, .. } => {
            format!("failed to lock: {name} is being updated by another writer")
        }
        other => format!("failed to lock: {}", client_safe(other)),
    }
}

/// What a client may read of a ref error: no server path (an I/O error says its kind only;
/// creating `refs/heads/a/b` next to a ref `refs/heads/a` is the usual one).
fn client_safe(err: &refs::Error) -> String {
    match err {
        refs::Error::Io { source, .. } => format!(
            "I/O error ({}); a ref whose name is a directory of this one, or the reverse, \
             may exist",
            source.kind()
        ),
        refs::Error::Malformed { name, .. } => format!("the ref {name} is malformed here"),
        refs::Error::Packed(_) => "packed-refs is malformed here".into(),
        other => other.to_string(),
    }
}

/// Move the refs of `commands` whose `statuses` are still `None`; set each one's verdict.
pub(crate) fn apply(
    store: &RefStore,
    odb: &mut Odb,
    commands: &[Command],
    statuses: &mut [Option<String>],
    atomic: bool,
    options: &Options,
) -> Result<(), Error> {
    for (command, status) in commands.iter().zip(statuses.iter_mut()) {
        if status.is_none() {
            *status = rule(odb, command, options)?;
        }
    }
    if atomic {
        apply_atomic(store, commands, statuses, options)
    } else {
        for (command, status) in commands.iter().zip(statuses.iter_mut()) {
            if status.is_some() {
                continue;
            }
            let lock = match lock(store, command, options) {
                Ok(lock) => lock,
                Err(reason) => {
                    *status = Some(reason);
                    continue;
                }
            };
            *status = match stale(&lock, command)? {
                Some(reason) => Some(reason),
                None => commit(lock, command, options.sync).err(),
            };
        }
        Ok(())
    }
}

fn apply_atomic(
    store: &RefStore,
    commands: &[Command],
    statuses: &mut [Option<String>],
    options: &Options,
) -> Result<(), Error> {
    let fail_all = |statuses: &mut [Option<String>]| {
        for status in statuses.iter_mut().filter(|s| s.is_none()) {
            *status = Some(ATOMIC_FAILURE.into());
        }
    };
    if statuses.iter().any(Option::is_some) {
        fail_all(statuses);
        return Ok(());
    }
    let mut order: Vec<usize> = (0..commands.len()).collect();
    order.sort_by(|&a, &b| {
        let name = |i: usize| commands.get(i).map(|c| c.name.as_str());
        name(a).cmp(&name(b))
    });
    let mut locks: Vec<(usize, RefLock)> = Vec::with_capacity(order.len());
    for i in order {
        let Some(command) = commands.get(i) else {
            continue;
        };
        let verdict = match lock(store, command, options) {
            Ok(lock) => match stale(&lock, command)? {
                None => {
                    locks.push((i, lock));
                    continue;
                }
                Some(reason) => reason,
            },
            Err(reason) => reason,
        };
        if let Some(status) = statuses.get_mut(i) {
            *status = Some(verdict);
        }
        drop(locks); // every lock taken so far is released: nothing moves
        fail_all(statuses);
        return Ok(());
    }
    let mut failed = false;
    for (i, lock) in locks {
        let Some(command) = commands.get(i) else {
            continue;
        };
        let verdict = if failed {
            drop(lock);
            Some("atomic transaction failed".into())
        } else {
            commit(lock, command, options.sync).err()
        };
        failed |= verdict.is_some();
        if let Some(status) = statuses.get_mut(i) {
            *status = verdict;
        }
    }
    Ok(())
}

/// Commit one locked command; the reason it failed.
fn commit(lock: RefLock, command: &Command, sync: bool) -> Result<(), String> {
    let expected = Expected::from_current(command.old);
    let result = match command.new {
        Some(new) => lock.commit(expected, &new, sync),
        None => lock.delete(expected, sync).map(|_| ()),
    };
    result.map_err(|err| match err {
        refs::Error::Changed { .. } => format!("cannot lock ref '{}': it changed", command.name),
        other => format!("failed to update ref: {}", client_safe(&other)),
    })
}
