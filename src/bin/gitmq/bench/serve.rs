//! `gitmq bench serve`: `gitmq serve` under load from N HTTP clients on loopback, next to
//! Redis Streams doing the same work with the same payloads and client count, in one run.
//!
//! Phases (each on a fresh repository and server, in this process; clients are threads,
//! each with one keep-alive connection and one request in flight, written by hand so the
//! client costs little CPU next to the server on a 2-core machine):
//! 1. single-message publish, durability none, then batch: msg/s, p50/p99 request latency;
//! 2. batched publish (NDJSON, `--batch` messages a request), durability none, then batch;
//! 3. consume the batched topic: one client paging with `max=10000&after=<last id>`, then
//!    `--consumers` clients each reading the whole topic.
//!
//! Redis (if `redis-server` is on PATH; started on a free port, persistence off): XADD one
//! per round trip (single), XADD pipelined `--batch` deep (batched), XREAD COUNT 10000.

use std::{
    io::{self, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{atomic::AtomicBool, atomic::Ordering, mpsc, Arc},
    time::{Duration, Instant},
};

use gitmq::{serve::Config, Durability, Repository};

use super::{
    redis::{self, Redis},
    workload::{fmt_rate, message, rate},
    Scratch,
};
use crate::commands::Result;

/// `gitmq bench serve` options.
#[derive(Debug, clap::Args)]
pub struct ServeBenchOptions {
    /// Concurrent HTTP clients (and Redis connections).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Messages per single-message publish phase.
    #[arg(long, default_value_t = 40_000)]
    pub single_messages: usize,
    /// Messages per batched publish phase.
    #[arg(long, default_value_t = 300_000)]
    pub messages: usize,
    /// Messages per batched request (and Redis pipeline depth).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Clients reading the whole topic at once in the last consume phase.
    #[arg(long, default_value_t = 2)]
    pub consumers: usize,
    /// Skip Redis even if redis-server is installed.
    #[arg(long)]
    pub no_redis: bool,
    /// Keep the scratch repositories.
    #[arg(long)]
    pub keep: bool,
}

/// One measured phase.
pub struct Row {
    label: String,
    messages: usize,
    seconds: f64,
    /// Request latencies in microseconds (sorted), if measured.
    latencies: Vec<u64>,
    /// CPU seconds the server spent (its threads, or the redis-server process), if known.
    cpu: Option<f64>,
}

impl Row {
    pub fn new(label: &str, messages: usize, seconds: f64, latencies: Vec<u64>) -> Self {
        Self {
            label: label.to_owned(),
            messages,
            seconds,
            latencies,
            cpu: None,
        }
    }

    /// The server's CPU seconds over the phase.
    #[must_use]
    pub fn with_cpu(mut self, cpu: Option<f64>) -> Self {
        self.cpu = cpu;
        self
    }

    /// Server CPU microseconds per message: what the server costs, whatever else the
    /// machine runs (a shared machine's wall clock mostly measures the others).
    fn cpu_per_message(&self) -> Option<f64> {
        let cpu = self.cpu?;
        (self.messages > 0).then(|| cpu * 1e6 / self.messages as f64)
    }

    pub fn rate(&self) -> f64 {
        rate(self.messages, self.seconds)
    }

    fn percentile(&self, p: f64) -> Option<f64> {
        let n = self.latencies.len();
        (n > 0).then(|| {
            let index = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
            self.latencies[index] as f64 / 1000.0
        })
    }
}

pub fn run(opts: &ServeBenchOptions) -> Result<()> {
    let scratch = Scratch::new(opts.keep)?;
    let payloads: Vec<Vec<u8>> = (0..opts.messages.max(opts.single_messages))
        .map(message)
        .collect();
    let avg = payloads.iter().map(Vec::len).sum::<usize>() / payloads.len().max(1);
    println!(
        "gitmq bench serve: {} clients on loopback, ~{avg}-byte JSON messages, batches of {}; load before: {}",
        opts.clients,
        opts.batch,
        load()
    );
    let mut rows = Vec::new();
    let mut consume_repo = None;
    for (durability, name) in [(Durability::None, "none"), (Durability::Batch, "batch")] {
        let repo = Repository::init(scratch.path.join(format!("single-{name}")))?;
        let server = Server::start(repo, durability)?;
        rows.push(publish(
            &server,
            &payloads[..opts.single_messages],
            opts.clients,
            1,
            &format!("gitmq single publish, durability {name}"),
        )?);
        server.stop();
        let repo = Repository::init(scratch.path.join(format!("batch-{name}")))?;
        let server = Server::start(repo.clone(), durability)?;
        rows.push(publish(
            &server,
            &payloads[..opts.messages],
            opts.clients,
            opts.batch,
            &format!("gitmq batched publish, durability {name}"),
        )?);
        server.stop();
        consume_repo = Some(repo);
    }
    let repo = consume_repo.expect("BUG: the loop ran");
    let server = Server::start(repo, Durability::None)?;
    rows.push(consume(
        &server,
        opts.messages,
        1,
        "gitmq consume, 1 client, max=10000",
    )?);
    let label = format!("gitmq consume, {} clients each all", opts.consumers);
    rows.push(consume(&server, opts.messages, opts.consumers, &label)?);
    server.stop();

    let mut reference = Vec::new();
    let redis = if opts.no_redis {
        None
    } else {
        Redis::start(&scratch.path)
    };
    match redis {
        Some(redis) => {
            let single = &payloads[..opts.single_messages];
            reference.push(redis::publish(
                &redis,
                "bench-single",
                single,
                opts.clients,
                1,
                "redis XADD, one per round trip",
            )?);
            let label = format!("redis XADD pipelined {} deep", opts.batch);
            reference.push(redis::publish(
                &redis,
                "bench-batch",
                &payloads[..opts.messages],
                opts.clients,
                opts.batch,
                &label,
            )?);
            reference.push(redis::consume(
                &redis,
                "bench-batch",
                opts.messages,
                1,
                "redis XREAD COUNT 10000, 1 client",
            )?);
            let label = format!(
                "redis XREAD COUNT 10000, {} clients each all",
                opts.consumers
            );
            reference.push(redis::consume(
                &redis,
                "bench-batch",
                opts.messages,
                opts.consumers,
                &label,
            )?);
        }
        None => println!("redis-server not found (or --no-redis): the Redis reference is skipped"),
    }
    print_rows(&rows, &reference);
    println!("load after: {}", load());
    Ok(())
}

fn print_rows(rows: &[Row], reference: &[Row]) {
    println!();
    println!(
        "{:<52} {:>12} {:>10} {:>10} {:>10} {:>12}",
        "", "msg/s", "p50 ms", "p99 ms", "vs redis", "cpu us/msg"
    );
    let redis_for = |label: &str| -> Option<&Row> {
        let key = if label.contains("single") {
            "one per round trip"
        } else if label.contains("batched") {
            "pipelined"
        } else if label.contains("1 client") {
            "1 client"
        } else {
            "each all"
        };
        reference.iter().find(|r| r.label.contains(key))
    };
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    for row in rows.iter().chain(reference) {
        let ratio = if row.label.starts_with("gitmq") {
            redis_for(&row.label).map_or_else(
                || "-".to_owned(),
                |r| format!("{:.2}x", row.rate() / r.rate()),
            )
        } else {
            String::new()
        };
        println!(
            "{:<52} {:>12} {:>10} {:>10} {:>10} {:>12}",
            row.label,
            fmt_rate(row.rate()),
            ms(row.percentile(0.50)),
            ms(row.percentile(0.99)),
            ratio,
            row.cpu_per_message()
                .map_or_else(|| "-".to_owned(), |us| format!("{us:.2}"))
        );
    }
}

/// `gitmq serve` in this process on a free loopback port.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<std::result::Result<(), gitmq::serve::Error>>,
}

impl Server {
    fn start(repo: Repository, durability: Durability) -> Result<Self> {
        let mut config = Config::new("127.0.0.1:0".parse()?);
        config.durability = durability;
        let stop = Arc::new(AtomicBool::new(false));
        let (bound_tx, bound) = mpsc::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                gitmq::serve::run(repo, config, &stop, move |addr| {
                    let _ = bound_tx.send(addr);
                })
            })
        };
        let addr = bound.recv_timeout(Duration::from_secs(30))?;
        Ok(Self { addr, stop, thread })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(Err(err)) = self.thread.join() {
            eprintln!("gitmq serve stopped with: {err}");
        }
    }
}

/// Publish `payloads` from `clients` threads, `batch` messages a request.
fn publish(
    server: &Server,
    payloads: &[Vec<u8>],
    clients: usize,
    batch: usize,
    label: &str,
) -> Result<Row> {
    eprintln!("  {label}...");
    let requests: Vec<&[Vec<u8>]> = payloads.chunks(batch.max(1)).collect();
    let per_client = requests.len().div_ceil(clients.max(1));
    let cpu_before = server_cpu();
    let started = Instant::now();
    let results: Vec<io::Result<Vec<u64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .chunks(per_client.max(1))
            .map(|mine| {
                s.spawn(move || {
                    let mut http = Http::connect(server.addr)?;
                    let mut latencies = Vec::with_capacity(mine.len());
                    let mut body = Vec::new();
                    for request in mine {
                        body.clear();
                        for payload in *request {
                            body.extend_from_slice(payload);
                            body.push(b'\n');
                        }
                        let sent = Instant::now();
                        let (status, reply) = http.request(
                            "POST",
                            "/v1/topics/bench/messages",
                            Some("application/x-ndjson"),
                            &body,
                        )?;
                        latencies.push(sent.elapsed().as_micros() as u64);
                        if status != 200 {
                            return Err(io::Error::other(format!(
                                "publish: {status} {}",
                                String::from_utf8_lossy(reply.body)
                            )));
                        }
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
    let cpu = server_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let row = Row::new(label, payloads.len(), seconds, latencies).with_cpu(cpu);
    let (batches, flush_seconds) = flush_stats(server)?;
    eprintln!(
        "    {} msg/s; {batches} batches of {:.0} messages on average, {:.2} ms per flush",
        fmt_rate(row.rate()),
        payloads.len() as f64 / batches.max(1.0),
        flush_seconds * 1000.0 / batches.max(1.0)
    );
    Ok(row)
}

/// The server's flush count and total flush time, from `/metrics`.
fn flush_stats(server: &Server) -> Result<(f64, f64)> {
    let mut http = Http::connect(server.addr)?;
    let (_, reply) = http.request("GET", "/metrics", None, b"")?;
    let text = String::from_utf8_lossy(reply.body);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((
        value("gitmq_flush_seconds_count "),
        value("gitmq_flush_seconds_sum "),
    ))
}

/// `clients` clients each read the whole topic (`expected` messages) page by page.
fn consume(server: &Server, expected: usize, clients: usize, label: &str) -> Result<Row> {
    eprintln!("  {label}...");
    let cpu_before = server_cpu();
    let started = Instant::now();
    let results: Vec<io::Result<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(move || {
                    let mut http = Http::connect(server.addr)?;
                    let mut read = 0;
                    let mut path = "/v1/topics/bench/messages?max=10000&from=beginning".to_owned();
                    while read < expected {
                        let (status, reply) = http.request("GET", &path, None, b"")?;
                        let count = reply
                            .header("gitmq-count")
                            .and_then(|c| c.parse::<usize>().ok())
                            .unwrap_or(0);
                        if status != 200 || count == 0 {
                            return Err(io::Error::other(format!(
                                "consume stopped at {read}: {status}"
                            )));
                        }
                        let lines = memchr::memchr_iter(b'\n', reply.body).count();
                        if lines != count {
                            return Err(io::Error::other("count header and body disagree"));
                        }
                        read += count;
                        let last = reply.header("gitmq-last-id").unwrap_or_default();
                        path = format!("/v1/topics/bench/messages?max=10000&after={last}");
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
    let cpu = server_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let row = Row::new(label, messages, seconds, Vec::new()).with_cpu(cpu);
    eprintln!("    {} msg/s", fmt_rate(row.rate()));
    Ok(row)
}

/// CPU seconds used so far by the server's threads in this process (named `gitmq-serve*`
/// and `gitmq-midx`, as the runtime, the writers and the producer's helper are), from
/// `/proc` (Linux; `None` elsewhere).
fn server_cpu() -> Option<f64> {
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let comm = stat.split_once('(').and_then(|(_, r)| r.rsplit_once(')'));
        if let Some((name, _)) = comm {
            if name.starts_with("gitmq-serve") || name.starts_with("gitmq-midx") {
                total += cpu_of_stat(&stat)?;
            }
        }
    }
    Some(total)
}

/// utime + stime of a `/proc/.../stat` line, in seconds (clock ticks of 1/100 s, Linux's
/// USER_HZ).
pub fn cpu_of_stat(stat: &str) -> Option<f64> {
    let (_, after_comm) = stat.rsplit_once(')')?;
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The 1-, 5- and 15-minute load averages.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".into(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// A minimal HTTP/1.1 client on one keep-alive connection (Content-Length bodies only,
/// which is what `gitmq serve` sends for these routes). It costs the machine little next to
/// the server: the read buffer is zeroed only when it grows and a reply's body is borrowed
/// from it, not copied.
struct Http {
    stream: TcpStream,
    /// Read buffer; `buf[..filled]` holds what was read of the current reply.
    buf: Vec<u8>,
    filled: usize,
    out: Vec<u8>,
}

struct Reply<'a> {
    head: String,
    body: &'a [u8],
}

impl Reply<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

impl Http {
    fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: vec![0; 1 << 16],
            filled: 0,
            out: Vec::with_capacity(1 << 16),
        })
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> io::Result<(u16, Reply<'_>)> {
        self.out.clear();
        write!(
            self.out,
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n",
            body.len()
        )?;
        if let Some(kind) = content_type {
            write!(self.out, "Content-Type: {kind}\r\n")?;
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);
        self.stream.write_all(&self.out)?;
        // One request in flight: nothing of an earlier reply is left in the buffer.
        self.filled = 0;
        let head_end = loop {
            if let Some(end) = memchr::memmem::find(&self.buf[..self.filled], b"\r\n\r\n") {
                break end + 4;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let length: usize = header(&head, "content-length")
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| io::Error::other("no Content-Length in the reply"))?;
        while self.filled < head_end + length {
            self.fill()?;
        }
        let body = &self.buf[head_end..head_end + length];
        Ok((status, Reply { head, body }))
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.buf[self.filled..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.filled += n;
        Ok(())
    }
}
