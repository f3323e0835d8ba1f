"""Every REST call of the workbook goes through httpx, and every failure says what the server said.

Flink, the Iceberg REST catalog, the Roman Numeral Service and Spark's master each explain an error
in their answer's body, each in its own shape; `server_says` reads all of them, so an `HttpError`
carries the server's words instead of a bare status code.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import threading
from typing import Any, Self

import httpx

from lib.errors import HttpError

#: How much of an unrecognised error body an HttpError keeps.
BODY_CHARS = 500


def server_says(body: str) -> str:
    """What a server said went wrong: Flink's `errors` list (the first lines of each, a Java stack trace
    follows), the catalog's `error.message`, FastAPI's `detail` or the service's `error`; else the body."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        if isinstance(doc.get("errors"), list) and doc["errors"]:
            return " | ".join(" ".join(str(e).strip().splitlines()[:2])[:300] for e in doc["errors"])
        error = doc.get("error")
        if isinstance(error, dict) and error.get("message"):
            return f"{error.get('type', 'error')}: {error['message']}"[:BODY_CHARS]
        for key in ("detail", "error", "message"):
            if doc.get(key):
                return str(doc[key])[:BODY_CHARS]
    return body[:BODY_CHARS] or "(no body)"


def checked(response: httpx.Response) -> httpx.Response:
    """The response, or an HttpError naming the call, the status and what the server said."""
    if response.is_success:
        return response
    request = response.request
    raise HttpError(f"{request.method} {request.url} answered {response.status_code} {response.reason_phrase}: "
                    f"{server_says(response.text)}", response.status_code)


def unreachable(method: str, url: str, exc: httpx.HTTPError) -> HttpError:
    """An HttpError for a call nothing answered (refused, timed out, cut off)."""
    return HttpError(f"{method} {url}: no answer ({type(exc).__name__}: {exc or 'no detail'})")


class Rest:
    """One server's REST API over one keep-alive connection pool; JSON in and out."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout)

    def response(self, method: str, path: str, body: Any = None,
                 headers: dict[str, str] | None = None) -> httpx.Response:
        """The answer to one call, whatever its status; an HttpError only when nothing answered."""
        try:
            return self._client.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise unreachable(method, f"{self.url}{path}", exc) from None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON of a successful answer ({} for an empty one); any other answer is an HttpError."""
        text = checked(self.response(method, path, body)).text
        return json.loads(text) if text else {}

    def text(self, path: str) -> str:
        return checked(self.response("GET", path)).text

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@functools.cache
def _shared() -> httpx.Client:
    """One client for one-off calls (health checks poll often): made on first use, not at import."""
    return httpx.Client(timeout=2.0)


def get_json(url: str, timeout: float = 2.0) -> Any:
    """GET one JSON document; an HttpError when nothing answers, the status is an error or the body is not JSON."""
    try:
        response = _shared().get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise unreachable("GET", url, exc) from None
    try:
        return checked(response).json()
    except ValueError:
        raise HttpError(f"GET {url} answered {response.status_code} with something other than JSON: "
                        f"{response.text[:200]!r}", response.status_code) from None


def post_within(url: str, doc: Any, deadline_s: float) -> None:
    """POST `doc` as JSON and read the whole answer in `deadline_s` *in all*; an HttpError otherwise.

    httpx's timeouts bound each read, not the exchange: a server answering one byte at a time
    would hold the caller for ever. So the POST runs in a daemon thread joined with the deadline;
    past it, the sockets the call opened (seen through httpcore's trace extension) are shut down,
    which ends the thread's blocked read instead of leaving it to trickle on. Redirects are not
    followed (a redirected POST would lose its body): a 3xx is an HttpError like any other status.
    """
    sockets = _Sockets()
    failures: list[BaseException] = []
    done = threading.Event()

    def post() -> None:
        try:
            with httpx.Client(timeout=deadline_s, follow_redirects=False) as client:
                checked(client.post(url, json=doc, extensions={"trace": sockets.trace}))
        except BaseException as exc:  # the caller reports it; a thread has nowhere else to put it
            failures.append(exc)
        finally:
            done.set()

    threading.Thread(target=post, name="http-post-within", daemon=True).start()
    if not done.wait(deadline_s):
        sockets.cut()
        raise HttpError(f"POST {url}: no complete answer within {deadline_s:g} s")
    if failures:
        exc = failures[0]
        if isinstance(exc, HttpError):
            raise exc
        if isinstance(exc, httpx.RemoteProtocolError):
            raise HttpError(f"POST {url}: the answer was cut short ({exc})") from None
        if isinstance(exc, (httpx.HTTPError, httpx.InvalidURL)):
            raise HttpError(f"POST {url}: {type(exc).__name__}: {exc}") from None
        raise exc


class _Sockets:
    """The sockets one call opened, so that whoever gives up on it can shut them down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._cut = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: a completed connect (or TLS start) hands over its network stream."""
        if event.endswith((".connect_tcp.complete", ".start_tls.complete")) and info.get("return_value") is not None:
            self._add(info["return_value"].get_extra_info("socket"))

    def _add(self, sock: socket.socket | None) -> None:
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
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)
