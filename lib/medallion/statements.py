"""Statements as data: each layer builds the SQL it runs as named `Statement`s, and runs them here.

A notebook watches a run (`watching`) and displays every statement right before Spark runs it,
so a learner reads the SQL the scheduled job runs, never a copy. A statement that commits to a
table tags the snapshot it makes, and the rows it added are read from that snapshot's own summary
(`added-records`): counting the table before and after would also count what another run
committed meanwhile.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lib.medallion.scans import scanned_files

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, Row, SparkSession

#: The snapshot-summary key that names the statement which made the snapshot.
SNAPSHOT_TAG = "workbook.statement-id"
#: Iceberg copies every Spark session setting under this prefix into the next commit's summary.
_TAG_CONF = f"spark.sql.iceberg.snapshot-property.{SNAPSHOT_TAG}"


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a run: `name` is `<layer>.<step>`, `why` says what it is for."""

    name: str
    sql: str
    why: str = ""
    #: The table the statement commits to (a MERGE), or None for a query.
    target: str | None = None
    #: The temporary view the run stages for it to read, if any.
    source: str | None = None


def lines(*parts: str) -> str:
    """SQL written one clause per line, as a reader wants to see it (blank parts are left out)."""
    return "\n".join(part for part in parts if part)


Watcher = Callable[[Statement], None]
_watchers: ContextVar[tuple[Watcher, ...]] = ContextVar("statement_watchers", default=())


@contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Call `watcher(statement)` right before each statement runs in this context (thread)."""
    token = _watchers.set((*_watchers.get(), watcher))
    try:
        yield
    finally:
        _watchers.reset(token)


def _announce(statement: Statement) -> None:
    for watcher in _watchers.get():
        watcher(statement)


def query(spark: SparkSession, statement: Statement) -> DataFrame:
    """Run a query statement; its result as a (lazy) DataFrame."""
    _announce(statement)
    return spark.sql(statement.sql)


def one_row(frame: DataFrame) -> Row:
    """The row of an aggregate, which always has one (Spark types `first()` as optional)."""
    row = frame.first()
    assert row is not None, "an aggregate without a row"
    return row


def to_pandas(frame: DataFrame) -> pd.DataFrame:
    """The frame in pandas, typed as pandas (through Arrow, as the session is configured)."""
    return frame.toPandas()


@dataclass(kw_only=True)
class Commits:
    """What every layer's run reports of its commits (its figures come first; these, keyword-only, last)."""

    #: Races lost to another run before this attempt committed (each one re-ran the whole step).
    conflicts: int = 0
    #: What each commit did, by statement name (`commit` below).
    commits: dict[str, dict[str, int]] = field(default_factory=dict)


def commit(spark: SparkSession, statement: Statement) -> dict[str, int]:
    """Run a statement that commits to `statement.target`; the figures of the snapshot it made.

    "added"/"deleted" rows and "files" added, from the snapshot's summary (0 when nothing was
    written); "table files" the target held before, and "files scanned" of them (the pruning
    evidence: a MERGE that names its partitions reads a few files, not the table)."""
    if statement.target is None:
        raise ValueError(f"{statement.name}: a commit needs the table it commits to (target)")
    _announce(statement)
    tag = uuid.uuid4().hex
    spark.conf.set(_TAG_CONF, tag)
    try:
        result = spark.sql(statement.sql)
    finally:
        spark.conf.unset(_TAG_CONF)
    figures = snapshot_figures(spark, statement.target, tag)
    scanned = scanned_files(spark, result, statement.target)
    figures["files scanned"] = scanned or 0  # no scan of the target at all: it had no file to read
    return figures


def snapshot_figures(spark: SparkSession, table: str, tag: str) -> dict[str, int]:
    """The added/deleted figures of the snapshot a tagged statement committed to `table`."""
    row = spark.sql(f"""
        SELECT summary['added-records'] AS added, summary['deleted-records'] AS deleted,
               summary['added-position-deletes'] AS position_deletes,
               summary['added-data-files'] AS files, summary['deleted-data-files'] AS removed,
               summary['total-data-files'] AS total
        FROM {table}.snapshots WHERE summary['{SNAPSHOT_TAG}'] = '{tag}'""").first()
    if row is None:
        return {"added": 0, "deleted": 0, "replaced": 0, "files": 0, "table files": -1}
    n = {k: int(v or 0) for k, v in row.asDict().items()}
    # An update is a delete plus an insert: copy-on-write drops the old rows with their files (deleted-records),
    # merge-on-read marks them in position-delete files (added-position-deletes). Either way, rows replaced.
    return {"added": n["added"], "deleted": n["deleted"], "replaced": n["deleted"] + n["position_deletes"],
            "files": n["files"], "table files": n["total"] - n["files"] + n["removed"]}
