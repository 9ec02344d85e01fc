//! A hostile network on loopback: [`FaultProxy`] sits between gitmq and a real smart-HTTP
//! server (lighttpd + git-http-backend, see `server.rs`) and passes requests on unchanged,
//! except those a [`Rule`] (or the random mode of the soak) picks: those get a [`Fault`]: a
//! 5xx, a connection reset in the middle of the body, a stall (silent, or one byte at a time:
//! slow-loris), a pack cut short inside a well-framed answer, a wrong content type, a redirect
//! to another host and port, an absurd pkt-line length or a side-band channel git never uses.
//!
//! How it works: one thread accepts on 127.0.0.1, one thread per client connection reads each
//! request whole (Content-Length or chunked), forwards it to the upstream server on a fresh
//! connection (`Connection: close`), reads the answer whole (Content-Length, chunked or up to
//! EOF), applies the fault, and answers with a Content-Length (keep-alive kept, as a real
//! front end does). Everything is buffered: the repositories of the tests are small.
//!
//! Invariants: bound to 127.0.0.1 only; every read has a timeout and every wait a limit, so a
//! test never hangs on the proxy; each request's kind and headers are recorded (a redirect
//! test asserts which host saw an `Authorization` header); the proxy's threads end when it
//! drops (the accept loop stops; connection threads end at their next timeout).

#![allow(dead_code)] // shared with the soak binary, which uses a part of it

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

/// The longest request or response head read.
const MAX_HEAD: usize = 64 << 10;
/// The longest body read (requests and answers of the tests are far smaller).
const MAX_BODY: usize = 256 << 20;
/// How long a connection waits for the next request, and the upstream for an answer.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// What a smart-HTTP request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `GET info/refs?service=git-upload-pack`.
    UploadDiscovery,
    /// `GET info/refs?service=git-receive-pack`.
    ReceiveDiscovery,
    /// `POST git-upload-pack` with `command=ls-refs` (protocol v2).
    LsRefs,
    /// `POST git-upload-pack` asking for a pack (v2 `command=fetch`, or v0).
    Fetch,
    /// `POST git-receive-pack`: a push.
    ReceivePack,
    /// Anything else.
    Other,
}

/// A way to break one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status (a 5xx: the upstream never sees the request).
    Status(u16),
    /// Forward the request, then send the answer's head and half its body and reset the
    /// connection (TCP RST). A push is applied upstream: only its acknowledgment is lost.
    ResetMidBody,
    /// Read the request and say nothing for this long (or until the client goes).
    StallHead(Duration),
    /// Forward, send the head, then one byte of the body per interval (slow-loris), for at
    /// most the given time, then close.
    Drip {
        /// Between two bytes.
        every: Duration,
        /// Then close.
        limit: Duration,
    },
    /// Forward, then answer a body whose pack (band 1 of the `packfile` section) stops half
    /// way, the pkt-line framing and the HTTP length intact. Other answers are cut in half.
    TruncatePack,
    /// Forward, then answer with this content type.
    ContentType(&'static str),
    /// Answer `307 Temporary Redirect` to the same path on this base (`http://host:port`).
    Redirect(String),
    /// Forward, then put this raw pkt-line header (with 8 bytes after it) in place of the
    /// second packet of the `packfile` section (the first packet, for other answers),
    /// dropping the rest: an absurd length (`ffff`, `0003`) or not hex at all.
    PktLength(&'static [u8; 4]),
    /// Forward, then insert a packet on this side-band channel before the second packet of the
    /// `packfile` section (before the first packet, for other answers).
    Band(u8),
}

impl Fault {
    /// A short name for the figures.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Status(_) => "status",
            Fault::ResetMidBody => "reset",
            Fault::StallHead(_) => "stall",
            Fault::Drip { .. } => "drip",
            Fault::TruncatePack => "truncate",
            Fault::ContentType(_) => "content-type",
            Fault::Redirect(_) => "redirect",
            Fault::PktLength(_) => "pkt-length",
            Fault::Band(_) => "band",
        }
    }
}

/// Break the next `times` requests of `kind` (any kind when `None`) with `fault`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Which requests.
    pub kind: Option<Kind>,
    /// How.
    pub fault: Fault,
    /// How many more times (`usize::MAX`: always).
    pub times: usize,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// What it asked for.
    pub kind: Kind,
    /// Its headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The fault applied, if any.
    pub fault: Option<&'static str>,
}

/// Random faults, for the soak: each request gets one of `faults` with probability
/// `per_mille / 1000`.
struct Random {
    rng: u64,
    per_mille: u64,
    faults: Vec<(Option<Kind>, Fault)>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    random: Option<Random>,
    seen: Vec<Seen>,
}

/// A fault-injecting proxy in front of `upstream`; stopped on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

/// Lifecycle
impl FaultProxy {
    /// Start a proxy on 127.0.0.1 (a free port) in front of the server at `upstream`.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_state, accept_stop) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let state = accept_state.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, upstream, &state);
                });
            }
        });
        Self { addr, state, stop }
    }
}

/// Access
impl FaultProxy {
    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the base of URLs through the proxy.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Add a rule (rules are tried in the order added; the first that matches fires).
    pub fn inject(&self, kind: Option<Kind>, fault: Fault, times: usize) {
        self.lock().rules.push(Rule { kind, fault, times });
    }

    /// Remove every rule and stop random faults.
    pub fn heal(&self) {
        let mut state = self.lock();
        state.rules.clear();
        state.random = None;
    }

    /// Break requests at random (seeded): each with probability `per_mille / 1000`, with one
    /// of `faults` (a fault with a kind only hits requests of that kind).
    pub fn randomly(&self, seed: u64, per_mille: u64, faults: Vec<(Option<Kind>, Fault)>) {
        self.lock().random = Some(Random {
            rng: seed | 1,
            per_mille,
            faults,
        });
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// How many faults were applied.
    pub fn faults(&self) -> usize {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.fault.is_some())
            .count()
    }

    /// How many faults of each name were applied, sorted by name.
    pub fn fault_counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts = std::collections::BTreeMap::new();
        for seen in &self.lock().seen {
            if let Some(name) = seen.fault {
                *counts.entry(name).or_insert(0) += 1;
            }
        }
        counts.into_iter().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// One HTTP message head and body.
struct Message {
    /// The request line or the status line.
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The head to send, hop-by-hop headers replaced by a Content-Length of `length` (and
    /// the content type by `content_type` when given).
    fn head(&self, length: usize, content_type: Option<&str>, close: bool) -> Vec<u8> {
        use std::fmt::Write as _;
        let mut head = format!("{}\r\n", self.start);
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            let hop = matches!(
                lower.as_str(),
                "connection" | "transfer-encoding" | "content-length" | "keep-alive"
            );
            if hop || (lower == "content-type" && content_type.is_some()) {
                continue;
            }
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if let Some(content_type) = content_type {
            let _ = write!(head, "Content-Type: {content_type}\r\n");
        }
        let _ = write!(head, "Content-Length: {length}\r\n");
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

/// Serve one client connection: request after request until it closes.
fn serve(client: TcpStream, upstream: SocketAddr, state: &Mutex<State>) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_nodelay(true)?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    loop {
        let Some(request) = read_message(&mut reader, true)? else {
            return Ok(());
        };
        let kind = classify(&request);
        let fault = choose(state, kind, &request);
        let close_after = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let keep = answer(&mut client, &request, upstream, fault.as_ref())?;
        if !keep || close_after {
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Record the request and pick its fault.
fn choose(state: &Mutex<State>, kind: Kind, request: &Message) -> Option<Fault> {
    let mut state = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut fault = None;
    if let Some(rule) = state
        .rules
        .iter_mut()
        .find(|r| r.times > 0 && r.kind.is_none_or(|k| k == kind))
    {
        rule.times -= 1;
        fault = Some(rule.fault.clone());
    } else if let Some(random) = state.random.as_mut() {
        // xorshift64*: a seeded choice, reproducible for one request order.
        let mut next = || {
            random.rng ^= random.rng >> 12;
            random.rng ^= random.rng << 25;
            random.rng ^= random.rng >> 27;
            random.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11
        };
        if next() % 1000 < random.per_mille {
            let fitting: Vec<&Fault> = random
                .faults
                .iter()
                .filter(|(k, _)| k.is_none_or(|k| k == kind))
                .map(|(_, f)| f)
                .collect();
            if !fitting.is_empty() {
                let pick = usize::try_from(next() % fitting.len() as u64).unwrap_or(0);
                fault = fitting.get(pick).map(|f| (*f).clone());
            }
        }
    }
    let headers = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    state.seen.push(Seen {
        kind,
        headers,
        fault: fault.as_ref().map(Fault::name),
    });
    fault
}

fn classify(request: &Message) -> Kind {
    let mut parts = request.start.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    match method {
        "GET" if target.contains("service=git-upload-pack") => Kind::UploadDiscovery,
        "GET" if target.contains("service=git-receive-pack") => Kind::ReceiveDiscovery,
        "POST" if target.ends_with("/git-receive-pack") => Kind::ReceivePack,
        "POST" if target.ends_with("/git-upload-pack") => {
            if contains(&request.body, b"command=ls-refs") {
                Kind::LsRefs
            } else {
                Kind::Fetch
            }
        }
        _ => Kind::Other,
    }
}

/// Answer one request, applying `fault`; whether the connection stays usable.
fn answer(
    client: &mut TcpStream,
    request: &Message,
    upstream: SocketAddr,
    fault: Option<&Fault>,
) -> io::Result<bool> {
    match fault {
        Some(Fault::Status(status)) => {
            let body = b"injected fault\n";
            write!(
                client,
                "HTTP/1.1 {status} Injected\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )?;
            client.write_all(body)?;
            return Ok(true);
        }
        Some(Fault::Redirect(base)) => {
            let target = request.start.split(' ').nth(1).unwrap_or("/");
            write!(
                client,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {base}{target}\r\nContent-Length: 0\r\n\r\n"
            )?;
            return Ok(true);
        }
        Some(Fault::StallHead(limit)) => {
            wait_for_close(client, *limit);
            return Ok(false);
        }
        _ => {}
    }
    let Some(mut response) = forward(request, upstream) else {
        let body = b"upstream unreachable\n";
        write!(
            client,
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        client.write_all(body)?;
        return Ok(false);
    };
    match fault {
        Some(Fault::ResetMidBody) => {
            let head = response.head(response.body.len(), None, false);
            client.write_all(&head)?;
            client.write_all(&response.body[..response.body.len() / 2])?;
            client.flush()?;
            // SO_LINGER 0: close() sends RST instead of FIN.
            socket2::SockRef::from(&*client).set_linger(Some(Duration::ZERO))?;
            return Ok(false);
        }
        Some(Fault::Drip { every, limit }) => {
            let head = response.head(response.body.len(), None, true);
            client.write_all(&head)?;
            let start = Instant::now();
            for byte in &response.body {
                if start.elapsed() >= *limit || client.write_all(&[*byte]).is_err() {
                    break;
                }
                std::thread::sleep(*every);
            }
            return Ok(false);
        }
        Some(Fault::TruncatePack) => response.body = truncate_pack(&response.body),
        Some(Fault::PktLength(header)) => {
            let at = corruption_point(&response.body);
            response.body.truncate(at);
            response.body.extend_from_slice(*header);
            response.body.extend_from_slice(b"garbage!");
        }
        Some(Fault::Band(band)) => {
            let at = corruption_point(&response.body);
            let packet = pkt(&[&[*band][..], &b"a channel git never uses\n"[..]].concat());
            response.body.splice(at..at, packet);
        }
        _ => {}
    }
    let content_type = match fault {
        Some(Fault::ContentType(content_type)) => Some(*content_type),
        _ => None,
    };
    let head = response.head(response.body.len(), content_type, false);
    client.write_all(&head)?;
    client.write_all(&response.body)?;
    client.flush()?;
    Ok(true)
}

/// Say nothing until the client closes or `limit` passes.
fn wait_for_close(client: &TcpStream, limit: Duration) {
    let deadline = Instant::now() + limit;
    let _ = client.set_read_timeout(Some(Duration::from_millis(50)));
    let mut probe = [0u8; 1];
    while Instant::now() < deadline {
        match client.peek(&mut probe) {
            Ok(0) => return,
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// Send `request` to the upstream server on a new connection; its answer, or `None` if the
/// upstream could not be reached or answered garbage.
fn forward(request: &Message, upstream: SocketAddr) -> Option<Message> {
    let mut server = TcpStream::connect_timeout(&upstream, Duration::from_secs(10)).ok()?;
    server.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    let head = request.head(request.body.len(), None, true);
    server.write_all(&head).ok()?;
    server.write_all(&request.body).ok()?;
    server.flush().ok()?;
    let mut reader = BufReader::new(server);
    read_message(&mut reader, false).ok().flatten()
}

/// Read one message: its head, then its body (Content-Length, chunked, or for an answer
/// without either, up to EOF). `None` at a clean EOF before a request.
fn read_message(
    reader: &mut BufReader<TcpStream>,
    is_request: bool,
) -> io::Result<Option<Message>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        total += n;
        if total > MAX_HEAD {
            return Err(io::Error::other("head too long"));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // stray CRLF between messages
            }
            break;
        }
        lines.push(line);
    }
    let start = lines.remove(0);
    let headers: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut message = Message {
        start,
        headers,
        body: Vec::new(),
    };
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = message
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    if chunked {
        message.body = read_chunked(reader)?;
    } else if let Some(length) = length {
        if length > MAX_BODY {
            return Err(io::Error::other("body too long"));
        }
        message.body = vec![0; length];
        reader.read_exact(&mut message.body)?;
    } else if !is_request {
        reader
            .take(MAX_BODY as u64)
            .read_to_end(&mut message.body)?;
    }
    Ok(Some(message))
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16).map_err(io::Error::other)?;
        if body.len() + size > MAX_BODY {
            return Err(io::Error::other("body too long"));
        }
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

/// A pkt-line with `data`.
pub fn pkt(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:04x}", data.len() + 4).into_bytes();
    out.extend_from_slice(data);
    out
}

/// The packets of `body` as (offset, length in bytes including the header, payload);
/// framing stops at the first malformed header.
fn packets(body: &[u8]) -> Vec<(usize, usize, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(header) = body.get(at..at + 4) {
        let Some(len) = std::str::from_utf8(header)
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
        else {
            break;
        };
        let len = if len < 4 { 4 } else { len };
        let Some(payload) = body.get(at + 4..at + len) else {
            break;
        };
        out.push((at, len, payload));
        at += len;
    }
    out
}

/// Where a corruption goes: the second packet of the `packfile` section of a v2 fetch answer
/// (inside the pack), else the answer's first packet.
fn corruption_point(body: &[u8]) -> usize {
    let packets = packets(body);
    match packets.iter().position(|(_, _, p)| *p == b"packfile\n") {
        Some(section) => packets
            .get(section + 2)
            .map_or(body.len(), |(at, _, _)| *at),
        None => 0,
    }
}

/// A fetch answer whose pack stops half way: packets up to half of the band-1 bytes, then a
/// flush, so the framing and the HTTP length are intact. An answer without a pack is cut in
/// half.
fn truncate_pack(body: &[u8]) -> Vec<u8> {
    let packets = packets(body);
    let pack_bytes: usize = packets
        .iter()
        .filter(|(_, _, p)| p.first() == Some(&1))
        .map(|(_, _, p)| p.len() - 1)
        .sum();
    if pack_bytes == 0 {
        return body[..body.len() / 2].to_vec();
    }
    let mut out = Vec::new();
    let mut sent = 0;
    for (at, len, payload) in &packets {
        if payload.first() == Some(&1) {
            let room = (pack_bytes / 2).saturating_sub(sent);
            if room == 0 {
                break;
            }
            let take = room.min(payload.len() - 1);
            out.extend_from_slice(&pkt(&payload[..=take]));
            sent += take;
            continue;
        }
        out.extend_from_slice(&body[*at..*at + *len]);
    }
    out.extend_from_slice(b"0000");
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
