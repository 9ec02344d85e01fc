//! Owns turning a publish request into messages: `POST /v1/topics/{topic}/messages`.
//!
//! - `Content-Type: application/x-ndjson`: one message per line, each line a JSON value
//!   (its bytes are the payload; blank lines are skipped);
//! - `Content-Type: application/json` whose body is an array: one message per element (the
//!   element's JSON text is the payload); any other JSON value is one message;
//! - anything else: the body is one message, byte for byte.
//!
//! `Gitmq-Id: <id>` gives a stable id (a batch's messages get `<id>:0`, `<id>:1`, ...), so a
//! retry returns the original ids and appends nothing; `Gitmq-Header-<Key>: <value>` adds the
//! header `<key>` (lowercase: HTTP header names carry no case) to every message.
//!
//! Invariant: every message is validated (size, no NUL, JSON where the type says so, id and
//! headers) before any of them is queued, so a bad request changes nothing.

use bytes::Bytes;
use hyper::{header::CONTENT_TYPE, HeaderMap, StatusCode};

use super::{error::ApiError, limits::Limits, writer::Item};
use crate::git::message::{check_payload, Envelope};

/// The prefix of headers that become message headers.
const HEADER_PREFIX: &str = "gitmq-header-";

/// The messages of a publish request, validated.
pub(crate) fn parse(
    headers: &HeaderMap,
    body: &Bytes,
    limits: &Limits,
) -> Result<Vec<Item>, ApiError> {
    let base = envelope(headers)?;
    let stable_id = headers
        .get("gitmq-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::bad_request("bad_id", "Gitmq-Id must be ASCII"))
                .map(str::to_owned)
        })
        .transpose()?;
    let kind = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let payloads: Vec<Bytes> = match kind.as_deref() {
        Some("application/x-ndjson" | "application/jsonl" | "application/ndjson") => {
            ndjson(body, limits)?
        }
        Some("application/json") => json(body, limits)?,
        _ => vec![body.clone()],
    };
    if payloads.is_empty() {
        return Err(ApiError::bad_request(
            "no_messages",
            "the request holds no message",
        ));
    }
    if payloads.len() > limits.max_batch_messages {
        return Err(ApiError::too_large(format!(
            "{} messages in one request; at most {} (the server's --max-batch)",
            payloads.len(),
            limits.max_batch_messages
        )));
    }
    let batch = payloads.len() > 1;
    let mut items = Vec::with_capacity(payloads.len());
    for (n, payload) in payloads.into_iter().enumerate() {
        check_size(&payload, n, limits)?;
        check_payload(&payload).map_err(|err| {
            ApiError::bad_request("nul_in_payload", format!("message {n}: {err}"))
        })?;
        let envelope =
            match &stable_id {
                Some(id) => {
                    let id = if batch {
                        format!("{id}:{n}")
                    } else {
                        id.clone()
                    };
                    Some(base.clone().with_id(&id).map_err(|err| {
                        ApiError::bad_request("bad_id", format!("Gitmq-Id: {err}"))
                    })?)
                }
                None if base.is_empty() => None,
                None => Some(base.clone()),
            };
        items.push(Item { payload, envelope });
    }
    Ok(items)
}

/// The headers every message of the request carries.
fn envelope(headers: &HeaderMap) -> Result<Envelope, ApiError> {
    let mut envelope = Envelope::new();
    for (name, value) in headers {
        let Some(key) = name.as_str().strip_prefix(HEADER_PREFIX) else {
            continue;
        };
        let value = value.to_str().map_err(|_| {
            ApiError::bad_request(
                "bad_header",
                format!("header {name}: the value must be ASCII"),
            )
        })?;
        envelope = envelope
            .with_header(key, value)
            .map_err(|err| ApiError::bad_request("bad_header", format!("header {name}: {err}")))?;
    }
    Ok(envelope)
}

fn check_size(payload: &[u8], n: usize, limits: &Limits) -> Result<(), ApiError> {
    if payload.len() > limits.max_message_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "message_too_large",
            format!(
                "message {n} has {} bytes; at most {} (the server's --max-message)",
                payload.len(),
                limits.max_message_bytes
            ),
        ));
    }
    Ok(())
}

/// One payload per non-blank line, each a JSON value.
fn ndjson(body: &Bytes, limits: &Limits) -> Result<Vec<Bytes>, ApiError> {
    let mut out = Vec::new();
    let mut start = 0;
    for (line_no, line) in body.split(|b| *b == b'\n').enumerate() {
        let end = start + line.len();
        let range = start..end - usize::from(line.ends_with(b"\r"));
        start = end + 1;
        let line = &body[range.clone()];
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        check_size(line, out.len(), limits)?;
        if let Err(err) = serde_json::from_slice::<serde::de::IgnoredAny>(line) {
            return Err(ApiError::bad_request(
                "bad_json",
                format!("NDJSON line {}: {err}", line_no + 1),
            ));
        }
        out.push(body.slice(range));
    }
    Ok(out)
}

/// A JSON array: one payload per element; any other JSON value: one payload.
fn json(body: &Bytes, limits: &Limits) -> Result<Vec<Bytes>, ApiError> {
    let bad =
        |err: serde_json::Error| ApiError::bad_request("bad_json", format!("JSON body: {err}"));
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'[') {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(bad)?;
        return Ok(vec![body.clone()]);
    }
    let elements: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body).map_err(bad)?;
    let mut out = Vec::with_capacity(elements.len());
    for (n, element) in elements.iter().enumerate() {
        let text = element.get().as_bytes();
        check_size(text, n, limits)?;
        out.push(Bytes::copy_from_slice(text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    fn payloads(items: &[Item]) -> Vec<&[u8]> {
        items.iter().map(|i| &i.payload[..]).collect()
    }

    #[test]
    fn a_body_is_one_message_ndjson_is_one_per_line_and_an_array_one_per_element() {
        let limits = Limits::default();
        let raw = parse(&headers(&[]), &Bytes::from_static(b"any\nbytes"), &limits).unwrap();
        assert_eq!(payloads(&raw), [&b"any\nbytes"[..]]);
        let nd = headers(&[("content-type", "application/x-ndjson")]);
        let lines = parse(&nd, &Bytes::from_static(b"{\"a\":1}\r\n\n[2]\n"), &limits).unwrap();
        assert_eq!(payloads(&lines), [&b"{\"a\":1}"[..], b"[2]"]);
        let js = headers(&[("content-type", "application/json; charset=utf-8")]);
        let array = parse(&js, &Bytes::from_static(b" [{\"a\": 1}, \"x\"]"), &limits).unwrap();
        assert_eq!(payloads(&array), [&b"{\"a\": 1}"[..], b"\"x\""]);
        let object = parse(&js, &Bytes::from_static(b"{\"a\":1}"), &limits).unwrap();
        assert_eq!(payloads(&object), [&b"{\"a\":1}"[..]]);
    }

    #[test]
    fn bad_requests_are_refused_with_a_code() {
        let limits = Limits {
            max_message_bytes: 8,
            max_batch_messages: 2,
            ..Limits::default()
        };
        let nd = headers(&[("content-type", "application/x-ndjson")]);
        let js = headers(&[("content-type", "application/json")]);
        for (headers, body, code) in [
            (&nd, &b"{\"a\":1}\nnot json\n"[..], "bad_json"),
            (&js, b"[1,", "bad_json"),
            (&nd, b"\"123456789\"", "message_too_large"),
            (&nd, b"1\n2\n3", "too_large"),
            (&headers(&[]), b"a\0b", "nul_in_payload"),
            (&nd, b"\n\n", "no_messages"),
            (&headers(&[("gitmq-id", "no spaces")]), b"x", "bad_id"),
            (
                &headers(&[("gitmq-header-k", "tab\tin")]),
                b"x",
                "bad_header",
            ),
        ] {
            let err = parse(headers, &Bytes::copy_from_slice(body), &limits).unwrap_err();
            assert_eq!(err.code, code, "{body:?}: {}", err.message);
        }
    }

    #[test]
    fn a_batch_with_an_id_numbers_its_messages_and_headers_go_to_every_message() {
        let limits = Limits::default();
        let h = headers(&[
            ("content-type", "application/x-ndjson"),
            ("gitmq-id", "order-7"),
            ("gitmq-header-source", "web"),
        ]);
        let items = parse(&h, &Bytes::from_static(b"1\n2\n"), &limits).unwrap();
        let ids: Vec<_> = items
            .iter()
            .map(|i| i.envelope.as_ref().unwrap().id().unwrap())
            .collect();
        assert_eq!(ids, ["order-7:0", "order-7:1"]);
        let envelope = items[1].envelope.as_ref().unwrap();
        assert_eq!(envelope.headers().collect::<Vec<_>>(), [("source", "web")]);
    }
}
