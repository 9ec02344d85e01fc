//! Owns side-band-64k demultiplexing: the first byte of each data packet names its band.
//!
//! Layout (git's `Documentation/gitprotocol-pack.txt`, "side-band, side-band-64k"):
//!
//! ```text
//! pkt-line payload:  byte 0      band: 1 pack data, 2 progress text, 3 fatal error text
//!                    bytes 1..   at most MAX_PKT_DATA_LEN - 1 bytes of that band
//! the stream ends with a flush packet
//! ```
//!
//! Invariants: [`demux()`] is sans-IO and never panics; [`Reader`] hands out only band-1
//! bytes, passes band-2 text to the caller's progress callback, and stops at a band-3 packet,
//! keeping the server's message verbatim in [`Error::Remote`] (fetched with
//! [`Reader::take_error()`], since [`Read`] can only return an [`io::Error`]).

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::io::{self, Read};

use super::pktline::{self, PacketLine};

/// The band of pack data.
pub const BAND_DATA: u8 = 1;
/// The band of progress messages.
pub const BAND_PROGRESS: u8 = 2;
/// The band of a fatal error message.
pub const BAND_ERROR: u8 = 3;

/// Returned by [`demux()`] and recorded by [`Reader`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server reported a fatal error on band 3; its message, verbatim.
    #[error("the remote reported an error: {message}")]
    Remote {
        /// The message (lossily decoded, trailing newline removed).
        message: String,
    },
    /// A packet names no known band.
    #[error("side-band packet has unknown band {band}")]
    UnknownBand {
        /// The first byte of the packet.
        band: u8,
    },
    /// A data packet is empty, so it names no band.
    #[error("side-band packet is empty")]
    Empty,
    /// A delimiter or response-end packet arrived inside the side-band stream.
    #[error("unexpected special packet inside the side-band stream")]
    UnexpectedPacket,
    /// Framing failed.
    #[error(transparent)]
    PktLine(#[from] pktline::Error),
}

impl Error {
    /// Whether retrying the request may succeed.
    pub fn is_spurious(&self) -> bool {
        match self {
            Error::PktLine(err) => err.is_spurious(),
            _ => false,
        }
    }
}

/// One side-band packet's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band<'a> {
    /// Pack data.
    Data(&'a [u8]),
    /// Progress text for a human.
    Progress(&'a [u8]),
    /// A fatal error message.
    Error(&'a [u8]),
}

/// Split a data packet's payload into its band and content.
pub fn demux(payload: &[u8]) -> Result<Band<'_>, Error> {
    let (&band, rest) = payload.split_first().ok_or(Error::Empty)?;
    match band {
        BAND_DATA => Ok(Band::Data(rest)),
        BAND_PROGRESS => Ok(Band::Progress(rest)),
        BAND_ERROR => Ok(Band::Error(rest)),
        band => Err(Error::UnknownBand { band }),
    }
}

/// Band-1 bytes of a side-band stream as a [`Read`]; the flush packet is its end.
pub struct Reader<'a, R> {
    lines: &'a mut pktline::Reader<R>,
    progress: &'a mut dyn FnMut(&[u8]),
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    error: Option<Error>,
    /// Band-1 bytes received, and when they were last reported (if reporting).
    received: u64,
    reported: Option<std::time::Instant>,
}

/// How often [`Reader::with_receive_progress()`] reports.
const RECEIVE_REPORT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

impl<R> std::fmt::Debug for Reader<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("sideband::Reader")
            .field("buffered", &(self.buf.len() - self.pos))
            .field("done", &self.done)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Lifecycle
impl<'a, R: Read> Reader<'a, R> {
    /// Demultiplex the packets of `lines`, handing progress text to `progress`.
    pub fn new(lines: &'a mut pktline::Reader<R>, progress: &'a mut dyn FnMut(&[u8])) -> Self {
        Self {
            lines,
            progress,
            buf: Vec::with_capacity(pktline::MAX_PKT_DATA_LEN),
            pos: 0,
            done: false,
            error: None,
            received: 0,
            reported: None,
        }
    }

    /// Also report the band-1 bytes received so far to the progress callback, as git's
    /// "Receiving objects" line does: at most every 250 ms, then once at the end.
    #[must_use]
    pub fn with_receive_progress(mut self) -> Self {
        self.reported = Some(std::time::Instant::now());
        self
    }

    fn report_received(&mut self, done: bool) {
        let Some(last) = self.reported else { return };
        if !done && last.elapsed() < RECEIVE_REPORT_EVERY {
            return;
        }
        #[allow(clippy::cast_precision_loss)] // a progress line
        let mib = self.received as f64 / f64::from(1 << 20);
        let line = if done {
            format!("Receiving pack: {mib:.2} MiB, done.\n")
        } else {
            format!("Receiving pack: {mib:.2} MiB\r")
        };
        (self.progress)(line.as_bytes());
        self.reported = Some(std::time::Instant::now());
    }

    /// The error that made a read fail, if it was the stream's and not the caller's.
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// Whether the flush packet that ends the stream was read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Read the next band-1 packet into `buf`; `false` at the flush.
    fn next_data(&mut self) -> Result<bool, Error> {
        loop {
            let line = self.lines.expect_line()?;
            let payload = match line {
                PacketLine::Data(payload) => payload,
                PacketLine::Flush => {
                    self.report_received(true);
                    return Ok(false);
                }
                PacketLine::Delim | PacketLine::ResponseEnd => return Err(Error::UnexpectedPacket),
            };
            match demux(payload)? {
                Band::Data(data) => {
                    self.buf.clear();
                    self.buf.extend_from_slice(data);
                    self.pos = 0;
                    self.received += data.len() as u64;
                    self.report_received(false);
                    if !self.buf.is_empty() {
                        return Ok(true);
                    }
                }
                Band::Progress(text) => (self.progress)(text),
                Band::Error(text) => {
                    let text = text.strip_suffix(b"\n").unwrap_or(text);
                    return Err(Error::Remote {
                        message: String::from_utf8_lossy(text).into_owned(),
                    });
                }
            }
        }
    }
}

impl<R: Read> Read for Reader<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.buf.len() {
            if self.done || self.error.is_some() {
                return Ok(0);
            }
            match self.next_data() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return Ok(0);
                }
                Err(err) => {
                    let text = err.to_string();
                    self.error = Some(err);
                    return Err(io::Error::other(text));
                }
            }
        }
        let available = self.buf.get(self.pos..).unwrap_or_default();
        let n = available.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), available.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            if part.is_empty() {
                out.extend_from_slice(pktline::FLUSH_PKT);
            } else {
                pktline::encode_data(&mut out, part).unwrap();
            }
        }
        out
    }

    #[test]
    fn bands_are_split_and_unknown_ones_refused() {
        assert_eq!(demux(b"\x01PACK").unwrap(), Band::Data(b"PACK"));
        assert_eq!(demux(b"\x0250%\r").unwrap(), Band::Progress(b"50%\r"));
        assert_eq!(demux(b"\x03oops\n").unwrap(), Band::Error(b"oops\n"));
        assert!(matches!(
            demux(b"\x05"),
            Err(Error::UnknownBand { band: 5 })
        ));
        assert!(matches!(demux(b""), Err(Error::Empty)));
    }

    #[test]
    fn the_reader_joins_data_and_hands_progress_to_the_callback() {
        let stream = packets(&[b"\x01hello ", b"\x02counting\r", b"\x01world", b""]);
        let mut lines = pktline::Reader::new(&stream[..]);
        let mut seen = Vec::new();
        let mut progress = |text: &[u8]| seen.push(text.to_vec());
        let mut reader = Reader::new(&mut lines, &mut progress);
        let mut data = Vec::new();
        reader.read_to_end(&mut data).unwrap();
        assert!(reader.is_done());
        assert_eq!(data, b"hello world");
        assert_eq!(seen, vec![b"counting\r".to_vec()]);
    }

    #[test]
    fn a_band_3_message_is_surfaced_verbatim() {
        let stream = packets(&[b"\x01PA", b"\x03upload-pack: not our ref abc\n", b""]);
        let mut lines = pktline::Reader::new(&stream[..]);
        let mut progress = |_: &[u8]| {};
        let mut reader = Reader::new(&mut lines, &mut progress);
        let mut data = Vec::new();
        assert!(reader.read_to_end(&mut data).is_err());
        match reader.take_error() {
            Some(Error::Remote { message }) => {
                assert_eq!(message, "upload-pack: not our ref abc");
            }
            other => panic!("expected a remote error, got {other:?}"),
        }
    }

    #[test]
    fn a_stream_without_its_flush_is_a_spurious_truncation() {
        let stream = packets(&[b"\x01PACK"]);
        let mut lines = pktline::Reader::new(&stream[..]);
        let mut progress = |_: &[u8]| {};
        let mut reader = Reader::new(&mut lines, &mut progress);
        let mut data = Vec::new();
        assert!(reader.read_to_end(&mut data).is_err());
        let err = reader.take_error().unwrap();
        assert!(err.is_spurious(), "{err}");
    }

    #[test]
    fn receive_progress_reports_the_bytes_once_done_and_only_when_asked() {
        let body = packets(&[b"\x01PACK", b"\x02Counting\n", b"\x01more", b""]);
        let mut text = Vec::new();
        let mut lines = pktline::Reader::new(&body[..]);
        let mut sink = |t: &[u8]| text.extend_from_slice(t);
        let mut data = Vec::new();
        Reader::new(&mut lines, &mut sink)
            .with_receive_progress()
            .read_to_end(&mut data)
            .unwrap();
        assert_eq!(data, b"PACKmore");
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("Counting\n"), "{text:?}");
        assert!(
            text.ends_with("Receiving pack: 0.00 MiB, done.\n"),
            "{text:?}"
        );
        let mut quiet = Vec::new();
        let mut lines = pktline::Reader::new(&body[..]);
        let mut sink = |t: &[u8]| quiet.extend_from_slice(t);
        Reader::new(&mut lines, &mut sink)
            .read_to_end(&mut data)
            .unwrap();
        assert_eq!(quiet, b"Counting\n");
    }
}
