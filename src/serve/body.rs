//! Owns HTTP bodies in both directions: the response body ([`Body`]: whole bytes, or a
//! stream fed through a channel by a task or a blocking thread, as event streams are) and
//! reading a request body with a size bound ([`collect()`]).
//!
//! Invariant: a request body is never buffered beyond the bound given; past it the read
//! stops and the request is refused with 413.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use tokio::sync::mpsc;

use super::error::ApiError;

/// A response body.
#[derive(Debug)]
pub(crate) enum Body {
    /// All of it at once (or nothing left).
    Full(Option<Bytes>),
    /// Chunks as they come; the body ends when every sender is dropped.
    Channel(mpsc::Receiver<Bytes>),
}

impl Body {
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        Body::Full(Some(bytes.into()))
    }

    /// A streamed body and the sender that feeds it (at most `depth` chunks queued).
    pub fn channel(depth: usize) -> (mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = mpsc::channel(depth);
        (tx, Body::Channel(rx))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Channel(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            Body::Full(Some(bytes)) => hyper::body::SizeHint::with_exact(bytes.len() as u64),
            Body::Full(None) => hyper::body::SizeHint::with_exact(0),
            Body::Channel(_) => hyper::body::SizeHint::default(),
        }
    }
}

/// Read the whole request body, refusing it (413) past `max` bytes. A `Content-Length` over
/// the bound is refused before anything is read.
pub(crate) async fn collect(
    body: Incoming,
    content_length: Option<u64>,
    max: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::too_large(format!(
            "request body over {max} bytes (the server's --max-body)"
        ))
    };
    if content_length.is_some_and(|len| len > max as u64) {
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(err) => Err(ApiError::bad_request(
            "bad_body",
            format!("reading the request body failed: {err}"),
        )),
    }
}
