//! Owns the checks of gitmq's small text and object codecs: commits (messages), loose
//! objects, `packed-refs` and topic/consumer names.

use gitmq::{
    git::hash::{object_id, OBJECT_HASH},
    git::message::decode::decode,
    git::message::{check_payload, encode, CommitEncoder, Envelope},
    git::odb::loose,
    git::refs::packed,
    name::MAX_NAME_LEN,
    ConsumerName, Identity, MessageRef, ObjectId, TopicName,
};
use gix_date::Time;
use gix_object::Kind;

/// `commit_decode`: decode the input as a commit (gix and the fast decoder, which must
/// agree, headers and stable id included); and, if it could be a payload, check that
/// `decode(encode(m)) == m` with a parent and author date taken from its first bytes, and
/// with a stable id and headers taken from its lines.
pub fn commit_decode(data: &[u8]) {
    let id = object_id(Kind::Commit, data);
    let full = MessageRef::from_bytes(id, data);
    if let Ok(message) = &full {
        assert!(
            data.ends_with(message.payload),
            "the payload is the commit's tail"
        );
        let owned = message.clone().into_owned();
        assert_eq!(
            owned.payload, message.payload,
            "into_owned keeps the payload"
        );
        assert_eq!(owned.parent, message.parent, "into_owned keeps the parent");
        assert_eq!(
            owned.stable_id(),
            message.stable_id(),
            "into_owned keeps the id"
        );
        assert!(
            owned.headers().eq(message.headers()),
            "into_owned keeps the headers"
        );
        let _ = owned.time_rfc3339();
    }
    if let Ok(fast) = decode(id, data) {
        let full = full
            .as_ref()
            .expect("the fast decoder accepts only what gix accepts");
        assert_eq!(&fast, full, "the fast decoder agrees with gix");
        assert_eq!(fast.stable_id(), full.stable_id());
        assert!(fast.headers().eq(full.headers()));
    }
    if check_payload(data).is_ok() {
        encode_round_trip(data);
        headers_round_trip(data);
    }
}

/// Encode `payload` with a stable id and headers made of its first lines (those that are
/// valid), and check that they decode back, through both decoders.
fn headers_round_trip(payload: &[u8]) {
    let text = String::from_utf8_lossy(payload);
    let mut lines = text.lines();
    let mut envelope = Envelope::new();
    if let Some(id) = lines.next() {
        envelope = envelope.clone().with_id(id).unwrap_or(envelope);
    }
    for line in lines.take(8) {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let _ = envelope.push_header(key, value);
    }
    let encoder = CommitEncoder::new(&Identity::default(), 0);
    let mut body = Vec::new();
    encoder.encode_with(&mut body, None, 1, &envelope, payload);
    let id = object_id(Kind::Commit, &body);
    for decoded in [
        MessageRef::from_bytes(id, &body).expect("what gitmq encodes decodes"),
        decode(id, &body).expect("what gitmq encodes decodes fast"),
    ] {
        assert_eq!(decoded.payload, payload, "the payload is byte-exact");
        assert_eq!(decoded.stable_id(), envelope.id(), "the stable id survives");
        assert!(
            decoded.headers().eq(envelope.headers()),
            "the headers survive"
        );
    }
}

fn encode_round_trip(payload: &[u8]) {
    let mut seed = [0u8; 11];
    for (slot, byte) in seed.iter_mut().zip(payload) {
        *slot = *byte;
    }
    let [s0, s1, s2, s3, s4, s5, s6, s7, m0, m1, flags] = seed;
    let seconds = i64::from_be_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
    // git writes the offset as +hhmm: whole minutes, under 100 hours.
    let minutes = i16::from_be_bytes([m0, m1]) % (100 * 60);
    let offset = i32::from(minutes) * 60;
    let time = Time::new(seconds, offset);
    let parent = (flags & 1 == 1).then(|| object_id(Kind::Blob, payload));

    let mut body = Vec::new();
    encode(
        &mut body,
        parent.as_deref(),
        &Identity::default(),
        time,
        payload,
    );
    let id = object_id(Kind::Commit, &body);
    let decoded = MessageRef::from_bytes(id, &body).expect("what gitmq encodes decodes");
    assert_eq!(decoded.payload, payload, "the payload is byte-exact");
    assert_eq!(decoded.parent, parent, "the parent survives");
    assert!(decoded.other_parents.is_empty(), "a message has one parent");
    assert_eq!(decoded.time, time, "the author date and offset survive");
    assert_eq!(decoded.author, Identity::default().name().as_bytes());
}

/// `loose_object`: inflate and check the input as a loose object file.
///
/// Layout: one byte choosing the size limit (`1 << (byte % 24)`), the 20-byte id the
/// object should hash to, then the file's zlib bytes. Seeds carry the real id, so the
/// success path is reached; mutants exercise every error path up to the id check.
pub fn loose_object(data: &[u8]) {
    let Some((&shift, rest)) = data.split_first() else {
        return;
    };
    let Some((id, compressed)) = rest.split_at_checked(OBJECT_HASH.len_in_bytes()) else {
        return;
    };
    let id = ObjectId::from_bytes_or_panic(id);
    let limit = 1u64 << (shift % 24);
    let mut body = Vec::new();
    if let Ok(kind) = loose::decode(&id, compressed, limit, &mut body) {
        assert!(body.len() as u64 <= limit, "the limit bounds the body");
        assert_eq!(object_id(kind, &body), id, "a decoded object has its id");
    }
}

/// `packed_refs`: parse the input as a `packed-refs` file; a parsed file must survive a
/// write-out in git's format and a second parse, and an error names an existing line.
pub fn packed_refs(data: &[u8]) {
    match packed::parse(data) {
        Ok(refs) => {
            // The parser strips one `\r` per line, so a name ending in `\r` cannot round-trip.
            if refs.iter().any(|r| r.name.ends_with('\r')) {
                return;
            }
            let mut text = Vec::new();
            for r in &refs {
                text.extend_from_slice(format!("{} {}\n", r.target, r.name).as_bytes());
                if let Some(peeled) = r.peeled {
                    text.extend_from_slice(format!("^{peeled}\n").as_bytes());
                }
            }
            let again = packed::parse(&text).expect("what git's format writes parses");
            assert_eq!(again, refs, "packed-refs round-trips");
        }
        Err(err) => {
            let lines = data.split(|b| *b == b'\n').count();
            assert!(
                (1..=lines).contains(&err.line),
                "error line {} of {lines}",
                err.line
            );
        }
    }
}

/// `ref_name`: validate UTF-8 input as a consumer name and a topic name (split at the first
/// newline, else the same text) and as a full position ref. An accepted name must be safe
/// as a path under `refs/`, and position refs must round-trip.
pub fn ref_name(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, second) = text.split_once('\n').unwrap_or((text, text));
    let consumer = ConsumerName::new(first).ok();
    let topic = TopicName::new(second).ok();
    if let Some(consumer) = &consumer {
        assert_safe_name(consumer.as_str());
        assert!(
            !consumer.as_str().contains('/'),
            "a consumer is one component"
        );
    }
    if let Some(topic) = &topic {
        assert_safe_name(topic.as_str());
        assert_eq!(
            TopicName::from_ref(&topic.ref_name()).as_ref(),
            Some(topic),
            "a topic's ref names it"
        );
    }
    if let (Some(consumer), Some(topic)) = (consumer, topic) {
        let full = consumer.position_ref(&topic);
        assert_eq!(
            ConsumerName::parse_position_ref(&full),
            Some((consumer, topic)),
            "a position ref round-trips"
        );
    }
    if let Some((consumer, topic)) = ConsumerName::parse_position_ref(text) {
        assert_eq!(
            consumer.position_ref(&topic),
            text,
            "a parsed ref is the text"
        );
    }
}

/// What `name.rs` promises of an accepted name: git's ref-name rules and a path that stays
/// inside the repository.
#[allow(
    clippy::case_sensitive_file_extension_comparisons,
    reason = "git refuses exactly `.lock`; `x.LOCK` is accepted, as git accepts it"
)]
fn assert_safe_name(name: &str) {
    assert!(
        !name.is_empty() && name.len() <= MAX_NAME_LEN,
        "{name:?}: length"
    );
    assert!(!name.contains(".."), "{name:?}: '..'");
    assert!(!name.contains("@{"), "{name:?}: '@{{'");
    assert!(!name.ends_with('.'), "{name:?}: ends with '.'");
    assert!(!name.starts_with('-'), "{name:?}: starts with '-'");
    assert!(name != "@" && name != "HEAD", "{name:?}: means HEAD");
    for byte in name.bytes() {
        assert!(
            !byte.is_ascii_control() && !b"\\ ~^:?*[".contains(&byte),
            "{name:?}: byte {byte:#04x}"
        );
    }
    for component in name.split('/') {
        assert!(!component.is_empty(), "{name:?}: empty component");
        assert!(
            !component.starts_with('.'),
            "{name:?}: component starts with '.'"
        );
        assert!(
            !component.ends_with(".lock"),
            "{name:?}: component ends with .lock"
        );
    }
}
