"""Silver: validated, typed events, one row per event_id, for an interval of ingestion time.

Processes the Bronze rows with ingested_at in [start, end) (the default is the last full hour),
validates each payload with lib.contract.events.validation_reason (required fields, ISO timestamps, the
operation, and for a successful request that its output really is the conversion of its input),
types the valid ones and MERGEs them ON event_id; failures go to silver.rejected_events with the
reason. Insert-only MERGEs make a re-run of an interval change nothing.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib import faults
from lib.contract.events import ADDED_FIELDS
from lib.medallion.commits import insert_new, insert_only, retry_on_conflict, temp_view
from lib.medallion.statements import Commits, Statement, lines, one_row, query
from lib.medallion.tables import (
    BRONZE_EVENTS,
    SILVER_EVENTS,
    SILVER_REJECTED,
    create_tables,
    date_predicate,
    has_column,
    naive_utc,
    time_window,
)
from lib.medallion.udfs import register_udfs

#: Every field of every event schema version, typed; a v1 payload reads `client` as NULL.
TYPED_SCHEMA = (
    "event_id STRING, event_time STRING, user_id STRING, operation STRING, input STRING, output STRING, "
    "success BOOLEAN, error STRING, latency_ms DOUBLE, schema_version INT, client STRING"
)
#: The columns Silver takes from the payload, and those a schema migration adds (lib.medallion.migration).
FIELDS = ("user_id", "operation", "input", "output", "success", "error", "latency_ms", "schema_version")
MIGRATED_FIELDS = tuple(name for added in ADDED_FIELDS.values() for name in added)


@dataclass
class SilverRun(Commits):
    start: datetime
    end: datetime
    bronze_rows: int = 0
    valid: int = 0
    rejected: int = 0
    inserted: int = 0
    rejected_inserted: int = 0

    @property
    def rows_merged(self) -> int:
        return self.inserted + self.rejected_inserted


def bronze_interval(spark: SparkSession, start: datetime, end: datetime) -> DataFrame:
    """Bronze rows ingested in [start, end): each Bronze run writes its own files, so Iceberg's
    file statistics on ingested_at skip every other run's files."""
    return spark.table(BRONZE_EVENTS).where(time_window("ingested_at", start, end))


def validate_statement(start: datetime, end: datetime) -> Statement:
    """The interval's Bronze rows, each with why it fails validation (NULL: valid)."""
    return Statement("silver.validate", lines(
        "SELECT *, validation_reason(payload) AS reason  -- lib/contract/events.py, as a pandas UDF",
        f"FROM {BRONZE_EVENTS}",
        f"WHERE {time_window('ingested_at', start, end)}  -- this run's interval of ingestion time"),
        "check every event against the contract; a failure is kept with its reason, not dropped")


def payload_field(name: str, payload: str = "payload") -> str:
    """SQL for one typed field of a raw payload, typed as in TYPED_SCHEMA: what the migration's
    reprocessing derives a column with, the way Silver's runs do."""
    types = dict(part.strip().split(" ", 1) for part in TYPED_SCHEMA.split(","))
    return f"from_json({payload}, '{name} {types[name]}').{name}"


def typed_statement(source: str, processed_at: datetime, migrated: tuple[str, ...] = ()) -> Statement:
    """The valid rows of `source`, typed into Silver's columns (and the `migrated` ones the table has)."""
    fields = ", ".join(f"doc.{c}" for c in FIELDS + migrated)
    return Statement("silver.typed", lines(
        "SELECT event_id, event_time, to_date(event_time) AS event_date,",
        f"       {fields},",
        f"       ingested_at, TIMESTAMP '{processed_at}' AS processed_at",
        "FROM (",
        "  SELECT event_id, ingested_at, try_cast(doc.event_time AS TIMESTAMP) AS event_time, doc",
        f"  FROM (SELECT event_id, ingested_at, from_json(payload, '{TYPED_SCHEMA}') AS doc  -- parsed once",
        f"        FROM {source} WHERE reason IS NULL))"),
        "the payload's fields as typed columns, and when this run processed them")


def rejected_statement(source: str, processed_at: datetime) -> Statement:
    """The rows of `source` that failed validation, with their reason."""
    return Statement("silver.rejected", lines(
        f"SELECT event_id, reason, payload, ingested_at, TIMESTAMP '{processed_at}' AS processed_at",
        f"FROM {source} WHERE reason IS NOT NULL"), "")


def validate(spark: SparkSession, source: str, processed_at: datetime) -> tuple[DataFrame, DataFrame]:
    """(typed valid events, rejected rows with their reason) of the validated rows in the view `source`.

    The typed rows carry the columns Silver has now: before the schema migration a v2 event lands
    without its client (Bronze keeps the raw payload, so the migration can fill it in later)."""
    migrated = tuple(c for c in MIGRATED_FIELDS if has_column(spark, SILVER_EVENTS, c))
    return (query(spark, typed_statement(source, processed_at, migrated)),
            query(spark, rejected_statement(source, processed_at)))


def run_silver(spark: SparkSession, start: datetime, end: datetime) -> SilverRun:
    """One Silver run over [start, end) of ingestion time (the scheduler's default: the last full hour).
    A run that loses a race with another run of the same rows does its work again (lib.medallion.commits)."""
    create_tables(spark)
    register_udfs(spark)
    return retry_on_conflict(lambda conflicts: _run_once(spark, start, end, conflicts), "silver")


def _run_once(spark: SparkSession, start: datetime, end: datetime, conflicts: int) -> SilverRun:
    run = SilverRun(start, end, conflicts=conflicts)
    processed_at = naive_utc()
    with ExitStack() as staged:
        # Materialized with its lineage cut: a MERGE whose source still reads an Iceberg table through a
        # cached plan fails to plan on Spark 4.1 ("No plan for TableReference") once a run is retried.
        checked = query(spark, validate_statement(start, end)).localCheckpoint()
        staged.enter_context(temp_view(spark, checked, "silver_checked"))
        # Every figure from one pass over the checked rows; the rejects are a view over them.
        counted = one_row(checked.agg(F.count("*"), F.count("reason")))
        run.bronze_rows, run.rejected = int(counted[0]), int(counted[1])
        run.valid = run.bronze_rows - run.rejected
        if run.bronze_rows == 0:
            return run
        valid, rejected = validate(spark, "silver_checked", processed_at)
        valid = valid.persist()  # read twice: its dates (the MERGE's pruning predicate), then the MERGE
        staged.callback(valid.unpersist)
        same_day = date_predicate(spark, valid)
        faults.checkpoint("silver.before_merge")
        merge = run.commits["silver.merge_events"] = insert_new(spark, valid, insert_only(
            "silver.merge_events", SILVER_EVENTS, "silver_valid",
            ["t.event_id = s.event_id", f"{same_day}  -- prunes the target to the batch's event dates"],
            "insert-only: a re-run of the interval (or an overlapping one) finds its rows matched"))
        run.inserted = merge["added"]
        faults.checkpoint("silver.after_events")
        merge = run.commits["silver.merge_rejected"] = insert_new(spark, rejected, insert_only(
            "silver.merge_rejected", SILVER_REJECTED, "silver_rejects", ["t.event_id = s.event_id"],
            "every reject once, with its reason"))
        run.rejected_inserted = merge["added"]
    return run
