//! Owns reading the HTTP timeouts from a repository's git config:
//!
//! ```text
//! [gitmq "http"]            # git config gitmq.http.idleTimeout 30s
//!     connectTimeout = 10s  # opening a connection
//!     idleTimeout = 2m      # waiting for the answer, then between two reads of its body
//!     requestTimeout = 10m  # one whole request, answer included (0: no limit)
//! ```
//!
//! Values are durations as the command line takes them: a decimal number with a unit `ms`,
//! `s`, `m` or `h` (no unit: seconds). Strict and small on purpose, like the retention reader:
//! inside the `gitmq "http"` section an unknown key or a malformed value is an
//! [`Error::Malformed`] naming the line, rather than a guess; other sections are skipped
//! unread; a later value of the same key wins, as in git.
//!
//! Invariant: [`Timeouts`] only holds what the file says; defaults are the HTTP client's.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::{path::Path, time::Duration};

pub use super::Error;
use super::{parse_value, Line};

/// The `[gitmq "http"]` subsection.
const SUBSECTION: &str = "http";

/// The timeouts a repository's config sets (`None`: not set, the default applies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// `gitmq.http.connectTimeout`.
    pub connect: Option<Duration>,
    /// `gitmq.http.idleTimeout`.
    pub idle: Option<Duration>,
    /// `gitmq.http.requestTimeout`; `Some(Duration::ZERO)` means no limit.
    pub request: Option<Duration>,
}

/// The timeouts set in `<git_dir>/config` (none if there is no config file).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("config"), "[gitmq \"http\"]\n\tidleTimeout = 30s\n")?;
/// let timeouts = gitmq::replicate::timeouts::read(dir.path())?;
/// assert_eq!(timeouts.idle, Some(Duration::from_secs(30)));
/// assert_eq!(timeouts.connect, None);
/// # Ok(()) }
/// ```
pub fn read(git_dir: &Path) -> Result<Timeouts, Error> {
    Ok(super::read(git_dir, parse)?.unwrap_or_default())
}

/// Parse `10s`, `250ms`, `2m`, `1h` or plain seconds (what `--interval` and the timeouts
/// take).
///
/// ```
/// use std::time::Duration;
/// use gitmq::replicate::timeouts::parse_duration;
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
/// assert!(parse_duration("5d").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| "not a duration like 10s, 250ms, 2m")?;
    let millis = match unit {
        "ms" => number,
        "" | "s" => number.saturating_mul(1000),
        "m" => number.saturating_mul(60_000),
        "h" => number.saturating_mul(3_600_000),
        _ => return Err("unknown unit in a duration (ms, s, m, h)"),
    };
    Ok(Duration::from_millis(millis))
}

/// The timeouts in config text; errors are (line number, reason).
fn parse(text: &str) -> Result<Timeouts, (usize, &'static str)> {
    let mut out = Timeouts::default();
    let mut inside = false;
    for line in super::lines(text) {
        match line? {
            (
                _,
                Line::Section {
                    section,
                    subsection,
                },
            ) => inside = section == "gitmq" && subsection.as_deref() == Some(SUBSECTION),
            (number, Line::Entry { key, raw_value }) if inside => {
                let value = parse_value(raw_value).map_err(|reason| (number, reason))?;
                let duration = parse_duration(&value).map_err(|reason| (number, reason))?;
                let (slot, zero_allowed) = match key.to_ascii_lowercase().as_str() {
                    "connecttimeout" => (&mut out.connect, false),
                    "idletimeout" => (&mut out.idle, false),
                    "requesttimeout" => (&mut out.request, true),
                    _ => {
                        return Err((
                            number,
                            "unknown key in [gitmq \"http\"] (connectTimeout, idleTimeout, requestTimeout)",
                        ))
                    }
                };
                if duration.is_zero() && !zero_allowed {
                    return Err((number, "a connect or idle timeout must be above zero"));
                }
                *slot = Some(duration);
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_timeouts_are_read_case_insensitively_and_the_last_value_wins() {
        let text = "[core]\n\tbare = true\n[gitmq \"http\"]\n\tConnectTimeout = 3s\n\
                    \tidletimeout = \"250ms\" # fast\n\trequestTimeout = 10m\n\
                    [gitmq \"topic.t\"]\n\tretainMessages = 5\n[gitmq \"http\"]\n\tidleTimeout = 2\n";
        assert_eq!(
            parse(text),
            Ok(Timeouts {
                connect: Some(Duration::from_secs(3)),
                idle: Some(Duration::from_secs(2)),
                request: Some(Duration::from_secs(600)),
            })
        );
    }

    #[test]
    fn zero_means_no_limit_only_for_the_whole_request() {
        assert_eq!(
            parse("[gitmq \"http\"]\nrequestTimeout = 0\n")
                .unwrap()
                .request,
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse("[gitmq \"http\"]\nidleTimeout = 0s\n"),
            Err((2, "a connect or idle timeout must be above zero"))
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_inside_the_section_are_errors_with_a_line() {
        assert!(matches!(
            parse("[gitmq \"http\"]\n\tidleTimout = 3s\n"),
            Err((2, reason)) if reason.starts_with("unknown key")
        ));
        assert_eq!(
            parse("[gitmq \"http\"]\n\tidleTimeout = 3d\n"),
            Err((2, "unknown unit in a duration (ms, s, m, h)"))
        );
        assert_eq!(
            parse("[gitmq \"http\"]\n\tidleTimeout = soon\n"),
            Err((2, "not a duration like 10s, 250ms, 2m"))
        );
        assert_eq!(
            parse("[other]\n\tidleTimeout = soon\n"),
            Ok(Timeouts::default())
        );
    }
}
