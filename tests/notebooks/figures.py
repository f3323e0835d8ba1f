"""What each notebook's recorded figures must say, checked in the same execution that nbval compares.

Every notebook records its key figures in its outputs' metadata (lib.workbook.notebook.record). nbval
executes each committed notebook once at full size; the root conftest.py collects the figures of each
executed cell and, after a notebook's last cell, runs that notebook's check below as a test of its own
(`notebooks/03_bronze.ipynb::recorded figures`), so a failure names its notebook and no notebook is
executed twice. A check that needs an earlier notebook's figures (03 reads what 01 produced) runs only
when that notebook is executed in the same session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Figures = dict[str, dict[str, Any]]  # by notebook file name


def _produce(f: Figures) -> None:
    produced = f["01_produce.ipynb"]
    assert produced["records"] > produced["distinct_events"] == produced["expected"]["bronze.conversion_events"]
    assert produced["duplicates"] > 0 and produced["malformed"] > 0


def _bronze(f: Figures) -> None:
    produced, bronze = f["01_produce.ipynb"], f["03_bronze.ipynb"]
    expected = produced["expected"]
    # the first run read 01's batch (and 02's live traffic) with its duplicates; nothing after it inserted
    assert bronze["first_records_read"] >= produced["records"]
    assert bronze["first_duplicates"] >= produced["duplicates"]
    assert bronze["manifest_events"] == bronze["batch_events_found"] == expected["bronze.conversion_events"]
    assert bronze["batch_dead_letters_found"] == expected["bronze.dead_letter"]
    assert bronze["rerun_inserted"] == bronze["redelivery_inserted"] == 0


def _silver(f: Figures) -> None:
    expected, silver = f["01_produce.ipynb"]["expected"], f["04_silver.ipynb"]
    # 01's valid requests in Silver, its invalid events rejected
    assert silver["manifest_requests"] == silver["batch_silver_found"] == expected["silver.conversion_events"]
    assert silver["batch_rejected_found"] == expected["silver.rejected_events"]


def _gold(f: Figures) -> None:
    gold = f["05_gold.ipynb"]
    # the naive overwrite kept only the late interval's count; Gold kept the truth
    assert gold["naive_key_naive"] < gold["naive_key_truth"] == gold["naive_key_gold"]
    assert gold["gold_keys"] > 0


def _drills(f: Figures) -> None:
    drills = f["06_failure_drills.ipynb"]["drills"]
    assert len(drills) == 6 and not [name for name, drill in drills.items() if not drill["recovered"]]


def _outages(f: Figures) -> None:
    drills = f["10_outage_drills.ipynb"]["drills"]
    assert len(drills) == 3 and not [name for name, drill in drills.items() if not drill["recovered"]]
    assert sorted(int(name.split(".")[0]) for name in drills) == [7, 8, 9]


def _migration(f: Figures) -> None:
    migrated = f["07_schema_migration.ipynb"]
    assert migrated["batch_v2_requests"] == migrated["batch_v2_with_client"] > 0


def _maintenance(f: Figures) -> None:
    kept = f["08_maintenance.ipynb"]
    # the small runs' day held a file per run; maintenance left one, and compacted at least those
    assert kept["day_files_before"] >= 4 and kept["day_files_after"] == 1
    assert kept["files_compacted"] >= kept["day_files_before"] and kept["snapshots_expired"] > 0
    assert kept["planted"] and kept["orphans_removed"] >= 1  # the planted one, at least (in either warehouse)


#: notebook -> (the notebooks whose figures its check reads, the check)
def _orchestration(f: Figures) -> None:
    ran = f["09_orchestration.ipynb"]
    # two Gold runs, one per day; with Bronze's backfill and Silver's run, four rows in its history
    assert ran["gold_days"] == 2 and ran["history_rows"] == 4


CHECKS: dict[str, tuple[tuple[str, ...], Callable[[Figures], None]]] = {
    "01_produce.ipynb": (("01_produce.ipynb",), _produce),
    "03_bronze.ipynb": (("01_produce.ipynb", "03_bronze.ipynb"), _bronze),
    "04_silver.ipynb": (("01_produce.ipynb", "04_silver.ipynb"), _silver),
    "05_gold.ipynb": (("05_gold.ipynb",), _gold),
    "06_failure_drills.ipynb": (("06_failure_drills.ipynb",), _drills),
    "07_schema_migration.ipynb": (("07_schema_migration.ipynb",), _migration),
    "08_maintenance.ipynb": (("08_maintenance.ipynb",), _maintenance),
    "09_orchestration.ipynb": (("09_orchestration.ipynb",), _orchestration),
    "10_outage_drills.ipynb": (("10_outage_drills.ipynb",), _outages),
}
