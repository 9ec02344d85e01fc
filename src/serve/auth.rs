//! Owns who may do what: the token file (`--auth tokens.toml`), reading credentials from a
//! request (`Authorization: Bearer <token>`, or HTTP basic with the token as password so
//! git's credential helpers work), and the check of a topic against a token's globs.
//!
//! The file is a strict subset of TOML, parsed here by hand (a dozen lines of grammar do not
//! justify the `toml` crate's four crates of parser): `[[token]]` tables with string keys
//! `name` and `secret` and string-array keys `read` and `write`, `#` comments, blank lines.
//!
//! ```toml
//! [[token]]
//! name = "billing"             # shown in logs instead of the secret
//! secret = "9f2c7e1d6b..."     # what clients send
//! read = ["orders", "events/*"]
//! write = ["orders"]
//! ```
//!
//! A glob is a topic name where `*` matches any run of characters (`/` included); `*` alone
//! is every topic. Write does not imply read.
//!
//! Invariants: a secret is compared in constant time and never appears in an error, a log
//! line or a `Debug` output; a request without valid credentials is refused before its body
//! is read.

use std::{fmt, path::Path};

use super::render::base64_decode;

/// Returned by [`Tokens::from_toml()`] and [`Tokens::load()`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The file could not be read.
    #[error("cannot read the token file {path}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not in the accepted format.
    #[error("token file line {line}: {reason}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the secret).
        reason: String,
    },
}

/// The tokens of a token file.
#[derive(Clone, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

#[derive(Clone, Default)]
struct Token {
    name: String,
    secret: Vec<u8>,
    read: Vec<String>,
    write: Vec<String>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("Tokens").field("names", &names).finish()
    }
}

/// What an authenticated request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No token file: everything (the server listens on loopback only).
    Open,
    /// The token of this index in the file.
    Token(usize),
}

/// Lifecycle
impl Tokens {
    /// Read and parse the token file at `path`.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Parse a token file (see the module docs for the format).
    ///
    /// ```
    /// let tokens = gitmq::serve::Tokens::from_toml(
    ///     "[[token]]\nname = \"ci\"\nsecret = \"s3cret-token\"\nread = [\"orders\"]\n",
    /// )?;
    /// assert_eq!(tokens.len(), 1);
    /// # Ok::<(), gitmq::serve::AuthError>(())
    /// ```
    pub fn from_toml(text: &str) -> Result<Self, AuthError> {
        let mut tokens: Vec<Token> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let syntax = |reason: &str| AuthError::Syntax {
                line,
                reason: reason.to_owned(),
            };
            let content = strip_comment(raw).trim();
            if content.is_empty() {
                continue;
            }
            if content == "[[token]]" {
                tokens.push(Token::default());
                continue;
            }
            let Some((key, value)) = content.split_once('=') else {
                return Err(syntax("expected `[[token]]` or `key = value`"));
            };
            let Some(token) = tokens.last_mut() else {
                return Err(syntax("a key before the first `[[token]]`"));
            };
            let value = value.trim();
            match key.trim() {
                "name" => {
                    token.name =
                        parse_string(value).ok_or_else(|| syntax("name must be a \"string\""))?;
                }
                "secret" => {
                    let secret =
                        parse_string(value).ok_or_else(|| syntax("secret must be a \"string\""))?;
                    if secret.len() < 8 {
                        return Err(syntax("secret must be at least 8 characters"));
                    }
                    token.secret = secret.into_bytes();
                }
                "read" => {
                    token.read = parse_array(value)
                        .ok_or_else(|| syntax("read must be an array of \"strings\""))?;
                }
                "write" => {
                    token.write = parse_array(value)
                        .ok_or_else(|| syntax("write must be an array of \"strings\""))?;
                }
                other => {
                    return Err(syntax(&format!(
                        "unknown key {other:?} (name, secret, read, write)"
                    )))
                }
            }
        }
        for (i, token) in tokens.iter().enumerate() {
            if token.secret.is_empty() {
                return Err(AuthError::Syntax {
                    line: 0,
                    reason: format!("token #{} ({:?}) has no secret", i + 1, token.name),
                });
            }
            if tokens[..i].iter().any(|t| t.secret == token.secret) {
                return Err(AuthError::Syntax {
                    line: 0,
                    reason: format!(
                        "token #{} ({:?}) repeats another token's secret",
                        i + 1,
                        token.name
                    ),
                });
            }
        }
        Ok(Self { tokens })
    }
}

/// Access
impl Tokens {
    /// How many tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are none (then every request is refused).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token whose secret is `secret`, compared in constant time per token.
    pub fn find(&self, secret: &[u8]) -> Option<Access> {
        let mut found = None;
        for (i, token) in self.tokens.iter().enumerate() {
            if constant_time_eq(&token.secret, secret) {
                found = Some(Access::Token(i));
            }
        }
        found
    }

    /// The token's name (for logs).
    pub fn name(&self, access: &Access) -> &str {
        match access {
            Access::Open => "-",
            Access::Token(i) => self.tokens.get(*i).map_or("?", |t| t.name.as_str()),
        }
    }

    /// Whether `access` may read (consume, commit positions of) `topic`.
    pub fn may_read(&self, access: &Access, topic: &str) -> bool {
        self.allows(access, topic, |t| &t.read)
    }

    /// Whether `access` may write (publish to) `topic`.
    pub fn may_write(&self, access: &Access, topic: &str) -> bool {
        self.allows(access, topic, |t| &t.write)
    }

    fn allows(&self, access: &Access, topic: &str, globs: impl Fn(&Token) -> &Vec<String>) -> bool {
        match access {
            Access::Open => true,
            Access::Token(i) => self
                .tokens
                .get(*i)
                .is_some_and(|t| globs(t).iter().any(|g| glob_matches(g, topic))),
        }
    }
}

/// The secret a request carries: a bearer token, or the password of HTTP basic credentials.
pub(crate) fn secret_of(authorization: &[u8]) -> Option<Vec<u8>> {
    let text = authorization.trim_ascii();
    let (scheme, rest) = text.split_at(text.iter().position(|b| *b == b' ')?);
    let rest = rest.trim_ascii();
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return Some(rest.to_vec());
    }
    if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = base64_decode(rest)?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

/// Whether `glob` (`*` = any run of characters) matches `name`.
pub(crate) fn glob_matches(glob: &str, name: &str) -> bool {
    let (glob, name) = (glob.as_bytes(), name.as_bytes());
    // Iterative wildcard matching with one backtrack point (linear in practice).
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(&c) if c == name[n] => {
                g += 1;
                n += 1;
            }
            _ => match star {
                Some((sg, sn)) => {
                    g = sg + 1;
                    n = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|c| *c == b'*')
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn strip_comment(line: &str) -> &str {
    let mut in_string = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '#' if !in_string => return &line[..i],
            _ => {}
        }
    }
    line
}

/// A basic TOML string: `"..."` with `\"` and `\\` escapes.
fn parse_string(value: &str) -> Option<String> {
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                _ => return None,
            },
            '"' => return None,
            c if c.is_control() => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// `["a", "b"]` (strings without commas inside).
fn parse_array(value: &str) -> Option<Vec<String>> {
    let inner = value.strip_prefix('[')?.strip_suffix(']')?.trim();
    if inner.is_empty() {
        return Some(Vec::new());
    }
    inner
        .trim_end_matches(',')
        .split(',')
        .map(|item| parse_string(item.trim()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
# two tokens
[[token]]
name = "billing"   # a comment
secret = "billing-secret-1"
read = ["orders", "events/*"]
write = ["orders"]

[[token]]
name = "admin"
secret = "admin-secret-22"
read = ["*"]
write = ["*",]
"#;

    #[test]
    fn the_token_file_grants_read_and_write_per_glob() {
        let tokens = Tokens::from_toml(FILE).unwrap();
        let billing = tokens.find(b"billing-secret-1").unwrap();
        assert!(tokens.may_read(&billing, "orders"));
        assert!(tokens.may_read(&billing, "events/eu/x"), "* crosses /");
        assert!(!tokens.may_read(&billing, "payments"));
        assert!(tokens.may_write(&billing, "orders"));
        assert!(
            !tokens.may_write(&billing, "events/eu"),
            "write is not implied by read"
        );
        let admin = tokens.find(b"admin-secret-22").unwrap();
        assert!(tokens.may_write(&admin, "anything/at/all"));
        assert_eq!(
            tokens.find(b"admin-secret-2"),
            None,
            "a prefix is not the secret"
        );
        assert_eq!(tokens.name(&admin), "admin");
    }

    #[test]
    fn bad_token_files_name_the_line_and_never_the_secret() {
        for (text, line) in [
            ("secret = \"x\"", 1),
            ("[[token]]\nsecret = \"short\"", 2),
            ("[[token]]\nsecret = 'single-quoted'", 2),
            ("[[token]]\nsecret = \"long-enough\"\nreed = [\"a\"]", 3),
            ("[[token]]\nsecret = \"long-enough\"\nread = \"a\"", 3),
            ("[[toke]]", 1),
        ] {
            match Tokens::from_toml(text) {
                Err(AuthError::Syntax { line: got, reason }) => {
                    assert_eq!(got, line, "{text:?}: {reason}");
                    assert!(
                        !reason.contains("long-enough"),
                        "the secret leaked: {reason}"
                    );
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(
            Tokens::from_toml("[[token]]\nname = \"x\"").is_err(),
            "no secret"
        );
        let debug = format!("{:?}", Tokens::from_toml(FILE).unwrap());
        assert!(
            !debug.contains("secret-1"),
            "Debug shows names only: {debug}"
        );
    }

    #[test]
    fn credentials_come_from_bearer_or_basic() {
        assert_eq!(secret_of(b"Bearer abc.def").unwrap(), b"abc.def");
        // "git:s3cret" in base64.
        assert_eq!(secret_of(b"Basic Z2l0OnMzY3JldA==").unwrap(), b"s3cret");
        assert_eq!(secret_of(b"Basic !!!"), None);
        assert_eq!(secret_of(b"Digest x"), None);
        assert_eq!(secret_of(b"Bearer"), None);
    }

    #[test]
    fn globs_match_like_shell_stars() {
        for (glob, name, expect) in [
            ("*", "a/b", true),
            ("orders", "orders", true),
            ("orders", "orders2", false),
            ("eu/*", "eu/orders", true),
            ("eu/*", "us/orders", false),
            ("*-dlq", "orders-dlq", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("", "", true),
        ] {
            assert_eq!(glob_matches(glob, name), expect, "{glob} vs {name}");
        }
    }
}
