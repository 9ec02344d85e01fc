//! Owns the HTTP surface: the shared [`State`], matching a request to its handler,
//! authentication and authorization, query parsing, and turning outcomes into responses.
//!
//! | route | right |
//! |---|---|
//! | `POST /v1/topics/{topic}/messages` | write on the topic |
//! | `GET /v1/topics/{topic}/messages?consumer=&max=&wait=&from=&after=` | read |
//! | `GET /v1/topics/{topic}/stream?consumer=&from=&after=` | read |
//! | `POST /v1/consumers/{consumer}/{topic}/position` | read |
//! | `GET /v1/topics`, `GET /v1/consumers` | listed: the topics one may read |
//! | `GET /metrics` | any valid token |
//! | `GET /healthz` | none |
//!
//! Invariants: credentials are checked before a body is read; names are validated (400)
//! before anything touches the repository; every error is a JSON body with a code.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use hyper::{
    body::Incoming,
    header::{
        HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE,
    },
    Method, Request, Response, StatusCode,
};

use super::{
    auth::{secret_of, Access},
    body::{self, Body},
    consume::{self, Cursors, Start, Wakers},
    error::ApiError,
    metrics::Metrics,
    publish, sse,
    writer::Writers,
    Config, Tokens,
};
use crate::{position::StartAt, ConsumerName, Repository, TopicName};

/// Everything the handlers share.
pub(crate) struct State {
    pub repo: Repository,
    pub config: Config,
    pub writers: Writers,
    pub cursors: Cursors,
    pub wakers: Arc<Wakers>,
    pub metrics: Arc<Metrics>,
    pub stopping: AtomicBool,
    /// The git host mounted under `/git/`.
    pub git: crate::githost::GitHost,
}

impl State {
    pub fn new(repo: Repository, config: Config) -> Self {
        let metrics = Arc::new(Metrics::default());
        let wakers = Arc::new(Wakers::default());
        let on_moved = {
            let wakers = wakers.clone();
            Arc::new(move |topic: &TopicName| wakers.moved(topic))
        };
        let git = super::git::host(&repo, &config);
        Self {
            git,
            writers: Writers::new(
                repo.clone(),
                config.durability,
                config.identity.clone(),
                metrics.clone(),
                on_moved,
            ),
            repo,
            config,
            cursors: Cursors::default(),
            wakers,
            metrics,
            stopping: AtomicBool::new(false),
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn tokens(&self) -> Option<&Tokens> {
        self.config.tokens.as_ref()
    }
}

/// Answer one request.
pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (response, who) = match authenticate(&state, &req) {
        Ok(access) => {
            let who = access.clone();
            (route(&state, req, access).await, Some(who))
        }
        Err(err) => (Err(err), None),
    };
    let response = response.unwrap_or_else(|err| {
        if err.status.is_server_error() {
            let name = match (&who, state.tokens()) {
                (Some(access), Some(tokens)) => tokens.name(access).to_owned(),
                _ => "-".to_owned(),
            };
            eprintln!(
                "gitmq serve: {} {method} {path} (token {name}): {}",
                err.status.as_u16(),
                err.message
            );
        }
        error_response(&err)
    });
    state.metrics.request(response.status().as_u16());
    Ok(response)
}

/// Who is asking: `Access::Open` without a token file, else the token the credentials name.
fn authenticate(state: &State, req: &Request<Incoming>) -> Result<Access, ApiError> {
    let Some(tokens) = state.tokens() else {
        return Ok(Access::Open);
    };
    if req.uri().path() == "/healthz" {
        return Ok(Access::Open);
    }
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthorized("credentials required: Authorization: Bearer <token> (or HTTP basic with the token as password)"))?;
    let secret = secret_of(header.as_bytes())
        .ok_or_else(|| unauthorized("malformed Authorization header (Bearer or Basic expected)"))?;
    tokens
        .find(&secret)
        .ok_or_else(|| unauthorized("unknown token"))
}

async fn route(
    state: &Arc<State>,
    req: Request<Incoming>,
    access: Access,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if let Some(rest) = path.strip_prefix("/git/") {
        return super::git::handle(state, req, access, rest.to_owned()).await;
    }
    match (&method, path.as_str()) {
        (&Method::GET, "/healthz") => healthz(state),
        (&Method::GET, "/metrics") => metrics(state).await,
        (&Method::GET, "/v1/topics") => {
            let (state, access) = (state.clone(), access.clone());
            let body = blocking(move || {
                super::listing::topics(&state.repo, |t| may_read(&state, &access, t))
                    .map_err(Into::into)
            })
            .await?;
            Ok(json(StatusCode::OK, body))
        }
        (&Method::GET, "/v1/consumers") => {
            let (state, access) = (state.clone(), access.clone());
            let body = blocking(move || {
                super::listing::consumers(&state.repo, |t| may_read(&state, &access, t))
                    .map_err(Into::into)
            })
            .await?;
            Ok(json(StatusCode::OK, body))
        }
        _ => {
            if let Some(rest) = path.strip_prefix("/v1/topics/") {
                let (topic, action) = rest
                    .rsplit_once('/')
                    .ok_or_else(|| ApiError::not_found(format!("no route for {path}")))?;
                let topic = topic_name(topic)?;
                match (method, action) {
                    (Method::POST, "messages") => publish(state, req, &access, topic).await,
                    (Method::GET, "messages") => poll(state, &req, &access, topic).await,
                    (Method::GET, "stream") => stream(state, &req, &access, topic),
                    (_, "messages" | "stream") => Err(method_not_allowed()),
                    _ => Err(ApiError::not_found(format!("no route for {path}"))),
                }
            } else if let Some(rest) = path.strip_prefix("/v1/consumers/") {
                let rest = rest
                    .strip_suffix("/position")
                    .ok_or_else(|| ApiError::not_found(format!("no route for {path}")))?;
                let (consumer, topic) = rest
                    .split_once('/')
                    .ok_or_else(|| ApiError::not_found(format!("no route for {path}")))?;
                let consumer = consumer_name(consumer)?;
                let topic = topic_name(topic)?;
                if method != Method::POST {
                    return Err(method_not_allowed());
                }
                commit(state, req, &access, consumer, topic).await
            } else {
                Err(ApiError::not_found(format!("no route for {path}")))
            }
        }
    }
}

fn healthz(state: &State) -> Result<Response<Body>, ApiError> {
    if state.is_stopping() {
        return Err(ApiError::unavailable("shutting down"));
    }
    Ok(json(StatusCode::OK, b"{\"status\":\"ok\"}\n".to_vec()))
}

async fn metrics(state: &Arc<State>) -> Result<Response<Body>, ApiError> {
    let state = state.clone();
    let text = blocking(move || state.metrics.render(&state.repo).map_err(Into::into)).await?;
    let mut response = Response::new(Body::bytes(text));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

async fn publish(
    state: &Arc<State>,
    req: Request<Incoming>,
    access: &Access,
    topic: TopicName,
) -> Result<Response<Body>, ApiError> {
    if !may_write(state, access, topic.as_str()) {
        return Err(forbidden("write", &topic));
    }
    if let Some(encoding) = req.headers().get("content-encoding") {
        if encoding.as_bytes() != b"identity" {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                "Content-Encoding is not supported for publishing; send the body as is",
            ));
        }
    }
    let (parts, incoming) = req.into_parts();
    let length = content_length(&parts.headers);
    let bytes = body::collect(incoming, length, state.config.limits.max_body_bytes).await?;
    let items = publish::parse(&parts.headers, &bytes, &state.config.limits)?;
    let answer = state.writers.submit(&topic, items)?;
    let ids = answer.await.map_err(|_| {
        ApiError::unavailable("the topic's writer stopped; the outcome is unknown")
    })??;
    let mut out = b"{\"ids\":[".to_vec();
    let mut hex = [0u8; 40];
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(id.hex_to_buf(&mut hex).as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"]}\n");
    Ok(json(StatusCode::OK, out))
}

async fn poll(
    state: &Arc<State>,
    req: &Request<Incoming>,
    access: &Access,
    topic: TopicName,
) -> Result<Response<Body>, ApiError> {
    if !may_read(state, access, topic.as_str()) {
        return Err(forbidden("read", &topic));
    }
    let query = Query::parse(req.uri().query())?;
    let limits = state.config.limits;
    let max =
        match query.get("max") {
            Some(n) => n.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::bad_request("bad_query", "max must be a positive number")
            })?,
            None => 100,
        }
        .min(limits.max_poll_messages);
    let wait = match query.get("wait") {
        Some(w) => parse_wait(w)?,
        None => Duration::ZERO,
    }
    .min(limits.max_wait);
    let mut start = start_of(&query, None)?;
    let deadline = Instant::now() + wait;
    let page = loop {
        let notify = state.wakers.of(&topic);
        let notified = notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        let (page, next) = {
            let (state, topic, mut round) = (state.clone(), topic.clone(), start.clone());
            blocking(move || {
                consume::read(&state.repo, &state.cursors, &topic, &mut round, max)
                    .map(|p| (p, round))
            })
            .await?
        };
        start = next;
        let now = Instant::now();
        if page.count > 0 || now >= deadline || state.is_stopping() {
            break page;
        }
        let _ = tokio::time::timeout(sse::RECHECK.min(deadline - now), notified).await;
    };
    state.metrics.consumed(&topic, page.count);
    if let (true, Some(last)) = (page.count == max, page.last) {
        // A full page: the client likely asks for the next one; have it ready.
        let (state, topic) = (state.clone(), topic.clone());
        tokio::task::spawn_blocking(move || {
            consume::read_ahead(&state.repo, &state.cursors, &topic, last, max);
        });
    }
    let mut response = Response::new(Body::bytes(page.body));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert("gitmq-count", HeaderValue::from(page.count));
    if let Some(last) = page.last {
        headers.insert("gitmq-last-id", header_id(last));
    }
    if let Some(start) = page.start {
        headers.insert("gitmq-start", header_id(start));
    }
    Ok(response)
}

fn stream(
    state: &Arc<State>,
    req: &Request<Incoming>,
    access: &Access,
    topic: TopicName,
) -> Result<Response<Body>, ApiError> {
    if !may_read(state, access, topic.as_str()) {
        return Err(forbidden("read", &topic));
    }
    let query = Query::parse(req.uri().query())?;
    let last_event = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let start = start_of(&query, last_event)?;
    let (tx, body) = Body::channel(4);
    tokio::spawn(sse::run(state.clone(), topic, start, tx));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

async fn commit(
    state: &Arc<State>,
    req: Request<Incoming>,
    access: &Access,
    consumer: ConsumerName,
    topic: TopicName,
) -> Result<Response<Body>, ApiError> {
    if !may_read(state, access, topic.as_str()) {
        return Err(forbidden("read", &topic));
    }
    let (parts, incoming) = req.into_parts();
    let bytes = body::collect(incoming, content_length(&parts.headers), 64 << 10).await?;
    let state = state.clone();
    let body = blocking(move || {
        super::position::commit(&state.repo, &state.cursors, &consumer, &topic, &bytes)
    })
    .await?;
    Ok(json(StatusCode::OK, body))
}

/// Where a read starts, from `after=`, `from=`, `consumer=` or `Last-Event-ID`.
fn start_of(query: &Query, last_event: Option<&str>) -> Result<Start, ApiError> {
    let given = [query.get("after"), query.get("from"), last_event]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if given > 1 {
        return Err(ApiError::bad_request(
            "bad_query",
            "give at most one of after=, from= and Last-Event-ID",
        ));
    }
    if let Some(after) = query.get("after").or(last_event) {
        let id = gix_hash::ObjectId::from_hex(after.as_bytes()).map_err(|_| {
            ApiError::bad_request(
                "bad_query",
                "after= must be a full message id (40 hex digits)",
            )
        })?;
        return Ok(Start::After(Some(id), false));
    }
    if let Some(from) = query.get("from") {
        return Ok(Start::From(parse_from(from)?));
    }
    match query.get("consumer") {
        Some(name) => Ok(Start::Committed(consumer_name(name)?)),
        None => Ok(Start::From(StartAt::Beginning)),
    }
}

/// `beginning`, `latest`, a full id, or a time (see `position::parse_time`).
fn parse_from(text: &str) -> Result<StartAt, ApiError> {
    match text {
        "beginning" => Ok(StartAt::Beginning),
        "latest" => Ok(StartAt::Latest),
        _ => {
            if let Ok(id) = gix_hash::ObjectId::from_hex(text.as_bytes()) {
                return Ok(StartAt::At(id));
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            crate::position::parse_time(text, now)
                .map(StartAt::Since)
                .map_err(|err| ApiError::bad_request("bad_query", format!("from=: {err}")))
        }
    }
}

/// `30s`, `500ms`, `2m`, or seconds.
fn parse_wait(text: &str) -> Result<Duration, ApiError> {
    let bad = || ApiError::bad_request("bad_query", "wait must look like 30s, 500ms or 2m");
    let (number, scale_ms) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000)
    } else {
        (text, 1000)
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    Ok(Duration::from_millis(
        number.checked_mul(scale_ms).ok_or_else(bad)?,
    ))
}

/// Percent-decoded query parameters.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(key)?, decode(value)?));
        }
        Ok(Self(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Percent-decoding (`+` is a space in queries; `%2F` in a path is `/`).
fn decode(text: &str) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ApiError::bad_request("bad_query", "malformed %-escape"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request("bad_query", "not UTF-8"))
}

fn topic_name(raw: &str) -> Result<TopicName, ApiError> {
    let decoded = decode(&raw.replace('+', "%2B"))?;
    TopicName::new(&decoded).map_err(|err| ApiError::bad_request("bad_name", err.to_string()))
}

fn consumer_name(raw: &str) -> Result<ConsumerName, ApiError> {
    let decoded = decode(&raw.replace('+', "%2B"))?;
    ConsumerName::new(&decoded).map_err(|err| ApiError::bad_request("bad_name", err.to_string()))
}

fn may_read(state: &State, access: &Access, topic: &str) -> bool {
    state.tokens().is_none_or(|t| t.may_read(access, topic))
}

fn may_write(state: &State, access: &Access, topic: &str) -> bool {
    state.tokens().is_none_or(|t| t.may_write(access, topic))
}

fn forbidden(right: &str, topic: &TopicName) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("this token may not {right} topic {topic}"),
    )
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed here",
    )
}

fn content_length(headers: &hyper::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn header_id(id: gix_hash::ObjectId) -> HeaderValue {
    HeaderValue::from_str(&id.to_string()).expect("BUG: hex is a valid header value")
}

pub(crate) fn json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::bytes(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(crate) fn error_response(err: &ApiError) -> Response<Body> {
    let mut response = json(err.status, err.body());
    if err.status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"gitmq\", Bearer realm=\"gitmq\""),
        );
    }
    response
}

/// Run repository work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::internal(format!("a request's work failed: {err}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_waits_parse() {
        let q = Query::parse(Some("consumer=bil%6Cing&wait=500ms&from=2+hours+ago&flag")).unwrap();
        assert_eq!(q.get("consumer"), Some("billing"));
        assert_eq!(q.get("from"), Some("2 hours ago"));
        assert_eq!(q.get("flag"), Some(""));
        assert!(Query::parse(Some("x=%zz")).is_err());
        assert_eq!(parse_wait("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_wait("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_wait("7").unwrap(), Duration::from_secs(7));
        assert!(parse_wait("soon").is_err());
    }

    #[test]
    fn names_in_paths_are_decoded_then_validated() {
        assert_eq!(topic_name("eu%2Forders").unwrap().as_str(), "eu/orders");
        assert_eq!(topic_name("a+b").unwrap().as_str(), "a+b");
        for bad in ["..", "a..b", "%2e%2e", "x.lock", "-x", "a%00b", "a b"] {
            assert!(topic_name(bad).is_err(), "{bad}");
        }
        assert!(
            consumer_name("a%2Fb").is_err(),
            "a consumer is one component"
        );
    }
}
