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

use std::path::Path;

pub use crate::git::config::Error;
use crate::git::config::{parse_value, Line};

/// The first `remote.<name>.url` in `<git_dir>/config`, or `None`.
pub fn remote_url(git_dir: &Path, name: &str) -> Result<Option<String>, Error> {
    Ok(crate::git::config::read(git_dir, |text| find_remote_url(text, name))?.flatten())
}

/// The first `remote.<name>.url` in config text; errors are (line number, reason).
fn find_remote_url(text: &str, name: &str) -> Result<Option<String>, (usize, &'static str)> {
    let mut in_section = false;
    for line in crate::git::config::lines(text) {
        match line? {
            (
                _,
                Line::Section {
                    section,
                    subsection,
                },
            ) => in_section = section == "remote" && subsection.as_deref() == Some(name),
            (number, Line::Entry { key, raw_value }) => {
                if in_section && key.eq_ignore_ascii_case("url") {
                    return parse_value(raw_value)
                        .map(Some)
                        .map_err(|reason| (number, reason));
                }
            }
        }
    }
    Ok(None)
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
