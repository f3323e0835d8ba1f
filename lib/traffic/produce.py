"""Sending a planned batch to the events topic, straight to Kafka or through the service's API.

Nothing is counted as sent until the broker acknowledged it (the delivery report): the manifest
lists only acknowledged records, and a batch with unacknowledged records raises ProduceError.
"""

from __future__ import annotations

import functools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tqdm import tqdm

from lib.config import Settings
from lib.errors import ProduceError
from lib.kafka import connect_producer
from lib.traffic.client import ServiceClient
from lib.traffic.manifest import Manifest, count_record, save_manifest
from lib.traffic.plan import Record, TrafficShape, plan


def _via_service(cfg: Settings, records: list[Record]) -> tuple[list[Record], int]:
    """Send on-time events and their same-partition retries through the HTTP API; return the rest.

    The service answers 200 or 400 only once Kafka has acknowledged the request's event, so an
    answer is the acknowledgement; a 503 is retried with the same request id. The service stamps
    event_time itself, so late events, replays to another partition, invalid and malformed records
    cannot come through it: those are produced directly. The service writes the schema version it
    runs with (EVENT_SCHEMA_VERSION), naming the planned client in v2. Returns the records still to
    produce and how many requests the service took.
    """
    through = [r for r in records if r.kind in ("event", "duplicate") and not r.late and not r.cross_partition]
    through_ids = {id(r) for r in through}
    rest = [r for r in records if id(r) not in through_ids]

    def send(chunk: list[Record]) -> int:
        with ServiceClient(cfg) as client:
            for record in chunk:
                doc = json.loads(record.value)
                status, body = client.ask(doc["operation"], doc["input"], doc["user_id"], doc["event_id"], retries=3,
                                          client=doc.get("client"))
                if status not in (200, 400):
                    raise ProduceError(f"the service answered {status} for {doc['operation']}({doc['input']!r}): "
                                       f"{body.get('error', body)}")
        return len(chunk)

    workers = 8  # each request waits for its acknowledgement; concurrent ones share the service's batches
    chunks = [through[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        sent = sum(pool.map(send, chunks))
    return rest, sent


def produce(cfg: Settings, events: int, seed: int = 7, start: datetime | None = None, shape: TrafficShape | None = None,
            progress: bool = True, save: bool = True, via_service: bool = False, salt: int = 0) -> Manifest:
    """Plan a batch, send it with acks=all, and return the manifest of what the broker acknowledged.

    Nothing is counted as sent until the broker acknowledged it (the delivery report); records
    that were not acknowledged make this raise, after all others were flushed.
    """
    start = start or datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=60)
    records = plan(events, seed, start, cfg.events_partitions, shape, salt)
    began = time.monotonic()
    direct = records
    if via_service:
        direct, _ = _via_service(cfg, records)
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
                                     on_delivery=functools.partial(delivered, index))
                    break
                except BufferError:  # the local queue is full: let the broker catch up
                    producer.poll(0.05)
            producer.poll(0)
            if index % 2000 == 1999:
                bar.update(2000)
        remaining = producer.flush(120)
        bar.update(len(direct) - bar.n)
    manifest = Manifest(topic=cfg.events_topic, seed=seed, mode="via-service" if via_service else "direct",
                        planned_events=events, start=start.isoformat(), salt=salt)
    direct_ids = {id(r): i for i, r in enumerate(direct)}
    for record in records:
        position = direct_ids.get(id(record))
        if position is None:  # went through the service, which waited for the broker's ack, in its own version
            count_record(manifest, replace(record, schema_version=cfg.event_schema_version), record.partition, None)
        elif position in acks:
            count_record(manifest, record, *acks[position])
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
        save_manifest(cfg, manifest)
    return manifest
