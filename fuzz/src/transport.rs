//! Fuzz checks of what a remote sends: pkt-line framing and the protocol parsers on top of it
//! (`pktline`), and a received pack through the indexer (`received_pack`).

use std::io::{self, Read};

use gitmq::{
    git::hash::Hasher,
    git::odb::pack::{
        index_pack::{index_pack, Limits},
        read::{DeltaBaseCache, Options, PackFile},
    },
    git::wire::{
        pktline::{self, PacketLine, Stream},
        receive_pack, sideband, v0, v2,
    },
};

/// Hands out at most `chunk` bytes per read, so the reader's buffering is exercised.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.data.len().min(out.len()).min(self.chunk);
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A packet, owned, for comparisons.
#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Data(Vec<u8>),
    Flush,
    Delim,
    ResponseEnd,
}

fn owned(line: PacketLine<'_>) -> Owned {
    match line {
        PacketLine::Data(data) => Owned::Data(data.to_vec()),
        PacketLine::Flush => Owned::Flush,
        PacketLine::Delim => Owned::Delim,
        PacketLine::ResponseEnd => Owned::ResponseEnd,
    }
}

/// `pktline`: the input through `pktline::decode` and `pktline::Reader` (which must agree,
/// whatever the read sizes), data packets re-encoded (which must give their bytes back), and
/// every parser a server's answer reaches: v2 advertisement, `ls-refs`, `fetch` sections,
/// the v0 advertisement and ACK/NAK, receive-pack's advertisement and push report (bare and
/// in side-band), and the side-band demultiplexer.
pub fn pktline(data: &[u8]) {
    let mut decoded = Vec::new();
    let mut rest = data;
    loop {
        match pktline::decode(rest) {
            Ok(Stream::Complete { line, consumed }) => {
                assert!(
                    (pktline::LEN_PREFIX_LEN..=rest.len()).contains(&consumed),
                    "consumed {consumed} of {}",
                    rest.len()
                );
                if let PacketLine::Data(payload) = line {
                    let mut again = Vec::new();
                    pktline::encode_data(&mut again, payload).expect("a decoded packet fits");
                    assert_eq!(
                        again.to_ascii_lowercase(),
                        rest[..consumed].to_ascii_lowercase(),
                        "re-encoding gives the packet back"
                    );
                }
                decoded.push(owned(line));
                rest = &rest[consumed..];
            }
            Ok(Stream::Incomplete { needed }) => {
                assert!(needed > 0, "an incomplete packet needs more bytes");
                break;
            }
            Err(_) => break,
        }
    }
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut reader = pktline::Reader::new(Chunked { data, chunk });
    for expected in &decoded {
        let line = reader
            .read_line()
            .expect("the reader decodes what decode() decoded")
            .expect("not at the end yet");
        assert_eq!(&owned(line), expected, "Reader and decode() agree");
    }

    let _ = v2::parse_advertisement(data);
    let _ = v2::parse_ls_refs(data);
    let _ = v0::parse_advertisement(data);
    let _ = v2::read_fetch_response(&mut pktline::Reader::new(data));
    let _ = v0::read_fetch_response(&mut pktline::Reader::new(data));
    let _ = receive_pack::parse_advertisement(data);
    let _ = receive_pack::read_report(data, false, &mut |_| {});
    let _ = receive_pack::read_report(data, true, &mut |_| {});

    let mut lines = pktline::Reader::new(data);
    let mut progress_bytes = 0;
    let mut progress = |text: &[u8]| progress_bytes += text.len();
    let mut demuxed = Vec::new();
    let _ = sideband::Reader::new(&mut lines, &mut progress).read_to_end(&mut demuxed);
    assert!(
        demuxed.len() + progress_bytes <= data.len(),
        "side-band output comes from the input"
    );
}

/// `received_pack`: `[flag byte][pack without trailer]`. The pack (with a correct SHA-1
/// trailer appended when the flag is even, so the fuzzer gets past the checksum) goes
/// through `index_pack` with small limits. An error must leave `objects/pack` empty; success
/// must give a pack and index that gitmq's reader opens and reads back, every object hashing
/// to its id.
pub fn received_pack(data: &[u8]) {
    let Some((&flag, body)) = data.split_first() else {
        return;
    };
    let mut pack = body.to_vec();
    if flag % 2 == 0 {
        let mut hasher = Hasher::new();
        hasher.update(body);
        pack.extend_from_slice(hasher.finalize().as_bytes());
    }
    let dir = super::scratch_dir();
    let limits = Limits {
        max_object_size: 1 << 20,
        max_pack_size: 1 << 24,
        max_objects: 1 << 12,
        max_chain_len: 64,
        max_resolve_memory: 1 << 24,
    };
    let listing = || {
        std::fs::read_dir(dir.path())
            .expect("list the pack directory")
            .count()
    };
    match index_pack(
        &gitmq::git::fs::real(),
        &pack[..],
        dir.path(),
        &limits,
        false,
    ) {
        Err(_) => assert_eq!(listing(), 0, "an error leaves nothing behind"),
        Ok(indexed) => {
            let Some(written) = indexed.written else {
                assert_eq!(indexed.objects, 0);
                assert_eq!(listing(), 0);
                return;
            };
            let options = Options {
                verify_ids: true,
                max_object_size: limits.max_object_size,
                ..Options::default()
            };
            let mut file = PackFile::open_with(&written.pack_path, options)
                .expect("gitmq reads the pack it indexed");
            let mut cache = DeltaBaseCache::default();
            let mut out = Vec::new();
            for position in 0..file.index().len() {
                file.read_nth(position, &mut out, &mut cache)
                    .expect("every indexed object reads back with its id");
            }
            file.verify_checksum().expect("the trailer matches");
        }
    }
}
