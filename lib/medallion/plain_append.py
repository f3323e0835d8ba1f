"""The topic landed as a plain sink connector lands it, to show beside Bronze what Bronze adds.

A Kafka Connect sink (to S3 files or to Iceberg) copies each record from its consumer position into
files: one row per record, no parsing of the payload, no dedup, files laid out by when records arrived
(the S3 sink's time-based partitioner writes `year=/month=/day=/hour=` folders of the record time).
Its delivery is at-least-once unless exactly-once is configured end to end: restarted from its last
committed position after a crash, it appends the records it had already written. Here the same Kafka
ranges are appended the same way into a scratch table, twice (the second time a replay), and measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from lib.config import Settings
from lib.medallion.bronze import read_kafka
from lib.medallion.statements import Statement, commit, lines, query
from lib.medallion.tables import BRONZE_DEAD_LETTER, BRONZE_EVENTS, ranges_predicate
from lib.medallion.udfs import register_udfs

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The scratch table: not part of the medallion, dropped and made again by each lesson.
PLAIN_LANDING = "bronze.plain_append_landing"


def create_statement() -> Statement:
    return Statement("plain.create", lines(
        f"CREATE TABLE {PLAIN_LANDING} (",
        "  kafka_topic STRING, kafka_partition INT, kafka_offset BIGINT, kafka_timestamp TIMESTAMP, value BINARY)",
        "USING iceberg PARTITIONED BY (days(kafka_timestamp))  -- by arrival, as a connector's files are"),
        "a table laid out like a sink connector's output")


def append_statement(source: str) -> Statement:
    return Statement("plain.append", lines(
        f"INSERT INTO {PLAIN_LANDING}",
        "SELECT topic, partition, offset, timestamp, value  -- every record as it is",
        f"FROM {source}"), "what a sink connector does: copy, nothing more", target=PLAIN_LANDING)


def land(spark: SparkSession, cfg: Settings, ranges: dict[int, tuple[int, int]], times: int = 2) -> list[int]:
    """Append the records of `ranges` `times` times (the later ones: a replay after a crash) into a fresh
    scratch table; the rows each append added, from its snapshot."""
    spark.sql(f"DROP TABLE IF EXISTS {PLAIN_LANDING} PURGE")
    query(spark, create_statement())
    read_kafka(spark, cfg, ranges)
    return [commit(spark, append_statement("bronze_kafka"))["added"] for _ in range(times)]


def compared(spark: SparkSession, cfg: Settings, ranges: dict[int, tuple[int, int]]) -> pd.DataFrame:
    """The plain landing beside Bronze, for the records of `ranges`: what each holds, measured."""
    register_udfs(spark)
    in_ranges = f"kafka_topic = '{cfg.events_topic}' AND ({ranges_predicate(ranges)})"
    plain = spark.sql(f"""
        SELECT COUNT(*) AS rows_,
               COUNT(DISTINCT event_id) AS events,
               COUNT(event_id) - COUNT(DISTINCT event_id) AS repeated,
               COUNT_IF(reason IS NOT NULL) AS malformed,
               COUNT_IF(to_date(event_time) <> to_date(kafka_timestamp)) AS misfiled
        FROM (SELECT *, CASE WHEN reason IS NULL
                             THEN get_json_object(CAST(value AS STRING), '$.event_id') END AS event_id,
                     try_cast(get_json_object(CAST(value AS STRING), '$.event_time') AS TIMESTAMP) AS event_time
              FROM (SELECT *, malformed_reason(value) AS reason  -- the Python rule, once per row
                    FROM {PLAIN_LANDING} WHERE {in_ranges}))""").first()
    bronze = spark.sql(f"""
        SELECT COUNT(*) AS rows_, COUNT(DISTINCT event_id) AS events,
               COUNT(*) - COUNT(DISTINCT event_id) AS repeated,
               COUNT_IF(to_date(event_time) <> to_date(kafka_timestamp)) AS arrived_another_day,
               COUNT_IF(event_date <> to_date(event_time)) AS misfiled
        FROM {BRONZE_EVENTS} WHERE {in_ranges}""").first()
    dead = spark.sql(f"SELECT COUNT(*) AS n FROM {BRONZE_DEAD_LETTER} WHERE {in_ranges}").first()
    assert plain is not None and bronze is not None and dead is not None  # aggregates always answer one row
    return pd.DataFrame({
        "plain append (a sink connector)": {
            "rows": plain.rows_, "distinct event_ids": plain.events, "rows repeating an event_id": plain.repeated,
            "malformed records, mixed in with no reason": plain.malformed,
            "malformed records, set aside with their reason": 0,
            "events that arrived on another day than they happened": plain.misfiled,
            "of them, filed under the day they arrived": plain.misfiled},
        "Bronze": {
            "rows": bronze.rows_ + dead.n, "distinct event_ids": bronze.events,
            "rows repeating an event_id": bronze.repeated,
            "malformed records, mixed in with no reason": 0,
            "malformed records, set aside with their reason": dead.n,
            "events that arrived on another day than they happened": bronze.arrived_another_day,
            "of them, filed under the day they arrived": bronze.misfiled},
    })
