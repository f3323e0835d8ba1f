"""The medallion's Iceberg tables: one place for their names, schemas and partitioning.

Bronze and Silver are partitioned by event_date, so a MERGE that names the batch's dates only
reads and rewrites those partitions: a run's cost follows its batch, not the table's history.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from lib.medallion.engine_errors import is_already_exists

if TYPE_CHECKING:  # type hints only: the table names and DDL serve modules that never start Spark
    from pyspark.sql import DataFrame, SparkSession

BRONZE_EVENTS = "bronze.conversion_events"
BRONZE_DEAD_LETTER = "bronze.dead_letter"
BRONZE_OFFSETS = "bronze.ingest_offsets"
SILVER_EVENTS = "silver.conversion_events"
SILVER_REJECTED = "silver.rejected_events"
GOLD_DAILY = "gold.daily_user_stats"
GOLD_CLIENTS = "gold.daily_client_stats"

DDL = {
    BRONZE_EVENTS: """event_id STRING NOT NULL, event_time TIMESTAMP, event_date DATE, user_id STRING,
        payload STRING NOT NULL, kafka_topic STRING NOT NULL, kafka_partition INT NOT NULL,
        kafka_offset BIGINT NOT NULL, kafka_timestamp TIMESTAMP, ingested_at TIMESTAMP NOT NULL""",
    BRONZE_DEAD_LETTER: """kafka_topic STRING NOT NULL, kafka_partition INT NOT NULL, kafka_offset BIGINT NOT NULL,
        kafka_timestamp TIMESTAMP, payload BINARY, payload_text STRING, reason STRING NOT NULL,
        ingested_at TIMESTAMP NOT NULL""",
    BRONZE_OFFSETS: """run_id STRING NOT NULL, kafka_topic STRING NOT NULL, kafka_partition INT NOT NULL,
        start_offset BIGINT NOT NULL, end_offset BIGINT NOT NULL, committed_at TIMESTAMP NOT NULL""",
    SILVER_EVENTS: """event_id STRING NOT NULL, event_time TIMESTAMP NOT NULL, event_date DATE NOT NULL,
        user_id STRING NOT NULL, operation STRING NOT NULL, input STRING NOT NULL, output STRING,
        success BOOLEAN NOT NULL, error STRING, latency_ms DOUBLE NOT NULL, schema_version INT NOT NULL,
        ingested_at TIMESTAMP NOT NULL, processed_at TIMESTAMP NOT NULL""",
    SILVER_REJECTED: """event_id STRING NOT NULL, reason STRING NOT NULL, payload STRING NOT NULL,
        ingested_at TIMESTAMP NOT NULL, processed_at TIMESTAMP NOT NULL""",
    GOLD_DAILY: """event_date DATE NOT NULL, user_id STRING NOT NULL, total_requests BIGINT NOT NULL,
        successful_requests BIGINT NOT NULL, failed_requests BIGINT NOT NULL, to_roman_requests BIGINT NOT NULL,
        from_roman_requests BIGINT NOT NULL, avg_latency_ms DOUBLE NOT NULL, first_event_time TIMESTAMP NOT NULL,
        last_event_time TIMESTAMP NOT NULL, generated_at TIMESTAMP NOT NULL""",
    # Event schema v2's breakdown: filled once Silver has the client column (lib.medallion.migration).
    GOLD_CLIENTS: """event_date DATE NOT NULL, client STRING NOT NULL, total_requests BIGINT NOT NULL,
        successful_requests BIGINT NOT NULL, failed_requests BIGINT NOT NULL, users BIGINT NOT NULL,
        avg_latency_ms DOUBLE NOT NULL, generated_at TIMESTAMP NOT NULL""",
}
#: Insert-only tables merge on read: a MERGE's guard clause (lib.medallion.commits) then costs no
#: rewrite of the files its matched rows live in. Gold updates its keys, so it copies on write.
#: Serializable isolation (Iceberg's default, written out) is what makes a racing commit fail.
MERGE_MODE = {table: "copy-on-write" if table.startswith("gold.") else "merge-on-read" for table in DDL}
PARTITIONING = {
    BRONZE_EVENTS: "PARTITIONED BY (event_date)",
    SILVER_EVENTS: "PARTITIONED BY (event_date)",
    GOLD_DAILY: "PARTITIONED BY (months(event_date))",
    GOLD_CLIENTS: "PARTITIONED BY (months(event_date))",
}


def columns(table: str) -> list[str]:
    """The table's column names in schema order, read from its DDL (no catalog needed)."""
    return [part.split()[0] for part in DDL[table].split(",")]


def _create(spark: SparkSession, statement: str) -> None:
    """Run a CREATE … IF NOT EXISTS; another run that created the same object a moment earlier is fine.

    IF NOT EXISTS checks, then creates: two runs on a fresh catalog can both pass the check, and the
    catalog refuses the second create (409). The object exists either way, which is all we wanted.
    The catalog can also refuse the loser of a namespace race with a server error (500: its SQLite
    store's unique key on the namespace's properties), so any other failure runs the statement once
    more: IF NOT EXISTS then sees the winner's object, and a catalog that is really failing fails again.
    """
    try:
        spark.sql(statement)
    except Exception as exc:  # AnalysisException, or Py4JJavaError for Iceberg's AlreadyExistsException
        if not is_already_exists(exc):
            spark.sql(statement)


def create_tables(spark: SparkSession) -> None:
    """Create every namespace and table that does not exist yet (format v2, the merge modes above);
    safe when several runs do it at once on a fresh catalog."""
    for namespace in ("bronze", "silver", "gold"):
        _create(spark, f"CREATE NAMESPACE IF NOT EXISTS {namespace}")
    for table, columns in DDL.items():
        _create(
            spark,
            f"CREATE TABLE IF NOT EXISTS {table} ({columns}) USING iceberg {PARTITIONING.get(table, '')} "
            "TBLPROPERTIES ('format-version' = '2', 'write.distribution-mode' = 'none', "
            f"'write.merge.mode' = '{MERGE_MODE[table]}', 'write.merge.isolation-level' = 'serializable')",
        )
        # A table made before the merge modes were set keeps working, but would rewrite whole files on a re-run.
        mode = spark.sql(f"SHOW TBLPROPERTIES {table} ('write.merge.mode')").first()
        if mode is None or mode.value != MERGE_MODE[table]:
            spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('write.merge.mode' = '{MERGE_MODE[table]}')")


def has_column(spark: SparkSession, table: str, column: str) -> bool:
    """Does the table (as the catalog has it now, not as this session cached it) have that column?

    A writer asks before it writes a column a migration adds: the same code then runs before and
    after the migration (lib.medallion.migration)."""
    spark.catalog.refreshTable(table)
    return column in spark.table(table).columns


def in_list(values: list) -> str:
    """A SQL IN list of date or string literals (values come from our own tables, never from users)."""
    return ", ".join(f"'{v}'" for v in values) or "NULL"


def snapshot_history(spark: SparkSession, table: str, last: int = 5) -> DataFrame:
    """What each commit of the table did: operation and the added/deleted counts from its summary."""
    return spark.sql(f"""
        SELECT committed_at, operation,
               summary['added-records'] AS added_records, summary['deleted-records'] AS deleted_records,
               summary['added-data-files'] AS added_files, summary['total-records'] AS total_records
        FROM {table}.snapshots ORDER BY committed_at DESC LIMIT {last}""")


def ranges_predicate(ranges: dict[int, tuple[int, int]]) -> str:
    """SQL over kafka_partition/kafka_offset that holds for exactly the records of the ranges
    {partition: (start, end)}, end exclusive ("FALSE" for none: an empty batch matches no row)."""
    spans = [f"(kafka_partition = {int(p)} AND kafka_offset >= {int(s)} AND kafka_offset < {int(e)})"
             for p, (s, e) in sorted(ranges.items()) if e > s]
    return " OR ".join(spans) or "FALSE"


def naive_utc(ts: datetime | None = None) -> datetime:
    """`ts` (default: now) as UTC wall-clock time without tzinfo: how a Spark session in UTC takes it."""
    return (ts or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)


def time_window(column: str, start: datetime, end: datetime) -> str:
    """SQL for start <= column < end: half-open, so adjacent intervals never share a row."""
    return f"{column} >= TIMESTAMP '{naive_utc(start)}' AND {column} < TIMESTAMP '{naive_utc(end)}'"


def date_predicate(spark: SparkSession, batch: DataFrame, column: str = "t.event_date",
                   slack: timedelta = timedelta(0)) -> str:
    """The target predicate that lets Iceberg prune a MERGE to the partitions the batch can match
    (the batch's event dates, `slack` days either side)."""
    # As text: Spark's dates reach year 10000 and beyond (a time of 9999-12-31T23:59-01:00 is one),
    # Python's stop at 9999, and collecting such a date as a date raises.
    texts = [r[0] for r in batch.selectExpr("CAST(event_date AS STRING)").distinct().collect()]
    known: set[date] = set()
    beyond = False
    for text in texts:
        if text is None:
            continue
        try:
            day = date.fromisoformat(text)
        except ValueError:
            beyond = True
            continue
        for k in range(-slack.days, slack.days + 1):
            try:
                known.add(day + timedelta(days=k))
            except OverflowError:
                beyond = True
    parts = [f"{column} IN ({in_list(sorted(known))})"] if known else []
    if beyond:
        parts.append(f"{column} NOT BETWEEN DATE '0001-01-01' AND DATE '9999-12-31'")
    if None in texts:
        parts.append(f"{column} IS NULL")
    return "(" + " OR ".join(parts) + ")" if parts else "FALSE"
