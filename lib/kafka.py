"""Kafka from the workbook's side: the events topic, its offsets, reading records back, producers.

Two clients, each where it is best: kafka-python for admin and offsets (a plain Python API to step
through in a notebook), confluent-kafka (librdkafka) for producing, for reading records back (the
invariant that reads a topic's whole history reads a million records in seconds, where pure-Python
kafka-python took half a minute) and for consumer-group offsets. Health checks use a real metadata
request, not an open port: a broker that accepts TCP connections before its KRaft controller is
ready must not count as up.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import TopicPartition as Partition
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from tenacity import wait_exponential

from lib.errors import ProduceError
from lib.plumbing.waits import retry

#: What a broker answers about a group while its coordinator is still being elected or loaded
#: (librdkafka does not always mark these retriable).
_COORDINATOR_NOT_READY = (RdKafkaError.NOT_COORDINATOR, RdKafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                          RdKafkaError.COORDINATOR_NOT_AVAILABLE)



def quiet_client_logs() -> None:
    """Keep kafka-python's connection chatter (a refused connect while the broker starts or is down) out
    of notebooks and terminals: the edges (the CLI, a notebook's setup, the test session) call it once."""
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def admin(bootstrap: str, timeout_ms: int = 3000) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="roman-workbook-admin",
        request_timeout_ms=timeout_ms,
    )


def broker_answers(bootstrap: str) -> bool:
    """True when the broker answers a metadata request with at least one live broker."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        # A closed port fails at once; the admin client alone would retry its bootstrap for 30 s.
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    try:
        client = admin(bootstrap, timeout_ms=2000)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        return len(client.describe_cluster().get("brokers", [])) > 0
    except (KafkaError, OSError, ValueError):
        return False
    finally:
        client.close()


def ensure_topic(bootstrap: str, topic: str, partitions: int) -> bool:
    """Create the topic with its partition count unless it exists; True when created now."""
    client = admin(bootstrap)
    try:
        if topic in client.list_topics():
            return False
        try:
            client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        except TopicAlreadyExistsError:
            return False
        return True
    finally:
        client.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """{partition: next offset} for every partition of the topic, as the broker sees it now."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = sorted(consumer.partitions_for_topic(topic) or ())
        offsets = consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return {tp.partition: off for tp, off in sorted(offsets.items(), key=lambda kv: kv[0].partition)}
    finally:
        consumer.close()


@dataclass(frozen=True)
class KafkaRecord:
    """One record read back: where it is, and its bytes as the broker holds them."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int  # ms since the epoch, the record's own


def read_range(bootstrap: str, topic: str, start: dict[int, int], end: dict[int, int],
               timeout_s: float = 120.0) -> list[KafkaRecord]:
    """Every record with start[p] <= offset < end[p], per partition (a batch's exact records), in
    (partition, offset) order; what arrived by `timeout_s`, if the broker could not give them all."""
    want = sum(max(0, end[p] - start.get(p, 0)) for p in end)
    if want == 0:
        return []
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "roman-workbook-reader",
                         "enable.auto.commit": False, "enable.partition.eof": False,
                         "fetch.max.bytes": 50 * 2**20, "max.partition.fetch.bytes": 10 * 2**20})
    consumer.assign([Partition(topic, p, start.get(p, 0)) for p in sorted(end) if end[p] > start.get(p, 0)])
    records: list[KafkaRecord] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < want and time.monotonic() < deadline:
            for message in consumer.consume(10_000, 0.5):
                partition, offset = message.partition(), message.offset()
                if message.error() is None and partition is not None and offset is not None and offset < end[partition]:
                    records.append(KafkaRecord(partition, offset, message.key(), message.value(),
                                               message.timestamp()[1]))
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))


def beginning_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """{partition: earliest offset still in the log} for every partition of the topic."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = sorted(consumer.partitions_for_topic(topic) or ())
        offsets = consumer.beginning_offsets([TopicPartition(topic, p) for p in parts])
        return {tp.partition: off for tp, off in offsets.items()}
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: list[int] | None = None) -> dict[int, int]:
    """{partition: next offset} a consumer group committed on the topic (Flink commits on checkpoints).

    `partitions`: the topic's partitions when the caller knows them (a polling loop), else looked up.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = sorted(partitions if partitions is not None else end_offsets(bootstrap, topic))
        found = consumer.committed([Partition(topic, p) for p in parts], timeout=10)
    except KafkaException as exc:
        # A fresh broker is still creating __consumer_offsets (NOT_COORDINATOR, LOAD_IN_PROGRESS):
        # nothing can have been committed yet. Anything else is a real error.
        if exc.args and (exc.args[0].retriable() or exc.args[0].code() in _COORDINATOR_NOT_READY):
            return {}
        raise
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in found if tp.offset >= 0}


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


def connect_producer(bootstrap: str, client_id: str, attempts: int = 3, timeout_s: float = 5.0) -> Producer:
    """A producer whose broker answered a metadata request; retries with backoff, then says what failed."""
    def connected() -> Producer:
        producer = Producer(producer_config(bootstrap, client_id))
        producer.list_topics(timeout=timeout_s)
        return producer

    return retry(connected, attempts=attempts, wait=wait_exponential(multiplier=1.0),
                 when=lambda exc: isinstance(exc, KafkaException), gave_up=lambda exc: ProduceError(
                     f"Kafka at {bootstrap} is unreachable ({exc.args[0].str() if exc.args else exc}) after "
                     f"{attempts} attempts; nothing was sent. Start the stack (`make up`) or set "
                     "KAFKA_BOOTSTRAP_SERVERS."))
