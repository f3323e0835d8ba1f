"""The `maintain` job: every table of the warehouse through lib.medallion.maintenance, once a day.

Which tables, and the two rules that keep the stream safe while it runs:
- its tables expire no snapshot a Flink job may resume from (lib.stream.lifecycle.resume_snapshots);
- their orphan age never goes below MAINTAIN_ORPHAN_AGE_S, whatever the run was given: the sink writes
  files between checkpoints, and its restore points name manifests no snapshot references yet.
Compaction applies to the tables partitioned by day (`event_date`), on their closed days only.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from lib.config import Settings
from lib.medallion.catalog import catalog
from lib.medallion.maintenance import Policy, TableReport, maintain_table
from lib.stream.job import STREAM_TABLES
from lib.stream.lifecycle import resume_snapshots

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The namespaces whose tables the job maintains: the medallion's, the stream's (bronze) and ops.
NAMESPACES = ("bronze", "silver", "gold", "ops")


def warehouse_tables(cfg: Settings) -> dict[str, bool]:
    """Every table of the maintained namespaces, sorted, with whether it is partitioned by day."""
    lake = catalog(cfg)
    found = {}
    for namespace in NAMESPACES:
        if not lake.namespace_exists(namespace):
            continue
        for identifier in lake.list_tables(namespace):
            name = ".".join(identifier)
            table = lake.load_table(name)
            fields = {table.schema().find_field(f.source_id).name: str(f.transform) for f in table.spec().fields}
            found[name] = fields.get("event_date") == "identity"
    return dict(sorted(found.items()))


def maintain_warehouse(spark: SparkSession, cfg: Settings, policy: Policy, now: datetime) -> list[TableReport]:
    """Maintain every table; the stream's tables under the two rules above."""
    keep_from = resume_snapshots(cfg)
    floor = Policy.of(cfg).orphan_age
    reports = []
    for table, by_day in warehouse_tables(cfg).items():
        own = replace(policy, orphan_age=max(policy.orphan_age, floor)) if table in STREAM_TABLES else policy
        reports.append(maintain_table(spark, cfg, table, own, now, by_day, keep_from.get(table)))
    return reports
