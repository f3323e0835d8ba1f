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

import itertools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from tenacity import wait_fixed, wait_random_exponential

from lib.errors import CommitConflict
from lib.medallion.engine_errors import conflict_message, is_commit_conflict
from lib.medallion.statements import Statement, commit, lines
from lib.plumbing.waits import retry

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

R = TypeVar("R")
#: Each lost race is logged here with Iceberg's own message (notebook 06's drill 4 shows them).
LOG = logging.getLogger(__name__)

#: Makes Spark plan a row-level (validated) MERGE instead of an unvalidated append; never fires.
GUARD = "WHEN MATCHED AND FALSE THEN DELETE"
#: A run that loses this many races in a row gives up with CommitConflict (the scheduler retries it).
CONFLICT_ATTEMPTS = 5


@contextmanager
def temp_view(spark: SparkSession, frame: DataFrame, name: str) -> Iterator[str]:
    """`frame` as the temporary view `name` for the statements of one step of a run.

    Temporary views belong to one Spark session, and a session runs one job at a time (the
    scheduler gives every run its own process; a drill's concurrent runs each get a new session),
    so a readable fixed name is safe, and it is what the displayed statement shows."""
    frame.createOrReplaceTempView(name)
    try:
        yield name
    finally:
        spark.catalog.dropTempView(name)


def insert_only(name: str, table: str, source: str, on: list[str], why: str, staged: bool = True) -> Statement:
    """The insert-only MERGE of `source` into `table`: rows that match no row ON all of `on`.

    `on` names the target `t` and the source `s`, and should carry the predicates that let
    Iceberg prune the target to the partitions the source can match (they are also the conflict
    filter: only a concurrent commit into those partitions conflicts). `source` is a view the run
    stages (`staged`), or an inline query."""
    return Statement(name, lines(
        f"MERGE INTO {table} t",
        f"USING {source} s",
        "ON " + "\n   AND ".join(on),
        f"{GUARD}  -- never fires: makes the MERGE row-level, so a racing commit is refused",
        "WHEN NOT MATCHED THEN INSERT *"), why, target=table, source=source if staged else None)


def insert_new(spark: SparkSession, batch: DataFrame, statement: Statement) -> dict[str, int]:
    """Run an `insert_only` statement whose source view is `batch`; the figures of its commit
    (lib.medallion.statements.commit: rows added from its own snapshot, files scanned)."""
    with temp_view(spark, batch, statement.source or ""):
        return commit(spark, statement)


def is_conflict(exc: BaseException) -> bool:
    """Did this Spark call fail because another commit won the race (not for any other reason)?"""
    return isinstance(exc, CommitConflict) or is_commit_conflict(exc)


def retry_on_conflict(step: Callable[[int], R], what: str, attempts: int = CONFLICT_ATTEMPTS) -> R:
    """Run `step(conflicts_so_far)` until it commits without losing a race, at most `attempts` times.

    Any other error passes through at once. The pause before a new attempt grows and is jittered
    (full jitter: a random part of an exponential bound), so that two losers do not meet again."""
    conflicts = itertools.count()

    def attempt() -> R:
        try:
            return step(next(conflicts))
        except Exception as exc:
            if is_conflict(exc):
                LOG.warning("%s lost a race and starts again: %s", what, conflict_message(exc))
            raise

    return retry(attempt, attempts=attempts,
                 wait=wait_fixed(0.2) + wait_random_exponential(multiplier=0.5, max=8),
                 when=is_conflict, gave_up=lambda _: CommitConflict(
                     f"{what}: another run committed to the same table {attempts} times in a row while this "
                     "one ran; nothing was doubled. Run it again once the other runs have finished."))
