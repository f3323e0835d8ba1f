"""The event contract's two rules, case by case: what is malformed (a dead letter) and what Silver rejects."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from lib.contract.events import FIELDS, as_text, fields, handle_request, malformed_reason, validation_reason

WHEN = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _valid(**changes: object) -> str:
    doc = handle_request("to_roman", "1994", "alice", event_id="e-1", event_time=WHEN).as_dict()
    doc.update(changes)
    return json.dumps(doc)


def _v2(**changes: object) -> str:
    doc = handle_request("to_roman", "1994", "alice", event_id="e-1", event_time=WHEN, schema_version=2,
                         client="ios").as_dict()
    doc.update(changes)
    return json.dumps(doc)


def _without(name: str, payload: str | None = None) -> str:
    doc = json.loads(payload or _valid())
    del doc[name]
    return json.dumps(doc)


def test_a_real_answer_is_valid_success_or_failure() -> None:
    assert validation_reason(_valid()) is None
    failed = handle_request("from_roman", "IIII", "bob", event_id="e-2", event_time=WHEN).to_json()
    assert validation_reason(failed) is None
    assert validation_reason(_valid().encode()) is None  # bytes as Kafka hands them over


def test_both_schema_versions_are_valid_and_v2_only_adds_client() -> None:
    v1, v2 = json.loads(_valid()), json.loads(_v2())
    assert tuple(v1) == FIELDS == fields(1) and "client" not in v1
    assert tuple(v2) == (*FIELDS, "client") == fields(2)
    assert {k: v for k, v in v2.items() if k not in ("client", "schema_version", "latency_ms")} == \
        {k: v for k, v in v1.items() if k not in ("schema_version", "latency_ms")}
    assert (v1["schema_version"], v2["schema_version"], v2["client"]) == (1, 2, "ios")
    assert validation_reason(_v2()) is None
    # a v1 event that happens to carry a client is still a valid v1 event (unknown fields are ignored)
    assert validation_reason(_valid(client="web")) is None


def test_a_v2_event_always_names_a_client_and_v3_cannot_be_written() -> None:
    unnamed = handle_request("to_roman", "7", "carol", schema_version=2)
    assert unnamed.client == "unknown" and validation_reason(unnamed.to_json()) is None
    assert handle_request("to_roman", "7", "carol", client="web").as_dict().get("client") is None
    with pytest.raises(ValueError, match="schema_version=3: use one of 1, 2"):
        handle_request("to_roman", "7", "carol", schema_version=3)


@pytest.mark.parametrize(("payload", "code", "detail"), [
    (_without("user_id"), "missing_field", "user_id"),
    (_valid(user_id="  "), "missing_field", "user_id"),
    (_valid(operation=7), "missing_field", "operation"),
    (_without("input"), "missing_field", "input"),
    (_valid(event_time="yesterday at noon"), "bad_event_time", "'yesterday at noon' is not ISO-8601"),
    (_valid(event_time="2026-11-20T12:00:00"), "bad_event_time", "no UTC offset"),
    (_valid(operation="to_greek"), "bad_operation", "'to_greek' is not one of to_roman, from_roman"),
    (_valid(success="yes"), "bad_success", "not a boolean"),
    (_without("success"), "bad_success", "missing"),
    (_valid(latency_ms="fast"), "bad_latency", "not a number"),
    (_valid(latency_ms=-1), "bad_latency", "negative"),
    (_valid(latency_ms=True), "bad_latency", "not a number"),
    (_valid(schema_version=3), "bad_schema_version", "'3' is not one of 1, 2"),
    (_v2(schema_version=3), "bad_schema_version", "'3' is not one of 1, 2"),
    (_valid(schema_version=1.0), "bad_schema_version", "'1.0' is not one of 1, 2"),
    (_valid(schema_version="1"), "bad_schema_version", "'1' is not one of 1, 2"),
    (_valid(schema_version=True), "bad_schema_version", "'True' is not one of 1, 2"),
    (_without("schema_version"), "bad_schema_version", "'None' is not one of 1, 2"),
    (_valid(schema_version=2), "missing_field", "client is missing or not a string (schema_version 2 has it)"),
    (_without("client", _v2()), "missing_field", "client is missing"),
    (_v2(client=None), "missing_field", "client"),
    (_v2(client=" "), "missing_field", "client"),
    (_v2(client=7), "missing_field", "client"),
    (_v2(output="MCMXCV"), "wrong_output", "'MCMXCV' is not to_roman('1994') = 'MCMXCIV'"),
    (_valid(output=None), "inconsistent", "a successful event needs an output"),
    (_valid(error="boom"), "inconsistent", "a successful event needs an output and no error"),
    (_valid(output="MCMXCV"), "wrong_output", "'MCMXCV' is not to_roman('1994') = 'MCMXCIV'"),
    (_valid(input="0"), "wrong_output", "success=true but '0' has no to_roman answer"),
    (_valid(success=False), "inconsistent", "a failed event needs an error and no output"),
    (_valid(success=False, output=None, error=None), "inconsistent", "a failed event needs an error"),
])
def test_each_broken_field_has_its_code_and_says_what_is_wrong(payload: str, code: str, detail: str) -> None:
    reason = validation_reason(payload)
    assert reason is not None and reason.startswith(f"{code}: "), reason
    assert detail in reason


@pytest.mark.parametrize(("value", "reason"), [
    (None, "empty record (null value)"),
    (b'{"event_id": "x", "user_id": trunc', "not JSON: JSONDecodeError"),
    (b"{\"event_id\": \"\xc3\x28\"}", "not UTF-8 text"),
    ('{"event_id": "e-16"}'.encode("utf-16"), "not UTF-8 text"),  # JSON, but not in the contract's encoding
    (b'["to_roman", 12]', "not a JSON object: list"),
    (b'{"user_id": "u"}', "missing or unusable event_id"),
    (b'{"event_id": 42}', "missing or unusable event_id"),
    (b'{"event_id": "  "}', "missing or unusable event_id"),
])
def test_malformed_records_are_named(value: bytes | None, reason: str) -> None:
    assert malformed_reason(value) == reason


def test_any_bytes_have_a_text_rendering_and_keep_what_they_can() -> None:
    assert as_text(b"\xc3\x28ok \xe2\x82\xac") == "\ufffd(ok \u20ac"
    assert as_text(None) is None


def test_an_event_with_a_wrong_type_is_not_malformed_but_rejected_later() -> None:
    payload = _valid(latency_ms="fast")
    assert malformed_reason(payload.encode()) is None
    assert validation_reason(payload).startswith("bad_latency")
