//! Owns git's pkt-line framing: decoding one packet from a byte slice (sans-IO), encoding
//! packets, and [`Reader`], which pulls packets out of any [`Read`].
//!
//! Layout (git's
//! [`Documentation/gitprotocol-common.txt`](https://github.com/git/git/blob/v2.47.0/Documentation/gitprotocol-common.txt)
//! and `gitprotocol-v2.txt`):
//!
//! ```text
//! offset 0  4 hex digits: the packet's total length, these 4 bytes included
//! offset 4  length - 4 bytes of data (at most MAX_PKT_DATA_LEN)
//!
//! special lengths, with no data:  "0000" flush   "0001" delim   "0002" response-end
//! ```
//!
//! Invariants: [`decode()`] never panics and never allocates: a length that is not 4 hex
//! digits, is `0003`, or exceeds [`MAX_PKT_LEN`] is an [`Error`]; a packet cut short is
//! [`Stream::Incomplete`] with the number of bytes still needed. [`Reader`] buffers at most
//! one packet ([`MAX_PKT_LEN`] bytes) at a time, whatever the peer sends.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::io::{self, Read};

/// Bytes of the hex length prefix.
pub const LEN_PREFIX_LEN: usize = 4;
/// The longest packet, prefix included (git's `LARGE_PACKET_MAX`).
pub const MAX_PKT_LEN: usize = 65520;
/// The most data one packet carries.
pub const MAX_PKT_DATA_LEN: usize = MAX_PKT_LEN - LEN_PREFIX_LEN;
/// A flush packet: the end of a message or section.
pub const FLUSH_PKT: &[u8; 4] = b"0000";
/// A delimiter packet: separates the parts of a protocol v2 message.
pub const DELIM_PKT: &[u8; 4] = b"0001";
/// A response-end packet: the end of a stateless protocol v2 response.
pub const RESPONSE_END_PKT: &[u8; 4] = b"0002";

/// Returned by [`decode()`], [`encode_data()`] and [`Reader::read_line()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The four length bytes are not hex digits.
    #[error("pkt-line length {prefix:?} is not 4 hex digits")]
    BadLength {
        /// The four bytes, lossily decoded.
        prefix: String,
    },
    /// Length 3 is reserved and cannot frame a packet.
    #[error("pkt-line length 0003 is invalid")]
    ReservedLength,
    /// The length exceeds what git allows.
    #[error("pkt-line of {len} bytes exceeds the maximum of {MAX_PKT_LEN}")]
    TooLong {
        /// The declared length.
        len: usize,
    },
    /// The input ended in the middle of a packet.
    #[error("the stream ended in the middle of a pkt-line ({needed} more bytes expected)")]
    Truncated {
        /// How many more bytes the packet needed.
        needed: usize,
    },
    /// Reading the underlying stream failed.
    #[error("reading pkt-lines failed")]
    Io(#[source] io::Error),
}

impl Error {
    /// Whether retrying the request may succeed (the stream broke, the data was not bad).
    pub fn is_spurious(&self) -> bool {
        matches!(self, Error::Truncated { .. } | Error::Io(_))
    }
}

/// One packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketLine<'a> {
    /// A data packet's payload (possibly empty).
    Data(&'a [u8]),
    /// `0000`.
    Flush,
    /// `0001`.
    Delim,
    /// `0002`.
    ResponseEnd,
}

impl<'a> PacketLine<'a> {
    /// The payload of a data packet, without one trailing `\n`; `None` for special packets.
    pub fn as_text(&self) -> Option<&'a [u8]> {
        match *self {
            PacketLine::Data(data) => Some(data.strip_suffix(b"\n").unwrap_or(data)),
            _ => None,
        }
    }
}

/// What [`decode()`] found at the start of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream<'a> {
    /// A whole packet, which took `consumed` bytes.
    Complete {
        /// The packet.
        line: PacketLine<'a>,
        /// Its length on the wire, prefix included.
        consumed: usize,
    },
    /// The input holds only part of a packet; at least `needed` more bytes are required.
    Incomplete {
        /// How many more bytes to read before decoding again.
        needed: usize,
    },
}

/// Decode the packet at the start of `data`.
pub fn decode(data: &[u8]) -> Result<Stream<'_>, Error> {
    let Some(prefix) = data.get(..LEN_PREFIX_LEN) else {
        return Ok(Stream::Incomplete {
            needed: LEN_PREFIX_LEN - data.len(),
        });
    };
    let len = parse_len(prefix)?;
    let line = match len {
        0 => PacketLine::Flush,
        1 => PacketLine::Delim,
        2 => PacketLine::ResponseEnd,
        3 => return Err(Error::ReservedLength),
        len if len > MAX_PKT_LEN => return Err(Error::TooLong { len }),
        len => match data.get(LEN_PREFIX_LEN..len) {
            Some(payload) => {
                return Ok(Stream::Complete {
                    line: PacketLine::Data(payload),
                    consumed: len,
                })
            }
            None => {
                return Ok(Stream::Incomplete {
                    needed: len - data.len(),
                })
            }
        },
    };
    Ok(Stream::Complete {
        line,
        consumed: LEN_PREFIX_LEN,
    })
}

fn parse_len(prefix: &[u8]) -> Result<usize, Error> {
    let mut len = 0usize;
    for &byte in prefix {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            b'A'..=b'F' => byte - b'A' + 10,
            _ => {
                return Err(Error::BadLength {
                    prefix: String::from_utf8_lossy(prefix).into_owned(),
                })
            }
        };
        len = len * 16 + usize::from(digit);
    }
    Ok(len)
}

/// Append `data` as one data packet; an error if it is longer than [`MAX_PKT_DATA_LEN`].
pub fn encode_data(out: &mut Vec<u8>, data: &[u8]) -> Result<(), Error> {
    if data.len() > MAX_PKT_DATA_LEN {
        return Err(Error::TooLong {
            len: data.len() + LEN_PREFIX_LEN,
        });
    }
    out.extend_from_slice(format!("{:04x}", data.len() + LEN_PREFIX_LEN).as_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// Append `text` and a newline as one data packet (protocol lines are short, so this is a
/// programming error if too long).
pub fn encode_text(out: &mut Vec<u8>, text: &str) {
    let mut line = Vec::with_capacity(text.len() + 1);
    line.extend_from_slice(text.as_bytes());
    line.push(b'\n');
    encode_data(out, &line).expect("BUG: protocol lines are shorter than a packet");
}

/// Test input: each part as a text packet, `"0000"` a flush, `"0001"` a delimiter.
#[cfg(test)]
pub(crate) fn encode_lines(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        match *part {
            "0000" => out.extend_from_slice(FLUSH_PKT),
            "0001" => out.extend_from_slice(DELIM_PKT),
            text => encode_text(&mut out, text),
        }
    }
    out
}

/// A packet's kind, without the borrow (lets [`Reader`] return a packet from its buffer).
#[derive(Clone, Copy)]
enum Shape {
    Data,
    Flush,
    Delim,
    ResponseEnd,
}

impl Shape {
    fn of(line: PacketLine<'_>) -> Self {
        match line {
            PacketLine::Data(_) => Shape::Data,
            PacketLine::Flush => Shape::Flush,
            PacketLine::Delim => Shape::Delim,
            PacketLine::ResponseEnd => Shape::ResponseEnd,
        }
    }
}

/// Pulls packets out of a byte stream, buffering at most one packet.
#[derive(Debug)]
pub struct Reader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// Lifecycle
impl<R: Read> Reader<R> {
    /// Read packets from `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0; MAX_PKT_LEN],
            start: 0,
            end: 0,
        }
    }

    /// The stream, with any bytes already buffered dropped.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Reading
impl<R: Read> Reader<R> {
    /// The next packet, or `None` if the stream ended cleanly between packets.
    pub fn read_line(&mut self) -> Result<Option<PacketLine<'_>>, Error> {
        loop {
            let available = self.buf.get(self.start..self.end).unwrap_or_default();
            let shape = match decode(available)? {
                Stream::Complete { line, consumed } => Some((Shape::of(line), consumed)),
                Stream::Incomplete { needed } => {
                    if !self.fill()? {
                        return if self.start == self.end {
                            Ok(None)
                        } else {
                            Err(Error::Truncated { needed })
                        };
                    }
                    None
                }
            };
            if let Some((shape, consumed)) = shape {
                let at = self.start;
                self.start += consumed;
                return Ok(Some(match shape {
                    Shape::Data => PacketLine::Data(
                        self.buf
                            .get(at + LEN_PREFIX_LEN..at + consumed)
                            .unwrap_or_default(),
                    ),
                    Shape::Flush => PacketLine::Flush,
                    Shape::Delim => PacketLine::Delim,
                    Shape::ResponseEnd => PacketLine::ResponseEnd,
                }));
            }
        }
    }

    /// The next packet; the end of the stream is [`Error::Truncated`].
    pub fn expect_line(&mut self) -> Result<PacketLine<'_>, Error> {
        match self.read_line()? {
            Some(line) => Ok(line),
            None => Err(Error::Truncated {
                needed: LEN_PREFIX_LEN,
            }),
        }
    }

    /// Read more bytes after the buffered ones; `false` at the end of the stream.
    fn fill(&mut self) -> Result<bool, Error> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let free = self.buf.get_mut(self.end..).unwrap_or_default();
        loop {
            match self.inner.read(free) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(Error::Io(err)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(line: PacketLine<'_>, consumed: usize) -> Stream<'_> {
        Stream::Complete { line, consumed }
    }

    #[test]
    fn data_and_special_packets_decode() {
        assert_eq!(
            decode(b"000ahello\nrest").unwrap(),
            complete(PacketLine::Data(b"hello\n"), 10)
        );
        assert_eq!(decode(b"0000").unwrap(), complete(PacketLine::Flush, 4));
        assert_eq!(decode(b"0001").unwrap(), complete(PacketLine::Delim, 4));
        assert_eq!(
            decode(b"0002").unwrap(),
            complete(PacketLine::ResponseEnd, 4)
        );
        assert_eq!(
            decode(b"0004").unwrap(),
            complete(PacketLine::Data(b""), 4),
            "an empty data packet is legal"
        );
        assert_eq!(
            decode(b"000AHELLO\n").unwrap(),
            complete(PacketLine::Data(b"HELLO\n"), 10),
            "upper-case hex is accepted, as git does"
        );
    }

    #[test]
    fn partial_packets_say_how_much_more_is_needed() {
        assert_eq!(decode(b"").unwrap(), Stream::Incomplete { needed: 4 });
        assert_eq!(decode(b"00").unwrap(), Stream::Incomplete { needed: 2 });
        assert_eq!(
            decode(b"000ahel").unwrap(),
            Stream::Incomplete { needed: 3 }
        );
    }

    #[test]
    fn hostile_lengths_are_errors_not_panics() {
        assert!(matches!(decode(b"0003"), Err(Error::ReservedLength)));
        assert!(matches!(
            decode(b"fff1"),
            Err(Error::TooLong { len: 65521 })
        ));
        assert!(matches!(decode(b"ffff"), Err(Error::TooLong { .. })));
        assert!(matches!(decode(b"00g0"), Err(Error::BadLength { .. })));
        assert!(matches!(decode(b"-001"), Err(Error::BadLength { .. })));
        assert!(matches!(
            decode(b"\xff\xff\xff\xff"),
            Err(Error::BadLength { .. })
        ));
    }

    #[test]
    fn the_longest_packet_decodes_and_encodes() {
        let data = vec![b'x'; MAX_PKT_DATA_LEN];
        let mut out = Vec::new();
        encode_data(&mut out, &data).unwrap();
        assert_eq!(&out[..4], b"fff0");
        assert_eq!(
            decode(&out).unwrap(),
            complete(PacketLine::Data(&data), MAX_PKT_LEN)
        );
        assert!(encode_data(&mut out, &vec![0; MAX_PKT_DATA_LEN + 1]).is_err());
    }

    #[test]
    fn decode_of_encode_is_the_identity_for_every_small_length() {
        for len in 0..300 {
            let data: Vec<u8> = (0..len).map(|i| u8::try_from(i % 256).unwrap()).collect();
            let mut out = Vec::new();
            encode_data(&mut out, &data).unwrap();
            assert_eq!(
                decode(&out).unwrap(),
                complete(PacketLine::Data(&data), len + 4)
            );
        }
    }

    /// A reader that hands out one byte per read, to exercise buffering.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((&first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = first;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn the_reader_reassembles_packets_from_tiny_reads_and_reports_truncation() {
        let stream = b"0009abcd\n00010000000ahello\n";
        let mut reader = Reader::new(Trickle(stream));
        assert_eq!(
            reader.read_line().unwrap(),
            Some(PacketLine::Data(b"abcd\n"))
        );
        assert_eq!(reader.read_line().unwrap(), Some(PacketLine::Delim));
        assert_eq!(reader.read_line().unwrap(), Some(PacketLine::Flush));
        assert_eq!(
            reader.read_line().unwrap().and_then(|l| l.as_text()),
            Some(&b"hello"[..])
        );
        assert_eq!(reader.read_line().unwrap(), None, "a clean end");

        let mut reader = Reader::new(Trickle(b"000ahel"));
        assert!(matches!(
            reader.read_line(),
            Err(Error::Truncated { needed: 3 })
        ));
    }
}
