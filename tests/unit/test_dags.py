"""The Airflow DAGs in dags/, parsed by Airflow 3.3.2 itself (in .venv-airflow): generated from the job
registry, with its cadences, parameters and dependencies, retries and the alerting callback."""

from __future__ import annotations

import json
import subprocess

import pytest

from lib.config import ROOT, settings
from lib.jobs.registry import JOBS

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("medallion_dags", "dags/medallion.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({name: {
    "timetable": type(dag.timetable).__name__, "cron": getattr(dag.timetable, "expression", None),
    "catchup": dag.catchup, "params": sorted(dag.params.keys()),
    "upstream": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
    "retries": {t.task_id: t.retries for t in dag.tasks},
    "alerts": all(t.on_failure_callback for t in dag.tasks),
    "commands": {t.task_id: t.bash_command for t in dag.tasks},
} for name, dag in ((n, getattr(module, n + "_dag")) for n in sys.argv[1:])}))
"""


@pytest.fixture(scope="module")
def dags() -> dict:
    python = settings().airflow_venv / "bin" / "python"
    done = subprocess.run([str(python), "-c", PROBE, *JOBS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(JOBS))
def test_each_job_is_a_dag_on_its_cadence_with_a_data_interval(dags: dict, name: str) -> None:
    dag = dags[name]
    if JOBS[name].scheduled:
        assert (dag["timetable"], dag["cron"], dag["catchup"]) == ("CronDataIntervalTimetable", JOBS[name].cron, False)
    else:  # a migration runs when an operator triggers it, on the params' interval
        assert (dag["timetable"], dag["cron"]) == ("NullTimetable", None)
    assert dag["retries"][f"run_{name}"] == 2 and dag["alerts"]
    command = dag["commands"][f"run_{name}"]
    assert f"-m lib run {name} " in command and "--attempt {{ ti.try_number }}" in command


@pytest.mark.parametrize("name", list(JOBS))
def test_the_params_are_the_seeds_for_what_the_job_accepts(dags: dict, name: str) -> None:
    wanted = {"start_date", "end_date"} | ({"backfill"} if "backfill" in JOBS[name].accepts else set())
    assert set(dags[name]["params"]) == wanted


@pytest.mark.parametrize("name", [n for n, j in JOBS.items() if j.depends_on])
def test_a_job_waits_for_its_upstream_runs_to_cover_its_interval(dags: dict, name: str) -> None:
    upstream = JOBS[name].depends_on
    assert dags[name]["upstream"][f"run_{name}"] == [f"wait_for_{upstream}"]
    assert f"-m lib runs --job {upstream} --covered" in dags[name]["commands"][f"wait_for_{upstream}"]
