"""The medallion's Spark transforms on a plain local session: no Kafka, no catalog, no service.

Each transform gets a small hand-made batch whose right answer is obvious, so a change that breaks
the split, the first-delivery rule, the pruning predicate or Gold's arithmetic fails here in
seconds, before any integration test starts a stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from pyspark.sql import DataFrame, SparkSession

from lib.contract.events import handle_request
from lib.errors import ParameterError
from lib.medallion.bronze import bounded, classify, first_delivery, split
from lib.medallion.gold import aggregate
from lib.medallion.spark import local_session
from lib.medallion.tables import date_predicate, naive_utc, ranges_predicate

WHEN = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RAW = "topic STRING, partition INT, offset BIGINT, timestamp TIMESTAMP, value BINARY"


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = local_session()
    yield session
    session.stop()


def _event(event_id: str, when: datetime = WHEN, user: str = "alice") -> bytes:
    return handle_request("to_roman", "1994", user, event_id=event_id, event_time=when).to_json()


def _raw(spark: SparkSession, values: list[tuple[int, int, bytes | None]]) -> DataFrame:
    rows = [("t", partition, offset, naive_utc(WHEN), value) for partition, offset, value in values]
    return spark.createDataFrame(rows, RAW)


def _split(spark: SparkSession, raw: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Bronze's classify and split statements over a hand-made batch, as a run stages them."""
    raw.createOrReplaceTempView("raw_batch")
    classify(spark, "raw_batch", naive_utc(WHEN)).createOrReplaceTempView("raw_records")
    return split(spark, "raw_records")


def test_split_sends_each_record_to_events_or_dead_letters_with_its_reason(spark: SparkSession) -> None:
    raw = _raw(spark, [(0, 0, _event("a")), (0, 1, b"not json"), (1, 0, b'{"user_id": "u"}'),
                       (1, 1, None), (2, 0, _event("b", WHEN - timedelta(days=3))), (2, 1, b"\xff\xfe{")])
    events, dead = _split(spark, raw)
    got = {r.event_id: (r.event_date, r.user_id, r.kafka_partition) for r in events.collect()}
    assert got == {"a": (date(2026, 11, 20), "alice", 0), "b": (date(2026, 11, 17), "alice", 2)}
    reasons = {(r.kafka_partition, r.kafka_offset): r.reason for r in dead.collect()}
    assert reasons == {(0, 1): "not JSON: JSONDecodeError", (1, 0): "missing or unusable event_id",
                       (1, 1): "empty record (null value)", (2, 1): "not UTF-8 text"}
    # The raw bytes are kept as they came, beside a text rendering any reader can show.
    binary = {r.kafka_offset: (bytes(r.payload), r.payload_text) for r in dead.where("kafka_partition = 2").collect()}
    assert binary == {1: (b"\xff\xfe{", "\ufffd\ufffd{")}


def test_an_unparsable_event_time_lands_with_a_null_date(spark: SparkSession) -> None:
    payload = _event("c").replace(b"2026-11-20T12:00:00.000+00:00", b"yesterday at noon")
    events, dead = _split(spark, _raw(spark, [(0, 0, payload)]))
    row = events.collect()[0]
    assert (row.event_id, row.event_time, row.event_date) == ("c", None, None)
    assert dead.count() == 0


def test_first_delivery_keeps_the_lowest_partition_then_offset(spark: SparkSession) -> None:
    raw = _raw(spark, [(2, 5, _event("a")), (0, 9, _event("a")), (0, 3, _event("a")), (1, 0, _event("b"))])
    events, _ = _split(spark, raw)
    events.createOrReplaceTempView("raw_events")
    kept = {r.event_id: (r.kafka_partition, r.kafka_offset) for r in first_delivery(spark, "raw_events").collect()}
    assert kept == {"a": (0, 3), "b": (1, 0)}


def test_the_date_predicate_names_the_batch_dates_and_the_slack(spark: SparkSession) -> None:
    raw = _raw(spark, [(0, 0, _event("a")), (0, 1, _event("b", WHEN + timedelta(days=2)))])
    events, _ = _split(spark, raw)
    assert date_predicate(spark, events) == "(t.event_date IN ('2026-11-20', '2026-11-22'))"
    wide = date_predicate(spark, events, slack=timedelta(days=1))
    assert wide == ("(t.event_date IN ('2026-11-19', '2026-11-20', '2026-11-21', '2026-11-22', '2026-11-23'))")
    undated = events.where("event_id = 'a'").selectExpr("CAST(NULL AS DATE) AS event_date")
    assert date_predicate(spark, undated) == "(t.event_date IS NULL)"
    assert date_predicate(spark, events.where("FALSE")) == "FALSE"


def test_gold_aggregates_each_day_and_user(spark: SparkSession) -> None:
    noon = naive_utc(WHEN)
    silver = spark.createDataFrame([
        (date(2026, 11, 20), "alice", True, "to_roman", 1.0, noon),
        (date(2026, 11, 20), "alice", False, "from_roman", 3.0, noon + timedelta(hours=2)),
        (date(2026, 11, 20), "bob", True, "from_roman", 2.0, noon),
        (date(2026, 11, 21), "alice", True, "to_roman", 4.0, noon + timedelta(days=1)),
    ], "event_date DATE, user_id STRING, success BOOLEAN, operation STRING, latency_ms DOUBLE, event_time TIMESTAMP")
    silver.createOrReplaceTempView("silver_rows")
    rows = {(r.event_date, r.user_id): r for r in aggregate(spark, "silver_rows", generated_at=noon).collect()}
    alice = rows[(date(2026, 11, 20), "alice")]
    assert (alice.total_requests, alice.successful_requests, alice.failed_requests) == (2, 1, 1)
    assert (alice.to_roman_requests, alice.from_roman_requests, alice.avg_latency_ms) == (1, 1, 2.0)
    assert (alice.first_event_time, alice.last_event_time) == (noon, noon + timedelta(hours=2))
    assert alice.generated_at == noon
    assert rows[(date(2026, 11, 20), "bob")].from_roman_requests == 1
    assert rows[(date(2026, 11, 21), "alice")].total_requests == 1
    assert len(rows) == 3


def test_a_bound_is_shared_fairly_in_offset_order_and_bounded_runs_tile_the_backlog() -> None:
    ranges = {0: (10, 110), 1: (0, 5), 2: (7, 47), 3: (3, 3)}
    assert bounded(ranges, None) == ranges
    first = bounded(ranges, 60)
    assert first == {0: (10, 38), 1: (0, 5), 2: (7, 34), 3: (3, 3)}  # 1 is short: its share goes to 0 and 2
    assert sum(e - s for s, e in first.values()) == 60
    # Runs in a row, each starting where the last one committed, read every record once.
    position, seen = {p: s for p, (s, _) in ranges.items()}, 0
    while any(position[p] < e for p, (_, e) in ranges.items()):
        run = bounded({p: (position[p], e) for p, (_, e) in ranges.items()}, 60)
        assert all(s == position[p] for p, (s, _) in run.items())
        seen += sum(e - s for s, e in run.values())
        position = {p: e for p, (_, e) in run.items()}
    assert seen == 145 and position == {p: e for p, (_, e) in ranges.items()}
    with pytest.raises(ParameterError, match="max_records=0"):
        bounded(ranges, 0)


def test_a_ranges_predicate_holds_for_exactly_the_records_of_the_ranges(spark: SparkSession) -> None:
    ranges = {0: (2, 4), 1: (5, 5), 2: (0, 1)}  # partition 1's range is empty
    rows = spark.createDataFrame([(p, o) for p in range(3) for o in range(6)],
                                 "kafka_partition INT, kafka_offset BIGINT")
    inside = {(r.kafka_partition, r.kafka_offset) for r in rows.where(ranges_predicate(ranges)).collect()}
    assert inside == {(0, 2), (0, 3), (2, 0)}
    assert rows.where(ranges_predicate({1: (5, 5)})).count() == 0  # nothing to read: no row, not a SQL error
