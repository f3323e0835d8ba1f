"""The baseline of the service load benchmark: the service as it was before FastAPI, frozen here.

A stdlib `ThreadingHTTPServer` that answers as soon as the event is *queued* in its producer, before
Kafka acknowledged it: a broker outage longer than the delivery timeout lost events whose clients had
been told 200. Kept only so `make bench` measures the new service against it in the same run; nothing
else starts it. `python -m bench.baseline_service --port P --topic T`.

One change from the frozen server: it listens with the service's accept backlog (2,048), not
socketserver's 5, so that the comparison is about answering before or after the ack. With 5, the
connections of 64 clients opening at once beyond the queue waited for the kernel's SYN-ACK retries
(1 s, 3 s, ... 31 s): a 2-second load took 62 s, and the rate measured was that tail's.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from confluent_kafka import Producer

from lib.config import settings
from lib.contract.events import handle_request
from lib.kafka import producer_config
from lib.service.server import ACCEPT_BACKLOG

ROUTES = {"to-roman": "to_roman", "from-roman": "from_roman"}
MAX_INPUT_CHARS = 64


class EventPublisher:
    """Publishes events to the topic (acks=all, idempotent) and counts what the broker acknowledged."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = Producer({**producer_config(bootstrap, "roman-service"), "linger.ms": 5})
        self._lock = threading.Lock()
        self.acked = 0
        self.failed = 0
        self._running = True
        # Delivery reports are served by poll(); a small thread keeps them flowing between requests.
        self._poller = threading.Thread(target=self._poll, name="delivery-reports", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while self._running:
            self._producer.poll(0.1)

    def publish(self, key: bytes, value: bytes) -> None:
        """Queue the event; raises when the local queue is full (the broker has been away too long)."""
        self._producer.produce(self.topic, key=key, value=value, on_delivery=self._count)

    def _count(self, err: Any, msg: Any) -> None:
        with self._lock:
            if err is None:
                self.acked += 1
            else:
                self.failed += 1

    def close(self) -> None:
        self._running = False
        self._producer.flush(30)


class Handler(BaseHTTPRequestHandler):
    server_version = "RomanNumeralService/1"
    protocol_version = "HTTP/1.1"  # keep-alive: a client can send many requests on one connection
    disable_nagle_algorithm = True  # headers and body go out as two writes; do not wait 40 ms between them
    publisher: EventPublisher | None = None

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are events already; keep the access log quiet."""

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        try:
            self._route()
        except Exception as exc:
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {type(exc).__name__}"})

    def _route(self) -> None:
        path = urlsplit(self.path).path
        if path == "/health":
            pub = self.publisher
            counts = {"acked": pub.acked, "failed": pub.failed} if pub else {}
            self._send(HTTPStatus.OK, {"status": "ok", "events": counts})
            return
        route, slash, raw = path.lstrip("/").partition("/")
        if route not in ROUTES or not slash:  # '/to-roman/' is a request with an empty input
            self._send(HTTPStatus.NOT_FOUND, {
                "error": f"unknown path {path!r}: use /to-roman/{{n}}, /from-roman/{{numeral}} or /health",
            })
            return
        text = unquote(raw, errors="replace")
        if len(text) > MAX_INPUT_CHARS:
            self._send(HTTPStatus.REQUEST_URI_TOO_LONG, {"error": f"input longer than {MAX_INPUT_CHARS} characters"})
            return
        request_id = self.headers.get("X-Request-Id")
        if request_id is not None:
            try:
                request_id = str(uuid.UUID(request_id))
            except ValueError:
                self._send(HTTPStatus.BAD_REQUEST, {"error": "X-Request-Id must be a UUID"})
                return
        user = (self.headers.get("X-User-Id") or "anonymous").strip()[:MAX_INPUT_CHARS] or "anonymous"
        event = handle_request(ROUTES[route], text, user, event_id=request_id)
        if self.publisher is not None:
            try:
                self.publisher.publish(event.key, event.to_json())
            except Exception as exc:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, {
                    "error": f"the event log is unavailable ({type(exc).__name__}); retry with the same X-Request-Id",
                })
                return
        body = {"operation": event.operation, "input": event.input, "output": event.output,
                "event_id": event.event_id}
        if event.success:
            self._send(HTTPStatus.OK, body)
        else:
            self._send(HTTPStatus.BAD_REQUEST, {**body, "error": event.error})


def make_server(host: str, port: int, publisher: EventPublisher | None) -> ThreadingHTTPServer:
    """A server bound to host:port; `publisher=None` answers without emitting (unit tests of the API)."""
    handler = type("BoundHandler", (Handler,), {"publisher": publisher})
    server_class = type("BaselineServer", (ThreadingHTTPServer,), {"request_queue_size": ACCEPT_BACKLOG})
    server = server_class((host, port), handler)
    server.daemon_threads = True
    return server


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The service's own command line (lib.stack.roman.command), so the benchmark starts both alike."""
    cfg = settings()
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_service", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=cfg.service_address.host)
    parser.add_argument("--port", type=int, default=cfg.service_address.port)
    parser.add_argument("--topic", default=cfg.events_topic)
    parser.add_argument("--bootstrap", default=cfg.kafka_bootstrap_servers)
    parser.add_argument("--ack-timeout", help="accepted for the same command line; this server never waits")
    # The service's command line gained --schema-version with schema v2; the frozen baseline writes v1 only.
    parser.add_argument("--schema-version", type=int, choices=[1], default=1,
                        help="accepted for the same command line; this server writes schema v1 only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    publisher = EventPublisher(args.bootstrap, args.topic)
    server = make_server(args.host, args.port, publisher)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # `stack down`: flush what is pending, then exit
    print(f"baseline service on http://{args.host}:{args.port}, events to {args.topic}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        publisher.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
