"""Reproducible traffic for the events topic, with the trouble a real stream has, on purpose and counted.

`produce(events=N, seed=S)` makes N conversion requests from many users with skewed activity
(a few users send most requests), a share of failed conversions, and then adds, on purpose:

- duplicate deliveries: the same event re-sent later, some to another partition (a producer
  retry after a timeout, a replay by a second producer), which Bronze must deduplicate;
- late events: event_time hours or days in the past (a phone that was offline);
- invalid events: a usable event_id but a wrong type or value (Silver rejects them);
- malformed records: not JSON, not an object, no usable event_id (Bronze's dead letters).

It returns a Manifest of what the broker acknowledged, per kind and per partition, so every
later notebook can check its counts against it. The same seed gives the same records.
"""

from __future__ import annotations

import itertools
import json
import random
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lib.config import settings
from lib.events import handle_request
from lib.roman import to_roman

BAD_INPUTS = {
    "to_roman": ["0", "4000", "-7", "abc", "", "3.14", "99999", "IV"],
    "from_roman": ["IIII", "VX", "MMMM", "abc", "", "IC", "XXXX", "iv", "MCMXCIVI"],
}
MALFORMED_KINDS = ("not_json", "not_object", "no_event_id", "bad_event_id")
INVALID_KINDS = ("bad_operation", "bad_event_time", "bad_latency", "wrong_output")


class ProduceError(RuntimeError):
    """Records could not be delivered; says which servers and how many were acknowledged."""


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


@dataclass
class Manifest:
    """What one `produce` call delivered, as acknowledged by the broker."""

    topic: str
    seed: int
    requests: int = 0  # distinct valid events
    failed_requests: int = 0
    late_events: int = 0
    duplicates: int = 0
    duplicates_cross_partition: int = 0
    invalid_events: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    records: int = 0
    per_partition: dict[int, int] = field(default_factory=dict)
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> [first, next)
    by_operation: dict[str, int] = field(default_factory=dict)
    first_event_time: str = ""
    last_event_time: str = ""
    seconds: float = 0.0
    mode: str = "direct"

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    @property
    def distinct_events(self) -> int:
        """Distinct event_ids: what Bronze keeps (valid requests plus invalid events)."""
        return self.requests + self.invalid_events

    def expected(self) -> dict[str, int]:
        """The counts later layers must reach for this batch alone."""
        return {
            "bronze.conversion_events": self.distinct_events,
            "bronze.dead_letter": self.malformed_total,
            "silver.conversion_events": self.requests,
            "silver.rejected_events": self.invalid_events,
        }

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["malformed_total"] = self.malformed_total
        doc["distinct_events"] = self.distinct_events
        doc["expected"] = self.expected()
        return doc

    def summary_rows(self) -> list[tuple[str, int]]:
        rows = [
            ("requests (distinct valid events)", self.requests),
            ("  of which failed conversions", self.failed_requests),
            ("  of which late (hours/days old)", self.late_events),
            ("duplicate deliveries", self.duplicates),
            ("  of which to another partition", self.duplicates_cross_partition),
            ("invalid events (Silver rejects)", self.invalid_events),
        ]
        rows += [(f"malformed: {k}", v) for k, v in sorted(self.malformed.items())]
        rows += [(f"records in partition {p}", n) for p, n in sorted(self.per_partition.items())]
        rows.append(("records in all", self.records))
        return rows


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), so the plan knows each record's partition."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def plan(events: int, seed: int, start: datetime, partitions: int, shape: TrafficShape | None = None) -> list[Record]:
    """The records of one batch, in send order; deterministic for a given seed and start."""
    if isinstance(events, bool) or not isinstance(events, int) or events < 1:
        raise ValueError(f"events={events!r}: give a positive whole number of requests, e.g. --events 1000")
    shape = shape or TrafficShape()
    rng = random.Random(seed)
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
        event = handle_request(operation, text, user, event_id=_uuid(rng), event_time=when)
        event = replace(event, latency_ms=round(rng.lognormvariate(0.0, 0.6), 3))
        records.append(Record(event.key, event.to_json(), _partition_for(event.key, partitions), "event",
                              event.event_id, late, event.success, operation, position=float(i)))
    _add_duplicates(records, rng, shape, partitions)
    _add_invalid(records, rng, shape, users, start, partitions)
    _add_malformed(records, rng, shape, users, partitions)
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
                 start: datetime, partitions: int) -> None:
    count = max(1, round(sum(r.kind == "event" for r in records) * shape.invalid_share))
    for j in range(count):
        kind = INVALID_KINDS[j % len(INVALID_KINDS)]
        user = rng.choice(users)
        event = handle_request("to_roman", str(rng.randint(1, 3999)), user, event_id=_uuid(rng),
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
                   partitions: int) -> None:
    count = max(len(MALFORMED_KINDS), round(sum(r.kind == "event" for r in records) * shape.malformed_share))
    for j in range(count):
        kind = MALFORMED_KINDS[j % len(MALFORMED_KINDS)]
        user = rng.choice(users)
        value = {
            "not_json": b'{"event_id": "' + _uuid(rng).encode() + b'", "user_id": trunc',
            "not_object": json.dumps(["to_roman", rng.randint(1, 3999)]).encode(),
            "no_event_id": json.dumps({"user_id": user, "operation": "to_roman", "input": "12"}).encode(),
            "bad_event_id": json.dumps({"event_id": rng.randint(1, 10**6), "user_id": user}).encode(),
        }[kind]
        record = Record(user.encode(), value, _partition_for(user.encode(), partitions), f"malformed:{kind}")
        _insert_later(records, rng, rng.randrange(len(records)), record)


def producer_config(bootstrap: str, client_id: str) -> dict[str, Any]:
    """librdkafka settings for every producer of the workbook: acks=all, idempotent, batched."""
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "none",  # every reader (kafka-python included) can read it; the broker is local
        # Java's partitioner (murmur2 of the key), so every client puts a user on the same partition.
        "partitioner": "murmur2_random",
        "message.timeout.ms": 60_000,
        "log_level": 0,  # failures surface as exceptions and delivery reports, not stderr noise
    }


def connect_producer(bootstrap: str, client_id: str, attempts: int = 3, timeout_s: float = 5.0):
    """A producer whose broker answered a metadata request; retries with backoff, then says what failed."""
    from confluent_kafka import KafkaException, Producer

    delay = 1.0
    for attempt in range(1, attempts + 1):
        producer = Producer(producer_config(bootstrap, client_id))
        try:
            producer.list_topics(timeout=timeout_s)
            return producer
        except KafkaException as exc:
            if attempt == attempts:
                raise ProduceError(
                    f"Kafka at {bootstrap} is unreachable ({exc.args[0].str() if exc.args else exc}) after "
                    f"{attempts} attempts; nothing was sent. Start the stack (`make up`) or set "
                    "KAFKA_BOOTSTRAP_SERVERS."
                ) from None
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _via_service(records: list[Record]) -> tuple[list[Record], int]:
    """Send on-time events and their same-partition retries through the HTTP API; return the rest.

    The service stamps event_time itself, so late events, replays to another partition, invalid
    and malformed records cannot come through it: those are produced directly. Returns the
    records still to produce and how many requests the service took.
    """
    import http.client
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import quote

    cfg = settings()
    addr = cfg.service_address
    through = [r for r in records if r.kind in ("event", "duplicate") and not r.late and not r.cross_partition]
    through_ids = {id(r) for r in through}
    rest = [r for r in records if id(r) not in through_ids]
    before = _service_acked()

    def send(chunk: list[Record]) -> int:
        conn = http.client.HTTPConnection(addr.host, addr.port, timeout=30)
        done = 0
        for record in chunk:
            doc = json.loads(record.value)
            route = "to-roman" if doc["operation"] == "to_roman" else "from-roman"
            conn.request("GET", f"/{route}/{quote(doc['input'], safe='')}",
                         headers={"X-User-Id": doc["user_id"], "X-Request-Id": doc["event_id"]})
            resp = conn.getresponse()
            resp.read()
            if resp.status not in (200, 400):
                raise ProduceError(f"the service answered {resp.status} for {route}/{doc['input']!r}")
            done += 1
        conn.close()
        return done

    workers = 4
    chunks = [through[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        sent = sum(pool.map(send, chunks))
    deadline = time.monotonic() + 60
    while _service_acked() - before < sent and time.monotonic() < deadline:
        time.sleep(0.1)
    acked = _service_acked() - before
    if acked < sent:
        raise ProduceError(f"the service took {sent} requests but Kafka acknowledged only {acked} of their events")
    return rest, sent


def _service_acked() -> int:
    from lib.stack import http_json

    return int(http_json(f"{settings().roman_service_url}/health")["events"]["acked"])


def produce(events: int, seed: int = 7, start: datetime | None = None, shape: TrafficShape | None = None,
            progress: bool = True, save: bool = True, via_service: bool = False) -> Manifest:
    """Plan a batch, send it with acks=all, and return the manifest of what the broker acknowledged.

    Nothing is counted as sent until the broker acknowledged it (the delivery report); records
    that were not acknowledged make this raise, after all others were flushed.
    """
    from tqdm import tqdm

    cfg = settings()
    start = start or datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=60)
    records = plan(events, seed, start, cfg.events_partitions, shape)
    began = time.monotonic()
    direct = records
    if via_service:
        direct, _ = _via_service(records)
    producer = connect_producer(cfg.kafka_bootstrap_servers, "roman-traffic")
    acks: dict[int, tuple[int, int]] = {}
    errors: list[str] = []

    def delivered(index: int, err: Any, msg: Any) -> None:
        if err is None:
            acks[index] = (msg.partition(), msg.offset())
        else:
            errors.append(str(err))

    with tqdm(total=len(direct), desc="producing", unit="rec", disable=not progress, mininterval=0.5) as bar:
        for index, record in enumerate(direct):
            while True:
                try:
                    producer.produce(cfg.events_topic, value=record.value, key=record.key,
                                     partition=record.partition,
                                     on_delivery=lambda err, msg, i=index: delivered(i, err, msg))
                    break
                except BufferError:  # the local queue is full: let the broker catch up
                    producer.poll(0.05)
            producer.poll(0)
            if index % 2000 == 1999:
                bar.update(2000)
        remaining = producer.flush(120)
        bar.update(len(direct) - bar.n)
    manifest = Manifest(topic=cfg.events_topic, seed=seed, mode="via-service" if via_service else "direct")
    direct_ids = {id(r): i for i, r in enumerate(direct)}
    for record in records:
        index = direct_ids.get(id(record))
        if index is None:  # went through the service, which waited for the broker's ack
            _count(manifest, record, record.partition, None)
        elif index in acks:
            _count(manifest, record, *acks[index])
    manifest.by_operation = dict(sorted(manifest.by_operation.items()))
    manifest.seconds = round(time.monotonic() - began, 3)
    times = sorted(json.loads(r.value)["event_time"] for r in records if r.kind == "event")
    manifest.first_event_time, manifest.last_event_time = times[0], times[-1]
    missing = len(records) - manifest.records
    if missing or remaining:
        reason = errors[0] if errors else f"{remaining} still queued after the flush timeout"
        raise ProduceError(
            f"{missing} of {len(records)} records were not acknowledged by Kafka at {cfg.kafka_bootstrap_servers} "
            f"({reason}); {manifest.records} were. Re-run with the same --seed once the broker is back: "
            "Bronze deduplicates by event_id."
        )
    if save:
        save_manifest(manifest)
    return manifest


def _count(manifest: Manifest, record: Record, partition: int, offset: int | None) -> None:
    manifest.records += 1
    manifest.per_partition[partition] = manifest.per_partition.get(partition, 0) + 1
    if offset is not None:
        first, nxt = manifest.offsets.get(partition, (offset, offset + 1))
        manifest.offsets[partition] = (min(first, offset), max(nxt, offset + 1))
    if record.kind == "event":
        manifest.requests += 1
        manifest.failed_requests += 0 if record.success else 1
        manifest.late_events += record.late
        op = record.operation or "?"
        manifest.by_operation[op] = manifest.by_operation.get(op, 0) + 1
    elif record.kind == "duplicate":
        manifest.duplicates += 1
        manifest.duplicates_cross_partition += record.cross_partition
    elif record.kind == "invalid":
        manifest.invalid_events += 1
    else:
        kind = record.kind.split(":", 1)[1]
        manifest.malformed[kind] = manifest.malformed.get(kind, 0) + 1


def manifests_dir() -> Path:
    return settings().stack_home / "manifests"


def save_manifest(manifest: Manifest) -> Path:
    """Keep the manifest beside the stack's data: the topic holds the sum of all of them."""
    folder = manifests_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}.json"
    path.write_text(json.dumps(manifest.to_dict(), indent=1))
    return path

