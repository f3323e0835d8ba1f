"""Notebooks as jobs: papermill executes a notebook with parameters and keeps the executed copy.

Every execution lands in runs/<UTC timestamp>/, so a scheduled or backfill run leaves a readable
record of what it did. Parameters are validated here, before any notebook (and so before Spark)
starts, and errors name the parameter and the fix.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import papermill
from papermill.exceptions import PapermillExecutionError

from lib.config import ROOT, Settings
from lib.errors import ParameterError
from lib.jobs.kernel import KERNEL_NAME
from lib.stack import require_up

NOTEBOOKS = ROOT / "notebooks"
RUNS = ROOT / "runs"

#: The scheduled layers and the notebook that implements each.
LAYERS = {"bronze": "03_bronze.ipynb", "silver": "04_silver.ipynb", "gold": "05_gold.ipynb"}
#: The services each layer's job talks to: a Spark batch job needs neither the service nor Flink.
NEEDS = {layer: ("kafka", "iceberg-rest") for layer in LAYERS}


def last_full_hour(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Silver's scheduled interval: the last full hour of ingestion time."""
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=1), end


def previous_day(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Gold's scheduled interval: yesterday's processing, UTC."""
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return end - timedelta(days=1), end


def parse_time(value: str, name: str) -> datetime:
    """Parse an ISO-8601 date or timestamp as UTC; naive values are taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise ParameterError(
            f"{name}={value!r} is not an ISO-8601 date or time; use for example 2026-11-27 or "
            "2026-11-27T13:00:00+00:00."
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def check_layer(layer: str) -> str:
    if layer not in LAYERS:
        raise ParameterError(f"layer={layer!r} is unknown; choose one of: {', '.join(LAYERS)}.")
    return layer


@dataclass(frozen=True)
class Interval:
    """A half-open time range [start, end) in UTC."""

    start: datetime
    end: datetime

    @classmethod
    def parse(cls, start: str, end: str) -> Interval:
        begin, finish = parse_time(start, "--start"), parse_time(end, "--end")
        if begin >= finish:
            raise ParameterError(
                f"--start {begin.isoformat()} is not before --end {finish.isoformat()}; the interval "
                "is [start, end), so start must come first."
            )
        return cls(begin, finish)


def run_folder(now: datetime | None = None) -> Path:
    """A new runs/<UTC timestamp>/ folder (microseconds keep two runs in one second apart)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = RUNS / stamp
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def execute(notebook: str, parameters: dict[str, Any], out_dir: Path, progress: bool = True) -> Path:
    """Execute notebooks/<notebook> with papermill into out_dir; raises when any cell fails."""
    source = NOTEBOOKS / notebook
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist; the notebooks are listed in README.md.")
    target = out_dir / notebook
    try:
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            cwd=str(NOTEBOOKS),
            progress_bar=progress,
            log_output=False,
        )
    finally:
        if target.exists():  # a failed run keeps its notebook too
            _paths_relative_to_the_repo(target)
    return target


def _paths_relative_to_the_repo(executed: Path) -> None:
    """Papermill records the absolute paths it was given; keep them relative to the repository, so
    an executed notebook says nothing about the machine that ran it."""
    notebook = nbformat.read(executed, as_version=4)
    meta = notebook.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        path = Path(meta.get(key) or "")
        if path.is_absolute() and path.is_relative_to(ROOT):
            meta[key] = str(path.relative_to(ROOT))
    nbformat.write(notebook, executed)


def layer_parameters(layer: str, start: str | None, end: str | None, backfill: bool) -> dict[str, Any]:
    """Validate a layer run's parameters and turn them into the notebook's `parameters` values."""
    check_layer(layer)
    if backfill and layer != "bronze":
        raise ParameterError(
            f"--backfill is Bronze's (it re-reads Kafka from the earliest offsets); {layer} re-processes any "
            "interval you give it with --start and --end."
        )
    if backfill and not (start and end):
        raise ParameterError("--backfill needs both --start and --end: the interval to re-read.")
    if bool(start) != bool(end):
        raise ParameterError("give both --start and --end, or neither (the layer's default interval).")
    params: dict[str, Any] = {"BACKFILL": backfill}
    if start and end:
        interval = Interval.parse(start, end)
        begin, finish = interval.start, interval.end
    elif layer == "silver":
        begin, finish = last_full_hour()
    elif layer == "gold":
        begin, finish = previous_day()
    else:
        return params
    return params | {"INTERVAL_START": begin.isoformat(), "INTERVAL_END": finish.isoformat()}


def run_layer(cfg: Settings, layer: str, start: str | None, end: str | None, backfill: bool) -> int:
    """`python -m lib run`: validate, check the services the layer needs, execute its notebook; 0 on success."""
    params = layer_parameters(layer, start, end, backfill)
    require_up(cfg, NEEDS[layer])
    folder = run_folder()
    try:
        out = execute(LAYERS[layer], params, folder)
    except PapermillExecutionError as exc:
        print(f"error: {layer} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
              f"the executed notebook, with the failing cell, is kept at {folder / LAYERS[layer]}", file=sys.stderr)
        return 1
    print(f"{layer}: ok; executed notebook kept at {out}")
    return 0
