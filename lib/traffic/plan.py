"""A reproducible batch of traffic, with the trouble a real stream has, on purpose and counted.

`plan(events=N, seed=S, ...)` makes N conversion requests from many users with skewed activity
(a few users send most requests), a share of failed conversions, and then adds, on purpose:

- duplicate deliveries: the same event re-sent later, some to another partition (a producer
  retry after a timeout, a replay by a second producer), which Bronze must deduplicate;
- late events: event_time hours or days in the past (a phone that was offline);
- invalid events: a usable event_id but a wrong type or value (Silver rejects them);
- malformed records: not JSON, not an object, no usable event_id (Bronze's dead letters).

It also mixes the two event schema versions, as a topic does while the service rolls over to v2:
a share of the requests (`v2_share`) is answered by instances that already write v2, which names
the client app. The versions come from a random stream of their own, so a seed's other choices
(users, inputs, times, event_ids) do not depend on the share.

Each record knows its kind, so `lib.traffic.produce` can count what the broker acknowledged in
a Manifest that later notebooks check their counts against. The same seed gives the same records.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from kafka.partitioner.default import murmur2

from lib.contract.events import CLIENTS, handle_request
from lib.contract.roman import to_roman

BAD_INPUTS = {
    "to_roman": ["0", "4000", "-7", "abc", "", "3.14", "99999", "IV"],
    "from_roman": ["IIII", "VX", "MMMM", "abc", "", "IC", "XXXX", "iv", "MCMXCIVI"],
}
MALFORMED_KINDS = ("not_json", "not_object", "no_event_id", "bad_event_id")
INVALID_KINDS = ("bad_operation", "bad_event_time", "bad_latency", "wrong_output")


@dataclass(frozen=True)
class TrafficShape:
    """How the generated traffic looks; the defaults are what the notebooks teach with."""

    users: int = 40
    span_minutes: int = 60
    failure_share: float = 0.12
    duplicate_share: float = 0.05
    cross_partition_share: float = 0.4  # of the duplicates
    late_share: float = 0.06
    late_hours: tuple[float, float] = (2.0, 72.0)
    invalid_share: float = 0.01
    malformed_share: float = 0.01
    disorder_seconds: float = 20.0  # on-time events arrive up to this much out of order
    v2_share: float = 0.3  # of the requests: answered by instances already on schema v2
    client_weights: tuple[float, ...] = (50, 25, 20, 5)  # of lib.contract.events.CLIENTS, in v2 events


@dataclass
class Record:
    """One record to send: value bytes, key, partition, and what kind of record it is."""

    key: bytes
    value: bytes
    partition: int
    kind: str  # event | duplicate | invalid | malformed:<kind>
    event_id: str | None = None
    late: bool = False
    success: bool | None = None
    operation: str | None = None
    cross_partition: bool = False
    position: float = 0.0  # send order
    schema_version: int = 1


def _uuid(rng: random.Random, salt: int = 0) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128) ^ salt, version=4))


def _partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), so the plan knows each record's partition."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def plan(events: int, seed: int, start: datetime, partitions: int, shape: TrafficShape | None = None,
         salt: int = 0) -> list[Record]:
    """The records of one batch, in send order; deterministic for a given seed and start.

    `salt` gives the same batch (same kinds, counts, users and times) with other event_ids: a drill
    repeated on a stack that already holds the seed's events still lands every one of them."""
    if isinstance(events, bool) or not isinstance(events, int) or events < 1:
        raise ValueError(f"events={events!r}: give a positive whole number of requests, e.g. --events 1000")
    shape = shape or TrafficShape()
    rng = random.Random(seed)
    versions = random.Random(seed * 7919 + 2)
    users = [f"user-{i:04d}" for i in range(1, shape.users + 1)]
    # Zipf-like activity: user-0001 sends most, the tail sends a little.
    cum_weights = list(itertools.accumulate(1 / (i**1.1) for i in range(1, shape.users + 1)))
    step = timedelta(minutes=shape.span_minutes) / events
    records: list[Record] = []
    for i in range(events):
        user = rng.choices(users, cum_weights=cum_weights)[0]
        operation = rng.choice(("to_roman", "from_roman"))
        if rng.random() < shape.failure_share:
            text = rng.choice(BAD_INPUTS[operation])
        else:
            n = rng.randint(1, 3999)
            text = str(n) if operation == "to_roman" else to_roman(n)
        when = start + step * i - timedelta(seconds=rng.uniform(0, shape.disorder_seconds))
        late = rng.random() < shape.late_share
        if late:
            when -= timedelta(hours=rng.uniform(*shape.late_hours))
        v2 = versions.random() < shape.v2_share
        client = versions.choices(CLIENTS, weights=shape.client_weights)[0] if v2 else None
        event = handle_request(operation, text, user, event_id=_uuid(rng, salt), event_time=when,
                               schema_version=2 if v2 else 1, client=client)
        event = replace(event, latency_ms=round(rng.lognormvariate(0.0, 0.6), 3))
        records.append(Record(event.key, event.to_json(), _partition_for(event.key, partitions), "event",
                              event.event_id, late, event.success, operation, position=float(i),
                              schema_version=event.schema_version))
    _add_duplicates(records, rng, shape, partitions)
    _add_invalid(records, rng, shape, users, start, partitions, salt)
    _add_malformed(records, rng, shape, users, partitions, salt)
    return _in_send_order(records)


def _insert_later(records: list[Record], rng: random.Random, after: int, record: Record) -> None:
    """Queue a record to be sent a little after position `after` (placed by `_in_send_order`)."""
    record.position = after + 0.5 + rng.randint(0, 50)
    records.append(record)


def _in_send_order(records: list[Record]) -> list[Record]:
    return sorted(records, key=lambda r: r.position)


def _add_duplicates(records: list[Record], rng: random.Random, shape: TrafficShape, partitions: int) -> None:
    originals = [i for i, r in enumerate(records) if r.kind == "event"]
    count = round(len(originals) * shape.duplicate_share)
    for index in sorted(rng.sample(originals, count)):
        original = records[index]
        partition = original.partition
        if partitions > 1 and rng.random() < shape.cross_partition_share:
            partition = (partition + rng.randint(1, partitions - 1)) % partitions
        dup = replace(original, partition=partition, kind="duplicate",
                      cross_partition=partition != original.partition)
        _insert_later(records, rng, index, dup)


def _add_invalid(records: list[Record], rng: random.Random, shape: TrafficShape, users: list[str],
                 start: datetime, partitions: int, salt: int) -> None:
    count = max(1, round(sum(r.kind == "event" for r in records) * shape.invalid_share))
    for j in range(count):
        kind = INVALID_KINDS[j % len(INVALID_KINDS)]
        user = rng.choice(users)
        event = handle_request("to_roman", str(rng.randint(1, 3999)), user, event_id=_uuid(rng, salt),
                               event_time=start + timedelta(seconds=rng.uniform(0, 60)))
        doc = replace(event, latency_ms=1.0).as_dict()
        if kind == "bad_operation":
            doc["operation"] = "to_greek"
        elif kind == "bad_event_time":
            doc["event_time"] = "yesterday at noon"
        elif kind == "bad_latency":
            doc["latency_ms"] = "fast"
        else:  # claims success with an answer that is not the conversion of its input
            doc["output"] = to_roman(int(doc["input"]) % 3999 + 1)
        value = json.dumps(doc, separators=(",", ":")).encode()
        record = Record(user.encode(), value, _partition_for(user.encode(), partitions), "invalid",
                        event.event_id, operation=kind)
        _insert_later(records, rng, rng.randrange(len(records)), record)


def _add_malformed(records: list[Record], rng: random.Random, shape: TrafficShape, users: list[str],
                   partitions: int, salt: int) -> None:
    count = max(len(MALFORMED_KINDS), round(sum(r.kind == "event" for r in records) * shape.malformed_share))
    for j in range(count):
        kind = MALFORMED_KINDS[j % len(MALFORMED_KINDS)]
        user = rng.choice(users)
        value = {
            "not_json": b'{"event_id": "' + _uuid(rng, salt).encode() + b'", "user_id": trunc',
            "not_object": json.dumps(["to_roman", rng.randint(1, 3999)]).encode(),
            "no_event_id": json.dumps({"user_id": user, "operation": "to_roman", "input": "12"}).encode(),
            "bad_event_id": json.dumps({"event_id": rng.randint(1, 10**6), "user_id": user}).encode(),
        }[kind]
        record = Record(user.encode(), value, _partition_for(user.encode(), partitions), f"malformed:{kind}")
        _insert_later(records, rng, rng.randrange(len(records)), record)
