"""The one client of the Roman Numeral Service, for notebooks, traffic and tests alike.

A `ServiceClient` holds one keep-alive HTTP connection (a client sends many requests on it),
so it is cheap to call in a loop; use one per thread.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import quote

from lib.config import Settings

#: The operation of an event -> the route that serves it.
ROUTES = {"to_roman": "to-roman", "from_roman": "from-roman"}


class ServiceClient:
    """Calls the service at ROMAN_SERVICE_URL as any client would: over HTTP, with its headers."""

    def __init__(self, cfg: Settings, timeout: float = 30.0) -> None:
        self.address = cfg.service_address
        self._conn = http.client.HTTPConnection(self.address.host, self.address.port, timeout=timeout)

    def ask(self, operation: str, text: str, user: str = "notebook",
            request_id: str | None = None) -> tuple[int, dict[str, Any]]:
        """One conversion request: (HTTP status, JSON body). `request_id` becomes the event_id."""
        if operation not in ROUTES:
            raise ValueError(f"operation={operation!r}: use one of {', '.join(ROUTES)}")
        headers = {"X-User-Id": user, **({"X-Request-Id": request_id} if request_id else {})}
        return self.get(f"/{ROUTES[operation]}/{quote(text, safe='')}", headers)

    def health(self) -> dict[str, Any]:
        """The service's /health body: status and the events Kafka acknowledged or refused."""
        return self.get("/health")[1]

    def events_acked(self) -> int:
        """How many events the service's producer has had acknowledged by Kafka since it started."""
        return int(self.health()["events"]["acked"])

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        """GET any path: (status, JSON body); a dropped keep-alive connection is opened again once."""
        for attempt in (1, 2):
            try:
                self._conn.request("GET", path, headers=headers or {})
                resp = self._conn.getresponse()
                return resp.status, json.loads(resp.read() or b"{}")
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
