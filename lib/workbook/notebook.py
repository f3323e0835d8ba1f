"""The opening every notebook shares: make sure the stack runs, and say what it runs on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from IPython.display import Markdown, display

from lib import faults, stack
from lib.config import Settings
from lib.jobs.registry import EPOCH, parse_time
from lib.jobs.runner import RECORD_KEY
from lib.kafka import quiet_client_logs
from lib.medallion.statements import Statement, watching
from lib.stack.versions import versions
from lib.traffic.client import ServiceClient
from lib.workbook.timeline import Wrapped, wrapped

if TYPE_CHECKING:
    from lib.medallion.invariants import Invariant


def setup(cfg: Settings) -> pd.DataFrame:
    """Start whatever part of the stack is down (a no-op when it runs), arm the crash and race points the
    settings name (a drill's or a test's run), and return the versions table."""
    quiet_client_logs()
    stack.up(cfg, quiet=True)
    faults.arm(cfg)
    table = pd.DataFrame(sorted(versions(cfg).items()), columns=["component", "version"])
    return table.set_index("component")


def stack_table(cfg: Settings) -> pd.DataFrame:
    """Service, address, healthy: the status table without pids (they change every run)."""
    rows = [(r.service, r.address, r.healthy) for r in stack.status(cfg)]
    return pd.DataFrame(rows, columns=["service", "address", "healthy"]).set_index("service")


def storage_table(cfg: Settings) -> Wrapped:
    """Where the warehouse lives and where the jobs run: what WAREHOUSE and CLUSTER chose. Local paths
    are shown under STACK_HOME, so the table reads the same on every machine; shown whole (an S3
    warehouse's address is longer than pandas' 50 characters)."""
    if cfg.warehouse == "s3":
        warehouse = f"{cfg.iceberg_warehouse} (S3 bucket {cfg.s3_bucket!r} on {cfg.s3_endpoint})"
        io = "S3FileIO, path-style requests"
    else:
        where = cfg.iceberg_warehouse.removeprefix("file://")
        home = str(cfg.stack_home)
        warehouse = f"local files: {where.replace(home, 'STACK_HOME', 1) if where.startswith(home) else where}"
        io = "Iceberg's default for the file system"
    spark = (f"the standalone cluster at {cfg.spark_master}" if cfg.spark_master.startswith("spark://")
             else f"{cfg.spark_master}, inside the notebook's process")
    rows = [("warehouse", warehouse), ("Iceberg file IO", io), ("Spark jobs run on", spark),
            ("Flink taskmanagers", f"{cfg.taskmanagers} (FLINK_REST_URL {cfg.flink_rest_url})")]
    return wrapped(pd.DataFrame(rows, columns=["setting", "in use"]).set_index("setting"))


def contract_table(cfg: Settings) -> pd.DataFrame:
    """The service's routes as its own OpenAPI document states them: what to call, and what it may answer."""
    with ServiceClient(cfg) as client:
        doc = client.get("/openapi.json")[1]
    rows = [(f"{method.upper()} {path}", op.get("summary", ""), ", ".join(sorted(op.get("responses", {}))))
            for path, methods in sorted(doc["paths"].items()) for method, op in methods.items()]
    return pd.DataFrame(rows, columns=["route", "what it does", "answers"]).set_index("route")


def interval(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """A notebook's INTERVAL_START/INTERVAL_END parameters as UTC datetimes.

    Papermill passes the scheduled interval; a learner running the notebook by hand leaves them
    None and gets everything so far: [2000-01-01, now).
    """
    begin = parse_time(start, "INTERVAL_START") if start else EPOCH
    finish = parse_time(end, "INTERVAL_END") if end else datetime.now(UTC)
    return begin, finish


def frame(obj: Any) -> None:
    """Show a dataclass run report as a one-column table, and record its figures in the output's
    metadata, where the scheduler's run history reads them back (rows merged, records read)."""
    fields = {k: v for k, v in asdict(obj).items() if k != "commits"}
    table = pd.Series({k: str(v) for k, v in fields.items()}, name="value").to_frame()
    figures: dict[str, Any] = {k: v for k, v in fields.items() if isinstance(v, int | float | bool)}
    figures["rows_merged"] = getattr(obj, "rows_merged", None)
    display(table, metadata={RECORD_KEY: figures})


def show_statement(statement: Statement) -> None:
    """One statement as a reader wants it: its name, what it is for, the SQL formatted."""
    why = f" · {statement.why}" if statement.why else ""
    display(Markdown(f"**`{statement.name}`**{why}\n```sql\n{statement.sql}\n```"))


@contextmanager
def statements_shown() -> Iterator[None]:
    """Display every statement a run executes, right before Spark runs it: the real SQL of the job."""
    with watching(show_statement):
        yield


def commits_table(run: Any) -> pd.DataFrame:
    """What each MERGE of a run committed: rows added (its snapshot's `added-records`), rows an update
    replaced (deleted, or marked deleted by position), data files added, and the pruning evidence: files of
    the target it scanned against the files it held."""
    rows = {name: {"rows added": f["added"], "rows replaced": f.get("replaced", 0), "files added": f["files"],
                   "target files before": f["table files"], "target files scanned": f["files scanned"]}
            for name, f in run.commits.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("statement")


def record(**figures: Any) -> None:
    """Record figures in the output's metadata (the notebook tests and the run history read them)."""
    display({"text/plain": "recorded: " + ", ".join(sorted(figures))}, raw=True, metadata={RECORD_KEY: figures})


def evidence(checks: Iterable[Invariant]) -> pd.DataFrame:
    """Each check's figures, side by side: what a check cell prints before it asserts."""
    rows = [(check.name, figure, value) for check in checks for figure, value in check.figures.items()]
    return pd.DataFrame(rows, columns=["check", "figure", "value"]).set_index(["check", "figure"])


def verdicts(checks: Iterable[Invariant]) -> Wrapped:
    """Each check's verdict and the figures that must be zero, one row a check: for a notebook whose
    point is that every invariant still holds (the figures behind them are shown where they are taught)."""
    rows = [(check.name, "holds" if check.ok else "FAILED", check.detail) for check in checks]
    return wrapped(pd.DataFrame(rows, columns=["check", "verdict", "what must be zero"]).set_index("check"))
