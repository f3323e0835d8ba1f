"""The Roman Numeral Service's HTTP API: FastAPI routes, their contract, and which requests become events.

    GET /to-roman/{n}           -> 200 {"output": "MCMXCIV", ...} or 400 {"error": ...}
    GET /from-roman/{numeral}   -> 200 {"output": "1994", ...}    or 400 {"error": ...}
    GET /health                 -> 200: the broker connection and the counts of acknowledged events
    GET /ready                  -> 200 while Kafka takes events, 503 while it is away
    GET /openapi.json, /docs    -> the contract, machine-readable and interactive

A conversion request, answered or refused, is one event; it is answered only once Kafka has
acknowledged that event (lib/service/publisher.py), else 503 with Retry-After. Everything the
framework rejects before a conversion (an unknown path, an input over 64 characters, a malformed
X-Request-Id, X-User-Id or X-Client) emits nothing and gets a 4xx naming the problem and the fix.

The service writes the event schema version it was started with (EVENT_SCHEMA_VERSION); in v2 the
event names the client app from the X-Client header ("unknown" without one).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from uuid import UUID

from fastapi import FastAPI, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException

from lib.contract.events import SCHEMA_VERSION, handle_request
from lib.errors import EventLogUnavailable
from lib.service.publisher import DurablePublisher

MAX_INPUT_CHARS = 64
MAX_CLIENT_CHARS = 32
ROUTES_HINT = "use GET /to-roman/{n}, /from-roman/{numeral}, /health, /ready or /docs"
EVENT_NOTE = (
    "\n\nThis request becomes exactly one event on the events topic (a refused conversion too, with "
    "success=false), and is answered only after Kafka acknowledged that event. A retry with the same "
    "X-Request-Id is a duplicate delivery of the same event_id, which Bronze keeps once."
)


class Conversion(BaseModel):
    """A conversion answered: the event that records it is on the topic."""

    operation: str = Field(description="to_roman or from_roman", examples=["to_roman"])
    input: str = Field(description="the input as received (the path segment, URL-decoded)", examples=["1994"])
    output: str = Field(description="the canonical answer", examples=["MCMXCIV"])
    event_id: str = Field(description="the event's id: the X-Request-Id sent, or a new UUID")


class RefusedConversion(BaseModel):
    """A conversion refused (no canonical answer); still one event, with success=false."""

    operation: str
    input: str
    output: None = None
    event_id: str
    error: str = Field(description="why the input has no answer", examples=["4000 is out of range: ..."])


class Problem(BaseModel):
    """A request that is not a conversion, or is malformed: nothing was emitted."""

    error: str = Field(description="what is wrong and how to fix it")


class Unavailable(BaseModel):
    """Kafka did not acknowledge the event in time: retry after Retry-After seconds with the same X-Request-Id."""

    error: str
    event_id: str = Field(description="send this as X-Request-Id when you retry")
    retry_after_s: int


class EventCounts(BaseModel):
    acked: int = Field(description="events Kafka acknowledged since the service started")
    failed: int = Field(description="events Kafka did not acknowledge in time (their requests got a 503)")
    in_flight: int = Field(description="events sent and not yet acknowledged")


class Broker(BaseModel):
    connected: bool = Field(description="the last probe (once a second) reached the topic's leaders")
    checked_s_ago: float
    error: str | None


class Health(BaseModel):
    status: str = Field(description="always ok while the process serves requests (liveness)", examples=["ok"])
    topic: str
    schema_version: int = Field(description="the event schema version this instance writes", examples=[1])
    broker: Broker
    events: EventCounts


class Ready(BaseModel):
    ready: bool
    reason: str | None = None


# Optional headers are typed without None, so the contract says "a UUID" and not "a UUID or null"
# (a header has no null); when one is absent, FastAPI passes the default None.
RequestId = Annotated[UUID, Header(
    alias="X-Request-Id",
    description="a UUID that becomes the event_id; send the same one when you retry a request",
)]
UserId = Annotated[str, Header(
    alias="X-User-Id", max_length=MAX_INPUT_CHARS,
    description="who asks (the event's key, so one user's events stay in order); default anonymous",
)]
ClientApp = Annotated[str, Header(
    alias="X-Client", max_length=MAX_CLIENT_CHARS, pattern=r"^[A-Za-z0-9._-]+$",
    description="which app sends the request (web, ios, ...); kept in schema v2 events, default unknown",
)]
CONVERSION_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": RefusedConversion, "description": "the input has no canonical answer (still one event)"},
    422: {"model": Problem, "description": "the input or a header is malformed (no event)"},
    503: {"model": Unavailable, "description": "Kafka did not acknowledge the event in time; retry later",
          "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}},
}


class AnyText(Convertor):
    """A path segment that may hold anything once URL-decoded: slashes, and newlines too ("path" stops at those)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("text", AnyText())


def create_app(publisher: DurablePublisher, schema_version: int = SCHEMA_VERSION) -> FastAPI:
    """The app around one publisher; the publisher's threads start and stop with the app's lifespan.
    Its events are in `schema_version` (lib.contract.events)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        publisher.start(asyncio.get_running_loop())
        yield
        # Uvicorn has answered every request in flight by now; what is still queued goes out.
        publisher.close()

    app = FastAPI(
        title="Roman Numeral Service",
        version="2",
        description=__doc__.split("\n\n", 1)[1],
        lifespan=lifespan,
    )
    retry_after = math.ceil(publisher.ack_timeout_s)

    async def convert(operation: str, text: str, request_id: UUID | None, user: str | None,
                      client: str | None) -> JSONResponse:
        user_id = (user or "").strip() or "anonymous"
        event = handle_request(operation, text, user_id, event_id=str(request_id) if request_id else None,
                               schema_version=schema_version, client=client)
        headers = {"X-Request-Id": event.event_id}
        try:
            await publisher.publish(event.key, event.to_json())
        except EventLogUnavailable as exc:
            body = {"error": f"{exc}; retry in {retry_after} s with the same X-Request-Id",
                    "event_id": event.event_id, "retry_after_s": retry_after}
            return JSONResponse(body, 503, {**headers, "Retry-After": str(retry_after)})
        body = {"operation": event.operation, "input": event.input, "output": event.output,
                "event_id": event.event_id}
        if event.success:
            return JSONResponse(body, 200, headers)
        return JSONResponse({**body, "error": event.error}, 400, headers)

    @app.get("/to-roman/{n:text}", response_model=Conversion, responses=CONVERSION_RESPONSES,
             summary="An integer from 1 to 3999 as its canonical Roman numeral",
             description="`/to-roman/1994` answers `MCMXCIV`; 0, 4000 or `abc` are refused with a 400." + EVENT_NOTE)
    async def to_roman(
        n: Annotated[str, Path(max_length=MAX_INPUT_CHARS, description="the integer, as text")],
        request_id: RequestId = None, user: UserId = None, client: ClientApp = None,  # type: ignore[assignment]
    ) -> JSONResponse:
        return await convert("to_roman", n, request_id, user, client)

    @app.get("/from-roman/{numeral:text}", response_model=Conversion, responses=CONVERSION_RESPONSES,
             summary="A canonical Roman numeral as its integer",
             description="`/from-roman/MCMXCIV` answers `1994`; `IIII` or `MMMM` are refused with a 400." + EVENT_NOTE)
    async def from_roman(
        numeral: Annotated[str, Path(max_length=MAX_INPUT_CHARS, description="the numeral, upper case")],
        request_id: RequestId = None, user: UserId = None, client: ClientApp = None,  # type: ignore[assignment]
    ) -> JSONResponse:
        return await convert("from_roman", numeral, request_id, user, client)

    @app.get("/health", response_model=Health, summary="Liveness, the broker connection and the event counts")
    async def health() -> JSONResponse:
        state = publisher.broker
        broker = {"connected": state.connected, "error": state.error,
                  "checked_s_ago": round(max(0.0, time.time() - state.checked_at), 1)}
        return JSONResponse({"status": "ok", "topic": publisher.topic, "schema_version": schema_version,
                             "broker": broker,
                             "events": publisher.counts()})

    @app.get("/ready", response_model=Ready, responses={503: {"model": Ready, "description": "Kafka is away"}},
             summary="Whether a conversion would be answered now (false while Kafka is away)")
    async def ready() -> JSONResponse:
        state = publisher.broker
        if state.connected:
            return JSONResponse({"ready": True, "reason": None})
        return JSONResponse({"ready": False, "reason": state.error}, 503)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _explain(exc)}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def not_a_route(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"unknown path {request.url.path!r}: {ROUTES_HINT}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path!r}: the service answers GET only"
        else:
            message = str(exc.detail)
        return JSONResponse({"error": message}, exc.status_code, getattr(exc, "headers", None))

    return app


_FIXES = {
    "X-Request-Id": "send a UUID such as 906b34be-6cca-4d8f-a133-ccef78b28f6b, or no header at all",
    "X-User-Id": f"send at most {MAX_INPUT_CHARS} characters",
    "X-Client": f"send a name of at most {MAX_CLIENT_CHARS} letters, digits, '.', '_' or '-', or no header at all",
    "n": f"send at most {MAX_INPUT_CHARS} characters",
    "numeral": f"send at most {MAX_INPUT_CHARS} characters",
}


def _explain(exc: RequestValidationError) -> str:
    """Pydantic's errors as one sentence per field: where, what is wrong, and the fix."""
    parts = []
    for error in exc.errors():
        where, name = error["loc"][0], str(error["loc"][-1])
        name = {"x-request-id": "X-Request-Id", "x-user-id": "X-User-Id", "x-client": "X-Client"}.get(
            name.lower(), name)
        parts.append(f"{where} {name}: {error['msg']} ({_FIXES.get(name, 'see /docs')})")
    return "; ".join(parts)
