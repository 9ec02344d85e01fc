//! How messages are written to stdout: `text` (the payload) or `json` (one object per line).

use std::io::{self, IsTerminal, Write};

use gitmq::MessageRef;

use crate::cli::Format;

/// Write `message` to `out` in `format`.
pub fn write_message(
    out: &mut impl Write,
    message: &MessageRef<'_>,
    format: Format,
) -> io::Result<()> {
    match format {
        Format::Text => {
            out.write_all(message.payload)?;
            if !message.payload.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
        }
        Format::Json => {
            let headers: Vec<[&str; 2]> = message.headers().map(|(k, v)| [k, v]).collect();
            let mut object = serde_json::json!({
                "id": message.id.to_string(),
                "stable_id": message.stable_id(),
                "headers": headers,
                "parent": message.parent.map(|p| p.to_string()),
                "author": String::from_utf8_lossy(message.author),
                "email": String::from_utf8_lossy(message.email),
                "time": message.time_rfc3339(),
                "payload": String::from_utf8_lossy(message.payload),
            });
            if std::str::from_utf8(message.payload).is_err() {
                object["payload_base64"] = base64(message.payload).into();
            }
            serde_json::to_writer(&mut *out, &object)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Standard base64 with padding, for payloads that are not UTF-8.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Progress text from the server, to stderr when it is a terminal.
pub fn progress_sink() -> Option<impl FnMut(&[u8])> {
    io::stderr().is_terminal().then_some(|text: &[u8]| {
        let _ = io::stderr().write_all(text);
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (raw, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(raw.as_bytes()), encoded);
        }
    }
}
