//! Owns finding credentials for a remote whose URL carries none: the environment, then git's
//! credential store file (what `git credential-store` writes).
//!
//! Order (the first that applies wins):
//! 1. userinfo in the URL (`https://user:token@host/q.git`), already in the [`RemoteUrl`];
//! 2. `GITMQ_HTTP_TOKEN`: a bearer token (`Authorization: Bearer`);
//! 3. `GITMQ_HTTP_USER` and `GITMQ_HTTP_PASSWORD`: HTTP basic;
//! 4. the first matching line of `$GITMQ_CREDENTIALS_FILE` if set, else of git's default store
//!    files `~/.git-credentials` and `$XDG_CONFIG_HOME/git/credentials` (or
//!    `~/.config/git/credentials`). A line `https://user:password@host[:port][/path]`
//!    matches a remote with the same scheme, host and port (and user, if the remote's URL
//!    names one), whatever the path, as git's own store matches by default.
//!
//! Invariants: a credential found here goes only into the [`RemoteUrl`], which never shows it
//! (not in `Display`, `Debug` or any error); a store file that cannot be read or has bad
//! lines is skipped line by line, never echoed; the file is read with a size limit.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use super::RemoteUrl;

/// Store files larger than this are not read (1 MiB).
const MAX_STORE_FILE: u64 = 1 << 20;

/// Where credentials come from: the process environment and the user's home, or fixed values
/// (tests).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `GITMQ_HTTP_TOKEN`.
    pub token: Option<String>,
    /// `GITMQ_HTTP_USER`.
    pub user: Option<String>,
    /// `GITMQ_HTTP_PASSWORD`.
    pub password: Option<String>,
    /// Credential store files, searched in order.
    pub store_files: Vec<PathBuf>,
}

impl Sources {
    /// The environment's: the variables above and git's store files.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let store_files = if let Some(file) = var("GITMQ_CREDENTIALS_FILE") {
            vec![PathBuf::from(file)]
        } else {
            let home = var("HOME").map(PathBuf::from);
            let config = var("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".config")));
            home.map(|h| h.join(".git-credentials"))
                .into_iter()
                .chain(config.map(|c| c.join("git/credentials")))
                .collect()
        };
        Self {
            token: var("GITMQ_HTTP_TOKEN"),
            user: var("GITMQ_HTTP_USER"),
            password: var("GITMQ_HTTP_PASSWORD"),
            store_files,
        }
    }
}

/// `url` with credentials from `sources` if it has none.
///
/// ```
/// use gitmq::git::wire::{credentials::{with_credentials, Sources}, RemoteUrl};
/// let url = RemoteUrl::parse("https://git.example.com/q.git").unwrap();
/// let sources = Sources { token: Some("t0k3n".into()), ..Sources::default() };
/// assert_eq!(with_credentials(url, &sources).bearer_token(), Some("t0k3n"));
/// ```
pub fn with_credentials(url: RemoteUrl, sources: &Sources) -> RemoteUrl {
    let complete = match url.credentials() {
        Some((_, password)) => password.is_some(),
        None => url.bearer_token().is_some(),
    };
    if complete {
        return url;
    }
    let wanted_user = url.credentials().map(|(user, _)| user.to_owned());
    if wanted_user.is_none() {
        if let Some(token) = &sources.token {
            return url.with_bearer_token(token);
        }
        if let Some(user) = &sources.user {
            return url.with_basic_auth(user, sources.password.as_deref());
        }
    }
    for file in &sources.store_files {
        if let Some((user, password)) = find_in_store(file, &url, wanted_user.as_deref()) {
            return url.with_basic_auth(&user, Some(&password));
        }
    }
    url
}

/// The first entry of the store `file` for `url`'s scheme, host and port (and `user`).
fn find_in_store(file: &Path, url: &RemoteUrl, user: Option<&str>) -> Option<(String, String)> {
    let mut text = String::new();
    std::fs::File::open(file)
        .ok()?
        .take(MAX_STORE_FILE)
        .read_to_string(&mut text)
        .ok()?;
    let (origin, _) = url.origin_and_path();
    text.lines().find_map(|line| {
        let stored = RemoteUrl::parse(line.trim()).ok()?;
        let (stored_user, password) = stored.credentials()?;
        let password = password?;
        let same_origin = stored.origin_and_path().0.eq_ignore_ascii_case(origin);
        (same_origin && user.is_none_or(|u| u == stored_user))
            .then(|| (stored_user.to_owned(), password.to_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> RemoteUrl {
        RemoteUrl::parse(s).unwrap()
    }

    #[test]
    fn url_credentials_win_then_token_then_user_then_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("creds");
        std::fs::write(
            &store,
            "garbage line\nhttps://bob:other@elsewhere.example\nhttps://bob:s%40fe@git.example.com/any/path\nhttps://carol:c@git.example.com\n",
        )
        .unwrap();
        let all = Sources {
            token: Some("tok".into()),
            user: Some("env-user".into()),
            password: Some("env-pass".into()),
            store_files: vec![store.clone()],
        };
        let given = with_credentials(url("https://u:p@git.example.com/q.git"), &all);
        assert_eq!(given.credentials(), Some(("u", Some("p"))));
        assert_eq!(
            with_credentials(url("https://git.example.com/q.git"), &all).bearer_token(),
            Some("tok")
        );
        let env_basic = Sources {
            token: None,
            ..all.clone()
        };
        assert_eq!(
            with_credentials(url("https://git.example.com/q.git"), &env_basic).credentials(),
            Some(("env-user", Some("env-pass")))
        );
        let store_only = Sources {
            store_files: vec![dir.path().join("missing"), store],
            ..Sources::default()
        };
        assert_eq!(
            with_credentials(url("https://git.example.com/q.git"), &store_only).credentials(),
            Some(("bob", Some("s@fe")))
        );
        assert_eq!(
            with_credentials(url("https://carol@git.example.com/q.git"), &store_only).credentials(),
            Some(("carol", Some("c")))
        );
        let other_port = with_credentials(url("https://git.example.com:8443/q.git"), &store_only);
        assert!(!other_port.has_credentials());
        let plain_http = with_credentials(url("http://git.example.com/q.git"), &store_only);
        assert!(!plain_http.has_credentials());
    }
}
