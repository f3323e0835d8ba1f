"""The plumbing on httpx and tenacity: a failed REST call carries what the server said, a wait that runs
out says what it last saw, a retry gives up with the last error and lets any other pass at once.

The servers are real local sockets (tests/unit/webhooks.py); nothing is mocked.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from tenacity import wait_fixed

from lib.errors import HttpError
from lib.plumbing.http import Rest, get_json, server_says
from lib.plumbing.waits import poll, retry
from lib.stack.process import free_port
from tests.unit import webhooks

FLINK_404 = {"errors": ["org.apache.flink.runtime.rest.NotFoundException: Job 00ff not found\n"
                        "\tat org.apache.flink.runtime.rest.handler.job.AbstractExecutionGraphHandler"
                        "\n\tat java.base/java.lang.Thread.run(Thread.java:840)"]}


def answering(status: str, body: Any) -> webhooks.Behaviour:
    def behaviour(conn: socket.socket, received: list[dict[str, Any]]) -> None:
        webhooks.read_request(conn)
        conn.sendall(webhooks.answer(status, body if isinstance(body, bytes) else json.dumps(body).encode()))
    return behaviour


@pytest.mark.parametrize(("body", "said"), [
    (json.dumps(FLINK_404), "org.apache.flink.runtime.rest.NotFoundException: Job 00ff not found "
                            "\tat org.apache.flink.runtime.rest.handler.job.AbstractExecutionGraphHandler"),
    (json.dumps({"errors": ["Not found: /jobs/x", "second"]}), "Not found: /jobs/x | second"),
    (json.dumps({"error": {"message": "Table does not exist: bronze.x", "type": "NoSuchTableException",
                           "code": 404}}), "NoSuchTableException: Table does not exist: bronze.x"),
    (json.dumps({"detail": "Not Found"}), "Not Found"),
    (json.dumps({"error": "input 'abc' is not an integer"}), "input 'abc' is not an integer"),
    ("<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>"),
    ("[1, 2]", "[1, 2]"),
    ("", "(no body)"),
], ids=["flink-trace", "flink-list", "iceberg-catalog", "fastapi", "service", "html", "json-not-an-object", "empty"])
def test_what_the_server_said_is_read_from_each_servers_shape(body: str, said: str) -> None:
    assert server_says(body) == said


def test_an_error_answer_becomes_an_http_error_with_the_status_and_the_servers_words() -> None:
    with webhooks.webhook(answering("404 Not Found", FLINK_404)) as (url, _), Rest(url) as rest, \
            pytest.raises(HttpError) as caught:
        rest.call("GET", "/jobs/00ff")
    assert caught.value.status == 404
    assert "GET " in str(caught.value) and "/jobs/00ff answered 404 Not Found: " in str(caught.value)
    assert "Job 00ff not found" in str(caught.value) and "Thread.java" not in str(caught.value)


def test_a_good_answer_is_its_json() -> None:
    with webhooks.webhook(answering("200 OK", {"state": "RUNNING"})) as (url, _):
        assert get_json(url) == {"state": "RUNNING"}


def test_nothing_listening_and_not_json_are_http_errors_too() -> None:
    with pytest.raises(HttpError, match=r"no answer .*ConnectError") as refused:
        get_json(f"http://127.0.0.1:{free_port()}/overview")
    assert refused.value.status is None
    with webhooks.webhook(answering("200 OK", b"<html>ok</html>")) as (url, _), \
            pytest.raises(HttpError, match=r"something other than JSON: '<html>ok</html>'"):
        get_json(url)


def test_a_poll_returns_the_first_answer_that_holds() -> None:
    answers = iter(range(100))
    assert poll(lambda: next(answers), timeout_s=5, every_s=0.001, until=lambda n: n >= 3,
                timed_out=lambda n: AssertionError(n)) == 3


def test_a_poll_that_runs_out_raises_the_callers_error_built_from_the_last_answer() -> None:
    asked: list[float] = []
    began = time.monotonic()
    with pytest.raises(TimeoutError, match=r"still 'CREATED' after \d+ asks"):
        poll(lambda: asked.append(time.monotonic()) or "CREATED", timeout_s=0.3, every_s=0.05,
             until=lambda state: state == "RUNNING",
             timed_out=lambda state: TimeoutError(f"still {state!r} after {len(asked)} asks"))
    assert 0.3 <= time.monotonic() - began < 1.0 and len(asked) >= 3


def test_an_error_while_polling_ends_the_wait_at_once() -> None:
    began = time.monotonic()
    with pytest.raises(KeyError):
        poll(lambda: {}["state"], timeout_s=10, timed_out=lambda _: AssertionError("waited"))
    assert time.monotonic() - began < 1.0


def test_a_retry_gives_up_with_the_last_accepted_error_and_passes_any_other_at_once() -> None:
    tries: list[int] = []

    def flaky() -> str:
        tries.append(1)
        raise ConnectionError(f"try {len(tries)}")

    with pytest.raises(RuntimeError, match="gave up after try 3") as caught:
        retry(flaky, attempts=3, wait=wait_fixed(0.01), when=lambda e: isinstance(e, ConnectionError),
              gave_up=lambda e: RuntimeError(f"gave up after {e}"))
    assert len(tries) == 3 and isinstance(caught.value.__cause__, ConnectionError)
    tries.clear()
    with pytest.raises(ConnectionError):
        retry(flaky, attempts=3, wait=wait_fixed(0.01), when=lambda e: isinstance(e, ValueError),
              gave_up=lambda e: RuntimeError(e))
    assert len(tries) == 1
    outcomes = iter([ConnectionError("first"), "second"])

    def once_flaky() -> str:
        found = next(outcomes)
        if isinstance(found, Exception):
            raise found
        return found

    assert retry(once_flaky, attempts=3, wait=wait_fixed(0.01), when=lambda e: isinstance(e, ConnectionError),
                 gave_up=lambda e: RuntimeError(e)) == "second"
