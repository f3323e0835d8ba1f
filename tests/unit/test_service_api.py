"""The HTTP API in-process (no Kafka publisher): answers, status codes, and never a 500."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.service.api import make_server


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[str, int]]:
    server = make_server("127.0.0.1", 0, publisher=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[:2]
    server.shutdown()
    server.server_close()


def get(api: tuple[str, int], path: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(*api, timeout=10)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    return resp.status, body


def test_conversions_and_their_events(api: tuple[str, int]) -> None:
    status, body = get(api, "/to-roman/1994", {"X-User-Id": "alice"})
    assert (status, body["output"]) == (200, "MCMXCIV")
    status, body = get(api, "/from-roman/MCMXCIV")
    assert (status, body["output"]) == (200, "1994")
    assert get(api, "/health") == (200, {"status": "ok", "events": {}})


@pytest.mark.parametrize(("path", "needle"), [("/to-roman/0", "out of range"), ("/to-roman/abc", "not an integer"),
                                               ("/from-roman/IIII", "not a canonical numeral"),
                                               ("/from-roman/", "empty numeral")])
def test_rejected_requests_are_400_with_a_reason(api: tuple[str, int], path: str, needle: str) -> None:
    status, body = get(api, path)
    assert status == 400
    assert needle in body["error"]
    assert body["output"] is None and body["event_id"]


def test_request_id_becomes_the_event_id(api: tuple[str, int]) -> None:
    rid = "906b34be-6cca-4d8f-a133-ccef78b28f6b"
    assert get(api, "/to-roman/7", {"X-Request-Id": rid})[1]["event_id"] == rid
    status, body = get(api, "/to-roman/7", {"X-Request-Id": "not-a-uuid"})
    assert status == 400 and "UUID" in body["error"]


def test_unknown_paths_are_404_with_directions(api: tuple[str, int]) -> None:
    status, body = get(api, "/to-greek/5")
    assert status == 404 and "/to-roman/{n}" in body["error"]


@settings(max_examples=300, deadline=None)
@given(route=st.sampled_from(["to-roman", "from-roman"]), text=st.text(max_size=80))
def test_no_input_string_gets_a_500(api: tuple[str, int], route: str, text: str) -> None:
    status, body = get(api, f"/{route}/{quote(text, safe='')}")
    assert status in (200, 400, 414), (status, body)
    assert ("error" in body) == (status != 200)
