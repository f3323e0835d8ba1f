"""The Roman Numeral Service as a process: `python -m lib.service.server` on ROMAN_SERVICE_URL for the
stack, or an instance of its own, on a free port and topic, for a test or a benchmark."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lib.config import ROOT, Settings
from lib.errors import HttpError, StackError
from lib.plumbing.http import get_json
from lib.plumbing.waits import poll
from lib.stack.base import Service
from lib.stack.process import ManagedProcess, free_port, log_tail


def command(host: str, port: int, bootstrap: str, topic: str, ack_timeout_s: float,
            module: str = "lib.service.server", schema_version: int = 1) -> list[str]:
    """The command line that serves the API (the stack's service and `serving`'s instances)."""
    return [sys.executable, "-m", module, "--host", host, "--port", str(port), "--bootstrap", bootstrap,
            "--topic", topic, "--ack-timeout", str(ack_timeout_s), "--schema-version", str(schema_version)]


def answers(url: str) -> bool:
    """The service at `url` is up: its /health says ok (liveness; /ready is about Kafka)."""
    try:
        return get_json(f"{url}/health").get("status") == "ok"
    except HttpError:
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
    """A service process of its own on a free port (tests, benchmarks): answering /health, then stopped.

    Supervised like the stack's services (lib.stack.process), with its pid file and log in a
    temporary folder of its own."""
    port = free_port(host)
    url = f"http://{host}:{port}"
    with tempfile.TemporaryDirectory(prefix="roman-service-") as home:
        proc = ManagedProcess("roman-service", Path(home))
        proc.start(command(host, port, bootstrap, topic, ack_timeout_s, module, schema_version),
                   env={"PYTHONPATH": str(ROOT)}, cwd=ROOT)
        try:
            poll(lambda: proc.exit_code() is not None or answers(url), timeout_s=timeout_s, every_s=0.1,
                 timed_out=lambda _: StackError(f"{module} did not answer on {host}:{port} within {timeout_s:.0f}s:\n"
                                                f"{log_tail(proc.log_file, 30)}"))
            if proc.exit_code() is not None:
                raise StackError(f"{module} exited before it answered on {host}:{port}:\n{log_tail(proc.log_file, 30)}")
            yield Instance(url, proc.popen)
        finally:
            proc.stop(timeout=30)
