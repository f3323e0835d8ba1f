"""How a layer commits, so that two runs over the same records never both land them.

An operator's manual `python -m lib run` can race the scheduler, and so can a second machine: a
lock in one scheduler cannot stop that; the table has to. Iceberg validates a row-level MERGE at
serializable isolation: when another commit added data files that could hold rows this MERGE
would have matched, this commit fails with a ValidationException instead of doubling them. An
*insert-only* MERGE would not be checked: Spark plans `WHEN NOT MATCHED THEN INSERT` alone as a
plain append, and Iceberg never validates one append against another. So every insert-only MERGE
here carries a MATCHED clause that never fires (`GUARD`): the plan becomes a row-level MERGE,
merge-on-read keeps it as cheap as the append (a matched row writes nothing), and the loser of a
race is told. `retry_on_conflict` then runs the whole step again against the new state, where
the winner's rows are matched and skipped.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from lib.errors import CommitConflict

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

R = TypeVar("R")

#: Makes Spark plan a row-level (validated) MERGE instead of an unvalidated append; never fires.
GUARD = "WHEN MATCHED AND FALSE THEN DELETE"
#: A run that loses this many races in a row gives up with CommitConflict (the scheduler retries it).
CONFLICT_ATTEMPTS = 5
_CONFLICT_MARKERS = ("org.apache.iceberg.exceptions.ValidationException",
                     "org.apache.iceberg.exceptions.CommitFailedException")


@contextmanager
def temp_view(spark: SparkSession, frame: DataFrame, label: str) -> Iterator[str]:
    """`frame` as a temporary view for one statement, under a name no concurrent run shares."""
    view = f"{label.replace('.', '_')}_{uuid.uuid4().hex[:8]}"
    frame.createOrReplaceTempView(view)
    try:
        yield view
    finally:
        spark.catalog.dropTempView(view)


def insert_new(spark: SparkSession, batch: DataFrame, table: str, on: str) -> int:
    """Insert-only MERGE: rows of `batch` that match no row of `table` ON `on`; returns how many.

    The `on` condition names the target as `t` and the batch as `s`, and should carry the
    predicates that let Iceberg prune the target to the partitions the batch can match (they are
    also the conflict filter: only a concurrent commit into those partitions conflicts).
    """
    before = spark.table(table).count()
    with temp_view(spark, batch, f"batch_{table}") as view:
        spark.sql(f"MERGE INTO {table} t USING {view} s ON {on} {GUARD} WHEN NOT MATCHED THEN INSERT *")
    return spark.table(table).count() - before


def is_conflict(exc: BaseException) -> bool:
    """Did this Spark call fail because another commit won the race (not for any other reason)?"""
    return isinstance(exc, CommitConflict) or any(marker in str(exc) for marker in _CONFLICT_MARKERS)


def retry_on_conflict(step: Callable[[int], R], what: str, attempts: int = CONFLICT_ATTEMPTS) -> R:
    """Run `step(conflicts_so_far)` until it commits without losing a race, at most `attempts` times.

    Any other error passes through at once. The pause before a new attempt grows and is jittered,
    so that two losers do not meet again at the same moment."""
    for conflicts in range(attempts):
        try:
            return step(conflicts)
        except Exception as exc:
            if not is_conflict(exc):
                raise
            if conflicts + 1 == attempts:
                raise CommitConflict(
                    f"{what}: another run committed to the same table {attempts} times in a row while this "
                    "one ran; nothing was doubled. Run it again once the other runs have finished.") from exc
            time.sleep(random.uniform(0.2, 1.0) * (conflicts + 1))
    raise AssertionError("unreachable")
