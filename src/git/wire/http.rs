//! Owns the one real [`HttpClient`]: reqwest's blocking client over rustls with the `ring`
//! crypto provider (no OpenSSL, no aws-lc). Nothing else in gitmq knows reqwest.
//!
//! Invariants: credentials come only from the [`super::RemoteUrl`]'s userinfo and go only into a
//! basic `Authorization` header (reqwest drops it on a redirect to another host); reqwest
//! never sees a URL with userinfo, and its errors are stripped of their URL, so no error
//! gitmq shows can carry a password; a non-2xx status is [`HttpError::Status`](super::HttpError::Status); every request
//! has a connect timeout and an inactivity timeout (applied to the response headers and to
//! each read of the body, not to the whole transfer, so large fetches are not cut off).

use std::{io::Read, time::Duration};

use super::{Body, HttpClient, HttpError as Error, Method, Request, Response, AGENT};

/// The default time allowed to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time allowed without progress: for the response headers, then each read.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(120);
/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// How a [`ReqwestClient`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed without progress.
    pub io_timeout: Duration,
    /// PEM certificates trusted as roots in addition to the platform's (a private CA).
    pub extra_root_certificates: Vec<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
            extra_root_certificates: Vec::new(),
        }
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
            .timeout(options.io_timeout)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .tls_certs_merge(roots)
            .build()
            .map_err(builder_error)?;
        Ok(Self { client, options })
    }
}

impl HttpClient for ReqwestClient {
    fn send(&self, request: Request<'_>) -> Result<Response, Error> {
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
                    timeout: self.options.io_timeout,
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
            body: Box::new(response),
        })
    }
}
