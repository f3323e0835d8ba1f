"""The invariants of DESIGN.md as checks that return figures, for notebooks, tests and drills.

Each check recomputes its side from the source of truth (Kafka itself, or all of Silver),
never from what a job reported, so a job that lies about its work cannot pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib.config import Settings
from lib.kafka import beginning_offsets, end_offsets
from lib.medallion.bronze import committed_positions, read_kafka, split
from lib.medallion.gold import aggregate
from lib.medallion.silver import bronze_interval
from lib.medallion.tables import (
    BRONZE_DEAD_LETTER,
    BRONZE_EVENTS,
    BRONZE_OFFSETS,
    GOLD_DAILY,
    SILVER_EVENTS,
    SILVER_REJECTED,
    naive_utc,
)


@dataclass(frozen=True)
class Invariant:
    name: str
    ok: bool
    detail: str


def kafka_accounted(spark: SparkSession, cfg: Settings) -> Invariant:
    """Every Kafka record is in exactly one of bronze events (one row per distinct event_id) or dead letters."""
    ends = end_offsets(cfg.kafka_bootstrap_servers, cfg.events_topic)
    starts = beginning_offsets(cfg.kafka_bootstrap_servers, cfg.events_topic)
    upto = committed_positions(spark, cfg.events_topic)
    ranges = {p: (starts[p], upto.get(p, starts[p])) for p in ends}
    events, dead = split(read_kafka(spark, cfg, ranges), naive_utc())
    kafka_ids = events.select("event_id").distinct()
    bronze = spark.table(BRONZE_EVENTS).where(f"kafka_topic = '{cfg.events_topic}'")
    missing = kafka_ids.join(bronze.select("event_id"), "event_id", "left_anti").count()
    extra = bronze.select("event_id").join(kafka_ids, "event_id", "left_anti").count()
    doubled = bronze.groupBy("event_id").count().where("count > 1").count()
    coords = ["kafka_topic", "kafka_partition", "kafka_offset"]
    dead_letters = spark.table(BRONZE_DEAD_LETTER).where(f"kafka_topic = '{cfg.events_topic}'")
    dead_missing = dead.select(*coords).join(dead_letters.select(*coords), coords, "left_anti").count()
    dead_doubled = dead_letters.groupBy(*coords).count().where("count > 1").count()
    ok = missing == extra == doubled == dead_missing == dead_doubled == 0
    return Invariant("every Kafka record in exactly one of bronze events / dead letters", ok,
                     f"missing events {missing}, unknown events {extra}, doubled event_ids {doubled}, "
                     f"missing dead letters {dead_missing}, doubled dead letters {dead_doubled}")


def offsets_tile(spark: SparkSession, cfg: Settings) -> Invariant:
    """The committed ranges of each partition follow each other: no gap, no overlap, whatever was
    bounded, crashed, retried or raced."""
    ranges = spark.sql(f"""
        SELECT kafka_partition, start_offset, end_offset,
               LAG(end_offset) OVER (PARTITION BY kafka_partition ORDER BY start_offset) AS previous_end
        FROM {BRONZE_OFFSETS} WHERE kafka_topic = '{cfg.events_topic}'""")
    gaps = ranges.where("previous_end < start_offset").count()
    overlaps = ranges.where("previous_end > start_offset").count()
    return Invariant("committed offset ranges tile each partition", gaps == overlaps == 0,
                     f"gaps {gaps}, overlaps {overlaps}")


def bronze_is_silver_plus_rejected(spark: SparkSession) -> Invariant:
    """bronze.conversion_events = silver.conversion_events + silver.rejected_events, by event_id."""
    bronze = spark.table(BRONZE_EVENTS).select("event_id")
    silver = spark.table(SILVER_EVENTS).select("event_id")
    rejected = spark.table(SILVER_REJECTED).select("event_id")
    both = silver.intersect(rejected).count()
    union = silver.union(rejected)
    not_processed = bronze.subtract(union).count()
    unknown = union.subtract(bronze).count()
    doubled = union.groupBy("event_id").count().where("count > 1").count()
    ok = both == not_processed == unknown == doubled == 0
    return Invariant("bronze = silver + rejected", ok,
                     f"in both {both}, bronze not in silver {not_processed}, not in bronze {unknown}, "
                     f"doubled {doubled}")


def silver_covers(spark: SparkSession, start: datetime, end: datetime) -> Invariant:
    """Every bronze row ingested in [start, end) is in exactly one of silver or rejected."""
    ids = bronze_interval(spark, start, end).select("event_id")
    silver = spark.table(SILVER_EVENTS).select("event_id")
    rejected = spark.table(SILVER_REJECTED).select("event_id")
    missing = ids.subtract(silver.union(rejected)).count()
    both = ids.intersect(silver).intersect(rejected).count()
    doubled = silver.groupBy("event_id").count().where("count > 1").count()
    ok = missing == both == doubled == 0
    return Invariant("bronze rows of the interval = silver + rejected", ok,
                     f"not processed {missing}, in both {both}, doubled in silver {doubled}")


def gold_matches_recompute(spark: SparkSession, keys: DataFrame | None = None) -> Invariant:
    """For every (event_date, user_id) (or those in `keys`), gold equals a full recompute from silver."""
    silver, gold = spark.table(SILVER_EVENTS), spark.table(GOLD_DAILY)
    if keys is not None:
        silver = silver.join(keys, ["event_date", "user_id"], "left_semi")
        gold = gold.join(keys, ["event_date", "user_id"], "left_semi")
    full = aggregate(silver, None).drop("generated_at")
    exact = ["total_requests", "successful_requests", "failed_requests", "to_roman_requests",
             "from_roman_requests", "first_event_time", "last_event_time"]
    joined = full.alias("r").join(gold.alias("g"), ["event_date", "user_id"], "full_outer")
    differs = F.col("r.total_requests").isNull() | F.col("g.total_requests").isNull()
    for column in exact:
        differs = differs | ~F.col(f"r.{column}").eqNullSafe(F.col(f"g.{column}"))
    # Averages are compared with a tolerance: a recompute may add the same doubles in another order.
    differs = differs | (F.abs(F.col("r.avg_latency_ms") - F.col("g.avg_latency_ms")) > 1e-9)
    bad = joined.where(differs)
    missing = bad.where("g.total_requests IS NULL").count()
    stale = bad.where("g.total_requests IS NOT NULL").count()
    doubled = gold.groupBy("event_date", "user_id").count().where("count > 1").count()
    return Invariant("gold = full recompute from silver", missing == stale == doubled == 0,
                     f"keys missing from gold {missing}, keys with other values {stale}, doubled keys {doubled}")


def check_all(spark: SparkSession, cfg: Settings,
              layers: tuple[str, ...] = ("bronze", "silver", "gold")) -> list[Invariant]:
    """The invariants of the named layers, each recomputed from its source."""
    checks = []
    if "bronze" in layers:
        checks.extend([kafka_accounted(spark, cfg), offsets_tile(spark, cfg)])
    if "silver" in layers:
        checks.append(bronze_is_silver_plus_rejected(spark))
    if "gold" in layers:
        checks.append(gold_matches_recompute(spark))
    return checks
