"""The one client of the Roman Numeral Service, for notebooks, traffic and tests alike.

A `ServiceClient` holds one keep-alive HTTP connection (a client sends many requests on it),
so it is cheap to call in a loop; use one per thread. Every conversion request carries an
X-Request-Id (a new UUID unless the caller names one), so a retry after a 503 is the same
event, never a second one.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from typing import Any
from urllib.parse import quote

from lib.config import Settings

#: The operation of an event -> the route that serves it.
ROUTES = {"to_roman": "to-roman", "from_roman": "from-roman"}
#: The longest wait a client accepts from a Retry-After header.
MAX_RETRY_AFTER_S = 10.0


class ServiceClient:
    """Calls the service at ROMAN_SERVICE_URL as any client would: over HTTP, with its headers."""

    def __init__(self, cfg: Settings, timeout: float = 30.0) -> None:
        self.address = cfg.service_address
        self._conn = http.client.HTTPConnection(self.address.host, self.address.port, timeout=timeout)
        self.retried = 0  # 503s answered by waiting Retry-After and asking again

    def ask(self, operation: str, text: str, user: str = "notebook", request_id: str | None = None,
            retries: int = 0, client: str | None = None) -> tuple[int, dict[str, Any]]:
        """One conversion request: (HTTP status, JSON body); the body's event_id is the request id.

        A 503 (Kafka did not acknowledge the event in time) is retried up to `retries` times after
        its Retry-After, with the same request id.
        """
        if operation not in ROUTES:
            raise ValueError(f"operation={operation!r}: use one of {', '.join(ROUTES)}")
        headers = {"X-User-Id": user, "X-Request-Id": request_id or str(uuid.uuid4())}
        if client:
            headers["X-Client"] = client  # kept by a service that writes schema v2
        path = f"/{ROUTES[operation]}/{quote(text, safe='')}"
        for attempt in range(retries + 1):
            status, body, answer_headers = self.request(path, headers)
            if status != 503 or attempt == retries:
                break
            self.retried += 1
            time.sleep(min(float(answer_headers.get("retry-after", 1)), MAX_RETRY_AFTER_S))
        return status, body

    def health(self) -> dict[str, Any]:
        """The service's /health body: the broker connection and the events Kafka acknowledged or refused."""
        return self.get("/health")[1]

    def ready(self) -> bool:
        """True when the service can answer conversions now (Kafka reachable)."""
        return self.get("/ready")[0] == 200

    def events_acked(self) -> int:
        """How many events the service's producer has had acknowledged by Kafka since it started."""
        return int(self.health()["events"]["acked"])

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        """GET any path: (status, JSON body)."""
        status, body, _ = self.request(path, headers)
        return status, body

    def request(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
        """GET with the answer's headers (lower-cased); a dropped keep-alive connection is opened again once."""
        for attempt in (1, 2):
            try:
                self._conn.request("GET", path, headers=headers or {})
                resp = self._conn.getresponse()
                body = json.loads(resp.read() or b"{}")
                return resp.status, body, {k.lower(): v for k, v in resp.getheaders()}
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ask(cfg: Settings, operation: str, text: str, user: str = "notebook",
        request_id: str | None = None) -> tuple[int, dict[str, Any]]:
    """Call the running service once: (HTTP status, JSON body)."""
    with ServiceClient(cfg, timeout=10) as client:
        return client.ask(operation, text, user, request_id)
