//! Owns the syntax of git's config file: reading its lines, section headers
//! (`[section "subsection"]`) and values, and appending a section under `config.lock` (as
//! `git config` does). Callers ([`remote`] for remotes, `prune::retention` for retention)
//! decide what each key means.
//!
//! Strict and small on purpose: section names are case-insensitive (returned lowercased),
//! subsections case-sensitive with `\"` and `\\` escapes; values take double quotes, `\"`,
//! `\\`, `\n`, `\t`, `\b` escapes and `#`/`;` comments; keys are returned trimmed (compare them
//! case-insensitively). What the reader does not understand (a line continuation, an
//! unterminated quote or header) is an error naming why, never a guess. `include`,
//! `includeIf` and `[section.subsection]` (the old dotted form) are not followed.
//!
//! Invariants: never panics on any text; parse errors are `(1-based line, reason)`, which
//! `read()` turns into an [`Error`] naming the file.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

pub mod remote;
pub mod timeouts;

use std::{
    io,
    path::{Path, PathBuf},
};

use crate::git::fs::{LockError, LockFile, SharedFs, DEFAULT_LOCK_TIMEOUT};

/// Returned by the readers of `<git-dir>/config` (remotes, retention).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file could not be read.
    #[error("reading {path} failed")]
    Io {
        /// The config file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Another writer holds `config.lock`.
    #[error("{lock_path} is held by another writer (waited {waited:?}); remove it if no git or gitmq process is running")]
    Locked {
        /// The lock file.
        lock_path: PathBuf,
        /// How long this writer waited.
        waited: std::time::Duration,
    },
    /// A line gitmq's reader does not understand.
    #[error("{path}:{line}: {reason}")]
    Malformed {
        /// The config file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Read `<git_dir>/config` and hand its text to `parse`; `None` if there is no config file.
pub(crate) fn read<T>(
    git_dir: &Path,
    parse: impl FnOnce(&str) -> Result<T, (usize, &'static str)>,
) -> Result<Option<T>, Error> {
    let path = git_dir.join("config");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path, source }),
    };
    parse(&text)
        .map(Some)
        .map_err(|(line, reason)| Error::Malformed { path, line, reason })
}

/// Append `text` (whole lines) to `<git_dir>/config` under `config.lock`: the file is read
/// while the lock is held, so no concurrent writer's change is lost; `check` sees the current
/// text first and may refuse (its error is returned and nothing changes). The lock file is
/// removed whatever happens.
pub(crate) fn append<E: From<Error>>(
    fs: &SharedFs,
    git_dir: &Path,
    check: impl FnOnce(&str) -> Result<(), E>,
    text: &str,
) -> Result<(), E> {
    let path = git_dir.join("config");
    let mut lock = LockFile::acquire(fs, &path, DEFAULT_LOCK_TIMEOUT).map_err(|err| match err {
        LockError::Locked { lock_path, waited } => Error::Locked { lock_path, waited },
        LockError::Io { path, source } => Error::Io { path, source },
    })?;
    let mut current = match std::fs::read_to_string(&path) {
        Ok(current) => current,
        Err(err) if err.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(Error::Io { path, source }.into()),
    };
    check(&current)?;
    if !current.is_empty() && !current.ends_with('\n') {
        current.push('\n');
    }
    current.push_str(text);
    let io_err = |source| Error::Io {
        path: path.clone(),
        source,
    };
    lock.write_all(current.as_bytes()).map_err(io_err)?;
    lock.commit(true).map_err(io_err)?;
    Ok(())
}

/// One meaningful line of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// `[section]` or `[section "subsection"]`: the section lowercased, the subsection as
    /// written (escapes resolved).
    Section {
        /// Lowercased.
        section: String,
        /// Case-sensitive.
        subsection: Option<String>,
    },
    /// `key = value` (or a bare `key`, whose value is empty): the key trimmed, the raw value.
    Entry {
        /// Trimmed; compare case-insensitively.
        key: &'a str,
        /// Unparsed: pass to [`parse_value()`].
        raw_value: &'a str,
    },
}

/// The meaningful lines of `text` (blank lines and comments skipped), each with its 1-based
/// number.
pub(crate) fn lines(
    text: &str,
) -> impl Iterator<Item = Result<(usize, Line<'_>), (usize, &'static str)>> {
    text.lines().enumerate().filter_map(|(number, line)| {
        let number = number + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            return None;
        }
        if let Some(header) = line.strip_prefix('[') {
            return Some(
                parse_header(header)
                    .map(|(section, subsection)| {
                        (
                            number,
                            Line::Section {
                                section,
                                subsection,
                            },
                        )
                    })
                    .map_err(|reason| (number, reason)),
            );
        }
        let (key, raw_value) = match line.split_once('=') {
            Some((key, value)) => (key.trim(), value),
            None => (line, ""),
        };
        Some(Ok((number, Line::Entry { key, raw_value })))
    })
}

/// Parse a section header (after `[`).
fn parse_header(header: &str) -> Result<(String, Option<String>), &'static str> {
    let (section, rest) = match header.split_once(|c: char| c.is_whitespace() || c == ']') {
        Some((section, _)) if header.as_bytes().get(section.len()) == Some(&b']') => {
            let after = header.get(section.len() + 1..).unwrap_or_default();
            check_after_header(after)?;
            return Ok((section.to_ascii_lowercase(), None));
        }
        Some((section, rest)) => (section, rest),
        None => return Err("unterminated section header"),
    };
    let Some(quoted) = rest.trim_start().strip_prefix('"') else {
        return Err("a section header's subsection must be quoted");
    };
    let mut name = String::new();
    let mut chars = quoted.chars();
    loop {
        match chars.next() {
            Some('"') => break,
            Some('\\') => name.push(chars.next().ok_or("unterminated section header")?),
            Some(c) => name.push(c),
            None => return Err("unterminated section header"),
        }
    }
    let after = chars
        .as_str()
        .trim_start()
        .strip_prefix(']')
        .ok_or("unterminated section header")?;
    check_after_header(after)?;
    Ok((section.to_ascii_lowercase(), Some(name)))
}

fn check_after_header(after: &str) -> Result<(), &'static str> {
    let after = after.trim_start();
    if after.is_empty() || after.starts_with('#') || after.starts_with(';') {
        Ok(())
    } else {
        Err("unexpected text after a section header")
    }
}

/// Parse a value: quotes, escapes, comments; surrounding whitespace dropped.
pub(crate) fn parse_value(value: &str) -> Result<String, &'static str> {
    let mut out = String::new();
    let mut pending_space = String::new();
    let mut quoted = false;
    let mut chars = value.trim_start().chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' => {
                let escaped = match chars.next() {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('b') => '\u{8}',
                    Some(c @ ('"' | '\\')) => c,
                    None => return Err("line continuations are not supported"),
                    Some(_) => return Err("unknown escape in value"),
                };
                out.push_str(&pending_space);
                pending_space.clear();
                out.push(escaped);
            }
            '#' | ';' if !quoted => break,
            c if c.is_whitespace() && !quoted => pending_space.push(c),
            c => {
                out.push_str(&pending_space);
                pending_space.clear();
                out.push(c);
            }
        }
    }
    if quoted {
        return Err("unterminated quote in value");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_entries_and_comments() {
        let text = "# c\n[Core]\n\tbare = true\n[REMOTE \"o\\\"q\"] ; c\nurl=x\nflag\n";
        let parsed: Vec<_> = lines(text).map(Result::unwrap).collect();
        assert_eq!(
            parsed[0].1,
            Line::Section {
                section: "core".into(),
                subsection: None
            }
        );
        assert_eq!(
            parsed[2].1,
            Line::Section {
                section: "remote".into(),
                subsection: Some("o\"q".into())
            }
        );
        assert_eq!(
            parsed[4].1,
            Line::Entry {
                key: "flag",
                raw_value: ""
            }
        );
        assert_eq!(parsed[3].0, 5);
        for bad in ["[remote \"o]\n", "[remote o]\n", "[core] x\n", "[core\n"] {
            assert!(lines(bad).any(|l| l.is_err()), "{bad:?}");
        }
    }

    #[test]
    fn values_follow_git() {
        assert_eq!(parse_value(" \"a b\" # c").unwrap(), "a b");
        assert_eq!(parse_value(" a  b ;c").unwrap(), "a  b");
        assert_eq!(parse_value("x\\ty").unwrap(), "x\ty");
        assert!(parse_value("\"open").is_err() && parse_value("cont\\").is_err());
    }
}
