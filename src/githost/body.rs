//! Owns reading a request body: undoing its `Content-Encoding` (git gzips large upload-pack
//! requests), bounding the decoded bytes, and pulling pkt-lines out of it one at a time
//! without reading past the packet (a push's pack follows its command list in the same body).
//!
//! Invariants: at most [`Limits::max_request_bytes`](super::Limits) decoded bytes are ever
//! read before the pack (a gzip bomb stops there with [`Error::TooLarge`]); one packet's
//! payload ([`pktline::MAX_PKT_DATA_LEN`]) is the most a read buffers; nothing panics on
//! any input.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::io::{self, BufRead, BufReader, Read};

use flate2::read::GzDecoder;

use super::Error;
use crate::git::wire::pktline::{self, PacketLine, Stream, LEN_PREFIX_LEN};

/// The payload of the `io::Error` a [`Limited`] reader returns past its limit.
#[derive(Debug)]
struct LimitExceeded {
    limit: u64,
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "more than {} bytes", self.limit)
    }
}

impl std::error::Error for LimitExceeded {}

/// Reads at most `remaining` bytes; reading past them is an error (not an end of stream), so
/// a body cut to the limit is never mistaken for a whole one.
#[derive(Debug)]
pub(crate) struct Limited<R> {
    inner: R,
    remaining: u64,
    limit: u64,
}

impl<R: Read> Limited<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            remaining: limit,
            limit,
        }
    }

    /// Allow `more` bytes beyond what is left (a push's pack, after its command list).
    pub(crate) fn extend(&mut self, more: u64) {
        self.remaining = self.remaining.saturating_add(more);
        self.limit = self.limit.saturating_add(more);
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.remaining.saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        let taken = n as u64;
        if taken > self.remaining {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                LimitExceeded { limit: self.limit },
            ));
        }
        self.remaining -= taken;
        Ok(n)
    }
}

/// Map an error reading the body: past the limit is [`Error::TooLarge`], anything else
/// [`Error::ReadBody`].
pub(crate) fn read_error(err: io::Error) -> Error {
    if let Some(exceeded) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<LimitExceeded>())
    {
        return Error::TooLarge {
            what: "bytes",
            limit: exceeded.limit,
        };
    }
    Error::ReadBody(err)
}

/// Whether `err` (perhaps wrapped by another reader) is a [`Limited`] reader's limit.
pub(crate) fn limit_of(err: &io::Error) -> Option<u64> {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<LimitExceeded>())
        .map(|e| e.limit)
}

/// A request body: decoded, bounded, buffered.
pub(crate) type Body<'a> = BufReader<Limited<Box<dyn Read + 'a>>>;

/// Decode `raw` per `content_encoding` and bound it to `limit` decoded bytes.
pub(crate) fn open<'a>(
    raw: &'a mut dyn Read,
    content_encoding: Option<&str>,
    limit: u64,
) -> Result<Body<'a>, Error> {
    let decoded: Box<dyn Read + 'a> = match content_encoding.map(str::trim) {
        None | Some("" | "identity") => Box::new(raw),
        Some(encoding) if encoding.eq_ignore_ascii_case("gzip") || encoding == "x-gzip" => {
            Box::new(GzDecoder::new(raw))
        }
        Some(encoding) => {
            return Err(Error::UnsupportedEncoding {
                encoding: encoding.chars().take(64).collect(),
            })
        }
    };
    Ok(BufReader::with_capacity(
        1 << 16,
        Limited::new(decoded, limit),
    ))
}

/// One packet read by [`read_pkt()`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pkt<'b> {
    /// A packet: data (its payload), flush, delim or response-end.
    Line(PacketLine<'b>),
    /// The body ended cleanly between packets.
    Eof,
}

#[cfg(test)]
impl<'b> Pkt<'b> {
    /// The text of a data packet (one trailing newline removed).
    pub(crate) fn text(self) -> Option<&'b [u8]> {
        match self {
            Pkt::Line(line) => line.as_text(),
            Pkt::Eof => None,
        }
    }
}

/// Read exactly one packet from `body` into `buf` (reused), never past it.
pub(crate) fn read_pkt<'b>(
    body: &mut impl BufRead,
    buf: &'b mut Vec<u8>,
) -> Result<Pkt<'b>, Error> {
    let mut prefix = [0u8; LEN_PREFIX_LEN];
    let mut got = 0;
    while got < LEN_PREFIX_LEN {
        let n = body
            .read(prefix.get_mut(got..).unwrap_or_default())
            .map_err(read_error)?;
        if n == 0 {
            if got == 0 {
                return Ok(Pkt::Eof);
            }
            return Err(Error::PktLine(pktline::Error::Truncated {
                needed: LEN_PREFIX_LEN - got,
            }));
        }
        got += n;
    }
    match pktline::decode(&prefix).map_err(Error::PktLine)? {
        Stream::Complete { line, .. } => Ok(Pkt::Line(match line {
            PacketLine::Data(_) => PacketLine::Data(&[]),
            PacketLine::Flush => PacketLine::Flush,
            PacketLine::Delim => PacketLine::Delim,
            PacketLine::ResponseEnd => PacketLine::ResponseEnd,
        })),
        Stream::Incomplete { needed } => {
            buf.clear();
            buf.resize(needed, 0);
            body.read_exact(buf).map_err(|err| {
                if err.kind() == io::ErrorKind::UnexpectedEof {
                    Error::PktLine(pktline::Error::Truncated { needed })
                } else {
                    read_error(err)
                }
            })?;
            Ok(Pkt::Line(PacketLine::Data(buf)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn packets_are_read_one_at_a_time_and_what_follows_stays_in_the_stream() {
        let mut raw: &[u8] = b"0009abcd\n00010000PACK";
        let mut body = open(&mut raw, None, 1000).unwrap();
        let mut buf = Vec::new();
        assert_eq!(
            read_pkt(&mut body, &mut buf).unwrap().text(),
            Some(&b"abcd"[..])
        );
        assert_eq!(
            read_pkt(&mut body, &mut buf).unwrap(),
            Pkt::Line(PacketLine::Delim)
        );
        assert_eq!(
            read_pkt(&mut body, &mut buf).unwrap(),
            Pkt::Line(PacketLine::Flush)
        );
        let mut rest = Vec::new();
        body.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"PACK");
    }

    #[test]
    fn truncation_and_bad_lengths_are_errors() {
        let mut raw: &[u8] = b"0009ab";
        let mut body = open(&mut raw, None, 1000).unwrap();
        assert!(matches!(
            read_pkt(&mut body, &mut Vec::new()),
            Err(Error::PktLine(pktline::Error::Truncated { .. }))
        ));
        let mut raw: &[u8] = b"zzzz";
        let mut body = open(&mut raw, None, 1000).unwrap();
        assert!(matches!(
            read_pkt(&mut body, &mut Vec::new()),
            Err(Error::PktLine(_))
        ));
        let mut raw: &[u8] = b"";
        let mut body = open(&mut raw, None, 1000).unwrap();
        assert_eq!(read_pkt(&mut body, &mut Vec::new()).unwrap(), Pkt::Eof);
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'0'; 8 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 100_000);
        let mut raw: &[u8] = &bomb;
        let mut body = open(&mut raw, Some("gzip"), 1 << 20).unwrap();
        let err = io::copy(&mut body, &mut io::sink()).unwrap_err();
        assert!(matches!(
            read_error(err),
            Error::TooLarge {
                limit: 1_048_576,
                ..
            }
        ));
    }

    #[test]
    fn exactly_the_limit_is_allowed_and_unknown_encodings_refused() {
        let data = vec![1u8; 100];
        let mut raw: &[u8] = &data;
        let mut body = open(&mut raw, Some("identity"), 100).unwrap();
        let mut out = Vec::new();
        body.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 100);
        let mut raw: &[u8] = &data;
        assert!(matches!(
            open(&mut raw, Some("br"), 100),
            Err(Error::UnsupportedEncoding { .. })
        ));
    }
}
