"""What a statement read: Iceberg's scan metrics, the evidence that a MERGE was pruned.

Iceberg's Spark scan counts, for each table it reads, the data files it kept after planning
(`resultDataFiles`) and those it skipped by partition values and column statistics. They live on
the `BatchScanExec` nodes of the statement's executed plan, so they belong to that statement
alone (another thread's statement has its own plan). Classic PySpark only: the plan is reached
through py4j.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Plan nodes that wrap the plan that actually ran (adaptive execution, commands, query stages).
_WRAPPERS = {"CommandResultExec": "commandPhysicalPlan", "AdaptiveSparkPlanExec": "executedPlan",
             "ReusedExchangeExec": "child"}


def _seq(scala_seq: Any) -> list[Any]:
    return [scala_seq.apply(i) for i in range(scala_seq.size())]


def scanned_files(spark: SparkSession, result: DataFrame, table: str) -> int | None:
    """Data files of `table` that the statement behind `result` read (after pruning), or None when
    its plan shows no scan of that table."""
    convert = spark._jvm.scala.jdk.javaapi.CollectionConverters  # type: ignore[union-attr]
    found: list[int] = []

    def walk(node: Any) -> None:
        kind = node.getClass().getSimpleName()
        if kind in _WRAPPERS:
            walk(getattr(node, _WRAPPERS[kind])())
        elif kind.endswith("QueryStageExec"):
            walk(node.plan())
        if kind == "BatchScanExec" and node.table().name().endswith(table):
            metrics = convert.asJava(node.metrics())
            if metrics.containsKey("resultDataFiles"):
                found.append(int(metrics.get("resultDataFiles").value()))
        for child in _seq(node.children()) + _seq(node.subqueries()):
            walk(child)

    walk(result._jdf.queryExecution().executedPlan())
    # A copy-on-write MERGE scans its target twice (find the files, then rewrite them): the larger scan.
    return max(found) if found else None
