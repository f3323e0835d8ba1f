"""Bronze, Silver and Gold as Airflow 3 DAGs, generated from the job registry (lib/jobs/registry.py).

Cadence, parameters and dependencies are written once, in the registry. Each task runs the job's
notebook through the project's own runner, `python -m lib run <job> --start … --end … --attempt N`,
in the project's virtualenv: Airflow and the embedded scheduler execute the same notebooks with the
same parameters, and record every attempt in the same run history (`python -m lib runs`).

- Schedule: a cron *data interval* timetable, so a run's data interval spans its 15 minutes, hour or
  day (Airflow 3's plain cron strings give a run an empty interval).
- Retries: two, `WORKBOOK_RETRY_DELAY_S` apart (30 s by default); when they are exhausted the
  failure callback raises the same alert as the embedded scheduler (stderr, runs/alerts.log, the
  webhook at ALERT_WEBHOOK_URL).
- Backfills: the params `backfill` (Bronze), `start_date` and `end_date` re-run any interval:
  `airflow dags trigger bronze --conf '{"backfill": true, "start_date": "…", "end_date": "…"}'`.
  A date param must be ISO-8601 (Airflow refuses anything else when the run is created), and no
  rendered value is ever command text: the tasks read them from their environment ("$START").
- A job the registry does not schedule (`migrate-silver`) is a DAG without a schedule: an operator
  triggers it with `start_date` and `end_date` (without them the run fails, naming the fix).
- Dependencies: Silver waits (a sensor in poke mode) until Bronze's succeeded runs cover its hour, Gold
  until Silver's cover its day, asked of the run history (`python -m lib runs --job … --covered START END`).
  The history,
  not Airflow's own bookkeeping, is the dependency because it says what was landed: it holds the
  embedded scheduler's runs and operators' `lib run`s as well as Airflow's, and it reads the same for
  scheduled, manual (`airflow dags test`) and backfill runs, whose logical dates differ.

The DAG file imports only the standard library parts of `lib` (the registry, the settings and the
alerts), so it parses in Airflow's own virtualenv (.venv-airflow); everything else runs in .venv.
"""

from __future__ import annotations

import os
import shlex
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.sensors.bash import BashSensor
from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from lib.config import ROOT, settings
from lib.errors import ConfigError
from lib.jobs.alerts import alert
from lib.jobs.registry import JOBS, Job

#: The settings, read once when the DAG file is parsed (this file is an edge, as the CLI is).
CFG = settings()
#: The project's interpreter (WORKBOOK_PYTHON): the tasks run the same code as `make run`, in its virtualenv.
PYTHON = CFG.workbook_python
RETRIES = 2
RETRY_DELAY = timedelta(seconds=CFG.retry_delay_s)
#: How long a downstream job waits for its upstream's runs before it fails (and is retried).
WAIT_TIMEOUT = timedelta(seconds=CFG.wait_timeout_s)
WAIT_POKE = timedelta(seconds=CFG.wait_poke_s)
FIRST_INTERVAL = datetime(2026, 1, 1, tzinfo=UTC)

#: The interval a run works on: the params' when given (a backfill), else its data interval.
START = "{{ params.start_date or data_interval_start.isoformat() }}"
END = "{{ params.end_date or data_interval_end.isoformat() }}"
#: What a date param may hold: an ISO-8601 date or date-time, nothing else. Airflow checks it when a
#: run is triggered, before any task exists; the runner's parse_time checks the value again.
ISO_8601 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?)?(Z|[+-][0-9]{2}:[0-9]{2})?$"
#: Rendered values reach a task as environment variables, never as command text: bash expands "$START"
#: to one argument whatever it holds (quotes, `;`, `$(...)`, backticks, newlines), and runs none of it.
INTERVAL_ENV = {"START": START, "END": END, "ATTEMPT": "{{ ti.try_number }}"}
BACKFILL_ENV = {"BACKFILL": "{{ 'yes' if params.backfill else '' }}"}


def alert_when_retries_are_exhausted(context: dict[str, Any]) -> None:
    """The task failed its last try: alert through the embedded scheduler's path."""
    ti = context["ti"]
    params = context.get("params") or {}
    start = params.get("start_date") or context["data_interval_start"].isoformat()
    end = params.get("end_date") or context["data_interval_end"].isoformat()
    error = str(context.get("exception") or "the task failed")
    try:
        cfg = settings()
    except ConfigError as exc:  # the alert still reaches the task's log, with why the channels could not
        print(f"ALERT: {ti.dag_id} [{start}, {end}) failed after {ti.try_number} attempts: {error[:300]} "
              f"(runs/alerts.log and the webhook are out of reach: {exc})", file=sys.stderr, flush=True)
        return
    alert(cfg, ti.dag_id, f"[{start}, {end})", ti.try_number, None,
          f"{error} (Airflow task {ti.task_id}; its log has the runner's message)", None)


class WaitForRuns(BashSensor):
    """A BashSensor whose `env` adds to the worker's environment, as BashOperator's append_env does
    (BashSensor's own `env` replaces it: the runner would lose RUNS_DIR, PATH and the stack's addresses)."""

    def poke(self, context: Any) -> bool:
        self.env = {**os.environ, **(self.env or {})}
        return super().poke(context)


def params_for(spec: Job) -> dict[str, Param]:
    """The seed's backfill params, for the parameters the job accepts; a date is refused unless ISO-8601."""
    params = {
        "start_date": Param(None, type=["null", "string"], pattern=ISO_8601, maxLength=40,
                            description="ISO-8601 start of the interval to (re-)run, e.g. 2026-11-27 or "
                                        "2026-11-27T13:00:00+00:00; empty: the data interval"),
        "end_date": Param(None, type=["null", "string"], pattern=ISO_8601, maxLength=40,
                          description="ISO-8601 end (exclusive) of that interval; give both or neither"),
    }
    if "backfill" in spec.accepts:
        params["backfill"] = Param(False, type="boolean",
                                   description="re-read Kafka for [start_date, end_date) of event time; "
                                               "the incremental position is left alone")
    return params


def run_command(spec: Job) -> str:
    """The job's run, every rendered value read from the environment (task_env), every word quoted."""
    flags = ' ${BACKFILL:+--backfill}' if "backfill" in spec.accepts else ""
    return (f'{shlex.quote(PYTHON)} -m lib run {shlex.quote(spec.name)}{flags} --start "$START" --end "$END" '
            '--attempt "$ATTEMPT"')


def wait_command(upstream: str) -> str:
    return f'{shlex.quote(PYTHON)} -m lib runs --job {shlex.quote(upstream)} --covered "$START" "$END"'


def task_env(spec: Job) -> dict[str, str]:
    """The templated values a task's command reads, added to the worker's environment."""
    return {**INTERVAL_ENV, **(BACKFILL_ENV if "backfill" in spec.accepts else {})}


def build(spec: Job) -> DAG:
    """One job's DAG: [wait for the upstream job's runs ->] run the job's notebook."""
    with DAG(
        dag_id=spec.name,
        description=spec.what,
        # A job with no schedule (a migration) runs when triggered, on the params' interval.
        schedule=CronDataIntervalTimetable(spec.cron, timezone="UTC") if spec.scheduled else None,
        start_date=FIRST_INTERVAL,
        catchup=False,  # explicit: a fresh deployment starts now; earlier intervals are backfills
        max_active_runs=1,  # one run of a layer at a time, as the embedded scheduler's lock does
        params=params_for(spec),
        default_args={
            "retries": RETRIES,
            "retry_delay": RETRY_DELAY,
            "on_failure_callback": alert_when_retries_are_exhausted,
            "cwd": str(ROOT),
        },
        tags=["roman-workbook", "medallion"],
        doc_md=f"**{spec.name}**: {spec.what}. Notebook `notebooks/{spec.notebook}`, every {spec.every}.",
    ) as dag:
        job = BashOperator(task_id=f"run_{spec.name}", bash_command=run_command(spec), env=task_env(spec),
                           append_env=True)
        if spec.depends_on:
            wait = WaitForRuns(
                task_id=f"wait_for_{spec.depends_on}", bash_command=wait_command(spec.depends_on), env=INTERVAL_ENV,
                # Poke mode: the sensor holds its worker slot while it waits (the executor's parallelism is
                # at least the number of DAGs, and each DAG runs one task at a time, so a waiting sensor can
                # never take the slot its upstream job needs). Reschedule mode would free the slot, but
                # Airflow 3.2-3.3's scheduler fails a rescheduled sensor when one poke's late executor event
                # meets the next poke (apache/airflow#71172): here it did, at every poke, under load.
                mode="poke", poke_interval=WAIT_POKE.total_seconds(), timeout=WAIT_TIMEOUT.total_seconds(),
                retries=0,
            )
            wait >> job
    return dag


for _spec in JOBS.values():
    globals()[f"{_spec.name}_dag"] = build(_spec)
