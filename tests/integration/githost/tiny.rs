//! A tiny blocking HTTP/1.1 server for the git host tests, so they depend on no other server:
//! `std::net::TcpListener`, one thread per connection, one request per connection
//! (`Connection: close`), request bodies with `Content-Length` or chunked (git sends large
//! pushes chunked), responses with `Content-Length` or chunked. The git host is mounted
//! under `/git/`.

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::Duration,
};

use gitmq::githost::{Access, GitHost, Request, Response};

/// The most header bytes read.
const MAX_HEAD: usize = 64 << 10;

/// One request as the log keeps it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub content_encoding: Option<String>,
    pub chunked: bool,
    pub status: u16,
    pub body_bytes: u64,
    pub error: Option<String>,
}

/// A running server; stopped on drop.
pub struct TinyServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    pub log: Arc<Mutex<Vec<Logged>>>,
}

type SharedAccess = Arc<dyn Access + Send + Sync>;

impl TinyServer {
    /// Serve `host` under `/git/` on a free loopback port.
    pub fn start(host: GitHost, access: SharedAccess) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let host = Arc::new(host);
        let accept = {
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (host, access, log) = (host.clone(), access.clone(), log.clone());
                    std::thread::spawn(move || {
                        let _ = serve_one(stream, &host, access.as_ref(), &log);
                    });
                }
            })
        };
        Self {
            port,
            stop,
            accept: Some(accept),
            log,
        }
    }

    /// The URL of `path` below the mount point.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/git/{path}", self.port)
    }

    /// The requests served so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// A request body: `Content-Length` bytes, or chunked.
enum BodyReader<R> {
    Length(io::Take<R>),
    Chunked { inner: R, left: u64, done: bool },
}

impl<R: BufRead> Read for BodyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BodyReader::Length(take) => {
                let want = take.limit();
                let n = take.read(buf)?;
                if n == 0 && want > 0 && !buf.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the request body ended before its Content-Length",
                    ));
                }
                Ok(n)
            }
            BodyReader::Chunked { inner, left, done } => {
                if *done || buf.is_empty() {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut line = String::new();
                    inner.by_ref().take(1024).read_line(&mut line)?;
                    let size = line.trim().split(';').next().unwrap_or_default();
                    let size = u64::from_str_radix(size, 16).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                    })?;
                    if size == 0 {
                        // Trailers, then the empty line.
                        loop {
                            let mut trailer = String::new();
                            let n = inner.by_ref().take(1024).read_line(&mut trailer)?;
                            if n == 0 || trailer.trim().is_empty() {
                                break;
                            }
                        }
                        *done = true;
                        return Ok(0);
                    }
                    *left = size;
                }
                let want = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                let n = inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the chunked body ended mid-chunk",
                    ));
                }
                *left -= n as u64;
                if *left == 0 {
                    let mut crlf = [0u8; 2];
                    inner.read_exact(&mut crlf)?;
                }
                Ok(n)
            }
        }
    }
}

/// Frames what is written as chunks.
struct ChunkedWriter<W: Write> {
    inner: W,
}

impl<W: Write> Write for ChunkedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        write!(self.inner, "{:x}\r\n", buf.len())?;
        self.inner.write_all(buf)?;
        self.inner.write_all(b"\r\n")?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        _ => "Error",
    }
}

/// A request line and headers.
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Head>> {
    let mut head = Vec::new();
    loop {
        let n = reader
            .by_ref()
            .take(MAX_HEAD as u64)
            .read_until(b'\n', &mut head)?;
        if n == 0 || head.len() >= MAX_HEAD {
            return Ok(None);
        }
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok(Some(Head {
        method,
        target,
        headers,
    }))
}

fn serve_one(
    stream: TcpStream,
    host: &GitHost,
    access: &(dyn Access + Send + Sync),
    log: &Mutex<Vec<Logged>>,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::with_capacity(1 << 16, stream.try_clone()?);
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let mut body = if chunked {
        BodyReader::Chunked {
            inner: reader,
            left: 0,
            done: false,
        }
    } else {
        let len = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        BodyReader::Length(reader.take(len))
    };
    let (path, query) = match head.target.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (head.target.clone(), None),
    };
    let content_encoding = head.header("content-encoding").map(str::to_owned);
    let result = match path.strip_prefix("/git/") {
        Some(rest) => host.handle(
            Request {
                method: &head.method,
                path: rest,
                query: query.as_deref(),
                git_protocol: head.header("git-protocol"),
                content_type: head.header("content-type"),
                content_encoding: content_encoding.as_deref(),
                body: &mut body,
            },
            access,
        ),
        None => Err(gitmq::githost::Error::NotFound { path: path.clone() }),
    };
    // Read what the handler left, so the client is not cut off while it still sends.
    let _ = io::copy(&mut body.by_ref().take(1 << 30), &mut io::sink());
    let (response, error) = match result {
        Ok(response) => (response, None),
        Err(err) => (Response::from_error(&err), Some(err.to_string())),
    };
    let mut logged = Logged {
        method: head.method.clone(),
        path,
        content_encoding,
        chunked,
        status: response.status,
        body_bytes: 0,
        error,
    };
    let written = write_response(stream, response)?;
    match written {
        Ok(n) => logged.body_bytes = n,
        Err(err) => logged.error = Some(err.to_string()),
    }
    log.lock().unwrap().push(logged);
    Ok(())
}

/// Send `response`; the outcome of streaming its body.
fn write_response(
    stream: TcpStream,
    response: Response,
) -> io::Result<Result<u64, gitmq::githost::Error>> {
    let mut out = io::BufWriter::with_capacity(1 << 16, stream);
    let status = response.status;
    write!(out, "HTTP/1.1 {status} {}\r\n", reason(status))?;
    write!(
        out,
        "Content-Type: {}\r\nConnection: close\r\n",
        response.content_type
    )?;
    for (name, value) in &response.headers {
        write!(out, "{name}: {value}\r\n")?;
    }
    let written = if let Some(len) = response.content_length() {
        write!(out, "Content-Length: {len}\r\n\r\n")?;
        response.write_body(&mut out)
    } else {
        write!(out, "Transfer-Encoding: chunked\r\n\r\n")?;
        let mut chunked = ChunkedWriter { inner: &mut out };
        let written = response.write_body(&mut chunked);
        chunked.inner.write_all(b"0\r\n\r\n")?;
        written
    };
    out.flush()?;
    Ok(written)
}
