"""The invariants of DESIGN.md as checks that return figures, for notebooks, tests and drills.

Each check recomputes its side from the source of truth (Kafka itself, or all of Silver),
never from what a job reported, so a job that lies about its work cannot pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lib.tables import BRONZE_DEAD_LETTER, BRONZE_EVENTS, GOLD_DAILY, SILVER_EVENTS, SILVER_REJECTED

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class Invariant:
    name: str
    ok: bool
    detail: str


def kafka_accounted(spark: SparkSession) -> Invariant:
    """Every Kafka record is in exactly one of bronze events (one row per distinct event_id) or dead letters."""
    from lib.bronze import read_kafka, split
    from lib.config import settings
    from lib.topics import beginning_offsets, end_offsets

    cfg = settings()
    ends = end_offsets(cfg.kafka_bootstrap_servers, cfg.events_topic)
    starts = beginning_offsets(cfg.kafka_bootstrap_servers, cfg.events_topic)
    consumed = spark.sql(
        "SELECT kafka_partition, MAX(end_offset) AS pos FROM bronze.ingest_offsets GROUP BY kafka_partition"
    ).collect()
    upto = {r.kafka_partition: r.pos for r in consumed}
    ranges = {p: (starts[p], upto.get(p, starts[p])) for p in ends}
    from datetime import UTC, datetime

    events, dead = split(read_kafka(spark, ranges), datetime.now(UTC).replace(tzinfo=None))
    kafka_ids = events.select("event_id").distinct()
    bronze = spark.table(BRONZE_EVENTS)
    missing = kafka_ids.join(bronze.select("event_id"), "event_id", "left_anti").count()
    extra = bronze.select("event_id").join(kafka_ids, "event_id", "left_anti").count()
    doubled = bronze.groupBy("event_id").count().where("count > 1").count()
    coords = ["kafka_topic", "kafka_partition", "kafka_offset"]
    dead_missing = dead.select(*coords).join(spark.table(BRONZE_DEAD_LETTER).select(*coords), coords,
                                             "left_anti").count()
    dead_doubled = spark.table(BRONZE_DEAD_LETTER).groupBy(*coords).count().where("count > 1").count()
    ok = missing == extra == doubled == dead_missing == dead_doubled == 0
    return Invariant("every Kafka record in exactly one of bronze events / dead letters", ok,
                     f"missing events {missing}, unknown events {extra}, doubled event_ids {doubled}, "
                     f"missing dead letters {dead_missing}, doubled dead letters {dead_doubled}")


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


def silver_covers(spark: SparkSession, start, end) -> Invariant:
    """Every bronze row ingested in [start, end) is in exactly one of silver or rejected."""
    from lib.silver import bronze_interval

    ids = bronze_interval(spark, start, end).select("event_id")
    silver = spark.table(SILVER_EVENTS).select("event_id")
    rejected = spark.table(SILVER_REJECTED).select("event_id")
    missing = ids.subtract(silver.union(rejected)).count()
    both = ids.intersect(silver).intersect(rejected).count()
    doubled = silver.groupBy("event_id").count().where("count > 1").count()
    ok = missing == both == doubled == 0
    return Invariant("bronze rows of the interval = silver + rejected", ok,
                     f"not processed {missing}, in both {both}, doubled in silver {doubled}")


def gold_matches_recompute(spark: SparkSession, keys=None) -> Invariant:
    """For every (event_date, user_id) (or those in `keys`), gold equals a full recompute from silver."""
    from lib.gold import aggregate

    columns = ["event_date", "user_id", "total_requests", "successful_requests", "failed_requests",
               "to_roman_requests", "from_roman_requests", "avg_latency_ms", "first_event_time", "last_event_time"]
    silver, gold = spark.table(SILVER_EVENTS), spark.table(GOLD_DAILY)
    if keys is not None:
        silver = silver.join(keys, ["event_date", "user_id"], "left_semi")
        gold = gold.join(keys, ["event_date", "user_id"], "left_semi")
    full = aggregate(silver, None).select(*columns)  # type: ignore[arg-type]
    gold = gold.select(*columns)
    # Averages are compared rounded: a recompute may add the same doubles in another order.
    from pyspark.sql import functions as F

    full = full.withColumn("avg_latency_ms", F.round("avg_latency_ms", 6))
    gold = gold.withColumn("avg_latency_ms", F.round("avg_latency_ms", 6))
    only_full, only_gold = full.exceptAll(gold).count(), gold.exceptAll(full).count()
    return Invariant("gold = full recompute from silver", only_full == only_gold == 0,
                     f"keys differing: {only_full} in the recompute, {only_gold} in gold")


def check_all(spark: SparkSession, layers: tuple[str, ...] = ("bronze", "silver", "gold")) -> list[Invariant]:
    checks = []
    if "bronze" in layers:
        checks.append(kafka_accounted(spark))
    if "silver" in layers:
        checks.append(bronze_is_silver_plus_rejected(spark))
    if "gold" in layers:
        checks.append(gold_matches_recompute(spark))
    return checks
