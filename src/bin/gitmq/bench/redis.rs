//! The Redis Streams reference of `gitmq bench serve`: a `redis-server` of its own on a free
//! loopback port (no persistence: `--save "" --appendonly no`), driven over RESP by the same
//! number of client threads with the same payloads: XADD one per round trip, XADD pipelined,
//! XREAD COUNT 10000 paging through the stream.

use std::{
    io::{self, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{serve::load, workload::fmt_rate};
use crate::commands::Result;

/// A `redis-server` started by this run; killed on drop.
pub struct Redis {
    child: Child,
    addr: SocketAddr,
}

impl Redis {
    /// Start one, if the binary is installed.
    pub fn start(dir: &Path) -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let redis = Self { child, addr };
        for _ in 0..200 {
            if TcpStream::connect(addr).is_ok() {
                eprintln!("  redis-server on {addr} (load {})", load());
                return Some(redis);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }
}

impl Redis {
    /// CPU seconds the redis-server process used so far (Linux).
    fn cpu(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        super::serve::cpu_of_stat(&stat)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// XADD `payloads` to `key` from `clients` connections, `depth` commands per round trip.
pub fn publish(
    redis: &Redis,
    key: &str,
    payloads: &[Vec<u8>],
    clients: usize,
    depth: usize,
    label: &str,
) -> Result<super::serve::Row> {
    eprintln!("  {label}...");
    let rounds: Vec<&[Vec<u8>]> = payloads.chunks(depth.max(1)).collect();
    let per_client = rounds.len().div_ceil(clients.max(1));
    let cpu_before = redis.cpu();
    let started = Instant::now();
    let results: Vec<io::Result<Vec<u64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = rounds
            .chunks(per_client.max(1))
            .map(|mine| {
                s.spawn(move || {
                    let mut conn = Resp::connect(redis.addr)?;
                    let mut latencies = Vec::with_capacity(mine.len());
                    let mut out = Vec::new();
                    for round in mine {
                        out.clear();
                        for payload in *round {
                            command(&mut out, &[b"XADD", key.as_bytes(), b"*", b"d", payload]);
                        }
                        let sent = Instant::now();
                        conn.stream.write_all(&out)?;
                        for _ in 0..round.len() {
                            conn.skip()?;
                        }
                        latencies
                            .push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                    }
                    Ok(latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for result in results {
        latencies.extend(result?);
    }
    latencies.sort_unstable();
    let cpu = redis
        .cpu()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let row = super::serve::Row::new(label, payloads.len(), seconds, latencies).with_cpu(cpu);
    eprintln!("    {} msg/s", fmt_rate(row.rate()));
    Ok(row)
}

/// `clients` connections each read the whole stream with XREAD COUNT 10000.
pub fn consume(
    redis: &Redis,
    key: &str,
    expected: usize,
    clients: usize,
    label: &str,
) -> Result<super::serve::Row> {
    eprintln!("  {label}...");
    let cpu_before = redis.cpu();
    let started = Instant::now();
    let results: Vec<io::Result<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(move || {
                    let mut conn = Resp::connect(redis.addr)?;
                    let mut last = b"0-0".to_vec();
                    let mut read = 0;
                    let mut out = Vec::new();
                    while read < expected {
                        out.clear();
                        command(
                            &mut out,
                            &[
                                b"XREAD",
                                b"COUNT",
                                b"10000",
                                b"STREAMS",
                                key.as_bytes(),
                                &last,
                            ],
                        );
                        conn.stream.write_all(&out)?;
                        let (count, id) = conn.xread_reply()?;
                        if count == 0 {
                            return Err(io::Error::other(format!("XREAD stopped at {read}")));
                        }
                        read += count;
                        last = id;
                    }
                    Ok(read)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut messages = 0;
    for result in results {
        messages += result?;
    }
    let cpu = redis
        .cpu()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let row = super::serve::Row::new(label, messages, seconds, Vec::new()).with_cpu(cpu);
    eprintln!("    {} msg/s", fmt_rate(row.rate()));
    Ok(row)
}

/// Append one RESP command (an array of bulk strings).
fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let _ = write!(out, "*{}\r\n", args.len());
    for arg in args {
        let _ = write!(out, "${}\r\n", arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// A RESP connection reading replies from a buffer.
struct Resp {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Resp {
    fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(1 << 16),
            pos: 0,
        })
    }

    /// (entries, id of the last entry) of an XREAD reply, read without building it: one
    /// stream, `[key, [[id, [field, value]], ...]]`.
    fn xread_reply(&mut self) -> io::Result<(usize, Vec<u8>)> {
        if self.array_len()? < 1 || self.array_len()? < 2 {
            return Ok((0, Vec::new()));
        }
        self.skip()?;
        let entries = self.array_len()?;
        let mut last = Vec::new();
        for n in 0..entries {
            self.array_len()?;
            let id = self.bulk()?;
            if n + 1 == entries {
                last = self.buf[id].to_vec();
            }
            self.skip()?;
        }
        Ok((entries, last))
    }

    /// The next line, without its CRLF, as a range of `buf`.
    fn line(&mut self) -> io::Result<std::ops::Range<usize>> {
        loop {
            if let Some(end) = memchr::memmem::find(&self.buf[self.pos..], b"\r\n") {
                let line = self.pos..self.pos + end;
                self.pos += end + 2;
                return Ok(line);
            }
            self.fill()?;
        }
    }

    /// The number after a line's type byte (-1 if none).
    fn number(&self, line: &std::ops::Range<usize>) -> i64 {
        self.buf
            .get(line.start + 1..line.end)
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(-1)
    }

    /// An array's length (0 for a null or another type).
    fn array_len(&mut self) -> io::Result<usize> {
        let line = self.line()?;
        match self.buf.get(line.start) {
            Some(b'*') => Ok(usize::try_from(self.number(&line)).unwrap_or(0)),
            Some(b'-') => Err(self.error(line)),
            _ => Ok(0),
        }
    }

    /// A bulk string as a range of `buf` (valid until the next read).
    fn bulk(&mut self) -> io::Result<std::ops::Range<usize>> {
        let line = self.line()?;
        match self.buf.get(line.start) {
            Some(b'$') => {
                let len = usize::try_from(self.number(&line)).unwrap_or(0);
                while self.buf.len() < self.pos + len + 2 {
                    self.fill()?;
                }
                let bytes = self.pos..self.pos + len;
                self.pos += len + 2;
                Ok(bytes)
            }
            Some(b'-') => Err(self.error(line)),
            _ => Ok(self.pos..self.pos),
        }
    }

    /// Read past one value of any type.
    fn skip(&mut self) -> io::Result<()> {
        let line = self.line()?;
        match self.buf.get(line.start) {
            Some(b'$') => {
                let len = usize::try_from(self.number(&line)).unwrap_or(0);
                while self.buf.len() < self.pos + len + 2 {
                    self.fill()?;
                }
                self.pos += len + 2;
            }
            Some(b'*') => {
                for _ in 0..usize::try_from(self.number(&line)).unwrap_or(0) {
                    self.skip()?;
                }
            }
            Some(b'-') => return Err(self.error(line)),
            _ => {}
        }
        Ok(())
    }

    fn error(&self, line: std::ops::Range<usize>) -> io::Error {
        io::Error::other(String::from_utf8_lossy(&self.buf[line]).into_owned())
    }

    /// Read more; what was consumed is dropped first once it is most of the buffer (ranges
    /// handed out before are then stale: callers copy what they keep at once).
    fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + (1 << 16), 0);
        let n = self.stream.read(&mut self.buf[len..])?;
        self.buf.truncate(len + n);
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}
