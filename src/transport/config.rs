//! Owns reading one key of a repository's git config: `remote.<name>.url`, so a remote added
//! with `git remote add <name> <url>` can be fetched by name.
//!
//! Strict and small on purpose: it reads `<git-dir>/config` only, understands section headers
//! `[remote "<name>"]` (section case-insensitive, name case-sensitive, `\"` and `\\` escapes),
//! `key = value` lines with double quotes, `\"`, `\\`, `\n` and `\t` escapes and `#`/`;`
//! comments, and takes the first `url` of the section, as `git fetch` does. Anything it does
//! not understand inside the wanted section (a line continuation, an unterminated quote) is
//! an [`Error::Malformed`] rather than a guess. `include`, `includeIf` and
//! `url.<base>.insteadOf` are not followed.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::{
    io,
    path::{Path, PathBuf},
};

/// Returned by [`remote_url()`].
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

/// The first `remote.<name>.url` in `<git_dir>/config`, or `None`.
pub fn remote_url(git_dir: &Path, name: &str) -> Result<Option<String>, Error> {
    let path = git_dir.join("config");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path, source }),
    };
    find_remote_url(&text, name).map_err(|(line, reason)| Error::Malformed { path, line, reason })
}

/// The first `remote.<name>.url` in config text; errors are (line number, reason).
fn find_remote_url(text: &str, name: &str) -> Result<Option<String>, (usize, &'static str)> {
    let mut in_section = false;
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            in_section = parse_header(header).map_err(|reason| (number, reason))?
                == Some(("remote", name.to_owned()));
            continue;
        }
        if !in_section {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key.trim(), value),
            None => (line, ""),
        };
        if key.eq_ignore_ascii_case("url") {
            return parse_value(value)
                .map(Some)
                .map_err(|reason| (number, reason));
        }
    }
    Ok(None)
}

/// Parse a section header (after `[`): `Some(("remote", name))` for `remote "name"]`, or
/// `None` for a header of another shape.
fn parse_header(header: &str) -> Result<Option<(&'static str, String)>, &'static str> {
    let Some((section, rest)) = header.split_once(char::is_whitespace) else {
        return Ok(None);
    };
    if !section.eq_ignore_ascii_case("remote") {
        return Ok(None);
    }
    let rest = rest.trim_start();
    let Some(quoted) = rest.strip_prefix('"') else {
        return Ok(None);
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
        .ok_or("unterminated section header")?
        .trim_start();
    if !(after.is_empty() || after.starts_with('#') || after.starts_with(';')) {
        return Err("unexpected text after a section header");
    }
    Ok(Some(("remote", name)))
}

/// Parse a value: quotes, escapes, comments; surrounding whitespace dropped.
fn parse_value(value: &str) -> Result<String, &'static str> {
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
    fn the_url_of_a_remote_added_by_git_is_found() {
        let text = "[core]\n\tbare = true\n[remote \"origin\"]\n\turl = http://127.0.0.1:1/q.git\n\
                    \tfetch = +refs/heads/*:refs/remotes/origin/*\n[remote \"other\"]\n\turl = x\n";
        assert_eq!(
            find_remote_url(text, "origin").unwrap().as_deref(),
            Some("http://127.0.0.1:1/q.git")
        );
        assert_eq!(
            find_remote_url(text, "other").unwrap().as_deref(),
            Some("x")
        );
        assert_eq!(find_remote_url(text, "missing").unwrap(), None);
        assert_eq!(
            find_remote_url(text, "Origin").unwrap(),
            None,
            "names are case-sensitive"
        );
    }

    #[test]
    fn quotes_escapes_comments_and_case_follow_git() {
        let text = "[REMOTE \"o\\\"q\"] # comment\n  URL = \"http://h/a b\" ; trailing\n";
        assert_eq!(
            find_remote_url(text, "o\"q").unwrap().as_deref(),
            Some("http://h/a b")
        );
    }

    #[test]
    fn what_the_reader_does_not_understand_is_an_error_with_a_line_number() {
        assert_eq!(
            find_remote_url("[remote \"o\"]\nurl = \"http://h\n", "o"),
            Err((2, "unterminated quote in value"))
        );
        assert_eq!(
            find_remote_url("[remote \"o\"]\nurl = http://h\\\n", "o"),
            Err((2, "line continuations are not supported"))
        );
        assert_eq!(
            find_remote_url("[remote \"o]\n", "o"),
            Err((1, "unterminated section header"))
        );
    }
}
