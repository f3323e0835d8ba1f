"""The embedded stack, for real: every service answers, and every part does a round trip."""

from __future__ import annotations

import random
import socket
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from lib import flink, stack
from lib.catalog import catalog
from lib.config import Settings, settings
from lib.flink_cluster import taskmanager_out
from lib.process import StackError, port_is_free
from lib.topics import ensure_topic

pytestmark = pytest.mark.integration


def test_every_service_is_healthy(live_stack: Settings) -> None:
    rows = stack.status()
    names = ["kafka", "roman-service", "iceberg-rest", "flink-jobmanager", "flink-taskmanager"]
    assert [r.service for r in rows] == names
    assert all(r.healthy for r in rows)
    assert all(r.pid for r in rows)


def test_up_again_finds_everything_running(live_stack: Settings) -> None:
    report = stack.up(quiet=True)
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
    from lib.spark import spark_session

    spark = spark_session()
    table = f"itest.t_{uuid.uuid4().hex[:8]}"
    spark.sql("CREATE NAMESPACE IF NOT EXISTS itest")
    spark.sql(f"CREATE TABLE {table} (id BIGINT, numeral STRING) USING iceberg")
    rows = [(1, "I"), (4, "IV"), (1994, "MCMXCIV")]
    spark.createDataFrame(rows, "id BIGINT, numeral STRING").writeTo(table).append()
    read = catalog().load_table(table).scan().to_arrow().sort_by("id").to_pylist()
    assert read == [{"id": i, "numeral": n} for i, n in rows]
    # The commit is real: the snapshot is in the catalog and its files are in the warehouse.
    loaded = catalog().load_table(table)
    assert loaded.current_snapshot() is not None
    assert loaded.location().startswith("file:")
    assert Path(loaded.location().removeprefix("file:")).exists()
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
    job_id = flink.submit_sql(
        [
            flink.kafka_source_ddl("src", topic, f"test-{token}"),
            "CREATE TEMPORARY TABLE out_console (payload STRING) WITH ('connector' = 'print')",
            "INSERT INTO out_console SELECT payload FROM src",
        ],
        job_name=f"test-read-{token[:8]}",
    )
    try:
        assert flink.wait_for_state(job_id, {"RUNNING"}) == "RUNNING"
        listed = {j["jid"]: j for j in flink.jobs()}
        assert listed[job_id]["state"] == "RUNNING"
        assert listed[job_id]["name"] == f"test-read-{token[:8]}"
        deadline = time.monotonic() + 60
        seen: set[str] = set()
        while len(seen) < 3 and time.monotonic() < deadline:
            out = taskmanager_out(live_stack)
            text = out.read_text(errors="replace") if out.exists() else ""
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


def test_port_taken_is_named_with_its_owner_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    monkeypatch.setenv("STACK_HOME", str(tmp_path))
    monkeypatch.setenv("ICEBERG_REST_URI", f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(StackError) as err:
            stack.up(["iceberg-rest"], quiet=True)
    finally:
        blocker.close()
    message = str(err.value)
    assert f"port 127.0.0.1:{port} is already taken" in message
    assert "ICEBERG_REST_URI" in message
    assert not list(tmp_path.glob("run/*.pid"))


def test_service_that_exits_at_start_shows_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    monkeypatch.setenv("STACK_HOME", str(tmp_path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
    kafka = stack.KafkaBroker(settings())
    kafka.prepare(settings())
    # Storage formatted for another node: the broker refuses to start, as after a bad copy of a data dir.
    meta = tmp_path / "kafka" / "data" / "meta.properties"
    meta.write_text(meta.read_text().replace("node.id=1", "node.id=7"))
    began = time.monotonic()
    with pytest.raises(StackError) as err:
        stack.up(["kafka"], quiet=True, timeout=90)
    message = str(err.value)
    assert "kafka exited during start-up" in message
    assert "node" in message.lower()  # the log tail says which id did not match
    assert time.monotonic() - began < 60
    assert port_is_free("127.0.0.1", port)
    assert stack.running(settings()) == set()


def test_missing_java_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    monkeypatch.setenv("STACK_HOME", str(tmp_path))
    with pytest.raises(StackError, match="Java was not found"):
        stack.up(["kafka"], quiet=True)


def test_zz_down_frees_every_port_and_up_restarts(live_stack: Settings) -> None:
    """Runs last in this module: stop everything, check, and bring it back for later tests."""
    report = stack.down()
    assert set(report.values()) == {"stopped"}
    for service in stack.services(settings()):
        for port in service.ports():
            assert port_is_free(service.host, port), f"{service.name} left {service.host}:{port} taken"
    assert stack.running(settings()) == set()
    up_report = stack.up(quiet=True)
    assert all(v.startswith("started in") for v in up_report.values())
