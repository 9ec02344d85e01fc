//! Owns `POST /v1/consumers/{consumer}/{topic}/position`: committing a consumer's position
//! by compare-and-swap.
//!
//! Body: `{"position": "<id>" | null, "expected": "<id>" | null}`. `position` is the last
//! message processed (`null`: none, read from the beginning); `expected`, when present, is
//! the position the client read before: if the ref holds anything else the commit is refused
//! with 409 and the current position. Without `expected` the position is set whatever it was
//! (still under the ref's lock).
//!
//! Invariants: a position only ever names a message on the topic's first-parent chain
//! (checked before the lock is taken: known to the consumer pool, else by a walk from the
//! head); the ref moves by lock + compare + rename, fsynced, like `Consumer::commit`.

use std::time::Duration;

use gix_hash::ObjectId;
use hyper::StatusCode;
use serde_json::Value;

use super::{consume::Cursors, error::ApiError, render::json_string};
use crate::{git::refs::Expected, position, ConsumerName, Repository, TopicName};

/// How long a commit waits for the position's lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Parse the body, check, and move the position; the reply body.
pub(crate) fn commit(
    repo: &Repository,
    cursors: &Cursors,
    consumer: &ConsumerName,
    topic: &TopicName,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request("bad_json", format!("position body: {err}")))?;
    let Value::Object(fields) = value else {
        return Err(ApiError::bad_request(
            "bad_json",
            "position body must be a JSON object",
        ));
    };
    if let Some(key) = fields.keys().find(|k| *k != "position" && *k != "expected") {
        return Err(ApiError::bad_request(
            "bad_json",
            format!("unknown field {key:?} (position, expected)"),
        ));
    }
    let new = match fields.get("position") {
        None => return Err(ApiError::bad_request("bad_json", "missing \"position\"")),
        Some(v) => id_or_null(v, "position")?,
    };
    let expected = match fields.get("expected") {
        None => Expected::Any,
        Some(v) => Expected::from_current(
            id_or_null(v, "expected")?
                .map(|hex| {
                    ObjectId::from_hex(hex.as_bytes()).map_err(|_| {
                        ApiError::bad_request(
                            "bad_json",
                            "\"expected\" must be a full message id (40 hex digits) or null",
                        )
                    })
                })
                .transpose()?,
        ),
    };
    let new = match new {
        Some(hex) => {
            let id = ObjectId::from_hex(hex.as_bytes()).ok();
            match id.filter(|id| cursors.knows(topic, *id)) {
                Some(id) => Some(id),
                None => Some(position::find_on_topic(repo, topic, &hex)?),
            }
        }
        None => None,
    };
    let name = consumer.position_ref(topic);
    let lock = repo
        .refs()
        .lock(&name, LOCK_TIMEOUT)
        .map_err(crate::Error::from)?;
    let result = match new {
        Some(id) => lock.commit(expected, &id, true),
        None => lock.delete(expected, true).map(|_| ()),
    };
    match result {
        Ok(()) => {}
        Err(crate::git::refs::Error::Changed { actual, .. }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "the position of {consumer} on {topic} is {}, not the expected value; read again",
                    actual.map_or_else(|| "unset".to_owned(), |id| id.to_string())
                ),
            ));
        }
        Err(err) => return Err(crate::Error::from(err).into()),
    }
    let mut out = b"{\"consumer\":".to_vec();
    json_string(&mut out, consumer.as_str().as_bytes());
    out.extend_from_slice(b",\"topic\":");
    json_string(&mut out, topic.as_str().as_bytes());
    out.extend_from_slice(b",\"position\":");
    match new {
        Some(id) => json_string(&mut out, id.to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
    Ok(out)
}

fn id_or_null(value: &Value, field: &str) -> Result<Option<String>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(ApiError::bad_request(
            "bad_json",
            format!("\"{field}\" must be a message id (string) or null"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_a_compare_and_swap_and_only_names_messages_of_the_topic() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let topic = TopicName::new("t").unwrap();
        let ids = repo
            .producer(&topic)
            .publish_batch([&b"a"[..], b"b"])
            .unwrap();
        let c = ConsumerName::new("c").unwrap();
        let cursors = Cursors::default();
        let body = |pos: &str, exp: &str| format!("{{\"position\":{pos},\"expected\":{exp}}}");
        let a = format!("\"{}\"", ids[0]);
        let b = format!("\"{}\"", ids[1]);
        commit(&repo, &cursors, &c, &topic, body(&a, "null").as_bytes()).unwrap();
        let lost = commit(&repo, &cursors, &c, &topic, body(&b, "null").as_bytes()).unwrap_err();
        assert_eq!(lost.status, StatusCode::CONFLICT, "{}", lost.message);
        commit(&repo, &cursors, &c, &topic, body(&b, &a).as_bytes()).unwrap();
        assert_eq!(
            repo.refs().find(&c.position_ref(&topic)).unwrap(),
            Some(ids[1])
        );
        let stranger = format!("\"{}\"", "1".repeat(40));
        let err = commit(&repo, &cursors, &c, &topic, body(&stranger, &b).as_bytes()).unwrap_err();
        assert_eq!(err.code, "not_on_topic");
        for bad in [
            "{",
            "[]",
            "{\"position\":1}",
            "{\"expected\":null}",
            "{\"position\":null,\"x\":1}",
        ] {
            let err = commit(&repo, &cursors, &c, &topic, bad.as_bytes()).unwrap_err();
            assert_eq!(err.code, "bad_json", "{bad}");
        }
        assert_eq!(
            repo.refs().find(&c.position_ref(&topic)).unwrap(),
            Some(ids[1]),
            "unchanged"
        );
        commit(&repo, &cursors, &c, &topic, body("null", &b).as_bytes()).unwrap();
        assert_eq!(
            repo.refs().find(&c.position_ref(&topic)).unwrap(),
            None,
            "back to the start"
        );
    }
}
