//! `gitmq split TOPIC [--at ID] [--contains S] [--json FIELD=VALUE] --into NEW`: a new topic
//! from part of one.

use std::io::{self, BufWriter, Write};

use gitmq::{position, topology, MessageRef, Repository, TopicName};

use super::Result;
use crate::cli::SplitArgs;

pub fn run(repo: &Repository, args: &SplitArgs) -> Result<()> {
    let topic = TopicName::new(&args.topic)?;
    let into = TopicName::new(&args.into)?;
    let at = args
        .at
        .as_deref()
        .map(|id| position::find_on_topic(repo, &topic, id))
        .transpose()?;
    let json = args
        .json
        .as_deref()
        .map(|spec| {
            spec.split_once('=')
                .ok_or_else(|| format!("--json wants FIELD=VALUE, not {spec:?}"))
        })
        .transpose()?;
    let contains = args.contains.as_deref().map(str::as_bytes);
    let keep = |message: &MessageRef<'_>| {
        contains.is_none_or(|text| contains_bytes(message.payload, text))
            && json.is_none_or(|(field, value)| json_field_is(message.payload, field, value))
    };
    let split = topology::split(repo, &topic, at, &into, keep, true)?;
    let mut out = BufWriter::new(io::stdout().lock());
    writeln!(out, "split\t{into}\t{}\t{}", split.copies.len(), split.head)?;
    for (consumer, id) in &split.positions {
        writeln!(out, "position\t{consumer}\t{id}")?;
    }
    out.flush()?;
    Ok(())
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// Whether `payload` is a JSON object whose `field` (dotted path) equals `value`.
fn json_field_is(payload: &[u8], field: &str, value: &str) -> bool {
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return false;
    };
    let mut current = &document;
    for part in field.split('.') {
        match current.get(part) {
            Some(next) => current = next,
            None => return false,
        }
    }
    match current {
        serde_json::Value::String(text) => text == value,
        other => serde_json::from_str::<serde_json::Value>(value).is_ok_and(|v| &v == other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_compare_as_text_or_json() {
        let payload = br#"{"kind":"order","n":42,"ok":true,"a":{"b":"c"}}"#;
        assert!(json_field_is(payload, "kind", "order"));
        assert!(json_field_is(payload, "n", "42"));
        assert!(json_field_is(payload, "ok", "true"));
        assert!(json_field_is(payload, "a.b", "c"));
        assert!(!json_field_is(payload, "kind", "refund"));
        assert!(!json_field_is(payload, "missing", "x"));
        assert!(!json_field_is(b"not json", "kind", "order"));
        assert!(contains_bytes(b"hello", b"ell") && !contains_bytes(b"hello", b"z"));
    }
}
