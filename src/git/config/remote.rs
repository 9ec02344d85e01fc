//! Owns the remotes of a repository's git config: reading `remote.<name>.url`, so a remote
//! added with `git remote add <name> <url>` can be fetched by name, and adding one
//! ([`add_remote()`]) the way `git remote add` writes it.
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
use crate::git::{
    config::{parse_value, Line},
    fs::SharedFs,
    refs::FullName,
};

/// Returned by `add_remote()` (`Repository::add_remote()`).
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The name would not make valid ref names (`refs/remotes/<name>/...`), or holds a `/`.
    #[error("invalid remote name {name:?}")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// A remote of that name is configured already.
    #[error("remote {name:?} already exists")]
    Exists {
        /// The name given.
        name: String,
    },
    /// Reading or writing the config failed.
    #[error(transparent)]
    Config(#[from] Error),
}

/// Whether `name` can name a remote: one component that makes valid tracking ref names
/// (`refs/remotes/<name>/<topic>`), as `git remote add` requires.
pub fn is_valid_remote_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('/')
        && FullName::new(format!("refs/remotes/{name}/HEAD")).is_ok()
}

/// Add the remote `name` with `url` to `<git_dir>/config`, as `git remote add` writes it
/// (`url` and the default fetch refspec), under `config.lock`: the config is read while the
/// lock is held, a remote of that name already there is refused, and nothing is left behind
/// (no `config.lock`) whatever fails.
pub fn add_remote(fs: &SharedFs, git_dir: &Path, name: &str, url: &str) -> Result<(), AddError> {
    if !is_valid_remote_name(name) {
        return Err(AddError::InvalidName {
            name: name.to_owned(),
        });
    }
    let quoted = url.replace('\\', "\\\\").replace('"', "\\\"");
    let section = format!(
        "[remote \"{name}\"]\n\turl = \"{quoted}\"\n\tfetch = +refs/heads/*:refs/remotes/{name}/*\n"
    );
    crate::git::config::append(
        fs,
        git_dir,
        |current| match find_remote_url(current, name) {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(AddError::Exists {
                name: name.to_owned(),
            }),
            Err((line, reason)) => Err(Error::Malformed {
                path: git_dir.join("config"),
                line,
                reason,
            }
            .into()),
        },
        &section,
    )
}

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
    use crate::git::fs::real;

    #[test]
    fn an_added_remote_reads_back_and_a_second_add_is_refused_without_a_lock_left() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config"), "[core]\n\tbare = true").unwrap();
        add_remote(&real(), dir.path(), "origin", "http://h/q \"x\".git").unwrap();
        assert_eq!(
            remote_url(dir.path(), "origin").unwrap().as_deref(),
            Some("http://h/q \"x\".git")
        );
        assert!(matches!(
            add_remote(&real(), dir.path(), "origin", "http://other"),
            Err(AddError::Exists { .. })
        ));
        for bad in ["", "a/b", "..", "x.lock", "a b"] {
            assert!(matches!(
                add_remote(&real(), dir.path(), bad, "http://h"),
                Err(AddError::InvalidName { .. })
            ));
        }
        assert!(!dir.path().join("config.lock").exists());
    }

    #[test]
    fn a_failed_config_write_leaves_no_config_lock_behind() {
        // The trap of issue 10: the CLI's own writer left config.lock when the write failed.
        // A config that does not parse is refused under the lock, and the lock goes.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config"),
            "[remote \"origin\"]\n\turl = \"open",
        )
        .unwrap();
        assert!(add_remote(&real(), dir.path(), "origin", "http://h").is_err());
        assert!(!dir.path().join("config.lock").exists());
    }

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
