//! Owns remote URLs: parsing `http(s)://[user[:password]@]host[:port]/path`, keeping the
//! credentials apart from the address.
//!
//! Invariants: a [`RemoteUrl`]'s `Display` and `Debug` never show the password, and its
//! [`RemoteUrl::redacted()`] address (used in every error) carries no userinfo at all;
//! credentials leave it only through [`RemoteUrl::credentials()`], for the HTTP client's
//! `Authorization` header. Only `http` and `https` are accepted; queries, fragments, control
//! characters and spaces are refused, so a URL cannot smuggle extra request parts.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::fmt;

/// Returned by [`RemoteUrl::parse()`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid remote URL {url}: {reason}")]
pub struct Error {
    /// The URL with any userinfo removed.
    pub url: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// A smart-HTTP remote's address and optional credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    /// `scheme://host[:port][/path]`, no userinfo, no trailing `/`.
    base: String,
    username: Option<String>,
    password: Option<String>,
    bearer: Option<String>,
}

/// Lifecycle
impl RemoteUrl {
    /// Parse `url`; userinfo, if any, is percent-decoded into credentials.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| error(url, "it has no scheme (expected http:// or https://)"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(error(
                url,
                "only http:// and https:// remotes are supported",
            ));
        }
        if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(error(url, "it contains spaces or control characters"));
        }
        if url.contains(['?', '#']) {
            return Err(error(url, "it has a query or fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let (userinfo, host) = match authority.rfind('@') {
            Some(at) => (
                Some(authority.get(..at).unwrap_or_default()),
                authority.get(at + 1..).unwrap_or_default(),
            ),
            None => (None, authority),
        };
        if host.is_empty() || host.contains('@') {
            return Err(error(url, "it has no host"));
        }
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (info, None),
                };
                let decode = |s: &str| percent_decode(s).ok_or_else(|| error(url, "bad %-escape"));
                (Some(decode(user)?), password.map(decode).transpose()?)
            }
        };
        let base = format!("{scheme}://{host}{}", path.trim_end_matches('/'));
        Ok(Self {
            base,
            username,
            password,
            bearer: None,
        })
    }
}

/// Access
impl RemoteUrl {
    /// The address without credentials, safe to print.
    pub fn redacted(&self) -> &str {
        &self.base
    }

    /// `<base>/<path>`, for a request.
    pub fn join(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// The user name and password from the URL's userinfo, for HTTP basic authentication.
    pub fn credentials(&self) -> Option<(&str, Option<&str>)> {
        self.username
            .as_deref()
            .map(|user| (user, self.password.as_deref()))
    }
}

/// Credentials
impl RemoteUrl {
    /// Whether the URL carries credentials (basic or bearer).
    pub fn has_credentials(&self) -> bool {
        self.username.is_some() || self.bearer.is_some()
    }

    /// The same address with HTTP basic credentials (replacing any).
    #[must_use]
    pub fn with_basic_auth(mut self, user: &str, password: Option<&str>) -> Self {
        self.username = Some(user.to_owned());
        self.password = password.map(str::to_owned);
        self.bearer = None;
        self
    }

    /// The same address with a bearer token (replacing any credentials).
    #[must_use]
    pub fn with_bearer_token(mut self, token: &str) -> Self {
        self.username = None;
        self.password = None;
        self.bearer = Some(token.to_owned());
        self
    }

    /// The bearer token, for an `Authorization: Bearer` header.
    pub fn bearer_token(&self) -> Option<&str> {
        self.bearer.as_deref()
    }

    /// `scheme://host[:port]`, and the path: what a credential store matches on.
    pub fn origin_and_path(&self) -> (&str, &str) {
        let after_scheme = self.base.find("://").map_or(0, |at| at + 3);
        let path_at = self
            .base
            .get(after_scheme..)
            .and_then(|rest| rest.find('/'))
            .map_or(self.base.len(), |at| at + after_scheme);
        (
            self.base.get(..path_at).unwrap_or_default(),
            self.base.get(path_at..).unwrap_or_default(),
        )
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteUrl")
            .field("base", &self.base)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// An error naming `url` without its userinfo.
fn error(url: &str, reason: &'static str) -> Error {
    let redacted = match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let authority = rest.get(..authority_end).unwrap_or_default();
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            format!(
                "{scheme}://{host}{}",
                rest.get(authority_end..).unwrap_or_default()
            )
        }
        None => url
            .rsplit_once('@')
            .map_or(url, |(_, rest)| rest)
            .to_owned(),
    };
    Error {
        url: redacted,
        reason,
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(byte);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_off_and_never_displayed() {
        let url = RemoteUrl::parse("https://alice:s%40cret@git.example.com:8443/q.git/").unwrap();
        assert_eq!(url.redacted(), "https://git.example.com:8443/q.git");
        assert_eq!(url.credentials(), Some(("alice", Some("s@cret"))));
        assert_eq!(
            url.join("info/refs"),
            "https://git.example.com:8443/q.git/info/refs"
        );
        assert!(!format!("{url} {url:?}").contains("cret"));
        assert_eq!(
            url.origin_and_path(),
            ("https://git.example.com:8443", "/q.git")
        );
        let token = url.with_bearer_token("tok3n");
        assert_eq!(token.credentials(), None);
        assert_eq!(token.bearer_token(), Some("tok3n"));
        assert!(!format!("{token} {token:?}").contains("tok3n"));
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_credentials() {
        for bad in [
            "ftp://u:secret@h/x",
            "http://u:secret@/x",
            "http://u:secret@h/x?y",
            "http://u:secret@h/a b",
            "no-scheme",
            "http://u:sec%zzret@h/x",
        ] {
            let err = RemoteUrl::parse(bad).unwrap_err();
            assert!(!err.to_string().contains("secret"), "{err}");
            assert!(!err.to_string().contains("sec%zz"), "{err}");
        }
        assert!(RemoteUrl::parse("http://127.0.0.1:8080")
            .unwrap()
            .credentials()
            .is_none());
    }
}
