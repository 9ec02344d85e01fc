//! Owns the bytes the server writes: a message as one JSON line (the NDJSON and SSE
//! format), JSON strings, base64 (RFC 4648, both ways: payloads out, HTTP basic
//! credentials in) and RFC 3339 times in UTC.
//!
//! Hand-written because it is the consume hot path (a million lines a second is the goal):
//! no intermediate `serde_json::Value`, no allocation per message. Most names and ids (and
//! many payloads) are printable ASCII: [`is_plain()`] finds that out 8 bytes at a time, and
//! a plain field is copied whole, with no UTF-8 check and no escape scan of its own; other
//! strings are escaped from a table ([`json_string()`]).
//!
//! Line format (fields in this order; `payload` when the payload is UTF-8, else
//! `payload_base64`):
//! `{"id":"<hex>","stable_id":"<id>"|null,"headers":[["k","v"],..],"author":"..",`
//! `"email":"..","time":"2026-12-03T09:10:00Z","payload":".."}`

use crate::MessageRef;

const HEX: &[u8; 16] = b"0123456789abcdef";
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Append `message` as one JSON object and a newline.
pub(crate) fn message_line(out: &mut Vec<u8>, message: &MessageRef<'_>) {
    out.extend_from_slice(b"{\"id\":\"");
    let mut hex = [0u8; 40];
    out.extend_from_slice(message.id.hex_to_buf(&mut hex).as_bytes());
    out.extend_from_slice(b"\",\"stable_id\":");
    match message.stable_id() {
        Some(id) => json_string(out, id.as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"headers\":[");
    for (i, (key, value)) in message.headers().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        json_string(out, key.as_bytes());
        out.push(b',');
        json_string(out, value.as_bytes());
        out.push(b']');
    }
    out.extend_from_slice(b"],\"author\":");
    json_lossy(out, message.author);
    out.extend_from_slice(b",\"email\":");
    json_lossy(out, message.email);
    out.extend_from_slice(b",\"time\":\"");
    rfc3339_utc(out, message.time.seconds);
    if is_plain(message.payload) {
        out.extend_from_slice(b"\",\"payload\":\"");
        out.extend_from_slice(message.payload);
        out.push(b'"');
    } else if std::str::from_utf8(message.payload).is_ok() {
        out.extend_from_slice(b"\",\"payload\":");
        json_string(out, message.payload);
    } else {
        out.extend_from_slice(b"\",\"payload_base64\":\"");
        base64_encode(out, message.payload);
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

/// Bytes that need an escape in a JSON string: controls, `"`, `\\` and DEL.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[0x7f] = true;
    table
};

/// One byte repeated over a word.
const fn splat(byte: u8) -> u64 {
    u64::from_be_bytes([byte; 8])
}

/// Whether `bytes` is printable ASCII (0x20..0x7f) without `"` or `\\`: valid UTF-8 that
/// goes into a JSON string as is. Eight bytes at a time, with the classic bit tricks (a
/// flag is set iff some byte of the word matches; which byte does not matter here):
/// below 0x20 `(x - splat(0x20)) & !x & splat(0x80)`, equal to `c` the same for `x ^ splat(c)`
/// below 1, at or above 0x7f `((x + splat(1)) | x) & splat(0x80)`.
pub(crate) fn is_plain(bytes: &[u8]) -> bool {
    const HIGH: u64 = splat(0x80);
    let has_below = |x: u64, n: u8| x.wrapping_sub(splat(n)) & !x & HIGH;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_be_bytes(word.try_into().expect("BUG: chunks of 8"));
        let flags = has_below(x, 0x20)
            | has_below(x ^ splat(b'"'), 1)
            | has_below(x ^ splat(b'\\'), 1)
            | ((x.wrapping_add(splat(1)) | x) & HIGH);
        if flags != 0 {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|b| *b < 0x7f && !NEEDS_ESCAPE[usize::from(*b)])
}

/// How each byte goes into a JSON string: 0 as is, [`UNICODE_ESCAPE`] as `\\u00XX` (other
/// controls and DEL), else `\\` and this byte (`"`, `\\`, `\\n`, `\\r`, `\\t`).
const SHORT_ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = UNICODE_ESCAPE;
        b += 1;
    }
    table[0x7f] = UNICODE_ESCAPE;
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table
};
const UNICODE_ESCAPE: u8 = 1;

/// Append `bytes` (UTF-8) as a JSON string, quotes included. A JSON payload has a quote
/// every few bytes, so the cost per escape is what counts: the output is sized for every
/// byte escaped in two and written by index from a table, no call per escape; a control
/// byte (six bytes out, rare) hands the rest to the general loop. Measured on the bench's
/// payloads (a quote every ~6 bytes), same run, load 14: 368-467 ns a payload against
/// 598-814 for the loop that copies each run between escapes.
pub(crate) fn json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + 2 * bytes.len() + 2, 0);
    let buf = &mut out[start..];
    buf[0] = b'"';
    let mut written = 1;
    let mut control = None;
    for (at, &b) in bytes.iter().enumerate() {
        match SHORT_ESCAPE[usize::from(b)] {
            0 => {
                buf[written] = b;
                written += 1;
            }
            UNICODE_ESCAPE => {
                control = Some(at);
                break;
            }
            short => {
                buf[written] = b'\\';
                buf[written + 1] = short;
                written += 2;
            }
        }
    }
    match control {
        None => {
            buf[written] = b'"';
            out.truncate(start + written + 1);
        }
        Some(at) => {
            out.truncate(start + written);
            for &b in &bytes[at..] {
                if NEEDS_ESCAPE[usize::from(b)] {
                    escape(out, b);
                } else {
                    out.push(b);
                }
            }
            out.push(b'"');
        }
    }
}

/// Append the escape of `b` (one of [`NEEDS_ESCAPE`]).
fn escape(out: &mut Vec<u8>, b: u8) {
    match SHORT_ESCAPE[usize::from(b)] {
        0 => out.push(b),
        UNICODE_ESCAPE => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
        short => out.extend_from_slice(&[b'\\', short]),
    }
}

/// Append `bytes` as a JSON string, invalid UTF-8 replaced.
fn json_lossy(out: &mut Vec<u8>, bytes: &[u8]) {
    if is_plain(bytes) {
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    json_string(out, String::from_utf8_lossy(bytes).as_bytes());
}

/// Append standard base64 with padding.
pub(crate) fn base64_encode(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// Decode standard base64 (padding optional); `None` on any other byte.
pub(crate) fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let text = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(acc >> bits).expect("BUG: fewer than 8 bits above `bits`"));
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Append Unix `seconds` as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub(crate) fn rfc3339_utc(out: &mut Vec<u8>, seconds: i64) {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if (0..10_000).contains(&year) {
        digits(out, year / 100);
        digits(out, year % 100);
    } else {
        out.extend_from_slice(year.to_string().as_bytes());
    }
    for (sep, value) in [
        (b'-', month),
        (b'-', day),
        (b'T', secs / 3600),
        (b':', secs / 60 % 60),
        (b':', secs % 60),
    ] {
        out.push(sep);
        digits(out, value);
    }
    out.push(b'Z');
}

/// Two decimal digits of `value` (0..100).
fn digits(out: &mut Vec<u8>, value: i64) {
    let value = u8::try_from(value).unwrap_or(0);
    out.push(b'0' + value / 10);
    out.push(b'0' + value % 10);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_round_trip_through_serde_json() {
        for text in [
            "",
            "plain",
            "quote \" back \\ nl \n tab \t",
            "\u{1} \u{7f} é ✓",
        ] {
            let mut out = Vec::new();
            json_string(&mut out, text.as_bytes());
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, text, "escaped {out:?}");
        }
    }

    #[test]
    fn is_plain_agrees_with_a_byte_by_byte_check_at_every_position() {
        let naive = |bytes: &[u8]| {
            bytes
                .iter()
                .all(|b| (0x20..0x7f).contains(b) && *b != b'"' && *b != b'\\')
        };
        // Every byte value at every offset of words and tails, in plain surroundings.
        for len in [1, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    assert_eq!(is_plain(&bytes), naive(&bytes), "{b:#x} at {at} of {len}");
                }
            }
        }
        // Pairs of neighbours that could borrow or carry into each other.
        let edges = [
            0x00, 0x01, 0x1f, 0x20, 0x21, 0x22, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0xfe, 0xff,
        ];
        for &x in &edges {
            for &y in &edges {
                for at in 0..7 {
                    let mut bytes = [b'z'; 8];
                    bytes[at] = x;
                    bytes[at + 1] = y;
                    assert_eq!(is_plain(&bytes), naive(&bytes), "{x:#x},{y:#x} at {at}");
                }
            }
        }
        assert!(is_plain(b""));
    }

    #[test]
    fn json_strings_with_escapes_at_every_offset_round_trip_through_serde_json() {
        for len in 0..20 {
            for at in 0..len {
                for special in ["\"", "\\", "\n", "\u{1}", "\u{7f}", "é", "\"\""] {
                    let text: String = (0..len)
                        .map(|i| {
                            if i == at {
                                special.to_owned()
                            } else {
                                "a".to_owned()
                            }
                        })
                        .collect();
                    let mut out = Vec::new();
                    json_string(&mut out, text.as_bytes());
                    let back: String = serde_json::from_slice(&out).unwrap();
                    assert_eq!(back, text, "escaped {out:?}");
                }
            }
        }
        let mut out = Vec::new();
        json_string(
            &mut out,
            br#"{"id":1,"type":"order.created","items":[{"sku":"A"}]}"#,
        );
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            back,
            r#"{"id":1,"type":"order.created","items":[{"sku":"A"}]}"#
        );
    }

    #[test]
    fn base64_matches_rfc_4648_vectors_both_ways() {
        for (raw, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = Vec::new();
            base64_encode(&mut out, raw.as_bytes());
            assert_eq!(out, encoded.as_bytes());
            assert_eq!(base64_decode(encoded.as_bytes()).unwrap(), raw.as_bytes());
        }
        assert_eq!(base64_decode(b"Zm9v!"), None, "a byte outside the alphabet");
    }

    #[test]
    fn times_are_rfc_3339_utc() {
        for (seconds, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_796_281_200, "2026-12-03T07:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
        ] {
            let mut out = Vec::new();
            rfc3339_utc(&mut out, seconds);
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }
}
