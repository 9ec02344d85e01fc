//! Owns the one real [`HttpClient`]: reqwest's blocking client over rustls with the `ring`
//! crypto provider (no OpenSSL, no aws-lc). Nothing else in gitmq knows reqwest.
//!
//! Invariants: credentials come only from the [`super::RemoteUrl`]'s userinfo and go only into a
//! basic `Authorization` header (reqwest drops it on a redirect to another host); reqwest
//! never sees a URL with userinfo, and its errors are stripped of their URL, so no error
//! gitmq shows can carry a password; a non-2xx status is
//! [`HttpError::Status`](super::HttpError::Status); every request is bounded three ways: a
//! connect timeout, an idle timeout (for the response headers, the request body's upload
//! included, then for each read of the body) and a whole-request timeout (checked before each
//! read of the body, so a server dripping bytes slowly, which never trips the idle timeout, is
//! cut off too). A request therefore ends within the request timeout plus one idle timeout,
//! whatever the server does.

use std::{
    io::Read,
    time::{Duration, Instant},
};

use super::{Body, HttpClient, HttpError as Error, Method, Request, Response, AGENT};

/// The default time allowed to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time allowed without progress: for the response headers, then each read.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(120);
/// The default time allowed for one whole request, its answer included: long enough for a
/// first fetch of millions of messages, short enough that a server dripping bytes cannot
/// hold a `gitmq sync` round for ever.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// How a [`ReqwestClient`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed without progress (the idle timeout): for the answer's headers (sending
    /// the request body included), then for each read of its body.
    pub io_timeout: Duration,
    /// Time allowed for one whole request, answer included (`None`: no limit).
    pub request_timeout: Option<Duration>,
    /// PEM certificates trusted as roots in addition to the platform's (a private CA).
    pub extra_root_certificates: Vec<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            extra_root_certificates: Vec::new(),
        }
    }
}

impl Options {
    /// These options with the timeouts a repository's config sets (see
    /// [`crate::replicate::timeouts`]); a request timeout of zero means no limit.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gitmq::replicate::{http::Options, timeouts::Timeouts};
    /// let set = Timeouts { idle: Some(Duration::from_secs(5)), request: Some(Duration::ZERO), ..Timeouts::default() };
    /// let options = Options::default().with_timeouts(&set);
    /// assert_eq!((options.io_timeout, options.request_timeout), (Duration::from_secs(5), None));
    /// assert_eq!(options.connect_timeout, Options::default().connect_timeout);
    /// ```
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: &crate::replicate::timeouts::Timeouts) -> Self {
        if let Some(connect) = timeouts.connect {
            self.connect_timeout = connect;
        }
        if let Some(idle) = timeouts.idle {
            self.io_timeout = idle;
        }
        if let Some(request) = timeouts.request {
            self.request_timeout = (!request.is_zero()).then_some(request);
        }
        self
    }

    /// The timeout reqwest applies to the headers and to each read: the idle timeout, or
    /// the whole-request timeout when that is shorter.
    fn per_read_timeout(&self) -> Duration {
        self.request_timeout
            .map_or(self.io_timeout, |whole| whole.min(self.io_timeout))
    }
}

/// The error a body read returns once the whole-request timeout has passed.
#[derive(Debug, thiserror::Error)]
#[error("the request did not finish within {limit:?} (the whole-request timeout, gitmq.http.requestTimeout)")]
pub struct RequestTimedOut {
    /// The limit in force.
    pub limit: Duration,
}

/// A response body that refuses to read past the request's deadline.
struct Deadline<R> {
    inner: R,
    deadline: Option<(Instant, Duration)>,
}

impl<R: Read> Read for Deadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some((deadline, limit)) = self.deadline {
            if Instant::now() >= deadline {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    RequestTimedOut { limit },
                ));
            }
        }
        self.inner.read(buf)
    }
}

/// reqwest's blocking client, configured for git.
#[derive(Debug, Clone)]
pub struct ReqwestClient {
    client: reqwest::blocking::Client,
    options: Options,
}

/// Lifecycle
impl ReqwestClient {
    /// A client with `options`. Installs rustls's `ring` provider as the process default if
    /// no provider is installed yet.
    pub fn new(options: Options) -> Result<Self, Error> {
        // Fails only if a provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder_error = |err: reqwest::Error| Error::Other {
            url: String::new(),
            source: Box::new(err.without_url()),
        };
        let roots = options
            .extra_root_certificates
            .iter()
            .map(|pem| reqwest::Certificate::from_pem(pem))
            .collect::<Result<Vec<_>, _>>()
            .map_err(builder_error)?;
        let client = reqwest::blocking::Client::builder()
            .user_agent(AGENT)
            .connect_timeout(options.connect_timeout)
            .timeout(options.per_read_timeout())
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .tls_certs_merge(roots)
            .build()
            .map_err(builder_error)?;
        Ok(Self { client, options })
    }
}

impl HttpClient for ReqwestClient {
    fn send(&self, request: Request<'_>) -> Result<Response, Error> {
        let started = Instant::now();
        let target = request.url.join(request.path);
        let url = request.url.redacted().to_owned();
        let body = match request.body {
            Body::Empty => None,
            Body::Bytes(bytes) => Some(reqwest::blocking::Body::from(bytes)),
            Body::File {
                head,
                file,
                file_len,
            } => {
                let len = head.len() as u64 + file_len;
                let reader = std::io::Cursor::new(head).chain(file.take(file_len));
                Some(reqwest::blocking::Body::sized(reader, len))
            }
        };
        let mut builder = match request.method {
            Method::Get => self.client.get(&target),
            Method::Post => self.client.post(&target),
        };
        if let Some(body) = body {
            builder = builder.body(body);
        }
        for (name, value) in request.headers {
            builder = builder.header(*name, *value);
        }
        if let Some(token) = request.url.bearer_token() {
            builder = builder.bearer_auth(token);
        } else if let Some((user, password)) = request.url.credentials() {
            builder = builder.basic_auth(user, password);
        }
        let response = builder.send().map_err(|err| {
            let err = err.without_url();
            if err.is_timeout() {
                Error::Timeout {
                    url: url.clone(),
                    timeout: self.options.per_read_timeout(),
                }
            } else if err.is_connect() {
                Error::Connect {
                    url: url.clone(),
                    source: Box::new(err),
                }
            } else {
                Error::Other {
                    url: url.clone(),
                    source: Box::new(err),
                }
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Status {
                url,
                status: status.as_u16(),
            });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Response {
            content_type,
            body: Box::new(Deadline {
                inner: response,
                deadline: self
                    .options
                    .request_timeout
                    .map(|limit| (started + limit, limit)),
            }),
        })
    }
}
