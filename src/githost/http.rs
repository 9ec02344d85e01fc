//! Owns the HTTP edge of the git host, without any HTTP stack: the [`Request`] a web server
//! hands in, the [`Response`] it sends back (status, content type, the cache headers git
//! expects, a body streamed into any [`Write`]), and routing a path to an endpoint.
//!
//! URL layout (relative to the mount point, e.g. `/git/`): `info/refs?service=<svc>` (GET),
//! `git-upload-pack` and `git-receive-pack` (POST), optionally under one `<name>.git/`
//! segment. Every name reaches the one repository this host serves, so
//! `http://host/git/` and `http://host/git/queue.git` clone the same queue.
//!
//! Invariant: routing looks only at the path, method and query; nothing here touches the
//! repository.

use std::io::Write;

use super::Error;

/// The two services of git's smart HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `git-upload-pack`: clone and fetch.
    UploadPack,
    /// `git-receive-pack`: push.
    ReceivePack,
}

impl Service {
    /// The service's name on the wire (`git-upload-pack`, `git-receive-pack`).
    pub fn name(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "git-upload-pack" => Some(Service::UploadPack),
            "git-receive-pack" => Some(Service::ReceivePack),
            _ => None,
        }
    }

    /// The content type of the service's POST body.
    pub fn request_type(self) -> &'static str {
        match self {
            Service::UploadPack => "application/x-git-upload-pack-request",
            Service::ReceivePack => "application/x-git-receive-pack-request",
        }
    }

    /// The content type of the service's POST answer.
    pub fn result_type(self) -> &'static str {
        match self {
            Service::UploadPack => "application/x-git-upload-pack-result",
            Service::ReceivePack => "application/x-git-receive-pack-result",
        }
    }

    /// The content type of the service's `info/refs` answer.
    pub fn advertisement_type(self) -> &'static str {
        match self {
            Service::UploadPack => "application/x-git-upload-pack-advertisement",
            Service::ReceivePack => "application/x-git-receive-pack-advertisement",
        }
    }
}

/// One HTTP request as the web server received it, with the path relative to where the git
/// host is mounted.
pub struct Request<'a> {
    /// `GET`, `POST`, ... (`HEAD` is answered like `GET`; the server drops the body).
    pub method: &'a str,
    /// The path below the mount point: `info/refs`, `git-upload-pack`, `queue.git/info/refs`.
    /// A leading `/` is ignored.
    pub path: &'a str,
    /// The query string without `?` (`service=git-upload-pack`).
    pub query: Option<&'a str>,
    /// The `Git-Protocol` header (`version=2`).
    pub git_protocol: Option<&'a str>,
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// The `Content-Encoding` header (git gzips large upload-pack requests).
    pub content_encoding: Option<&'a str>,
    /// The body, as it arrives (chunked decoding already undone by the web server).
    pub body: &'a mut dyn std::io::Read,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("git_protocol", &self.git_protocol)
            .field("content_type", &self.content_type)
            .field("content_encoding", &self.content_encoding)
            .finish_non_exhaustive()
    }
}

impl Request<'_> {
    /// Whether the client asked for protocol v2 (`Git-Protocol: version=2`).
    pub fn wants_v2(&self) -> bool {
        self.git_protocol
            .is_some_and(|value| value.split(':').any(|kv| kv.trim() == "version=2"))
    }
}

/// The cache headers git's own `http-backend` sends with every smart-HTTP answer.
pub const NO_CACHE_HEADERS: [(&str, &str); 3] = [
    ("Cache-Control", "no-cache, max-age=0, must-revalidate"),
    ("Pragma", "no-cache"),
    ("Expires", "Fri, 01 Jan 1980 00:00:00 GMT"),
];

/// What the web server sends back: status and headers at once, the body streamed by
/// [`write_body()`](Self::write_body).
#[derive(Debug)]
pub struct Response {
    /// The HTTP status (200 for every answer the protocol itself carries, refusals included).
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// Further headers to send: the cache headers git expects ([`NO_CACHE_HEADERS`]).
    pub headers: Vec<(&'static str, &'static str)>,
    pub(crate) body: Body,
}

/// A response body.
pub(crate) enum Body {
    /// Known bytes.
    Bytes(Vec<u8>),
    /// A pack streamed as it is read from the repository.
    Pack(Box<super::upload::PackResponse>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            Body::Pack(pack) => write!(f, "Pack({} objects)", pack.object_count()),
        }
    }
}

/// Lifecycle
impl Response {
    pub(crate) fn ok(content_type: &'static str, body: Body) -> Self {
        Self {
            status: 200,
            content_type,
            headers: NO_CACHE_HEADERS.to_vec(),
            body,
        }
    }

    /// A plain-text answer for `error`, with its status (what a web server without its own
    /// error format sends). A client error is explained with its causes; a server error
    /// (5xx) only says so, since its causes name the server's files: log `error` instead.
    pub fn from_error(error: &Error) -> Self {
        let mut text = if error.is_client_error() {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        } else {
            "the git host failed to answer; the server's log has the details".to_owned()
        };
        text.push('\n');
        let mut headers = NO_CACHE_HEADERS.to_vec();
        if let Error::MethodNotAllowed { allow, .. } = error {
            headers.push(("Allow", allow));
        }
        Self {
            status: error.status(),
            content_type: "text/plain; charset=utf-8",
            headers,
            body: Body::Bytes(text.into_bytes()),
        }
    }
}

/// Access
impl Response {
    /// The body's length, when known before it is written (else send it chunked, or close
    /// the connection after it).
    pub fn content_length(&self) -> Option<u64> {
        match &self.body {
            Body::Bytes(bytes) => Some(bytes.len() as u64),
            Body::Pack(_) => None,
        }
    }

    /// Write the body into `out` (flushed at the end); returns the bytes written. A pack is
    /// streamed with bounded memory; if reading the repository fails midway, the client is
    /// told on the side-band error channel and the error is returned.
    pub fn write_body(self, out: &mut dyn Write) -> Result<u64, Error> {
        let mut counted = Counting { out, written: 0 };
        match self.body {
            Body::Bytes(bytes) => {
                counted.write_all(&bytes).map_err(Error::WriteBody)?;
                counted.flush().map_err(Error::WriteBody)?;
            }
            Body::Pack(pack) => pack.write(&mut counted)?,
        }
        Ok(counted.written)
    }

    /// The whole body in memory (for tests and small answers).
    pub fn into_bytes(self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.write_body(&mut out)?;
        Ok(out)
    }
}

/// Counts the bytes written through it.
struct Counting<'a> {
    out: &'a mut dyn Write,
    written: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `GET info/refs?service=...`.
    InfoRefs(Service),
    /// `POST git-upload-pack` or `POST git-receive-pack`.
    Rpc(Service),
}

/// Route `request` to an endpoint.
pub(crate) fn route(request: &Request<'_>) -> Result<Endpoint, Error> {
    let path = request.path.trim_start_matches('/');
    let rest = match path.split_once('/') {
        Some((first, rest)) if is_repository_segment(first) => rest,
        _ => path,
    };
    let not_found = || Error::NotFound {
        path: path.chars().take(200).collect(),
    };
    let method = request.method;
    match rest {
        "info/refs" => {
            if !matches!(method, "GET" | "HEAD") {
                return Err(Error::MethodNotAllowed {
                    method: method.chars().take(16).collect(),
                    allow: "GET",
                });
            }
            let service = request
                .query
                .unwrap_or_default()
                .split('&')
                .find_map(|pair| pair.strip_prefix("service="))
                .ok_or(Error::NotSmart)?;
            Service::from_name(service)
                .map(Endpoint::InfoRefs)
                .ok_or_else(|| Error::UnknownService {
                    service: service.chars().take(64).collect(),
                })
        }
        "git-upload-pack" | "git-receive-pack" => {
            if method != "POST" {
                return Err(Error::MethodNotAllowed {
                    method: method.chars().take(16).collect(),
                    allow: "POST",
                });
            }
            let service = Service::from_name(rest).ok_or_else(not_found)?;
            let content_type = request
                .content_type
                .map(|t| t.split(';').next().unwrap_or_default().trim());
            if content_type != Some(service.request_type()) {
                return Err(Error::UnsupportedMediaType {
                    found: request.content_type.map(|t| t.chars().take(100).collect()),
                    expected: service.request_type(),
                });
            }
            Ok(Endpoint::Rpc(service))
        }
        _ => Err(not_found()),
    }
}

/// `<name>.git`: one path segment naming the repository (any name: one repository is served).
fn is_repository_segment(segment: &str) -> bool {
    segment
        .strip_suffix(".git")
        .is_some_and(|name| !name.is_empty())
        && !segment.starts_with('.')
        && segment.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(
        method: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        body: &'a mut &'static [u8],
    ) -> Request<'a> {
        Request {
            method,
            path,
            query,
            git_protocol: None,
            content_type: Some("application/x-git-upload-pack-request"),
            content_encoding: None,
            body,
        }
    }

    #[test]
    fn paths_with_and_without_a_repository_segment_route_alike() {
        let mut empty: &[u8] = b"";
        for path in ["info/refs", "/info/refs", "queue.git/info/refs"] {
            assert_eq!(
                route(&request(
                    "GET",
                    path,
                    Some("service=git-upload-pack"),
                    &mut empty
                ))
                .unwrap(),
                Endpoint::InfoRefs(Service::UploadPack),
                "{path}"
            );
        }
        assert_eq!(
            route(&request("POST", "q.git/git-upload-pack", None, &mut empty)).unwrap(),
            Endpoint::Rpc(Service::UploadPack)
        );
        for path in [
            "",
            "HEAD",
            "objects/info/packs",
            "a/b/info/refs",
            "..git/info/refs",
        ] {
            assert!(matches!(
                route(&request(
                    "GET",
                    path,
                    Some("service=git-upload-pack"),
                    &mut empty
                )),
                Err(Error::NotFound { .. })
            ));
        }
    }

    #[test]
    fn wrong_methods_services_and_types_are_refused_with_their_status() {
        let mut empty: &[u8] = b"";
        let err = route(&request("POST", "info/refs", None, &mut empty)).unwrap_err();
        assert_eq!(err.status(), 405);
        let err = route(&request("GET", "info/refs", None, &mut empty)).unwrap_err();
        assert!(matches!(err, Error::NotSmart));
        let err = route(&request(
            "GET",
            "info/refs",
            Some("service=git-x"),
            &mut empty,
        ))
        .unwrap_err();
        assert!(matches!(err, Error::UnknownService { .. }));
        let mut req = request("POST", "git-receive-pack", None, &mut empty);
        req.content_type = Some("text/plain");
        assert_eq!(route(&req).unwrap_err().status(), 415);
        let err = route(&request("GET", "git-upload-pack", None, &mut empty)).unwrap_err();
        assert_eq!(
            Response::from_error(&err).headers.last(),
            Some(&("Allow", "POST"))
        );
    }

    #[test]
    fn server_errors_do_not_show_server_paths_to_the_client() {
        let err = Error::Io {
            path: "/srv/secret/q.git/objects".into(),
            source: std::io::Error::other("disk full"),
        };
        let body = Response::from_error(&err).into_bytes().unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(!text.contains("/srv/secret"), "{text}");
        assert!(err.to_string().contains("/srv/secret"), "the log keeps it");
        let client = Error::TooLarge {
            what: "bytes",
            limit: 10,
        };
        let body = Response::from_error(&client).into_bytes().unwrap();
        assert!(String::from_utf8(body)
            .unwrap()
            .contains("limit of 10 bytes"));
    }

    #[test]
    fn the_protocol_header_selects_v2() {
        let mut empty: &[u8] = b"";
        let mut req = request("GET", "info/refs", None, &mut empty);
        assert!(!req.wants_v2());
        req.git_protocol = Some("version=2");
        assert!(req.wants_v2());
        req.git_protocol = Some("object-format=sha1:version=2");
        assert!(req.wants_v2());
        req.git_protocol = Some("version=1");
        assert!(!req.wants_v2());
    }
}
