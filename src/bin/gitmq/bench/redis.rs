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
                            conn.value()?;
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
    let row = super::serve::Row::new(label, payloads.len(), seconds, latencies);
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
    let row = super::serve::Row::new(label, messages, seconds, Vec::new());
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

/// A parsed reply: only what the bench needs.
enum Value {
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Other,
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

    /// (entries, id of the last entry) of an XREAD reply.
    fn xread_reply(&mut self) -> io::Result<(usize, Vec<u8>)> {
        let Value::Array(streams) = self.value()? else {
            return Ok((0, Vec::new()));
        };
        let Some(Value::Array(stream)) = streams.into_iter().next() else {
            return Ok((0, Vec::new()));
        };
        let Some(Value::Array(entries)) = stream.into_iter().nth(1) else {
            return Ok((0, Vec::new()));
        };
        let last = match entries.last() {
            Some(Value::Array(entry)) => match entry.first() {
                Some(Value::Bytes(id)) => id.clone(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        Ok((entries.len(), last))
    }

    fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(end) = self.buf[self.pos..].windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[self.pos..self.pos + end].to_vec();
                self.pos += end + 2;
                return Ok(line);
            }
            self.fill()?;
        }
    }

    fn value(&mut self) -> io::Result<Value> {
        let line = self.line()?;
        let number = || {
            std::str::from_utf8(&line[1..])
                .ok()
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(-1)
        };
        match line.first() {
            Some(b'$') => {
                let Ok(len) = usize::try_from(number()) else {
                    return Ok(Value::Other);
                };
                while self.buf.len() < self.pos + len + 2 {
                    self.fill()?;
                }
                let bytes = self.buf[self.pos..self.pos + len].to_vec();
                self.pos += len + 2;
                Ok(Value::Bytes(bytes))
            }
            Some(b'*') => {
                let n = usize::try_from(number()).unwrap_or(0);
                let mut items = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    items.push(self.value()?);
                }
                Ok(Value::Array(items))
            }
            Some(b'-') => Err(io::Error::other(
                String::from_utf8_lossy(&line).into_owned(),
            )),
            _ => Ok(Value::Other),
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
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
