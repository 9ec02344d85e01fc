//! Owns the bodies of `GET info/refs?service=...`: the v0 ref advertisement of upload-pack
//! and receive-pack, and the protocol v2 capability advertisement.
//!
//! Message shapes (git's `gitprotocol-http.txt`, `gitprotocol-pack.txt`,
//! `gitprotocol-v2.txt`; git's `http-backend.c` omits the service line for v2):
//!
//! ```text
//! v0   "# service=<svc>\n" flush
//!      "<id> <ref>\0<capabilities>\n"   (or "<zero id> capabilities^{}\0<caps>" with no refs)
//!      "<id> <ref>\n"  "<peeled id> <ref>^{}\n" ...   "shallow <id>\n" ...   flush
//! v2   "version 2\n" "agent=..." "ls-refs=unborn" "fetch=shallow wait-for-done"
//!      "object-format=sha1" flush
//! ```
//!
//! Invariants: the capabilities offered are exactly what `upload` and `receive` implement:
//! no thin packs are asked for (`no-thin`); `shallow` means `deepen <n>` only; no `filter`,
//! `deepen-since`, `deepen-not`, `deepen-relative`, `push-options` or
//! `push-cert` are offered.

use super::view::{Head, RefView};
use crate::git::{
    shallow::Shallow,
    wire::pktline::{encode_text, FLUSH_PKT},
};

/// What upload-pack v0 offers (git's own list, minus `deepen-since`, `deepen-not` and
/// `deepen-relative`, plus `no-done` and the wants it serves).
const UPLOAD_PACK_V0_CAPABILITIES: &str = "multi_ack thin-pack side-band side-band-64k ofs-delta \
     shallow no-progress include-tag multi_ack_detailed no-done allow-tip-sha1-in-want \
     allow-reachable-sha1-in-want";

/// What receive-pack offers. `no-thin` asks git to send a self-contained pack.
const RECEIVE_PACK_CAPABILITIES: &str =
    "report-status report-status-v2 delete-refs side-band-64k quiet atomic ofs-delta no-thin";

/// The zero id of an empty advertisement.
const ZERO_ID: &str = "0000000000000000000000000000000000000000";

/// `# service=<svc>` and a flush, which v0 answers start with over HTTP.
fn service_header(out: &mut Vec<u8>, service: &str) {
    encode_text(out, &format!("# service={service}"));
    out.extend_from_slice(FLUSH_PKT);
}

/// The ref lines of a v0 advertisement (`HEAD` first when `with_head`), the first carrying
/// `capabilities`.
fn ref_lines(out: &mut Vec<u8>, view: &RefView, with_head: bool, capabilities: &str) {
    let mut lines: Vec<(String, String)> = Vec::with_capacity(view.refs.len() + 1);
    if let Some(id) = view.head_id().filter(|_| with_head) {
        lines.push((id.to_string(), "HEAD".into()));
    }
    for r in &view.refs {
        lines.push((r.id.to_string(), r.name.clone()));
        if let Some(peeled) = r.peeled {
            lines.push((peeled.to_string(), format!("{}^{{}}", r.name)));
        }
    }
    if lines.is_empty() {
        lines.push((ZERO_ID.into(), "capabilities^{}".into()));
    }
    for (i, (id, name)) in lines.iter().enumerate() {
        if i == 0 {
            encode_text(out, &format!("{id} {name}\0{capabilities}"));
        } else {
            encode_text(out, &format!("{id} {name}"));
        }
    }
}

fn common_capabilities(view: &RefView, agent: &str) -> String {
    let symref = match &view.head {
        Head::Symbolic {
            target,
            id: Some(_),
        } => format!(" symref=HEAD:{target}"),
        _ => String::new(),
    };
    format!("{symref} object-format=sha1 agent={agent}")
}

/// The v0 advertisement of upload-pack; `shallow` lists the repository's pruned boundaries.
pub(crate) fn upload_pack_v0(view: &RefView, shallow: &Shallow, agent: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + 64 * view.refs.len());
    service_header(&mut out, "git-upload-pack");
    let capabilities = format!(
        "{UPLOAD_PACK_V0_CAPABILITIES}{}",
        common_capabilities(view, agent)
    );
    ref_lines(&mut out, view, true, &capabilities);
    for id in shallow.ids() {
        encode_text(&mut out, &format!("shallow {id}"));
    }
    out.extend_from_slice(FLUSH_PKT);
    out
}

/// The v0 advertisement of receive-pack.
pub(crate) fn receive_pack(view: &RefView, agent: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + 64 * view.refs.len());
    service_header(&mut out, "git-receive-pack");
    let capabilities = format!("{RECEIVE_PACK_CAPABILITIES} object-format=sha1 agent={agent}");
    // receive-pack does not advertise HEAD (git's neither): only refs it may update.
    ref_lines(&mut out, view, false, &capabilities);
    out.extend_from_slice(FLUSH_PKT);
    out
}

/// The protocol v2 capability advertisement of upload-pack.
pub(crate) fn upload_pack_v2(agent: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    for line in [
        "version 2",
        &format!("agent={agent}"),
        "ls-refs=unborn",
        "fetch=shallow wait-for-done",
        "object-format=sha1",
    ] {
        encode_text(&mut out, line);
    }
    out.extend_from_slice(FLUSH_PKT);
    out
}

#[cfg(test)]
mod tests {
    use gix_hash::ObjectId;

    use super::*;
    use crate::git::wire::{receive_pack, v2};
    use crate::githost::view::VisibleRef;

    fn id(byte: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[byte; 20])
    }

    fn view() -> RefView {
        RefView {
            head: Head::Symbolic {
                target: "refs/heads/main".into(),
                id: Some(id(1)),
            },
            refs: vec![
                VisibleRef {
                    name: "refs/heads/main".into(),
                    id: id(1),
                    peeled: None,
                },
                VisibleRef {
                    name: "refs/tags/v1".into(),
                    id: id(2),
                    peeled: Some(id(1)),
                },
            ],
        }
    }

    #[test]
    fn gitmq_s_own_client_parses_what_the_host_advertises() {
        let body = receive_pack(&view(), "gitmq/test");
        let adv = receive_pack::parse_advertisement(&body).unwrap();
        assert!(adv.has("report-status-v2") && adv.has("atomic") && adv.has("delete-refs"));
        assert_eq!(adv.refs.len(), 2, "HEAD is not advertised for a push");

        let body = upload_pack_v2("gitmq/test");
        match v2::parse_advertisement(&body).unwrap() {
            v2::Advertisement::V2(caps) => {
                assert!(caps.has("ls-refs") && caps.has("fetch"));
                assert!(caps.command_has("fetch", "shallow"));
            }
            v2::Advertisement::V0(_) => panic!("expected v2"),
        }

        let mut shallow = Shallow::default();
        shallow.insert(id(9));
        let body = upload_pack_v0(&view(), &shallow, "gitmq/test");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("symref=HEAD:refs/heads/main"), "{text}");
        assert!(
            text.contains(&format!("{} refs/tags/v1^{{}}", id(1))),
            "{text}"
        );
        assert!(text.contains(&format!("shallow {}", id(9))), "{text}");
        match v2::parse_advertisement(&body).unwrap() {
            v2::Advertisement::V0(rest) => {
                let adv = crate::git::wire::v0::parse_advertisement(&rest).unwrap();
                assert!(adv.has("side-band-64k") && adv.has("multi_ack_detailed"));
            }
            v2::Advertisement::V2(_) => panic!("expected v0"),
        }
    }

    #[test]
    fn an_empty_repository_advertises_capabilities_on_the_zero_id() {
        let empty = RefView {
            head: Head::Hidden,
            refs: Vec::new(),
        };
        let body = receive_pack(&empty, "gitmq/test");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains(&format!("{ZERO_ID} capabilities^{{}}\0report-status")));
        assert!(receive_pack::parse_advertisement(&body)
            .unwrap()
            .refs
            .is_empty());
    }
}
