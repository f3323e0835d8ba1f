"""Traffic in real time: requests stamped *now*, at a steady rate, for watching a stream work.

`lib.traffic.plan` plans a reproducible batch with historical event times; a stream's watermark,
windows and latency only make sense with events that happen while you watch. Here each tick
sends its share of the rate, stamped with the wall clock minus a little jitter (out of order, but
within the watermark's bound), plus on purpose a few events minutes old (behind the watermark:
late) and a few re-deliveries of an event already sent (duplicates). The seed fixes how many of
each; event_ids are fresh UUIDs, so a re-run is new traffic, never a replay.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tqdm import tqdm

from lib.config import Settings
from lib.contract.events import handle_request
from lib.errors import ProduceError
from lib.kafka import connect_producer


@dataclass
class LiveBatch:
    """What was sent and acknowledged, by kind: the notebook's and the benchmark's ground truth."""

    users: list[str]
    event_ids: list[str] = field(default_factory=list)  # distinct events, late ones included
    late_ids: list[str] = field(default_factory=list)
    duplicates: int = 0
    sent: int = 0
    seconds: float = 0.0


def steady(cfg: Settings, seconds: float, rate: int, seed: int = 7, users: int = 8, late_share: float = 0.02,
           duplicate_share: float = 0.05, jitter_s: float = 2.0, late_by: tuple[int, int] = (120, 600),
           user_prefix: str = "live", progress: bool = True) -> LiveBatch:
    """Send `rate` records per second for `seconds`; returns the LiveBatch once the broker acknowledged all."""
    rng = random.Random(seed)
    names = [f"{user_prefix}-{i:02d}" for i in range(users)]
    batch = LiveBatch(users=names)
    producer = connect_producer(cfg.kafka_bootstrap_servers, "roman-live")
    producer_errors: list[str] = []

    def failed(err: object, _msg: object) -> None:
        if err:
            producer_errors.append(str(err))
    sent_values: list[tuple[bytes, bytes]] = []
    ticks = max(1, round(seconds * 10))
    per_tick = rate / 10
    began = time.monotonic()
    owed = 0.0
    with tqdm(total=ticks, desc="live traffic", unit="tick", disable=not progress, mininterval=0.5) as bar:
        for tick in range(ticks):
            owed += per_tick
            while owed >= 1:
                owed -= 1
                # Late events only once the stream has seen a second of "now" (its watermark is current).
                late = late_share if tick >= 10 else 0.0
                key, value = _next_record(rng, names, batch, sent_values, late, duplicate_share, jitter_s, late_by)
                producer.produce(cfg.events_topic, key=key, value=value, on_delivery=failed)
                batch.sent += 1
            producer.poll(0)
            bar.update(1)
            pause = began + (tick + 1) / 10 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    left = producer.flush(60)
    batch.seconds = round(time.monotonic() - began, 3)
    if left or producer_errors:
        raise ProduceError(f"{left} live records unacknowledged, errors: {producer_errors[:3]}")
    return batch


def _next_record(rng: random.Random, names: list[str], batch: LiveBatch, sent: list[tuple[bytes, bytes]],
                 late_share: float, duplicate_share: float, jitter_s: float,
                 late_by: tuple[int, int]) -> tuple[bytes, bytes]:
    roll = rng.random()
    if sent and roll < duplicate_share:
        batch.duplicates += 1
        return sent[rng.randrange(len(sent))]
    user = names[min(int(rng.expovariate(0.6)), len(names) - 1)]  # a few users send most requests
    now = datetime.now(UTC)
    late = roll > 1 - late_share if late_share else False
    when = now - timedelta(seconds=rng.uniform(*late_by)) if late else now - timedelta(seconds=rng.uniform(0, jitter_s))
    event_id = str(uuid.uuid4())
    operation = "to_roman" if rng.random() < 0.6 else "from_roman"
    text = str(rng.randint(1, 3999)) if operation == "to_roman" else rng.choice(["XIV", "MCMXCIV", "IIII", "MMXXVI"])
    event = handle_request(operation, text, user, event_id=event_id, event_time=when)
    batch.event_ids.append(event_id)
    if late:
        batch.late_ids.append(event_id)
    record = (event.key, event.to_json())
    sent.append(record)
    return record
