"""The Airflow DAGs in dags/, parsed by Airflow 3.3.2 itself (in .venv-airflow): generated from the job
registry, with its cadences, parameters and dependencies, retries and the alerting callback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lib.config import ROOT, settings
from lib.jobs.airflow import airflow
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
    "sensor_mode": next((t.mode for t in dag.tasks if hasattr(t, "mode")), None),
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
    assert f"-m lib run {name}" in command and '--attempt "$ATTEMPT"' in command
    # no template in any command: what a run's conf holds reaches bash only as an environment variable
    assert not [c for c in dag["commands"].values() if "{{" in c or "{%" in c]


@pytest.mark.parametrize("name", list(JOBS))
def test_the_params_are_the_seeds_for_what_the_job_accepts(dags: dict, name: str) -> None:
    wanted = {"start_date", "end_date"} | ({"backfill"} if "backfill" in JOBS[name].accepts else set())
    assert set(dags[name]["params"]) == wanted


@pytest.mark.parametrize("name", [n for n, j in JOBS.items() if j.depends_on])
def test_a_job_waits_for_its_upstream_runs_to_cover_its_interval(dags: dict, name: str) -> None:
    upstream = JOBS[name].depends_on
    assert dags[name]["upstream"][f"run_{name}"] == [f"wait_for_{upstream}"]
    assert f"-m lib runs --job {upstream} --covered" in dags[name]["commands"][f"wait_for_{upstream}"]


#: Values an attacker could put in a run's conf: each must reach the runner as one argument, intact.
HOSTILE = [
    "2026-01-01' ; touch pwned-quote ; echo '",
    '2026-01-01" ; touch pwned-dquote ; echo "',
    "$(touch pwned-subshell)",
    "`touch pwned-backtick`",
    "2026-01-01\ntouch pwned-newline",
    "2026-01-01 && touch pwned-and || touch pwned-or",
    "${IFS}touch${IFS}pwned-ifs; {{ 7 * 7 }}",
]

RENDER = """
import importlib.util, json, sys
from datetime import datetime, timezone
from types import SimpleNamespace
spec = importlib.util.spec_from_file_location("medallion_dags", "dags/medallion.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
out = {}
for value in json.loads(sys.argv[1]):
    for name in sys.argv[2:]:
        dag = getattr(module, name + "_dag")
        for task in dag.tasks:
            task = task.prepare_for_execution()  # a copy: each value renders from the templates
            context = {"params": {"start_date": value, "end_date": value, "backfill": True},
                       "data_interval_start": datetime(2026, 1, 1, tzinfo=timezone.utc),
                       "data_interval_end": datetime(2026, 1, 2, tzinfo=timezone.utc),
                       "ti": SimpleNamespace(try_number=1)}
            task.render_template_fields(context, jinja_env=dag.get_template_env())
            out.setdefault(value, []).append({"dag": name, "task": task.task_id, "command": task.bash_command,
                                              "env": task.env})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict]]]:
    """Every task of every DAG rendered by Airflow for each hostile value, with a stub interpreter (at a
    path with a space and a quote) as the project's: (the stub, {value: tasks})."""
    stub = tmp_path_factory.mktemp("stub") / "bin dir's" / "python"
    stub.parent.mkdir()
    stub.write_text('#!/bin/bash\nprintf "%s\\0" "$@" > "$ARGV_OUT"\n')
    stub.chmod(0o755)
    python = settings().airflow_venv / "bin" / "python"
    done = subprocess.run([str(python), "-c", RENDER, json.dumps(HOSTILE), *JOBS], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "WORKBOOK_PYTHON": str(stub)})
    assert done.returncode == 0, done.stderr[-2000:]
    return stub, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_param_reaches_the_runner_as_one_argument_and_runs_nothing(
        hostile: str, rendered: tuple[Path, dict[str, list[dict]]], tmp_path: Path) -> None:
    """Every task's command of every DAG, rendered as Airflow renders it with a hostile start_date and
    end_date, run by bash: the stub interpreter gets the value intact as one argument, and nothing else
    ran (no file appeared)."""
    by_value = rendered[1]
    tasks = by_value[hostile]
    assert {t["task"] for t in tasks} >= {f"run_{name}" for name in JOBS}
    work = tmp_path / "work"
    for task in tasks:
        work.mkdir()
        argv_out = tmp_path / "argv"
        env = {"PATH": os.environ["PATH"], "ARGV_OUT": str(argv_out), **task["env"]}
        ran = subprocess.run(["bash", "-c", task["command"]], cwd=work, env=env, capture_output=True, text=True,
                             timeout=30)
        assert ran.returncode == 0, (task, ran.stderr)
        argv = argv_out.read_bytes().decode().split("\0")[:-1]
        assert sorted(p.name for p in work.iterdir()) == [], (task["task"], list(work.iterdir()))
        if task["task"].startswith("run_"):
            at = argv.index("--start")
            assert argv[at:at + 6] == ["--start", hostile, "--end", hostile, "--attempt", "1"], argv
        else:
            assert argv[-3:] == ["--covered", hostile, hostile], argv
        if task["task"].startswith("run_") and "backfill" in JOBS[task["dag"]].accepts:
            assert "--backfill" in argv
        argv_out.unlink()
        work.rmdir()
    assert not list(ROOT.glob("pwned*")) and not list(tmp_path.glob("**/pwned*"))


def test_airflow_refuses_a_hostile_conf_before_a_task_exists(tmp_path: Path) -> None:
    """`airflow dags test bronze --conf` with a shell payload in start_date: Airflow's own Param check
    refuses the run with a message naming the param, before any task (or Spark) starts; nothing ran."""
    home, runs = tmp_path / "airflow-home", tmp_path / "runs"
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
           "RUNS_DIR": str(runs)}
    cfg = settings()
    assert airflow(cfg, ["db", "migrate"], env=env, capture=True).returncode == 0
    hostile = {"start_date": "2026-01-01' ; touch pwned ; echo '", "end_date": "2026-01-02"}
    done = airflow(cfg, ["dags", "test", "bronze", "--conf", json.dumps(hostile)], env=env, capture=True)
    assert done.returncode != 0
    assert "Invalid input for param start_date" in done.stderr and "does not match" in done.stderr
    assert "run_bronze" not in done.stdout + done.stderr.split("ParamValidationError")[0]  # no task was run
    assert not (ROOT / "pwned").exists() and not list(tmp_path.glob("**/pwned")) and not runs.exists()


CALLBACK = """
import importlib.util, os, sys
from datetime import datetime, timezone
from types import SimpleNamespace
spec = importlib.util.spec_from_file_location("medallion_dags", "dags/medallion.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
os.environ["ALERT_WEBHOOK_URL"] = sys.argv[1]
module.alert_when_retries_are_exhausted({
    "ti": SimpleNamespace(dag_id="bronze", task_id="run_bronze", try_number=3), "params": {},
    "data_interval_start": datetime(2026, 1, 1, tzinfo=timezone.utc),
    "data_interval_end": datetime(2026, 1, 1, 0, 15, tzinfo=timezone.utc), "exception": RuntimeError("boom")})
print("callback returned")
"""


@pytest.mark.parametrize("webhook", ["", "hooks.example.com/no-scheme"])
def test_the_failure_callback_alerts_and_never_raises(webhook: str, tmp_path: Path) -> None:
    """Airflow's failure callback, in Airflow's virtualenv: it alerts (runs/alerts.log), and with a setting
    it cannot use it still prints the alert to the task's log instead of raising."""
    python = settings().airflow_venv / "bin" / "python"
    done = subprocess.run([str(python), "-c", CALLBACK, webhook], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "RUNS_DIR": str(tmp_path)})
    assert done.returncode == 0 and "callback returned" in done.stdout, done.stderr[-2000:]
    assert "ALERT: bronze [2026-01-01T00:00:00+00:00, 2026-01-01T00:15:00+00:00) failed after 3 attempts" in done.stderr
    logged = (tmp_path / "alerts.log").exists()
    assert logged == (not webhook), done.stderr
    if webhook:
        assert "ALERT_WEBHOOK_URL" in done.stderr


def test_the_executor_has_a_slot_for_each_dag_so_a_poking_sensor_never_starves_its_upstream(dags: dict) -> None:
    from lib.stack.airflow import airflow_env

    env = airflow_env(settings())
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) >= len(dags) and env["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"] == "1"
    for name in (n for n, j in JOBS.items() if j.depends_on):
        assert dags[name]["sensor_mode"] == "poke"
