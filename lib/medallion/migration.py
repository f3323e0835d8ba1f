"""Schema migration: Silver learns event schema v2's `client`, and its history gets it from Bronze.

The service rolled over to schema v2 (lib/contract/events.py) while Silver's table still had v1's
columns: its runs validated the v2 events and landed them without their client. Nothing is lost,
because Bronze keeps every event's raw payload. The migration, two steps, each safe to repeat:

1. The schema, with Iceberg's schema evolution: `ALTER TABLE … ADD COLUMN client`. A metadata
   change only: no data file is rewritten, old files read the new column as NULL, and every
   snapshot keeps the schema it was written with, so time travel to before the ALTER reads the
   table as it was. From then on Silver's runs write `client` (they type the columns the table has).
2. The history: every Silver row of a v2 event in [start, end) of event time that has no client
   yet gets it, re-derived from Bronze's raw payload with Silver's own field definition
   (lib.medallion.silver.payload_field), by a MERGE ON event_id that only touches rows still
   NULL. A row it fills is re-processed, so its processed_at moves and Gold's next run covering
   that moment recomputes its keys (and the per-client breakdown). A second run finds nothing
   left to fill and commits nothing; a run racing another is refused by Iceberg and retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lib import faults
from lib.medallion.commits import retry_on_conflict, temp_view
from lib.medallion.silver import MIGRATED_FIELDS, payload_field
from lib.medallion.statements import Commits, Statement, commit, lines, query
from lib.medallion.tables import (
    BRONZE_EVENTS,
    SILVER_EVENTS,
    create_tables,
    has_column,
    in_list,
    naive_utc,
    time_window,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lib.config import Settings


@dataclass(frozen=True)
class AddedColumn:
    """A column a schema version adds to a table, and why."""

    table: str
    name: str
    type: str
    doc: str


#: Silver's type and comment for each field a later event schema adds (lib.contract.events.ADDED_FIELDS).
_COLUMNS = {"client": ("STRING", "which app sent the request (event schema v2); NULL for v1 events")}
#: What the later event schemas add to Silver.
ADDED = tuple(AddedColumn(SILVER_EVENTS, name, *_COLUMNS[name]) for name in MIGRATED_FIELDS)


@dataclass
class MigrationRun(Commits):
    """What one run of the migration did."""

    start: datetime
    end: datetime
    #: Columns this run added ("silver.conversion_events.client"); empty when they were there already.
    columns_added: list[str] = field(default_factory=list)
    #: Silver's current snapshot right before this run's ALTER (None when it altered nothing).
    snapshot_before: int | None = None
    #: v2 rows of the interval still without a client when the run looked: what it had to fill.
    to_fill: int = 0
    filled: int = 0

    @property
    def rows_merged(self) -> int:
        return self.filled


def alter_statement(column: AddedColumn) -> Statement:
    """The schema change: a new optional column, by metadata alone."""
    return Statement(f"migrate.add_{column.name}", lines(
        f"ALTER TABLE {column.table}",
        f"ADD COLUMN {column.name} {column.type} COMMENT '{column.doc}'"),
        "Iceberg's schema evolution: no file is rewritten; old rows read the new column as NULL")


def to_fill_statement(start: datetime, end: datetime) -> Statement:
    """The v2 events of the interval whose Silver row has no client yet, with the client their raw payload names."""
    return Statement("migrate.rederive", lines(
        "SELECT * FROM (",
        f"  SELECT s.event_id, s.event_date, {payload_field('client', 'b.payload')} AS client",
        f"  FROM {SILVER_EVENTS} s",
        f"  JOIN {BRONZE_EVENTS} b  -- the raw payload, as received",
        "    ON b.event_id = s.event_id AND b.event_date = s.event_date",
        f"  WHERE {time_window('s.event_time', start, end)}  -- the history to reprocess",
        "    AND s.schema_version = 2 AND s.client IS NULL)  -- not filled yet: a second run finds none",
        "WHERE client IS NOT NULL"),
        "the new column for history, re-derived from Bronze's raw payloads, typed as Silver types it")


def fill_statement(source: str, dates: list, processed_at: datetime) -> Statement:
    """Fill the client of each Silver row still without one; nothing else changes."""
    return Statement("migrate.merge_client", lines(
        f"MERGE INTO {SILVER_EVENTS} t",
        f"USING {source} s",
        "ON t.event_id = s.event_id",
        f"   AND t.event_date IN ({in_list(dates)})  -- prunes the target to the dates being filled",
        "WHEN MATCHED AND t.client IS NULL THEN",
        f"  UPDATE SET t.client = s.client, t.processed_at = TIMESTAMP '{processed_at}'"),
        "one row per event_id, as ever: a matched row gets its client (and is re-processed now), "
        "a row that has one is left alone", target=SILVER_EVENTS, source=source)


def migrate_schema(spark: SparkSession, run: MigrationRun) -> None:
    """Step 1: add each column Silver lacks (and the tables a fresh catalog lacks)."""
    create_tables(spark)
    for column in ADDED:
        if has_column(spark, column.table, column.name):
            continue
        if run.snapshot_before is None:
            run.snapshot_before = current_snapshot(spark, column.table)
        query(spark, alter_statement(column))
        spark.catalog.refreshTable(column.table)
        run.columns_added.append(f"{column.table}.{column.name}")


def run_migration(spark: SparkSession, start: datetime, end: datetime) -> MigrationRun:
    """Migrate Silver to event schema v2 and re-derive its new column for [start, end) of event time."""
    run = MigrationRun(start, end)
    migrate_schema(spark, run)
    faults.checkpoint("migrate.after_schema")
    return retry_on_conflict(lambda conflicts: _fill(spark, run, conflicts), "migrate-silver")


def _fill(spark: SparkSession, run: MigrationRun, conflicts: int) -> MigrationRun:
    run.conflicts = conflicts
    # Materialized with its lineage cut: the MERGE below rewrites the table this query reads.
    staged = query(spark, to_fill_statement(run.start, run.end)).localCheckpoint()
    run.to_fill = staged.count()
    if run.to_fill == 0:
        return run  # nothing to fill: no commit, the table's snapshot stays the same
    dates = sorted(r.event_date for r in staged.select("event_date").distinct().collect())
    with temp_view(spark, staged, "migrate_clients"):
        figures = run.commits["migrate.merge_client"] = commit(
            spark, fill_statement("migrate_clients", dates, naive_utc()))
    run.filled = figures["added"]
    return run


def current_snapshot(spark: SparkSession, table: str) -> int | None:
    """The table's current snapshot id (None for a table with no commit yet)."""
    row = spark.sql(f"SELECT snapshot_id FROM {table}.history WHERE is_current_ancestor "
                    "ORDER BY made_current_at DESC LIMIT 1").first()
    return None if row is None else int(row.snapshot_id)


def schema_history(cfg: Settings, table: str) -> list[dict[str, Any]]:
    """Every schema the table has had: its id, its columns, what it added or dropped (by field id: a
    column dropped and added again is a new field), and the first snapshot written with it (read
    through PyIceberg: the catalog's metadata, not a Spark session's)."""
    from lib.medallion.catalog import catalog

    meta = catalog(cfg).load_table(table).metadata
    first_snapshot: dict[int, int] = {}
    for snapshot in sorted(meta.snapshots, key=lambda s: s.timestamp_ms):
        if snapshot.schema_id is not None:
            first_snapshot.setdefault(snapshot.schema_id, snapshot.snapshot_id)
    rows: list[dict[str, Any]] = []
    seen: dict[int, str] = {}
    for schema in sorted(meta.schemas, key=lambda s: s.schema_id):
        fields = {f.field_id: f.name for f in schema.fields}
        added = ", ".join(n for i, n in fields.items() if i not in seen) if seen else "(the first schema)"
        rows.append({"schema_id": schema.schema_id, "columns": len(fields), "added": added,
                     "dropped": ", ".join(n for i, n in seen.items() if i not in fields),
                     "first snapshot with it": first_snapshot.get(schema.schema_id),
                     "current": schema.schema_id == meta.current_schema_id})
        seen = fields
    return rows


def snapshot_before_column(cfg: Settings, table: str, column: str) -> int | None:
    """The last snapshot written with a schema that did not have `column`: what time travel to
    "before the migration" reads (None when the column came with the table)."""
    from lib.medallion.catalog import catalog

    meta = catalog(cfg).load_table(table).metadata
    without = {s.schema_id for s in meta.schemas if column not in [f.name for f in s.fields]}
    older = [s for s in meta.snapshots if s.schema_id in without]
    return max(older, key=lambda s: (s.timestamp_ms, s.sequence_number or 0)).snapshot_id if older else None
