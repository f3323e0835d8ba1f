"""`make run`: the whole workbook as one job, with a summary of every notebook and check.

Starts the stack (unless it already runs), executes the numbered notebooks in order with
papermill into runs/<UTC timestamp>/, runs the smoke checks, prints a summary and stops what it
started. Exit code 1 when any notebook or check failed.
"""

from __future__ import annotations

import time

from tabulate import tabulate

from lib import stack
from lib.config import Settings
from lib.jobs.runner import NOTEBOOKS, run_folder, run_notebook
from lib.medallion.invariants import check_all
from lib.medallion.spark import spark_session
from lib.medallion.tables import DDL
from lib.stream.job import STREAM_TABLES
from lib.workbook import smoke


def notebooks() -> list[str]:
    """The numbered notebooks, in order."""
    return sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _layers_and_invariants(cfg: Settings) -> list[tuple[str, str, str]]:
    """Row counts of every table, then each invariant, recomputed from the sources."""
    spark = spark_session(cfg)
    rows = [(table, "rows", str(spark.table(table).count())) for table in DDL]
    rows += [(table, "rows", str(spark.table(table).count())) for table in STREAM_TABLES
             if spark.catalog.tableExists(table)]
    rows += [(check.name, "ok" if check.ok else "FAILED", check.detail) for check in check_all(spark, cfg)]
    return rows


def run_workbook(cfg: Settings) -> int:
    """Stack up, every notebook in order, smoke checks, counts and invariants, stack down; 0 when all passed."""
    before = stack.running(cfg)
    stack.up(cfg)
    rows: list[tuple[str, str, str]] = []
    folder = None
    try:
        folder = run_folder(cfg)
        for name in notebooks():
            began = time.monotonic()
            outcome = run_notebook(name, {}, folder / name)
            if outcome.ok:
                rows.append((name, "ok", f"{time.monotonic() - began:.0f}s"))
            else:
                rows.append((name, "FAILED", f"cell {outcome.failed_cell}: {outcome.error[:200]}"))
            for drill, result in outcome.figures.get("drills", {}).items():  # notebooks 06 and 10: their summary tables
                rows.append((f"  drill {drill}", "ok" if result["recovered"] else "FAILED", result["evidence"][:200]))
        for check in smoke.run_all(cfg):
            rows.append((check.name, "ok" if check.ok else "FAILED", check.detail))
        try:
            rows.extend(_layers_and_invariants(cfg))
        except Exception as exc:  # recorded and turned into exit 1, like a failed notebook
            rows.append(("tables and invariants", "FAILED", f"{type(exc).__name__}: {str(exc)[:200]}"))
    finally:
        started_here = stack.running(cfg) - before
        if started_here:
            stack.down(cfg, sorted(started_here))
    print()
    print(tabulate(rows, headers=["step", "result", "detail"]))
    print(f"\nexecuted notebooks: {folder}")
    failed = [r for r in rows if r[1] not in ("ok", "rows")]
    checks = [r for r in rows if r[1] != "rows"]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
