"""Silver: validated, typed events, one row per event_id, for an interval of ingestion time.

Processes the Bronze rows with ingested_at in [start, end) (the default is the last full hour),
validates each payload with lib.service.events.validation_reason (required fields, ISO timestamps, the
operation, and for a successful request that its output really is the conversion of its input),
types the valid ones and MERGEs them ON event_id; failures go to silver.rejected_events with the
reason. Insert-only MERGEs make a re-run of an interval change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib import faults
from lib.medallion.commits import insert_new, retry_on_conflict
from lib.medallion.tables import (
    BRONZE_EVENTS,
    SILVER_EVENTS,
    SILVER_REJECTED,
    columns,
    create_tables,
    date_predicate,
    naive_utc,
    time_window,
)
from lib.medallion.udfs import validation_udf

TYPED_SCHEMA = (
    "event_id STRING, event_time STRING, user_id STRING, operation STRING, input STRING, output STRING, "
    "success BOOLEAN, error STRING, latency_ms DOUBLE, schema_version INT"
)


@dataclass
class SilverRun:
    start: datetime
    end: datetime
    bronze_rows: int = 0
    valid: int = 0
    rejected: int = 0
    inserted: int = 0
    rejected_inserted: int = 0
    conflicts: int = 0

    @property
    def rows_merged(self) -> int:
        return self.inserted + self.rejected_inserted


def bronze_interval(spark: SparkSession, start: datetime, end: datetime) -> DataFrame:
    """Bronze rows ingested in [start, end): each Bronze run writes its own files, so Iceberg's
    file statistics on ingested_at skip every other run's files."""
    return spark.table(BRONZE_EVENTS).where(time_window("ingested_at", start, end))


def validate(bronze: DataFrame, processed_at: datetime) -> tuple[DataFrame, DataFrame]:
    """(typed valid events, rejected rows with their reason)."""
    checked = bronze.withColumn("reason", validation_udf()(F.col("payload")))
    rejected = checked.where("reason IS NOT NULL").select(
        "event_id", "reason", "payload", "ingested_at", F.lit(processed_at).alias("processed_at"))
    doc = F.from_json("payload", TYPED_SCHEMA)
    valid = checked.where("reason IS NULL").select(
        "event_id",
        F.expr("try_cast(get_json_object(payload, '$.event_time') AS TIMESTAMP)").alias("event_time"),
        doc["user_id"].alias("user_id"), doc["operation"].alias("operation"), doc["input"].alias("input"),
        doc["output"].alias("output"), doc["success"].alias("success"), doc["error"].alias("error"),
        doc["latency_ms"].alias("latency_ms"), doc["schema_version"].alias("schema_version"),
        "ingested_at", F.lit(processed_at).alias("processed_at"),
    ).withColumn("event_date", F.to_date("event_time"))
    return valid.select(*columns(SILVER_EVENTS)), rejected


def run_silver(spark: SparkSession, start: datetime, end: datetime) -> SilverRun:
    """One Silver run over [start, end) of ingestion time (the scheduler's default: the last full hour).
    A run that loses a race with another run of the same rows does its work again (lib.medallion.commits)."""
    create_tables(spark)
    return retry_on_conflict(lambda conflicts: _run_once(spark, start, end, conflicts), "silver")


def _run_once(spark: SparkSession, start: datetime, end: datetime, conflicts: int) -> SilverRun:
    run = SilverRun(start, end, conflicts=conflicts)
    processed_at = naive_utc()
    # Materialized with its lineage cut: a MERGE whose source still reads an Iceberg table through a
    # cached plan fails to plan on Spark 4.1 ("No plan for TableReference") once a run is retried.
    bronze = bronze_interval(spark, start, end).localCheckpoint()
    valid = rejected = None
    try:
        run.bronze_rows = bronze.count()
        if run.bronze_rows == 0:
            return run
        valid, rejected = validate(bronze, processed_at)
        valid, rejected = valid.persist(), rejected.persist()
        run.valid, run.rejected = valid.count(), rejected.count()
        same_day = date_predicate(spark, valid)
        faults.checkpoint("silver.before_merge")
        run.inserted = insert_new(spark, valid, SILVER_EVENTS, f"t.event_id = s.event_id AND {same_day}")
        faults.checkpoint("silver.after_events")
        run.rejected_inserted = insert_new(spark, rejected, SILVER_REJECTED, "t.event_id = s.event_id")
    finally:
        for frame in (bronze, valid, rejected):
            if frame is not None:
                frame.unpersist()
    return run
