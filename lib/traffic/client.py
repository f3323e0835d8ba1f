"""The one client of the Roman Numeral Service, for notebooks, traffic and tests alike.

A `ServiceClient` holds one keep-alive httpx connection pool (a client sends many requests on it),
so it is cheap to call in a loop; use one per thread. Every conversion request carries an
X-Request-Id (a new UUID unless the caller names one), so a retry after a 503 is the same
event, never a second one.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt

from lib.config import Settings
from lib.plumbing.http import Rest
from lib.plumbing.waits import last_answer

#: The operation of an event -> the route that serves it.
ROUTES = {"to_roman": "to-roman", "from_roman": "from-roman"}
#: The longest wait a client accepts from a Retry-After header.
MAX_RETRY_AFTER_S = 10.0


class ServiceClient(Rest):
    """Calls the service at ROMAN_SERVICE_URL as any client would: over HTTP, with its headers."""

    def __init__(self, cfg: Settings, timeout: float = 30.0) -> None:
        super().__init__(cfg.roman_service_url, timeout)
        self.address = cfg.service_address
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

        def answer_503_after(state: RetryCallState) -> float:
            self.retried += 1
            return min(float(last_answer(state)[2].get("retry-after", 1)), MAX_RETRY_AFTER_S)

        asking = Retrying(stop=stop_after_attempt(retries + 1), wait=answer_503_after,
                          retry=retry_if_result(lambda answer: answer[0] == 503),
                          retry_error_callback=last_answer)  # the last 503 is the answer
        status, body, _ = asking(self.request, path, headers)
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
        """GET with the answer's headers (lower-cased); an HttpError only when nothing answered."""
        response = self.response("GET", path, headers=headers)
        body = response.json() if response.content else {}
        return response.status_code, body, {k.lower(): v for k, v in response.headers.items()}



def ask(cfg: Settings, operation: str, text: str, user: str = "notebook",
        request_id: str | None = None) -> tuple[int, dict[str, Any]]:
    """Call the running service once: (HTTP status, JSON body)."""
    with ServiceClient(cfg, timeout=10) as client:
        return client.ask(operation, text, user, request_id)
