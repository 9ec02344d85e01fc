//! Owns the answer to a push: `report-status` (v1 or v2) with one verdict per command, inside
//! side-band-64k when negotiated, with refusals explained on the progress band as git's
//! `rp_error` does.
//!
//! ```text
//! report   "unpack ok" | "unpack <reason>"   ("ok <ref>" | "ng <ref> <reason>")*   flush
//! framed   band 2: "error: <text>\n"...   band 1: the report's packets   flush
//! ```
//!
//! Invariants: every command gets exactly one line, in request order; no line exceeds a
//! packet (reasons are cut, names are at most 4 KiB by the parser); without `report-status`
//! the client gets no report (nor does git's receive-pack send one).

use super::commands::{Command, ReportKind, RequestHead};
use crate::git::wire::{
    pktline::{encode_data, FLUSH_PKT, MAX_PKT_DATA_LEN},
    sideband_writer::SidebandWriter,
};

/// The longest reason written.
const MAX_REASON_LEN: usize = 1024;

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// One line of the report, never longer than a packet.
fn line(out: &mut Vec<u8>, text: &str) {
    let text = cut(text, MAX_PKT_DATA_LEN - 1);
    let mut data = Vec::with_capacity(text.len() + 1);
    data.extend_from_slice(text.as_bytes());
    data.push(b'\n');
    encode_data(out, &data).expect("BUG: cut to fit one packet");
}

/// The whole answer body.
pub(crate) fn build(
    head: &RequestHead,
    unpack: Option<&str>,
    commands: &[Command],
    statuses: &[Option<String>],
    messages: &[String],
) -> Vec<u8> {
    let mut report = Vec::new();
    if head.report != ReportKind::None {
        line(
            &mut report,
            &format!("unpack {}", unpack.map_or("ok", |u| cut(u, MAX_REASON_LEN))),
        );
        for (command, status) in commands.iter().zip(statuses) {
            match status {
                None => line(&mut report, &format!("ok {}", command.name)),
                Some(reason) => line(
                    &mut report,
                    &format!("ng {} {}", command.name, cut(reason, MAX_REASON_LEN)),
                ),
            }
        }
        report.extend_from_slice(FLUSH_PKT);
    }
    let Some(max_payload) = head.sideband else {
        return report;
    };
    let mut out = Vec::with_capacity(report.len() + 64);
    let mut band = SidebandWriter::new(&mut out, max_payload);
    // Writing to a Vec cannot fail.
    for message in messages {
        let _ = band.progress(&format!("error: {}\n", cut(message, MAX_REASON_LEN)));
    }
    let _ = std::io::Write::write_all(&mut band, &report);
    let _ = band.finish();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::wire::receive_pack;

    fn head(report: ReportKind, sideband: bool) -> RequestHead {
        RequestHead {
            commands: Vec::new(),
            report,
            sideband: sideband.then_some(1000),
            atomic: false,
            quiet: false,
        }
    }

    fn command(name: &str) -> Command {
        Command {
            old: None,
            new: None,
            name: name.into(),
        }
    }

    #[test]
    fn gitmq_s_client_reads_the_report_with_and_without_side_band() {
        let commands = [command("refs/heads/a"), command("refs/heads/b")];
        let statuses = [None, Some("non-fast-forward".to_owned())];
        for sideband in [false, true] {
            let body = build(
                &head(ReportKind::V2, sideband),
                None,
                &commands,
                &statuses,
                &["denying non-fast-forward refs/heads/b".to_owned()],
            );
            let mut progress = |_: &[u8]| {};
            let report = receive_pack::read_report(&body[..], sideband, &mut progress).unwrap();
            assert_eq!(
                report.status("refs/heads/a"),
                Some(&receive_pack::RefStatus::Ok)
            );
            assert_eq!(
                report.status("refs/heads/b"),
                Some(&receive_pack::RefStatus::Rejected(
                    receive_pack::Rejection::parse(b"non-fast-forward")
                ))
            );
        }
    }

    #[test]
    fn a_huge_reason_is_cut_to_fit_a_packet() {
        let commands = [command("refs/heads/a")];
        let statuses = [Some("x".repeat(200_000))];
        let body = build(
            &head(ReportKind::V1, false),
            Some(&"y".repeat(100_000)),
            &commands,
            &statuses,
            &[],
        );
        assert!(body.len() < 3000);
    }
}
