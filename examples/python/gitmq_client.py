#!/usr/bin/env python3
"""A gitmq client in the Python standard library only: publish and consume over `gitmq serve`.

    gitmq serve --listen 127.0.0.1:8470 &
    python3 examples/python/gitmq_client.py --url http://127.0.0.1:8470 --topic orders --count 10

Publishing retries failed requests (connection errors, 5xx) with the same `Gitmq-Id`, so a
retry of a request that did reach the topic returns the original ids instead of appending
again. Consuming long-polls from the consumer's committed position and commits each page
with a compare-and-swap (`expected`), so two copies of one consumer never both move it.
"""

import argparse
import base64
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class GitmqError(Exception):
    """The server refused a request (4xx) or kept failing (5xx, network) past the retries."""

    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class Client:
    def __init__(self, url, token=None, retries=5, backoff=0.1, timeout=60):
        self.url = url.rstrip("/")
        self.token = token
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout

    def _request(self, method, path, body=None, headers=None):
        """One request with retries on connection errors and 5xx; (status, headers, bytes)."""
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        attempt = 0
        while True:
            attempt += 1
            request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    return reply.status, reply.headers, reply.read()
            except urllib.error.HTTPError as err:
                text = err.read().decode("utf-8", "replace")
                if err.code < 500 or attempt > self.retries:
                    raise GitmqError(err.code, text) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                if attempt > self.retries:
                    raise GitmqError(0, str(err)) from None
            time.sleep(self.backoff * (2 ** (attempt - 1)))

    def publish(self, topic, payloads, stable_id=None, headers=None):
        """Publish payloads (bytes or str) as one request; their commit ids, once durable."""
        payloads = [p.encode() if isinstance(p, str) else p for p in payloads]
        extra = {"Content-Type": "application/x-ndjson"}
        if stable_id:
            extra["Gitmq-Id"] = stable_id
        for key, value in (headers or {}).items():
            extra["Gitmq-Header-" + key] = value
        if len(payloads) == 1:
            extra.pop("Content-Type")
            body = payloads[0]
        else:
            body = b"\n".join(payloads) + b"\n"
        path = "/v1/topics/" + urllib.parse.quote(topic, safe="") + "/messages"
        _, _, reply = self._request("POST", path, body, extra)
        return json.loads(reply)["ids"]

    def poll(self, topic, consumer, max_messages=100, wait="10s"):
        """Messages after the consumer's position (long-polls up to `wait`); dicts with
        id, stable_id, headers, author, email, time and payload (bytes)."""
        query = urllib.parse.urlencode({"consumer": consumer, "max": max_messages, "wait": wait})
        path = "/v1/topics/" + urllib.parse.quote(topic, safe="") + "/messages?" + query
        _, headers, body = self._request("GET", path)
        messages = []
        for line in body.splitlines():
            message = json.loads(line)
            if "payload_base64" in message:
                message["payload"] = base64.b64decode(message.pop("payload_base64"))
            else:
                message["payload"] = message["payload"].encode()
            messages.append(message)
        return messages, headers.get("Gitmq-Start")

    def commit(self, consumer, topic, position, expected):
        """Move the position from `expected` (None: no position yet) to `position`."""
        path = "/v1/consumers/%s/%s/position" % (
            urllib.parse.quote(consumer, safe=""),
            urllib.parse.quote(topic, safe=""),
        )
        body = json.dumps({"position": position, "expected": expected}).encode()
        self._request("POST", path, body, {"Content-Type": "application/json"})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8470")
    parser.add_argument("--token", default=None)
    parser.add_argument("--topic", default="orders")
    parser.add_argument("--consumer", default="python-example")
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()

    client = Client(args.url, token=args.token)
    published = []
    for n in range(args.count):
        payload = json.dumps({"order": n, "item": "tea"})
        # The id makes the publish idempotent: a retry returns the same commit id.
        ids = client.publish(args.topic, [payload], stable_id="py-order-%d" % n, headers={"source": "python"})
        published.extend(ids)
    # One batch request too (NDJSON).
    published.extend(client.publish(args.topic, ['{"batch": 1}', '{"batch": 2}'], stable_id="py-batch"))

    consumed = []
    while len(consumed) < len(published):
        messages, start = client.poll(args.topic, args.consumer, max_messages=4, wait="5s")
        if not messages:
            break
        consumed.extend(m["id"] for m in messages)
        client.commit(args.consumer, args.topic, messages[-1]["id"], start)
    print(json.dumps({"published": published, "consumed": consumed}))
    return 0 if consumed[-len(published):] == published else 1


if __name__ == "__main__":
    sys.exit(main())
