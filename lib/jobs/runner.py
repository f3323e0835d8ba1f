"""Notebooks as jobs: papermill executes a job's notebook with parameters and keeps the executed copy.

A manual run (`python -m lib run`) lands in runs/<UTC timestamp>/, a scheduled one in
runs/<job>/<interval start>/attempt-<n>.ipynb, so every run leaves a readable record of what it
did, failed ones included. Parameters are validated by the registry before any notebook (and so
before Spark) starts.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import papermill
from nbconvert.preprocessors import CoalesceStreamsPreprocessor
from papermill.exceptions import PapermillExecutionError

from lib.config import ROOT, Settings
from lib.errors import StackError
from lib.jobs.history import RunHistory
from lib.jobs.kernel import KERNEL_NAME
from lib.jobs.registry import EPOCH, Interval, Job, job, parameters, parse_time
from lib.stack import require_up

NOTEBOOKS = ROOT / "notebooks"
#: Output metadata key under which a job notebook records its figures (lib.workbook.notebook.frame).
RECORD_KEY = "roman-workbook"


@dataclass
class Outcome:
    """How one execution ended: ok, or the failing cell and its error; the figures the notebook recorded."""

    notebook: Path
    ok: bool
    failed_cell: int | None = None
    error: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    #: The whole message when the notebook never ran (what is down, and how to start it); `error` keeps
    #: its first sentence, for the run history and alerts.
    detail: str = ""

    @property
    def kept_at(self) -> str | None:
        """Where the executed notebook is kept (relative to the repository), or None when none was written."""
        if not self.notebook.exists():
            return None
        return str(self.notebook.relative_to(ROOT)) if self.notebook.is_relative_to(ROOT) else str(self.notebook)


def run_folder(cfg: Settings, now: datetime | None = None) -> Path:
    """A new runs/<UTC timestamp>/ folder (microseconds keep two runs in one second apart)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = cfg.runs_dir / stamp
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def execute(notebook: str, params: dict[str, Any], target: Path, progress: bool = True,
            log_output: bool = False) -> Path:
    """Execute notebooks/<notebook> with papermill into `target`; raises when any cell fails.

    `progress`: a progress bar (a terminal); `log_output`: each cell's start and end and its outputs on
    stdout/stderr as it runs (a log file: an Airflow task's log, cron's mail)."""
    source = NOTEBOOKS / notebook
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist; the notebooks are listed in README.md.")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters=params,
            kernel_name=KERNEL_NAME,
            cwd=str(NOTEBOOKS),
            progress_bar=progress,
            log_output=log_output,
        )
    finally:
        if target.exists():  # a failed run keeps its notebook too
            _tidy(target)
    return target


def _tidy(executed: Path) -> None:
    """An executed notebook as a reader should get it.

    Papermill records the absolute paths it was given: they are made relative to the repository,
    so the notebook says nothing about the machine that ran it. A progress bar writes its line again
    and again (a carriage return each time), one stream output per write: nbconvert's
    CoalesceStreamsPreprocessor merges them and keeps what a terminal would end up showing."""
    notebook = nbformat.read(executed, as_version=4)
    notebook, _ = CoalesceStreamsPreprocessor().preprocess(notebook, {})
    meta = notebook.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        path = Path(meta.get(key) or "")
        if path.is_absolute() and path.is_relative_to(ROOT):
            meta[key] = str(path.relative_to(ROOT))
    nbformat.write(notebook, executed)


def run_notebook(notebook: str, params: dict[str, Any], target: Path, progress: bool = True,
                 log_output: bool = False) -> Outcome:
    """Execute and say how it ended, never raising for a failing cell: the caller decides (retry, exit 1)."""
    try:
        execute(notebook, params, target, progress, log_output)
    except PapermillExecutionError as exc:
        return Outcome(target, False, exc.exec_count, f"{exc.ename}: {exc.evalue}"[:500], recorded(target))
    return Outcome(target, True, figures=recorded(target))


def recorded(executed: Path) -> dict[str, Any]:
    """The figures a job notebook recorded in its outputs (rows merged, records read...), merged."""
    if not executed.exists():
        return {}
    figures: dict[str, Any] = {}
    for cell in nbformat.read(executed, as_version=4).cells:
        for output in cell.get("outputs", []):
            figures.update(output.get("metadata", {}).get(RECORD_KEY, {}))
    return figures


def run_attempt(cfg: Settings, spec: Job, interval: Interval, attempt: int, params: dict[str, Any], target: Path,
                progress: bool = True, runner: str = "cli", log_output: bool = False) -> Outcome:
    """One attempt of a job, recorded in the run history (running, then succeeded or failed).

    The services it needs are checked, never started: a job whose stack is down fails (and its
    orchestrator retries) instead of quietly starting one. Shared by the embedded scheduler,
    `python -m lib run` and so by Airflow's tasks, which call it.
    """
    history = RunHistory(cfg)
    run_id = history.begin(spec.name, interval, attempt, runner)
    began = time.monotonic()
    try:
        require_up(cfg, spec.needs)
    except StackError as exc:
        outcome = Outcome(target, False, None, str(exc).split(". ")[0], detail=str(exc))
    else:
        outcome = run_notebook(spec.notebook, params, target, progress=progress, log_output=log_output)
    history.end(run_id, outcome.ok, time.monotonic() - began, outcome.figures.get("rows_merged"),
                outcome.kept_at, outcome.error)
    return outcome


def run_job(cfg: Settings, name: str, start: str | None, end: str | None, backfill: bool,
            max_records: int | None = None, attempt: int = 1, runner: str = "cli") -> int:
    """`python -m lib run`: validate, check the services the job needs, execute its notebook, record
    the attempt in the run history; 0 on success.

    The history's interval is the one given, else the job's default (for an incremental Bronze run,
    which reads by offsets, the last full quarter hour).
    """
    spec = job(name)
    params = parameters(name, start, end, backfill, max_records)
    interval = recorded_interval(spec, start, end, backfill, max_records)
    # On a terminal, a progress bar; in a log (an Airflow task, cron), each cell and its outputs as they run:
    # the notebook's own words reach the log, not only an exit code.
    to_log = not sys.stderr.isatty()
    target = run_folder(cfg) / spec.notebook
    if to_log:
        _log_cells()
        print(f"{name} attempt {attempt}: executing notebooks/{spec.notebook} into {_shown(target)} with {params}",
              flush=True)
    outcome = run_attempt(cfg, spec, interval, attempt, params, target, progress=not to_log, runner=runner,
                          log_output=to_log)
    if outcome.figures:
        print(f"{name} recorded: " + ", ".join(f"{k}={v}" for k, v in sorted(outcome.figures.items())
                                               if not isinstance(v, dict | list)), flush=True)
    if not outcome.ok:
        where = f"in cell {outcome.failed_cell}" if outcome.failed_cell is not None else "before its notebook ran"
        print(f"error: {name} failed {where} (attempt {attempt}): {outcome.detail or outcome.error}", file=sys.stderr)
        if outcome.kept_at:
            print(f"the executed notebook, with the failing cell, is kept at {outcome.kept_at}", file=sys.stderr)
        return 1
    print(f"{name}: ok (attempt {attempt}); executed notebook kept at {outcome.kept_at}")
    return 0


def recorded_interval(spec: Job, start: str | None, end: str | None, backfill: bool = False,
                      max_records: int | None = None) -> Interval:
    """The interval a run's history row claims. Given, or the job's default; but a job that catches up
    in one run claims everything before that interval's end, and the history clips the claim at the
    run's start: an incremental, unbounded Bronze run reads every record produced before it started,
    whatever interval an orchestrator named (Airflow names its quarter hour), and a maintenance run
    looks at every table. So Silver's hour is covered by
    the first such run after it, even when the quarters before it were missed (a Bronze outage, the
    first run of a new deployment). A backfill or a bounded run claims only its interval."""
    interval = (Interval(parse_time(start, "--start"), parse_time(end, "--end")) if start and end
                else spec.default_interval())
    if spec.catch_up_in_one_run and not backfill and max_records is None:
        return Interval(EPOCH, interval.end)
    return interval


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _log_cells() -> None:
    """Papermill says which cell starts and ends on its logger: send that to stderr, once."""
    logger = logging.getLogger("papermill")
    if not any(getattr(h, "workbook", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.workbook = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
