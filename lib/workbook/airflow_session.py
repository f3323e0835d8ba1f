"""Airflow started for one notebook section: a home, a run history and settings of its own, stopped after.

The notebooks that show Airflow (09's orchestration, 10's drill 7) start its api-server, dag-processor and
scheduler beside the stack, with an Airflow home under the section's own folder, so a user's Airflow
(`make airflow-up`) and its metadata are never touched, and with the settings the section needs in the
processes' environment (the events topic, the run history's folder, retry and sensor timings, no runs
from the timetables: each DAG run is one the section triggered).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pandas as pd

from lib import stack
from lib.config import Settings
from lib.errors import HttpError, WorkbookError
from lib.jobs.airflow_rest import AirflowRest
from lib.plumbing.waits import poll
from lib.stack.airflow import airflow_services


@contextmanager
def environment(extra: dict[str, str]) -> Iterator[None]:
    """os.environ with `extra` for the processes started inside (they keep it), as before after."""
    before = dict(os.environ)
    os.environ.update(extra)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


class AirflowSession:
    """Airflow's three processes for `cfg` (its run history in `cfg.runs_dir`) with their home in `folder`."""

    def __init__(self, cfg: Settings, folder: Path, retry_delay_s: float, wait_poke_s: float | None = None) -> None:
        self.cfg = cfg
        self.home = replace(cfg, stack_home=folder)
        self.names = [s.name for s in airflow_services(self.home)]
        self.env = {"EVENTS_TOPIC": cfg.events_topic, "RUNS_DIR": str(cfg.runs_dir),
                    "WORKBOOK_RETRY_DELAY_S": f"{retry_delay_s:g}",
                    "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}  # manual and backfill runs only
        if wait_poke_s is not None:
            self.env["WORKBOOK_WAIT_POKE_S"] = f"{wait_poke_s:g}"
        self.client: AirflowRest | None = None

    def up(self, first_dag: str = "bronze") -> AirflowRest:
        """Start the processes, log in, and wait until `first_dag` is parsed; stopped again if that fails."""
        with environment(self.env):
            stack.up(self.home, self.names, quiet=True)
        # A notebook cell that fails between up() and down() leaves the kernel to end: stop Airflow then.
        atexit.register(self.down)
        try:
            self.client = AirflowRest(self.home)
            self.client.wait_for_dag(first_dag)
        except BaseException:
            self.down()
            raise
        return self.client

    def down(self) -> None:
        atexit.unregister(self.down)
        if self.client is not None:
            self.client.close()
            self.client = None
        stack.down(self.home, self.names)


def _seconds(delay: object) -> str:
    """A timedelta as Airflow's API gives it ({"__type": "TimeDelta", "days", "seconds", ...}) in words."""
    if isinstance(delay, dict):
        return f"{int(delay.get('days', 0)) * 86400 + int(delay.get('seconds', 0))} s"
    return "" if delay is None else str(delay)


def parsed_dags(client: AirflowRest, dag_ids: list[str]) -> pd.DataFrame:
    """Each DAG and task as Airflow parsed them: schedule, params with defaults, retries, and the waits."""
    rows = []
    for dag_id in dag_ids:
        dag = client.dag(dag_id)
        details = client.call("GET", f"/dags/{dag_id}/details")
        params = details.get("params") or {}
        for task in client.call("GET", f"/dags/{dag_id}/tasks")["tasks"]:
            rows.append({
                "DAG": dag_id, "schedule": dag.get("timetable_summary") or "none (triggered)",
                "params (default)": ", ".join(f"{name} ({spec.get('value')})" for name, spec in sorted(params.items())),
                "task": task["task_id"], "operator": task.get("operator_name"),
                "retries": int(task.get("retries") or 0), "retry delay": _seconds(task.get("retry_delay")),
            })
    return pd.DataFrame(rows).set_index(["DAG", "task"])


def _time(text: str | None) -> pd.Timestamp | None:
    return pd.Timestamp(text) if text else None


def runs_frame(client: AirflowRest, dag_id: str, **filters: str) -> pd.DataFrame:
    """A DAG's runs as Airflow reports them: id, how it was made, its data interval, state, start and end."""
    rows = [{"DAG": dag_id, "run": run["dag_run_id"], "type": run.get("run_type"),
             "interval start": _time(run.get("data_interval_start")),
             "interval end": _time(run.get("data_interval_end")), "state": run["state"],
             "started": _time(run.get("start_date")), "ended": _time(run.get("end_date"))}
            for run in client.runs(dag_id, **filters)]
    return pd.DataFrame(rows)


def tasks_frame(client: AirflowRest, dag_id: str, run_id: str) -> pd.DataFrame:
    """Each task of one run: its state, how many tries it took, when it ran."""
    rows = [{"task": t["task_id"], "state": t["state"], "tries": t["try_number"],
             "started": _time(t.get("start_date")), "ended": _time(t.get("end_date"))}
            for t in client.task_instances(dag_id, run_id)]
    return pd.DataFrame(rows).set_index("task")


def log_lines(client: AirflowRest, dag_id: str, run_id: str, task_id: str, *, containing: tuple[str, ...],
              try_number: int = 1) -> list[str]:
    """The lines of one try's log that contain any of `containing`, as Airflow's API serves them."""
    return [line.strip() for line in client.log(dag_id, run_id, task_id, try_number)
            if any(text in line for text in containing)]


def wait_for_log(client: AirflowRest, dag_id: str, run_id: str, task_id: str, text: str,
                 timeout_s: float = 300.0) -> str:
    """The first line of the task's first try that contains `text`, once its log has it (a running sensor
    logs each poke); a WorkbookError naming the task when it does not come within `timeout_s`."""
    def lines() -> list[str]:
        try:
            return log_lines(client, dag_id, run_id, task_id, containing=(text,))
        except HttpError as exc:  # no try yet: the task has not started
            if exc.status == 404:
                return []
            raise

    found = poll(lines, timeout_s=timeout_s, every_s=2.0, until=bool,
                 timed_out=lambda _: WorkbookError(f"{dag_id}/{run_id}: {task_id}'s log never said {text!r} "
                                                   f"within {timeout_s:.0f} s"))
    return found[0]
