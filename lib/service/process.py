"""The service as a process: its command line, and an instance of its own for tests and benchmarks.

Light on imports (no FastAPI), so `stack up` can build the command without loading the app.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lib.config import ROOT
from lib.errors import StackError


def command(host: str, port: int, bootstrap: str, topic: str, ack_timeout_s: float,
            module: str = "lib.service.server") -> list[str]:
    """The command line that serves the API (`stack up` and the tests' own instances use it)."""
    return [sys.executable, "-m", module, "--host", host, "--port", str(port), "--bootstrap", bootstrap,
            "--topic", topic, "--ack-timeout", str(ack_timeout_s)]


@dataclass
class Instance:
    """A service process started by `serving`: where it answers, and the process."""

    url: str
    proc: subprocess.Popen


@contextmanager
def serving(bootstrap: str, topic: str, ack_timeout_s: float, module: str = "lib.service.server",
            host: str = "127.0.0.1", timeout_s: float = 30.0) -> Iterator[Instance]:
    """A service process of its own on a free port (tests, benchmarks): answering /health, then stopped by SIGTERM."""
    port = free_port(host)
    argv = command(host, port, bootstrap, topic, ack_timeout_s, module)
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a chatty process never blocks on it
        proc = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + timeout_s
            while not _answers(host, port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    log.seek(0)
                    raise StackError(f"{module} did not answer on {host}:{port} within {timeout_s:.0f}s:\n"
                                     f"{log.read()[-2000:]}")
                time.sleep(0.1)
            yield Instance(f"http://{host}:{port}", proc)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _answers(host: str, port: int) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/health")
        return json.loads(conn.getresponse().read()).get("status") == "ok"
    except (OSError, ValueError):
        return False
    finally:
        conn.close()
