"""Gold: daily statistics per (event_date, user_id), correct under late data and re-runs.

A naive daily job aggregates only the interval's Silver rows and overwrites the key: wrong as
soon as a key's events arrive in several intervals, or late. Here the interval only says *which
keys changed* (Silver rows processed in [start, end)); every touched key is then recomputed
from all of Silver and MERGEd ON (event_date, user_id). After any sequence of runs, Gold equals
a full recompute from Silver.

Once Silver has event schema v2's `client` column (lib.medallion.migration), every touched date
is also recomputed per client into gold.daily_client_stats, from the Silver rows that name one
(v2 events): what both versions share is in daily_user_stats, the v2 breakdown beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession

from lib import faults
from lib.medallion.commits import retry_on_conflict, temp_view
from lib.medallion.statements import Commits, Statement, commit, lines, query
from lib.medallion.tables import (
    DDL,
    GOLD_CLIENTS,
    GOLD_DAILY,
    SILVER_EVENTS,
    create_tables,
    has_column,
    in_list,
    naive_utc,
    time_window,
)


@dataclass
class GoldRun(Commits):
    start: datetime
    end: datetime
    touched_keys: int = 0
    touched_dates: int = 0
    rows_updated: int = 0
    rows_inserted: int = 0
    #: Rows copied into new files by the MERGE (copy-on-write rewrites every file a touched key lives in).
    rows_rewritten: int = 0
    rows_after: int = 0
    #: (event_date, client) keys recomputed into gold.daily_client_stats (0 before the v2 migration).
    client_keys: int = 0

    @property
    def rows_merged(self) -> int:
        """Every touched key is recomputed and MERGEd (updated or inserted)."""
        return self.touched_keys


#: Gold's metrics of a group of Silver rows: the one definition the job, the naive job of notebook
#: 05 and the full-recompute check all use.
METRICS = lines(
    "COUNT(*) AS total_requests,",
    "SUM(CAST(success AS BIGINT)) AS successful_requests,",
    "SUM(CAST(NOT success AS BIGINT)) AS failed_requests,",
    "SUM(CAST(operation = 'to_roman' AS BIGINT)) AS to_roman_requests,",
    "SUM(CAST(operation = 'from_roman' AS BIGINT)) AS from_roman_requests,",
    "AVG(latency_ms) AS avg_latency_ms,",
    "MIN(event_time) AS first_event_time,",
    "MAX(event_time) AS last_event_time")


#: The per-client breakdown's metrics (v2 events only: the rows that name a client).
CLIENT_METRICS = lines(
    "COUNT(*) AS total_requests,",
    "SUM(CAST(success AS BIGINT)) AS successful_requests,",
    "SUM(CAST(NOT success AS BIGINT)) AS failed_requests,",
    "COUNT(DISTINCT user_id) AS users,",
    "AVG(latency_ms) AS avg_latency_ms")


def client_aggregate_statement(source: str, where: str, generated_at: datetime | None) -> Statement:
    """The per-client breakdown of the rows of `source` that pass `where` and name a client."""
    stamp = f"TIMESTAMP '{generated_at}'" if generated_at else "CAST(NULL AS TIMESTAMP)"
    return Statement("gold.recompute_clients", lines(
        "SELECT event_date, client,",
        "       " + CLIENT_METRICS.replace("\n", "\n       ") + ",",
        f"       {stamp} AS generated_at",
        f"FROM {source}",
        f"WHERE {where}",
        "  AND client IS NOT NULL  -- schema v2 events: v1 events do not say which app sent them",
        "GROUP BY event_date, client"), "every client of each touched date, from all of its Silver rows")


def aggregate_statement(name: str, source: str, where: str, generated_at: datetime | None, why: str) -> Statement:
    """Gold's metrics of the rows of `source` that pass `where`, per (event_date, user_id)."""
    stamp = f"TIMESTAMP '{generated_at}'" if generated_at else "CAST(NULL AS TIMESTAMP)"
    return Statement(name, lines(
        "SELECT event_date, user_id,",
        "       " + METRICS.replace("\n", "\n       ") + ",",
        f"       {stamp} AS generated_at",
        f"FROM {source}",
        f"WHERE {where}",
        "GROUP BY event_date, user_id"), why)


def aggregate(spark: SparkSession, source: str, where: str = "TRUE", generated_at: datetime | None = None) -> DataFrame:
    """Gold's metrics of `source` (a table or view) rows passing `where`: also the full-recompute
    reference of the checks (generated_at None)."""
    return query(spark, aggregate_statement("gold.aggregate", source, where, generated_at, ""))


def touched_statement(start: datetime, end: datetime) -> Statement:
    """The keys Silver rows processed in [start, end) belong to: the only keys that can have changed."""
    return Statement("gold.touched_keys", lines(
        "SELECT DISTINCT event_date, user_id",
        f"FROM {SILVER_EVENTS}",
        f"WHERE {time_window('processed_at', start, end)}  -- Silver's work in this run's interval"),
        "the interval says which keys changed, not what their figures are")


def recompute_statement(dates: list, generated_at: datetime) -> Statement:
    """Every touched key recomputed from all of Silver (its rows of any interval, late ones too)."""
    return aggregate_statement(
        "gold.recompute",
        f"{SILVER_EVENTS} LEFT SEMI JOIN gold_touched k USING (event_date, user_id)",
        f"event_date IN ({in_list(dates)})  -- prunes Silver to the touched dates", generated_at,
        "each touched key from all of its Silver rows, whichever interval brought them")


def merge_statement(target: str, source: str, dates: list | None, key: str = "user_id") -> Statement:
    """Replace each key's row by its new figures (or insert it)."""
    prune = f"t.event_date IN ({in_list(dates)})  -- prunes the target to the touched dates" if dates else ""
    name = f"{target.split('.')[0]}.merge" + ("" if key == "user_id" else f"_{key}s")
    return Statement(name, lines(
        f"MERGE INTO {target} t",
        f"USING {source} s",
        f"ON t.event_date = s.event_date AND t.{key} = s.{key}" + ("\n   AND " + prune if prune else ""),
        "WHEN MATCHED THEN UPDATE SET *",
        "WHEN NOT MATCHED THEN INSERT *"), "one row per key: its figures replaced, or inserted",
        target=target, source=source)


def run_gold(spark: SparkSession, start: datetime, end: datetime) -> GoldRun:
    """Recompute every (event_date, user_id) that Silver rows processed in [start, end) touched
    (the scheduler's default interval: the previous day). Two runs at once: the MERGE updates rows,
    so Iceberg validates it, and the loser recomputes from the new state (lib.medallion.commits)."""
    create_tables(spark)
    return retry_on_conflict(lambda conflicts: _run_once(spark, start, end, conflicts), "gold")


def _run_once(spark: SparkSession, start: datetime, end: datetime, conflicts: int) -> GoldRun:
    run = GoldRun(start, end, conflicts=conflicts)
    clients = has_column(spark, SILVER_EVENTS, "client")  # asked first: it refreshes Silver's cached metadata
    touched = query(spark, touched_statement(start, end)).persist()
    try:
        run.touched_keys = touched.count()
        if run.touched_keys == 0:
            return run
        dates = sorted(r.event_date for r in touched.select("event_date").distinct().collect())
        run.touched_dates = len(dates)
        with temp_view(spark, touched, "gold_touched"):
            # Materialized: a MERGE whose source reads an Iceberg table through a view fails to plan on
            # Spark 4.1 ("No plan for TableReference"); the batch is one row per touched key.
            fresh = query(spark, recompute_statement(dates, naive_utc())).localCheckpoint()
            faults.checkpoint("gold.before_merge")
            with temp_view(spark, fresh, "gold_batch"):
                figures = run.commits["gold.merge"] = commit(spark, merge_statement(GOLD_DAILY, "gold_batch", dates))
            if clients:
                run.client_keys = _recompute_clients(spark, run, dates)
        # Copy-on-write: an updated key's row is deleted and added again, with every other row of its file.
        run.rows_after = spark.table(GOLD_DAILY).count()
        run.rows_inserted = figures["added"] - figures["deleted"]
        run.rows_updated = run.touched_keys - run.rows_inserted
        run.rows_rewritten = figures["deleted"]
    finally:
        touched.unpersist()
    return run


def _recompute_clients(spark: SparkSession, run: GoldRun, dates: list) -> int:
    """Every (event_date, client) of the touched dates, recomputed from all of Silver and MERGEd; the keys."""
    where = f"event_date IN ({in_list(dates)})  -- prunes Silver to the touched dates"
    fresh = query(spark, client_aggregate_statement(SILVER_EVENTS, where, naive_utc())).localCheckpoint()
    with temp_view(spark, fresh, "gold_client_batch"):
        run.commits["gold.merge_clients"] = commit(
            spark, merge_statement(GOLD_CLIENTS, "gold_client_batch", dates, key="client"))
    return fresh.count()


#: Notebook 05's scratch table for the naive job: the same schema as Gold, never read by anything else.
NAIVE_GOLD = "gold.daily_user_stats_naive"


def run_naive(spark: SparkSession, start: datetime, end: datetime) -> int:
    """The WRONG way, for notebook 05 to compare: aggregate only the interval's Silver rows and
    overwrite each key in NAIVE_GOLD. A key whose rows came in two intervals keeps only the second
    interval's figures. Returns the keys written."""
    spark.sql(f"CREATE TABLE IF NOT EXISTS {NAIVE_GOLD} ({DDL[GOLD_DAILY]}) USING iceberg")
    naive = query(spark, aggregate_statement(
        "naive.aggregate_interval", SILVER_EVENTS, time_window("processed_at", start, end), naive_utc(),
        "only this interval's rows: a key's earlier rows are forgotten")).localCheckpoint()
    with temp_view(spark, naive, "naive_batch"):
        commit(spark, merge_statement(NAIVE_GOLD, "naive_batch", None))
    return naive.count()
