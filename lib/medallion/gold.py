"""Gold: daily statistics per (event_date, user_id), correct under late data and re-runs.

A naive daily job aggregates only the interval's Silver rows and overwrites the key: wrong as
soon as a key's events arrive in several intervals, or late. Here the interval only says *which
keys changed* (Silver rows processed in [start, end)); every touched key is then recomputed
from all of Silver and MERGEd ON (event_date, user_id). After any sequence of runs, Gold equals
a full recompute from Silver.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib import faults
from lib.medallion.commits import retry_on_conflict, temp_view
from lib.medallion.tables import GOLD_DAILY, SILVER_EVENTS, create_tables, in_list, naive_utc, time_window


@dataclass
class GoldRun:
    start: datetime
    end: datetime
    touched_keys: int = 0
    touched_dates: int = 0
    rows_after: int = 0
    conflicts: int = 0

    @property
    def rows_merged(self) -> int:
        """Every touched key is recomputed and MERGEd (updated or inserted)."""
        return self.touched_keys


def aggregate(silver: DataFrame, generated_at: datetime | None) -> DataFrame:
    """The Gold metrics of Silver rows, by (event_date, user_id). Also the full-recompute reference
    (with generated_at None)."""
    return silver.groupBy("event_date", "user_id").agg(
        F.count("*").alias("total_requests"),
        F.sum(F.col("success").cast("long")).alias("successful_requests"),
        F.sum((~F.col("success")).cast("long")).alias("failed_requests"),
        F.sum((F.col("operation") == "to_roman").cast("long")).alias("to_roman_requests"),
        F.sum((F.col("operation") == "from_roman").cast("long")).alias("from_roman_requests"),
        F.avg("latency_ms").alias("avg_latency_ms"),
        F.min("event_time").alias("first_event_time"),
        F.max("event_time").alias("last_event_time"),
    ).withColumn("generated_at", F.lit(generated_at))


def run_gold(spark: SparkSession, start: datetime, end: datetime) -> GoldRun:
    """Recompute every (event_date, user_id) that Silver rows processed in [start, end) touched
    (the scheduler's default interval: the previous day). Two runs at once: the MERGE updates rows,
    so Iceberg validates it, and the loser recomputes from the new state (lib.medallion.commits)."""
    create_tables(spark)
    return retry_on_conflict(lambda conflicts: _run_once(spark, start, end, conflicts), "gold")


def _run_once(spark: SparkSession, start: datetime, end: datetime, conflicts: int) -> GoldRun:
    run = GoldRun(start, end, conflicts=conflicts)
    touched = spark.table(SILVER_EVENTS).where(time_window("processed_at", start, end)) \
        .select("event_date", "user_id").distinct().persist()
    try:
        run.touched_keys = touched.count()
        if run.touched_keys == 0:
            return run
        dates = sorted(r.event_date for r in touched.select("event_date").distinct().collect())
        run.touched_dates = len(dates)
        silver = spark.table(SILVER_EVENTS).where(f"event_date IN ({in_list(dates)})")
        fresh = aggregate(silver.join(touched, ["event_date", "user_id"], "left_semi"),
                          naive_utc())
        faults.checkpoint("gold.before_merge")
        with temp_view(spark, fresh, "gold_batch") as view:
            spark.sql(f"""
                MERGE INTO {GOLD_DAILY} t USING {view} s
                ON t.event_date = s.event_date AND t.user_id = s.user_id AND t.event_date IN ({in_list(dates)})
                WHEN MATCHED THEN UPDATE SET *
                WHEN NOT MATCHED THEN INSERT *""")
        run.rows_after = spark.table(GOLD_DAILY).count()
    finally:
        touched.unpersist()
    return run
