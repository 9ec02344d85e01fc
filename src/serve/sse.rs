//! Owns `GET /v1/topics/{topic}/stream`: tailing a topic as Server-Sent Events.
//!
//! Each message is one event: `id: <commit id>`, `event: message`, `data: <the JSON line of
//! a GET>`. The stream starts like a GET (consumer's position, `from=`, `after=`, or the
//! `Last-Event-ID` a reconnecting browser sends) and never moves a position. While caught up
//! it waits for the topic to move (woken by this server's publishes, and reading the head
//! every [`RECHECK`] for other writers) and sends a comment every [`KEEPALIVE`].
//!
//! Invariant: events go out in topic order, each once per stream; the stream ends when the
//! client goes away or the server stops.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{
    consume::{self, Start},
    routes::State,
};
use crate::TopicName;

/// How often a caught-up stream reads the topic's head for writers outside this server.
pub(crate) const RECHECK: Duration = Duration::from_millis(100);
/// How often a caught-up stream sends a comment, so proxies keep the connection.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(15);
/// Messages read per round.
const ROUND: usize = 1000;

/// Feed `tx` with the events of `topic` from `start` until the client or the server goes.
pub(crate) async fn run(
    state: Arc<State>,
    topic: TopicName,
    mut start: Start,
    tx: mpsc::Sender<Bytes>,
) {
    let mut quiet = Duration::ZERO;
    loop {
        let notify = state.wakers.of(&topic);
        let notified = notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        let page = {
            let state = state.clone();
            let topic = topic.clone();
            let mut round_start = start.clone();
            tokio::task::spawn_blocking(move || {
                consume::read(&state.repo, &state.cursors, &topic, &mut round_start, ROUND)
                    .map(|page| (page, round_start))
            })
            .await
        };
        let (page, next) = match page {
            Ok(Ok(done)) => done,
            Ok(Err(err)) => {
                let mut event = b"event: error\ndata: ".to_vec();
                event.extend_from_slice(&err.body());
                event.push(b'\n');
                let _ = tx.send(Bytes::from(event)).await;
                return;
            }
            Err(_) => return,
        };
        start = next;
        if page.count > 0 {
            state.metrics.consumed(&topic, page.count);
            start = Start::After(page.last, true);
            if tx.send(events(&page.body)).await.is_err() {
                return;
            }
            quiet = Duration::ZERO;
            continue;
        }
        if state.is_stopping() || tx.is_closed() {
            return;
        }
        if tokio::time::timeout(RECHECK, notified).await.is_err() {
            quiet += RECHECK;
        }
        if quiet >= KEEPALIVE {
            quiet = Duration::ZERO;
            if tx
                .send(Bytes::from_static(b": keepalive\n\n"))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// NDJSON lines (each starting `{"id":"<40 hex>"`) as events.
fn events(ndjson: &[u8]) -> Bytes {
    const ID_AT: std::ops::Range<usize> = 7..47;
    let mut out = Vec::with_capacity(ndjson.len() + ndjson.len() / 4);
    for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(line.get(ID_AT).unwrap_or_default());
        out.extend_from_slice(b"\nevent: message\ndata: ");
        out.extend_from_slice(line);
        out.extend_from_slice(b"\n\n");
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_line_becomes_an_event_with_its_id() {
        let id = "a".repeat(40);
        let line = format!("{{\"id\":\"{id}\",\"payload\":\"x\"}}\n");
        let events = super::events(format!("{line}{line}").as_bytes());
        let text = std::str::from_utf8(&events).unwrap();
        let one = format!("id: {id}\nevent: message\ndata: {}\n\n", line.trim_end());
        assert_eq!(text, format!("{one}{one}"));
    }
}
