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
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib import faults
from lib.config import Settings
from lib.errors import CommitConflict, ParameterError
from lib.kafka import beginning_offsets, end_offsets
from lib.medallion.catalog import keep_raw_payload
from lib.medallion.commits import insert_new, insert_only, retry_on_conflict, temp_view
from lib.medallion.spark import spark_cores
from lib.medallion.statements import Commits, Statement, commit, lines, one_row, query
from lib.medallion.tables import (
    BRONZE_DEAD_LETTER,
    BRONZE_EVENTS,
    BRONZE_OFFSETS,
    columns,
    create_tables,
    date_predicate,
    naive_utc,
    time_window,
)
from lib.medallion.udfs import register_udfs

#: A re-sent event may carry another event_time (a client retry is stamped anew); its duplicate is
#: looked for in the batch's dates and one day either side.
DATE_SLACK = timedelta(days=1)


@dataclass
class BronzeRun(Commits):
    """What one run did, for the notebook's tables and the checks."""

    run_id: str
    backfill: bool
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    records_read: int = 0
    malformed: int = 0
    duplicates_in_batch: int = 0
    events_inserted: int = 0
    dead_letters_inserted: int = 0

    @property
    def rows_merged(self) -> int:
        return self.events_inserted + self.dead_letters_inserted


def positions_statement(topic: str) -> Statement:
    """Where the last runs stopped: per partition, the end of the newest committed range."""
    return Statement("bronze.positions", lines(
        "SELECT kafka_partition, MAX(end_offset) AS pos",
        f"FROM {BRONZE_OFFSETS}",
        f"WHERE kafka_topic = '{topic}'",
        "GROUP BY kafka_partition  -- one position per partition: offsets of different partitions do not compare"),
        "the incremental read's start: the next offset to read in each partition")


def committed_positions(spark: SparkSession, topic: str) -> dict[int, int]:
    """{partition: next offset to read}, from the offsets committed runs appended."""
    rows = query(spark, positions_statement(topic)).collect()
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


def read_statement(cfg: Settings, ranges: dict[int, tuple[int, int]]) -> Statement:
    """The Kafka read of those ranges, as a temporary view `bronze_kafka` (a Spark batch read)."""
    topic = cfg.events_topic
    options = {
        "kafka.bootstrap.servers": cfg.kafka_bootstrap_servers,
        "assign": json.dumps({topic: sorted(ranges)}),
        "startingOffsets": json.dumps({topic: {str(p): s for p, (s, _) in ranges.items()}}),
        "endingOffsets": json.dumps({topic: {str(p): e for p, (_, e) in ranges.items()}}),
        "failOnDataLoss": "true",
        # Spark reads a Kafka partition in one task by default: 3 partitions on 2 cores run as two
        # waves, the second on one core. Split into more tasks than cores, the read keeps both busy.
        "minPartitions": str(2 * spark_cores(cfg)),
    }
    return Statement("bronze.read", lines(
        "CREATE OR REPLACE TEMPORARY VIEW bronze_kafka",
        "USING kafka OPTIONS (",
        ",\n".join(f"  '{k}' '{v}'" for k, v in options.items()),
        ")"), "this run's records: per partition, from the committed position to the end offset fixed now")


def read_kafka(spark: SparkSession, cfg: Settings, ranges: dict[int, tuple[int, int]]) -> DataFrame:
    """The records of those ranges, read as a Spark batch (the view `bronze_kafka`)."""
    query(spark, read_statement(cfg, ranges))
    return spark.table("bronze_kafka")


def classify_statement(source: str, ingested_at: datetime) -> Statement:
    """Each raw record with its Kafka coordinates and why it is malformed (NULL: an event)."""
    return Statement("bronze.classify", lines(
        "SELECT topic AS kafka_topic, partition AS kafka_partition, offset AS kafka_offset,",
        "       timestamp AS kafka_timestamp, value,",
        "       malformed_reason(value) AS reason,  -- lib/contract/events.py, as a pandas UDF",
        f"       TIMESTAMP '{ingested_at}' AS ingested_at",
        f"FROM {source}"), "split the batch: events and dead letters, by the event contract's rule")


def events_statement(source: str, window: str | None) -> Statement:
    """The events of a classified batch, with the columns Bronze keeps (and a backfill's window)."""
    event_time = "try_cast(get_json_object(payload, '$.event_time') AS TIMESTAMP)"
    return Statement("bronze.events", lines(
        "SELECT * FROM (",
        "  SELECT get_json_object(payload, '$.event_id') AS event_id,",
        f"         {event_time} AS event_time,",
        f"         to_date({event_time}) AS event_date,",
        "         get_json_object(payload, '$.user_id') AS user_id,",
        "         payload, kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, ingested_at",
        "  FROM (SELECT *, CAST(value AS STRING) AS payload  -- an event is UTF-8 text (classify checked)",
        f"        FROM {source} WHERE reason IS NULL))",
        f"WHERE {window}  -- a backfill keeps only its event_time interval" if window else ""),
        "the events, as received, with the fields Bronze needs to find duplicates and partitions")


def dead_letters_statement(source: str) -> Statement:
    """The malformed records of a classified batch: raw bytes (lossless), a text rendering, the reason."""
    return Statement("bronze.dead_letters", lines(
        "SELECT kafka_topic, kafka_partition, kafka_offset, kafka_timestamp,",
        "       value AS payload, payload_text(value) AS payload_text, reason, ingested_at",
        f"FROM {source} WHERE reason IS NOT NULL"),
        "malformed records are kept, never dropped: raw bytes (they may not even be UTF-8) and the reason")


def dedup_statement(source: str) -> Statement:
    """One row per event_id: the earliest delivery (lowest partition, then offset) wins; `deliveries`
    says how many the batch held (one sort serves both windows)."""
    return Statement("bronze.dedup", lines(
        f"SELECT {', '.join(columns(BRONZE_EVENTS))}, deliveries",
        "FROM (",
        "  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY kafka_partition, kafka_offset) AS delivery,",
        "         COUNT(*) OVER (PARTITION BY event_id) AS deliveries",
        f"  FROM {source})",
        "WHERE delivery = 1  -- the first delivery of each event_id; deliveries counts them all"),
        "duplicates within the batch: a client retry, a replay by a second producer")


def classify(spark: SparkSession, source: str, ingested_at: datetime) -> DataFrame:
    """The raw Kafka records of the view `source`, each with its reason to be a dead letter, if any."""
    register_udfs(spark)
    return query(spark, classify_statement(source, ingested_at))


def split(spark: SparkSession, source: str, window: str | None = None) -> tuple[DataFrame, DataFrame]:
    """(events, dead letters) of the classified records in the view `source`."""
    register_udfs(spark)
    return (query(spark, events_statement(source, window)),
            query(spark, dead_letters_statement(source)))


def first_delivery(spark: SparkSession, source: str) -> DataFrame:
    """One row per event_id of the events in the view `source`, with its count of deliveries
    (see dedup_statement)."""
    return query(spark, dedup_statement(source))


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
    window = time_window("event_time", start, end) if backfill and start and end else None
    with ExitStack() as staged:
        read_kafka(spark, cfg, run.ranges)
        staged.callback(spark.catalog.dropTempView, "bronze_kafka")
        # Two things are kept for the run: the classified records (Kafka is read and classified once)
        # and the deduplicated batch. Events and dead letters are views over the first.
        records = _staged(staged, spark, classify(spark, "bronze_kafka", naive_utc()), "bronze_records")
        events, dead = split(spark, "bronze_records", window)
        staged.enter_context(temp_view(spark, events, "bronze_read"))
        deduplicated = _staged(staged, spark, first_delivery(spark, "bronze_read"), "bronze_deduplicated")
        # Every figure from one pass over each: no count per step.
        read = one_row(records.agg(F.count("*"), F.count("reason")))
        run.records_read, run.malformed = int(read[0]), int(read[1])
        kept = one_row(deduplicated.agg(F.count("*"), F.sum("deliveries")))
        run.duplicates_in_batch = int(kept[1] or 0) - int(kept[0])
        batch = deduplicated.select(*columns(BRONZE_EVENTS))
        nearby = date_predicate(spark, batch, slack=DATE_SLACK)
        faults.checkpoint("bronze.before_events")
        merge = run.commits["bronze.merge_events"] = insert_new(spark, batch, insert_only(
            "bronze.merge_events", BRONZE_EVENTS, "bronze_batch",
            ["t.event_id = s.event_id",
             f"{nearby}  -- prunes the target to the batch's event dates, one day either side"],
            "new events only: an event_id already in the table (an earlier run, a re-read) is skipped"))
        run.events_inserted = merge["added"]
        faults.checkpoint("bronze.after_events")
        if not backfill:
            merge = run.commits["bronze.merge_dead_letters"] = insert_new(spark, dead, insert_only(
                "bronze.merge_dead_letters", BRONZE_DEAD_LETTER, "bronze_dead",
                ["t.kafka_topic = s.kafka_topic", "t.kafka_partition = s.kafka_partition",
                 "t.kafka_offset = s.kafka_offset"],
                "a dead letter is one Kafka record: its coordinates say whether it is already kept"))
            run.dead_letters_inserted = merge["added"]
        faults.checkpoint("bronze.before_offsets")
        if not backfill:
            commit_offsets(spark, cfg, run)
        faults.checkpoint("bronze.after_commit")  # committed, not yet reported: a retry must change nothing
    return run


def _staged(stack: ExitStack, spark: SparkSession, frame: DataFrame, view: str) -> DataFrame:
    """`frame`, computed once and kept for the rest of the run, as the view `view`."""
    frame = frame.persist()
    stack.callback(frame.unpersist)
    stack.enter_context(temp_view(spark, frame, view))
    return frame


def offsets_statement(cfg: Settings, run: BronzeRun, committed_at: datetime) -> Statement:
    """The run's ranges as rows of bronze.ingest_offsets, MERGEd only where no committed range overlaps."""
    rows = ",\n".join(f"    ('{run.run_id}', '{cfg.events_topic}', {p}, {s}L, {e}L, TIMESTAMP '{committed_at}')"
                      for p, (s, e) in sorted(run.ranges.items()) if e > s)
    source = lines("(SELECT * FROM VALUES", rows,
                   "  AS v(run_id, kafka_topic, kafka_partition, start_offset, end_offset, committed_at))")
    return insert_only(
        "bronze.commit_offsets", BRONZE_OFFSETS, source,
        ["t.kafka_topic = s.kafka_topic", "t.kafka_partition = s.kafka_partition",
         "t.start_offset < s.end_offset AND s.start_offset < t.end_offset  -- overlaps a committed range"],
        "the commit marker, last: a crash before it means the next run reads the same range again",
        staged=False)


def commit_offsets(spark: SparkSession, cfg: Settings, run: BronzeRun) -> None:
    """Append the run's ranges: its commit marker. Only from the position the run started at: a
    range that overlaps one another run committed meanwhile is refused, and the run starts again."""
    wanted = sum(1 for s, e in run.ranges.values() if e > s)
    # Counted from this statement's own snapshot: another topic's run may commit meanwhile.
    run.commits["bronze.commit_offsets"] = figures = commit(spark, offsets_statement(cfg, run, naive_utc()))
    kept = figures["added"]
    if kept < wanted:
        raise CommitConflict(f"bronze: another run committed offsets overlapping {wanted - kept} of this "
                             "run's ranges; its records are in the tables, this run reads on from there")
