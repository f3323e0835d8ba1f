"""Alerts: what the scheduler says when a job has failed every attempt.

Three channels, the same JSON in each: a clear line on stderr (the operator's terminal or the
cron mail), a JSON line appended to runs/alerts.log (what a monitor tails), and an HTTP POST to
ALERT_WEBHOOK_URL when it is set (a chat or paging webhook).

Best effort, never fatal: `alert()` never raises. It is called when something has already gone
wrong (by the scheduler between runs, by Airflow's failure callback), so a channel that fails is
reported on the others and the caller goes on. The webhook gets ALERT_WEBHOOK_TIMEOUT_S (10 s by
default) *in all* (connecting, sending and reading the answer together), not per read: a server that
answers one byte at a time cannot hold the scheduler longer than that.

runs/alerts.log holds one JSON object a line, of two kinds:

- the alert, written first, before any network:
  `{"at", "job", "interval", "attempts", "failed_cell", "error", "notebook"}` (what the webhook gets);
- when ALERT_WEBHOOK_URL is set, what became of its delivery, once it is known:
  `{"at": <when delivery ended>, "alert_at": <the alert's "at">, "job", "interval",
  "delivery": "delivered" | "undelivered", "webhook": <the URL up to its host>, "seconds": <time spent>,
  "error": <why; undelivered only>}`.
  Every failure is "undelivered": refused, no complete answer in time, a status other than 2xx
  (redirects are not followed), an answer cut short, a URL urllib cannot use. A monitor greps
  `"delivery": "undelivered"`; a reader counting alerts skips the lines that have "delivery".

The webhook's path is not logged (a chat webhook's path is its secret), only where it points.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPConnection, IncompleteRead
from pathlib import Path
from typing import Any

from lib.config import Settings, redact_url


def alerts_log(cfg: Settings) -> Path:
    return cfg.runs_dir / "alerts.log"


@dataclass(frozen=True)
class Delivery:
    """What became of one POST to the webhook: delivered, or why not, and how long it took."""

    delivered: bool
    seconds: float
    error: str = ""


def alert(cfg: Settings, job: str, interval: str, attempts: int, failed_cell: int | None, error: str,
          notebook: str | None) -> dict[str, Any]:
    """Raise the alarm on every channel; returns the alert as sent. Never raises (see the module)."""
    doc: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "job": job,
        "interval": interval,
        "attempts": attempts,
        "failed_cell": failed_cell,
        "error": str(error)[:1000],
        "notebook": notebook,
    }
    where = f"cell {failed_cell}" if failed_cell is not None else "before its notebook started"
    _say(f"ALERT: {job} {interval} failed after {attempts} attempts ({where}): {doc['error'][:300]}"
         + (f"; the executed notebook is kept at {notebook}" if notebook else ""))
    log = alerts_log(cfg)
    _append(log, doc)
    url = cfg.alert_webhook_url
    if url:
        outcome = deliver(url, doc, cfg.alert_webhook_timeout_s)
        shown = redact_url(url)
        record: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"), "alert_at": doc["at"], "job": job,
            "interval": interval, "delivery": "delivered" if outcome.delivered else "undelivered",
            "webhook": shown, "seconds": round(outcome.seconds, 3),
        }
        if not outcome.delivered:
            record["error"] = outcome.error
            _say(f"(the alert webhook {shown} did not take the alert: {outcome.error}; "
                 f"recorded as undelivered in {log})")
        _append(log, record)
    return doc


def deliver(url: str, doc: dict[str, Any], timeout_s: float) -> Delivery:
    """POST `doc` to `url`, taking at most `timeout_s` in all (plus a few milliseconds); never raises.

    urllib's timeout bounds each socket operation, not the whole exchange, so the POST runs in a
    daemon thread joined with the deadline; past it the thread's sockets are shut down, which ends
    the thread's blocked read instead of leaving it to trickle on in the background.
    """
    started = time.monotonic()
    sockets = _Sockets()
    failures: list[BaseException] = []
    done = threading.Event()

    def post() -> None:
        try:
            _post(url, json.dumps(doc).encode(), timeout_s, sockets)
        except BaseException as exc:  # the caller reports it; a thread has nowhere else to put it
            failures.append(exc)
        finally:
            done.set()

    try:
        worker = threading.Thread(target=post, name="alert-webhook", daemon=True)
        worker.start()
    except Exception as exc:  # no thread to be had: report it like any other failure
        return Delivery(False, time.monotonic() - started, _reason(exc, url))
    finished = done.wait(timeout_s)
    seconds = time.monotonic() - started
    if not finished:
        sockets.cut()
        return Delivery(False, seconds, f"no complete answer within {timeout_s:g} s (ALERT_WEBHOOK_TIMEOUT_S)")
    if failures:
        return Delivery(False, seconds, _reason(failures[0], url))
    return Delivery(True, seconds)


def _post(url: str, body: bytes, timeout_s: float, sockets: _Sockets) -> None:
    """The POST itself; raises on any failure, a status other than 2xx included."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(_NoRedirects(), _TrackedHTTP(sockets), _TrackedHTTPS(sockets))
    try:
        with opener.open(request, timeout=timeout_s) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        exc.close()  # its answer holds the connection open
        raise


def _reason(exc: BaseException, url: str) -> str:
    """A failure in words, without the webhook's secret path (some errors repeat the whole URL)."""
    if isinstance(exc, urllib.error.HTTPError):
        why = f"it answered HTTP {exc.code} {exc.reason}"
        if 300 <= exc.code < 400:
            why += " (redirects are not followed: set ALERT_WEBHOOK_URL to the address it redirects to)"
    elif isinstance(exc, urllib.error.URLError):
        why = f"could not reach it: {exc.reason}"
    elif isinstance(exc, IncompleteRead):
        why = f"its answer was cut short ({len(exc.partial)} bytes read, {exc.expected} more expected)"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return why.replace(url, redact_url(url))[:500]


def _say(line: str) -> None:
    """A line on stderr, unless stderr itself is gone: an alert must not fail for want of a terminal."""
    with contextlib.suppress(Exception):  # nothing left to report it on
        print(line, file=sys.stderr, flush=True)


def _append(log: Path, record: dict[str, Any]) -> None:
    """One JSON line on the alerts log; a log that cannot be written is said on stderr instead."""
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
    except Exception as exc:
        _say(f"(could not append to the alerts log {log}: {exc}; this alert is on stderr only)")


class _Sockets:
    """The sockets one delivery opened, so that whoever gives up on it can shut them down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._cut = False

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._open.append(sock)
            cut = self._cut
        if cut:  # connected after the deadline: no use for it either
            _shutdown(sock)

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            opened = list(self._open)
        for sock in opened:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed, or a TLS socket's detached plain one
        sock.shutdown(socket.SHUT_RDWR)


def _tracked(http_class: type[HTTPConnection], sockets: _Sockets) -> type[HTTPConnection]:
    """`http_class` that hands every socket it opens (the plain one, then the TLS one) to `sockets`."""

    class Tracked(http_class):  # type: ignore[valid-type, misc]
        def connect(self) -> None:
            create = getattr(self, "_create_connection")  # noqa: B009  # set by HTTPConnection.__init__

            def created(*args: Any, **kwargs: Any) -> socket.socket:
                sock = create(*args, **kwargs)
                sockets.add(sock)
                return sock

            self._create_connection = created
            super().connect()
            sockets.add(self.sock)

    return Tracked


class _Tracking:
    """A urllib handler whose connections hand their sockets to `sockets` (mixed into the HTTP and HTTPS ones)."""

    def __init__(self, sockets: _Sockets) -> None:
        super().__init__()
        self.sockets = sockets

    def do_open(self, http_class: Any, req: urllib.request.Request, **kwargs: Any) -> Any:
        return super().do_open(_tracked(http_class, self.sockets), req, **kwargs)  # type: ignore[misc]


class _TrackedHTTP(_Tracking, urllib.request.HTTPHandler):
    pass


class _TrackedHTTPS(_Tracking, urllib.request.HTTPSHandler):
    pass


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST would arrive as a GET without the alert: treat a redirect as a failure."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None
