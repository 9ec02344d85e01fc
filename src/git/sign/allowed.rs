//! Owns OpenSSH's allowed-signers file (`ssh-keygen(1)`, ALLOWED SIGNERS; what git's
//! `gpg.ssh.allowedSignersFile` names): which keys may sign as which principals, in which
//! namespaces, when.
//!
//! One entry per line: `principals [options] keytype base64-key [comment]`. Blank lines and
//! lines starting with `#` are skipped. `principals` is a comma-separated pattern list
//! (`*` and `?` wildcards, `!` negates; may be double-quoted); options are comma-separated:
//! `namespaces="git,file"` (a pattern list), `valid-after="YYYYMMDD[HHMM[SS]][Z]"`,
//! `valid-before=...`, `cert-authority`. Matching follows OpenSSH's `match_pattern_list`
//! (case-sensitive): a principal is allowed when a pattern matches it and no negated one does.
//!
//! Differences from OpenSSH, all failing closed:
//! - the whole file is checked when read: a malformed line is an error naming the line (OpenSSH
//!   only fails on a malformed line whose principals match);
//! - `cert-authority` lines are read but never allow anything (gitmq verifies plain keys only;
//!   [`AllowedSigners::cert_authorities()`] counts them so a caller can warn);
//! - a time without `Z` is read in the UTC offset the machine has now (OpenSSH uses the local
//!   time zone's offset at that date; they differ only across a daylight-saving change).
//!
//! Invariant: reading never panics; a file is at most [`MAX_FILE_LEN`] bytes.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::path::{Path, PathBuf};

use super::sshsig::PublicKey;

/// The largest allowed-signers file read.
pub const MAX_FILE_LEN: u64 = 16 << 20;

/// Returned by [`AllowedSigners::parse()`] and [`AllowedSigners::open()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read the allowed-signers file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not an allowed-signers entry.
    #[error("allowed-signers line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file is larger than [`MAX_FILE_LEN`].
    #[error("the allowed-signers file {path} is larger than {MAX_FILE_LEN} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The principal pattern list, as written.
    pub principals: String,
    /// The key.
    pub key: PublicKey,
    /// `namespaces=`: the pattern list, if restricted.
    pub namespaces: Option<String>,
    /// `valid-after=`, in unix seconds.
    pub valid_after: Option<i64>,
    /// `valid-before=`, in unix seconds.
    pub valid_before: Option<i64>,
    /// `cert-authority`: never matches here (see the module docs).
    pub cert_authority: bool,
    /// The 1-based line number.
    pub line: usize,
}

impl Entry {
    /// Whether this entry lets `key` sign as `principal` in `namespace` at `time` (unix
    /// seconds; `None`: any time).
    pub fn allows(
        &self,
        principal: &str,
        key: &PublicKey,
        namespace: &str,
        time: Option<i64>,
    ) -> bool {
        self.key == *key
            && !self.cert_authority
            && match_list(principal, &self.principals) == Match::Yes
            && self
                .namespaces
                .as_deref()
                .is_none_or(|list| match_list(namespace, list) == Match::Yes)
            && time.is_none_or(|t| self.is_valid_at(t))
    }

    /// Whether the entry's validity window holds `time`.
    pub fn is_valid_at(&self, time: i64) -> bool {
        self.valid_after.is_none_or(|after| time >= after)
            && self.valid_before.is_none_or(|before| time <= before)
    }

    /// Whether the entry has a validity window.
    pub fn is_timed(&self) -> bool {
        self.valid_after.is_some() || self.valid_before.is_some()
    }
}

/// An allowed-signers file, read.
///
/// ```
/// use gitmq::git::sign::{AllowedSigners, PublicKey};
/// let key = PublicKey::Ed25519([1; 32]);
/// let file = format!("*@example.com,!mallory@example.com namespaces=\"git\" {}\n", key.to_openssh());
/// let signers = AllowedSigners::parse(&file)?;
/// assert!(signers.allows("shop@example.com", &key, "git", None));
/// assert!(!signers.allows("mallory@example.com", &key, "git", None));
/// assert!(!signers.allows("shop@example.com", &key, "file", None));
/// # Ok::<(), gitmq::git::sign::AllowedSignersError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedSigners {
    entries: Vec<Entry>,
}

/// Lifecycle
impl AllowedSigners {
    /// Read the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        use std::io::Read;
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut text = String::new();
        file.take(MAX_FILE_LEN + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_FILE_LEN {
            return Err(Error::TooLarge {
                path: path.to_owned(),
            });
        }
        Self::parse(&text)
    }

    /// Parse the text of an allowed-signers file.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let offset = gix_date::Time::now_local_or_utc().offset;
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let fail = |reason: &str| Error::Line {
                line: number,
                reason: reason.to_owned(),
            };
            let line = line.trim_matches([' ', '\t', '\r']);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (principals, rest) = token(line).ok_or_else(|| fail("no key"))?;
            let (first, after) = token(rest).ok_or_else(|| fail("no key"))?;
            let (options, algorithm, after) = if is_key_type(first) {
                (None, first, after)
            } else {
                let (algorithm, after) =
                    token(after).ok_or_else(|| fail("no key after the options"))?;
                (Some(first), algorithm, after)
            };
            let (base64, _comment) = token(after).ok_or_else(|| fail("no key after its type"))?;
            let key = PublicKey::from_openssh(algorithm, base64)
                .map_err(|err| fail(&format!("invalid key: {}", err.0)))?;
            let mut entry = Entry {
                principals: principals.trim_matches('"').to_owned(),
                key,
                namespaces: None,
                valid_after: None,
                valid_before: None,
                cert_authority: false,
                line: number,
            };
            if let Some(options) = options {
                parse_options(options, offset, &mut entry).map_err(|reason| fail(&reason))?;
            }
            if entry.principals.is_empty() {
                return Err(fail("no principals"));
            }
            entries.push(entry);
        }
        Ok(Self { entries })
    }
}

/// Access
impl AllowedSigners {
    /// Whether some entry lets `key` sign as `principal` in `namespace` at `time`.
    pub fn allows(
        &self,
        principal: &str,
        key: &PublicKey,
        namespace: &str,
        time: Option<i64>,
    ) -> bool {
        self.entries
            .iter()
            .any(|e| e.allows(principal, key, namespace, time))
    }

    /// Whether any (non-CA) entry names `key`, whatever its principals.
    pub fn knows(&self, key: &PublicKey) -> bool {
        self.entries
            .iter()
            .any(|e| !e.cert_authority && e.key == *key)
    }

    /// Whether an entry naming `key` has a validity window (then every signature by it is
    /// checked at its own time).
    pub fn is_timed(&self, key: &PublicKey) -> bool {
        self.entries.iter().any(|e| e.key == *key && e.is_timed())
    }

    /// Every entry, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// How many `cert-authority` entries were read (they allow nothing here).
    pub fn cert_authorities(&self) -> usize {
        self.entries.iter().filter(|e| e.cert_authority).count()
    }
}

fn is_key_type(word: &str) -> bool {
    word.starts_with("ssh-") || word.starts_with("ecdsa-") || word.starts_with("sk-")
}

/// The next whitespace-separated token of `text` (double quotes group) and the rest.
fn token(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start_matches([' ', '\t']);
    if text.is_empty() {
        return None;
    }
    let mut quoted = false;
    for (at, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return Some((text.get(..at)?, text.get(at..)?)),
            _ => {}
        }
    }
    Some((text, ""))
}

fn parse_options(options: &str, offset: i32, entry: &mut Entry) -> Result<(), String> {
    let mut rest = options;
    while !rest.is_empty() {
        // One option up to the next comma outside quotes.
        let mut quoted = false;
        let mut end = rest.len();
        for (at, c) in rest.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => {
                    end = at;
                    break;
                }
                _ => {}
            }
        }
        if quoted {
            return Err("unterminated quote in the options".into());
        }
        let option = rest.get(..end).unwrap_or_default();
        rest = rest.get(end + 1..).unwrap_or_default();
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => {
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .ok_or_else(|| format!("option {name} needs a quoted value"))?;
                (name, Some(value))
            }
            None => (option, None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("cert-authority", None) => entry.cert_authority = true,
            ("namespaces", Some(value)) => entry.namespaces = Some(value.to_owned()),
            ("valid-after", Some(value)) => entry.valid_after = Some(parse_time(value, offset)?),
            ("valid-before", Some(value)) => entry.valid_before = Some(parse_time(value, offset)?),
            _ => return Err(format!("unsupported option {option:?}")),
        }
    }
    Ok(())
}

/// `YYYYMMDD[HHMM[SS]][Z]` in unix seconds; without `Z`, in the UTC offset `offset`.
fn parse_time(text: &str, offset: i32) -> Result<i64, String> {
    let bad = || format!("invalid time {text:?} (YYYYMMDD[HHMM[SS]][Z])");
    let (digits, utc) = match text.strip_suffix(['Z', 'z']) {
        Some(digits) => (digits, true),
        None => (text, false),
    };
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let field = |range: std::ops::Range<usize>| -> i64 {
        digits.get(range).and_then(|s| s.parse().ok()).unwrap_or(0)
    };
    let (year, month, day) = (field(0..4), field(4..6), field(6..8));
    let (hour, minute, second) = (field(8..10), field(10..12), field(12..14));
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Ok(if utc {
        seconds
    } else {
        seconds - i64::from(offset)
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The outcome of OpenSSH's `match_pattern_list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// A negated pattern matched.
    Denied,
    /// No pattern matched.
    No,
    /// A pattern matched and no negated one.
    Yes,
}

fn match_list(text: &str, list: &str) -> Match {
    let mut got = Match::No;
    for pattern in list.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if matches_pattern(text.as_bytes(), pattern.as_bytes()) {
            if negated {
                return Match::Denied;
            }
            got = Match::Yes;
        }
    }
    got
}

/// Glob match with `*` (any run) and `?` (one byte), iteratively (no recursion, linear-ish).
fn matches_pattern(text: &[u8], pattern: &[u8]) -> bool {
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == b'?' || Some(c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey::Ed25519([n; 32])
    }

    #[test]
    fn patterns_match_like_openssh() {
        assert!(matches_pattern(b"a@x.com", b"*@x.com"));
        assert!(matches_pattern(b"a@x.com", b"?@x.*"));
        assert!(matches_pattern(b"", b"*"));
        assert!(!matches_pattern(b"a@y.com", b"*@x.com"));
        assert!(!matches_pattern(b"A@x.com", b"a@x.com"), "case-sensitive");
        assert_eq!(match_list("a@x", "b@x,*@x"), Match::Yes);
        assert_eq!(match_list("m@x", "*@x,!m@x"), Match::Denied);
        assert_eq!(match_list("m@y", "*@x"), Match::No);
        assert!(
            matches_pattern(&[b'a'; 64], &[b'*'; 64]),
            "no exponential blow-up"
        );
    }

    #[test]
    fn lines_with_options_quotes_and_comments_parse() {
        let text = format!(
            "# comment\n\n  a@x {k1} laptop\n\"b@x,c@x\" namespaces=\"git,file\",valid-after=\"20200101\",valid-before=\"20300101Z\" {k2}\n*@ca cert-authority {k3}\n",
            k1 = key(1).to_openssh(),
            k2 = key(2).to_openssh(),
            k3 = key(3).to_openssh()
        );
        let signers = AllowedSigners::parse(&text).unwrap();
        assert_eq!(signers.entries().len(), 3);
        assert!(signers.allows("a@x", &key(1), "git", Some(0)));
        assert!(
            !signers.allows("a@x", &key(2), "git", None),
            "key of another principal"
        );
        let second = &signers.entries()[1];
        assert_eq!(
            second.valid_before,
            Some(1_893_456_000),
            "2030-01-01T00:00:00Z"
        );
        assert!(signers.allows("c@x", &key(2), "file", Some(1_700_000_000)));
        assert!(
            !signers.allows("c@x", &key(2), "git", Some(1_900_000_000)),
            "expired"
        );
        assert!(!signers.allows("c@x", &key(2), "mail", None), "namespace");
        assert!(
            !signers.allows("z@ca", &key(3), "git", None),
            "cert-authority allows nothing"
        );
        assert_eq!(signers.cert_authorities(), 1);
        assert!(signers.is_timed(&key(2)) && !signers.is_timed(&key(1)));
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        for (text, line) in [
            ("a@x\n", 1),
            ("# ok\na@x ssh-ed25519\n", 2),
            ("a@x ssh-ed25519 !!!\n", 1),
            ("a@x bogus-option ssh-ed25519 AAAA\n", 1),
            ("a@x namespaces=git ssh-ed25519 AAAA\n", 1),
            ("a@x valid-after=\"2020\" ssh-ed25519 AAAA\n", 1),
        ] {
            match AllowedSigners::parse(text) {
                Err(Error::Line { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn dates_convert_to_unix_seconds() {
        assert_eq!(parse_time("19700101Z", 0), Ok(0));
        assert_eq!(parse_time("20000301120000Z", 0), Ok(951_912_000));
        assert_eq!(
            parse_time("19700101", 3600),
            Ok(-3600),
            "local time at +01:00"
        );
        assert!(parse_time("20001301Z", 0).is_err());
    }
}
