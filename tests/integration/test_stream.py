"""The Flink stream on the real session cluster: dedup, late data, exactly-once into Iceberg, restores.

Each test gets its own topic and consumer group, and reads the shared stream tables filtered on
that topic (or on its own user ids), so tests do not see each other's records.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from lib import stack
from lib.config import ROOT, Settings
from lib.contract.events import handle_request, malformed_reason
from lib.errors import FlinkJobError
from lib.jobs import freshness
from lib.kafka import connect_producer, end_offsets, ensure_topic, read_range
from lib.plumbing.waits import poll
from lib.stream import lifecycle
from lib.stream.job import STREAM_DEAD_LETTER, STREAM_EVENTS, STREAM_LATE, STREAM_WINDOWS, StreamJob
from lib.stream.rest import FlinkRest
from lib.traffic.produce import produce
from tests.poison import poison

pytestmark = pytest.mark.integration
NOT_UTF8 = poison()[0][0]


@dataclass
class LiveJob:
    cfg: Settings
    topic: str
    job: StreamJob
    job_id: str

    def events(self):
        return lifecycle.read_table(self.cfg, STREAM_EVENTS, f"kafka_topic == '{self.topic}'")


def _new_topic(cfg: Settings, label: str) -> str:
    topic = f"stream-{label}-{uuid.uuid4().hex[:8]}"
    ensure_topic(cfg.kafka_bootstrap_servers, topic, cfg.events_partitions)
    return topic


def _start(cfg: Settings, label: str) -> LiveJob:
    topic = _new_topic(cfg, label)
    job = StreamJob(name=f"test-{topic}", topic=topic, group_id=topic, checkpoint_interval="2s")
    return LiveJob(cfg, topic, job, lifecycle.start(cfg, job))


def _send(cfg: Settings, topic: str, records: list[tuple[bytes, bytes, int]]) -> None:
    producer = connect_producer(cfg.kafka_bootstrap_servers, "stream-test")
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
    produce(replace(live_stack, events_topic=live.topic), 1500, seed=21,
            start=datetime.now(UTC) - timedelta(minutes=20), progress=False, save=False)
    # one record of each kind a parser cannot hold, a dead letter that is not even text (NOT_UTF8) among them
    _send(live_stack, live.topic, [(b"poison", value, 1) for value, _, _ in poison()])
    lifecycle.wait_caught_up(live_stack, live.job_id, live.job, progress=False)
    yield live
    lifecycle.cancel(live_stack, live.job_id)


def test_iceberg_holds_each_distinct_valid_event_once(generated: LiveJob, live_stack: Settings) -> None:
    expected, _ = _kafka_truth(live_stack, generated.topic)
    rows = generated.events()
    assert len(rows) == len(expected) > 1500
    assert set(rows.event_id) == expected
    assert rows.event_id.is_unique


def test_malformed_records_are_set_aside_with_the_bronze_reason(generated: LiveJob, live_stack: Settings) -> None:
    _, malformed = _kafka_truth(live_stack, generated.topic)
    dead = lifecycle.read_table(live_stack, STREAM_DEAD_LETTER, f"kafka_topic == '{generated.topic}'")
    assert malformed, "the batch should hold malformed records"
    assert {(r.kafka_partition, r.kafka_offset): r.reason for r in dead.itertuples()} == malformed
    # Read whole by PyIceberg and pandas, with the raw bytes kept byte for byte beside their text.
    binary = dead[dead.reason == "not UTF-8 text"]
    assert list(binary.payload) == [NOT_UTF8] and list(binary.payload_text) == [NOT_UTF8.decode(errors="replace")]
    for _, where, why in poison():  # each poison kind the stream cannot hold is a dead letter, as in Bronze
        assert where != "dead_letter" or any(reason.startswith(why) for reason in dead.reason), why
    flink = FlinkRest(live_stack)  # the poison passed without a single failure of the job
    assert (flink.job(generated.job_id)["state"], flink.restarts(generated.job_id)) == ("RUNNING", 0)
    # The rule ran on the JVM (jars/rules): no record went through a Python worker.
    assert not [v["name"] for v in flink.job(generated.job_id)["vertices"] if "Python" in v["name"]]


def test_status_shows_what_went_through_even_asked_cold_and_with_kafka_away(generated: LiveJob,
                                                                             live_stack: Settings) -> None:
    """`stream status` as an operator meets it: the job's records are counted on the first ask (Flink's
    metric fetcher serves a cold request stale zeros; status asks again), and with Kafka unreachable
    (its address pointed at a closed port) it still shows the job, and names Kafka as the service away."""
    expected, _ = _kafka_truth(live_stack, generated.topic)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "lib", "stream", "status", "--name", generated.job.name], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{generated.job.name} RUNNING as {generated.job_id}" in done.stdout, done.stdout
    rows = [re.search(r"\s(\d+)\s+(\d+)\s+\S+\s*$", line) for line in done.stdout.splitlines()]
    counted = [int(n) for row in rows if row for n in row.groups()]
    # Every valid delivery crosses the exchange into the dedup, so some chain counts at least that many.
    assert max(counted, default=0) >= len(expected), done.stdout
    assert "sampled at " in done.stdout
    assert "kafka (127.0.0.1:9) does not answer" in done.stdout, done.stdout


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
        _send(live_stack, live.topic, records)
        lifecycle.wait_caught_up(live_stack, live.job_id, live.job, progress=False)

        late_ids = [str(uuid.uuid4()) for _ in range(3)]
        later = datetime.now(UTC)
        _send(live_stack, live.topic, [(user.encode(), _event(user, now - timedelta(hours=1), i), 0) for i in late_ids]
              + [(user.encode(), _event(user, later), p) for p in range(3)])
        lifecycle.wait_caught_up(live_stack, live.job_id, live.job, progress=False)

        windows = lifecycle.read_table(live_stack, STREAM_WINDOWS, f"user_id == '{user}'")
        counted = {row.window_start.to_pydatetime(): row.events for row in windows.itertuples()}
        # Duplicates are not counted; the hour-old late events open no window of their own.
        assert counted[window] == 6 and min(counted) == window, counted
        late = lifecycle.read_table(live_stack, STREAM_LATE, f"user_id == '{user}'")
        assert sorted(late.event_id) == sorted(late_ids)
        assert (late.event_time < late.watermark_at_arrival).all()
        assert (late.behind_s >= 3600 - 60).all()
        assert len(live.events()) == 6 + 3 + 3 + 3 + 3  # late and skewed events still land in the events table
    finally:
        lifecycle.cancel(live_stack, live.job_id)


def test_the_dedup_state_comes_back_with_a_savepoint_restart_and_with_the_kept_checkpoint(
        generated: LiveJob, live_stack: Settings) -> None:
    """Re-deliveries after each deliberate way back are still dropped: the keyed state came back too.
    (A taskmanager SIGKILLed mid-stream, restored from its checkpoint with nothing lost or doubled, is
    drill 8: notebook 10, executed by nbval in this suite, and the cluster tier on two taskmanagers.)"""
    live = generated  # the module's job, caught up; live.job_id follows it, so the fixture cancels the last
    expected, _ = _kafka_truth(live_stack, live.topic)
    assert len(live.events()) == len(expected)
    again = [(r.key, r.value, r.partition) for r in _first_records(live_stack, live.topic, 50)]

    # A deliberate restart (stop with a savepoint, resubmit from it) keeps the state.
    live.job_id = lifecycle.restart(live_stack, live.job_id, live.job)
    _send(live_stack, live.topic, again)
    lifecycle.wait_caught_up(live_stack, live.job_id, live.job, progress=False)
    assert FlinkRest(live_stack).checkpoints(live.job_id)["counts"]["restored"] >= 1
    assert len(live.events()) == len(expected)

    # Cancel, then start: the checkpoint the cancel kept (recorded in ops.stream_restore_points,
    # read back through the catalog and Flink's REST API) is where the next run resumes.
    lifecycle.cancel(live_stack, live.job_id)
    kept = FlinkRest(live_stack).latest_checkpoint(live.job_id)["external_path"]
    assert lifecycle.restore_point(live_stack, live.job.name) == kept
    live.job_id = lifecycle.start(live_stack, live.job)
    restored = FlinkRest(live_stack).restored_from(live.job_id) or ""
    assert restored.rstrip("/").split("/")[-2:] == kept.rstrip("/").split("/")[-2:]  # <job id>/chk-<n>
    _send(live_stack, live.topic, again)
    lifecycle.wait_caught_up(live_stack, live.job_id, live.job, progress=False)
    assert len(live.events()) == len(expected)


def _first_records(cfg: Settings, topic: str, n: int) -> list:
    ends = end_offsets(cfg.kafka_bootstrap_servers, topic)
    records = read_range(cfg.kafka_bootstrap_servers, topic, {}, {p: min(e, n) for p, e in ends.items()})
    return [r for r in records if malformed_reason(r.value) is None][:n]


def test_a_job_started_while_kafka_is_down_catches_up_when_it_is_back(live_stack: Settings) -> None:
    topic = _new_topic(live_stack, "outage")
    job = StreamJob(name=f"test-{topic}", topic=topic, group_id=topic, checkpoint_interval="2s")
    stack.down(live_stack, ["kafka"])
    job_id = None
    try:
        job_id = lifecycle.submit(live_stack, job)
        time.sleep(15)
        state = FlinkRest(live_stack).job(job_id)["state"]
        assert state in ("RUNNING", "RESTARTING", "CREATED", "INITIALIZING"), state
    finally:
        stack.up(live_stack, ["kafka"], quiet=True)
    try:
        user = f"u-{uuid.uuid4().hex[:6]}"
        sent = [_event(user, datetime.now(UTC)) for _ in range(30)]
        _send(live_stack, topic, [(user.encode(), v, i % 3) for i, v in enumerate(sent)])
        FlinkRest(live_stack).wait_for_state(job_id, {"RUNNING"}, timeout_s=120)
        lifecycle.wait_caught_up(live_stack, job_id, job, timeout_s=180, progress=False)
        rows = lifecycle.read_table(live_stack, STREAM_EVENTS, f"kafka_topic == '{topic}'")
        assert sorted(rows.event_id) == sorted(json.loads(v)["event_id"] for v in sent)
    finally:
        lifecycle.cancel(live_stack, job_id)


def test_a_job_that_keeps_failing_fails_for_good_and_status_alerts(live_stack: Settings, tmp_path) -> None:
    """A job that fails on every record, with a small restart budget: it ends FAILED instead of restarting
    forever, and `stream status` names the cause, alerts and exits 1."""
    name = f"test-failing-{uuid.uuid4().hex[:8]}"
    job_id = lifecycle.submit_sql(live_stack, [
        "CREATE TEMPORARY TABLE numbers (n INT) WITH ('connector' = 'datagen', 'rows-per-second' = '5', "
        "'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '1000000')",
        "CREATE TEMPORARY TABLE nowhere (n INT) WITH ('connector' = 'blackhole')",
        "INSERT INTO nowhere SELECT 10 / (n - n) FROM numbers"], name,
        extra={"restart-strategy.type": "exponential-delay",
               "restart-strategy.exponential-delay.initial-backoff": "100 ms",
               "restart-strategy.exponential-delay.max-backoff": "200 ms",
               "restart-strategy.exponential-delay.attempts-before-reset-backoff": "2"})
    flink, deadline = FlinkRest(live_stack), time.monotonic() + 90
    while flink.job(job_id)["state"] != "FAILED" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert flink.job(job_id)["state"] == "FAILED"
    done = subprocess.run([sys.executable, "-m", "lib", "stream", "status", "--name", name], cwd=ROOT,
                          env={**os.environ, "RUNS_DIR": str(tmp_path)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{name} FAILED as {job_id}" in done.stdout and "ArithmeticException" in done.stdout, done.stdout
    alerts = [json.loads(line) for line in (tmp_path / "alerts.log").read_text().splitlines()]
    assert [a["job"] for a in alerts] == [f"stream:{name}"] and "FAILED" in alerts[0]["error"]
    with pytest.raises(FlinkJobError, match=r"GET \S+/jobs/0+ answered 404 Not Found: \S"):  # Flink's own words kept
        flink.job("0" * 32)


def test_a_stopped_stream_turns_stale_is_alerted_once_and_recovered_when_it_runs_again(
        live_stack: Settings, tmp_path) -> None:
    """Freshness as an operator meets it: the stream's newest checkpoint against its interval (2 s here).
    Cancelled, the job's checkpoints age past twice the interval: `lib freshness` exits 1 naming it stale,
    the scheduler's check alerts once (a second check says nothing more); resumed, the next check says it
    recovered. The alerts go through the alert path, into this test's runs/alerts.log."""
    cfg = replace(live_stack, runs_dir=tmp_path)
    live = _start(live_stack, "fresh")
    flink = FlinkRest(live_stack)
    flink.wait_for_checkpoint(live.job_id)
    assert freshness.stream_freshness(cfg, datetime.now(UTC), live.job.name).status == "fresh"
    lifecycle.cancel(live_stack, live.job_id)
    stale = poll(lambda: freshness.stream_freshness(cfg, datetime.now(UTC), live.job.name), timeout_s=60, every_s=1,
                 until=lambda layer: layer.stale, timed_out=lambda layer: AssertionError(layer))
    assert stale.age is not None and stale.age > 2 * stale.cadence == timedelta(seconds=4)

    shown = subprocess.run([sys.executable, "-m", "lib", "freshness", "--json", "--stream-job", live.job.name],
                           capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    rows = {row["layer"]: row for row in json.loads(shown.stdout)}
    assert shown.returncode == 1 and rows["stream"]["status"] == "STALE", shown.stderr[-2000:]
    assert rows["stream"]["age_s"] > rows["stream"]["limit_s"] == 4

    def stream_lines(sent: list[dict]) -> list[tuple[str, str]]:
        return [(doc["job"], doc["kind"]) for doc in sent if doc["layer"] == "stream"]

    assert stream_lines(freshness.check(cfg, stream_job=live.job.name)) == [("freshness:stream", "stale")]
    assert stream_lines(freshness.check(cfg, stream_job=live.job.name)) == []  # once per incident
    resumed = lifecycle.start(live_stack, live.job)
    try:
        flink.wait_for_checkpoint(resumed)
        assert stream_lines(freshness.check(cfg, stream_job=live.job.name)) == [("freshness:stream", "recovered")]
    finally:
        lifecycle.cancel(live_stack, resumed)
    logged = [json.loads(line) for line in (tmp_path / "alerts.log").read_text().splitlines()]
    assert [(d["kind"], d["age_s"] > d["limit_s"]) for d in logged if d["layer"] == "stream"] == [
        ("stale", True), ("recovered", False)]
