//! Owns [`FullName`]: a full ref name (`refs/...` or `HEAD`) validated as git does, the only
//! kind of name [`RefStore`](super::RefStore) reads, lists under or locks.
//!
//! Invariant: a [`FullName`] passed git's ref-name rules (`gix-validate`: no `..`, no
//! component starting with `.` or ending with `.lock`, none of ``~^:?*[\`` or `@{`, no control
//! characters) and gitmq's stricter ones (no empty, `.` or `..` component, no backslash, at
//! most [`MAX_FULL_NAME_LEN`] bytes), so `<git-dir>/<name>` never leaves the git directory.

use std::{fmt, ops::Deref};

/// The longest full ref name accepted, in bytes.
pub const MAX_FULL_NAME_LEN: usize = 1024;

/// Returned by [`FullName::new()`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a valid full ref name: {reason}")]
pub struct InvalidName {
    /// The refused name (lossy, for the message).
    pub name: String,
    /// Why it was refused.
    pub reason: &'static str,
}

/// A validated full ref name, e.g. `refs/heads/orders`.
///
/// ```
/// use gitmq::git::refs::FullName;
/// assert!(FullName::new("refs/heads/eu/orders").is_ok());
/// assert!(FullName::new("refs/heads/../../config").is_err());
/// assert!(FullName::new("orders").is_err(), "not a full name");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FullName(String);

/// Lifecycle
impl FullName {
    /// Validate `name` as a full ref name.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        match check(&name) {
            Ok(()) => Ok(Self(name)),
            Err(reason) => Err(InvalidName { name, reason }),
        }
    }
}

/// Access
impl FullName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for FullName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for FullName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for FullName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for FullName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for FullName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for FullName {
    type Error = InvalidName;

    fn try_from(name: &str) -> Result<Self, InvalidName> {
        Self::new(name)
    }
}

/// Check a full ref name; the reason on failure.
fn check(name: &str) -> Result<(), &'static str> {
    if name.len() > MAX_FULL_NAME_LEN {
        return Err("it is too long");
    }
    if name != "HEAD" && !name.starts_with("refs/") {
        return Err("it does not start with refs/");
    }
    if name.bytes().any(|b| b.is_ascii_control() || b == b'\\') {
        return Err("it contains a control character or a backslash");
    }
    if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err("a path component is empty, '.' or '..'");
    }
    gix_validate::reference::name(name.as_bytes().into())
        .map_err(|_| "git refuses it (see git check-ref-format)")?;
    Ok(())
}

/// Whether `prefix` (a full name ending in `/`, e.g. `refs/gitmq/`) names a directory of refs
/// inside the git directory.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), InvalidName> {
    let invalid = |reason| InvalidName {
        name: prefix.to_owned(),
        reason,
    };
    let Some(dir) = prefix.strip_suffix('/') else {
        return Err(invalid("a prefix ends in '/'"));
    };
    if dir == "refs" {
        return Ok(());
    }
    check(dir).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_leave_the_git_directory_are_refused() {
        for bad in [
            "../x",
            "refs/../config",
            "refs/heads/a/../../../x",
            "/etc/passwd",
            "refs//x",
            "refs/heads/./x",
            "refs/heads/x.lock",
            "refs/heads/.x",
            "refs\\heads\\x",
            "refs/heads/a\0b",
            "config",
            "objects/pack/x",
            "",
        ] {
            assert!(FullName::new(bad).is_err(), "{bad:?} is refused");
        }
        for good in ["HEAD", "refs/heads/a", "refs/gitmq/consumers/c/eu/orders"] {
            assert_eq!(FullName::new(good).unwrap(), good);
        }
    }

    #[test]
    fn prefixes_are_checked_like_names() {
        assert!(check_prefix("refs/gitmq/").is_ok());
        assert!(check_prefix("refs/").is_ok());
        assert!(check_prefix("refs/../").is_err());
        assert!(check_prefix("refs/heads").is_err());
    }
}
