"""The event contract: one JSON object per Kafka record, keyed by user_id, schema_version 1 or 2.

Version 2 adds `client` (which app sent the request: web, ios, android, cli...), a compatible
evolution: every v1 field keeps its name, type and meaning, so a consumer that reads only those
reads both versions alike, and a topic holds both while the producers roll over. Which version a
producer writes is a switch (EVENT_SCHEMA_VERSION for the service, TrafficShape.v2_share for the
generator); Silver keeps `client` once its table has the column (lib.medallion.migration).

Every conversion request becomes an event, failed ones included (success=false with the error).
A record that is not a JSON object, or has no usable event_id, is *malformed*: it cannot be
deduplicated, so it goes to the dead letter table. Everything else is an event, even one with a
wrong field type; Silver's validation rejects those with a reason.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lib.contract.roman import convert
from lib.errors import RomanError

SCHEMA_VERSION = 1
#: Every version a consumer accepts; the newest is what a producer switched to v2 writes.
SCHEMA_VERSIONS = (1, 2)
OPERATIONS = ("to_roman", "from_roman")
FIELDS = (
    "event_id", "event_time", "user_id", "operation", "input", "output",
    "success", "error", "latency_ms", "schema_version",
)
#: The fields each version adds to the one before it.
ADDED_FIELDS = {2: ("client",)}
#: The clients the generator's v2 traffic comes from (the service takes any name from X-Client).
CLIENTS = ("web", "ios", "android", "cli")
#: What the service writes as the client of a v2 event whose request named none.
UNNAMED_CLIENT = "unknown"


def fields(version: int) -> tuple[str, ...]:
    """The fields of an event of that schema version, in order."""
    if version not in SCHEMA_VERSIONS:
        raise ValueError(f"schema_version={version!r}: use one of {', '.join(map(str, SCHEMA_VERSIONS))}")
    return FIELDS + tuple(name for v in SCHEMA_VERSIONS if v <= version for name in ADDED_FIELDS.get(v, ()))


@dataclass(frozen=True)
class ConversionEvent:
    event_id: str
    event_time: str
    user_id: str
    operation: str
    input: str
    output: str | None
    success: bool
    error: str | None
    latency_ms: float
    schema_version: int = SCHEMA_VERSION
    client: str | None = None  # schema v2

    def as_dict(self) -> dict[str, Any]:
        """The fields of its schema version, in order (dataclasses.asdict deep-copies, which is slow
        for 100k events); a v1 event has no `client` key at all."""
        return {name: getattr(self, name) for name in fields(self.schema_version)}

    def to_json(self) -> bytes:
        """The Kafka record value: compact JSON, keys in schema order."""
        return json.dumps(self.as_dict(), separators=(",", ":")).encode()

    @property
    def key(self) -> bytes:
        return self.user_id.encode()


def iso(ts: datetime) -> str:
    """ISO-8601 with an explicit offset and millisecond precision, as the schema wants."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds")


def handle_request(operation: str, text: str, user_id: str, event_id: str | None = None,
                   event_time: datetime | None = None, schema_version: int = SCHEMA_VERSION,
                   client: str | None = None) -> ConversionEvent:
    """Answer one request and describe it as an event (the service and the generator share this).

    A v2 event always names its client (UNNAMED_CLIENT when the request did not say)."""
    fields(schema_version)  # refuses a version this code cannot write
    began = time.perf_counter()
    try:
        output, error = convert(operation, text), None
    except RomanError as exc:
        output, error = None, str(exc)
    latency = round((time.perf_counter() - began) * 1000, 3)
    return ConversionEvent(
        event_id=event_id or str(uuid.uuid4()),
        event_time=iso(event_time or datetime.now(UTC)),
        user_id=user_id,
        operation=operation,
        input=text,
        output=output,
        success=error is None,
        error=error,
        latency_ms=latency,
        schema_version=schema_version,
        client=(client or UNNAMED_CLIENT) if schema_version >= 2 else None,
    )


#: Bounds on what the parser holds. Beyond them a record is malformed with its own reason, never an
#: exception: Python's json raises RecursionError on deep nesting and ValueError past 4,300 digits, and
#: the JVM's JSON readers (Spark's get_json_object, Flink's JSON_VALUE) stop at 1,000 levels and 1,000
#: characters a number. Events are flat and their numbers short, so these are far above any real event
#: and far below every parser's own limit: what this rule accepts, every reader downstream can read.
MAX_DEPTH = 64
MAX_NUMBER_CHARS = 100

#: Every reason a record is a dead letter: each reason is one of these, alone or followed by ": <detail>".
MALFORMED_REASONS = (
    "empty record (null value)",
    "not UTF-8 text",
    "not JSON",  # a syntax error, or NaN/Infinity (JavaScript's constants, not JSON's)
    "too deep",  # more than MAX_DEPTH levels of arrays and objects
    "number too long",  # a number of more than MAX_NUMBER_CHARS characters
    "duplicate key",  # an object names a key twice: readers disagree on which value wins
    "not a JSON object",
    "missing or unusable event_id",
)


class _Malformed(ValueError):
    """Raised inside the parser's hooks; parse_record turns it into the record's reason."""


def _bounded_number(text: str) -> str:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Malformed(f"number too long: {len(text)} characters, at most {MAX_NUMBER_CHARS}")
    return text


def _int(text: str) -> int:
    return int(_bounded_number(text))


def _float(text: str) -> float:
    return float(_bounded_number(text))


def _constant(name: str) -> float:
    raise _Malformed(f"not JSON: {name} is not a JSON value")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        twice = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise _Malformed(f"duplicate key: {ascii(twice)[:60]} appears more than once")
    return doc


def _depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _unicode(value: str) -> bool:
    """Valid Unicode: a lone surrogate (a JSON escape such as \\ud800) cannot be written as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _usable_id(value: Any) -> bool:
    """A non-blank string of valid Unicode."""
    return isinstance(value, str) and bool(value.strip()) and _unicode(value)


#: Built once: json.loads with hooks builds a decoder per call, which costs more than the parse.
_DECODER = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant, object_pairs_hook=_object)


def loads(text: str) -> Any:
    """Parse JSON text within the contract's bounds; raises ValueError whose message is a
    MALFORMED_REASONS reason. Bronze, the stream and Silver parse every record through this."""
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:  # counting is cheap
        raise _Malformed(f"too deep: more than {MAX_DEPTH} levels of nesting")
    try:
        return _DECODER.decode(text)
    except _Malformed:
        raise
    except json.JSONDecodeError as exc:
        raise _Malformed(f"not JSON: {exc.__class__.__name__}") from None
    except RecursionError:  # the depth count above makes this unreachable; kept as the last guard
        raise _Malformed(f"too deep: more than {MAX_DEPTH} levels of nesting") from None


def malformed_reason(value: bytes | None) -> str | None:
    """Why a raw record is malformed (dead letter), or None when it is an event with an event_id."""
    return parse_record(value)[1]


def parse_record(value: bytes | None) -> tuple[dict[str, Any] | None, str | None]:
    """(the event, None) for a record that is one, else (None, why it is malformed): the rule of
    malformed_reason, for a reader that wants the event too without parsing it twice.

    Total: any bytes give an event or a reason from MALFORMED_REASONS, never an exception (an
    exception inside Bronze's or the stream's UDF would fail every run on the same record)."""
    if value is None:
        return None, "empty record (null value)"
    try:
        text = value.decode("utf-8")  # the contract is UTF-8 JSON (json.loads would also take UTF-16)
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    return parse_event(text)


def parse_event(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """parse_record's rule for a record already decoded to text (a Bronze payload)."""
    try:
        doc: Any = loads(text)
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(doc, dict):
        return None, f"not a JSON object: {type(doc).__name__}"
    if not _usable_id(doc.get("event_id")):
        return None, "missing or unusable event_id"
    return doc, None


def as_text(value: bytes | None) -> str | None:
    """A raw record as text a reader can always display: UTF-8, with U+FFFD for bytes that are not.

    Dead letters keep the raw bytes beside this rendering: the bytes are the evidence, lossless;
    the text is what a table viewer can show (a string column must hold valid UTF-8).
    """
    return None if value is None else value.decode("utf-8", errors="replace")


#: Every reason Silver rejects an event for: each reject's reason starts with one of these codes.
REJECT_REASONS = (
    "unparsable",  # the payload is not an event by the malformed rule (Bronze keeps none such)
    "missing_field", "bad_event_time", "bad_operation", "bad_success", "bad_latency", "bad_schema_version",
    "inconsistent", "wrong_output", "bad_text",
)


def _as_str(payload: str | bytes) -> str:
    return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload


def validation_reason(payload: str | bytes) -> str | None:
    """Why an event (not malformed: it has an event_id) fails Silver's validation, or None when valid.

    Reasons start with a stable code from REJECT_REASONS ("wrong_output: ...") that tables can group by.

    Checks the contract field by field, and that a successful answer really is the conversion of
    its input (lib/contract/roman.py), so a service bug that answers wrongly is caught, not aggregated.
    Total like parse_record: whatever the payload holds, a reason or None, never an exception.
    """
    doc, malformed = parse_record(payload) if isinstance(payload, bytes) else parse_event(payload)
    if doc is None:
        return f"unparsable: {malformed}"
    # In this order: each check may rely on what the ones before it established.
    return (_fields_reason(doc) or _time_reason(doc["event_time"]) or _text_reason(doc, payload)
            or _kind_reason(doc) or _answer_reason(doc))


def _fields_reason(doc: dict[str, Any]) -> str | None:
    for name in ("event_time", "user_id", "operation", "input"):
        if not isinstance(doc.get(name), str) or (name != "input" and not doc[name].strip()):
            return f"missing_field: {name} is missing or not a string"
    return None


def _time_reason(text: str) -> str | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return f"bad_event_time: {text[:40]!r} is not ISO-8601"
    if when.tzinfo is None:
        return "bad_event_time: no UTC offset"
    try:
        when.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-01:00 is in year 10000 in UTC, which no table can hold
        return f"bad_event_time: {text[:40]!r} is out of range in UTC"
    return None


def _text_reason(doc: dict[str, Any], payload: str | bytes) -> str | None:
    if "\\u" in _as_str(payload):  # an escape: a lone surrogate is possible, and no engine can write it
        broken = next((k for k, v in doc.items() if isinstance(v, str) and not _unicode(v)), None)
        if broken is not None:
            return f"bad_text: {ascii(broken)[:40]} holds a lone surrogate (not valid Unicode)"
    return None


def _kind_reason(doc: dict[str, Any]) -> str | None:
    """The operation, success, latency and schema version, and the fields that version adds."""
    if doc["operation"] not in OPERATIONS:
        return f"bad_operation: {str(doc['operation'])[:40]!r} is not one of {', '.join(OPERATIONS)}"
    if not isinstance(doc.get("success"), bool):
        return "bad_success: success is missing or not a boolean"
    latency = doc.get("latency_ms")
    if isinstance(latency, bool) or not isinstance(latency, int | float) or not 0 <= latency < math.inf:
        return "bad_latency: latency_ms is missing, negative or not a number (a finite one)"
    version = doc.get("schema_version")
    if type(version) is not int or version not in SCHEMA_VERSIONS:  # not 1.0, not true
        return f"bad_schema_version: {str(version)[:20]!r} is not one of {', '.join(map(str, SCHEMA_VERSIONS))}"
    for name in (name for v in SCHEMA_VERSIONS if v <= version for name in ADDED_FIELDS.get(v, ())):
        if not isinstance(doc.get(name), str) or not doc[name].strip():
            return f"missing_field: {name} is missing or not a string (schema_version {version} has it)"
    return None


def _answer_reason(doc: dict[str, Any]) -> str | None:
    """A successful event's output is its input's conversion; a failed one has an error and no output."""
    output, error = doc.get("output"), doc.get("error")
    if doc["success"]:
        if not isinstance(output, str) or error is not None:
            return "inconsistent: a successful event needs an output and no error"
        try:
            expected = convert(doc["operation"], doc["input"])
        except RomanError:
            return f"wrong_output: success=true but {doc['input'][:40]!r} has no {doc['operation']} answer"
        if output != expected:
            return f"wrong_output: {output[:40]!r} is not {doc['operation']}({doc['input'][:40]!r}) = {expected!r}"
    elif output is not None or not isinstance(error, str):
        return "inconsistent: a failed event needs an error and no output"
    return None
