"""The opening every notebook shares: make sure the stack runs, and say what it runs on."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from IPython.display import display

from lib import stack
from lib.config import Settings
from lib.jobs.registry import parse_time
from lib.jobs.runner import RECORD_KEY
from lib.stack.versions import versions


def setup(cfg: Settings) -> pd.DataFrame:
    """Start whatever part of the stack is down (a no-op when it runs) and return the versions table."""
    stack.up(cfg, quiet=True)
    table = pd.DataFrame(sorted(versions(cfg).items()), columns=["component", "version"])
    return table.set_index("component")


def stack_table(cfg: Settings) -> pd.DataFrame:
    """Service, address, healthy: the status table without pids (they change every run)."""
    rows = [(r.service, r.address, r.healthy) for r in stack.status(cfg)]
    return pd.DataFrame(rows, columns=["service", "address", "healthy"]).set_index("service")


def interval(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """A notebook's INTERVAL_START/INTERVAL_END parameters as UTC datetimes.

    Papermill passes the scheduled interval; a learner running the notebook by hand leaves them
    None and gets everything so far: [2000-01-01, now).
    """
    begin = parse_time(start, "INTERVAL_START") if start else datetime(2000, 1, 1, tzinfo=UTC)
    finish = parse_time(end, "INTERVAL_END") if end else datetime.now(UTC)
    return begin, finish


def frame(obj: Any) -> None:
    """Show a dataclass run report as a one-column table, and record its figures in the output's
    metadata, where the scheduler's run history reads them back (rows merged, records read)."""
    fields = asdict(obj)
    table = pd.Series({k: str(v) for k, v in fields.items()}, name="value").to_frame()
    figures = {k: v for k, v in fields.items() if isinstance(v, int | float | bool)}
    figures["rows_merged"] = getattr(obj, "rows_merged", None)
    display(table, metadata={RECORD_KEY: figures})
