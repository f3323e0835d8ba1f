"""The Roman Numeral Service as a process: `python -m lib.service.server` on ROMAN_SERVICE_URL for the
stack, or an instance of its own, on a free port and topic, for a test or a benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lib.config import ROOT, Settings
from lib.errors import StackError
from lib.stack.base import Service, http_json
from lib.stack.process import free_port


def command(host: str, port: int, bootstrap: str, topic: str, ack_timeout_s: float,
            module: str = "lib.service.server", schema_version: int = 1) -> list[str]:
    """The command line that serves the API (the stack's service and `serving`'s instances)."""
    return [sys.executable, "-m", module, "--host", host, "--port", str(port), "--bootstrap", bootstrap,
            "--topic", topic, "--ack-timeout", str(ack_timeout_s), "--schema-version", str(schema_version)]


def answers(url: str) -> bool:
    """The service at `url` is up: its /health says ok (liveness; /ready is about Kafka)."""
    try:
        return http_json(f"{url}/health").get("status") == "ok"
    except (OSError, ValueError):
        return False


class RomanService(Service):
    """The Roman Numeral Service (lib/service/), which answers once Kafka has the request's event."""

    def __init__(self, cfg: Settings) -> None:
        addr = cfg.service_address
        super().__init__("roman-service", addr.host, addr.port, "ROMAN_SERVICE_URL")

    def command(self, cfg: Settings) -> list[str]:
        return command(self.host, self.port, cfg.kafka_bootstrap_servers, cfg.events_topic,
                       cfg.service_ack_timeout_s, schema_version=cfg.event_schema_version)

    def environment(self, cfg: Settings) -> dict[str, str]:
        # Its settings go as arguments (command above), never through the parent's environment.
        return {
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }

    def healthy(self, cfg: Settings) -> bool:
        return answers(cfg.roman_service_url)


@dataclass
class Instance:
    """A service process started by `serving`: where it answers, and the process."""

    url: str
    proc: subprocess.Popen


@contextmanager
def serving(bootstrap: str, topic: str, ack_timeout_s: float, module: str = "lib.service.server",
            host: str = "127.0.0.1", timeout_s: float = 30.0, schema_version: int = 1) -> Iterator[Instance]:
    """A service process of its own on a free port (tests, benchmarks): answering /health, then stopped by SIGTERM."""
    port = free_port(host)
    url = f"http://{host}:{port}"
    argv = command(host, port, bootstrap, topic, ack_timeout_s, module, schema_version)
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a chatty process never blocks on it
        proc = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + timeout_s
            while not answers(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    log.seek(0)
                    raise StackError(f"{module} did not answer on {host}:{port} within {timeout_s:.0f}s:\n"
                                     f"{log.read()[-2000:]}")
                time.sleep(0.1)
            yield Instance(url, proc)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
