"""One record of each kind that once stalled a layer or that a parser cannot hold, with the reason each
must land with: a dead letter in Bronze (and the stream's dead letters), or a Silver reject."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from lib.contract.events import MAX_DEPTH, MAX_NUMBER_CHARS, handle_request


def _event(**changes: object) -> bytes:
    doc = handle_request("to_roman", "12", "poison", event_id=f"poison-{uuid.uuid4()}",
                         event_time=datetime.now(UTC)).as_dict()
    doc.update(changes)
    return json.dumps(doc).encode()


def _raw(text: str) -> bytes:
    return text.encode()


def poison() -> list[tuple[bytes, str, str]]:
    """(value, where it lands: dead_letter or rejected, its reason's start), fresh event_ids each call."""
    digits = "9" * 5000
    event = _event().decode()
    return [
        (b'{"event_id": "\xff\xfe\xfd", "user_id": "latin-1 phone"}', "dead_letter", "not UTF-8 text"),
        (_raw('{"event_id": "deep", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"), "dead_letter",
         f"too deep: more than {MAX_DEPTH} levels"),
        (_raw(event[:-1] + f', "n": {digits}}}'), "dead_letter",
         f"number too long: 5000 characters, at most {MAX_NUMBER_CHARS}"),
        (_raw(event.replace('"latency_ms": ', '"latency_ms": NaN, "x": ')), "dead_letter",
         "not JSON: NaN is not a JSON value"),
        (_raw(event[:-1] + ', "event_id": "another"}'), "dead_letter", "duplicate key: 'event_id'"),
        (_raw('{"event_id": "\\ud800", "user_id": "surrogate"}'), "dead_letter", "missing or unusable event_id"),
        (_event(input=digits, output="XII"), "rejected", "wrong_output"),
        (_raw(_event().decode().replace('"latency_ms": ', '"latency_ms": 1e400, "x": ')), "rejected", "bad_latency"),
        (_event(user_id="broken \ud800 text"), "rejected", "bad_text: 'user_id'"),
        (_event(event_time="9999-12-31T23:59:59-01:00"), "rejected", "bad_event_time"),
    ]
