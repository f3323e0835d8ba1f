"""The Flink stream on the real session cluster: dedup, late data, exactly-once into Iceberg, restores.

Each test gets its own topic and consumer group, and reads the shared stream tables filtered on
that topic (or on its own user ids), so tests do not see each other's records.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from lib import flink, stack, stream
from lib.config import Settings, settings
from lib.events import handle_request, malformed_reason
from lib.faults import kill_service
from lib.topics import end_offsets, ensure_topic, read_range
from lib.traffic import connect_producer, produce

pytestmark = pytest.mark.integration


@dataclass
class LiveJob:
    topic: str
    job: stream.StreamJob
    job_id: str

    def events(self):
        return stream.read_table(stream.STREAM_EVENTS, f"kafka_topic == '{self.topic}'")


def _new_topic(cfg: Settings, label: str) -> str:
    topic = f"stream-{label}-{uuid.uuid4().hex[:8]}"
    ensure_topic(cfg.kafka_bootstrap_servers, topic, cfg.events_partitions)
    return topic


def _start(cfg: Settings, label: str) -> LiveJob:
    topic = _new_topic(cfg, label)
    job = stream.StreamJob(name=f"test-{topic}", topic=topic, group_id=topic, checkpoint_interval="2s")
    return LiveJob(topic, job, stream.start(job))


def _send(topic: str, records: list[tuple[bytes, bytes, int]]) -> None:
    producer = connect_producer(settings().kafka_bootstrap_servers, "stream-test")
    for key, value, partition in records:
        producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0


def _event(user: str, when: datetime, event_id: str | None = None) -> bytes:
    return handle_request("to_roman", "1994", user, event_id=event_id or str(uuid.uuid4()), event_time=when).to_json()


def _kafka_truth(cfg: Settings, topic: str) -> tuple[set[str], dict[tuple[int, int], str]]:
    """What the topic holds: distinct event_ids of the events, and the malformed records' reasons."""
    records = read_range(cfg.kafka_bootstrap_servers, topic, {}, end_offsets(cfg.kafka_bootstrap_servers, topic))
    ids, malformed = set(), {}
    for r in records:
        reason = malformed_reason(r.value)
        if reason:
            malformed[(r.partition, r.offset)] = reason
        else:
            ids.add(json.loads(r.value)["event_id"])
    return ids, malformed


@pytest.fixture(scope="module")
def generated(live_stack: Settings) -> Iterator[LiveJob]:
    """A job on its own topic, holding a generated batch (duplicates, late, invalid, malformed)."""
    live = _start(live_stack, "gen")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVENTS_TOPIC", live.topic)
        produce(1500, seed=21, start=datetime.now(UTC) - timedelta(minutes=20), progress=False, save=False)
    stream.wait_caught_up(live.job_id, live.job, progress=False)
    yield live
    flink.cancel(live.job_id)


def test_iceberg_holds_each_distinct_valid_event_once(generated: LiveJob, live_stack: Settings) -> None:
    expected, _ = _kafka_truth(live_stack, generated.topic)
    rows = generated.events()
    assert len(rows) == len(expected) > 1500
    assert set(rows.event_id) == expected
    assert rows.event_id.is_unique


def test_malformed_records_are_set_aside_with_the_bronze_reason(generated: LiveJob, live_stack: Settings) -> None:
    _, malformed = _kafka_truth(live_stack, generated.topic)
    dead = stream.read_table(stream.STREAM_DEAD_LETTER, f"kafka_topic == '{generated.topic}'")
    assert malformed, "the batch should hold malformed records"
    assert {(r.kafka_partition, r.kafka_offset): r.reason for r in dead.itertuples()} == malformed
    assert flink.job(generated.job_id)["state"] == "RUNNING"


def test_windows_count_distinct_on_time_events_and_late_ones_go_aside(live_stack: Settings) -> None:
    live = _start(live_stack, "late")
    try:
        user = f"u-{uuid.uuid4().hex[:6]}"
        now = datetime.now(UTC)
        window = now.replace(second=0, microsecond=0) - timedelta(minutes=3)
        on_time = [_event(user, window + timedelta(seconds=5 * i)) for i in range(6)]
        records = [(user.encode(), v, i % 3) for i, v in enumerate(on_time)]
        records += [(user.encode(), v, (i + 1) % 3) for i, v in enumerate(on_time[:4])]  # duplicates
        # A recent event on every partition moves the watermark (the minimum over partitions) past the window.
        records += [(user.encode(), _event(user, now), p) for p in range(3)]
        # A client whose clock is an hour fast: capped at its Kafka timestamp, it cannot drag the
        # watermark an hour ahead (else the fresh events sent next would all be late).
        skewed = f"skew-{uuid.uuid4().hex[:6]}"
        records += [(skewed.encode(), _event(skewed, now + timedelta(hours=1)), p) for p in range(3)]
        _send(live.topic, records)
        stream.wait_caught_up(live.job_id, live.job, progress=False)

        late_ids = [str(uuid.uuid4()) for _ in range(3)]
        later = datetime.now(UTC)
        _send(live.topic, [(user.encode(), _event(user, now - timedelta(hours=1), i), 0) for i in late_ids]
              + [(user.encode(), _event(user, later), p) for p in range(3)])
        stream.wait_caught_up(live.job_id, live.job, progress=False)

        windows = stream.read_table(stream.STREAM_WINDOWS, f"user_id == '{user}'")
        counted = {row.window_start.to_pydatetime(): row.events for row in windows.itertuples()}
        # Duplicates are not counted; the hour-old late events open no window of their own.
        assert counted[window] == 6 and min(counted) == window, counted
        late = stream.read_table(stream.STREAM_LATE, f"user_id == '{user}'")
        assert sorted(late.event_id) == sorted(late_ids)
        assert (late.event_time < late.watermark_at_arrival).all()
        assert (late.behind_s >= 3600 - 60).all()
        assert len(live.events()) == 6 + 3 + 3 + 3 + 3  # late and skewed events still land in the events table
    finally:
        flink.cancel(live.job_id)


def test_a_killed_taskmanager_restores_from_the_checkpoint_exactly_once(live_stack: Settings,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    live = _start(live_stack, "crash")
    monkeypatch.setenv("EVENTS_TOPIC", live.topic)
    try:
        produce(20000, seed=5, start=datetime.now(UTC) - timedelta(minutes=30), progress=False, save=False)
        # Kill the taskmanager once some of the stream is committed and some is not.
        deadline = time.monotonic() + 120
        while len(live.events()) == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        committed_before = len(live.events())
        assert committed_before > 0
        kill_service("flink-taskmanager")
        stack.up(["flink-taskmanager"], quiet=True)
        stream.wait_caught_up(live.job_id, live.job, timeout_s=300, progress=False)

        counts = flink.checkpoints(live.job_id)["counts"]
        assert counts["restored"] >= 1, counts
        expected, _ = _kafka_truth(live_stack, live.topic)
        rows = live.events()
        assert rows.event_id.is_unique, rows.event_id[rows.event_id.duplicated()].head()
        assert set(rows.event_id) == expected

        # The dedup state came back with the checkpoint: a re-delivery now is still dropped.
        again = [(r.key, r.value, r.partition) for r in _first_records(live_stack, live.topic, 50)]
        _send(live.topic, again)
        stream.wait_caught_up(live.job_id, live.job, progress=False)
        assert len(live.events()) == len(expected)

        # A deliberate restart (stop with a savepoint, resubmit from it) keeps the state too.
        live.job_id = stream.restart(live.job_id, live.job)
        _send(live.topic, again)
        stream.wait_caught_up(live.job_id, live.job, progress=False)
        assert flink.checkpoints(live.job_id)["counts"]["restored"] >= 1
        assert len(live.events()) == len(expected)
    finally:
        flink.cancel(live.job_id)


def _first_records(cfg: Settings, topic: str, n: int) -> list:
    ends = end_offsets(cfg.kafka_bootstrap_servers, topic)
    records = read_range(cfg.kafka_bootstrap_servers, topic, {}, {p: min(e, n) for p, e in ends.items()})
    return [r for r in records if malformed_reason(r.value) is None][:n]


def test_a_job_started_while_kafka_is_down_catches_up_when_it_is_back(live_stack: Settings) -> None:
    topic = _new_topic(live_stack, "outage")
    job = stream.StreamJob(name=f"test-{topic}", topic=topic, group_id=topic, checkpoint_interval="2s")
    stack.down(["kafka"])
    job_id = None
    try:
        job_id = stream.submit(job)
        time.sleep(15)
        state = flink.job(job_id)["state"]
        assert state in ("RUNNING", "RESTARTING", "CREATED", "INITIALIZING"), state
    finally:
        stack.up(["kafka"], quiet=True)
    try:
        user = f"u-{uuid.uuid4().hex[:6]}"
        sent = [_event(user, datetime.now(UTC)) for _ in range(30)]
        _send(topic, [(user.encode(), v, i % 3) for i, v in enumerate(sent)])
        flink.wait_for_state(job_id, {"RUNNING"}, timeout_s=120)
        stream.wait_caught_up(job_id, job, timeout_s=180, progress=False)
        rows = stream.read_table(stream.STREAM_EVENTS, f"kafka_topic == '{topic}'")
        assert sorted(rows.event_id) == sorted(json.loads(v)["event_id"] for v in sent)
    finally:
        flink.cancel(job_id)
