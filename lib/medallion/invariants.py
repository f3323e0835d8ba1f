"""The platform's invariants as checks that return figures, for notebooks, tests and drills.

Each check recomputes its side from the source of truth (Kafka itself, or all of Silver),
never from what a job reported, so a job that lies about its work cannot pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib.config import Settings
from lib.contract.events import parse_record
from lib.kafka import beginning_offsets, end_offsets, read_range
from lib.medallion.bronze import BronzeRun, committed_positions
from lib.medallion.commits import temp_view
from lib.medallion.gold import aggregate, client_aggregate_statement
from lib.medallion.silver import bronze_interval
from lib.medallion.statements import one_row, query, to_pandas
from lib.medallion.tables import (
    BRONZE_DEAD_LETTER,
    BRONZE_EVENTS,
    BRONZE_OFFSETS,
    GOLD_CLIENTS,
    GOLD_DAILY,
    SILVER_EVENTS,
    SILVER_REJECTED,
    has_column,
    ranges_predicate,
)
from lib.traffic.manifest import batch_event_ids, batch_ranges


@dataclass(frozen=True)
class Invariant:
    """A check's verdict and the figures it rests on (a notebook prints them before asserting)."""

    name: str
    ok: bool
    detail: str
    figures: dict[str, int] = field(default_factory=dict)


def _invariant(name: str, figures: dict[str, int], must_be_zero: list[str]) -> Invariant:
    ok = all(figures[k] == 0 for k in must_be_zero)
    return Invariant(name, ok, ", ".join(f"{k} {figures[k]}" for k in must_be_zero), figures)


def kafka_accounted(spark: SparkSession, cfg: Settings) -> Invariant:
    """Every Kafka record Bronze committed is in exactly one of bronze events (one row per distinct
    event_id) or dead letters, and everything Bronze holds came from a record on the topic.

    A backfill reads from the earliest offsets and commits none, so it may land events the
    incremental runs have not reached yet: those are counted as "landed ahead of the committed
    offsets" (the next incremental run inserts 0 of them), not as unknown. Kafka is read and parsed
    here with librdkafka and json, not with Bronze's own Spark read and SQL, so a bug in those
    cannot hide itself."""
    topic = cfg.events_topic
    starts = beginning_offsets(cfg.kafka_bootstrap_servers, topic)
    upto = committed_positions(spark, topic)
    committed = {p: max(upto.get(p, starts[p]), starts[p]) for p in starts}
    ends = end_offsets(cfg.kafka_bootstrap_servers, topic)
    records = read_range(cfg.kafka_bootstrap_servers, topic, starts, ends)
    event_ids: set[str] = set()  # up to the committed offsets: what Bronze must hold
    later_ids: set[str] = set()  # beyond them: what only a backfill can have landed
    dead: set[tuple[int, int]] = set()
    later_dead: set[tuple[int, int]] = set()
    for record in records:
        doc, _ = parse_record(record.value)
        is_committed = record.offset < committed[record.partition]
        if doc is not None:
            (event_ids if is_committed else later_ids).add(doc["event_id"])
        else:
            (dead if is_committed else later_dead).add((record.partition, record.offset))
    bronze = to_pandas(spark.table(BRONZE_EVENTS).where(f"kafka_topic = '{topic}'").select("event_id")).event_id
    landed = set(bronze)
    letters = to_pandas(spark.table(BRONZE_DEAD_LETTER).where(f"kafka_topic = '{topic}'")
                        .select("kafka_partition", "kafka_offset"))
    kept = set(zip(letters.kafka_partition, letters.kafka_offset, strict=True))
    figures = {
        "kafka records": len(records), "expected records": sum(ends[p] - starts[p] for p in ends),
        "committed records": sum(committed[p] - starts[p] for p in starts),
        "distinct events in kafka": len(event_ids), "bronze events": len(bronze),
        "landed ahead of the committed offsets": len((landed & later_ids) - event_ids),
        "malformed in kafka": len(dead), "dead letters": len(letters),
        "missing events": len(event_ids - landed), "unknown events": len(landed - event_ids - later_ids),
        "doubled event_ids": int(bronze.duplicated().sum()),
        "missing dead letters": len(dead - kept), "unknown dead letters": len(kept - dead - later_dead),
        "doubled dead letters": int(letters.duplicated().sum()),
    }
    figures["records not read"] = figures["expected records"] - figures["kafka records"]
    return _invariant("every Kafka record in exactly one of bronze events / dead letters", figures,
                      ["records not read", "missing events", "unknown events", "doubled event_ids",
                       "missing dead letters", "unknown dead letters", "doubled dead letters"])


def batch_accounted(spark: SparkSession, cfg: Settings, ranges: dict[int, tuple[int, int]]) -> Invariant:
    """Every record of one incremental run's committed ranges is in exactly one of bronze events or dead
    letters, and everything Bronze holds at those offsets came from a record in them.

    The scheduled run's check: the records it reads back and parses are its batch's, not the topic's
    history. Runs in a row check their own ranges, and offsets_tile proves those ranges cover each
    partition with no gap or overlap, so together they account for every committed record, as
    kafka_accounted does at once. An event delivered again (a retry, a replay) is looked for where its
    first delivery landed, in an earlier run's range. The records are read with librdkafka and parsed
    with json, as kafka_accounted does; an event_id held twice is counted by Spark over the table."""
    topic = cfg.events_topic
    spans = {p: (s, e) for p, (s, e) in ranges.items() if e > s}
    records = read_range(cfg.kafka_bootstrap_servers, topic, {p: s for p, (s, _) in spans.items()},
                         {p: e for p, (_, e) in spans.items()})
    ids: set[str] = set()
    dead: set[tuple[int, int]] = set()
    for record in records:
        doc, _ = parse_record(record.value)
        if doc is not None:
            ids.add(doc["event_id"])
        else:
            dead.add((record.partition, record.offset))
    at = f"kafka_topic = '{topic}' AND ({ranges_predicate(spans)})"
    held = set(to_pandas(spark.table(BRONZE_EVENTS).where(at).select("event_id")).event_id)
    letters = to_pandas(spark.table(BRONZE_DEAD_LETTER).where(at).select("kafka_partition", "kafka_offset"))
    kept = set(zip(letters.kafka_partition, letters.kafka_offset, strict=True))
    earlier = ids - held  # delivered again: the first delivery is in an earlier range, or lost
    found_earlier = _held(spark, topic, earlier)
    doubled = to_pandas(spark.sql(f"""
        SELECT event_id FROM {BRONZE_EVENTS} WHERE kafka_topic = '{topic}'
        GROUP BY event_id HAVING COUNT(*) > 1""")).event_id
    figures = {
        "records in the ranges": sum(e - s for s, e in spans.values()), "kafka records": len(records),
        "distinct events in kafka": len(ids), "bronze events at these offsets": len(held),
        "found at earlier offsets": len(found_earlier), "missing events": len(earlier - found_earlier),
        "unknown events": len(held - ids), "doubled event_ids": len(ids.intersection(doubled)),
        "malformed in kafka": len(dead), "dead letters at these offsets": len(letters),
        "missing dead letters": len(dead - kept), "unknown dead letters": len(kept - dead),
        "doubled dead letters": int(letters.duplicated().sum()),
    }
    figures["records not read"] = figures["records in the ranges"] - figures["kafka records"]
    return _invariant("every record of the run's ranges in exactly one of bronze events / dead letters", figures,
                      ["records not read", "missing events", "unknown events", "doubled event_ids",
                       "missing dead letters", "unknown dead letters", "doubled dead letters"])


def _held(spark: SparkSession, topic: str, ids: set[str]) -> set[str]:
    """Those of `ids` that bronze events holds for the topic (one join; none asked, no query)."""
    if not ids:
        return set()
    wanted = spark.createDataFrame(pd.DataFrame({"event_id": sorted(ids)}), "event_id STRING")
    found = spark.table(BRONZE_EVENTS).where(f"kafka_topic = '{topic}'").join(wanted, "event_id", "left_semi")
    return set(to_pandas(found.select("event_id").distinct()).event_id)


def bronze_checks(spark: SparkSession, cfg: Settings, run: BronzeRun, whole_topic: bool = False) -> list[Invariant]:
    """A Bronze run's checks: its own ranges accounted for and the committed ranges tiling each
    partition; the whole topic as well when asked (a lesson, a drill) and for a backfill, which reads
    from the earliest offsets and commits no range of its own."""
    checks = [] if run.backfill else [batch_accounted(spark, cfg, run.ranges)]
    if whole_topic or run.backfill:
        checks.append(kafka_accounted(spark, cfg))
    return [*checks, offsets_tile(spark, cfg)]


def offsets_tile(spark: SparkSession, cfg: Settings) -> Invariant:
    """The committed ranges of each partition follow each other: no gap, no overlap, whatever was
    bounded, crashed, retried or raced."""
    ranges = spark.sql(f"""
        SELECT kafka_partition, start_offset, end_offset,
               LAG(end_offset) OVER (PARTITION BY kafka_partition ORDER BY start_offset) AS previous_end
        FROM {BRONZE_OFFSETS} WHERE kafka_topic = '{cfg.events_topic}'""")
    figures = {"committed ranges": ranges.count(), "gaps": ranges.where("previous_end < start_offset").count(),
               "overlaps": ranges.where("previous_end > start_offset").count()}
    return _invariant("committed offset ranges tile each partition", figures, ["gaps", "overlaps"])


def bronze_is_silver_plus_rejected(spark: SparkSession) -> Invariant:
    """bronze.conversion_events = silver.conversion_events + silver.rejected_events, by event_id."""
    bronze = spark.table(BRONZE_EVENTS).select("event_id")
    silver = spark.table(SILVER_EVENTS).select("event_id")
    rejected = spark.table(SILVER_REJECTED).select("event_id")
    union = silver.union(rejected)
    figures = {"bronze events": bronze.count(), "silver events": silver.count(), "rejected": rejected.count(),
               "in both": silver.intersect(rejected).count(), "bronze not in silver": bronze.subtract(union).count(),
               "not in bronze": union.subtract(bronze).count(),
               "doubled": union.groupBy("event_id").count().where("count > 1").count()}
    return _invariant("bronze = silver + rejected", figures,
                      ["in both", "bronze not in silver", "not in bronze", "doubled"])


def silver_covers(spark: SparkSession, start: datetime, end: datetime) -> Invariant:
    """Every bronze row ingested in [start, end) is in exactly one of silver or rejected, and in silver
    once. One join and one pass give every figure (a scheduled run checks a million rows in seconds)."""
    ids = bronze_interval(spark, start, end).select("event_id")
    silver = spark.table(SILVER_EVENTS).groupBy("event_id").agg(F.count("*").alias("silver_rows"))
    rejected = spark.table(SILVER_REJECTED).groupBy("event_id").agg(F.count("*").alias("rejected_rows"))
    found = ids.join(silver, "event_id", "left").join(rejected, "event_id", "left")
    s, r = F.col("silver_rows").isNotNull(), F.col("rejected_rows").isNotNull()
    row = one_row(found.agg(F.count("*"), F.count_if(s), F.count_if(r), F.count_if(~s & ~r), F.count_if(s & r),
                            F.count_if(F.col("silver_rows") > 1)))
    figures = dict(zip(["bronze rows of the interval", "in silver", "in rejected", "not processed", "in both",
                        "doubled in silver"], (int(v) for v in row), strict=True))
    return _invariant("bronze rows of the interval = silver + rejected", figures,
                      ["not processed", "in both", "doubled in silver"])


def gold_matches_recompute(spark: SparkSession, keys: DataFrame | None = None) -> Invariant:
    """For every (event_date, user_id) (or those in `keys`), gold equals a full recompute from silver."""
    silver, gold = spark.table(SILVER_EVENTS), spark.table(GOLD_DAILY)
    if keys is not None:
        silver = silver.join(keys, ["event_date", "user_id"], "left_semi")
        gold = gold.join(keys, ["event_date", "user_id"], "left_semi")
    with temp_view(spark, silver, "check_silver"):
        full = aggregate(spark, "check_silver")
    return _matches_recompute("gold = full recompute from silver", full, gold, ["event_date", "user_id"],
                              ["total_requests", "successful_requests", "failed_requests", "to_roman_requests",
                               "from_roman_requests", "first_event_time", "last_event_time"])


def silver_clients_migrated(spark: SparkSession) -> Invariant:
    """After the v2 migration: every v2 row of Silver has the client its raw payload names (read
    here with get_json_object, not with the migration's from_json), and no v1 row has one."""
    bronze = spark.table(BRONZE_EVENTS).select("event_id", F.get_json_object("payload", "$.client").alias("named"))
    silver = spark.table(SILVER_EVENTS).select("event_id", "schema_version", "client")
    joined = silver.join(bronze, "event_id", "left")
    figures = {"v2 rows": silver.where("schema_version = 2").count(),
               "v2 rows without a client": silver.where("schema_version = 2 AND client IS NULL").count(),
               "v1 rows with a client": silver.where("schema_version = 1 AND client IS NOT NULL").count(),
               "clients not the payload's": joined.where("client IS NOT NULL AND NOT client <=> named").count()}
    return _invariant("silver's client = the raw payload's, for every v2 event", figures,
                      ["v2 rows without a client", "v1 rows with a client", "clients not the payload's"])


def gold_clients_match_recompute(spark: SparkSession) -> Invariant:
    """gold.daily_client_stats equals the per-client breakdown recomputed from all of Silver."""
    full = query(spark, client_aggregate_statement(SILVER_EVENTS, "TRUE", None))
    return _matches_recompute("gold per client = full recompute from silver", full, spark.table(GOLD_CLIENTS),
                              ["event_date", "client"],
                              ["total_requests", "successful_requests", "failed_requests", "users"])


def _matches_recompute(name: str, full: DataFrame, gold: DataFrame, key: list[str], exact: list[str]) -> Invariant:
    """A Gold table against its recompute: every key in both, once, with the same figures (the average
    latency within 1e-9: a recompute may add the same doubles in another order)."""
    joined = full.alias("r").join(gold.alias("g"), key, "full_outer")
    differs = F.col("r.total_requests").isNull() | F.col("g.total_requests").isNull()
    for column in exact:
        differs = differs | ~F.col(f"r.{column}").eqNullSafe(F.col(f"g.{column}"))
    differs = differs | (F.abs(F.col("r.avg_latency_ms") - F.col("g.avg_latency_ms")) > 1e-9)
    bad = joined.where(differs)
    figures = {"keys recomputed": full.count(), "keys in gold": gold.count(),
               "keys missing from gold": bad.where("g.total_requests IS NULL").count(),
               "keys not in silver": bad.where("r.total_requests IS NULL").count(),
               "keys with other values": bad.where("r.total_requests IS NOT NULL AND g.total_requests IS NOT NULL")
               .count(),
               "doubled keys": gold.groupBy(*key).count().where("count > 1").count()}
    return _invariant(name, figures,
                      ["keys missing from gold", "keys not in silver", "keys with other values", "doubled keys"])


def manifest_reconciled(spark: SparkSession, cfg: Settings, doc: dict[str, Any],
                        layers: tuple[str, ...] = ("bronze", "silver")) -> Invariant:
    """A producer's batch (its saved manifest) against the tables: each of its distinct events in
    Bronze, its valid requests in Silver, its invalid events rejected, its malformed records in the
    dead letters at the batch's own offsets. Found by event_id, wherever a run landed it first."""
    ids = batch_event_ids(doc, cfg.events_partitions)
    wanted = {BRONZE_EVENTS: ids["events"] | ids["invalid"], SILVER_EVENTS: ids["events"],
              SILVER_REJECTED: ids["invalid"]}
    tables = [t for t in (BRONZE_EVENTS, BRONZE_DEAD_LETTER, SILVER_EVENTS, SILVER_REJECTED)
              if t.split(".")[0] in layers]
    figures: dict[str, int] = {}
    for table in tables:
        if table == BRONZE_DEAD_LETTER:
            at = f"kafka_topic = '{doc['topic']}' AND ({ranges_predicate(batch_ranges(doc))})"
            found = spark.table(table).where(at).count()
        else:
            batch = spark.createDataFrame([(i,) for i in sorted(wanted[table])], "event_id STRING")
            found = spark.table(table).join(batch, "event_id", "left_semi").select("event_id").distinct().count()
        figures[f"{table}: manifest"] = int(doc["expected"][table])
        figures[f"{table}: found"] = found
        figures[f"{table}: missing"] = figures[f"{table}: manifest"] - found
    return _invariant("the producer's manifest, found in the tables", figures,
                      [k for k in figures if k.endswith("missing")])


def check_all(spark: SparkSession, cfg: Settings,
              layers: tuple[str, ...] = ("bronze", "silver", "gold")) -> list[Invariant]:
    """The invariants of the named layers, each recomputed from its source."""
    checks = []
    if "bronze" in layers:
        checks.extend([kafka_accounted(spark, cfg), offsets_tile(spark, cfg)])
    migrated = has_column(spark, SILVER_EVENTS, "client")  # event schema v2 (lib.medallion.migration)
    if "silver" in layers:
        checks.append(bronze_is_silver_plus_rejected(spark))
        if migrated:
            checks.append(silver_clients_migrated(spark))
    if "gold" in layers:
        checks.append(gold_matches_recompute(spark))
        if migrated:
            checks.append(gold_clients_match_recompute(spark))
    return checks
