//! Unit tests of the protocol v2 messages, on bytes shaped like git 2.47's.

use super::*;

use crate::git::wire::pktline::encode_lines as lines;

const A: &str = "ce013625030ba8dba906f756967f9e9ca394464a";
const B: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

fn git_2_47_caps() -> Vec<u8> {
    lines(&[
        "version 2",
        "agent=git/2.47.3",
        "ls-refs=unborn",
        "fetch=shallow wait-for-done",
        "server-option",
        "object-format=sha1",
        "0000",
    ])
}

#[test]
fn a_v2_advertisement_parses_with_or_without_the_service_line() {
    let plain = git_2_47_caps();
    let mut with_service = lines(&["# service=git-upload-pack", "0000"]);
    with_service.extend_from_slice(&plain);
    for body in [plain, with_service] {
        let Advertisement::V2(caps) = parse_advertisement(&body).unwrap() else {
            panic!("v2 expected");
        };
        assert!(caps.has("ls-refs"));
        assert!(caps.command_has("fetch", "wait-for-done"));
        assert!(!caps.command_has("fetch", "sideband-all"));
        assert_eq!(caps.agent(), Some("git/2.47.3"));
    }
}

#[test]
fn a_v0_advertisement_is_handed_back_unparsed() {
    let mut body = lines(&["# service=git-upload-pack", "0000"]);
    let v0 = lines(&[
        &format!("{A} refs/heads/main\0multi_ack side-band-64k"),
        "0000",
    ]);
    body.extend_from_slice(&v0);
    assert_eq!(parse_advertisement(&body).unwrap(), Advertisement::V0(v0));
}

#[test]
fn sha256_servers_and_truncated_advertisements_are_refused() {
    let body = lines(&["version 2", "object-format=sha256", "0000"]);
    assert!(matches!(
        parse_advertisement(&body),
        Err(Error::ObjectFormat { .. })
    ));
    let body = git_2_47_caps();
    let err = parse_advertisement(&body[..body.len() - 4]).unwrap_err();
    assert!(err.is_spurious(), "{err}");
}

#[test]
fn ls_refs_request_and_response() {
    let Advertisement::V2(caps) = parse_advertisement(&git_2_47_caps()).unwrap() else {
        panic!("v2 expected");
    };
    let request = ls_refs_request(&caps, "gitmq/0.1", &["refs/heads/", "refs/gitmq/"]).unwrap();
    assert_eq!(
        String::from_utf8(request).unwrap(),
        "0014command=ls-refs\n0014agent=gitmq/0.1\n0017object-format=sha1\n0001\
         000csymrefs\n001bref-prefix refs/heads/\n001bref-prefix refs/gitmq/\n0000"
    );
    let body = lines(&[
        &format!("{A} HEAD symref-target:refs/heads/main"),
        &format!("{A} refs/heads/main"),
        &format!("{B} refs/gitmq/consumers/billing/main"),
        "unborn refs/heads/other",
        "0000",
    ]);
    let refs = parse_ls_refs(&body).unwrap();
    assert_eq!(refs.len(), 3);
    assert_eq!(refs[0].symref_target.as_deref(), Some("refs/heads/main"));
    assert_eq!(refs[2].name, "refs/gitmq/consumers/billing/main");
    assert_eq!(refs[2].id.to_string(), B);
}

#[test]
fn ls_refs_errors_are_clear() {
    let body = lines(&["ERR access denied", "0000"]);
    assert!(
        matches!(parse_ls_refs(&body), Err(Error::Remote { message }) if message == "access denied")
    );
    let body = lines(&["abc refs/heads/main", "0000"]);
    assert!(matches!(parse_ls_refs(&body), Err(Error::Malformed { .. })));
    let body = lines(&[&format!("{A} refs/heads/main")]);
    assert!(parse_ls_refs(&body).unwrap_err().is_spurious());
}

#[test]
fn fetch_request_sends_wants_haves_and_done_and_thin_pack_only_when_asked() {
    let caps = Capabilities {
        entries: vec![("fetch".into(), Some("shallow".into()))],
    };
    let (a, b) = (
        ObjectId::from_hex(A.as_bytes()).unwrap(),
        ObjectId::from_hex(B.as_bytes()).unwrap(),
    );
    let request = fetch_request(
        &caps,
        "gitmq",
        &FetchRequest {
            wants: &[a],
            haves: &[b],
            no_progress: true,
            thin_pack: false,
        },
    )
    .unwrap();
    let text = String::from_utf8(request).unwrap();
    assert!(text.starts_with("0012command=fetch\n0001000eofs-delta\n0010no-progress\n"));
    assert!(text.contains(&format!("0032want {A}\n0032have {B}\n0009done\n0000")));
    assert!(
        !text.contains("thin-pack"),
        "no thin pack unless the caller completes it"
    );
    let thin = fetch_request(
        &caps,
        "gitmq",
        &FetchRequest {
            wants: &[a],
            haves: &[b],
            no_progress: false,
            thin_pack: true,
        },
    )
    .unwrap();
    let text = String::from_utf8(thin).unwrap();
    assert!(
        text.starts_with("0012command=fetch\n0001000ethin-pack\n000eofs-delta\n0032want"),
        "thin-pack is an argument, as git's client sends it: {text}"
    );
}

#[test]
fn random_and_mutated_input_never_panics() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut seeds = vec![git_2_47_caps()];
    seeds.push(lines(&[&format!("{A} refs/heads/main"), "0000"]));
    seeds.push(lines(&["acknowledgments", "NAK", "0001", "packfile"]));
    for round in 0..3000 {
        let mut data = seeds[round % seeds.len()].clone();
        for _ in 0..=(next() % 4) {
            if data.is_empty() {
                break;
            }
            let at = usize::try_from(next() % data.len() as u64).unwrap();
            match next() % 3 {
                0 => data[at] = u8::try_from(next() % 256).unwrap(),
                1 => data.truncate(at),
                _ => data.insert(at, b'0'),
            }
        }
        let _ = parse_advertisement(&data);
        let _ = parse_ls_refs(&data);
        let _ = super::super::v0::parse_advertisement(&data);
        let _ = read_fetch_response(&mut pktline::Reader::new(&data[..]));
    }
}

#[test]
fn fetch_response_sections_are_skipped_up_to_the_packfile() {
    let mut body = lines(&[
        "acknowledgments",
        &format!("ACK {A}"),
        "ready",
        "0001",
        "shallow-info",
        "0001",
        "packfile",
    ]);
    body.extend_from_slice(b"0009\x01PACK0000");
    let mut reader = pktline::Reader::new(&body[..]);
    let response = read_fetch_response(&mut reader).unwrap();
    assert!(response.has_pack);
    assert_eq!(response.acks.len(), 1);
    assert_eq!(
        reader.read_line().unwrap(),
        Some(PacketLine::Data(b"\x01PACK"))
    );

    let body = lines(&["acknowledgments", "NAK", "0000"]);
    let response = read_fetch_response(&mut pktline::Reader::new(&body[..])).unwrap();
    assert!(!response.has_pack);

    let body = lines(&["ERR upload-pack: not our ref"]);
    assert!(matches!(
        read_fetch_response(&mut pktline::Reader::new(&body[..])),
        Err(Error::Remote { .. })
    ));
}
