"""`make run`: the whole workbook as one job, with a summary of every notebook and check.

Starts the stack (unless it already runs), executes the numbered notebooks in order with
papermill into runs/<UTC timestamp>/, runs the smoke checks, prints a summary and stops what it
started. Exit code 1 when any notebook or check failed.
"""

from __future__ import annotations

import time

from lib import smoke, stack
from lib.runs import NOTEBOOKS, execute, run_folder


def notebooks() -> list[str]:
    """The numbered notebooks, in order."""
    return sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def run_workbook() -> int:
    from tabulate import tabulate

    before = stack.running()
    stack.up()
    rows: list[tuple[str, str, str]] = []
    try:
        folder = run_folder()
        for name in notebooks():
            began = time.monotonic()
            try:
                execute(name, {}, folder)
                rows.append((name, "ok", f"{time.monotonic() - began:.0f}s"))
            except Exception as exc:
                rows.append((name, "FAILED", f"{type(exc).__name__}: {str(exc)[:200]}"))
        for check in smoke.run_all():
            rows.append((check.name, "ok" if check.ok else "FAILED", check.detail))
    finally:
        started_here = stack.running() - before
        if started_here:
            stack.down(sorted(started_here))
    print()
    print(tabulate(rows, headers=["step", "result", "detail"]))
    print(f"\nexecuted notebooks: {folder}")
    failed = [r for r in rows if r[1] != "ok"]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
