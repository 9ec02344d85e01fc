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
            queue::{consume, consume::position, produce},
        };
        let text = chain(&err);
        let position = |e: &position::Error| match e {
            position::Error::NotOnTopic { .. } => Some("not_on_topic"),
            position::Error::Refs(_) | position::Error::Walk(_) => None,
            _ => Some("bad_position"),
        };
        let refs = |e: &refs::Error| match e {
            refs::Error::Changed { .. } => Some((StatusCode::CONFLICT, "conflict")),
            refs::Error::Locked { .. } => Some((StatusCode::SERVICE_UNAVAILABLE, "unavailable")),
            _ => None,
        };
        let payload = |e: &message::Error| match e {
            message::Error::NulInPayload { .. } => Some("nul_in_payload"),
            message::Error::Header(_) => Some("bad_header"),
            _ => None,
        };
        let bad = match &err {
            crate::Error::Name(_) => Some("bad_name"),
            crate::Error::Message(e) | crate::Error::Produce(produce::Error::Payload(e)) => {
                payload(e)
            }
            crate::Error::Position(e) | crate::Error::Consume(consume::Error::Position(e)) => {
                position(e)
            }
            _ => None,
        };
        if let Some(code) = bad {
            return Self::bad_request(code, text);
        }
        let refs_error = match &err {
            crate::Error::Refs(e)
            | crate::Error::Consume(consume::Error::Refs(e))
            | crate::Error::Produce(produce::Error::Refs(e))
            | crate::Error::Position(position::Error::Refs(e)) => refs(e),
            _ => None,
        };
        match refs_error {
            Some((status, code)) => Self::new(status, code, text),
            None => Self::internal(text),
        }
    }
}

/// Module errors of the queue, through [`crate::Error`].
macro_rules! via_crate_error {
    ($($error:ty),*) => {$(
        impl From<$error> for ApiError {
            fn from(err: $error) -> Self {
                crate::Error::from(err).into()
            }
        }
    )*};
}

via_crate_error!(
    crate::queue::consume::Error,
    crate::queue::consume::position::Error,
    crate::queue::produce::Error,
    crate::git::refs::Error
);

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
