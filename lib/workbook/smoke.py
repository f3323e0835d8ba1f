"""End-to-end smoke checks of the stack: each real part does one real round trip.

`make run` prints them; they are the first thing to look at when a notebook fails, because
each one isolates a single part (broker, catalog + Spark + PyIceberg, Flink cluster).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from lib.config import Settings
from lib.kafka import ensure_topic
from lib.medallion.catalog import catalog
from lib.medallion.spark import spark_session
from lib.stream.rest import FlinkRest

SMOKE_TOPIC = "workbook-smoke"
SMOKE_TABLE = "smoke.roundtrip"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def kafka_roundtrip(cfg: Settings, timeout_s: float = 20.0) -> Check:
    """Produce one record with acks=all and consume it back by its unique key."""
    ensure_topic(cfg.kafka_bootstrap_servers, SMOKE_TOPIC, 1)
    key = uuid.uuid4().hex.encode()
    producer = KafkaProducer(bootstrap_servers=cfg.kafka_bootstrap_servers, acks="all")
    meta = producer.send(SMOKE_TOPIC, key=key, value=b"ping").get(timeout=timeout_s)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=cfg.kafka_bootstrap_servers, enable_auto_commit=False)
    tp = TopicPartition(SMOKE_TOPIC, meta.partition)
    consumer.assign([tp])
    consumer.seek(tp, meta.offset)
    deadline = time.monotonic() + timeout_s
    found = False
    while not found and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            found = found or any(r.key == key for r in records)
    consumer.close()
    return Check("kafka round trip", found, f"offset {meta.offset} of {SMOKE_TOPIC}[{meta.partition}]")


def iceberg_roundtrip(cfg: Settings) -> Check:
    """Spark writes rows into an Iceberg table through the REST catalog; PyIceberg reads them back."""
    spark = spark_session(cfg)
    token = uuid.uuid4().hex
    spark.sql("CREATE NAMESPACE IF NOT EXISTS smoke")
    spark.sql(f"CREATE TABLE IF NOT EXISTS {SMOKE_TABLE} (token STRING, n INT) USING iceberg")
    spark.createDataFrame([(token, i) for i in range(3)], "token STRING, n INT").writeTo(SMOKE_TABLE).append()
    rows = catalog(cfg).load_table(SMOKE_TABLE).scan(row_filter=f"token = '{token}'").to_arrow()
    ok = sorted(rows.column("n").to_pylist()) == [0, 1, 2]
    return Check("iceberg round trip", ok, f"Spark wrote 3 rows, PyIceberg read {rows.num_rows}")


def flink_cluster(cfg: Settings) -> Check:
    """The session cluster's REST API answers and as many taskmanagers as the mode starts offer slots."""
    overview = FlinkRest(cfg).overview()
    managers = overview.get("taskmanagers", 0)
    ok = managers >= cfg.taskmanagers and overview.get("slots-total", 0) >= 1
    detail = f"{managers} taskmanager{'s' if managers != 1 else ''}, {overview.get('slots-total')} slots"
    return Check("flink cluster", ok, detail)


def run_all(cfg: Settings) -> list[Check]:
    """Every check; an exception in one becomes a failed check, never a crash of the others."""
    checks = []
    for fn in (kafka_roundtrip, iceberg_roundtrip, flink_cluster):
        try:
            checks.append(fn(cfg))
        except Exception as exc:
            checks.append(Check(fn.__name__.replace("_", " "), False, f"{type(exc).__name__}: {exc}"))
    return checks
