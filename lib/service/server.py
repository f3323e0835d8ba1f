"""Serving the API with uvicorn, and stopping it without losing an answer.

`python -m lib.service.server` is what `stack up` starts. On SIGTERM (or Ctrl-C) uvicorn stops
accepting connections, lets every request in flight finish (each one is answered 200/400 once
Kafka acknowledged its event, or 503 after the ack timeout), then the app's lifespan flushes the
producer. So nothing a client was told is done can be missing from the topic afterwards.
"""

from __future__ import annotations

import argparse

import uvicorn

from lib.config import settings
from lib.contract.events import SCHEMA_VERSIONS
from lib.service.api import create_app
from lib.service.publisher import DurablePublisher

#: 64 clients connecting at once must not wait on a full accept queue (socketserver's default is 5).
ACCEPT_BACKLOG = 2048


def build_server(host: str, port: int, bootstrap: str, topic: str, ack_timeout_s: float,
                 schema_version: int = 1) -> uvicorn.Server:
    """A uvicorn server for the app: uvloop and httptools, a deep accept backlog, no access log."""
    publisher = DurablePublisher(bootstrap, topic, ack_timeout_s)
    config = uvicorn.Config(
        create_app(publisher, schema_version), host=host, port=port,
        loop="uvloop", http="httptools", lifespan="on",
        backlog=ACCEPT_BACKLOG,
        access_log=False, log_level="warning",  # every conversion is an event already
        # Requests in flight wait at most the ack timeout; give them that, and a little more.
        timeout_graceful_shutdown=int(ack_timeout_s) + 5,
    )
    return uvicorn.Server(config)


def main(argv: list[str] | None = None) -> int:
    cfg = settings()
    parser = argparse.ArgumentParser(prog="python -m lib.service.server",
                                     description="The Roman Numeral Service on uvicorn.")
    parser.add_argument("--host", default=cfg.service_address.host)
    parser.add_argument("--port", type=int, default=cfg.service_address.port)
    parser.add_argument("--bootstrap", default=cfg.kafka_bootstrap_servers, help="Kafka's bootstrap servers")
    parser.add_argument("--topic", default=cfg.events_topic, help="the events topic")
    parser.add_argument("--ack-timeout", type=float, default=cfg.service_ack_timeout_s,
                        help="seconds to wait for Kafka's acknowledgement before answering 503")
    parser.add_argument("--schema-version", type=int, choices=SCHEMA_VERSIONS, default=cfg.event_schema_version,
                        help="the event schema version to write (2 adds the client app, from X-Client)")
    args = parser.parse_args(argv)
    if args.ack_timeout <= 0:
        parser.error(f"--ack-timeout {args.ack_timeout}: give a positive number of seconds (default 5)")
    server = build_server(args.host, args.port, args.bootstrap, args.topic, args.ack_timeout, args.schema_version)
    print(f"Roman Numeral Service on http://{args.host}:{args.port} (docs at /docs), events (schema "
          f"v{args.schema_version}) to {args.topic} at {args.bootstrap}", flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
