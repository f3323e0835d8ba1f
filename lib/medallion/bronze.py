"""Bronze: land every Kafka record exactly once, as received.

Incremental by **per-partition** offsets: each run reads, for every partition, from just after
the last offset a committed run consumed up to the end offset fixed when the run started (a single
MAX(kafka_offset) over all partitions would skip or re-read records). Records are split into events
(JSON objects with a usable event_id) and dead letters; events are deduplicated within the batch
(ROW_NUMBER over event_id) and against the table (MERGE ... WHEN NOT MATCHED THEN INSERT), dead
letters by their Kafka coordinates. The run's offsets are appended last, as its commit marker: a
crash before it means the next run reads the same range again, and the MERGEs make that harmless.
Two runs at once cannot both land the same records: see lib.medallion.commits.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lib import faults
from lib.config import Settings
from lib.errors import CommitConflict, ParameterError
from lib.kafka import beginning_offsets, end_offsets
from lib.medallion.catalog import keep_raw_payload
from lib.medallion.commits import insert_new, retry_on_conflict
from lib.medallion.tables import (
    BRONZE_DEAD_LETTER,
    BRONZE_EVENTS,
    BRONZE_OFFSETS,
    create_tables,
    date_predicate,
    naive_utc,
    time_window,
)
from lib.medallion.udfs import malformed_udf, text_udf

#: A re-sent event may carry another event_time (a client retry is stamped anew); its duplicate is
#: looked for in the batch's dates and one day either side.
DATE_SLACK = timedelta(days=1)


@dataclass
class BronzeRun:
    """What one run did, for the notebook's tables and the checks."""

    run_id: str
    backfill: bool
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    records_read: int = 0
    malformed: int = 0
    duplicates_in_batch: int = 0
    events_inserted: int = 0
    dead_letters_inserted: int = 0
    #: Races lost to another run before this attempt committed (each one re-ran the whole step).
    conflicts: int = 0

    @property
    def rows_merged(self) -> int:
        return self.events_inserted + self.dead_letters_inserted


def committed_positions(spark: SparkSession, topic: str) -> dict[int, int]:
    """{partition: next offset to read}, from the offsets committed runs appended."""
    rows = spark.sql(
        f"SELECT kafka_partition, MAX(end_offset) AS pos FROM {BRONZE_OFFSETS} "
        f"WHERE kafka_topic = '{topic}' GROUP BY kafka_partition"
    ).collect()
    return {r.kafka_partition: r.pos for r in rows}


def offset_ranges(spark: SparkSession, cfg: Settings, backfill: bool) -> dict[int, tuple[int, int]]:
    """{partition: (start, end)} for this run; end offsets are fixed now, at the start of the run."""
    ends = end_offsets(cfg.kafka_bootstrap_servers, cfg.events_topic)
    earliest = beginning_offsets(cfg.kafka_bootstrap_servers, cfg.events_topic)
    done = {} if backfill else committed_positions(spark, cfg.events_topic)
    # A partition with no committed offset (new, or added to the topic later) starts at its earliest.
    return {p: (max(done.get(p, earliest[p]), earliest[p]), end) for p, end in sorted(ends.items())}


def bounded(ranges: dict[int, tuple[int, int]], max_records: int | None) -> dict[int, tuple[int, int]]:
    """At most `max_records` of the ranges, shared fairly over the partitions, each in offset order.

    Water-filling: every partition with records left gets an equal share; what a short partition
    does not use goes to the others. The next run starts where each partition's slice ended, so
    bounded runs in a row read everything once: no gap, no overlap.
    """
    if max_records is None:
        return dict(ranges)
    if max_records < 1:
        raise ParameterError(f"max_records={max_records}: give a positive number of records, or None for no bound")
    left = {p: e - s for p, (s, e) in ranges.items() if e > s}
    take = dict.fromkeys(ranges, 0)
    budget = max_records
    while budget and left:
        share = max(1, budget // len(left))
        for p in sorted(left):
            grant = min(share, left[p], budget)
            take[p] += grant
            left[p] -= grant
            budget -= grant
            if not left[p]:
                del left[p]
            if not budget:
                break
    return {p: (s, s + take[p]) for p, (s, _) in ranges.items()}


def read_kafka(spark: SparkSession, cfg: Settings, ranges: dict[int, tuple[int, int]]) -> DataFrame:
    """The records of those ranges, read as a Spark batch."""
    topic = cfg.events_topic
    starts = {topic: {str(p): s for p, (s, _) in ranges.items()}}
    ends = {topic: {str(p): e for p, (_, e) in ranges.items()}}
    return (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", cfg.kafka_bootstrap_servers)
        .option("assign", json.dumps({topic: sorted(ranges)}))
        .option("startingOffsets", json.dumps(starts))
        .option("endingOffsets", json.dumps(ends))
        .option("failOnDataLoss", "true")
        .load()
    )


def split(raw: DataFrame, ingested_at: datetime) -> tuple[DataFrame, DataFrame]:
    """(events, dead letters) of a raw Kafka batch; the same rule as lib.service.events.malformed_reason."""
    classified = raw.select(
        F.col("topic").alias("kafka_topic"), F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"), F.col("timestamp").alias("kafka_timestamp"),
        F.col("value"), F.col("value").cast("string").alias("payload"),
        malformed_udf()(F.col("value")).alias("reason"), F.lit(ingested_at).alias("ingested_at"),
    )
    # A dead letter keeps the raw bytes (lossless: it may not even be UTF-8) beside a text rendering.
    dead = classified.where("reason IS NOT NULL").select(
        "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", F.col("value").alias("payload"),
        text_udf()(F.col("value")).alias("payload_text"), "reason", "ingested_at")
    events = classified.where("reason IS NULL").select(
        F.get_json_object("payload", "$.event_id").alias("event_id"),
        F.expr("try_cast(get_json_object(payload, '$.event_time') AS TIMESTAMP)").alias("event_time"),
        F.get_json_object("payload", "$.user_id").alias("user_id"),
        "payload", "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "ingested_at",
    ).withColumn("event_date", F.to_date("event_time"))
    return events, dead


def first_delivery(events: DataFrame) -> DataFrame:
    """One row per event_id: the earliest delivery (lowest partition, then offset) wins."""
    order = Window.partitionBy("event_id").orderBy("kafka_partition", "kafka_offset")
    return events.withColumn("_n", F.row_number().over(order)).where("_n = 1").drop("_n")


def run_bronze(spark: SparkSession, cfg: Settings, backfill: bool = False, start: datetime | None = None,
               end: datetime | None = None, max_records: int | None = None) -> BronzeRun:
    """One Bronze run: incremental by default; a backfill re-reads from the earliest offsets and keeps
    events with event_time in [start, end), leaving the incremental position alone.

    `max_records` bounds what one run reads (a backlog drained in bounded runs keeps the driver's
    memory flat); the offsets committed say where the next run continues. A run that loses a race
    with another run over the same records starts again from the new position (lib.medallion.commits)."""
    if backfill and (start is None or end is None):
        raise ParameterError("a Bronze backfill needs both start and end: the event_time interval to re-read")
    if keep_raw_payload(cfg, BRONZE_DEAD_LETTER):
        spark.catalog.refreshTable(BRONZE_DEAD_LETTER)  # this session may hold the old schema
    create_tables(spark)
    return retry_on_conflict(lambda conflicts: _run_once(spark, cfg, backfill, start, end, max_records, conflicts),
                             "bronze")


def _run_once(spark: SparkSession, cfg: Settings, backfill: bool, start: datetime | None, end: datetime | None,
              max_records: int | None, conflicts: int) -> BronzeRun:
    run = BronzeRun(run_id=str(uuid.uuid4()), backfill=backfill, conflicts=conflicts)
    run.ranges = bounded(offset_ranges(spark, cfg, backfill), max_records)
    if all(s >= e for s, e in run.ranges.values()):
        return run
    ingested_at = naive_utc()
    raw = read_kafka(spark, cfg, run.ranges).persist()
    events = batch = None
    try:
        run.records_read = raw.count()
        events, dead = split(raw, ingested_at)
        if backfill:
            events = events.where(time_window("event_time", start, end))
        events = events.persist()
        batch = first_delivery(events).persist()
        distinct = batch.count()
        run.duplicates_in_batch = events.count() - distinct
        run.malformed = dead.count()
        nearby = date_predicate(spark, batch, slack=DATE_SLACK)
        faults.checkpoint("bronze.before_events")
        run.events_inserted = insert_new(spark, batch, BRONZE_EVENTS, f"t.event_id = s.event_id AND {nearby}")
        faults.checkpoint("bronze.after_events")
        if not backfill:
            run.dead_letters_inserted = insert_new(
                spark, dead, BRONZE_DEAD_LETTER,
                "t.kafka_topic = s.kafka_topic AND t.kafka_partition = s.kafka_partition "
                "AND t.kafka_offset = s.kafka_offset")
        faults.checkpoint("bronze.before_offsets")
        if not backfill:
            commit_offsets(spark, cfg, run)
        faults.checkpoint("bronze.after_commit")  # committed, not yet reported: a retry must change nothing
    finally:
        for frame in (raw, events, batch):
            if frame is not None:
                frame.unpersist()
    return run


def commit_offsets(spark: SparkSession, cfg: Settings, run: BronzeRun) -> None:
    """Append the run's ranges: its commit marker. Only from the position the run started at: a
    range that overlaps one another run committed meanwhile is refused, and the run starts again."""
    topic = cfg.events_topic
    now = naive_utc()
    rows = [(run.run_id, topic, p, s, e, now) for p, (s, e) in run.ranges.items() if e > s]
    insert_new(spark, spark.createDataFrame(rows, spark.table(BRONZE_OFFSETS).schema), BRONZE_OFFSETS,
               "t.kafka_topic = s.kafka_topic AND t.kafka_partition = s.kafka_partition "
               "AND t.start_offset < s.end_offset AND s.start_offset < t.end_offset")
    # Counted by run_id, not by the table's growth: another topic's run may commit meanwhile.
    spark.catalog.refreshTable(BRONZE_OFFSETS)
    kept = spark.table(BRONZE_OFFSETS).where(f"run_id = '{run.run_id}'").count()
    if kept < len(rows):
        raise CommitConflict(f"bronze: another run committed offsets overlapping {len(rows) - kept} of this "
                             "run's ranges; its records are in the tables, this run reads on from there")
