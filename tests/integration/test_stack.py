"""The embedded stack, for real: every service answers, and every part does a round trip."""

from __future__ import annotations

import random
import socket
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from lib import stack
from lib.config import Settings
from lib.errors import StackError
from lib.kafka import ensure_topic
from lib.medallion import storage
from lib.medallion.catalog import catalog
from lib.medallion.spark import spark_session
from lib.stack.kafka import KafkaBroker
from lib.stack.process import port_is_free
from lib.stream.lifecycle import submit_sql
from lib.stream.rest import FlinkRest

pytestmark = pytest.mark.integration


def test_every_service_is_healthy(live_stack: Settings) -> None:
    rows = stack.status(live_stack)
    storage = ["s3"] if live_stack.warehouse == "s3" else []
    names = ["kafka", "roman-service", *storage, "iceberg-rest", "flink-jobmanager", "flink-taskmanager"]
    assert [r.service for r in rows] == names
    assert all(r.healthy for r in rows)
    assert all(r.pid for r in rows)


def test_up_again_finds_everything_running(live_stack: Settings) -> None:
    report = stack.up(live_stack, quiet=True)
    assert set(report.values()) == {"already running"}


def test_events_topic_exists_with_its_partitions(live_stack: Settings) -> None:
    consumer = KafkaConsumer(bootstrap_servers=live_stack.kafka_bootstrap_servers)
    try:
        assert consumer.partitions_for_topic(live_stack.events_topic) == set(range(live_stack.events_partitions))
    finally:
        consumer.close()


def test_kafka_python_produces_and_consumes_back(live_stack: Settings) -> None:
    topic = f"test-roundtrip-{uuid.uuid4().hex[:8]}"
    ensure_topic(live_stack.kafka_bootstrap_servers, topic, 2)
    sent = [f"message-{i}".encode() for i in range(10)]
    producer = KafkaProducer(bootstrap_servers=live_stack.kafka_bootstrap_servers, acks="all")
    for value in sent:
        producer.send(topic, key=value[-1:], value=value)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=live_stack.kafka_bootstrap_servers, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in (0, 1)])
    consumer.seek_to_beginning()
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(r.value for r in records)
    consumer.close()
    assert sorted(got) == sorted(sent)


def test_spark_writes_iceberg_and_pyiceberg_reads_the_same_rows(live_stack: Settings) -> None:
    spark = spark_session(live_stack)
    table = f"itest.t_{uuid.uuid4().hex[:8]}"
    spark.sql("CREATE NAMESPACE IF NOT EXISTS itest")
    spark.sql(f"CREATE TABLE {table} (id BIGINT, numeral STRING) USING iceberg")
    rows = [(1, "I"), (4, "IV"), (1994, "MCMXCIV")]
    spark.createDataFrame(rows, "id BIGINT, numeral STRING").writeTo(table).append()
    read = catalog(live_stack).load_table(table).scan().to_arrow().sort_by("id").to_pylist()
    assert read == [{"id": i, "numeral": n} for i, n in rows]
    # The commit is real: the snapshot is in the catalog and its files are in the warehouse.
    loaded = catalog(live_stack).load_table(table)
    assert loaded.current_snapshot() is not None
    assert loaded.location().startswith(live_stack.iceberg_warehouse.rstrip("/"))
    stored = storage.data_files(live_stack, loaded.location())  # the bucket through the S3 API, or the folder
    assert {storage.key(f["file_path"]) for f in loaded.inspect.files().to_pylist()} <= set(stored) and stored
    spark.sql(f"DROP TABLE {table} PURGE")


def test_pyflink_sql_job_reads_the_topic_on_the_session_cluster(live_stack: Settings) -> None:
    topic = f"test-flink-{uuid.uuid4().hex[:8]}"
    ensure_topic(live_stack.kafka_bootstrap_servers, topic, 1)
    token = uuid.uuid4().hex
    producer = KafkaProducer(bootstrap_servers=live_stack.kafka_bootstrap_servers, acks="all")
    for i in range(3):
        producer.send(topic, value=f"{token}-{i}".encode())
    producer.flush()
    producer.close()
    source = (
        f"CREATE TEMPORARY TABLE src (`payload` STRING) WITH ('connector' = 'kafka', 'topic' = '{topic}', "
        f"'properties.bootstrap.servers' = '{live_stack.kafka_bootstrap_servers}', "
        f"'properties.group.id' = 'test-{token}', 'scan.startup.mode' = 'earliest-offset', 'format' = 'raw')"
    )
    tag = f"test-{token[:8]}"
    job_id = submit_sql(
        live_stack,
        [
            source,
            f"CREATE TEMPORARY TABLE out_console (payload STRING) WITH ('connector' = 'print', "
            f"'print-identifier' = '{tag}')",
            "INSERT INTO out_console SELECT payload FROM src",
        ],
        job_name=f"test-read-{token[:8]}",
    )
    flink = FlinkRest(live_stack)
    try:
        assert flink.wait_for_state(job_id, {"RUNNING"}) == "RUNNING"
        listed = {j["jid"]: j for j in flink.jobs()}
        assert listed[job_id]["state"] == "RUNNING"
        assert listed[job_id]["name"] == f"test-read-{token[:8]}"
        deadline = time.monotonic() + 60
        seen: set[str] = set()
        while len(seen) < 3 and time.monotonic() < deadline:
            text = "\n".join(flink.console_lines(tag, last=None))  # the taskmanager's stdout, over REST
            seen = {f"{token}-{i}" for i in range(3) if f"{token}-{i}" in text}
            time.sleep(0.5)
        assert seen == {f"{token}-{i}" for i in range(3)}
    finally:
        assert flink.cancel(job_id) == "CANCELED"


def _free_port() -> int:
    """A free port whose neighbour (Kafka's controller port) is free too, below the ephemeral range.

    A port the kernel hands out (bind to 0) sits in the ephemeral range, where any outgoing
    connection of the running stack may take it, or its neighbour, a moment later.
    """
    for candidate in random.Random().sample(range(20000, 32000, 2), 200):
        if port_is_free("127.0.0.1", candidate) and port_is_free("127.0.0.1", candidate + 1):
            return candidate
    raise AssertionError("no free pair of ports between 20000 and 32000")


def test_port_taken_is_named_with_its_owner_and_the_fix(cfg: Settings, tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    moved = replace(cfg, stack_home=tmp_path, iceberg_rest_uri=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(StackError) as err:
            stack.up(moved, ["iceberg-rest"], quiet=True)
    finally:
        blocker.close()
    message = str(err.value)
    assert f"port 127.0.0.1:{port} is already taken" in message
    assert "ICEBERG_REST_URI" in message
    assert not list(tmp_path.glob("run/*.pid"))


def test_service_that_exits_at_start_shows_its_log(cfg: Settings, tmp_path: Path) -> None:
    port = _free_port()
    moved = replace(cfg, stack_home=tmp_path, kafka_bootstrap_servers=f"127.0.0.1:{port}")
    KafkaBroker(moved).prepare(moved)
    # Storage formatted for another node: the broker refuses to start, as after a bad copy of a data dir.
    meta = tmp_path / "kafka" / "data" / "meta.properties"
    meta.write_text(meta.read_text().replace("node.id=1", "node.id=7"))
    began = time.monotonic()
    with pytest.raises(StackError) as err:
        stack.up(moved, ["kafka"], quiet=True, timeout=90)
    message = str(err.value)
    assert "kafka exited during start-up" in message
    assert "node" in message.lower()  # the log tail says which id did not match
    assert time.monotonic() - began < 60
    assert port_is_free("127.0.0.1", port)
    assert stack.running(moved) == set()


def test_missing_java_is_explained(cfg: Settings, tmp_path: Path) -> None:
    moved = replace(cfg, stack_home=tmp_path, java_home=str(tmp_path / "no-jdk"))
    with pytest.raises(StackError, match="Java was not found"):
        stack.up(moved, ["kafka"], quiet=True)


def test_zz_down_frees_every_port_and_up_restarts(live_stack: Settings) -> None:
    """Runs last in this module: stop everything, check, and bring it back for later tests."""
    report = stack.down(live_stack)
    assert set(report.values()) == {"stopped"}
    for service in stack.services(live_stack):
        for port in service.ports():
            assert port_is_free(service.host, port), f"{service.name} left {service.host}:{port} taken"
    assert stack.running(live_stack) == set()
    up_report = stack.up(live_stack, quiet=True)
    assert all(v.startswith("started in") for v in up_report.values())
