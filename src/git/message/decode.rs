//! Owns decoding the messages a walk hands out: a strict, hand-written
//! parser for the canonical commit layout (what gitmq and `git commit` write), in front of
//! [`MessageRef::from_bytes()`] (gix-object), which decodes everything else.
//!
//! The fast path accepts exactly:
//!
//! ```text
//! "tree " <40 hex> "\n"
//! ("parent " <40 hex> "\n")*
//! "author " <name> " <" <email> "> " <seconds> " " <+|-><hhmm> "\n"
//! "committer " (same form) "\n"
//! ("gitmq-" <no newline, at least one space> "\n")*   (not followed by a continuation line)
//! "\n"
//! <payload: every byte to the end>
//! ```
//!
//! where a name is non-empty, an email may be empty, neither holds `<`, `>` or a newline,
//! and both start and end with a printable ASCII byte (so gix's whitespace trimming cannot
//! change them), and seconds are at most 18 digits. Anything else (an `encoding` or
//! signature header, unusual spacing, a negative date, ...) goes to gix.
//!
//! Invariant: on every input the fast path accepts, it returns exactly what
//! `MessageRef::from_bytes` returns (checked against gix by the tests below on generated
//! and mutated commits); it is panic-free on any input. It exists because gix's general
//! parser costs about 0.8 us per message, several times everything else on the path.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use gix_date::Time;
use gix_hash::ObjectId;

use super::parent::decode_hex;
use crate::git::message::{self, MessageRef};

/// Decode the commit body `body` whose id is `id`.
pub fn decode(id: ObjectId, body: &[u8]) -> Result<MessageRef<'_>, message::Error> {
    match canonical(id, body) {
        Some(message) => Ok(message),
        None => MessageRef::from_bytes(id, body),
    }
}

/// The fast path: `None` if `body` is not in the canonical layout.
fn canonical(id: ObjectId, body: &[u8]) -> Option<MessageRef<'_>> {
    let mut rest = super::parent::after_tree_line(body)?;
    let mut parent = None;
    let mut other_parents = Vec::new();
    while rest.starts_with(b"parent ") {
        let (id, after) = id_line(rest, b"parent ")?;
        if parent.is_none() {
            parent = Some(id);
        } else {
            other_parents.push(id);
        }
        rest = after;
    }
    let (author, rest) = line(rest, b"author ")?;
    let (name, email, time) = signature(author)?;
    let (committer, rest) = line(rest, b"committer ")?;
    // gitmq writes the same signature twice: checked once.
    if committer != author {
        signature(committer)?;
    }
    let (extra_headers, payload) = match rest.strip_prefix(b"\n") {
        Some(payload) => (&[][..], payload),
        None => gitmq_lines(rest)?,
    };
    Some(MessageRef {
        id,
        parent,
        other_parents,
        author: name,
        email,
        time,
        extra_headers,
        payload,
    })
}

/// `rest` split after the `gitmq-` header lines at its start and the blank line ending them:
/// (the lines, the payload). `None` unless every line up to the blank one is a `gitmq-` line
/// holding a space (git's `<key> <value>` form, which gix reads the same way).
fn gitmq_lines(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut at = 0;
    loop {
        let line_start = rest.get(at..)?;
        if let Some(payload) = line_start.strip_prefix(b"\n") {
            return Some((rest.get(..at)?, payload));
        }
        if !line_start.starts_with(b"gitmq-") {
            return None;
        }
        let end = find(b'\n', line_start)?;
        find(b' ', line_start.get(..end)?)?;
        at += end + 1;
    }
}

/// The id on the line `<name><40 hex>\n` at the start of `bytes`, and what follows.
fn id_line<'a>(bytes: &'a [u8], name: &[u8]) -> Option<(ObjectId, &'a [u8])> {
    let rest = bytes.strip_prefix(name)?;
    let hex = rest.get(..40)?;
    let after = rest.get(40..)?.strip_prefix(b"\n")?;
    Some((ObjectId::from(decode_hex(hex)?), after))
}

/// The value of the header line `<name><value>\n` at the start of `bytes`, and what follows.
fn line<'a>(bytes: &'a [u8], name: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let rest = bytes.strip_prefix(name)?;
    let end = find(b'\n', rest)?;
    Some((rest.get(..end)?, rest.get(end + 1..)?))
}

/// `<name> <<email>> <seconds> <+|-><hhmm>`, strictly.
fn signature(value: &[u8]) -> Option<(&[u8], &[u8], Time)> {
    let open = find(b'<', value)?;
    let name = value.get(..open)?.strip_suffix(b" ")?;
    let after_open = value.get(open + 1..)?;
    let close = find(b'>', after_open)?;
    let email = after_open.get(..close)?;
    let time = after_open.get(close + 1..)?.strip_prefix(b" ")?;
    let printable = |b: Option<&u8>| b.is_some_and(u8::is_ascii_graphic);
    let trimmed = |part: &[u8]| printable(part.first()) && printable(part.last());
    // `name` holds no '<' (the first one follows it), `email` no '>' (likewise) and no
    // newline (lines hold none); the time part is checked digit by digit.
    let clean = find(b'>', name).is_none() && find(b'<', email).is_none();
    if !(clean && trimmed(name) && (email.is_empty() || trimmed(email))) {
        return None;
    }
    Some((name, email, parse_time(time)?))
}

/// Where `byte` first occurs in `bytes`: eight bytes at a time. Kept over `memchr::memchr`
/// by measurement (the searches one decode makes, best of 500 x 20,000, same binary, rustc
/// -O, quiet machine): gitmq's identity (`gitmq <gitmq@localhost>`) 28.3 ns SWAR, 38.4 ns
/// memchr; a longer one (`Some Longer Name <some.longer.name@example.com>`) 39.5 ns SWAR,
/// 35.8 ns memchr. Header searches are mostly under 16 bytes, where memchr's setup costs
/// more than the scan; it wins only past ~40 bytes.
fn find(byte: u8, bytes: &[u8]) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const SEVEN: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let pattern = LOW * u64::from(byte);
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        let word = u64::from_be_bytes(chunk.try_into().ok()?) ^ pattern;
        // A zero byte of `word` is a match. This form never carries between bytes (unlike
        // `(w - LOW) & !w`, whose borrows mark bytes before a match): its high bits mark
        // exactly the zero bytes, and the highest is the first (big-endian).
        let zeros = !(((word & SEVEN) + SEVEN) | word | SEVEN);
        if zeros != 0 {
            return Some(at + (zeros.leading_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = chunks.remainder();
    tail.iter().position(|b| *b == byte).map(|i| at + i)
}

/// `<seconds> <+|-><hhmm>`: at most 18 digits of seconds, then exactly one space and the
/// offset, which gix reads as `hh * 3600 + mm * 60` seconds east.
fn parse_time(time: &[u8]) -> Option<Time> {
    let space = find(b' ', time)?;
    let digits = time.get(..space)?;
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut seconds = 0i64;
    for digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        seconds = seconds * 10 + i64::from(digit - b'0');
    }
    let offset: [u8; 5] = time.get(space + 1..)?.try_into().ok()?;
    let [sign, h1, h2, m1, m2] = offset;
    if ![h1, h2, m1, m2].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = |high: u8, low: u8| i32::from(high - b'0') * 10 + i32::from(low - b'0');
    let east = value(h1, h2) * 3600 + value(m1, m2) * 60;
    let offset = match sign {
        b'+' => east,
        b'-' => -east,
        _ => return None,
    };
    Some(Time { seconds, offset })
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "fixtures build small values on purpose"
)]
mod tests {
    use super::*;
    use crate::{
        git::hash::OBJECT_HASH,
        git::message::{encode, Identity},
    };

    use crate::test_support::TestRng as Rng;

    fn id() -> ObjectId {
        ObjectId::null(OBJECT_HASH)
    }

    fn agree(body: &[u8]) -> bool {
        let ours = canonical(id(), body);
        let theirs = MessageRef::from_bytes(id(), body).ok();
        if let Some(ours) = &ours {
            assert_eq!(
                Some(ours),
                theirs.as_ref(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        ours.is_some()
    }

    #[test]
    fn what_gitmq_encodes_takes_the_fast_path_and_decodes_like_gix() {
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        let names = [
            "gitmq",
            "a",
            "x Ünïcödé y",
            "two  spaces",
            "x.y-z_1",
            "Ünïcödé",
        ];
        let emails = ["gitmq@localhost", "", "a@b", "weird email@x"];
        for i in 0..2000 {
            let identity = Identity::new(names[i % names.len()], emails[i % emails.len()]).unwrap();
            let seconds = (rng.next_u64() % 5_000_000_000) as i64;
            let offset = (rng.below(28 * 4) as i32 - 14 * 4) * 900;
            let payload: Vec<u8> = (0..rng.below(300))
                .map(|_| rng.next_u64() as u8 | 1)
                .collect();
            let parent = (i % 3 != 0).then(|| ObjectId::empty_blob(OBJECT_HASH));
            let mut body = Vec::new();
            encode(
                &mut body,
                parent.as_deref(),
                &identity,
                Time::new(seconds, offset),
                &payload,
            );
            let ascii_ends = !identity.name().starts_with('Ü');
            assert_eq!(
                agree(&body),
                ascii_ends,
                "{:?}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(decode(id(), &body).unwrap().payload, payload);
        }
    }

    #[test]
    fn merges_and_other_layouts_decode_like_gix() {
        let (a, b) = (
            ObjectId::empty_blob(OBJECT_HASH),
            ObjectId::empty_tree(OBJECT_HASH),
        );
        let merge = format!(
            "tree {b}\nparent {a}\nparent {b}\nparent {a}\nauthor m <m@x> 5 -0130\ncommitter m <m@x> 5 -0130\n\nmerged"
        );
        assert!(agree(merge.as_bytes()), "a merge is canonical");
        let merged = canonical(id(), merge.as_bytes()).unwrap();
        assert_eq!(merged.other_parents, [b, a]);
        for fallback in [
            "tree {b}\nauthor m <m@x> 5 +0000\ncommitter m <m@x> 5 +0000\nencoding latin1\n\nx",
            "tree {b}\nauthor m <m@x> 5 +0000\ncommitter m <m@x> 5 +0000\ngpgsig -----BEGIN\n -----END\n\nx",
            "tree {b}\nauthor  m <m@x> 5 +0000\ncommitter m <m@x> 5 +0000\n\nx",
            "tree {b}\nauthor m <m@x> -5 +0000\ncommitter m <m@x> 5 +0000\n\nx",
            "tree {b}\nauthor m <m@x> 5 +00000\ncommitter m <m@x> 5 +0000\n\nx",
            "tree {b}\nauthor m <m@x>  5 +0000\ncommitter m <m@x> 5 +0000\n\nx",
        ] {
            let body = fallback.replace("{b}", &b.to_string());
            assert!(!agree(body.as_bytes()), "left to gix: {body:?}");
            let _ = decode(id(), body.as_bytes());
        }
    }

    #[test]
    fn messages_with_ids_and_headers_take_the_fast_path_and_decode_like_gix() {
        use crate::git::message::{CommitEncoder, Envelope};
        let mut rng = Rng::new(0x5eed_1234_abcd_0001);
        let encoder = CommitEncoder::new(&Identity::new("p", "p@x").unwrap(), 3600);
        let envelope = Envelope::new()
            .with_header("content-type", "application/json")
            .unwrap()
            .with_header("empty", "")
            .unwrap()
            .with_header("k", "value with  spaces ünï")
            .unwrap();
        let mut fast = 0;
        for i in 0..3000 {
            let mut body = Vec::new();
            let stable = (i % 2 == 0).then_some("order-1:2");
            let mut envelope = if i % 3 == 0 {
                Envelope::new()
            } else {
                envelope.clone()
            };
            if let Some(stable) = stable {
                envelope = envelope.with_id(stable).unwrap();
            }
            encoder.encode_with(
                &mut body,
                Some(&ObjectId::empty_blob(OBJECT_HASH)),
                1_700_000_000,
                &envelope,
                b"{\"a\":1}",
            );
            let decoded = decode(id(), &body).unwrap();
            assert_eq!(decoded.stable_id(), stable);
            assert_eq!(
                decoded.headers().collect::<Vec<_>>(),
                envelope.headers().collect::<Vec<_>>()
            );
            assert_eq!(decoded.payload, b"{\"a\":1}");
            if i == 0 {
                assert!(agree(&body), "canonical with headers");
            }
            // Mutate the header lines: never a panic, and agreement with gix when fast.
            let mut mutated = body.clone();
            let at = 100 + rng.below(mutated.len() - 100);
            match rng.below(3) {
                0 => mutated[at] = [b'\n', b' ', 0, b'g'][rng.below(4)],
                1 => {
                    mutated.remove(at);
                }
                _ => mutated.insert(at, [b'\n', b' ', 0, b'-'][rng.below(4)]),
            }
            fast += usize::from(agree(&mutated));
            if let Ok(message) = decode(id(), &mutated) {
                let _ = (message.stable_id(), message.headers().count());
            }
        }
        assert!(fast > 100, "mutations that stay canonical ({fast})");
    }

    #[test]
    fn find_agrees_with_a_naive_scan() {
        let mut rng = Rng::new(0x1234_5678_9abc_def1);
        for _ in 0..20_000 {
            let target = [b'<', b'>', b'\n', 0, 0xff][rng.below(5)];
            let len = rng.below(40);
            // Bytes near the target (target ^ 1 makes naive word tricks misfire).
            let bytes: Vec<u8> = (0..len)
                .map(|_| [target, target ^ 1, target ^ 0x80, rng.next_u64() as u8][rng.below(4)])
                .collect();
            let naive = bytes.iter().position(|b| *b == target);
            assert_eq!(find(target, &bytes), naive, "{target} in {bytes:?}");
        }
    }

    #[test]
    fn mutated_commits_never_panic_and_agree_with_gix_when_fast() {
        let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
        let mut body = Vec::new();
        encode(
            &mut body,
            Some(&ObjectId::empty_blob(OBJECT_HASH)),
            &Identity::new("producer", "p@example.com").unwrap(),
            Time::new(1_700_000_000, 3600),
            b"{\"payload\":1}",
        );
        let alphabet = [
            b'\n', b' ', b'<', b'>', b'-', b'+', b'0', b'9', b'a', 0x80, 0xa0,
        ];
        let mut fast = 0;
        for _ in 0..50_000 {
            let mut mutated = body.clone();
            for _ in 0..=rng.below(2) {
                let at = rng.below(mutated.len());
                match rng.below(3) {
                    0 => mutated[at] = alphabet[rng.below(alphabet.len())],
                    1 => {
                        mutated.remove(at);
                    }
                    _ => mutated.insert(at, alphabet[rng.below(alphabet.len())]),
                }
            }
            fast += usize::from(agree(&mutated));
        }
        assert!(fast > 1000, "many mutations stay canonical ({fast})");
    }
}
