"""The event rules are total: whatever bytes reach the topic, Bronze's rule names an event or one of the
documented dead-letter reasons, and Silver's names a valid event or one of the documented reject codes.
Never an exception: inside a Spark or Flink UDF one would fail every run on the same record.

Property-based (hypothesis) over arbitrary bytes and arbitrary JSON trees: deep, wide, huge numbers,
NaN and infinities, lone surrogates, duplicate keys. The same rule runs in Bronze's pandas UDF (the
function tested here through pandas); the Flink job's port of it to the JVM is held to this one in
tests/integration/test_event_rule_jvm.py.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.contract.events import (
    MALFORMED_REASONS,
    MAX_DEPTH,
    MAX_NUMBER_CHARS,
    REJECT_REASONS,
    handle_request,
    parse_record,
    validation_reason,
)
from lib.medallion.udfs import _malformed, _validation

PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Any code point, lone surrogates included (hypothesis leaves them out unless told).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=30)
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | ANY_TEXT | st.integers(1, 6000).map(lambda n: int("7" * min(n, 4000))))
TREES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(ANY_TEXT, inner, max_size=5),
                     max_leaves=40)


def _documented_dead_letter(reason: str) -> bool:
    return any(reason == known or reason.startswith(known + ":") for known in MALFORMED_REASONS)


def _documented_reject(reason: str) -> bool:
    return reason.split(":", 1)[0] in REJECT_REASONS


def _dumps(doc: Any) -> bytes:
    """JSON as a careless producer writes it: NaN and Infinity allowed, surrogates escaped."""
    return json.dumps(doc, allow_nan=True).encode()


def _nested(depth: int, kind: str) -> bytes:
    opened = {"list": "[" * depth, "object": '{"a":' * depth}[kind]
    closed = {"list": "]" * depth, "object": "}" * depth}[kind]
    return ('{"event_id": "deep", "x": ' + opened + "1" + closed + "}").encode()


def _check_bronze_then_silver(value: bytes) -> None:
    doc, reason = parse_record(value)
    assert (doc is None) == (reason is not None)
    if reason is not None:
        assert _documented_dead_letter(reason), reason
        reason.encode("utf-8")  # a reason is always writable as a Spark or Flink string
        return
    rejected = validation_reason(value.decode("utf-8"))
    assert rejected is None or _documented_reject(rejected), rejected
    assert rejected is None or not rejected.startswith("unparsable"), "Bronze kept what Silver cannot parse"


@PROPERTIES
@given(st.binary(max_size=300))
def test_any_bytes_are_an_event_or_a_documented_dead_letter(value: bytes) -> None:
    _check_bronze_then_silver(value)


@PROPERTIES
@given(TREES)
def test_any_json_tree_is_an_event_or_a_documented_dead_letter(doc: Any) -> None:
    _check_bronze_then_silver(_dumps(doc))
    _check_bronze_then_silver(_dumps({"event_id": "e-1", "tree": doc}))


@PROPERTIES
@given(st.fixed_dictionaries({}, optional={name: TREES for name in (
    "event_id", "event_time", "user_id", "operation", "input", "output", "success", "error", "latency_ms",
    "schema_version", "client")}), st.sampled_from(["e-1", None]))
def test_any_event_is_valid_or_a_documented_reject(fields: dict, event_id: str | None) -> None:
    good = handle_request("to_roman", "1994", "alice", event_id="e-1").as_dict()
    doc = {**good, **fields, **({"event_id": event_id} if event_id else {})}
    _check_bronze_then_silver(_dumps(doc))


@PROPERTIES
@given(st.integers(1, 3 * MAX_DEPTH), st.sampled_from(["list", "object"]))
def test_nesting_beyond_the_bound_is_too_deep_and_within_it_an_event(depth: int, kind: str) -> None:
    _, reason = parse_record(_nested(depth, kind))
    assert reason == (None if depth < MAX_DEPTH else f"too deep: more than {MAX_DEPTH} levels of nesting")


def test_the_poison_the_parser_cannot_hold_is_named_not_raised() -> None:
    huge = "9" * 5000
    assert parse_record(_nested(100_000, "list"))[1].startswith("too deep")
    assert parse_record(b'{"event_id": "x", "n": ' + huge.encode() + b"}")[1] == \
        f"number too long: 5000 characters, at most {MAX_NUMBER_CHARS}"
    assert parse_record(b'{"event_id": "x", "n": 1.' + huge.encode() + b"}")[1].startswith("number too long")
    assert parse_record(b'{"event_id": "x", "latency_ms": NaN}')[1] == "not JSON: NaN is not a JSON value"
    assert parse_record(b'{"event_id": "x", "latency_ms": -Infinity}')[1].startswith("not JSON")
    assert parse_record(b'{"event_id": "a", "event_id": "b"}')[1] == \
        "duplicate key: 'event_id' appears more than once"
    assert parse_record(b'{"event_id": "\\ud800"}')[1] == "missing or unusable event_id"
    event = handle_request("to_roman", "12", "alice", event_id="e-1").as_dict()
    assert validation_reason(json.dumps({**event, "input": huge, "output": "XII"})).startswith("wrong_output")
    # valid JSON whose float is inf (only the field's own text replaced: the event_time may hold "1.5" too)
    overflowing = json.dumps({**event, "latency_ms": 1.5}).replace('"latency_ms": 1.5', '"latency_ms": 1e400')
    assert validation_reason(overflowing).startswith("bad_latency")
    failed = handle_request("to_roman", huge, "alice", event_id="e-2")
    assert not failed.success and "out of range" in failed.error and validation_reason(failed.to_json()) is None


#: A corpus both engines' UDFs classify: each poison kind, and random bytes and trees from a fixed seed.
def _corpus() -> list[bytes | None]:
    rng = random.Random(24)
    valid = handle_request("to_roman", "1994", "alice", event_id="e-1").to_json()
    poison = [None, b"", b"\xff\xfe", b"[]", b'"text"', valid, _nested(100_000, "list"), _nested(3, "object"),
              b'{"event_id": "x", "n": ' + b"1" * 5000 + b"}", b'{"event_id": "x", "n": NaN}',
              b'{"event_id": "a", "event_id": "b"}', b'{"event_id": "\\udfff"}', b'{"event_id": "  "}']
    noise = [bytes(rng.randrange(256) for _ in range(rng.randrange(40))) for _ in range(200)]
    mutated = [valid[:cut] + bytes([rng.randrange(256)]) + valid[cut + 1:]
               for cut in (rng.randrange(len(valid)) for _ in range(200))]
    return poison + noise + mutated


def test_the_spark_udf_applies_the_rule_record_by_record() -> None:
    corpus = _corpus()
    reasons = _malformed(pd.Series(corpus, dtype=object)).tolist()
    assert reasons == [parse_record(v)[1] for v in corpus]
    events = [v.decode() for v, r in zip(corpus, reasons, strict=True) if r is None]
    assert _validation(pd.Series(events, dtype=object)).tolist() == [validation_reason(e) for e in events]

