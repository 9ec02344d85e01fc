//! Owns the server's errors: [`Error`] (starting or running the server failed) and
//! `ApiError` (one request refused: an HTTP status and a JSON body
//! `{"error": "<code>", "message": "<what and why>"}`).
//!
//! Invariant: no message here is built from a credential; request errors name the part of
//! the request that was refused, never the `Authorization` header's value.

use std::{net::SocketAddr, path::PathBuf};

use hyper::StatusCode;

use super::render::json_string;

/// Returned by [`super::run()`] and [`super::Tokens::from_toml()`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Listening on a non-loopback address without tokens was refused.
    #[error("refusing to listen on {addr} without --auth (anyone could publish and consume); bind to 127.0.0.1, give --auth tokens.toml, or pass --insecure-listen")]
    InsecureListen {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Binding the listener failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The async runtime did not start.
    #[error("cannot start the server's runtime")]
    Runtime(#[source] std::io::Error),
    /// A TLS certificate or key file could not be used.
    #[error("TLS {what} {path}: {reason}")]
    Tls {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The token file could not be read or parsed.
    #[error(transparent)]
    Auth(#[from] super::AuthError),
}

/// A refused or failed request: status, a stable code and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.message.len() + 48);
        out.extend_from_slice(b"{\"error\":");
        json_string(&mut out, self.code.as_bytes());
        out.extend_from_slice(b",\"message\":");
        json_string(&mut out, self.message.as_bytes());
        out.extend_from_slice(b"}\n");
        out
    }
}

impl From<crate::Error> for ApiError {
    /// What a library error means to a client: bad input is a 4xx, the rest a 500.
    fn from(err: crate::Error) -> Self {
        use crate::{
            git::{message, refs},
            queue::consume::position,
        };
        let text = chain(&err);
        match &err {
            crate::Error::Name(_) => Self::bad_request("bad_name", text),
            crate::Error::Message(message::Error::NulInPayload { .. }) => {
                Self::bad_request("nul_in_payload", text)
            }
            crate::Error::Message(message::Error::Header(_)) => {
                Self::bad_request("bad_header", text)
            }
            crate::Error::Position(position::Error::NotOnTopic { .. }) => {
                Self::bad_request("not_on_topic", text)
            }
            crate::Error::Position(_) => Self::bad_request("bad_position", text),
            crate::Error::Refs(refs::Error::Changed { .. }) => {
                Self::new(StatusCode::CONFLICT, "conflict", text)
            }
            crate::Error::Refs(refs::Error::Locked { .. }) => Self::unavailable(text),
            _ => Self::internal(text),
        }
    }
}

/// An error and its sources on one line.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_is_one_json_object_with_code_and_message() {
        let err = ApiError::bad_request("bad_json", "line 2: \"oops\"");
        let value: serde_json::Value = serde_json::from_slice(&err.body()).unwrap();
        assert_eq!(value["error"], "bad_json", "the code is machine-readable");
        assert_eq!(
            value["message"], "line 2: \"oops\"",
            "the message is escaped"
        );
    }
}
