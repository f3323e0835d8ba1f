"""Table maintenance: what keeps tables written every few minutes cheap to read and to keep.

Every Bronze run commits a snapshot and a small file per partition it touched (96 runs a day), the
stream commits at every checkpoint, and a killed writer leaves files no snapshot references. Left
alone, a read opens thousands of small files, every snapshot ever made stays in the metadata (and
keeps its files on disk), and the leftovers stay forever. Four Iceberg procedures, run by Spark, in
the order where each one's output is the next one's input:

1. `rewrite_data_files` on *closed* partitions only (days before yesterday): a day still receiving
   events or late events would be compacted again tomorrow, and a rewrite racing a MERGE on the same
   files loses. The rewrite is a commit like any other: readers see the same rows.
2. `rewrite_manifests`: one manifest per partition range instead of one per commit.
3. `expire_snapshots`: snapshots older than MAINTAIN_SNAPSHOT_AGE_S beyond the newest
   MAINTAIN_KEEP_SNAPSHOTS, and the files only they referenced. Never a snapshot a Flink job needs to
   resume: its Iceberg sink finds the last checkpoint it committed by walking back from the current
   snapshot to its own newest one, so on the stream's tables nothing at or after the newest snapshot
   of a running job or of a recorded restore point expires (`keep_from`).
4. `remove_orphan_files` older than MAINTAIN_ORPHAN_AGE_S: a file a writer has written but not yet
   committed looks exactly like an orphan, so only age tells them apart.

Every statement is a `Statement`, displayed in a notebook before it runs; its literals are table names
from the registry of tables and times computed here, never a user's text.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from lib.config import Settings
from lib.errors import WorkbookError
from lib.medallion import storage
from lib.medallion.statements import Statement, one_row, query
from lib.medallion.storage import StoredFile

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

#: The partitions written today and yesterday stay open: late events still land there.
OPEN_DAYS = 2


@dataclass(frozen=True)
class Policy:
    """What maintenance keeps: the newest snapshots, the young snapshots, the young unreferenced files."""

    keep_snapshots: int
    snapshot_age: timedelta
    orphan_age: timedelta

    @classmethod
    def of(cls, cfg: Settings) -> Policy:
        return cls(cfg.maintain_keep_snapshots, timedelta(seconds=cfg.maintain_snapshot_age_s),
                   timedelta(seconds=cfg.maintain_orphan_age_s))


@dataclass(frozen=True)
class TableState:
    """A table's footprint at one moment, from its metadata tables."""

    data_files: int
    delete_files: int
    bytes: int
    snapshots: int
    manifests: int
    rows: int


@dataclass(frozen=True)
class TableReport:
    """One table's maintenance: before, after, and what each procedure did."""

    table: str
    before: TableState
    after: TableState
    files_compacted: int
    files_written: int
    manifests_rewritten: int
    snapshots_expired: int
    files_deleted_with_them: int
    orphans_removed: int
    #: Each snapshot the procedures committed, with the rows it reads and the rows its parent reads: equal
    #: when maintenance changed no row (whatever other writers committed meanwhile).
    commits: tuple[tuple[int, int, int], ...] = ()

    @property
    def rows_kept(self) -> bool:
        return all(rows == parent_rows for _, rows, parent_rows in self.commits)

    def row(self) -> dict[str, object]:
        """A flat row for a table: each figure before -> after, then what the procedures did."""
        flat: dict[str, object] = {"table": self.table}
        for key in asdict(self.before):
            flat[key] = f"{getattr(self.before, key)} -> {getattr(self.after, key)}"
        done = {k: v for k, v in asdict(self).items() if k not in ("table", "before", "after", "commits")}
        return flat | done | {"commits": len(self.commits), "rows kept": self.rows_kept}


def _time(when: datetime) -> str:
    """A Spark SQL timestamp literal (the session's time zone is UTC)."""
    return f"TIMESTAMP '{when.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def closed_before(now: datetime) -> date:
    """The first open day: partitions of earlier days are closed and may be compacted."""
    return now.astimezone(UTC).date() - timedelta(days=OPEN_DAYS - 1)


def statements(cfg: Settings, table: str, policy: Policy, now: datetime, compact_days: bool,
               keep_from: datetime | None = None) -> list[Statement]:
    """The procedures for one table, in order. `compact_days`: the table is partitioned by event_date,
    so its closed days can be compacted; `keep_from`: no snapshot at or after it expires."""
    system = f"{cfg.catalog_name}.system"
    expire_before = now - policy.snapshot_age
    if keep_from is not None:
        expire_before = min(expire_before, keep_from)
    found = []
    if compact_days:
        closed = closed_before(now).isoformat()
        found.append(Statement(
            "maintain.compact",
            f"CALL {system}.rewrite_data_files(table => '{table}', where => 'event_date < \"{closed}\"',\n"
            "    options => map('min-input-files', '2', 'remove-dangling-deletes', 'true'))",
            f"one file per closed day (before {closed}) where a day holds two or more", table))
    found.append(Statement("maintain.manifests", f"CALL {system}.rewrite_manifests(table => '{table}')",
                           "manifests grouped by partition, not by commit", table))
    found.append(Statement(
        "maintain.expire",
        f"CALL {system}.expire_snapshots(table => '{table}', older_than => {_time(expire_before)},\n"
        f"    retain_last => {policy.keep_snapshots})",
        f"snapshots older than {expire_before:%Y-%m-%d %H:%M} UTC beyond the newest {policy.keep_snapshots}", table))
    prefix = ", prefix_listing => true" if cfg.warehouse == "s3" else ""  # list the bucket through S3FileIO
    found.append(Statement(
        "maintain.orphans",
        f"CALL {system}.remove_orphan_files(table => '{table}', older_than => {_time(now - policy.orphan_age)}"
        f"{prefix})",
        f"unreferenced files older than {policy.orphan_age}", table))
    return found


def state(spark: SparkSession, table: str) -> TableState:
    """Data files, delete files, bytes, snapshots, manifests and rows of the current snapshot."""
    files = {row.content: row for row in spark.sql(
        f"SELECT content, COUNT(*) AS n, COALESCE(SUM(file_size_in_bytes), 0) AS bytes FROM {table}.files "
        "GROUP BY content").collect()}
    deletes = sum(row.n for content, row in files.items() if content != 0)
    data = files.get(0)
    snapshots = _snapshots(spark, table)
    manifests = one_row(spark.sql(f"SELECT COUNT(*) AS n FROM {table}.manifests")).n
    rows = one_row(spark.sql(f"SELECT COUNT(*) AS n FROM {table}")).n
    return TableState(data.n if data else 0, deletes, sum(row.bytes for row in files.values()), snapshots,
                      manifests, rows)


def _snapshots(spark: SparkSession, table: str) -> int:
    return one_row(spark.sql(f"SELECT COUNT(*) AS n FROM {table}.snapshots")).n


def maintain_table(spark: SparkSession, cfg: Settings, table: str, policy: Policy, now: datetime,
                   compact_days: bool, keep_from: datetime | None = None) -> TableReport:
    """Run the four procedures on one table and say what they did."""
    spark.sql(f"REFRESH TABLE {table}")
    before = state(spark, table)
    done: dict[str, int] = {}
    commits = []
    for statement in statements(cfg, table, policy, now, compact_days, keep_from):
        step = statement.name.removeprefix("maintain.")
        snapshots = _snapshots(spark, table) if step == "expire" else 0
        began = one_row(spark.sql("SELECT current_timestamp() AS t")).t
        result = query(spark, statement).collect()
        if step in ("compact", "manifests"):
            commits += _rows_around(spark, table, began)
        if step == "compact":
            done["files_compacted"] = result[0].rewritten_data_files_count
            done["files_written"] = result[0].added_data_files_count
        elif step == "manifests":
            done["manifests_rewritten"] = result[0].rewritten_manifests_count
        elif step == "expire":
            done["snapshots_expired"] = snapshots - _snapshots(spark, table)
            done["files_deleted_with_them"] = result[0].deleted_data_files_count + sum(
                getattr(result[0], f"deleted_{kind}_delete_files_count") for kind in ("position", "equality"))
        else:
            done["orphans_removed"] = len(result)
    spark.sql(f"REFRESH TABLE {table}")
    return TableReport(table, before, state(spark, table), done.get("files_compacted", 0),
                       done.get("files_written", 0), done["manifests_rewritten"], done["snapshots_expired"],
                       done["files_deleted_with_them"], done["orphans_removed"], tuple(commits))


def _rows_around(spark: SparkSession, table: str, since: datetime) -> list[tuple[int, int, int]]:
    """(snapshot, its rows, its parent's rows) for each `replace` snapshot committed since `since`: what a
    rewrite made. Counted by time travel, so a writer committing meanwhile changes neither side."""
    spark.sql(f"REFRESH TABLE {table}")
    made = spark.sql(f"SELECT snapshot_id, parent_id FROM {table}.snapshots WHERE operation = 'replace' "
                     f"AND committed_at >= {_time(since)} AND parent_id IS NOT NULL").collect()

    def rows(snapshot: int) -> int:
        return one_row(spark.sql(f"SELECT COUNT(*) AS n FROM {table} VERSION AS OF {int(snapshot)}")).n

    return [(row.snapshot_id, rows(row.snapshot_id), rows(row.parent_id)) for row in made]


def reports_frame(reports: list[TableReport]) -> pd.DataFrame:
    """The reports as one table, a row per table."""
    import pandas as pd

    return pd.DataFrame([r.row() for r in reports]).set_index("table")


def unreferenced_data_files(spark: SparkSession, cfg: Settings, table: str) -> dict[str, StoredFile]:
    """The table's data files the storage holds that no snapshot lists, by key (the local folder, or the
    bucket through the S3 API): what remove_orphan_files considers, before its age rule."""
    named = storage.referenced(spark, table)
    stored = storage.data_files(cfg, storage.location(cfg, table))
    return {k: stored[k] for k in sorted(stored) if k not in named}


def _backing_file(cfg: Settings, stored_key: str) -> Path:
    """The local file behind a stored key: the key itself (file mode), or the embedded S3 server's file
    for the object (its filesystem backend keeps each object as STACK_HOME/s3/data/<bucket>/<key>, and
    serves the file's time as the object's Last-Modified)."""
    path = cfg.stack_home / "s3" / "data" / stored_key if cfg.warehouse == "s3" else Path(stored_key)
    if not path.is_file():
        raise WorkbookError(f"no local file behind {stored_key!r} ({path}): dating a file by hand needs the "
                            "local warehouse or the embedded S3 server (not another S3 endpoint)")
    return path


def plant_orphan(spark: SparkSession, cfg: Settings, table: str, age: timedelta) -> tuple[str, str]:
    """A copy of one of the table's live data files under a name no snapshot knows, dated `age` ago, as
    a writer killed long ago would have left it; the live file is dated the same. Returns the keys
    (orphan, live): maintenance must delete the first and keep the second. The copy goes through the
    storage's API (S3 CopyObject in S3 mode); only the date is set on the file behind it."""
    live_uri = one_row(spark.sql(f"SELECT file_path FROM {table}.files WHERE content = 0 "
                                 "ORDER BY file_path LIMIT 1")).file_path
    live = storage.key(live_uri)
    folder, _, name = live.rpartition("/")
    orphan = f"{folder}/planted-orphan-{name}"
    storage.filesystem(cfg, live_uri).copy_file(live, orphan)
    then = (datetime.now(UTC) - age).timestamp()
    for stored_key in (orphan, live):
        os.utime(_backing_file(cfg, stored_key), (then, then))
    return orphan, live


def files_by_age(cfg: Settings, table: str, keys: list[str], live: str | None) -> pd.DataFrame:
    """The files `keys` names that the storage still holds: path under the table's location, whether a
    snapshot references it (only `live` does here), and its age as the storage reports it."""
    import pandas as pd

    location = storage.location(cfg, table)
    root = storage.key(location) + "/"
    stored = storage.data_files(cfg, location)
    now = datetime.now(UTC)
    rows = [{"file": k.removeprefix(root), "referenced": k == live,
             "age": str(timedelta(seconds=round((now - stored[k].modified).total_seconds())))}
            for k in keys if k in stored]
    return pd.DataFrame(rows, columns=["file", "referenced", "age"])


def stored_data_files(cfg: Settings, table: str) -> set[str]:
    """The keys of every data file the storage holds under the table now, referenced or not."""
    return set(storage.data_files(cfg, storage.location(cfg, table)))


def remove_orphans_now(spark: SparkSession, cfg: Settings, table: str, older_than: datetime) -> list[str]:
    """Iceberg's delete-orphan-files action with any age rule, where the procedure refuses one under a day.

    Only for a moment known to be quiet (notebook 06 after its killed run, with no writer of `table` left):
    the age rule is what keeps a concurrent writer's uncommitted files safe, and the daily job keeps it.
    Returns the locations it deleted."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    session = spark._jsparkSession
    loaded = jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(session, f"{cfg.catalog_name}.{table}")
    action = jvm.org.apache.iceberg.spark.actions.SparkActions.get(session).deleteOrphanFiles(loaded) \
        .olderThan(int(older_than.timestamp() * 1000))
    if cfg.warehouse == "s3":
        action = action.usePrefixListing(True)  # list the bucket through S3FileIO, as the daily job does
    found = action.execute().orphanFileLocations().iterator()
    removed = []
    while found.hasNext():
        removed.append(str(found.next()))
    return sorted(removed)
