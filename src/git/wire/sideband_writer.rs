//! Owns the server side of side-band framing: packing bytes of one band into pkt-lines
//! (the writer counterpart of [`super::sideband::Reader`]), and writing single pkt-lines to a
//! stream.
//!
//! Layout (git's `gitprotocol-pack.txt`, "side-band, side-band-64k"):
//!
//! ```text
//! pkt-line:  4 hex digits of length | band byte (1 data, 2 progress, 3 error) | payload
//! payload:   at most MAX_PKT_DATA_LEN - 1 bytes (side-band-64k) or 999 (side-band)
//! ```
//!
//! Invariants: [`SidebandWriter`] buffers at most one packet's payload; every packet it emits
//! is within the negotiated size; band-1 bytes reach the stream in order and only after
//! [`SidebandWriter::flush_band()`] (or a full buffer); nothing here allocates from input.

use std::io::{self, Write};

use super::{
    pktline::{self, DELIM_PKT, FLUSH_PKT, MAX_PKT_DATA_LEN},
    sideband::{BAND_DATA, BAND_ERROR, BAND_PROGRESS},
};

/// The largest payload of one `side-band-64k` packet (band byte excluded).
pub const MAX_BAND_PAYLOAD_64K: usize = MAX_PKT_DATA_LEN - 1;
/// The largest payload of one plain `side-band` packet: git's `DEFAULT_PACKET_MAX` of 1000
/// bytes per packet, less the length prefix and the band byte.
pub const MAX_BAND_PAYLOAD_SMALL: usize = 1000 - pktline::LEN_PREFIX_LEN - 1;

/// Write one text pkt-line (`text` and a newline) to `out`.
pub fn write_text(out: &mut dyn Write, text: &str) -> io::Result<()> {
    let mut line = Vec::with_capacity(text.len() + 5);
    pktline::encode_text(&mut line, text);
    out.write_all(&line)
}

/// Write a flush packet (`0000`).
pub fn write_flush(out: &mut dyn Write) -> io::Result<()> {
    out.write_all(FLUSH_PKT)
}

/// Write a delimiter packet (`0001`).
pub fn write_delim(out: &mut dyn Write) -> io::Result<()> {
    out.write_all(DELIM_PKT)
}

/// Frames band-1 bytes written through [`Write`] into side-band packets; progress and error
/// text go out at once on bands 2 and 3.
pub struct SidebandWriter<'a> {
    out: &'a mut dyn Write,
    max_payload: usize,
    /// The band byte, then up to `max_payload` bytes of data.
    buf: Vec<u8>,
}

impl std::fmt::Debug for SidebandWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SidebandWriter")
            .field("max_payload", &self.max_payload)
            .field("buffered", &(self.buf.len() - 1))
            .finish_non_exhaustive()
    }
}

/// Lifecycle
impl<'a> SidebandWriter<'a> {
    /// Frame into packets of at most `max_payload` bytes of data (clamped to
    /// [`MAX_BAND_PAYLOAD_64K`]).
    pub fn new(out: &'a mut dyn Write, max_payload: usize) -> Self {
        let max_payload = max_payload.clamp(1, MAX_BAND_PAYLOAD_64K);
        let mut buf = Vec::with_capacity(max_payload + 1);
        buf.push(BAND_DATA);
        Self {
            out,
            max_payload,
            buf,
        }
    }
}

/// Writing
impl SidebandWriter<'_> {
    /// Send the buffered band-1 bytes as one packet.
    pub fn flush_band(&mut self) -> io::Result<()> {
        if self.buf.len() > 1 {
            let mut prefix = [0u8; pktline::LEN_PREFIX_LEN];
            write_len(&mut prefix, self.buf.len() + pktline::LEN_PREFIX_LEN);
            self.out.write_all(&prefix)?;
            self.out.write_all(&self.buf)?;
            self.buf.truncate(1);
        }
        Ok(())
    }

    /// Send `text` on the progress band (after any buffered data).
    pub fn progress(&mut self, text: &str) -> io::Result<()> {
        self.send_other(BAND_PROGRESS, text.as_bytes())
    }

    /// Send `text` on the error band (after any buffered data): the client stops reading.
    pub fn error(&mut self, text: &str) -> io::Result<()> {
        self.send_other(BAND_ERROR, text.as_bytes())
    }

    /// Send the buffered data, then the flush packet that ends the stream.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush_band()?;
        write_flush(self.out)?;
        self.out.flush()
    }

    fn send_other(&mut self, band: u8, text: &[u8]) -> io::Result<()> {
        self.flush_band()?;
        for chunk in text.chunks(self.max_payload) {
            let mut prefix = [0u8; pktline::LEN_PREFIX_LEN];
            write_len(&mut prefix, chunk.len() + 1 + pktline::LEN_PREFIX_LEN);
            self.out.write_all(&prefix)?;
            self.out.write_all(&[band])?;
            self.out.write_all(chunk)?;
        }
        Ok(())
    }
}

impl Write for SidebandWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.max_payload + 1 - self.buf.len();
        let n = room.min(data.len());
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        if self.buf.len() > self.max_payload {
            self.flush_band()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_band()?;
        self.out.flush()
    }
}

/// The 4 hex digits of a packet length (`len` is at most [`pktline::MAX_PKT_LEN`]).
fn write_len(out: &mut [u8; pktline::LEN_PREFIX_LEN], len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    debug_assert!(len <= pktline::MAX_PKT_LEN);
    for (i, byte) in out.iter_mut().enumerate() {
        let shift = 4 * (pktline::LEN_PREFIX_LEN - 1 - i);
        *byte = HEX[(len >> shift) & 0xf];
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::git::wire::sideband;

    #[test]
    fn data_is_framed_within_the_packet_size_and_read_back_by_the_reader() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        let mut writer = SidebandWriter::new(&mut wire, MAX_BAND_PAYLOAD_64K);
        writer.progress("Counting\n").unwrap();
        writer.write_all(&data[..70_000]).unwrap();
        writer.progress("half\n").unwrap();
        writer.write_all(&data[70_000..]).unwrap();
        writer.finish().unwrap();

        let mut offset = 0;
        while offset < wire.len() {
            match pktline::decode(&wire[offset..]).unwrap() {
                pktline::Stream::Complete { consumed, .. } => {
                    assert!(consumed <= pktline::MAX_PKT_LEN);
                    offset += consumed;
                }
                pktline::Stream::Incomplete { .. } => panic!("a packet was cut"),
            }
        }
        let mut lines = pktline::Reader::new(&wire[..]);
        let mut seen = Vec::new();
        let mut progress = |t: &[u8]| seen.push(t.to_vec());
        let mut read = Vec::new();
        sideband::Reader::new(&mut lines, &mut progress)
            .read_to_end(&mut read)
            .unwrap();
        assert_eq!(read, data, "band 1 carries the bytes in order");
        assert_eq!(seen, vec![b"Counting\n".to_vec(), b"half\n".to_vec()]);
    }

    #[test]
    fn small_side_band_packets_stay_under_1000_bytes() {
        let mut wire = Vec::new();
        let mut writer = SidebandWriter::new(&mut wire, MAX_BAND_PAYLOAD_SMALL);
        writer.write_all(&[7u8; 5000]).unwrap();
        writer.finish().unwrap();
        assert_eq!(
            &wire[..4],
            b"03e8",
            "1000 bytes with the prefix, as git's side-band"
        );
    }

    #[test]
    fn an_error_is_sent_on_band_3_and_surfaces_in_the_reader() {
        let mut wire = Vec::new();
        let mut writer = SidebandWriter::new(&mut wire, MAX_BAND_PAYLOAD_64K);
        writer.write_all(b"PACK").unwrap();
        writer.error("object 12 is missing\n").unwrap();
        let mut lines = pktline::Reader::new(&wire[..]);
        let mut progress = |_: &[u8]| {};
        let mut reader = sideband::Reader::new(&mut lines, &mut progress);
        let mut read = Vec::new();
        assert!(reader.read_to_end(&mut read).is_err());
        assert_eq!(read, b"PACK");
        assert!(matches!(
            reader.take_error(),
            Some(sideband::Error::Remote { message }) if message == "object 12 is missing"
        ));
    }
}
